/* clip_model: loading a CLIP model in transformers or open_clip layout (see clip_model.h). */
#include "clip_model.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct clip_model {
    safetensors *st;
    char *path;
    int open_clip;
    clip_text *text;
    clip_vision *vision;
    double logit_scale;
};

/* a tensor of the file with ndim dims, or an error naming it */
static const safetensors_tensor *need(const safetensors *st, const char *path, const char *name, int ndim, char *err,
                                      size_t errlen)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t) {
        log_errf(err, errlen, path, "tensor '%s' is missing", name);
        return NULL;
    }
    if (t->ndim != ndim) {
        log_errf(err, errlen, path, "tensor '%s' has %d dimensions, expected %d", name, t->ndim, ndim);
        return NULL;
    }
    return t;
}

/* layers counted by probing fmt % L; *inter = dim 0 of the first one (the MLP's first weight) */
static int count_layers(const safetensors *st, const char *fmt, int *inter)
{
    char n[256];
    int L = 0;
    for (;; L++) {
        snprintf(n, sizeof n, fmt, L);
        const safetensors_tensor *t = safetensors_find(st, n);
        if (!t) break;
        if (L == 0) *inter = t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    return L;
}

static int heads_of(int given, int width, const char *path, const char *tower, char *err, size_t errlen)
{
    if (given > 0) return given;
    if (width % 64) {
        log_errf(err, errlen, path, "%s width %d is not a multiple of 64: give the head count", tower, width);
        return -1;
    }
    return width / 64;
}

/* the configs of a file without config.json, from its shapes */
static int infer(const safetensors *st, const char *path, int oc, const clip_model_opts *o, clip_text_config *tc,
                 clip_vision_config *vc, char *err, size_t errlen)
{
    const safetensors_tensor *tok, *pos, *conv, *vpos;
    if (!(tok = need(st, path, oc ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight", 2,
                     err, errlen)) ||
        !(pos = need(st, path, oc ? "positional_embedding" : "text_model.embeddings.position_embedding.weight", 2,
                     err, errlen)) ||
        !(conv = need(st, path, oc ? "visual.conv1.weight" : "vision_model.embeddings.patch_embedding.weight", 4,
                      err, errlen)) ||
        !(vpos = need(st, path,
                      oc ? "visual.positional_embedding" : "vision_model.embeddings.position_embedding.weight", 2,
                      err, errlen)))
        return -1;
    memset(tc, 0, sizeof *tc), memset(vc, 0, sizeof *vc);
    tc->vocab_size = (int)tok->shape[0], tc->hidden = (int)tok->shape[1], tc->max_pos = (int)pos->shape[0];
    tc->layers = count_layers(st, oc ? "transformer.resblocks.%d.mlp.c_fc.weight"
                                     : "text_model.encoder.layers.%d.mlp.fc1.weight", &tc->intermediate);
    vc->hidden = (int)conv->shape[0], vc->patch_size = (int)conv->shape[2];
    const long tokens = (long)vpos->shape[0] - 1, g = lround(sqrt((double)tokens));
    if (conv->shape[1] != 3 || conv->shape[2] != conv->shape[3] || g * g != tokens || g < 1) {
        log_errf(err, errlen, path, "patch embedding [%lld, %lld, %lld, %lld] with %lld positions is not a square "
                 "3-channel ViT", (long long)conv->shape[0], (long long)conv->shape[1], (long long)conv->shape[2],
                 (long long)conv->shape[3], (long long)vpos->shape[0]);
        return -1;
    }
    vc->image_size = (int)(g * vc->patch_size);
    vc->layers = count_layers(st, oc ? "visual.transformer.resblocks.%d.mlp.c_fc.weight"
                                     : "vision_model.encoder.layers.%d.mlp.fc1.weight", &vc->intermediate);
    if (tc->layers == 0 || vc->layers == 0) {
        log_errf(err, errlen, path, "tensor '%s' is missing (no layers)",
                 tc->layers == 0 ? (oc ? "transformer.resblocks.0.mlp.c_fc.weight"
                                       : "text_model.encoder.layers.0.mlp.fc1.weight")
                                 : (oc ? "visual.transformer.resblocks.0.mlp.c_fc.weight"
                                       : "vision_model.encoder.layers.0.mlp.fc1.weight"));
        return -1;
    }
    const safetensors_tensor *tp = need(st, path, oc ? "text_projection" : "text_projection.weight", 2, err, errlen);
    if (!tp) return -1;
    tc->proj_dim = (int)(oc ? tp->shape[1] : tp->shape[0]);
    vc->proj_dim = tc->proj_dim;
    clip_model_opts d = {CLIP_ACT_QUICK_GELU, 0, 0};
    if (!o) o = &d;
    if ((tc->heads = heads_of(o->text_heads, tc->hidden, path, "text", err, errlen)) < 0 ||
        (vc->heads = heads_of(o->vision_heads, vc->hidden, path, "image", err, errlen)) < 0)
        return -1;
    tc->act = vc->act = o->act;
    tc->ln_eps = vc->ln_eps = 1e-5f;
    tc->eos_token_id = 2;
    return 0;
}

/* the configs of a transformers CLIPModel folder */
static int read_config(const char *cpath, clip_text_config *tc, clip_vision_config *vc, char *err, size_t errlen)
{
    json_doc *d = json_load(cpath, err, errlen);
    if (!d) return -1;
    const json_value *r = json_root(d), *t = json_get(r, "text_config"), *v = json_get(r, "vision_config");
    int64_t E;
    int bad = 0;
    if (!t || t->type != JSON_OBJECT || !v || v->type != JSON_OBJECT) {
        log_errf(err, errlen, cpath, "key '%s': missing or not an object (not a CLIPModel config)",
                 !t || t->type != JSON_OBJECT ? "text_config" : "vision_config");
        bad = 1;
    }
    bad = bad || json_get_int_or(d, r, "projection_dim", 1, 1 << 16, 512, &E, err, errlen) ||
          clip_text_config_parse(d, t, 1, tc, err, errlen) || clip_vision_config_parse(d, v, vc, err, errlen);
    json_free(d);
    if (bad) return -1;
    tc->proj_dim = vc->proj_dim = (int)E;
    return 0;
}

clip_model *clip_model_load(const char *path, const clip_model_opts *opts, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb)) {
        log_errf(err, errlen, path, "no such file or folder");
        return NULL;
    }
    clip_text_config tc;
    clip_vision_config vc;
    char *wpath;
    const int is_dir = S_ISDIR(sb.st_mode);
    if (is_dir) {
        size_t n = strlen(path) + 32;
        char *cpath = mem_alloc(n);
        snprintf(cpath, n, "%s/config.json", path);
        int bad = read_config(cpath, &tc, &vc, err, errlen);
        free(cpath);
        if (bad) return NULL;
        wpath = mem_alloc(n);
        snprintf(wpath, n, "%s/model.safetensors", path);
    } else {
        wpath = mem_strdup(path);
    }
    clip_model *m = mem_calloc(1, sizeof *m);
    m->path = wpath;
    m->logit_scale = NAN;
    if (!(m->st = safetensors_open(wpath, err, errlen))) goto fail;
    if (safetensors_find(m->st, "visual.conv1.weight")) {
        m->open_clip = 1;
    } else if (!safetensors_find(m->st, "vision_model.embeddings.patch_embedding.weight")) {
        log_errf(err, errlen, wpath, "tensor 'vision_model.embeddings.patch_embedding.weight' (transformers) or "
                 "'visual.conv1.weight' (open_clip) is missing: not a CLIP model");
        goto fail;
    }
    if (is_dir && m->open_clip) {
        log_errf(err, errlen, wpath, "open_clip tensor names in a transformers folder (tensor 'visual.conv1.weight')");
        goto fail;
    }
    if (!is_dir && infer(m->st, wpath, m->open_clip, opts, &tc, &vc, err, errlen)) goto fail;
    if (!(m->text = clip_text_load_names(m->st, wpath, "", m->open_clip, &tc, err, errlen))) goto fail;
    if (!(m->vision = clip_vision_load_names(m->st, wpath, "", m->open_clip, &vc, err, errlen))) goto fail;
    const safetensors_tensor *ls = safetensors_find(m->st, "logit_scale");
    if (ls && ls->numel == 1) {
        nn_tensor t;
        float v;
        if (nn_tensor_from_safetensors(&t, ls, wpath, err, errlen) == 0) {
            nn_tensor_to_f32(&v, &t);
            m->logit_scale = exp((double)v);
        }
    }
    return m;
fail:
    clip_model_free(m);
    return NULL;
}

void clip_model_free(clip_model *m)
{
    if (!m) return;
    clip_text_free(m->text);
    clip_vision_free(m->vision);
    safetensors_close(m->st);
    free(m->path);
    free(m);
}

const clip_text *clip_model_text(const clip_model *m) { return m->text; }
const clip_vision *clip_model_vision(const clip_model *m) { return m->vision; }
int clip_model_embed_dim(const clip_model *m) { return clip_vision_cfg(m->vision)->proj_dim; }
int clip_model_image_size(const clip_model *m) { return clip_vision_cfg(m->vision)->image_size; }
const char *clip_model_naming(const clip_model *m) { return m->open_clip ? "open_clip" : "transformers"; }
const char *clip_model_weights_path(const clip_model *m) { return m->path; }
double clip_model_logit_scale(const clip_model *m) { return m->logit_scale; }

int clip_model_encode_image(const clip_model *m, const float *px, int B, float *embeds, char *err, size_t errlen)
{
    return clip_vision_forward(m->vision, px, B, NULL, embeds, err, errlen);
}

int clip_model_encode_text(const clip_model *m, const int32_t *ids, int B, int T, float *embeds, char *err,
                           size_t errlen)
{
    return clip_text_forward(m->text, ids, B, T, 1, NULL, NULL, NULL, embeds, err, errlen);
}
