/* models/mlp1d: 1-D time-conditioned score MLP, explicit forward/backward, DSM training step, checkpoints
 * (architecture and conventions in mlp1d.h), written once over the backend table (nn/backend.h; cpu or cuda,
 * chosen by mlp1d_set_device). std(t) and c_in(t) are computed on the host in double and sent with the times.
 * Workspace: one flat float buffer on the table with per-sample activations for the largest batch seen (grown,
 * never in the per-step path once warm). Forward keeps every pre-activation (a_l, e_pre) for the backward pass;
 * SiLU's backward recomputes the sigmoid from them. */
#include "mlp1d.h"
#include "act.h"
#include "adam.h"
#include "dsm.h"
#include "ema.h"
#include "fourier.h"
#include "io.h"
#include "linear.h"
#include "log.h"
#include "ws.h"
#include "mem.h"
#include "pmirror.h"
#include "safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLP1D_FORMAT "scorefusion-mlp1d"

struct mlp1d {
    mlp1d_config c;
    sde s;
    nn_params *p;           /* host record: checkpoints */
    nn_pmirror pm;          /* the table's weights and trainer state (cpu: p's buffers) */
    const nn_backend *be;
    nn_adam adam;
    nn_ema ema;
    size_t i_fw, i_ew, i_eb, i_ow, i_ob;
    size_t *i_lw, *i_lb, *i_dw, *i_db;  /* [depth] */
    /* shared-t scratch (table): four1[2F], epre1[W], temb1[W], dvec[L*W], one[4] = (t, c_in, std) */
    float *fixed, *four1, *epre1, *temb1, *dvec, *one;
    /* per-sample workspace (table), capacity cap samples */
    size_t cap;
    float *ws;
    float *t, *std, *z, *xt, *cin, *u, *out, *score, *dscore, *dout, *du, *xin;   /* [n] */
    float *four;                                                                 /* [n, 2F] */
    float *epre, *temb, *dtemb, *dh, *da;                                        /* [n, W] */
    float **a, **h;                                                              /* [L][n, W] */
    /* host views of t, std, z, xt, cin, du (the cpu: the same arrays; a device: hbuf) */
    float *hbuf, *ht, *hstd, *hz, *hxt, *hcin, *hdu;
};

mlp1d_config mlp1d_config_default(void)
{
    mlp1d_config c = {32, 3, 16, 16.0, 1.0};
    return c;
}

static void ensure_ws(mlp1d *m, size_t n)
{
    if (n <= m->cap) return;
    const nn_backend *be = m->be;
    const size_t W = (size_t)m->c.width, F = (size_t)m->c.n_freq, L = (size_t)m->c.depth;
    size_t cap = n, s1 = nn_ws_pad16(cap), sF = nn_ws_pad16(cap * 2 * F), sW = nn_ws_pad16(cap * W);
    be->release(m->ws);
    free(m->hbuf);
    m->ws = be->alloc(12 * s1 + sF + (5 + 2 * L) * sW);
    float *q = m->ws;
    float **one[12] = {&m->t, &m->std, &m->z, &m->xt, &m->cin, &m->u, &m->out, &m->score, &m->dscore, &m->dout,
                       &m->du, &m->xin};
    for (int k = 0; k < 12; k++) {
        *one[k] = q;
        q += s1;
    }
    m->four = q;
    q += sF;
    float **wide[5] = {&m->epre, &m->temb, &m->dtemb, &m->dh, &m->da};
    for (int k = 0; k < 5; k++) {
        *wide[k] = q;
        q += sW;
    }
    for (size_t l = 0; l < L; l++) {
        m->a[l] = q;
        q += sW;
        m->h[l] = q;
        q += sW;
    }
    float **host[6] = {&m->ht, &m->hstd, &m->hz, &m->hxt, &m->hcin, &m->hdu};
    if (be->host) {
        m->hbuf = NULL;
        float *same[6] = {m->t, m->std, m->z, m->xt, m->cin, m->du};
        for (int k = 0; k < 6; k++) *host[k] = same[k];
    } else {
        m->hbuf = nn_ws_falloc(6 * s1);
        for (int k = 0; k < 6; k++) *host[k] = m->hbuf + (size_t)k * s1;
    }
    m->cap = cap;
}

/* the shared-t scratch on m->be */
static void alloc_fixed(mlp1d *m)
{
    const size_t W = (size_t)m->c.width, F = (size_t)m->c.n_freq, L = (size_t)m->c.depth;
    size_t off = 0;
    m->fixed = m->be->alloc(nn_ws_pad16(2 * F) + 2 * nn_ws_pad16(W) + nn_ws_pad16(L * W) + 16);
    m->four1 = nn_ws_take(m->fixed, &off, 2 * F);
    m->epre1 = nn_ws_take(m->fixed, &off, W);
    m->temb1 = nn_ws_take(m->fixed, &off, W);
    m->dvec = nn_ws_take(m->fixed, &off, L * W);
    m->one = nn_ws_take(m->fixed, &off, 4);
}

static void free_buffers(mlp1d *m)
{
    m->be->release(m->fixed);
    m->be->release(m->ws);
    free(m->hbuf);
    m->fixed = m->ws = m->hbuf = NULL;
    m->cap = 0;
}

mlp1d *mlp1d_alloc(const mlp1d_config *c, const sde *s, uint64_t seed)
{
    LOG_CHECK(c->width > 0 && c->depth > 0 && c->n_freq > 0 && c->fourier_scale > 0 && c->data_scale >= 0,
              "mlp1d: bad config (width %d depth %d n_freq %d)", c->width, c->depth, c->n_freq);
    mlp1d *m = mem_calloc(1, sizeof *m);
    m->c = *c;
    m->s = *s;
    const int W = c->width, F = c->n_freq, L = c->depth;
    m->i_lw = mem_new(size_t, (size_t)L);
    m->i_lb = mem_new(size_t, (size_t)L);
    m->i_dw = mem_new(size_t, (size_t)L);
    m->i_db = mem_new(size_t, (size_t)L);
    m->a = mem_new(float *, (size_t)L);
    m->h = mem_new(float *, (size_t)L);
    nn_params *p = m->p = nn_params_alloc();
    int64_t sh[2];
    char name[64];
    sh[0] = F;
    m->i_fw = nn_params_add(p, "embed.0.W", 1, sh, 0);
    sh[0] = W;
    sh[1] = 2 * F;
    m->i_ew = nn_params_add(p, "embed.1.weight", 2, sh, 1);
    m->i_eb = nn_params_add(p, "embed.1.bias", 1, sh, 1);
    for (int l = 0; l < L; l++) {
        sh[0] = W;
        sh[1] = l == 0 ? 1 : W;
        snprintf(name, sizeof name, "layers.%d.weight", l);
        m->i_lw[l] = nn_params_add(p, name, 2, sh, 1);
        snprintf(name, sizeof name, "layers.%d.bias", l);
        m->i_lb[l] = nn_params_add(p, name, 1, sh, 1);
        sh[1] = W;
        snprintf(name, sizeof name, "dense.%d.weight", l);
        m->i_dw[l] = nn_params_add(p, name, 2, sh, 1);
        snprintf(name, sizeof name, "dense.%d.bias", l);
        m->i_db[l] = nn_params_add(p, name, 1, sh, 1);
    }
    sh[0] = 1;
    sh[1] = W;
    m->i_ow = nn_params_add(p, "out.weight", 2, sh, 1);
    m->i_ob = nn_params_add(p, "out.bias", 1, sh, 1);
    nn_params_finalize(p);

    rng *r = rng_alloc(seed, rng_stream_id(0x6d6c7031u /* "mlp1" */, 0));
    nn_fourier_init(nn_params_get(p, p->data, m->i_fw), F, c->fourier_scale, r);
    for (size_t i = 0; i < p->n; i++) {
        if (i == m->i_fw) continue;
        /* weights [out, in]: fan_in = in; a bias follows its weight and shares its fan_in */
        const nn_params_tensor *t = &p->t[i];
        size_t fan_in = t->ndim == 2 ? (size_t)t->shape[1] : (size_t)p->t[i - 1].shape[1];
        nn_params_init_uniform(p->data + t->offset, t->numel, 1.0 / sqrt((double)fan_in), r);
    }
    rng_free(r);
    nn_pmirror_init(&m->pm, p);
    m->be = m->pm.be;
    m->adam = nn_adam_default();
    m->ema = nn_ema_init(0.999);
    alloc_fixed(m);
    return m;
}

void mlp1d_set_device(mlp1d *m, device_kind dev)
{
    if (nn_backend_for(dev) == m->be) return;
    free_buffers(m);
    nn_pmirror_set_device(&m->pm, dev);
    m->be = m->pm.be;
    alloc_fixed(m);
}

device_kind mlp1d_device(const mlp1d *m) { return m->be->kind; }

void mlp1d_free(mlp1d *m)
{
    if (!m) return;
    if (!m->be->host) m->be->sync();
    free_buffers(m);
    nn_pmirror_free(&m->pm);
    nn_params_free(m->p);
    free(m->i_lw);
    free(m->i_lb);
    free(m->i_dw);
    free(m->i_db);
    free(m->a);
    free(m->h);
    free(m);
}

size_t mlp1d_num_params(const mlp1d *m) { return nn_params_count(m->p); }
const mlp1d_config *mlp1d_get_config(const mlp1d *m) { return &m->c; }
nn_params *mlp1d_params(mlp1d *m)
{
    nn_pmirror_train(&m->pm);
    nn_pmirror_to_host(&m->pm);
    return m->p;
}
void mlp1d_sync_to_device(mlp1d *m) { nn_pmirror_to_device(&m->pm); }

#define PW(base, idx) ((base) + m->p->t[(idx)].offset)

/* c_in(t) (and std(t) of the float time unless have_std: dsm_perturb's comes from the unrounded draw) of the
 * n samples whose times are in m->ht, on the host in double, to the table with the times (the cpu: in place) */
static void set_times(mlp1d *m, size_t n, int have_std)
{
    const double ds2 = m->c.data_scale * m->c.data_scale;
    for (size_t i = 0; i < n; i++) {
        if (!have_std) m->hstd[i] = (float)sde_std(&m->s, (double)m->ht[i]);
        m->hcin[i] = (float)(1.0 / sqrt(ds2 + (double)m->hstd[i] * m->hstd[i]));
    }
    m->be->upload(m->t, m->ht, n);
    m->be->upload(m->std, m->hstd, n);
    m->be->upload(m->cin, m->hcin, n);
}

/* Per-sample forward: m->t, std, cin [n] set (set_times), xin[n] (= x_t, table memory); leaves all activations
 * and m->score[n]. w = parameter buffer (data or EMA). */
static void forward_per_sample(mlp1d *m, const float *w, size_t n, const float *xin)
{
    const nn_backend *be = m->be;
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    be->fourier_forward(m->four, m->t, 1, PW(w, m->i_fw), N, F);
    be->linear_forward(m->epre, m->four, PW(w, m->i_ew), PW(w, m->i_eb), N, 2 * F, W);
    be->silu_forward(m->temb, m->epre, n * (size_t)W);
    be->rowscale(m->u, m->cin, xin, N, 1, 0.0f);
    for (int l = 0; l < L; l++) {
        const float *in = l == 0 ? m->u : m->h[l - 1];
        be->linear_forward(m->a[l], in, PW(w, m->i_lw[l]), PW(w, m->i_lb[l]), N, l == 0 ? 1 : W, W);
        be->linear_forward_add(m->a[l], m->temb, PW(w, m->i_dw[l]), PW(w, m->i_db[l]), N, W, W);
        be->silu_forward(m->h[l], m->a[l], n * (size_t)W);
    }
    be->linear_forward(m->out, m->h[L - 1], PW(w, m->i_ow), PW(w, m->i_ob), N, W, 1);
    be->rowdiv(m->score, m->std, m->out, N, 1);
}

/* Shared-t forward (sampling): temb and Dense_l(temb) + bias_l once; per sample only the hidden stack. xin:
 * table memory; the scores are left in m->score. */
static void forward_shared_t(mlp1d *m, const float *w, size_t n, float t, const float *xin)
{
    const nn_backend *be = m->be;
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    const double sd = sde_std(&m->s, (double)t);
    /* (t, c_in, std) as one row, so c_in and 1/std apply as per-row factors of a [1, n] row */
    const float one[3] = {t, (float)(1.0 / sqrt(m->c.data_scale * m->c.data_scale + sd * sd)), (float)sd};
    be->upload(m->one, one, 3);
    be->fourier_forward(m->four1, m->one, 0, PW(w, m->i_fw), 1, F);
    be->linear_forward(m->epre1, m->four1, PW(w, m->i_ew), PW(w, m->i_eb), 1, 2 * F, W);
    be->silu_forward(m->temb1, m->epre1, (size_t)W);
    for (int l = 0; l < L; l++) {
        float *dv = m->dvec + (size_t)l * W;
        be->linear_forward(dv, m->temb1, PW(w, m->i_dw[l]), PW(w, m->i_db[l]), 1, W, W);
        be->add_bias(dv, PW(w, m->i_lb[l]), 1, W, 1);
    }
    be->rowscale(m->u, m->one + 1, xin, 1, N, 0.0f);
    for (int l = 0; l < L; l++) {
        const float *in = l == 0 ? m->u : m->h[l - 1];
        be->linear_forward(m->a[l], in, PW(w, m->i_lw[l]), m->dvec + (size_t)l * W, N, l == 0 ? 1 : W, W);
        be->silu_forward(m->h[l], m->a[l], n * (size_t)W);
    }
    be->linear_forward(m->out, m->h[L - 1], PW(w, m->i_ow), PW(w, m->i_ob), N, W, 1);
    be->rowdiv(m->score, m->one + 2, m->out, 1, N);
}

/* Backward from m->dscore[n]. grads: accumulate into the table's gradient; want_du: leave dL/du in m->du. */
static void backward(mlp1d *m, const float *w, size_t n, int grads, int want_du)
{
    const nn_backend *be = m->be;
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    const size_t nW = n * (size_t)W;
    float *g = m->pm.grad;
#define GW(idx) (grads ? PW(g, idx) : NULL)
    be->rowdiv(m->dout, m->std, m->dscore, N, 1);
    be->zero(m->dh, nW);
    be->zero(m->dtemb, nW);
    be->linear_backward(m->dh, GW(m->i_ow), GW(m->i_ob), m->dout, m->h[L - 1], PW(w, m->i_ow), N, W, 1);
    for (int l = L - 1; l >= 0; l--) {
        be->zero(m->da, nW);
        be->silu_backward(m->da, m->dh, m->a[l], nW);
        if (grads)
            be->linear_backward(m->dtemb, GW(m->i_dw[l]), GW(m->i_db[l]), m->da, m->temb, PW(w, m->i_dw[l]), N, W,
                                W);
        float *din;
        if (l > 0) {
            be->zero(m->dh, nW);
            din = m->dh;
        } else if (want_du) {
            be->zero(m->du, n);
            din = m->du;
        } else {
            din = NULL;
        }
        be->linear_backward(din, GW(m->i_lw[l]), GW(m->i_lb[l]), m->da, l == 0 ? m->u : m->h[l - 1],
                            PW(w, m->i_lw[l]), N, l == 0 ? 1 : W, W);
    }
    if (grads) {
        be->zero(m->da, nW);
        be->silu_backward(m->da, m->dtemb, m->epre, nW);
        be->linear_backward(NULL, GW(m->i_ew), GW(m->i_eb), m->da, m->four, PW(w, m->i_ew), N, 2 * F, W);
    }
#undef GW
}

/* DSM loss with m->t, std, cin, z, xt already set; optional grads / dL/dx_t (left in m->du scaled to x_t). */
static double loss_core(mlp1d *m, int use_ema, size_t n, int grads, int want_dxt)
{
    const nn_backend *be = m->be;
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    forward_per_sample(m, w, n, m->xt);
    const int need = grads || want_dxt;
    double loss = be->dsm_loss(n, 1, m->score, m->std, m->z, need ? m->dscore : NULL);
    if (need && isfinite(loss)) {
        backward(m, w, n, grads, want_dxt);
        if (want_dxt) be->rowscale(m->du, m->cin, m->du, (int)n, 1, 0.0f);
    }
    return loss;
}

/* the DSM draws (dsm_perturb on the host from r) to the table */
static void draw(mlp1d *m, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    dsm_perturb(&m->s, r, n, 1, x0, t_lo, t_hi, m->ht, m->hstd, m->hz, m->hxt);
    set_times(m, n, 1);
    m->be->upload(m->z, m->hz, n);
    m->be->upload(m->xt, m->hxt, n);
}

double mlp1d_loss_at(mlp1d *m, int use_ema, size_t n, const float *x0, const float *t, const float *z, float *dx0,
                     int accumulate_grad)
{
    ensure_ws(m, n);
    for (size_t i = 0; i < n; i++) {
        m->ht[i] = t[i];
        m->hz[i] = z[i];
        m->hxt[i] = (float)sde_alpha(&m->s, (double)t[i]) * x0[i] + (float)sde_std(&m->s, (double)t[i]) * z[i];
    }
    set_times(m, n, 0);
    m->be->upload(m->z, m->hz, n);
    m->be->upload(m->xt, m->hxt, n);
    if (accumulate_grad) {
        nn_pmirror_train(&m->pm);
        nn_pmirror_to_device(&m->pm);   /* a device adds to the record's gradient as the cpu does */
    }
    double loss = loss_core(m, use_ema, n, accumulate_grad, dx0 != NULL);
    if (accumulate_grad) nn_pmirror_to_host(&m->pm);
    if (dx0) {
        m->be->download(m->hdu, m->du, n);
        for (size_t i = 0; i < n; i++) dx0[i] = m->hdu[i] * (float)sde_alpha(&m->s, (double)t[i]);
    }
    return loss;
}

double mlp1d_train_step(mlp1d *m, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r)
{
    ensure_ws(m, n);
    draw(m, n, x0, t_lo, t_hi, r);
    nn_pmirror *pm = &m->pm;
    nn_pmirror_zero_grad(pm);
    double loss = loss_core(m, 0, n, 1, 0);
    if (!isfinite(loss)) return loss;
    const size_t T = m->p->total;
    m->be->adam_step(&m->adam, lr, pm->data, pm->grad, pm->m, pm->v, T);
    m->be->ema_update(&m->ema, pm->ema, pm->data, T);
    return loss;
}

double mlp1d_eval_loss(mlp1d *m, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    ensure_ws(m, n);
    draw(m, n, x0, t_lo, t_hi, r);
    return loss_core(m, use_ema, n, 0, 0);
}

/* ---- score_model */

static void eval_impl(mlp1d *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x, float *out)
{
    if (n == 0) return;
    ensure_ws(m, n);
    const nn_backend *be = m->be;
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    const float *xin = x;
    if (!be->host) {
        be->upload(m->xin, x, n);
        xin = m->xin;
    }
    if (t_stride == 0) {
        forward_shared_t(m, w, n, t[0], xin);
    } else {
        for (size_t i = 0; i < n; i++) m->ht[i] = t[i * t_stride];
        set_times(m, n, 0);
        forward_per_sample(m, w, n, xin);
    }
    be->download(out, m->score, n);
}

static void eval_params(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    eval_impl(ctx, 0, n, t, ts, x, out);
}
static void eval_ema(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    eval_impl(ctx, 1, n, t, ts, x, out);
}

score_model mlp1d_score_model(mlp1d *m, int use_ema)
{
    score_model s;
    s.dim = 1;
    s.ctx = m;
    s.eval = use_ema ? eval_ema : eval_params;
    s.name = use_ema ? "mlp1d-ema" : "mlp1d";
    return s;
}

/* ---- bookkeeping */

void mlp1d_copy_ema_to_params(mlp1d *m) { nn_pmirror_copy_ema_to_data(&m->pm); }

void mlp1d_snapshot(mlp1d *m, int from_ema) { nn_pmirror_snapshot(&m->pm, from_ema); }

int mlp1d_restore_snapshot(mlp1d *m) { return nn_pmirror_restore(&m->pm); }

static double tm_step(void *ctx, size_t n, const float *x0, double lo, double hi, double lr, rng *r)
{
    return mlp1d_train_step(ctx, n, x0, lo, hi, lr, r);
}
static double tm_eval(void *ctx, int use_ema, size_t n, const float *x0, double lo, double hi, rng *r)
{
    return mlp1d_eval_loss(ctx, use_ema, n, x0, lo, hi, r);
}
static void tm_snap(void *ctx, int from_ema) { mlp1d_snapshot(ctx, from_ema); }
static void tm_restore(void *ctx) { mlp1d_restore_snapshot(ctx); }

train_model mlp1d_train_model(mlp1d *m)
{
    train_model t = {.ctx = m, .dim = 1, .train_step = tm_step, .eval_loss = tm_eval, .snapshot = tm_snap,
                     .restore = tm_restore};
    return t;
}

/* ---- checkpoints */

int mlp1d_save(const mlp1d *m, const char *path, char *err, size_t errlen)
{
    nn_pmirror_to_host((nn_pmirror *)&m->pm);   /* the record is a cache of the table's weights */
    const nn_params *p = m->p;
    safetensors_writer *w = safetensors_writer_alloc();
    char buf[64];
    safetensors_writer_metadata(w, "format", MLP1D_FORMAT);
    safetensors_writer_metadata(w, "version", "1");
#define META_I(k, v)                               \
    snprintf(buf, sizeof buf, "%d", (v));          \
    safetensors_writer_metadata(w, k, buf)
#define META_D(k, v)                               \
    snprintf(buf, sizeof buf, "%.17g", (v));       \
    safetensors_writer_metadata(w, k, buf)
    META_I("width", m->c.width);
    META_I("depth", m->c.depth);
    META_I("n_freq", m->c.n_freq);
    META_D("fourier_scale", m->c.fourier_scale);
    META_D("data_scale", m->c.data_scale);
    safetensors_writer_metadata(w, "sde", sde_name(&m->s));
    snprintf(buf, sizeof buf, "%ld", m->adam.step);
    safetensors_writer_metadata(w, "adam_step", buf);
    snprintf(buf, sizeof buf, "%ld", m->ema.num_updates);
    safetensors_writer_metadata(w, "ema_updates", buf);
    safetensors_writer_metadata(w, "git_commit", io_git_commit());
#undef META_I
#undef META_D
    nn_params_write(p, w);
    int rc = safetensors_writer_write(w, path, err, errlen);
    safetensors_writer_free(w);
    return rc;
}

/* use_ema < 0: the whole checkpoint with trainer state; else one weight set for inference */
static mlp1d *load(const char *path, const sde *s, int use_ema, char *err, size_t errlen)
{
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return NULL;
    const char *fmt = safetensors_metadata_get(st, "format");
    if (!fmt || strcmp(fmt, MLP1D_FORMAT) != 0) {
        snprintf(err, errlen, "%s: not an mlp1d checkpoint (__metadata__ format is '%s', expected '%s')", path,
                 fmt ? fmt : "(none)", MLP1D_FORMAT);
        safetensors_close(st);
        return NULL;
    }
    long width, depth, nf;
    mlp1d_config c;
    if (safetensors_metadata_long(st, "width", 1, 1 << 16, &width) || safetensors_metadata_long(st, "depth", 1, 1024, &depth) ||
        safetensors_metadata_long(st, "n_freq", 1, 1 << 16, &nf) || safetensors_metadata_double(st, "fourier_scale", &c.fourier_scale) ||
        safetensors_metadata_double(st, "data_scale", &c.data_scale) || c.fourier_scale <= 0 || c.data_scale < 0) {
        snprintf(err, errlen, "%s: missing or invalid config in __metadata__ (width, depth, n_freq, "
                 "fourier_scale, data_scale)", path);
        safetensors_close(st);
        return NULL;
    }
    c.width = (int)width;
    c.depth = (int)depth;
    c.n_freq = (int)nf;
    const char *sname = safetensors_metadata_get(st, "sde");
    if (!sname || strcmp(sname, sde_name(s)) != 0) {
        snprintf(err, errlen, "%s: trained under SDE '%s' but loaded for '%s'", path, sname ? sname : "(none)",
                 sde_name(s));
        safetensors_close(st);
        return NULL;
    }
    mlp1d *m = mlp1d_alloc(&c, s, 0);
    if (use_ema < 0 ? nn_params_read(nn_params_train(m->p), st, path, 1, err, errlen)
                    : nn_params_read_weights(m->p, st, path, use_ema, err, errlen)) {
        mlp1d_free(m);
        safetensors_close(st);
        return NULL;
    }
    long v;
    if (!safetensors_metadata_long(st, "adam_step", 0, __LONG_MAX__, &v)) m->adam.step = v;
    if (!safetensors_metadata_long(st, "ema_updates", 0, __LONG_MAX__, &v)) m->ema.num_updates = v;
    safetensors_close(st);
    return m;
}

mlp1d *mlp1d_load(const char *path, const sde *s, char *err, size_t errlen) { return load(path, s, -1, err, errlen); }

mlp1d *mlp1d_load_weights(const char *path, const sde *s, int use_ema, char *err, size_t errlen)
{
    return load(path, s, use_ema != 0, err, errlen);
}
