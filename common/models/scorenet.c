/* nn/scorenet: the paper's ScoreNet U-Net (src/model_EMNIST.py; paper §5.1, App. G; REFERENCE.md) on the CPU:
 * parameters carved from one nn_params buffer under PyTorch state_dict names (on the model's backend table
 * through pmirror.h: device copies, trainer state on demand, snapshots), forward with activation caches,
 * backward for the parameter gradients and for the input (VJP), DSM training step (eq. 5), score_model,
 * safetensors checkpoints. Architecture, names and initialisation are documented in scorenet.h.
 *
 * Layout: NCHW, one sample = [C, H, W] contiguous. The seven GroupNorm stages k = 0..6 (conv1..conv4, tconv4,
 * tconv3, tconv2) each keep a_k = conv + Dense_k(e) (the GN input), y_k = GN(a_k) (the swish input) and
 * h_k = swish(y_k); the decoder inputs are the concatenations cat[h_4, h_2], cat[h_5, h_1], cat[h_6, h_0]
 * (decoder first, skip second, as torch.cat([h, h3], 1)). The backward pass walks the stages in reverse; the
 * gradient of a concatenation's second half is the skip gradient, added to the encoder stage's output gradient.
 * Layers come from conv.h, norm.h, tensor_ops.h, linear.h, act.h, fourier.h (no twins here). */
#include "scorenet.h"
#include "act.h"
#include "adam.h"
#include "backend.h"
#include "conv.h"
#include "dsm.h"
#include "ema.h"
#include "fourier.h"
#include "io.h"
#include "linear.h"
#include "log.h"
#include "ws.h"
#include "mem.h"
#include "norm.h"
#include "philox.h"
#include "pmirror.h"
#include "safetensors.h"
#include "tensor_ops.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORENET_FORMAT "scorefusion-scorenet"
#define EMB 256          /* embedding width */
#define NFREQ 128        /* Fourier frequencies */
#define NSTAGE 7         /* GroupNorm stages */
#define GN_EPS 1e-5
/* On the cpu a chunk of n samples is cut into slice_count(n) contiguous slices that OpenMP threads run whole
 * (every layer single-threaded inside a slice): one parallel region per forward / backward instead of one (or
 * more) per layer, whose barriers and load imbalance cost more than the layers on 2 cores. The cut depends on n
 * only, never on the thread count, so results stay bitwise independent of it; scores and input gradients are
 * per sample and do not depend on the cut at all, parameter gradients are summed per slice, then over slices
 * in slice order. */
#define SN_SLICES 4       /* most slices per chunk */
#define SN_SLICE_MIN 16   /* fewest samples per slice */

/* stage k: conv (k < 4) or transposed conv (k >= 4) from (cin, hin) to (c, h); GroupNorm with g groups */
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
/* final layer: tconv1, 64 -> 1, 26 -> 28, stride 1, bias */
/* skip partner of decoder stage k (4, 5, 6): its output is concatenated with encoder stage SKIP[k - 4] */
static const int SKIP[3] = {2, 1, 0};

struct scorenet {
    sde s;
    const nn_backend *be;             /* the table every layer call goes through (cpu or cuda) */
    nn_params *p;                     /* host record of the weights (and trainer state): checkpoints */
    nn_pmirror pm;                    /* the table's weights / trainer state (cpu: p's buffers) */
    nn_adam adam;
    nn_ema ema;
    size_t cap;                       /* max_batch */
    /* tensor indices */
    size_t i_fw, i_ew, i_eb, i_t1w, i_t1b;
    size_t i_cw[NSTAGE], i_dw[NSTAGE], i_db[NSTAGE], i_gw[NSTAGE], i_gb[NSTAGE];
    /* workspace (capacity cap samples) */
    float *ws;
    float *t, *std, *tdraw;           /* [cap] (table memory) */
    float *ht, *hstd, *hz, *hxt;      /* host views of t, std [cap] and z, xt [cap, 784] (cpu: the same arrays) */
    float *dxbuf;                     /* [cap, 784] dL/dx on a device (NULL on the cpu: written in place) */
    float *four, *epre, *temb, *dtemb, *depre;   /* [cap, 256] */
    float *dk[NSTAGE], *ddk[NSTAGE];  /* Dense_k(e) and its gradient [cap, C_k] */
    float *a[NSTAGE], *y[NSTAGE], *h[NSTAGE];    /* [cap, C_k, H_k, H_k] */
    float *mean[NSTAGE], *rstd[NSTAGE];          /* GroupNorm statistics [cap, G_k] */
    float *cat[3];                    /* decoder inputs: cat[j] feeds stage 5+j (j<2) or tconv1 (j=2) */
    float *dcat[3];
    float *dh[NSTAGE];                /* gradient w.r.t. h_k, encoder stages 0..3 (skip part + next layer's) */
    float *dy, *da;                   /* scratch [cap, max C H W] */
    float *x, *out, *dout;            /* [cap, 784]: input copy, tconv1 output (before / std), its gradient */
    float *z, *xt, *sc, *dsc;         /* [cap, 784]: DSM noise, perturbed input, score, dL/dscore */
    nn_conv_geom geom[NSTAGE], geom_t1;   /* conv / tconv geometries of the stages and of tconv1 */
    float *colbuf;                    /* im2col scratch shared by every convolution layer [colbuf_n] (table) */
    size_t colbuf_n;
    float *hbuf;                      /* host scratch behind ht, hstd, hz, hxt on a device (NULL on the cpu) */
    /* cpu batch slices (see slice_count): slice s > 0 has its own im2col scratch and, when gradients are
     * accumulated, its own zeroed gradient buffer, summed into pm.grad in slice order after the backward pass */
    float *scol[SN_SLICES];           /* [colbuf_n] each; scol[0] = colbuf */
    float *sgrad[SN_SLICES];          /* [p->total] each, s >= 1 (allocated on the first gradient pass) */
    /* resident-data training (train.h train_rows ..., scorenet_train_model): table memory */
    const float *rx[2];               /* train / val rows [rn, 784]: the caller's arrays on the cpu */
    float *rx_own;                    /* the device copy behind rx (NULL on the cpu) */
    int32_t *rorder[2];               /* shuffle orders [rn[s]] (table memory, int32 in float words) */
    size_t rn[2];
    int32_t *rhorder;                 /* host scratch for the int32 orders */
    double *guard;                    /* [0] the step's loss, [1] the sticky non-finite flag (backend.h) */
    int rq_head, rq_n;                /* queued steps, a ring over the table's 4 fetch slots */
    long rq_adam[4], rq_ema[4];       /* the counters before each queued step (rolled back on a bad loss) */
    int rq_dead;                      /* the host has read a non-finite loss: guard[1] is set, no step updates */
};

static void res_unload(void *ctx);

static size_t stage_numel(int k) { return (size_t)STAGES[k].c * STAGES[k].h * STAGES[k].h; }
static size_t cat_channels(int j) { return (size_t)(j == 0 ? 256 : j == 1 ? 128 : 64); }
static size_t cat_side(int j) { return (size_t)(j == 0 ? 5 : j == 1 ? 12 : 26); }
static size_t cat_numel(int j) { return cat_channels(j) * cat_side(j) * cat_side(j); }

/* Points m's workspace arrays into base (NULL: only counts); returns the floats needed for cap samples. */
static size_t carve(scorenet *m, float *base, size_t cap, int device)
{
    size_t off = 0, maxst = 0;
    m->t = nn_ws_take(base, &off, cap);
    m->std = nn_ws_take(base, &off, cap);
    m->tdraw = nn_ws_take(base, &off, cap);
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
    m->dxbuf = device ? nn_ws_take(base, &off, cap * SCORENET_DIM) : NULL;
    return off;
}



/* ---------------------------------------------------------------- allocation and torch-style initialisation */

/* Geometries of the seven stage convolutions and of tconv1; returns the im2col workspace (floats) that the
 * conv layers recommend for batches of up to cap (device: the whole batch in one GEMM, best on a GPU). */
static size_t setup_geoms(nn_conv_geom *geom, nn_conv_geom *g1, size_t cap, int device)
{
    size_t cn = 0, c;
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        if (d->transposed) {
            geom[k] = nn_conv_transpose2d_geom(d->cin, d->c, d->hin, d->hin, 3, 3, d->stride, 0, d->outpad);
            c = device ? nn_conv_transpose2d_ws_min(&geom[k]) * cap : nn_conv_transpose2d_ws_floats(&geom[k], (int)cap);
        } else {
            geom[k] = nn_conv2d_geom(d->cin, d->c, d->hin, d->hin, 3, 3, d->stride, 0);
            c = device ? nn_conv2d_ws_min(&geom[k]) * cap : nn_conv2d_ws_floats(&geom[k], (int)cap);
        }
        LOG_CHECK(geom[k].OH == d->h && geom[k].OW == d->h, "scorenet: stage %d geometry %dx%d, expected %d", k,
                  geom[k].OH, geom[k].OW, d->h);
        if (c > cn) cn = c;
    }
    *g1 = nn_conv_transpose2d_geom(64, 1, 26, 26, 3, 3, 1, 0, 0);
    LOG_CHECK(g1->OH == SCORENET_IMG && g1->OW == SCORENET_IMG, "scorenet: tconv1 geometry");
    c = device ? nn_conv_transpose2d_ws_min(g1) * cap : nn_conv_transpose2d_ws_floats(g1, (int)cap);
    return c > cn ? c : cn;
}

/* The workspace on m->be: activations (carve) and the conv scratch, plus host views of the per-sample arrays. */
static void alloc_workspace(scorenet *m)
{
    const nn_backend *be = m->be;
    const int device = !be->host;
    scorenet tmp;
    memset(&tmp, 0, sizeof tmp);
    m->ws = be->alloc(carve(&tmp, NULL, m->cap, device));
    carve(m, m->ws, m->cap, device);
    m->colbuf_n = setup_geoms(m->geom, &m->geom_t1, m->cap, device);
    m->colbuf = be->alloc(m->colbuf_n);
    m->scol[0] = m->colbuf;
    for (int i = 1; i < SN_SLICES; i++) m->scol[i] = be->host ? be->alloc(m->colbuf_n) : NULL;
    if (device) {
        m->hbuf = nn_ws_falloc(2 * nn_ws_pad16(m->cap) + 2 * m->cap * SCORENET_DIM);
        m->ht = m->hbuf;
        m->hstd = m->ht + nn_ws_pad16(m->cap);
        m->hz = m->hstd + nn_ws_pad16(m->cap);
        m->hxt = m->hz + m->cap * SCORENET_DIM;
    } else {
        m->ht = m->t;
        m->hstd = m->std;
        m->hz = m->z;
        m->hxt = m->xt;
    }
}

static void free_workspace(scorenet *m)
{
    m->be->release(m->ws);
    m->be->release(m->colbuf);
    for (int i = 1; i < SN_SLICES; i++) {
        m->be->release(m->scol[i]);
        m->be->release(m->sgrad[i]);
        m->scol[i] = m->sgrad[i] = NULL;
    }
    free(m->hbuf);
    m->ws = m->colbuf = m->hbuf = NULL;
}

/* Builds the layout in state_dict order; zero-initialised buffers. */
static scorenet *scorenet_new(const sde *s, size_t max_batch)
{
    LOG_CHECK(max_batch >= 1, "scorenet: max_batch must be >= 1");
    scorenet *m = mem_calloc(1, sizeof *m);
    m->s = *s;
    nn_params *p = m->p = nn_params_alloc();
    char nm[NN_PARAMS_NAME_MAX];
    int64_t sh[1] = {NFREQ};
    m->i_fw = nn_params_add(p, "embed.0.W", 1, sh, 0);
    m->i_ew = nn_params_add4(p, "embed.1.weight", 2, EMB, EMB, 0, 0);
    m->i_eb = nn_params_add4(p, "embed.1.bias", 1, EMB, 0, 0, 0);
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        snprintf(nm, sizeof nm, "%s.weight", d->conv);
        /* Conv2d [out, in, 3, 3]; ConvTranspose2d [in, out, 3, 3] */
        m->i_cw[k] = d->transposed ? nn_params_add4(p, nm, 4, d->cin, d->c, 3, 3)
                                   : nn_params_add4(p, nm, 4, d->c, d->cin, 3, 3);
        snprintf(nm, sizeof nm, "%s.dense.weight", d->dense);
        m->i_dw[k] = nn_params_add4(p, nm, 2, d->c, EMB, 0, 0);
        snprintf(nm, sizeof nm, "%s.dense.bias", d->dense);
        m->i_db[k] = nn_params_add4(p, nm, 1, d->c, 0, 0, 0);
        snprintf(nm, sizeof nm, "%s.weight", d->gn);
        m->i_gw[k] = nn_params_add4(p, nm, 1, d->c, 0, 0, 0);
        snprintf(nm, sizeof nm, "%s.bias", d->gn);
        m->i_gb[k] = nn_params_add4(p, nm, 1, d->c, 0, 0, 0);
    }
    m->i_t1w = nn_params_add4(p, "tconv1.weight", 4, 64, 1, 3, 3);
    m->i_t1b = nn_params_add4(p, "tconv1.bias", 1, 1, 0, 0, 0);
    nn_params_finalize(p);
    size_t np = nn_params_count(p);
    LOG_CHECK(np == SCORENET_NUM_PARAMS, "scorenet: %zu trainable parameters, the paper's ScoreNet has %u", np,
              SCORENET_NUM_PARAMS);
    m->adam = nn_adam_default();
    m->ema = nn_ema_init(0.999);
    m->cap = max_batch;
    nn_pmirror_init(&m->pm, p);
    m->be = m->pm.be;
    alloc_workspace(m);
    return m;
}

scorenet *scorenet_alloc(const sde *s, size_t max_batch, uint64_t seed)
{
    scorenet *m = scorenet_new(s, max_batch);
    nn_params *p = m->p;
    float *w = p->data;
    rng *r = rng_alloc(seed, rng_stream_id(0x73636e74u /* "scnt" */, 0));
    /* torch: GaussianFourierProjection W = randn(128) * 30 */
    nn_fourier_init(w + p->t[m->i_fw].offset, NFREQ, 30.0, r);
    /* nn.Linear: weight kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in)) */
    nn_params_init_uniform(w + p->t[m->i_ew].offset, (size_t)EMB * EMB, 1.0 / sqrt((double)EMB), r);
    nn_params_init_uniform(w + p->t[m->i_eb].offset, EMB, 1.0 / sqrt((double)EMB), r);
    for (int k = 0; k < NSTAGE; k++) {
        const nn_params_tensor *cw = &p->t[m->i_cw[k]];
        /* _calculate_fan_in_and_fan_out: fan_in = weight.size(1) * kh * kw, for Conv2d [out, in, ..] that is
         * in * 9, for ConvTranspose2d [in, out, ..] it is out * 9 */
        double fan_in = (double)cw->shape[1] * 9.0;
        nn_params_init_uniform(w + cw->offset, cw->numel, 1.0 / sqrt(fan_in), r);
        nn_params_init_uniform(w + p->t[m->i_dw[k]].offset, p->t[m->i_dw[k]].numel, 1.0 / sqrt((double)EMB), r);
        nn_params_init_uniform(w + p->t[m->i_db[k]].offset, p->t[m->i_db[k]].numel, 1.0 / sqrt((double)EMB), r);
        float *g = w + p->t[m->i_gw[k]].offset;
        for (int c = 0; c < STAGES[k].c; c++) g[c] = 1.0f;   /* GroupNorm: weight 1, bias 0 (already 0) */
    }
    nn_params_init_uniform(w + p->t[m->i_t1w].offset, 64 * 9, 1.0 / sqrt(1.0 * 9.0), r);   /* fan_in = out(1) * 9 */
    nn_params_init_uniform(w + p->t[m->i_t1b].offset, 1, 1.0 / sqrt(1.0 * 9.0), r);
    rng_free(r);
    return m;
}

void scorenet_free(scorenet *m)
{
    if (!m) return;
    nn_pmirror_free(&m->pm);
    res_unload(m);
    free_workspace(m);
    nn_params_free(m->p);
    free(m);
}

void scorenet_set_device(scorenet *m, device_kind dev)
{
    const nn_backend *be = nn_backend_for(dev);
    if (be == m->be || (be->host && m->be->host)) return;   /* cpu and cpu-bf16 share host memory */
    nn_pmirror_set_device(&m->pm, dev);   /* dies unless cpu -> device, before anything is released */
    res_unload(m);
    free_workspace(m);
    m->be = m->pm.be;
    alloc_workspace(m);
}

device_kind scorenet_device(const scorenet *m) { return m->be->kind; }

void scorenet_set_host_table(scorenet *m, const nn_backend *be)
{
    LOG_CHECK(m->be->host && be->host, "scorenet_set_host_table: %s -> %s: only host-memory tables swap",
              m->be->name, be->name);
    m->be = be;   /* the same host memory: nothing moves */
}

void scorenet_set_gemm_bf16(scorenet *m, int on)
{
    LOG_CHECK(m->be->host, "scorenet_set_gemm_bf16: bf16 convolution GEMMs are a cpu option (the model is on %s)",
              m->be->name);
    scorenet_set_host_table(m, on ? nn_backend_cpu_bf16() : nn_backend_cpu());
}

int scorenet_gemm_bf16(const scorenet *m) { return m->be == nn_backend_cpu_bf16(); }

void scorenet_zero_grad(scorenet *m) { nn_pmirror_zero_grad(&m->pm); }
void scorenet_sync_to_host(scorenet *m) { nn_pmirror_to_host(&m->pm); }
void scorenet_sync_to_device(scorenet *m) { nn_pmirror_to_device(&m->pm); }

size_t scorenet_num_params(const scorenet *m) { return nn_params_count(m->p); }
nn_params *scorenet_params(scorenet *m)
{
    nn_pmirror_train(&m->pm);
    return m->p;
}
size_t scorenet_max_batch(const scorenet *m) { return m->cap; }
const nn_params *scorenet_params_const(const scorenet *m) { return m->p; }

void scorenet_get_counters(const scorenet *m, long *adam_step, long *ema_updates)
{
    if (adam_step) *adam_step = m->adam.step;
    if (ema_updates) *ema_updates = m->ema.num_updates;
}

void scorenet_set_counters(scorenet *m, long adam_step, long ema_updates)
{
    m->adam.step = adam_step;
    m->ema.num_updates = ema_updates;
}

const sde *scorenet_sde(const scorenet *m) { return &m->s; }

void scorenet_reset_optimizer(scorenet *m)
{
    nn_pmirror_reset_optim(&m->pm);
    m->adam = nn_adam_default();
    m->ema = nn_ema_init(0.999);
}

size_t scorenet_activation_bytes(size_t max_batch)
{
    scorenet tmp;
    memset(&tmp, 0, sizeof tmp);
    size_t f = carve(&tmp, NULL, max_batch, 0) + SN_SLICES * setup_geoms(tmp.geom, &tmp.geom_t1, max_batch, 0);
    return f * sizeof(float);
}

#define PW(base, idx) ((base) + m->p->t[(idx)].offset)

/* ---------------------------------------------------------------- chunked entry points
 * fwd_chunk(m, w, n <= cap, t, ts, x, x_host): runs the network (t host; x host memory if x_host, else the
 * table's), leaves every cache, m->t/std [n] and the score in m->sc [n, 784] (table memory).
 * bwd_chunk(m, w, n, dscore, grads, dx): from dL/dscore [n, 784] (table memory) after fwd_chunk on the same
 * chunk; accumulates parameter gradients if grads; writes dL/dx [n, 784] (table memory) if dx != NULL. */
static void fwd_chunk(scorenet *m, const float *w, size_t n, const float *t, size_t ts, const float *x,
                      int x_host);
static void bwd_chunk(scorenet *m, const float *w, size_t n, const float *dscore, int grads, float *dx);

/* ---------------------------------------------------------------- cpu batch slices (SN_SLICES above) */

static int slice_count(const scorenet *m, size_t n)
{
    if (!m->be->host) return 1;
    size_t s = n / SN_SLICE_MIN;
    return s < 1 ? 1 : s > SN_SLICES ? SN_SLICES : (int)s;
}

/* first sample of slice s of S over n samples (balanced, a function of n and S only) */
static size_t slice_start(size_t n, int S, int s) { return n * (size_t)s / (size_t)S; }

/* m with every per-sample array advanced to sample i0 and slice s's scratch: fwd_chunk / bwd_chunk run on it as
 * on a chunk of their own (cpu only: a device runs one slice, m itself) */
static scorenet slice_view(const scorenet *m, size_t i0, int s)
{
    scorenet v = *m;
    size_t maxst = 0;
    const size_t d = i0 * SCORENET_DIM, e = i0 * EMB;
    v.t += i0;
    v.std += i0;
    v.tdraw += i0;
    v.ht += i0;
    v.hstd += i0;
    v.hz += d;
    v.hxt += d;
    v.x += d;
    v.out += d;
    v.dout += d;
    v.z += d;
    v.xt += d;
    v.sc += d;
    v.dsc += d;
    v.four += e;
    v.epre += e;
    v.temb += e;
    v.dtemb += e;
    v.depre += e;
    for (int k = 0; k < NSTAGE; k++) {
        const size_t c = (size_t)STAGES[k].c, sz = stage_numel(k), g = (size_t)STAGES[k].groups;
        v.dk[k] += i0 * c;
        v.ddk[k] += i0 * c;
        v.a[k] += i0 * sz;
        v.y[k] += i0 * sz;
        v.h[k] += i0 * sz;
        v.mean[k] += i0 * g;
        v.rstd[k] += i0 * g;
        if (v.dh[k]) v.dh[k] += i0 * sz;
        if (sz > maxst) maxst = sz;
    }
    for (int j = 0; j < 3; j++) {
        v.cat[j] += i0 * cat_numel(j);
        v.dcat[j] += i0 * cat_numel(j);
    }
    v.dy += i0 * maxst;
    v.da += i0 * maxst;
    v.colbuf = m->scol[s];
    if (s > 0) v.pm.grad = m->sgrad[s];   /* the view's own mirror copy: bwd_chunk's gradient, never nn_pmirror_* */
    return v;
}

/* fwd_chunk over the slices of n samples (arguments as fwd_chunk's) */
static void fwd_sliced(scorenet *m, const float *w, size_t n, const float *t, size_t ts, const float *x, int x_host)
{
    const int S = slice_count(m, n);
    if (S == 1) {
        fwd_chunk(m, w, n, t, ts, x, x_host);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < S; s++) {
        const size_t i0 = slice_start(n, S, s), i1 = slice_start(n, S, s + 1);
        scorenet v = slice_view(m, i0, s);
        fwd_chunk(&v, w, i1 - i0, t + i0 * ts, ts, x + i0 * SCORENET_DIM, x_host);
    }
}

/* bwd_chunk over the slices of n samples (arguments as bwd_chunk's; dscore, dx table memory) */
static void bwd_sliced(scorenet *m, const float *w, size_t n, const float *dscore, int grads, float *dx)
{
    const int S = slice_count(m, n);
    if (S == 1) {
        bwd_chunk(m, w, n, dscore, grads, dx);
        return;
    }
    const size_t T = m->p->total;
    if (grads)
        for (int s = 1; s < S; s++)
            if (!m->sgrad[s]) m->sgrad[s] = m->be->alloc(T);
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < S; s++) {
        const size_t i0 = slice_start(n, S, s), i1 = slice_start(n, S, s + 1);
        scorenet v = slice_view(m, i0, s);
        if (grads && s > 0) memset(v.pm.grad, 0, T * sizeof(float));
        bwd_chunk(&v, w, i1 - i0, dscore + i0 * SCORENET_DIM, grads, dx ? dx + i0 * SCORENET_DIM : NULL);
    }
    if (grads) {
        float *g = m->pm.grad;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < T; i++) {
            float a = g[i];
            for (int s = 1; s < S; s++) a += m->sgrad[s][i];
            g[i] = a;
        }
    }
}

void scorenet_forward(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                      float *out)
{
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        fwd_sliced(m, w, nc, t + i0 * t_stride, t_stride, x + i0 * SCORENET_DIM, 1);
        m->be->download(out + i0 * SCORENET_DIM, m->sc, nc * SCORENET_DIM);
    }
}

void scorenet_backward(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                       const float *dscore, int accumulate_grad, float *dx, float *score)
{
    if (accumulate_grad) nn_pmirror_train(&m->pm);
    const nn_backend *be = m->be;
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        const size_t nd = nc * SCORENET_DIM;
        fwd_sliced(m, w, nc, t + i0 * t_stride, t_stride, x + i0 * SCORENET_DIM, 1);
        if (score) be->download(score + i0 * SCORENET_DIM, m->sc, nd);
        /* host arrays on the cpu are used in place; a device gets copies */
        const float *ds = dscore + i0 * SCORENET_DIM;
        if (!be->host) {
            be->upload(m->dsc, ds, nd);
            ds = m->dsc;
        }
        float *dxc = dx ? (be->host ? dx + i0 * SCORENET_DIM : m->dxbuf) : NULL;
        bwd_sliced(m, w, nc, ds, accumulate_grad, dxc);
        if (dx && !be->host) be->download(dx + i0 * SCORENET_DIM, m->dxbuf, nd);
    }
}

void scorenet_vjp(scorenet *m, int use_ema, size_t n, const float *t, size_t t_stride, const float *x,
                  const float *e, float *score, float *gx)
{
    scorenet_backward(m, use_ema, n, t, t_stride, x, e, 0, gx, score);
}

/* DSM loss of one chunk of nc samples out of a batch of ntot: times tch[nc] (host), noise and perturbed inputs
 * already in m->z, m->xt. Returns the chunk's share sum / ntot of the batch mean; dL/dscore is scaled to the
 * batch mean, so gradients accumulated over the chunks are those of the whole batch. grads: accumulate
 * dL/dparams; dxt != NULL (table memory): write dL/dx_t [nc, 784]. */
static double dsm_chunk(scorenet *m, const float *w, size_t nc, size_t ntot, const float *tch, int grads,
                        float *dxt)
{
    const nn_backend *be = m->be;
    fwd_sliced(m, w, nc, tch, 1, m->xt, 0);
    const int need = grads || dxt;
    double l = be->dsm_loss(nc, SCORENET_DIM, m->sc, m->std, m->z, need ? m->dsc : NULL);
    if (need && isfinite(l)) {
        if (nc != ntot) be->scale(m->dsc, (float)((double)nc / (double)ntot), nc * SCORENET_DIM);
        bwd_sliced(m, w, nc, m->dsc, grads, dxt);
    }
    return l * (double)nc / (double)ntot;
}

double scorenet_loss_at(scorenet *m, int use_ema, size_t n, const float *x0, const float *t, const float *z,
                        float *dx0, int accumulate_grad)
{
    if (accumulate_grad) nn_pmirror_train(&m->pm);
    const nn_backend *be = m->be;
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    double loss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        for (size_t i = 0; i < nc; i++) {
            double ti = t[i0 + i];
            float a = (float)sde_alpha(&m->s, ti), sd = (float)sde_std(&m->s, ti);
            const float *x0i = x0 + (i0 + i) * SCORENET_DIM, *zi = z + (i0 + i) * SCORENET_DIM;
            float *zz = m->hz + i * SCORENET_DIM, *xx = m->hxt + i * SCORENET_DIM;
            for (size_t d = 0; d < SCORENET_DIM; d++) {
                zz[d] = zi[d];
                xx[d] = a * x0i[d] + sd * zi[d];
            }
        }
        be->upload(m->z, m->hz, nc * SCORENET_DIM);   /* the cpu: the same arrays, nothing copied */
        be->upload(m->xt, m->hxt, nc * SCORENET_DIM);
        float *dxc = dx0 ? dx0 + i0 * SCORENET_DIM : NULL;
        loss += dsm_chunk(m, w, nc, n, t + i0, accumulate_grad, dxc && !be->host ? m->dxbuf : dxc);
        if (dxc) {
            if (!be->host) be->download(dxc, m->dxbuf, nc * SCORENET_DIM);
            for (size_t i = 0; i < nc; i++) {
                float a = (float)sde_alpha(&m->s, (double)t[i0 + i]);
                for (size_t d = 0; d < SCORENET_DIM; d++) dxc[i * SCORENET_DIM + d] *= a;
            }
        }
    }
    return loss;
}

/* The DSM draws (dsm.h, philox.h): one Philox seed per batch from r; chunk [i0, i0 + nc) takes its slice of the
 * batch's streams, so chunking does not change them. The times (nc floats) are drawn on the host, where std(t)
 * and alpha(t) are computed in double as on every backend; the noise [nc, 784] is drawn by the table where it
 * lives (a device never waits for a host draw, and no noise is copied), x_t = alpha x0 + std z formed there.
 * On the cpu the times go straight into t (ht is t) and alpha into tdraw.
 * The clean images come from the host (x0 != NULL: uploaded per chunk) or, for the resident path, from rows
 * rows[i] of src in table memory (gathered there: no image crosses the bus). acc NULL: the loss is returned
 * (a device waits for it per chunk); acc (table memory): the loss is added to acc[0] and nothing waits, the
 * backward then running whatever the loss (a non-finite one is caught by the step's guard, backend.h). */
static double perturbed_loss(scorenet *m, int use_ema, int grads, size_t n, const float *x0, const float *src,
                             const int32_t *rows, double *acc, double t_lo, double t_hi, rng *r)
{
    const nn_backend *be = m->be;
    const float *w = nn_pmirror_weights(&m->pm, use_ema);
    const uint64_t seed = rng_u64(r);
    double loss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        float *halpha = be->host ? m->tdraw : m->hz;   /* host scratch (a device has no host noise) */
        philox_time_fill(m->ht, nc, t_lo, t_hi, seed, philox_stream(PHILOX_DSM_TIME, 0), i0);
        for (size_t i = 0; i < nc; i++) {
            m->hstd[i] = (float)sde_std(&m->s, (double)m->ht[i]);
            halpha[i] = (float)sde_alpha(&m->s, (double)m->ht[i]);
        }
        be->upload(m->std, m->hstd, nc);
        be->upload(m->tdraw, halpha, nc);
        be->gaussian_fill(m->z, nc * SCORENET_DIM, seed, philox_stream(PHILOX_DSM_NOISE, 0), i0 * SCORENET_DIM);
        if (x0) be->upload(m->xt, x0 + i0 * SCORENET_DIM, nc * SCORENET_DIM);
        else be->gather_rows(m->xt, src, rows + i0, nc, SCORENET_DIM);
        be->rowscale(m->xt, m->tdraw, m->xt, (int)nc, SCORENET_DIM, 0.0f);
        be->rowscale(m->xt, m->std, m->z, (int)nc, SCORENET_DIM, 1.0f);
        if (!acc) {
            loss += dsm_chunk(m, w, nc, n, m->ht, grads, NULL);
            continue;
        }
        fwd_chunk(m, w, nc, m->ht, 1, m->xt, 0);
        be->dsm_loss_acc(acc, nc, n, SCORENET_DIM, m->sc, m->std, m->z, grads ? m->dsc : NULL);
        if (grads) {
            if (nc != n) be->scale(m->dsc, (float)((double)nc / (double)n), nc * SCORENET_DIM);
            bwd_chunk(m, w, nc, m->dsc, 1, NULL);
        }
    }
    return loss;
}

double scorenet_train_step(scorenet *m, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r)
{
    nn_pmirror *pm = &m->pm;
    nn_pmirror_zero_grad(pm);
    double loss = perturbed_loss(m, 0, 1, n, x0, NULL, NULL, NULL, t_lo, t_hi, r);
    if (!isfinite(loss)) return loss;
    const size_t T = m->p->total;
    m->be->adam_step(&m->adam, lr, pm->data, pm->grad, pm->m, pm->v, T);
    m->be->ema_update(&m->ema, pm->ema, pm->data, T);
    return loss;
}

double scorenet_eval_loss(scorenet *m, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r)
{
    return perturbed_loss(m, use_ema, 0, n, x0, NULL, NULL, NULL, t_lo, t_hi, r);
}

/* ---------------------------------------------------------------- score_model */

static void eval_params(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    scorenet_forward(ctx, 0, n, t, ts, x, out);
}
static void eval_ema(void *ctx, size_t n, const float *t, size_t ts, const float *x, float *out)
{
    scorenet_forward(ctx, 1, n, t, ts, x, out);
}

score_model scorenet_score_model(scorenet *m, int use_ema)
{
    score_model s;
    s.dim = SCORENET_DIM;
    s.ctx = m;
    s.eval = use_ema ? eval_ema : eval_params;
    s.name = use_ema ? "scorenet-ema" : "scorenet";
    return s;
}

/* ---------------------------------------------------------------- bookkeeping, train.h vtable */

void scorenet_copy_ema_to_params(scorenet *m) { nn_pmirror_copy_ema_to_data(&m->pm); }
void scorenet_snapshot(scorenet *m, int from_ema) { nn_pmirror_snapshot(&m->pm, from_ema); }
int scorenet_restore_snapshot(scorenet *m) { return nn_pmirror_restore(&m->pm); }

static double tm_step(void *ctx, size_t n, const float *x0, double lo, double hi, double lr, rng *r)
{
    return scorenet_train_step(ctx, n, x0, lo, hi, lr, r);
}
static double tm_eval(void *ctx, int use_ema, size_t n, const float *x0, double lo, double hi, rng *r)
{
    return scorenet_eval_loss(ctx, use_ema, n, x0, lo, hi, r);
}
static void tm_snap(void *ctx, int from_ema) { scorenet_snapshot(ctx, from_ema); }
static void tm_restore(void *ctx) { scorenet_restore_snapshot(ctx); }

/* ---- the resident-data path (train.h): the data set in table memory, steps queued without a host wait */

/* The oldest queued step's loss. The first non-finite one read sets guard[1] for good: that step and every step
 * queued after it made no update, so the counters go back to where they stood before it (later steps, which the
 * device skips as well, must not move them again: a second non-finite loss changes nothing). */
static double res_take(scorenet *m)
{
    const int slot = m->rq_head;
    const double l = m->be->fetch_end(slot);
    m->rq_head = (m->rq_head + 1) & 3;
    m->rq_n--;
    if (!isfinite(l) && !m->rq_dead) {
        m->adam.step = m->rq_adam[slot];
        m->ema.num_updates = m->rq_ema[slot];
        m->rq_dead = 1;
    }
    return l;
}

static void res_unload(void *ctx)
{
    scorenet *m = ctx;
    const nn_backend *be = m->be;
    /* steps still queued (train_run leaves one after a non-finite loss): read, so that an unread non-finite
     * loss still rolls the counters back */
    while (m->rq_n > 0) (void)res_take(m);
    be->release(m->rx_own);
    be->release(m->rorder[0]);
    be->release(m->rorder[1]);
    be->release(m->guard);
    free(m->rhorder);
    m->rx[0] = m->rx[1] = m->rx_own = NULL;
    m->rorder[0] = m->rorder[1] = NULL;
    m->rn[0] = m->rn[1] = 0;
    m->rhorder = NULL;
    m->guard = NULL;
    m->rq_head = 0;
    m->rq_dead = 0;
}

static void res_load(void *ctx, size_t n_train, const float *x_train, size_t n_val, const float *x_val)
{
    scorenet *m = ctx;
    const nn_backend *be = m->be;
    LOG_CHECK(n_train < INT32_MAX && n_val < INT32_MAX, "scorenet: resident data: %zu / %zu rows, over 2^31",
              n_train, n_val);
    res_unload(m);
    nn_pmirror_train(&m->pm);
    if (be->host) {
        m->rx[0] = x_train;
        m->rx[1] = x_val;
    } else {   /* once per run: the only images that cross the bus */
        m->rx_own = be->alloc((n_train + n_val) * SCORENET_DIM);
        be->upload(m->rx_own, x_train, n_train * SCORENET_DIM);
        be->upload(m->rx_own + n_train * SCORENET_DIM, x_val, n_val * SCORENET_DIM);
        m->rx[0] = m->rx_own;
        m->rx[1] = m->rx_own + n_train * SCORENET_DIM;
    }
    m->rn[0] = n_train;
    m->rn[1] = n_val;
    m->rorder[0] = (int32_t *)be->alloc(n_train);
    m->rorder[1] = (int32_t *)be->alloc(n_val);
    m->rhorder = mem_new(int32_t, n_train > n_val ? n_train : n_val);
    m->guard = (double *)be->alloc(4);   /* two doubles, zeroed: no bad loss yet */
}

static void res_order(void *ctx, int set, const size_t *idx, size_t n)
{
    scorenet *m = ctx;
    LOG_CHECK((set == 0 || set == 1) && m->rorder[set] && n == m->rn[set],
              "scorenet: resident order for set %d: %zu rows, %zu loaded", set, n, m->rn[set & 1]);
    for (size_t i = 0; i < n; i++) m->rhorder[i] = (int32_t)idx[i];
    /* int32 words carried as floats by size (backend.h); a device copy is staged and queued, not waited for */
    m->be->upload((float *)m->rorder[set], (const float *)m->rhorder, n);
}

static void res_step(void *ctx, size_t b0, size_t n, double t_lo, double t_hi, double lr, rng *r)
{
    scorenet *m = ctx;
    const nn_backend *be = m->be;
    LOG_CHECK(m->guard && b0 + n <= m->rn[0] && n > 0, "scorenet: resident step on rows [%zu, %zu) of %zu", b0,
              b0 + n, m->rn[0]);
    LOG_CHECK(m->rq_n < 4, "scorenet: more than 4 resident steps queued without reading a loss");
    const int slot = (m->rq_head + m->rq_n) & 3;
    m->rq_adam[slot] = m->adam.step;
    m->rq_ema[slot] = m->ema.num_updates;
    const size_t T = m->p->total;
    nn_pmirror *pm = &m->pm;
    be->zero(pm->grad, T);
    be->zero((float *)m->guard, 2);   /* the loss accumulator only; the flag stays */
    perturbed_loss(m, 0, 1, n, NULL, m->rx[0], m->rorder[0] + b0, m->guard, t_lo, t_hi, r);
    be->guard_check(m->guard);
    be->adam_step_guarded(&m->adam, lr, pm->data, pm->grad, pm->m, pm->v, T, m->guard);
    be->ema_update_guarded(&m->ema, pm->ema, pm->data, T, m->guard);
    be->fetch_begin(slot, m->guard);
    m->rq_n++;
    if (m->rq_dead) {   /* known to be skipped (guard[1] is sticky): the counters stay */
        m->adam.step = m->rq_adam[slot];
        m->ema.num_updates = m->rq_ema[slot];
    }
}

static double res_fetch(void *ctx)
{
    scorenet *m = ctx;
    LOG_CHECK(m->rq_n > 0, "scorenet: resident loss read with no step queued");
    return res_take(m);
}

static double res_eval(void *ctx, int use_ema, size_t v0, size_t n, double t_lo, double t_hi, rng *r)
{
    scorenet *m = ctx;
    const nn_backend *be = m->be;
    LOG_CHECK(m->guard && v0 + n <= m->rn[1] && n > 0 && m->rq_n < 4, "scorenet: resident eval on rows [%zu, %zu) of %zu",
              v0, v0 + n, m->rn[1]);
    be->zero((float *)m->guard, 2);
    perturbed_loss(m, use_ema, 0, n, NULL, m->rx[1], m->rorder[1] + v0, m->guard, t_lo, t_hi, r);
    const int slot = (m->rq_head + m->rq_n) & 3;
    be->fetch_begin(slot, m->guard);
    return be->fetch_end(slot);
}

train_model scorenet_train_model_resident(scorenet *m)
{
    train_model t = {m, SCORENET_DIM, tm_step, tm_eval, tm_snap, tm_restore,
                     res_load, res_order, res_step, res_fetch, res_eval, res_unload};
    return t;
}

train_model scorenet_train_model(scorenet *m)
{
    if (!m->be->host) return scorenet_train_model_resident(m);
    train_model t = {m, SCORENET_DIM, tm_step, tm_eval, tm_snap, tm_restore, NULL, NULL, NULL, NULL, NULL, NULL};
    return t;
}

/* ---------------------------------------------------------------- checkpoints */

/* The checkpoint writer with the model's tensors and metadata (the caller may add more, then writes). */
static safetensors_writer *checkpoint_writer(const scorenet *m, char *buf, size_t buflen)
{
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_metadata(w, "format", SCORENET_FORMAT);
    safetensors_writer_metadata(w, "version", "1");
    safetensors_writer_metadata(w, "architecture", "ScoreNet(channels=[32,64,128,256], embed_dim=256)");
    safetensors_writer_metadata(w, "sde", sde_name(&m->s));
    /* buf holds both counters (the writer keeps pointers to metadata strings until the write) */
    size_t half = buflen / 2;
    snprintf(buf, half, "%ld", m->adam.step);
    safetensors_writer_metadata(w, "adam_step", buf);
    snprintf(buf + half, half, "%ld", m->ema.num_updates);
    safetensors_writer_metadata(w, "ema_updates", buf + half);
    safetensors_writer_metadata(w, "git_commit", io_git_commit());
    nn_params_write(m->p, w);
    return w;
}

int scorenet_save(const scorenet *m, const char *path, char *err, size_t errlen)
{
    char buf[128];
    safetensors_writer *w = checkpoint_writer(m, buf, sizeof buf);
    int rc = safetensors_writer_write(w, path, err, errlen);
    safetensors_writer_free(w);
    return rc;
}

int scorenet_save_training(const scorenet *m, const train_progress *p, const char *path, char *err, size_t errlen)
{
    char buf[128];
    safetensors_writer *w = checkpoint_writer(m, buf, sizeof buf);
    nn_params_write_optim(m->p, w);
    train_progress_write(p, w);
    int rc = safetensors_writer_write(w, path, err, errlen);
    safetensors_writer_free(w);
    return rc;
}

scorenet *scorenet_load_training(const char *path, const sde *s, size_t max_batch, safetensors **st)
{
    char err[1024];
    scorenet *m = scorenet_load(path, s, max_batch, err, sizeof err);
    if (!m) log_die("%s (delete it to restart this network)", err);
    *st = safetensors_open(path, err, sizeof err);
    if (!*st || scorenet_read_optim(m, *st, path, err, sizeof err) != 0)
        log_die("%s (delete it to restart this network)", err);
    return m;
}

int scorenet_read_optim(scorenet *m, const safetensors *st, const char *path, char *err, size_t errlen)
{
    int rc = nn_params_read_optim(m->p, st, path, err, errlen);
    nn_pmirror_train(&m->pm);
    nn_pmirror_to_device(&m->pm);
    return rc;
}

/* use_ema < 0: the whole checkpoint with trainer state (resume); else the one weight set for inference */
static scorenet *load(const char *path, const sde *s, size_t max_batch, int use_ema, char *err, size_t errlen)
{
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return NULL;
    const char *fmt = safetensors_metadata_get(st, "format");
    if (fmt && strcmp(fmt, SCORENET_FORMAT) != 0) {
        snprintf(err, errlen, "%s: not a ScoreNet checkpoint (__metadata__ format is '%s', expected '%s')", path,
                 fmt, SCORENET_FORMAT);
        safetensors_close(st);
        return NULL;
    }
    const char *sname = safetensors_metadata_get(st, "sde");
    if (sname && strcmp(sname, sde_name(s)) != 0) {
        snprintf(err, errlen, "%s: trained under SDE '%s' but loaded for '%s'", path, sname, sde_name(s));
        safetensors_close(st);
        return NULL;
    }
    scorenet *m = scorenet_new(s, max_batch);
    if (use_ema < 0 ? nn_params_read(nn_params_train(m->p), st, path, 0, err, errlen)
                    : nn_params_read_weights(m->p, st, path, use_ema, err, errlen))
        goto fail;
    if (use_ema < 0) nn_pmirror_train(&m->pm);
    long v;
    if (!safetensors_metadata_long(st, "adam_step", 0, __LONG_MAX__, &v)) m->adam.step = v;
    if (!safetensors_metadata_long(st, "ema_updates", 0, __LONG_MAX__, &v)) m->ema.num_updates = v;
    safetensors_close(st);
    return m;
fail:
    scorenet_free(m);
    safetensors_close(st);
    return NULL;
}

scorenet *scorenet_load(const char *path, const sde *s, size_t max_batch, char *err, size_t errlen)
{
    return load(path, s, max_batch, -1, err, errlen);
}

scorenet *scorenet_load_weights(const char *path, const sde *s, size_t max_batch, int use_ema, char *err,
                                size_t errlen)
{
    return load(path, s, max_batch, use_ema != 0, err, errlen);
}

/* ---------------------------------------------------------------- forward / backward core */

/* the convolution layers of stage k (no bias) and tconv1 (bias), on the shared im2col workspace */
static void conv_fwd(scorenet *m, int k, float *out, const float *in, const float *W, int N)
{
    nn_conv2d_forward_on(m->be, out, in, W, NULL, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void tconv_fwd(scorenet *m, int k, float *out, const float *in, const float *W, int N)
{
    nn_conv_transpose2d_forward_on(m->be, out, in, W, NULL, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void conv_bwd(scorenet *m, int k, float *din, float *dW, const float *dout, const float *in, const float *W,
                     int N)
{
    nn_conv2d_backward_on(m->be, din, dW, NULL, dout, in, W, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
static void tconv_bwd(scorenet *m, int k, float *din, float *dW, const float *dout, const float *in, const float *W,
                      int N)
{
    nn_conv_transpose2d_backward_on(m->be, din, dW, NULL, dout, in, W, N, &m->geom[k], m->colbuf, m->colbuf_n);
}
/* "+ Dense_k(e)": a[N, C, HW] += d[N, C] */
static void chan_add_fwd(scorenet *m, float *a, const float *d, int N, int C, int HW)
{
    m->be->chan_add_forward(a, d, N, C, HW, C);
}
static void chan_add_bwd(scorenet *m, float *dd, const float *da, int N, int C, int HW)
{
    m->be->chan_add_backward(dd, da, N, C, HW, C);
}
static void gn_fwd(scorenet *m, float *y, float *mean, float *rstd, const float *a, const float *gamma,
                   const float *beta, int N, int C, int HW, int G)
{
    m->be->groupnorm_forward(y, mean, rstd, a, gamma, beta, N, C, HW, G, (float)GN_EPS);
}
/* da = dL/da (OVERWRITTEN), dgamma / dbeta accumulate (NULL: skipped) */
static void gn_bwd(scorenet *m, float *da, float *dgamma, float *dbeta, const float *dy, const float *a,
                   const float *mean, const float *rstd, const float *gamma, int N, int C, int HW, int G)
{
    m->be->zero(da, (size_t)N * C * HW);
    m->be->groupnorm_backward(da, dgamma, dbeta, dy, a, mean, rstd, gamma, N, C, HW, G);
}
/* out[N, C1 + C2, HW] = cat(x1, x2); backward OVERWRITES d1 [N, C1, HW] and d2 [N, C2, HW] */
static void cat_fwd(scorenet *m, float *out, const float *x1, int C1, const float *x2, int C2, int N, int HW)
{
    m->be->concat_forward(out, x1, x2, N, C1, C2, HW);
}
static void cat_bwd(scorenet *m, float *d1, float *d2, const float *dout, int C1, int C2, int N, int HW)
{
    m->be->zero(d1, (size_t)N * C1 * HW);
    m->be->zero(d2, (size_t)N * C2 * HW);
    m->be->concat_backward(d1, d2, dout, N, C1, C2, HW);
}
static void tconv1_fwd(scorenet *m, float *out, const float *in, const float *W, const float *b, int N)
{
    nn_conv_transpose2d_forward_on(m->be, out, in, W, b, N, &m->geom_t1, m->colbuf, m->colbuf_n);
}
static void tconv1_bwd(scorenet *m, float *din, float *dW, float *db, const float *dout, const float *in,
                       const float *W, int N)
{
    nn_conv_transpose2d_backward_on(m->be, din, dW, db, dout, in, W, N, &m->geom_t1, m->colbuf, m->colbuf_n);
}

/* sizes of stage k */
#define SC(k) (STAGES[k].c)
#define SHW(k) (STAGES[k].h * STAGES[k].h)

static void fwd_chunk(scorenet *m, const float *w, size_t n, const float *t, size_t ts, const float *x, int x_host)
{
    const int N = (int)n;
    const nn_backend *be = m->be;
    /* std(t) in double on the host, exactly as on every backend; then t, std and x to the table's memory (the
     * cpu: t, std are written in place; x is copied into the cache) */
    for (size_t i = 0; i < n; i++) {
        m->ht[i] = t[i * ts];
        m->hstd[i] = (float)sde_std(&m->s, (double)m->ht[i]);
    }
    be->upload(m->t, m->ht, n);
    be->upload(m->std, m->hstd, n);
    if (x != m->x) {
        if (x_host) be->upload(m->x, x, n * SCORENET_DIM);
        else be->copy(m->x, x, n * SCORENET_DIM);
    }
    /* e = swish(Linear(Fourier(t))) [n, 256]; Dense_k(e) [n, C_k] */
    be->fourier_forward(m->four, m->t, 1, PW(w, m->i_fw), N, NFREQ);
    be->linear_forward(m->epre, m->four, PW(w, m->i_ew), PW(w, m->i_eb), N, EMB, EMB);
    be->silu_forward(m->temb, m->epre, n * EMB);
    for (int k = 0; k < NSTAGE; k++)
        be->linear_forward(m->dk[k], m->temb, PW(w, m->i_dw[k]), PW(w, m->i_db[k]), N, EMB, SC(k));
    for (int k = 0; k < NSTAGE; k++) {
        const stage_desc *d = &STAGES[k];
        const float *in = k == 0 ? m->x : k < 4 ? m->h[k - 1] : k == 4 ? m->h[3] : m->cat[k - 5];
        if (!d->transposed) conv_fwd(m, k, m->a[k], in, PW(w, m->i_cw[k]), N);
        else tconv_fwd(m, k, m->a[k], in, PW(w, m->i_cw[k]), N);
        chan_add_fwd(m, m->a[k], m->dk[k], N, SC(k), SHW(k));
        if (be->groupnorm_silu_forward) {
            be->groupnorm_silu_forward(m->y[k], m->h[k], m->mean[k], m->rstd[k], m->a[k], PW(w, m->i_gw[k]),
                                       PW(w, m->i_gb[k]), N, SC(k), SHW(k), d->groups, (float)GN_EPS);
        } else {
            gn_fwd(m, m->y[k], m->mean[k], m->rstd[k], m->a[k], PW(w, m->i_gw[k]), PW(w, m->i_gb[k]), N, SC(k),
                   SHW(k), d->groups);
            be->silu_forward(m->h[k], m->y[k], n * stage_numel(k));
        }
        if (k >= 4) cat_fwd(m, m->cat[k - 4], m->h[k], SC(k), m->h[SKIP[k - 4]], SC(SKIP[k - 4]), N, SHW(k));
    }
    /* tconv1: cat[2] [n, 64, 26, 26] -> out [n, 1, 28, 28] + bias; score = out / std */
    tconv1_fwd(m, m->out, m->cat[2], PW(w, m->i_t1w), PW(w, m->i_t1b), N);
    be->rowdiv(m->sc, m->std, m->out, N, SCORENET_DIM);
}

static void bwd_chunk(scorenet *m, const float *w, size_t n, const float *dscore, int grads, float *dx)
{
    const int N = (int)n;
    const nn_backend *be = m->be;
    float *g = m->pm.grad;
#define GW(idx) (grads ? PW(g, idx) : NULL)
    be->rowdiv(m->dout, m->std, dscore, N, SCORENET_DIM);
    if (grads) be->zero(m->dtemb, n * EMB);
    /* tconv1 */
    be->zero(m->dcat[2], n * cat_numel(2));
    tconv1_bwd(m, m->dcat[2], GW(m->i_t1w), GW(m->i_t1b), m->dout, m->cat[2], PW(w, m->i_t1w), N);
    /* decoder stages 6, 5, 4, then encoder 3..0. dh_k: gradient w.r.t. h_k. For decoder stage k >= 5 it is the
     * first half of dcat[k - 4]; the second half is the skip gradient of encoder stage SKIP[k - 4]. */
    for (int k = NSTAGE - 1; k >= 0; k--) {
        const stage_desc *d = &STAGES[k];
        const size_t sz = n * stage_numel(k);
        const int fused = be->groupnorm_silu_backward && be->concat_split;
        float *dh, *da;   /* dL/dh_k, dL/da_k */
        size_t dh_bstride = stage_numel(k);
        if (k >= 4) {
            /* split dcat[k-4] = [dh_k, dskip] ; dskip goes to dh[SKIP] (initialised here) */
            int sk = SKIP[k - 4];
            if (fused) {
                /* dh_k is read where it lies (the first channels of dcat), dL/da_k goes to m->dy */
                be->concat_split(NULL, m->dh[sk], m->dcat[k - 4], N, SC(k), SC(sk), SHW(k));
                dh = m->dcat[k - 4];
                dh_bstride = cat_numel(k - 4);
                da = m->dy;
            } else {
                cat_bwd(m, m->dy, m->dh[sk], m->dcat[k - 4], SC(k), SC(sk), N, SHW(k));
                dh = da = m->dy;
            }
        } else {
            dh = da = m->dh[k];   /* skip part (k < 3) or tconv4's input gradient (k == 3), plus conv_{k+1} din;
                                   * consumed here, so it is reused for dL/da_k */
        }
        /* swish, GroupNorm, + Dense_k(e) */
        if (fused) {
            be->groupnorm_silu_backward(da, GW(m->i_gw[k]), GW(m->i_gb[k]), dh, dh_bstride, m->y[k], m->a[k],
                                        m->mean[k], m->rstd[k], PW(w, m->i_gw[k]), N, SC(k), SHW(k), d->groups,
                                        m->da);
        } else {
            be->zero(m->da, sz);
            be->silu_backward(m->da, dh, m->y[k], sz);      /* m->da = dL/dy_k */
            gn_bwd(m, da, GW(m->i_gw[k]), GW(m->i_gb[k]), m->da, m->a[k], m->mean[k], m->rstd[k], PW(w, m->i_gw[k]),
                   N, SC(k), SHW(k), d->groups);
        }
        if (grads) {
            be->zero(m->ddk[k], n * (size_t)SC(k));
            chan_add_bwd(m, m->ddk[k], da, N, SC(k), SHW(k));
            be->linear_backward(m->dtemb, GW(m->i_dw[k]), GW(m->i_db[k]), m->ddk[k], m->temb, PW(w, m->i_dw[k]), N,
                               EMB, SC(k));
        }
        /* into the layer's input */
        if (k >= 5) {
            float *dcat = m->dcat[k - 5];
            be->zero(dcat, n * cat_numel(k - 5));
            tconv_bwd(m, k, dcat, GW(m->i_cw[k]), da, m->cat[k - 5], PW(w, m->i_cw[k]), N);
        } else if (k == 4) {
            /* input is h_3, whose gradient has no skip part */
            be->zero(m->dh[3], n * stage_numel(3));
            tconv_bwd(m, k, m->dh[3], GW(m->i_cw[k]), da, m->h[3], PW(w, m->i_cw[k]), N);
        } else if (k > 0) {
            conv_bwd(m, k, m->dh[k - 1], GW(m->i_cw[k]), da, m->h[k - 1], PW(w, m->i_cw[k]), N);   /* += skip */
        } else {
            if (dx) be->zero(dx, n * SCORENET_DIM);
            if (dx || grads) conv_bwd(m, 0, dx, GW(m->i_cw[0]), da, m->x, PW(w, m->i_cw[0]), N);
        }
    }
    if (grads) {
        be->zero(m->depre, n * EMB);
        be->silu_backward(m->depre, m->dtemb, m->epre, n * EMB);
        be->linear_backward(NULL, GW(m->i_ew), GW(m->i_eb), m->depre, m->four, PW(w, m->i_ew), N, EMB, EMB);
    }
#undef GW
}
