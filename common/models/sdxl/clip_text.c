/* clip_text: CLIP text transformer forward over stored-dtype weights (see clip_text.h for the network, the name
 * maps and the pooling rule). The layers and the engine ops are clip_encoder's, shared with the image tower. */
#include "clip_text.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct clip_text {
    clip_text_config cfg;
    char *label;
    safetensors *owned;          /* the file, when the model opened it */
    nn_tensor tok, pos, lnf_w, lnf_b, proj;
    int proj_is_openclip;        /* proj [D, E] (x @ P) instead of [E, D] (x P^T) */
    clip_encoder_layer *layer;
};

static clip_encoder_dims dims_of(const clip_text_config *c)
{
    clip_encoder_dims d = {c->hidden, c->heads, c->intermediate, c->act, c->ln_eps};
    return d;
}

/* a 1-D or 2-D shape for the binder */
static void bind2(clip_binder *bd, nn_tensor *out, const char *name, int ndim, int64_t d0, int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    clip_encoder_bind(bd, out, name, ndim, shape);
}

static int cfg_check(const clip_text_config *c, const char *label, char *err, size_t errlen)
{
    if (c->vocab_size < 1 || c->hidden < 1 || c->layers < 1 || c->heads < 1 || c->intermediate < 1 ||
        c->max_pos < 1 || c->max_pos > 1024 || c->proj_dim < 0 || !(c->ln_eps > 0.0f)) {
        log_errf(err, errlen, label, "text encoder config out of range (vocab %d, hidden %d, layers %d, heads %d, "
                 "intermediate %d, positions %d (at most 1024), projection %d)", c->vocab_size, c->hidden, c->layers,
                 c->heads, c->intermediate, c->max_pos, c->proj_dim);
        return -1;
    }
    if (c->hidden % c->heads) {
        log_errf(err, errlen, label, "hidden size %d is not a multiple of the %d heads", c->hidden, c->heads);
        return -1;
    }
    return 0;
}

clip_text *clip_text_load_names(const safetensors *st, const char *label, const char *prefix, int open_clip,
                                const clip_text_config *cfg, char *err, size_t errlen)
{
    if (cfg_check(cfg, label, err, errlen)) return NULL;
    clip_text *m = mem_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->label = mem_strdup(label);
    m->layer = mem_calloc((size_t)cfg->layers, sizeof *m->layer);
    clip_binder bd = {st, label, prefix, err, errlen, 0};
    const int64_t V = cfg->vocab_size, D = cfg->hidden, P = cfg->max_pos, E = cfg->proj_dim;
    const clip_encoder_dims dims = dims_of(cfg);
    if (!open_clip) {
        bind2(&bd, &m->tok, "text_model.embeddings.token_embedding.weight", 2, V, D);
        bind2(&bd, &m->pos, "text_model.embeddings.position_embedding.weight", 2, P, D);
        for (int L = 0; L < cfg->layers && !bd.failed; L++)
            clip_encoder_bind_layer(&bd, &m->layer[L], "text_model.encoder.layers.", L, 0, &dims);
        bind2(&bd, &m->lnf_w, "text_model.final_layer_norm.weight", 1, D, 0);
        bind2(&bd, &m->lnf_b, "text_model.final_layer_norm.bias", 1, D, 0);
        if (E) bind2(&bd, &m->proj, "text_projection.weight", 2, E, D);
    } else {
        bind2(&bd, &m->tok, "token_embedding.weight", 2, V, D);
        bind2(&bd, &m->pos, "positional_embedding", 2, P, D);
        for (int L = 0; L < cfg->layers && !bd.failed; L++)
            clip_encoder_bind_layer(&bd, &m->layer[L], "transformer.resblocks.", L, 1, &dims);
        bind2(&bd, &m->lnf_w, "ln_final.weight", 1, D, 0);
        bind2(&bd, &m->lnf_b, "ln_final.bias", 1, D, 0);
        if (E) bind2(&bd, &m->proj, "text_projection", 2, D, E);
        m->proj_is_openclip = 1;
    }
    if (bd.failed) {
        clip_text_free(m);
        return NULL;
    }
    return m;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

int clip_text_config_parse(const json_doc *d, const json_value *obj, int defaults, clip_text_config *c, char *err,
                           size_t errlen)
{
    const char *path = json_label(d);
    memset(c, 0, sizeof *c);
    int64_t v[8];
    double eps;
    const char *act;
    int bad;
    if (defaults) {   /* transformers' CLIPTextConfig defaults (ViT-B/32's text tower) for absent keys */
        bad = json_get_int_or(d, obj, "vocab_size", 1, 1 << 24, 49408, &v[0], err, errlen) ||
              json_get_int_or(d, obj, "hidden_size", 1, 1 << 16, 512, &v[1], err, errlen) ||
              json_get_int_or(d, obj, "num_hidden_layers", 1, 1024, 12, &v[2], err, errlen) ||
              json_get_int_or(d, obj, "num_attention_heads", 1, 1024, 8, &v[3], err, errlen) ||
              json_get_int_or(d, obj, "intermediate_size", 1, 1 << 20, 2048, &v[4], err, errlen) ||
              json_get_int_or(d, obj, "max_position_embeddings", 1, 1024, 77, &v[5], err, errlen) ||
              json_get_string_or(d, obj, "hidden_act", "quick_gelu", &act, err, errlen);
    } else {
        bad = json_get_int(d, obj, "vocab_size", 1, 1 << 24, &v[0], err, errlen) ||
              json_get_int(d, obj, "hidden_size", 1, 1 << 16, &v[1], err, errlen) ||
              json_get_int(d, obj, "num_hidden_layers", 1, 1024, &v[2], err, errlen) ||
              json_get_int(d, obj, "num_attention_heads", 1, 1024, &v[3], err, errlen) ||
              json_get_int(d, obj, "intermediate_size", 1, 1 << 20, &v[4], err, errlen) ||
              json_get_int(d, obj, "max_position_embeddings", 1, 1024, &v[5], err, errlen) ||
              json_get_string(d, obj, "hidden_act", &act, err, errlen);
    }
    bad = bad || json_get_int_or(d, obj, "eos_token_id", 0, 1 << 24, 2, &v[6], err, errlen) ||
          json_get_double_or(d, obj, "layer_norm_eps", 1e-5, &eps, err, errlen);
    /* the projection: CLIPTextModelWithProjection (architectures), with projection_dim */
    int with_proj = 0;
    const json_value *arch = json_get(obj, "architectures");
    for (size_t k = 0; k < json_len(arch); k++) {
        const json_value *a = json_at(arch, k);
        if (a->type == JSON_STRING && strcmp(a->u.str.s, "CLIPTextModelWithProjection") == 0) with_proj = 1;
    }
    if (!bad && with_proj) bad = json_get_int(d, obj, "projection_dim", 1, 1 << 16, &v[7], err, errlen);
    if (bad) return -1;
    c->vocab_size = (int)v[0], c->hidden = (int)v[1], c->layers = (int)v[2], c->heads = (int)v[3];
    c->intermediate = (int)v[4], c->max_pos = (int)v[5], c->eos_token_id = (int)v[6];
    c->proj_dim = with_proj ? (int)v[7] : 0;
    c->ln_eps = (float)eps;
    if (clip_encoder_act_parse(act, &c->act)) {
        log_errf(err, errlen, path, "key 'hidden_act': \"%s\" is not quick_gelu or gelu", act);
        return -1;
    }
    if (!(eps > 0 && eps < 1)) {
        log_errf(err, errlen, path, "key 'layer_norm_eps': %g is not in (0, 1)", eps);
        return -1;
    }
    return 0;
}

clip_text *clip_text_load_dir(const char *dir, const char *variant, char *err, size_t errlen)
{
    char path[4096], wpath[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *d = json_load(path, err, errlen);
    if (!d) return NULL;
    clip_text_config c;
    int bad = clip_text_config_parse(d, json_root(d), 0, &c, err, errlen);
    json_free(d);
    if (bad) return NULL;
    if (variant && *variant) {
        snprintf(wpath, sizeof wpath, "%s/model.%s.safetensors", dir, variant);
    } else {
        snprintf(wpath, sizeof wpath, "%s/model.safetensors", dir);
        if (!file_exists(wpath)) {
            char alt[4096];
            snprintf(alt, sizeof alt, "%s/model.fp16.safetensors", dir);
            if (file_exists(alt)) snprintf(wpath, sizeof wpath, "%s", alt);
        }
    }
    safetensors *st = safetensors_open(wpath, err, errlen);
    if (!st) return NULL;
    clip_text *m = clip_text_load_names(st, wpath, "", 0, &c, err, errlen);
    if (!m) {
        safetensors_close(st);
        return NULL;
    }
    m->owned = st;
    return m;
}

clip_text *clip_text_load_single(const safetensors *st, const char *label, int which, int heads, char *err,
                                 size_t errlen)
{
    if (which != 0 && which != 1) {
        log_errf(err, errlen, label, "text encoder index %d (0 = CLIP-L, 1 = bigG)", which);
        return NULL;
    }
    const char *prefix = which == 0 ? "conditioner.embedders.0.transformer." : "conditioner.embedders.1.model.";
    const char *tokn = which == 0 ? "text_model.embeddings.token_embedding.weight" : "token_embedding.weight";
    const char *posn = which == 0 ? "text_model.embeddings.position_embedding.weight" : "positional_embedding";
    const char *fc1n = which == 0 ? "text_model.encoder.layers.%d.mlp.fc1.weight" : "transformer.resblocks.%d.mlp.c_fc.weight";
    const char *projn = which == 0 ? "text_projection.weight" : "text_projection";
    char n[512];
    const safetensors_tensor *t[3];
    snprintf(n, sizeof n, "%s%s", prefix, tokn);
    t[0] = safetensors_find(st, n);
    if (!t[0] || t[0]->ndim != 2) {
        log_errf(err, errlen, label, "tensor '%s' is %s", n, t[0] ? "not 2-D" : "missing");
        return NULL;
    }
    snprintf(n, sizeof n, "%s%s", prefix, posn);
    t[1] = safetensors_find(st, n);
    if (!t[1] || t[1]->ndim != 2) {
        log_errf(err, errlen, label, "tensor '%s' is %s", n, t[1] ? "not 2-D" : "missing");
        return NULL;
    }
    clip_text_config c = {0};
    c.vocab_size = (int)t[0]->shape[0];
    c.hidden = (int)t[0]->shape[1];
    c.max_pos = (int)t[1]->shape[0];
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%s%s", prefix, fc1n);
    for (c.layers = 0;; c.layers++) {
        snprintf(n, sizeof n, fmt, c.layers);
        const safetensors_tensor *f = safetensors_find(st, n);
        if (!f) break;
        if (c.layers == 0) c.intermediate = f->ndim == 2 ? (int)f->shape[0] : 0;
    }
    if (c.layers == 0) {
        snprintf(n, sizeof n, fmt, 0);
        log_errf(err, errlen, label, "tensor '%s' is missing (no layers)", n);
        return NULL;
    }
    snprintf(n, sizeof n, "%s%s", prefix, projn);
    t[2] = safetensors_find(st, n);
    if (t[2] && t[2]->ndim == 2) c.proj_dim = (int)(which == 0 ? t[2]->shape[0] : t[2]->shape[1]);
    if (heads <= 0 && c.hidden % 64) {
        log_errf(err, errlen, label, "hidden size %d of text encoder %d is not a multiple of 64: give the head count",
                 c.hidden, which);
        return NULL;
    }
    c.heads = heads > 0 ? heads : c.hidden / 64;
    c.act = which == 0 ? CLIP_ACT_QUICK_GELU : CLIP_ACT_GELU;
    c.ln_eps = 1e-5f;
    c.eos_token_id = 2;
    return clip_text_load_names(st, label, prefix, which, &c, err, errlen);
}

void clip_text_free(clip_text *m)
{
    if (!m) return;
    safetensors_close(m->owned);
    free(m->layer);
    free(m->label);
    free(m);
}

const clip_text_config *clip_text_cfg(const clip_text *m) { return &m->cfg; }
const char *clip_text_dtype_name(const clip_text *m) { return nn_dtype_name(m->tok.dtype); }

/* ---- LoRA targets ---- */
static const char *const module_suffix[6] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                             "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};

size_t clip_text_module_count(const clip_text *m) { return (size_t)m->cfg.layers * 6; }

void clip_text_module_name(const clip_text *m, size_t i, char *buf, size_t len)
{
    (void)m;
    snprintf(buf, len, "text_model.encoder.layers.%zu.%s", i / 6, module_suffix[i % 6]);
}

nn_tensor *clip_text_module_weight(clip_text *m, size_t i)
{
    clip_encoder_layer *l = &m->layer[i / 6];
    nn_tensor *const w[6] = {&l->q_w, &l->k_w, &l->v_w, &l->o_w, &l->fc1_w, &l->fc2_w};
    return w[i % 6];
}

/* ---- forward ---- */
int clip_text_forward(const clip_text *m, const int32_t *ids, int B, int T, int layer, float *hidden, float *last,
                      float *pooled, float *embeds, char *err, size_t errlen)
{
    const clip_text_config *c = &m->cfg;
    const int D = c->hidden;
    if (B < 1 || T < 1 || T > c->max_pos) {
        log_errf(err, errlen, m->label, "%d sequences of %d tokens (at most %d positions)", B, T, c->max_pos);
        return -1;
    }
    if (hidden && (layer < 1 || layer > c->layers)) {
        log_errf(err, errlen, m->label, "hidden states after layer %d requested of %d layers", layer, c->layers);
        return -1;
    }
    if (embeds && !c->proj_dim) {
        log_errf(err, errlen, m->label, "text embeddings requested but the model has no text projection");
        return -1;
    }
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            log_errf(err, errlen, m->label, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i],
                     i, c->vocab_size);
            return -1;
        }
    const int need_final = last || pooled || embeds;
    const int nrun = need_final ? c->layers : layer;
    const size_t N = (size_t)B * T;
    const clip_encoder_dims dims = dims_of(c);
    clip_encoder_ws *ws = clip_encoder_ws_alloc(&dims, N);
    float *x = mem_alloc(N * D * sizeof(float)), *h = mem_alloc(N * D * sizeof(float));
    float *row = mem_alloc((size_t)D * sizeof(float)), *scratch = mem_alloc((2 * (size_t)D + 2 * N) * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        clip_encoder_widen(x + i * D, &m->tok, (size_t)ids[i] * D, (size_t)D);
        clip_encoder_widen(row, &m->pos, (i % (size_t)T) * D, (size_t)D);
        for (int k = 0; k < D; k++) x[i * D + k] += row[k];
    }
    for (int L = 0; L < nrun; L++) {
        clip_encoder_layer_forward(x, B, T, &m->layer[L], &dims, 1, ws);
        if (hidden && L + 1 == layer) memcpy(hidden, x, N * D * sizeof(float));
    }
    if (need_final) {
        clip_encoder_layernorm_t(h, x, &m->lnf_w, &m->lnf_b, (int)N, D, c->ln_eps, scratch);
        if (last) memcpy(last, h, N * D * sizeof(float));
        float *pool = pooled ? pooled : mem_alloc((size_t)B * D * sizeof(float));
        for (int b = 0; b < B; b++) {
            const int32_t *s = ids + (size_t)b * T;
            int at = 0;
            if (c->eos_token_id == 2) {
                for (int t = 1; t < T; t++)
                    if (s[t] > s[at]) at = t;
            } else {
                for (int t = 0; t < T; t++)
                    if (s[t] == c->eos_token_id) {
                        at = t;
                        break;
                    }
            }
            memcpy(pool + (size_t)b * D, h + ((size_t)b * T + at) * D, D * sizeof(float));
        }
        if (embeds) {
            const int E = c->proj_dim;
            float *P = mem_alloc((size_t)E * D * sizeof(float));
            clip_encoder_widen(P, &m->proj, 0, (size_t)E * D);
            if (m->proj_is_openclip)   /* P[D, E]: embeds = pool P */
                clip_encoder_matmul(embeds, pool, P, B, D, E);
            else                       /* P[E, D]: embeds = pool P^T */
                clip_encoder_linear(embeds, pool, P, NULL, B, D, E);
            free(P);
        }
        if (pool != pooled) free(pool);
    }
    clip_encoder_ws_free(ws);
    free(x), free(h), free(row), free(scratch);
    return 0;
}
