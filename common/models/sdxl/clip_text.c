/* clip_text: CLIP text transformer forward over stored-dtype weights (see clip_text.h for the network, the name
 * maps and the pooling rule). Every call to an engine op is in the "ops" section below, so the model moves onto
 * the backend table by changing those few functions. */
#include "clip_text.h"
#include "gemm.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "norm.h"
#include "tensor.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    nn_tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} clip_layer;

struct clip_text {
    clip_text_config cfg;
    char *label;
    safetensors *owned;          /* the file, when the model opened it */
    nn_tensor tok, pos, lnf_w, lnf_b, proj;
    int proj_is_openclip;        /* proj [D, E] (x @ P) instead of [E, D] (x P^T) */
    clip_layer *layer;
};

/* ---- ops: the only places that call the engine ---- */

/* out[N, OC] = in[N, IC] W[OC, IC]^T + b[OC] */
static void op_linear(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC)
{
    nn_sgemm(0, 1, N, OC, IC, 1.0f, in, IC, W, IC, 0.0f, out, OC);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += b[o];
}

/* out[M, N] = A[M, K] B[K, N] */
static void op_matmul(float *out, const float *A, const float *Bm, int M, int K, int N)
{
    nn_sgemm(0, 0, M, N, K, 1.0f, A, K, Bm, N, 0.0f, out, N);
}

/* out[N, D] = LayerNorm(in) w + b; stats[2N] scratch */
static void op_layernorm(float *out, const float *in, const float *w, const float *b, int N, int D, float eps,
                         float *stats)
{
    nn_layernorm_forward(out, stats, stats + N, in, w, b, N, D, eps);
}

static void op_act(float *x, size_t n, clip_act act)
{
    if (act == CLIP_ACT_QUICK_GELU) {
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
    } else {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
    }
}

/* Causal multi-head attention. qkv[B*T, 3D] (q | k | v per row), out[B*T, D]; scores[T] scratch per thread. */
static void op_causal_attention(float *out, const float *qkv, int B, int T, int D, int H)
{
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float p[1024];   /* T <= max_pos <= 1024 (checked at load) */
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * 3 * D + (size_t)h * hd;
                float mx = -INFINITY;
                for (int j = 0; j <= i; j++) {   /* the causal mask: position i sees 0..i */
                    const float *k = qkv + ((size_t)b * T + j) * 3 * D + D + (size_t)h * hd;
                    float s = 0.0f;
                    for (int c = 0; c < hd; c++) s += q[c] * k[c];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                const float inv = (float)(1.0 / sum);
                float *o = out + ((size_t)b * T + i) * D + (size_t)h * hd;
                for (int c = 0; c < hd; c++) o[c] = 0.0f;
                for (int j = 0; j <= i; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * 3 * D + 2 * D + (size_t)h * hd;
                    const float w = p[j] * inv;
                    for (int c = 0; c < hd; c++) o[c] += w * v[c];
                }
            }
        }
}

/* n elements of t from element offset off, widened to f32 */
static void widen(float *dst, const nn_tensor *t, size_t off, size_t n)
{
    int64_t shape[1] = {(int64_t)n};
    nn_tensor v = nn_tensor_view((char *)t->data + off * nn_dtype_size(t->dtype), t->dtype, DEVICE_CPU, 1, shape);
    nn_tensor_to_f32(dst, &v);
}

/* ---- loading ---- */
typedef struct {
    const safetensors *st;
    const char *label, *prefix;
    char *err;
    size_t errlen;
    int failed;
} binder;

/* the tensor prefix+name with exactly this shape (ndim 1 or 2), or a one-line error */
static void bind(binder *bd, nn_tensor *out, const char *name, int ndim, int64_t d0, int64_t d1)
{
    if (bd->failed) return;
    char full[512];
    snprintf(full, sizeof full, "%s%s", bd->prefix, name);
    const safetensors_tensor *t = safetensors_find(bd->st, full);
    if (!t) {
        log_errf(bd->err, bd->errlen, bd->label, "tensor '%s' is missing", full);
        bd->failed = 1;
        return;
    }
    if (nn_tensor_from_safetensors(out, t, bd->label, bd->err, bd->errlen)) {
        bd->failed = 1;
        return;
    }
    int64_t want[2] = {d0, d1};
    if (!nn_tensor_shape_is(out, ndim, want)) {
        char got[96];
        nn_tensor_shape_str(out, got, sizeof got);
        if (ndim == 1)
            log_errf(bd->err, bd->errlen, bd->label, "tensor '%s': shape %s, expected [%lld]", full, got, (long long)d0);
        else
            log_errf(bd->err, bd->errlen, bd->label, "tensor '%s': shape %s, expected [%lld, %lld]", full, got,
                     (long long)d0, (long long)d1);
        bd->failed = 1;
    }
}

/* rows [r0, r0 + n) of a 2-D (or 1-D) tensor as a view */
static nn_tensor rows(const nn_tensor *t, int64_t r0, int64_t n)
{
    int64_t shape[2] = {n, t->ndim == 2 ? t->shape[1] : 1};
    size_t stride = t->ndim == 2 ? (size_t)t->shape[1] : 1;
    return nn_tensor_view((char *)t->data + (size_t)r0 * stride * nn_dtype_size(t->dtype), t->dtype, t->device,
                          t->ndim, shape);
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
    binder bd = {st, label, prefix, err, errlen, 0};
    const int64_t V = cfg->vocab_size, D = cfg->hidden, P = cfg->max_pos, I = cfg->intermediate, E = cfg->proj_dim;
    char n[256];
    if (!open_clip) {
        bind(&bd, &m->tok, "text_model.embeddings.token_embedding.weight", 2, V, D);
        bind(&bd, &m->pos, "text_model.embeddings.position_embedding.weight", 2, P, D);
        for (int L = 0; L < cfg->layers && !bd.failed; L++) {
            clip_layer *l = &m->layer[L];
            struct {
                nn_tensor *t;
                const char *fmt;
                int nd;
                int64_t a, b;
            } tab[] = {
                {&l->q_w, "self_attn.q_proj.weight", 2, D, D},   {&l->q_b, "self_attn.q_proj.bias", 1, D, 0},
                {&l->k_w, "self_attn.k_proj.weight", 2, D, D},   {&l->k_b, "self_attn.k_proj.bias", 1, D, 0},
                {&l->v_w, "self_attn.v_proj.weight", 2, D, D},   {&l->v_b, "self_attn.v_proj.bias", 1, D, 0},
                {&l->o_w, "self_attn.out_proj.weight", 2, D, D}, {&l->o_b, "self_attn.out_proj.bias", 1, D, 0},
                {&l->ln1_w, "layer_norm1.weight", 1, D, 0},      {&l->ln1_b, "layer_norm1.bias", 1, D, 0},
                {&l->ln2_w, "layer_norm2.weight", 1, D, 0},      {&l->ln2_b, "layer_norm2.bias", 1, D, 0},
                {&l->fc1_w, "mlp.fc1.weight", 2, I, D},          {&l->fc1_b, "mlp.fc1.bias", 1, I, 0},
                {&l->fc2_w, "mlp.fc2.weight", 2, D, I},          {&l->fc2_b, "mlp.fc2.bias", 1, D, 0},
            };
            for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++) {
                snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", L, tab[k].fmt);
                bind(&bd, tab[k].t, n, tab[k].nd, tab[k].a, tab[k].b);
            }
        }
        bind(&bd, &m->lnf_w, "text_model.final_layer_norm.weight", 1, D, 0);
        bind(&bd, &m->lnf_b, "text_model.final_layer_norm.bias", 1, D, 0);
        if (E) bind(&bd, &m->proj, "text_projection.weight", 2, E, D);
    } else {
        bind(&bd, &m->tok, "token_embedding.weight", 2, V, D);
        bind(&bd, &m->pos, "positional_embedding", 2, P, D);
        for (int L = 0; L < cfg->layers && !bd.failed; L++) {
            clip_layer *l = &m->layer[L];
            nn_tensor inw, inb;
            snprintf(n, sizeof n, "transformer.resblocks.%d.attn.in_proj_weight", L);
            bind(&bd, &inw, n, 2, 3 * D, D);
            snprintf(n, sizeof n, "transformer.resblocks.%d.attn.in_proj_bias", L);
            bind(&bd, &inb, n, 1, 3 * D, 0);
            if (bd.failed) break;
            l->q_w = rows(&inw, 0, D), l->k_w = rows(&inw, D, D), l->v_w = rows(&inw, 2 * D, D);
            l->q_b = rows(&inb, 0, D), l->k_b = rows(&inb, D, D), l->v_b = rows(&inb, 2 * D, D);
            struct {
                nn_tensor *t;
                const char *fmt;
                int nd;
                int64_t a, b;
            } tab[] = {
                {&l->o_w, "attn.out_proj.weight", 2, D, D}, {&l->o_b, "attn.out_proj.bias", 1, D, 0},
                {&l->ln1_w, "ln_1.weight", 1, D, 0},        {&l->ln1_b, "ln_1.bias", 1, D, 0},
                {&l->ln2_w, "ln_2.weight", 1, D, 0},        {&l->ln2_b, "ln_2.bias", 1, D, 0},
                {&l->fc1_w, "mlp.c_fc.weight", 2, I, D},    {&l->fc1_b, "mlp.c_fc.bias", 1, I, 0},
                {&l->fc2_w, "mlp.c_proj.weight", 2, D, I},  {&l->fc2_b, "mlp.c_proj.bias", 1, D, 0},
            };
            for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++) {
                snprintf(n, sizeof n, "transformer.resblocks.%d.%s", L, tab[k].fmt);
                bind(&bd, tab[k].t, n, tab[k].nd, tab[k].a, tab[k].b);
            }
        }
        bind(&bd, &m->lnf_w, "ln_final.weight", 1, D, 0);
        bind(&bd, &m->lnf_b, "ln_final.bias", 1, D, 0);
        if (E) bind(&bd, &m->proj, "text_projection", 2, D, E);
        m->proj_is_openclip = 1;
    }
    if (bd.failed) {
        clip_text_free(m);
        return NULL;
    }
    return m;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

clip_text *clip_text_load_dir(const char *dir, const char *variant, char *err, size_t errlen)
{
    char path[4096], wpath[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *d = json_load(path, err, errlen);
    if (!d) return NULL;
    const json_value *r = json_root(d);
    clip_text_config c = {0};
    int64_t v[8];
    double eps;
    const char *act;
    int bad = json_get_int(d, r, "vocab_size", 1, 1 << 24, &v[0], err, errlen) ||
              json_get_int(d, r, "hidden_size", 1, 1 << 16, &v[1], err, errlen) ||
              json_get_int(d, r, "num_hidden_layers", 1, 1024, &v[2], err, errlen) ||
              json_get_int(d, r, "num_attention_heads", 1, 1024, &v[3], err, errlen) ||
              json_get_int(d, r, "intermediate_size", 1, 1 << 20, &v[4], err, errlen) ||
              json_get_int(d, r, "max_position_embeddings", 1, 1024, &v[5], err, errlen) ||
              json_get_int_or(d, r, "eos_token_id", 0, 1 << 24, 2, &v[6], err, errlen) ||
              json_get_double_or(d, r, "layer_norm_eps", 1e-5, &eps, err, errlen) ||
              json_get_string(d, r, "hidden_act", &act, err, errlen);
    /* the projection: CLIPTextModelWithProjection (architectures), with projection_dim */
    int with_proj = 0;
    const json_value *arch = json_get(r, "architectures");
    for (size_t k = 0; k < json_len(arch); k++) {
        const json_value *a = json_at(arch, k);
        if (a->type == JSON_STRING && strcmp(a->u.str.s, "CLIPTextModelWithProjection") == 0) with_proj = 1;
    }
    if (!bad && with_proj) bad = json_get_int(d, r, "projection_dim", 1, 1 << 16, &v[7], err, errlen);
    if (!bad) {
        c.vocab_size = (int)v[0], c.hidden = (int)v[1], c.layers = (int)v[2], c.heads = (int)v[3];
        c.intermediate = (int)v[4], c.max_pos = (int)v[5], c.eos_token_id = (int)v[6];
        c.proj_dim = with_proj ? (int)v[7] : 0;
        c.ln_eps = (float)eps;
        if (!strcmp(act, "quick_gelu")) {
            c.act = CLIP_ACT_QUICK_GELU;
        } else if (!strcmp(act, "gelu")) {
            c.act = CLIP_ACT_GELU;
        } else {
            log_errf(err, errlen, path, "key 'hidden_act': \"%s\" is not quick_gelu or gelu", act);
            bad = 1;
        }
        if (!(eps > 0 && eps < 1)) {
            log_errf(err, errlen, path, "key 'layer_norm_eps': %g is not in (0, 1)", eps);
            bad = 1;
        }
    }
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

/* ---- forward ---- */
int clip_text_forward(const clip_text *m, const int32_t *ids, int B, int T, int layer, float *hidden, float *last,
                      float *pooled, float *embeds, char *err, size_t errlen)
{
    const clip_text_config *c = &m->cfg;
    const int D = c->hidden, I = c->intermediate, H = c->heads;
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
    /* activations and one layer's widened weights */
    float *x = mem_alloc(N * D * sizeof(float)), *h = mem_alloc(N * D * sizeof(float));
    float *qkv = mem_alloc(N * 3 * D * sizeof(float)), *mid = mem_alloc(N * (size_t)I * sizeof(float));
    float *stats = mem_alloc(2 * N * sizeof(float));
    float *wqkv = mem_alloc((size_t)3 * D * D * sizeof(float)), *bqkv = mem_alloc((size_t)3 * D * sizeof(float));
    float *wo = mem_alloc((size_t)D * D * sizeof(float)), *w1 = mem_alloc((size_t)I * D * sizeof(float));
    float *w2 = mem_alloc((size_t)D * I * sizeof(float)), *vec = mem_alloc((size_t)(8 * D + I) * sizeof(float));
    float *bo = vec, *l1w = vec + D, *l1b = vec + 2 * D, *l2w = vec + 3 * D, *l2b = vec + 4 * D, *b2 = vec + 5 * D;
    float *b1 = vec + 6 * D, *row = vec + 6 * D + I;

    for (size_t i = 0; i < N; i++) {
        widen(x + i * D, &m->tok, (size_t)ids[i] * D, (size_t)D);
        widen(row, &m->pos, (i % (size_t)T) * D, (size_t)D);
        for (int k = 0; k < D; k++) x[i * D + k] += row[k];
    }
    for (int L = 0; L < nrun; L++) {
        const clip_layer *l = &m->layer[L];
        widen(wqkv, &l->q_w, 0, (size_t)D * D);
        widen(wqkv + (size_t)D * D, &l->k_w, 0, (size_t)D * D);
        widen(wqkv + (size_t)2 * D * D, &l->v_w, 0, (size_t)D * D);
        widen(bqkv, &l->q_b, 0, D), widen(bqkv + D, &l->k_b, 0, D), widen(bqkv + 2 * D, &l->v_b, 0, D);
        widen(wo, &l->o_w, 0, (size_t)D * D), widen(bo, &l->o_b, 0, D);
        widen(l1w, &l->ln1_w, 0, D), widen(l1b, &l->ln1_b, 0, D), widen(l2w, &l->ln2_w, 0, D);
        widen(l2b, &l->ln2_b, 0, D);
        widen(w1, &l->fc1_w, 0, (size_t)I * D), widen(b1, &l->fc1_b, 0, I);
        widen(w2, &l->fc2_w, 0, (size_t)D * I), widen(b2, &l->fc2_b, 0, D);

        op_layernorm(h, x, l1w, l1b, (int)N, D, c->ln_eps, stats);
        op_linear(qkv, h, wqkv, bqkv, (int)N, D, 3 * D);
        op_causal_attention(h, qkv, B, T, D, H);
        op_linear(qkv, h, wo, bo, (int)N, D, D);   /* qkv reused as [N, D] scratch */
        for (size_t i = 0; i < N * D; i++) x[i] += qkv[i];
        op_layernorm(h, x, l2w, l2b, (int)N, D, c->ln_eps, stats);
        op_linear(mid, h, w1, b1, (int)N, D, I);
        op_act(mid, N * (size_t)I, c->act);
        op_linear(h, mid, w2, b2, (int)N, I, D);
        for (size_t i = 0; i < N * D; i++) x[i] += h[i];
        if (hidden && L + 1 == layer) memcpy(hidden, x, N * D * sizeof(float));
    }
    if (need_final) {
        widen(l1w, &m->lnf_w, 0, D), widen(l1b, &m->lnf_b, 0, D);
        op_layernorm(h, x, l1w, l1b, (int)N, D, c->ln_eps, stats);
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
            widen(P, &m->proj, 0, (size_t)E * D);
            if (m->proj_is_openclip)   /* P[D, E]: embeds = pool P */
                op_matmul(embeds, pool, P, B, D, E);
            else                       /* P[E, D]: embeds = pool P^T */
                op_linear(embeds, pool, P, NULL, B, D, E);
            free(P);
        }
        if (pool != pooled) free(pool);
    }
    free(x), free(h), free(qkv), free(mid), free(stats), free(wqkv), free(bqkv), free(wo), free(w1), free(w2);
    free(vec);
    return 0;
}
