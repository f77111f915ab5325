/* nn/mlp1d: 1-D time-conditioned score MLP, explicit forward/backward, DSM training step, checkpoints
 * (architecture and conventions in mlp1d.h).
 * Workspace: one flat float buffer with per-sample activations for the largest batch seen (grown, never in
 * the per-step path once warm). Forward keeps every pre-activation (a_l, e_pre) for the backward pass;
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
    nn_params *p;
    nn_adam adam;
    nn_ema ema;
    size_t i_fw, i_ew, i_eb, i_ow, i_ob;
    size_t *i_lw, *i_lb, *i_dw, *i_db;  /* [depth] */
    /* shared-t scratch: four1[2F], epre1[W], temb1[W], dvec[L*W] */
    float *four1, *epre1, *temb1, *dvec;
    /* per-sample workspace, capacity cap samples */
    size_t cap;
    float *ws;
    float *t, *std, *z, *xt, *cin, *u, *out, *score, *dscore, *dout, *du;   /* [n] */
    float *four;                                                           /* [n, 2F] */
    float *epre, *temb, *dtemb, *dh, *da;                                  /* [n, W] */
    float **a, **h;                                                        /* [L][n, W] */
};

mlp1d_config mlp1d_config_default(void)
{
    mlp1d_config c = {32, 3, 16, 16.0, 1.0};
    return c;
}

static void ensure_ws(mlp1d *m, size_t n)
{
    if (n <= m->cap) return;
    const size_t W = (size_t)m->c.width, F = (size_t)m->c.n_freq, L = (size_t)m->c.depth;
    size_t cap = n, s1 = nn_ws_pad16(cap), sF = nn_ws_pad16(cap * 2 * F), sW = nn_ws_pad16(cap * W);
    free(m->ws);
    m->ws = nn_ws_falloc(11 * s1 + sF + (5 + 2 * L) * sW);
    float *q = m->ws;
    float **one[11] = {&m->t, &m->std, &m->z, &m->xt, &m->cin, &m->u, &m->out, &m->score, &m->dscore, &m->dout,
                       &m->du};
    for (int k = 0; k < 11; k++) {
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
    m->cap = cap;
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
    m->adam = nn_adam_default();
    m->ema = nn_ema_init(0.999);
    m->four1 = nn_ws_falloc(2 * (size_t)F);
    m->epre1 = nn_ws_falloc((size_t)W);
    m->temb1 = nn_ws_falloc((size_t)W);
    m->dvec = nn_ws_falloc((size_t)L * W);
    return m;
}

void mlp1d_free(mlp1d *m)
{
    if (!m) return;
    nn_params_free(m->p);
    free(m->i_lw);
    free(m->i_lb);
    free(m->i_dw);
    free(m->i_db);
    free(m->a);
    free(m->h);
    free(m->four1);
    free(m->epre1);
    free(m->temb1);
    free(m->dvec);
    free(m->ws);
    free(m);
}

size_t mlp1d_num_params(const mlp1d *m) { return nn_params_count(m->p); }
const mlp1d_config *mlp1d_get_config(const mlp1d *m) { return &m->c; }
nn_params *mlp1d_params(mlp1d *m) { return nn_params_train(m->p); }

#define PW(base, idx) ((base) + m->p->t[(idx)].offset)

/* Per-sample forward: inputs m->t[n] (Fourier), m->std[n], xin[n] (= x_t); leaves all activations and
 * m->score[n]. w = parameter buffer (data or EMA). */
static void forward_per_sample(mlp1d *m, const float *w, size_t n, const float *xin)
{
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    const double ds2 = m->c.data_scale * m->c.data_scale;
    nn_fourier_forward(m->four, m->t, 1, PW(w, m->i_fw), N, F);
    nn_linear_forward(m->epre, m->four, PW(w, m->i_ew), PW(w, m->i_eb), N, 2 * F, W);
    nn_silu_forward(m->temb, m->epre, n * (size_t)W);
    for (size_t i = 0; i < n; i++) {
        m->cin[i] = (float)(1.0 / sqrt(ds2 + (double)m->std[i] * m->std[i]));
        m->u[i] = m->cin[i] * xin[i];
    }
    for (int l = 0; l < L; l++) {
        const float *in = l == 0 ? m->u : m->h[l - 1];
        nn_linear_forward(m->a[l], in, PW(w, m->i_lw[l]), PW(w, m->i_lb[l]), N, l == 0 ? 1 : W, W);
        nn_linear_forward_add(m->a[l], m->temb, PW(w, m->i_dw[l]), PW(w, m->i_db[l]), N, W, W);
        nn_silu_forward(m->h[l], m->a[l], n * (size_t)W);
    }
    nn_linear_forward(m->out, m->h[L - 1], PW(w, m->i_ow), PW(w, m->i_ob), N, W, 1);
    for (size_t i = 0; i < n; i++) m->score[i] = m->out[i] / m->std[i];
}

/* Shared-t forward (sampling): temb and Dense_l(temb) + bias_l once; per sample only the hidden stack. */
static void forward_shared_t(mlp1d *m, const float *w, size_t n, float t, const float *xin, float *score)
{
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    nn_fourier_forward(m->four1, &t, 0, PW(w, m->i_fw), 1, F);
    nn_linear_forward(m->epre1, m->four1, PW(w, m->i_ew), PW(w, m->i_eb), 1, 2 * F, W);
    nn_silu_forward(m->temb1, m->epre1, (size_t)W);
    for (int l = 0; l < L; l++) {
        float *dv = m->dvec + (size_t)l * W;
        nn_linear_forward(dv, m->temb1, PW(w, m->i_dw[l]), PW(w, m->i_db[l]), 1, W, W);
        const float *bl = PW(w, m->i_lb[l]);
        for (int o = 0; o < W; o++) dv[o] += bl[o];
    }
    const double sd = sde_std(&m->s, (double)t);
    const float cin = (float)(1.0 / sqrt(m->c.data_scale * m->c.data_scale + sd * sd));
    const float stdf = (float)sd;
    for (size_t i = 0; i < n; i++) m->u[i] = cin * xin[i];
    for (int l = 0; l < L; l++) {
        const float *in = l == 0 ? m->u : m->h[l - 1];
        nn_linear_forward(m->a[l], in, PW(w, m->i_lw[l]), m->dvec + (size_t)l * W, N, l == 0 ? 1 : W, W);
        nn_silu_forward(m->h[l], m->a[l], n * (size_t)W);
    }
    nn_linear_forward(m->out, m->h[L - 1], PW(w, m->i_ow), PW(w, m->i_ob), N, W, 1);
    for (size_t i = 0; i < n; i++) score[i] = m->out[i] / stdf;
}

/* Backward from m->dscore[n]. grads: accumulate into p->grad; want_du: leave dL/du in m->du. */
static void backward(mlp1d *m, const float *w, size_t n, int grads, int want_du)
{
    const int W = m->c.width, F = m->c.n_freq, L = m->c.depth, N = (int)n;
    const size_t nW = n * (size_t)W;
    float *g = m->p->grad;
#define GW(idx) (grads ? PW(g, idx) : NULL)
    for (size_t i = 0; i < n; i++) m->dout[i] = m->dscore[i] / m->std[i];
    memset(m->dh, 0, nW * sizeof(float));
    memset(m->dtemb, 0, nW * sizeof(float));
    nn_linear_backward(m->dh, GW(m->i_ow), GW(m->i_ob), m->dout, m->h[L - 1], PW(w, m->i_ow), N, W, 1);
    for (int l = L - 1; l >= 0; l--) {
        memset(m->da, 0, nW * sizeof(float));
        nn_silu_backward(m->da, m->dh, m->a[l], nW);
        if (grads) nn_linear_backward(m->dtemb, GW(m->i_dw[l]), GW(m->i_db[l]), m->da, m->temb, PW(w, m->i_dw[l]), N, W, W);
        float *din;
        if (l > 0) {
            memset(m->dh, 0, nW * sizeof(float));
            din = m->dh;
        } else if (want_du) {
            memset(m->du, 0, n * sizeof(float));
            din = m->du;
        } else {
            din = NULL;
        }
        nn_linear_backward(din, GW(m->i_lw[l]), GW(m->i_lb[l]), m->da, l == 0 ? m->u : m->h[l - 1],
                           PW(w, m->i_lw[l]), N, l == 0 ? 1 : W, W);
    }
    if (grads) {
        memset(m->da, 0, nW * sizeof(float));
        nn_silu_backward(m->da, m->dtemb, m->epre, nW);
        nn_linear_backward(NULL, GW(m->i_ew), GW(m->i_eb), m->da, m->four, PW(w, m->i_ew), N, 2 * F, W);
    }
#undef GW
}

/* DSM loss with m->t, std, z, xt already set; optional grads / dL/dx_t (left in m->du scaled to x_t). */
static double loss_core(mlp1d *m, int use_ema, size_t n, int grads, int want_dxt)
{
    const float *w = nn_params_weights(m->p, use_ema);
    forward_per_sample(m, w, n, m->xt);
    const int need = grads || want_dxt;
    double loss = dsm_loss(n, 1, m->score, m->std, m->z, need ? m->dscore : NULL);
    if (need && isfinite(loss)) {
        backward(m, w, n, grads, want_dxt);
        if (want_dxt)
            for (size_t i = 0; i < n; i++) m->du[i] *= m->cin[i];
    }
    return loss;
}

double mlp1d_loss_at(mlp1d *m, int use_ema, size_t n, const float *x0, const float *t, const float *z, float *dx0,
                     int accumulate_grad)
{
    ensure_ws(m, n);
    for (size_t i = 0; i < n; i++) {
        m->t[i] = t[i];
        m->std[i] = (float)sde_std(&m->s, (double)t[i]);
        m->z[i] = z[i];
        m->xt[i] = (float)sde_alpha(&m->s, (double)t[i]) * x0[i] + m->std[i] * z[i];
    }
    double loss = loss_core(m, use_ema, n, accumulate_grad, dx0 != NULL);
    if (dx0)
        for (size_t i = 0; i < n; i++) dx0[i] = m->du[i] * (float)sde_alpha(&m->s, (double)t[i]);
    return loss;
}

double mlp1d_train_step(mlp1d *m, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r)
{
    ensure_ws(m, n);
    dsm_perturb(&m->s, r, n, 1, x0, t_lo, t_hi, m->t, m->std, m->z, m->xt);
    nn_params *p = m->p;
    nn_params_zero_grad(p);
    double loss = loss_core(m, 0, n, 1, 0);
    if (!isfinite(loss)) return loss;
    nn_adam_step(&m->adam, lr, p->data, p->grad, p->m, p->v, p->total);
    nn_ema_update(&m->ema, p->ema, p->data, p->total);
    return loss;
}

double mlp1d_eval_loss(mlp1d *m, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    ensure_ws(m, n);
    dsm_perturb(&m->s, r, n, 1, x0, t_lo, t_hi, m->t, m->std, m->z, m->xt);
    return loss_core(m, use_ema, n, 0, 0);
}

/* ---- score_model */

static void eval_impl(mlp1d *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x, float *out)
{
    if (n == 0) return;
    ensure_ws(m, n);
    const float *w = nn_params_weights(m->p, use_ema);
    if (t_stride == 0) {
        forward_shared_t(m, w, n, t[0], x, out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        m->t[i] = t[i * t_stride];
        m->std[i] = (float)sde_std(&m->s, (double)m->t[i]);
    }
    forward_per_sample(m, w, n, x);
    memcpy(out, m->score, n * sizeof *out);
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

void mlp1d_copy_ema_to_params(mlp1d *m) { nn_params_copy_ema_to_data(m->p); }

void mlp1d_snapshot(mlp1d *m, int from_ema) { nn_params_snapshot(m->p, from_ema); }

int mlp1d_restore_snapshot(mlp1d *m) { return nn_params_restore(m->p); }

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
    train_model t = {m, 1, tm_step, tm_eval, tm_snap, tm_restore};
    return t;
}

/* ---- checkpoints */

int mlp1d_save(const mlp1d *m, const char *path, char *err, size_t errlen)
{
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
