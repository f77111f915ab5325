/* clip_vision: the CLIP ViT image tower over stored-dtype weights (see clip_vision.h); the transformer layers are
 * clip_encoder's, the same code as the text tower's. */
#include "clip_vision.h"
#include "log.h"
#include "mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clip_vision {
    clip_vision_config cfg;
    char *label;
    nn_tensor patch, cls, pos, pre_w, pre_b, post_w, post_b, proj;
    int proj_is_openclip;        /* proj [D, E] instead of [E, D] */
    clip_encoder_layer *layer;
};

static clip_encoder_dims dims_of(const clip_vision_config *c)
{
    clip_encoder_dims d = {c->hidden, c->heads, c->intermediate, c->act, c->ln_eps};
    return d;
}

int clip_vision_config_parse(const json_doc *d, const json_value *obj, clip_vision_config *c, char *err,
                             size_t errlen)
{
    const char *path = json_label(d);
    memset(c, 0, sizeof *c);
    int64_t v[7];
    double eps;
    const char *act;
    if (json_get_int_or(d, obj, "hidden_size", 1, 1 << 16, 768, &v[0], err, errlen) ||
        json_get_int_or(d, obj, "num_hidden_layers", 1, 1024, 12, &v[1], err, errlen) ||
        json_get_int_or(d, obj, "num_attention_heads", 1, 1024, 12, &v[2], err, errlen) ||
        json_get_int_or(d, obj, "intermediate_size", 1, 1 << 20, 3072, &v[3], err, errlen) ||
        json_get_int_or(d, obj, "image_size", 1, 1 << 14, 224, &v[4], err, errlen) ||
        json_get_int_or(d, obj, "patch_size", 1, 1 << 14, 32, &v[5], err, errlen) ||
        json_get_int_or(d, obj, "num_channels", 3, 3, 3, &v[6], err, errlen) ||
        json_get_double_or(d, obj, "layer_norm_eps", 1e-5, &eps, err, errlen) ||
        json_get_string_or(d, obj, "hidden_act", "quick_gelu", &act, err, errlen))
        return -1;
    c->hidden = (int)v[0], c->layers = (int)v[1], c->heads = (int)v[2], c->intermediate = (int)v[3];
    c->image_size = (int)v[4], c->patch_size = (int)v[5];
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

static int cfg_check(const clip_vision_config *c, const char *label, char *err, size_t errlen)
{
    if (c->hidden < 1 || c->layers < 1 || c->heads < 1 || c->intermediate < 1 || c->image_size < 1 ||
        c->patch_size < 1 || c->proj_dim < 0 || !(c->ln_eps > 0.0f) || c->image_size % c->patch_size ||
        c->hidden % c->heads) {
        log_errf(err, errlen, label, "image tower config out of range (hidden %d, layers %d, heads %d (must divide "
                 "hidden), intermediate %d, image %d, patch %d (must divide image), projection %d)", c->hidden,
                 c->layers, c->heads, c->intermediate, c->image_size, c->patch_size, c->proj_dim);
        return -1;
    }
    const long g = c->image_size / c->patch_size;
    if (g * g + 1 > 1024) {
        log_errf(err, errlen, label, "image %d / patch %d gives %ld tokens (at most 1024)", c->image_size,
                 c->patch_size, g * g + 1);
        return -1;
    }
    return 0;
}

clip_vision *clip_vision_load_names(const safetensors *st, const char *label, const char *prefix, int open_clip,
                                    const clip_vision_config *cfg, char *err, size_t errlen)
{
    if (cfg_check(cfg, label, err, errlen)) return NULL;
    clip_vision *m = mem_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->label = mem_strdup(label);
    m->layer = mem_calloc((size_t)cfg->layers, sizeof *m->layer);
    clip_binder bd = {st, label, prefix, err, errlen, 0};
    const int64_t D = cfg->hidden, P = cfg->patch_size, G = cfg->image_size / cfg->patch_size, E = cfg->proj_dim;
    const int64_t s_patch[4] = {D, 3, P, P}, s_d[1] = {D}, s_pos[2] = {G * G + 1, D};
    const int64_t s_hf_proj[2] = {E, D}, s_oc_proj[2] = {D, E};
    const clip_encoder_dims dims = dims_of(cfg);
    const char *n_patch, *n_cls, *n_pos, *n_prew, *n_preb, *n_postw, *n_postb, *n_proj, *n_layers;
    if (!open_clip) {
        n_patch = "vision_model.embeddings.patch_embedding.weight", n_cls = "vision_model.embeddings.class_embedding";
        n_pos = "vision_model.embeddings.position_embedding.weight";
        n_prew = "vision_model.pre_layrnorm.weight", n_preb = "vision_model.pre_layrnorm.bias";
        n_postw = "vision_model.post_layernorm.weight", n_postb = "vision_model.post_layernorm.bias";
        n_proj = "visual_projection.weight", n_layers = "vision_model.encoder.layers.";
    } else {
        n_patch = "visual.conv1.weight", n_cls = "visual.class_embedding", n_pos = "visual.positional_embedding";
        n_prew = "visual.ln_pre.weight", n_preb = "visual.ln_pre.bias";
        n_postw = "visual.ln_post.weight", n_postb = "visual.ln_post.bias";
        n_proj = "visual.proj", n_layers = "visual.transformer.resblocks.";
        m->proj_is_openclip = 1;
    }
    clip_encoder_bind(&bd, &m->patch, n_patch, 4, s_patch);
    clip_encoder_bind(&bd, &m->cls, n_cls, 1, s_d);
    clip_encoder_bind(&bd, &m->pos, n_pos, 2, s_pos);
    clip_encoder_bind(&bd, &m->pre_w, n_prew, 1, s_d);
    clip_encoder_bind(&bd, &m->pre_b, n_preb, 1, s_d);
    for (int L = 0; L < cfg->layers && !bd.failed; L++)
        clip_encoder_bind_layer(&bd, &m->layer[L], n_layers, L, open_clip, &dims);
    clip_encoder_bind(&bd, &m->post_w, n_postw, 1, s_d);
    clip_encoder_bind(&bd, &m->post_b, n_postb, 1, s_d);
    if (E) clip_encoder_bind(&bd, &m->proj, n_proj, 2, open_clip ? s_oc_proj : s_hf_proj);
    if (bd.failed) {
        clip_vision_free(m);
        return NULL;
    }
    return m;
}

void clip_vision_free(clip_vision *m)
{
    if (!m) return;
    free(m->layer);
    free(m->label);
    free(m);
}

const clip_vision_config *clip_vision_cfg(const clip_vision *m) { return &m->cfg; }

int clip_vision_forward(const clip_vision *m, const float *pixels, int B, float *pooled, float *embeds, char *err,
                        size_t errlen)
{
    const clip_vision_config *c = &m->cfg;
    const int D = c->hidden, P = c->patch_size, S = c->image_size, G = S / P, T = G * G + 1, K = 3 * P * P;
    if (B < 1) {
        log_errf(err, errlen, m->label, "%d images", B);
        return -1;
    }
    if (embeds && !c->proj_dim) {
        log_errf(err, errlen, m->label, "image embeddings requested but the model has no visual projection");
        return -1;
    }
    const size_t N = (size_t)B * T, NP = (size_t)B * G * G;
    const clip_encoder_dims dims = dims_of(c);
    clip_encoder_ws *ws = clip_encoder_ws_alloc(&dims, N);
    float *x = mem_alloc(N * D * sizeof(float));
    float *cols = mem_alloc(NP * K * sizeof(float)), *pe = mem_alloc(NP * D * sizeof(float));
    float *w = mem_alloc((size_t)D * K * sizeof(float)), *vec = mem_alloc((size_t)2 * D * sizeof(float));
    float *scratch = mem_alloc((2 * (size_t)D + 2 * N) * sizeof(float));

    /* the stride-P conv as one GEMM: each patch unrolled in the weight's (channel, row, column) order */
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *col = cols + (((size_t)b * G + gy) * G + gx) * K;
                for (int ch = 0; ch < 3; ch++)
                    for (int ky = 0; ky < P; ky++)
                        memcpy(col + ((size_t)ch * P + ky) * P,
                               pixels + (((size_t)b * 3 + ch) * S + (size_t)gy * P + ky) * S + (size_t)gx * P,
                               (size_t)P * sizeof(float));
            }
    clip_encoder_widen(w, &m->patch, 0, (size_t)D * K);
    clip_encoder_linear(pe, cols, w, NULL, (int)NP, K, D);
    clip_encoder_widen(vec, &m->cls, 0, (size_t)D);
    for (int b = 0; b < B; b++) {
        memcpy(x + (size_t)b * T * D, vec, (size_t)D * sizeof(float));
        memcpy(x + ((size_t)b * T + 1) * D, pe + (size_t)b * G * G * D, (size_t)G * G * D * sizeof(float));
    }
    for (int t = 0; t < T; t++) {
        clip_encoder_widen(vec, &m->pos, (size_t)t * D, (size_t)D);
        for (int b = 0; b < B; b++) {
            float *r = x + ((size_t)b * T + t) * D;
            for (int k = 0; k < D; k++) r[k] += vec[k];
        }
    }
    clip_encoder_layernorm_t(x, x, &m->pre_w, &m->pre_b, (int)N, D, c->ln_eps, scratch);
    for (int L = 0; L < c->layers; L++) clip_encoder_layer_forward(x, B, T, &m->layer[L], &dims, 0, ws);
    /* the class token of each image, then post-LN */
    float *pool = pooled ? pooled : mem_alloc((size_t)B * D * sizeof(float));
    for (int b = 0; b < B; b++) memcpy(pool + (size_t)b * D, x + (size_t)b * T * D, (size_t)D * sizeof(float));
    clip_encoder_layernorm_t(pool, pool, &m->post_w, &m->post_b, B, D, c->ln_eps, scratch);
    if (embeds) {
        const int E = c->proj_dim;
        float *Pm = mem_alloc((size_t)E * D * sizeof(float));
        clip_encoder_widen(Pm, &m->proj, 0, (size_t)E * D);
        if (m->proj_is_openclip)
            clip_encoder_matmul(embeds, pool, Pm, B, D, E);
        else
            clip_encoder_linear(embeds, pool, Pm, NULL, B, D, E);
        free(Pm);
    }
    if (pool != pooled) free(pool);
    clip_encoder_ws_free(ws);
    free(x), free(cols), free(pe), free(w), free(vec), free(scratch);
    return 0;
}
