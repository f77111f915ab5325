/* nn/scorenet_cuda: the paper's ScoreNet U-Net (src/model_EMNIST.py; paper §5.1, App. G; REFERENCE.md) on a
 * CUDA device, from the twins of nn_cuda.h only (see scorenet_cuda.h). It is scorenet.c line for line: the same
 * stage table, workspace carving, forward (fwd_chunk) and backward (bwd_chunk) walks, DSM chunking and training
 * step, with every host buffer replaced by a device buffer and every layer call by its _cuda twin. Differences:
 *   - the convolutions get one whole-batch device workspace (max over layers of nn_conv*_ws_min * max_batch:
 *     one GEMM per layer call, as nn_cuda.h recommends) instead of the CPU's chunked im2col buffer;
 *   - per-sample scalars (1/std(t) for the score and its gradient, alpha(t) and std(t) when forming x_t and
 *     dL/dx0) are applied as row scalings dst = diag(v) src by nn_rowscale_cuda; the CPU divides by std where
 *     this multiplies by the float 1/std (<= 1 ulp apart);
 *   - the times t stay on the host; t, std(t), 1/std(t), alpha(t) go to the device in one upload per chunk.
 * Whole file under SF_HAVE_CUDA (the twins exist only in a CUDA build). */
#include "scorenet_cuda.h"

#ifdef SF_HAVE_CUDA
#include "adam.h"
#include "conv.h"
#include "ema.h"
#include "log.h"
#include "ws.h"
#include "mem.h"
#include "nn_cuda.h"
#include "params.h"
#include "sde.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMB 256          /* embedding width */
#define NFREQ 128        /* Fourier frequencies */
#define NSTAGE 7         /* GroupNorm stages */
#define GN_EPS 1e-5

/* the CPU model's stage table (scorenet.c), verbatim */
typedef struct {
    const char *conv, *dense, *gn;   /* name stems */
    int transposed, cin, hin, c, h, stride, outpad, groups;
} stage_desc;

static const stage_desc STAGES[NSTAGE] = {
    {"conv1", "dense1", "gnorm1", 0, 1, 28, 32, 26, 1, 0, 4},
    {"conv2", "dense2", "gnorm2", 0, 32, 26, 64, 12, 2, 0, 32},
    {"conv3", "dense3", "gnorm3", 0, 64, 12, 128, 5, 2, 0, 32},
    {"conv4", "dense4", "gnorm4", 0, 128, 5, 256, 2, 2, 0, 32},
    {"tconv4", "dense5", "tgnorm4", 1, 256, 2, 128, 5, 2, 0, 32},
    {"tconv3", "dense6", "tgnorm3", 1, 256, 5, 64, 12, 2, 1, 32},
    {"tconv2", "dense7", "tgnorm2", 1, 128, 12, 32, 26, 2, 1, 32},
};
static const int SKIP[3] = {2, 1, 0};

struct scorenet_cuda {
    sde s;
    nn_adam adam;
    nn_ema ema;
    size_t cap;                       /* max_batch */
    size_t total;                     /* floats per flat parameter buffer (the CPU nn_params total) */
    /* tensor OFFSETS (floats) into each flat buffer, found by name in the CPU model's layout */
    size_t o_fw, o_ew, o_eb, o_t1w, o_t1b;
    size_t o_cw[NSTAGE], o_dw[NSTAGE], o_db[NSTAGE], o_gw[NSTAGE], o_gb[NSTAGE];
    /* device: one flat buffer [5 total] = data | grad | m | v | ema */
    float *pbuf, *data, *grad, *m, *v, *ema_w;
    /* device workspace (capacity cap samples), carved as in scorenet.c */
    float *ws;
    float *t, *std, *inv_std, *alpha; /* [cap] each, consecutive slots of nn_ws_pad16(cap): one upload from hvec */
    float *pstd, *palpha;             /* [cap] std, alpha at the double times of dsm_perturb (x_t in training) */
    float *four, *epre, *temb, *dtemb, *depre;   /* [cap, 256] */
    float *dk[NSTAGE], *ddk[NSTAGE];  /* [cap, C_k] */
    float *a[NSTAGE], *y[NSTAGE], *h[NSTAGE];    /* [cap, C_k, H_k, H_k] */
    float *mean[NSTAGE], *rstd[NSTAGE];          /* [cap, G_k] */
    float *cat[3], *dcat[3];
    float *dh[NSTAGE];
    float *dy, *da;                   /* [cap, max C H W] */
    float *x, *out, *dout;            /* [cap, 784] */
    float *z, *xt, *sc, *dsc;         /* [cap, 784] */
    float *svec;                      /* [cap] scale vector */
    nn_conv_geom geom[NSTAGE], geom_t1;
    float *colbuf;                    /* conv workspace [colbuf_n] */
    size_t colbuf_n;
    /* host scratch */
    float *hvec;                      /* [6 slot]: t | std | 1/std | alpha | pstd | palpha, slot = nn_ws_pad16(cap) */
    float *hsvec, *htime;             /* [cap] */
    float *hz;                        /* [cap, 784] noise drawn for train_step */
};

static size_t stage_numel(int k) { return (size_t)STAGES[k].c * STAGES[k].h * STAGES[k].h; }
static size_t cat_channels(int j) { return (size_t)(j == 0 ? 256 : j == 1 ? 128 : 64); }
static size_t cat_side(int j) { return (size_t)(j == 0 ? 5 : j == 1 ? 12 : 26); }
static size_t cat_numel(int j) { return cat_channels(j) * cat_side(j) * cat_side(j); }

/* scorenet.c's carve, on a device base (NULL: only counts); returns the floats needed for cap samples */
static size_t carve(scorenet_cuda *m, float *base, size_t cap)
{
    size_t off = 0, maxst = 0;
    m->t = nn_ws_take(base, &off, cap);
    m->std = nn_ws_take(base, &off, cap);
    m->inv_std = nn_ws_take(base, &off, cap);
    m->alpha = nn_ws_take(base, &off, cap);
    m->pstd = nn_ws_take(base, &off, cap);
    m->palpha = nn_ws_take(base, &off, cap);
    m->svec = nn_ws_take(base, &off, cap);
    m->four = nn_ws_take(base, &off, cap * EMB);
    m->epre = nn_ws_take(base, &off, cap * EMB);
    m->temb = nn_ws_take(base, &off, cap * EMB);
    m->dtemb = nn_ws_take(base, &off, cap * EMB);
    m->depre = nn_ws_take(base, &off, cap * EMB);
    for (int k = 0; k < NSTAGE; k++) {
        size_t c = (size_t)STAGES[k].c, sz = stage_numel(k), g = (size_t)STAGES[k].groups;
        m->dk[k] = nn_ws_take(base, &off, cap * c);
        m->ddk[k] = nn_ws_take(base, &off, cap * c);
        m->a[k] = nn_ws_take(base, &off, cap * sz);
        m->y[k] = nn_ws_take(base, &off, cap * sz);
        m->h[k] = nn_ws_take(base, &off, cap * sz);
        m->mean[k] = nn_ws_take(base, &off, cap * g);
        m->rstd[k] = nn_ws_take(base, &off, cap * g);
        m->dh[k] = k < 4 ? nn_ws_take(base, &off, cap * sz) : NULL;
        if (sz > maxst) maxst = sz;
    }
    for (int j = 0; j < 3; j++) {
        m->cat[j] = nn_ws_take(base, &off, cap * cat_numel(j));
        m->dcat[j] = nn_ws_take(base, &off, cap * cat_numel(j));
    }
    m->dy = nn_ws_take(base, &off, cap * maxst);
    m->da = nn_ws_take(base, &off, cap * maxst);
    m->x = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->out = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->dout = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->z = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->xt = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->sc = nn_ws_take(base, &off, cap * SCORENET_DIM);
    m->dsc = nn_ws_take(base, &off, cap * SCORENET_DIM);
    return off;
}

/* stage geometries (as scorenet.c's setup_geoms); returns the whole-batch conv workspace in floats */
static size_t setup_geoms(nn_conv_geom *geom, nn_conv_geom *g1, size_t cap)
{
    size_t cn = 0, c;
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        if (d->transposed) {
            geom[k] = nn_conv_transpose2d_geom(d->cin, d->c, d->hin, d->hin, 3, 3, d->stride, 0, d->outpad);
            c = nn_conv_transpose2d_ws_min(&geom[k]) * cap;
        } else {
            geom[k] = nn_conv2d_geom(d->cin, d->c, d->hin, d->hin, 3, 3, d->stride, 0);
            c = nn_conv2d_ws_min(&geom[k]) * cap;
        }
        LOG_CHECK(geom[k].OH == d->h && geom[k].OW == d->h, "scorenet_cuda: stage %d geometry %dx%d, expected %d",
                  k, geom[k].OH, geom[k].OW, d->h);
        if (c > cn) cn = c;
    }
    *g1 = nn_conv_transpose2d_geom(64, 1, 26, 26, 3, 3, 1, 0, 0);
    LOG_CHECK(g1->OH == SCORENET_IMG && g1->OW == SCORENET_IMG, "scorenet_cuda: tconv1 geometry");
    c = nn_conv_transpose2d_ws_min(g1) * cap;
    return c > cn ? c : cn;
}

size_t scorenet_cuda_activation_bytes(size_t max_batch)
{
    scorenet_cuda tmp;
    memset(&tmp, 0, sizeof tmp);
    size_t f = carve(&tmp, NULL, max_batch) + setup_geoms(tmp.geom, &tmp.geom_t1, max_batch);
    return f * sizeof(float);
}

static size_t offset_of(const nn_params *p, const char *name)
{
    size_t i = nn_params_find(p, name);
    LOG_CHECK(i != (size_t)-1, "scorenet_cuda: the CPU model has no tensor '%s'", name);
    return p->t[i].offset;
}

scorenet_cuda *scorenet_cuda_alloc_from(const scorenet *cpu_model, size_t max_batch)
{
    LOG_CHECK(cpu_model, "scorenet_cuda: NULL CPU model");
    LOG_CHECK(max_batch >= 1, "scorenet_cuda: max_batch must be >= 1");
    const nn_params *p = scorenet_params_const(cpu_model);
    LOG_CHECK(nn_params_count(p) == SCORENET_NUM_PARAMS, "scorenet_cuda: %zu trainable parameters, expected %u",
              nn_params_count(p), SCORENET_NUM_PARAMS);
    nn_cuda_init();
    scorenet_cuda *m = mem_calloc(1, sizeof *m);
    m->s = *scorenet_sde(cpu_model);
    m->adam = nn_adam_default();
    m->ema = nn_ema_init(0.999);
    m->cap = max_batch;
    m->total = p->total;
    char nm[NN_PARAMS_NAME_MAX];
    m->o_fw = offset_of(p, "embed.0.W");
    m->o_ew = offset_of(p, "embed.1.weight");
    m->o_eb = offset_of(p, "embed.1.bias");
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        snprintf(nm, sizeof nm, "%s.weight", d->conv);
        m->o_cw[k] = offset_of(p, nm);
        snprintf(nm, sizeof nm, "%s.dense.weight", d->dense);
        m->o_dw[k] = offset_of(p, nm);
        snprintf(nm, sizeof nm, "%s.dense.bias", d->dense);
        m->o_db[k] = offset_of(p, nm);
        snprintf(nm, sizeof nm, "%s.weight", d->gn);
        m->o_gw[k] = offset_of(p, nm);
        snprintf(nm, sizeof nm, "%s.bias", d->gn);
        m->o_gb[k] = offset_of(p, nm);
    }
    m->o_t1w = offset_of(p, "tconv1.weight");
    m->o_t1b = offset_of(p, "tconv1.bias");
    /* parameters: one flat device buffer data | grad | m | v | ema, each the CPU's [total] */
    const size_t T = m->total, bytes = T * sizeof(float);
    m->pbuf = nn_cuda_malloc_floats(5 * T);
    m->data = m->pbuf;
    m->grad = m->pbuf + T;
    m->m = m->pbuf + 2 * T;
    m->v = m->pbuf + 3 * T;
    m->ema_w = m->pbuf + 4 * T;
    nn_cuda_memcpy_h2d(m->data, p->data, bytes);
    nn_cuda_memcpy_h2d(m->ema_w, nn_params_weights(p, 1), bytes);
    if (nn_params_has_train(p)) {
        nn_cuda_memcpy_h2d(m->grad, p->grad, bytes);
        nn_cuda_memcpy_h2d(m->m, p->m, bytes);
        nn_cuda_memcpy_h2d(m->v, p->v, bytes);
    } else {
        nn_cuda_memset(m->grad, 0, 3 * bytes);   /* grad | m | v: a model without trainer state */
    }
    /* workspace */
    scorenet_cuda tmp;
    memset(&tmp, 0, sizeof tmp);
    size_t wsn = carve(&tmp, NULL, max_batch);
    m->ws = nn_cuda_malloc_floats(wsn);
    nn_cuda_memset(m->ws, 0, wsn * sizeof(float));
    carve(m, m->ws, max_batch);
    m->colbuf_n = setup_geoms(m->geom, &m->geom_t1, max_batch);
    m->colbuf = nn_cuda_malloc_floats(m->colbuf_n);
    m->hvec = mem_calloc(6 * nn_ws_pad16(max_batch), sizeof(float));
    m->hsvec = mem_calloc(max_batch, sizeof(float));
    m->htime = mem_calloc(max_batch, sizeof(float));
    m->hz = mem_calloc(max_batch * SCORENET_DIM, sizeof(float));
    /* continue the CPU model's Adam bias correction and EMA warm-up (a resumed checkpoint keeps its counters) */
    scorenet_get_counters(cpu_model, &m->adam.step, &m->ema.num_updates);
    return m;
}

void scorenet_cuda_free(scorenet_cuda *m)
{
    if (!m) return;
    nn_cuda_sync();
    nn_cuda_free(m->pbuf);
    nn_cuda_free(m->ws);
    nn_cuda_free(m->colbuf);
    free(m->hvec);
    free(m->hsvec);
    free(m->htime);
    free(m->hz);
    free(m);
}

size_t scorenet_cuda_max_batch(const scorenet_cuda *m) { return m->cap; }

static const float *buf_of(const scorenet_cuda *m, scorenet_cuda_buf which)
{
    switch (which) {
    case SCORENET_CUDA_DATA: return m->data;
    case SCORENET_CUDA_GRAD: return m->grad;
    case SCORENET_CUDA_M: return m->m;
    case SCORENET_CUDA_V: return m->v;
    case SCORENET_CUDA_EMA: return m->ema_w;
    }
    LOG_FATAL("scorenet_cuda: bad buffer id %d", (int)which);
}

void scorenet_cuda_buffer_to_host(const scorenet_cuda *m, scorenet_cuda_buf which, float *dst)
{
    nn_cuda_memcpy_d2h(dst, buf_of(m, which), m->total * sizeof(float));
}

void scorenet_cuda_buffer_from_host(scorenet_cuda *m, scorenet_cuda_buf which, const float *src)
{
    nn_cuda_memcpy_h2d((float *)buf_of(m, which), src, m->total * sizeof(float));
}

void scorenet_cuda_to_host(const scorenet_cuda *m, scorenet *cpu_model)
{
    nn_params *p = scorenet_params(cpu_model);
    LOG_CHECK(p->total == m->total, "scorenet_cuda_to_host: layout mismatch (%zu vs %zu floats)", p->total,
              m->total);
    nn_cuda_memcpy_d2h(p->data, m->data, m->total * sizeof(float));
    nn_cuda_memcpy_d2h(p->ema, m->ema_w, m->total * sizeof(float));
}

void scorenet_cuda_set_counters(scorenet_cuda *m, long adam_step, long ema_updates)
{
    m->adam.step = adam_step;
    m->ema.num_updates = ema_updates;
}

void scorenet_cuda_get_counters(const scorenet_cuda *m, long *adam_step, long *ema_updates)
{
    if (adam_step) *adam_step = m->adam.step;
    if (ema_updates) *ema_updates = m->ema.num_updates;
}

void scorenet_cuda_zero_grad(scorenet_cuda *m) { nn_cuda_memset(m->grad, 0, m->total * sizeof(float)); }

/* ---------------------------------------------------------------- per-sample helpers */

/* Host: t_i = t[i ts], std_i = (float)sde_std(t_i), 1/std_i, alpha_i = (float)sde_alpha(t_i) (as scorenet.c
 * computes them, at the float time), one upload into m->t | std | inv_std | alpha (consecutive slots of
 * nn_ws_pad16(cap) floats in carve's order, mirrored by hvec; entries past n are stale and unused). */
static void upload_times(scorenet_cuda *m, size_t n, const float *t, size_t ts)
{
    const size_t slot = nn_ws_pad16(m->cap);
    float *ht = m->hvec, *hs = m->hvec + slot, *hi = m->hvec + 2 * slot, *ha = m->hvec + 3 * slot;
    for (size_t i = 0; i < n; i++) {
        ht[i] = t[i * ts];
        hs[i] = (float)sde_std(&m->s, (double)ht[i]);
        hi[i] = 1.0f / hs[i];
        ha[i] = (float)sde_alpha(&m->s, (double)ht[i]);
    }
    nn_cuda_memcpy_h2d(m->t, m->hvec, 4 * slot * sizeof(float));
}

/* dst[n, 784] = diag(v[n]) src[n, 784] + beta dst (v on the device) */
static void rowscale(float *dst, const float *v, const float *src, size_t n, float beta)
{
    nn_rowscale_cuda(dst, v, src, (int)n, SCORENET_DIM, beta);
}

/* ---------------------------------------------------------------- layer wrappers (scorenet.c's, on the GPU) */

#define PW(base, off) ((base) + (off))

static void conv_fwd(scorenet_cuda *m, int k, float *out, const float *in, const float *W, int N)
{
    nn_conv2d_forward_cuda(out, in, W, NULL, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void tconv_fwd(scorenet_cuda *m, int k, float *out, const float *in, const float *W, int N)
{
    nn_conv_transpose2d_forward_cuda(out, in, W, NULL, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void conv_bwd(scorenet_cuda *m, int k, float *din, float *dW, const float *dout, const float *in,
                     const float *W, int N)
{
    nn_conv2d_backward_cuda(din, dW, NULL, dout, in, W, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void tconv_bwd(scorenet_cuda *m, int k, float *din, float *dW, const float *dout, const float *in,
                      const float *W, int N)
{
    nn_conv_transpose2d_backward_cuda(din, dW, NULL, dout, in, W, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void dzero(float *p, size_t n) { nn_cuda_memset(p, 0, n * sizeof(float)); }
static void gn_bwd(float *da, float *dgamma, float *dbeta, const float *dy, const float *a, const float *mean,
                   const float *rstd, const float *gamma, int N, int C, int HW, int G)
{
    dzero(da, (size_t)N * C * HW);
    nn_groupnorm_backward_cuda(da, dgamma, dbeta, dy, a, mean, rstd, gamma, N, C, HW, G);
}
static void cat_bwd(float *d1, float *d2, const float *dout, int C1, int C2, int N, int HW)
{
    dzero(d1, (size_t)N * C1 * HW);
    dzero(d2, (size_t)N * C2 * HW);
    nn_concat_backward_cuda(d1, d2, dout, N, C1, C2, HW);
}

#define SC(k) (STAGES[k].c)
#define SHW(k) (STAGES[k].h * STAGES[k].h)

/* After upload_times for this chunk: runs the network on x [n, 784] (device), leaves every cache and the score
 * in m->sc. */
static void fwd_chunk(scorenet_cuda *m, const float *w, size_t n, const float *x)
{
    const int N = (int)n;
    if (x != m->x) nn_cuda_memcpy_d2d(m->x, x, n * SCORENET_DIM * sizeof(float));
    nn_fourier_forward_cuda(m->four, m->t, 1, PW(w, m->o_fw), N, NFREQ);
    nn_linear_forward_cuda(m->epre, m->four, PW(w, m->o_ew), PW(w, m->o_eb), N, EMB, EMB);
    nn_silu_forward_cuda(m->temb, m->epre, n * EMB);
    for (int k = 0; k < NSTAGE; k++)
        nn_linear_forward_cuda(m->dk[k], m->temb, PW(w, m->o_dw[k]), PW(w, m->o_db[k]), N, EMB, SC(k));
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        const float *in = k == 0 ? m->x : k < 4 ? m->h[k - 1] : k == 4 ? m->h[3] : m->cat[k - 5];
        if (!d->transposed) conv_fwd(m, k, m->a[k], in, PW(w, m->o_cw[k]), N);
        else tconv_fwd(m, k, m->a[k], in, PW(w, m->o_cw[k]), N);
        nn_chan_add_forward_cuda(m->a[k], m->dk[k], N, SC(k), SHW(k), SC(k));
        nn_groupnorm_forward_cuda(m->y[k], m->mean[k], m->rstd[k], m->a[k], PW(w, m->o_gw[k]), PW(w, m->o_gb[k]),
                                  N, SC(k), SHW(k), d->groups, (float)GN_EPS);
        nn_silu_forward_cuda(m->h[k], m->y[k], n * stage_numel(k));
        if (k >= 4)
            nn_concat_forward_cuda(m->cat[k - 4], m->h[k], m->h[SKIP[k - 4]], N, SC(k), SC(SKIP[k - 4]), SHW(k));
    }
    nn_conv_transpose2d_forward_cuda(m->out, m->cat[2], PW(w, m->o_t1w), PW(w, m->o_t1b), N, &m->geom_t1,
                                     m->colbuf, m->colbuf_n);
    rowscale(m->sc, m->inv_std, m->out, n, 0.0f);   /* score = out / std */
}

/* From dL/dscore [n, 784] (device) after fwd_chunk on the same chunk; dscale (device [n]) multiplies dscore
 * per sample (the CPU's / std, times the chunk weight in dsm_chunk). */
static void bwd_chunk(scorenet_cuda *m, const float *w, size_t n, const float *dscore, const float *dscale,
                      int grads, float *dx)
{
    const int N = (int)n;
    float *g = m->grad;
#define GW(off) (grads ? PW(g, off) : NULL)
    rowscale(m->dout, dscale, dscore, n, 0.0f);
    if (grads) dzero(m->dtemb, n * EMB);
    dzero(m->dcat[2], n * cat_numel(2));
    nn_conv_transpose2d_backward_cuda(m->dcat[2], GW(m->o_t1w), GW(m->o_t1b), m->dout, m->cat[2], PW(w, m->o_t1w),
                                      N, &m->geom_t1, m->colbuf, m->colbuf_n);
    for (int k = NSTAGE - 1; k >= 0; k--) {
        const stage_desc *d = &STAGES[k];
        const size_t sz = n * stage_numel(k);
        float *dh;
        if (k >= 4) {
            int sk = SKIP[k - 4];
            cat_bwd(m->dy, m->dh[sk], m->dcat[k - 4], SC(k), SC(sk), N, SHW(k));
            dh = m->dy;
        } else {
            dh = m->dh[k];
        }
        dzero(m->da, sz);
        nn_silu_backward_cuda(m->da, dh, m->y[k], sz);     /* m->da = dL/dy_k */
        float *da = dh;                                     /* dL/dh_k consumed: reused for dL/da_k */
        gn_bwd(da, GW(m->o_gw[k]), GW(m->o_gb[k]), m->da, m->a[k], m->mean[k], m->rstd[k], PW(w, m->o_gw[k]), N,
               SC(k), SHW(k), d->groups);
        if (grads) {
            dzero(m->ddk[k], n * (size_t)SC(k));
            nn_chan_add_backward_cuda(m->ddk[k], da, N, SC(k), SHW(k), SC(k));
            nn_linear_backward_cuda(m->dtemb, GW(m->o_dw[k]), GW(m->o_db[k]), m->ddk[k], m->temb, PW(w, m->o_dw[k]),
                                    N, EMB, SC(k));
        }
        if (k >= 5) {
            float *dcat = m->dcat[k - 5];
            dzero(dcat, n * cat_numel(k - 5));
            tconv_bwd(m, k, dcat, GW(m->o_cw[k]), da, m->cat[k - 5], PW(w, m->o_cw[k]), N);
        } else if (k == 4) {
            dzero(m->dh[3], n * stage_numel(3));
            tconv_bwd(m, k, m->dh[3], GW(m->o_cw[k]), da, m->h[3], PW(w, m->o_cw[k]), N);
        } else if (k > 0) {
            conv_bwd(m, k, m->dh[k - 1], GW(m->o_cw[k]), da, m->h[k - 1], PW(w, m->o_cw[k]), N);   /* += skip */
        } else {
            if (dx) dzero(dx, n * SCORENET_DIM);
            if (dx || grads) conv_bwd(m, 0, dx, GW(m->o_cw[0]), da, m->x, PW(w, m->o_cw[0]), N);
        }
    }
    if (grads) {
        dzero(m->depre, n * EMB);
        nn_silu_backward_cuda(m->depre, m->dtemb, m->epre, n * EMB);
        nn_linear_backward_cuda(NULL, GW(m->o_ew), GW(m->o_eb), m->depre, m->four, PW(w, m->o_ew), N, EMB, EMB);
    }
#undef GW
}

static const float *weights(const scorenet_cuda *m, int use_ema) { return use_ema ? m->ema_w : m->data; }

/* ---------------------------------------------------------------- entry points */

void scorenet_cuda_forward(scorenet_cuda *m, int use_ema, size_t n, const float *t, size_t t_stride,
                           const float *x, float *out)
{
    const float *w = weights(m, use_ema);
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        upload_times(m, nc, t + i0 * t_stride, t_stride);
        fwd_chunk(m, w, nc, x + i0 * SCORENET_DIM);
        nn_cuda_memcpy_d2d(out + i0 * SCORENET_DIM, m->sc, nc * SCORENET_DIM * sizeof(float));
    }
}

void scorenet_cuda_backward(scorenet_cuda *m, int use_ema, size_t n, const float *t, size_t t_stride,
                            const float *x, const float *dscore, int accumulate_grad, float *dx, float *score)
{
    const float *w = weights(m, use_ema);
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        upload_times(m, nc, t + i0 * t_stride, t_stride);
        fwd_chunk(m, w, nc, x + i0 * SCORENET_DIM);
        if (score) nn_cuda_memcpy_d2d(score + i0 * SCORENET_DIM, m->sc, nc * SCORENET_DIM * sizeof(float));
        bwd_chunk(m, w, nc, dscore + i0 * SCORENET_DIM, m->inv_std, accumulate_grad,
                  dx ? dx + i0 * SCORENET_DIM : NULL);
    }
}

void scorenet_cuda_vjp(scorenet_cuda *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                       const float *e, float *score, float *gx)
{
    scorenet_cuda_backward(m, use_ema, n, t, t_stride, x, e, 0, gx, score);
}

/* scorenet.c's dsm_chunk: times already uploaded (m->t, std, inv_std, alpha), z and x_t in m->z, m->xt. The
 * chunk weight nc / ntot is folded into the per-sample scale of dL/dscore (1/std_i, times nc/ntot). */
static double dsm_chunk(scorenet_cuda *m, const float *w, size_t nc, size_t ntot, int grads, float *dxt)
{
    fwd_chunk(m, w, nc, m->xt);
    const int need = grads || dxt;
    double l = nn_dsm_loss_cuda(nc, SCORENET_DIM, m->sc, m->std, m->z, need ? m->dsc : NULL);
    if (need && isfinite(l)) {
        const float *scale = m->inv_std;
        if (nc != ntot) {
            /* CPU: dsc *= (float)(nc / ntot), then / std; here one factor (float)(nc / ntot) / std_i */
            const float f = (float)((double)nc / (double)ntot);
            const float *hi = m->hvec + 2 * nn_ws_pad16(m->cap);
            for (size_t i = 0; i < nc; i++) m->hsvec[i] = f * hi[i];
            nn_cuda_memcpy_h2d(m->svec, m->hsvec, nc * sizeof(float));
            scale = m->svec;
        }
        bwd_chunk(m, w, nc, m->dsc, scale, grads, dxt);
    }
    return l * (double)nc / (double)ntot;
}

double scorenet_cuda_loss_at(scorenet_cuda *m, int use_ema, size_t n, const float *x0, const float *t,
                             const float *z, float *dx0, int accumulate_grad)
{
    const float *w = weights(m, use_ema);
    double loss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        upload_times(m, nc, t + i0, 1);
        const float *x0c = x0 + i0 * SCORENET_DIM, *zc = z + i0 * SCORENET_DIM;
        nn_cuda_memcpy_d2d(m->z, zc, nc * SCORENET_DIM * sizeof(float));
        /* x_t = alpha x0 + std z */
        rowscale(m->xt, m->alpha, x0c, nc, 0.0f);
        rowscale(m->xt, m->std, zc, nc, 1.0f);
        if (dx0) {
            float *dxc = dx0 + i0 * SCORENET_DIM;
            loss += dsm_chunk(m, w, nc, n, accumulate_grad, m->out);
            /* m->out (tconv1 output, no longer needed) holds dL/dx_t; dL/dx0 = alpha dL/dx_t */
            rowscale(dxc, m->alpha, m->out, nc, 0.0f);
        } else {
            loss += dsm_chunk(m, w, nc, n, accumulate_grad, NULL);
        }
    }
    return loss;
}

double scorenet_cuda_train_step(scorenet_cuda *m, size_t n, const float *x0, double t_lo, double t_hi, double lr,
                                rng *r)
{
    scorenet_cuda_zero_grad(m);
    double loss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        /* dsm_perturb's draws, in its order: per sample one uniform (t), then 784 Gaussians (z); like
         * dsm_perturb, x_t uses std and alpha at the double time ti, the network (fwd_chunk, dsm_loss) the
         * float time (float)ti */
        const size_t slot = nn_ws_pad16(m->cap);
        float *hps = m->hvec + 4 * slot, *hpa = m->hvec + 5 * slot;
        for (size_t i = 0; i < nc; i++) {
            double ti = t_lo + (t_hi - t_lo) * rng_uniform(r);
            m->htime[i] = (float)ti;
            hps[i] = (float)sde_std(&m->s, ti);
            hpa[i] = (float)sde_alpha(&m->s, ti);
            rng_gaussian_fill(r, m->hz + i * SCORENET_DIM, SCORENET_DIM);
        }
        nn_cuda_memcpy_h2d(m->pstd, hps, 2 * slot * sizeof(float));   /* pstd | palpha */
        upload_times(m, nc, m->htime, 1);
        nn_cuda_memcpy_h2d(m->z, m->hz, nc * SCORENET_DIM * sizeof(float));
        const float *x0c = x0 + i0 * SCORENET_DIM;
        rowscale(m->xt, m->palpha, x0c, nc, 0.0f);
        rowscale(m->xt, m->pstd, m->z, nc, 1.0f);
        loss += dsm_chunk(m, m->data, nc, n, 1, NULL);
    }
    if (!isfinite(loss)) return loss;
    nn_adam_step_cuda(&m->adam, lr, m->data, m->grad, m->m, m->v, m->total);
    nn_ema_update_cuda(&m->ema, m->ema_w, m->data, m->total);
    return loss;
}

#endif /* SF_HAVE_CUDA */
