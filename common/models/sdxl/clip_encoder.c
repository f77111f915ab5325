/* clip_encoder: CLIP's pre-LN transformer layer over stored-dtype weights, shared by the text and image towers
 * (see clip_encoder.h). Every call to an engine op is in the "ops" section, so both towers move onto the backend
 * table by changing those few functions. */
#include "clip_encoder.h"
#include "gemm.h"
#include "log.h"
#include "mem.h"
#include "norm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clip_encoder_act_parse(const char *s, clip_act *act)
{
    if (!strcmp(s, "quick_gelu")) {
        *act = CLIP_ACT_QUICK_GELU;
        return 0;
    }
    if (!strcmp(s, "gelu")) {
        *act = CLIP_ACT_GELU;
        return 0;
    }
    return -1;
}

const char *clip_encoder_act_name(clip_act act) { return act == CLIP_ACT_GELU ? "gelu" : "quick_gelu"; }

/* ---- ops: the only places that call the engine ---- */

void clip_encoder_linear(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC)
{
    nn_sgemm(0, 1, N, OC, IC, 1.0f, in, IC, W, IC, 0.0f, out, OC);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += b[o];
}

void clip_encoder_matmul(float *out, const float *A, const float *Bm, int M, int K, int N)
{
    nn_sgemm(0, 0, M, N, K, 1.0f, A, K, Bm, N, 0.0f, out, N);
}

void clip_encoder_layernorm(float *out, const float *in, const float *w, const float *b, int N, int D, float eps,
                            float *stats)
{
    nn_layernorm_forward(out, stats, stats + N, in, w, b, N, D, eps);
}

void clip_encoder_layernorm_t(float *out, const float *in, const nn_tensor *w_t, const nn_tensor *b_t, int N, int D,
                              float eps, float *scratch)
{
    clip_encoder_widen(scratch, w_t, 0, (size_t)D);
    clip_encoder_widen(scratch + D, b_t, 0, (size_t)D);
    clip_encoder_layernorm(out, in, scratch, scratch + D, N, D, eps, scratch + 2 * D);
}

static void op_act(float *x, size_t n, clip_act act)
{
    if (act == CLIP_ACT_QUICK_GELU) {
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
    } else {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
    }
}

/* Multi-head attention, causal or not. qkv[B*T, 3D] (q | k | v per row), out[B*T, D]. */
static void op_attention(float *out, const float *qkv, int B, int T, int D, int H, int causal)
{
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float p[1024];   /* T <= 1024 (checked by the towers) */
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * 3 * D + (size_t)h * hd;
                const int jn = causal ? i + 1 : T;   /* the causal mask: position i sees 0..i */
                float mx = -INFINITY;
                for (int j = 0; j < jn; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * D + D + (size_t)h * hd;
                    float s = 0.0f;
                    for (int c = 0; c < hd; c++) s += q[c] * k[c];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0.0;
                for (int j = 0; j < jn; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                const float inv = (float)(1.0 / sum);
                float *o = out + ((size_t)b * T + i) * D + (size_t)h * hd;
                for (int c = 0; c < hd; c++) o[c] = 0.0f;
                for (int j = 0; j < jn; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * 3 * D + 2 * D + (size_t)h * hd;
                    const float w = p[j] * inv;
                    for (int c = 0; c < hd; c++) o[c] += w * v[c];
                }
            }
        }
}

void clip_encoder_widen(float *dst, const nn_tensor *t, size_t off, size_t n)
{
    int64_t shape[1] = {(int64_t)n};
    nn_tensor v = nn_tensor_view((char *)t->data + off * nn_dtype_size(t->dtype), t->dtype, DEVICE_CPU, 1, shape);
    nn_tensor_to_f32(dst, &v);
}

/* ---- binding ---- */
void clip_encoder_bind(clip_binder *bd, nn_tensor *out, const char *name, int ndim, const int64_t *shape)
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
    if (!nn_tensor_shape_is(out, ndim, shape)) {
        char got[96], want[96];
        nn_tensor_shape_str(out, got, sizeof got);
        nn_tensor w = nn_tensor_view(NULL, NN_F32, DEVICE_CPU, ndim, shape);
        nn_tensor_shape_str(&w, want, sizeof want);
        log_errf(bd->err, bd->errlen, bd->label, "tensor '%s': shape %s, expected %s", full, got, want);
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

typedef struct {
    nn_tensor *t;
    const char *name;
    int nd;
    int64_t a, b;
} layer_entry;

static void bind_table(clip_binder *bd, const char *layer_prefix, int L, const layer_entry *tab, size_t n)
{
    char name[512];
    for (size_t k = 0; k < n; k++) {
        snprintf(name, sizeof name, "%s%d.%s", layer_prefix, L, tab[k].name);
        int64_t shape[2] = {tab[k].a, tab[k].b};
        clip_encoder_bind(bd, tab[k].t, name, tab[k].nd, shape);
    }
}

void clip_encoder_bind_layer(clip_binder *bd, clip_encoder_layer *l, const char *layer_prefix, int L, int open_clip,
                             const clip_encoder_dims *dims)
{
    const int64_t D = dims->hidden, I = dims->intermediate;
    if (!open_clip) {
        const layer_entry tab[] = {
            {&l->q_w, "self_attn.q_proj.weight", 2, D, D},   {&l->q_b, "self_attn.q_proj.bias", 1, D, 0},
            {&l->k_w, "self_attn.k_proj.weight", 2, D, D},   {&l->k_b, "self_attn.k_proj.bias", 1, D, 0},
            {&l->v_w, "self_attn.v_proj.weight", 2, D, D},   {&l->v_b, "self_attn.v_proj.bias", 1, D, 0},
            {&l->o_w, "self_attn.out_proj.weight", 2, D, D}, {&l->o_b, "self_attn.out_proj.bias", 1, D, 0},
            {&l->ln1_w, "layer_norm1.weight", 1, D, 0},      {&l->ln1_b, "layer_norm1.bias", 1, D, 0},
            {&l->ln2_w, "layer_norm2.weight", 1, D, 0},      {&l->ln2_b, "layer_norm2.bias", 1, D, 0},
            {&l->fc1_w, "mlp.fc1.weight", 2, I, D},          {&l->fc1_b, "mlp.fc1.bias", 1, I, 0},
            {&l->fc2_w, "mlp.fc2.weight", 2, D, I},          {&l->fc2_b, "mlp.fc2.bias", 1, D, 0},
        };
        bind_table(bd, layer_prefix, L, tab, sizeof tab / sizeof tab[0]);
    } else {
        nn_tensor inw, inb;
        const layer_entry in[] = {{&inw, "attn.in_proj_weight", 2, 3 * D, D}, {&inb, "attn.in_proj_bias", 1, 3 * D, 0}};
        bind_table(bd, layer_prefix, L, in, 2);
        if (bd->failed) return;
        l->q_w = rows(&inw, 0, D), l->k_w = rows(&inw, D, D), l->v_w = rows(&inw, 2 * D, D);
        l->q_b = rows(&inb, 0, D), l->k_b = rows(&inb, D, D), l->v_b = rows(&inb, 2 * D, D);
        const layer_entry tab[] = {
            {&l->o_w, "attn.out_proj.weight", 2, D, D}, {&l->o_b, "attn.out_proj.bias", 1, D, 0},
            {&l->ln1_w, "ln_1.weight", 1, D, 0},        {&l->ln1_b, "ln_1.bias", 1, D, 0},
            {&l->ln2_w, "ln_2.weight", 1, D, 0},        {&l->ln2_b, "ln_2.bias", 1, D, 0},
            {&l->fc1_w, "mlp.c_fc.weight", 2, I, D},    {&l->fc1_b, "mlp.c_fc.bias", 1, I, 0},
            {&l->fc2_w, "mlp.c_proj.weight", 2, D, I},  {&l->fc2_b, "mlp.c_proj.bias", 1, D, 0},
        };
        bind_table(bd, layer_prefix, L, tab, sizeof tab / sizeof tab[0]);
    }
}

/* ---- the layer ---- */
struct clip_encoder_ws {
    size_t N;
    float *h, *qkv, *mid, *stats;                       /* activations */
    float *wqkv, *bqkv, *wo, *w1, *w2, *vec;            /* one layer's widened weights */
};

clip_encoder_ws *clip_encoder_ws_alloc(const clip_encoder_dims *dims, size_t N)
{
    const size_t D = (size_t)dims->hidden, I = (size_t)dims->intermediate;
    clip_encoder_ws *ws = mem_calloc(1, sizeof *ws);
    ws->N = N;
    ws->h = mem_alloc(N * D * sizeof(float));
    ws->qkv = mem_alloc(N * 3 * D * sizeof(float));
    ws->mid = mem_alloc(N * I * sizeof(float));
    ws->stats = mem_alloc(2 * N * sizeof(float));
    ws->wqkv = mem_alloc(3 * D * D * sizeof(float));
    ws->bqkv = mem_alloc(3 * D * sizeof(float));
    ws->wo = mem_alloc(D * D * sizeof(float));
    ws->w1 = mem_alloc(I * D * sizeof(float));
    ws->w2 = mem_alloc(D * I * sizeof(float));
    ws->vec = mem_alloc((6 * D + I) * sizeof(float));
    return ws;
}

void clip_encoder_ws_free(clip_encoder_ws *ws)
{
    if (!ws) return;
    free(ws->h), free(ws->qkv), free(ws->mid), free(ws->stats), free(ws->wqkv), free(ws->bqkv), free(ws->wo);
    free(ws->w1), free(ws->w2), free(ws->vec), free(ws);
}

void clip_encoder_layer_forward(float *x, int B, int T, const clip_encoder_layer *l, const clip_encoder_dims *dims,
                                int causal, clip_encoder_ws *ws)
{
    const int D = dims->hidden, I = dims->intermediate, H = dims->heads;
    const size_t N = (size_t)B * T;
    LOG_CHECK(N <= ws->N && T <= 1024, "clip_encoder: %zu tokens (T %d) for a workspace of %zu", N, T, ws->N);
    float *h = ws->h, *qkv = ws->qkv, *mid = ws->mid, *stats = ws->stats, *wqkv = ws->wqkv, *bqkv = ws->bqkv;
    float *wo = ws->wo, *w1 = ws->w1, *w2 = ws->w2;
    float *bo = ws->vec, *l1w = bo + D, *l1b = bo + 2 * D, *l2w = bo + 3 * D, *l2b = bo + 4 * D, *b2 = bo + 5 * D;
    float *b1 = bo + 6 * D;
    clip_encoder_widen(wqkv, &l->q_w, 0, (size_t)D * D);
    clip_encoder_widen(wqkv + (size_t)D * D, &l->k_w, 0, (size_t)D * D);
    clip_encoder_widen(wqkv + (size_t)2 * D * D, &l->v_w, 0, (size_t)D * D);
    clip_encoder_widen(bqkv, &l->q_b, 0, D), clip_encoder_widen(bqkv + D, &l->k_b, 0, D);
    clip_encoder_widen(bqkv + 2 * D, &l->v_b, 0, D);
    clip_encoder_widen(wo, &l->o_w, 0, (size_t)D * D), clip_encoder_widen(bo, &l->o_b, 0, D);
    clip_encoder_widen(l1w, &l->ln1_w, 0, D), clip_encoder_widen(l1b, &l->ln1_b, 0, D);
    clip_encoder_widen(l2w, &l->ln2_w, 0, D), clip_encoder_widen(l2b, &l->ln2_b, 0, D);
    clip_encoder_widen(w1, &l->fc1_w, 0, (size_t)I * D), clip_encoder_widen(b1, &l->fc1_b, 0, I);
    clip_encoder_widen(w2, &l->fc2_w, 0, (size_t)D * I), clip_encoder_widen(b2, &l->fc2_b, 0, D);

    clip_encoder_layernorm(h, x, l1w, l1b, (int)N, D, dims->ln_eps, stats);
    clip_encoder_linear(qkv, h, wqkv, bqkv, (int)N, D, 3 * D);
    op_attention(h, qkv, B, T, D, H, causal);
    clip_encoder_linear(qkv, h, wo, bo, (int)N, D, D);   /* qkv reused as [N, D] scratch */
    for (size_t i = 0; i < N * D; i++) x[i] += qkv[i];
    clip_encoder_layernorm(h, x, l2w, l2b, (int)N, D, dims->ln_eps, stats);
    clip_encoder_linear(mid, h, w1, b1, (int)N, D, I);
    op_act(mid, N * (size_t)I, dims->act);
    clip_encoder_linear(h, mid, w2, b2, (int)N, I, D);
    for (size_t i = 0; i < N * D; i++) x[i] += h[i];
}
