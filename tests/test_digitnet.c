/* test_digitnet: the MNIST digit classifier (common/nn/digitnet.h; paper §5.1 / Table 2).
 * Checks: the state_dict layout (names, shapes, 421,642 parameters) and torch-style init bounds; the specialised
 * 2x2 max-pool fast path against the generic reference (ties, NaN); the float forward against a double-precision reference
 * written here (naive loops) with the same dropout mask; the backward of the WHOLE network (every tensor: the
 * largest-gradient entry, random entries and a random direction) against central finite differences of that
 * double reference, in train mode with a fixed dropout mask and over two chunks (max_batch < n); eval mode; the
 * probabilities (rows sum to 1, independent of max_batch); a non-finite loss leaves the parameters alone;
 * results bitwise independent of the thread count; save / load round trip (identical probabilities) and the
 * load errors (wrong shape, missing tensor, other architecture, corrupt or absent file: NULL and one line naming
 * the file); and learnability: two classes of synthetic stroke patterns are learnt to 100% held-out accuracy
 * with a falling loss. */
#include "digitnet.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "philox.h"
#include "pool.h"
#include "rng.h"
#include "safetensors.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define D DIGITNET_DIM
#define K DIGITNET_CLASSES
#define HID 128
#define P_DROP 0.5

static void check_shape(nn_params *p, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    char label[160];
    snprintf(label, sizeof label, "layout %s", name);
    size_t i = nn_params_find(p, name);
    int64_t want[4] = {a, b, c, d};
    int ok = i != (size_t)-1 && p->t[i].ndim == ndim && p->t[i].trainable;
    for (int k = 0; ok && k < ndim; k++) ok = p->t[i].shape[k] == want[k];
    test_report(ok, label, "missing or wrong shape");
}

static void test_layout(void)
{
    digitnet *m = digitnet_alloc(4, 1);
    nn_params *p = digitnet_params(m);
    char d[256];
    snprintf(d, sizeof d, "%zu", digitnet_num_params(m));
    test_report(digitnet_num_params(m) == 421642u, "421,642 trainable parameters", d);
    test_report(p->n == 8, "8 tensors in the state_dict", "count");
    check_shape(p, "features.0.weight", 4, 32, 1, 3, 3);
    check_shape(p, "features.0.bias", 1, 32, 0, 0, 0);
    check_shape(p, "features.3.weight", 4, 64, 32, 3, 3);
    check_shape(p, "features.3.bias", 1, 64, 0, 0, 0);
    check_shape(p, "classifier.0.weight", 2, 128, 3136, 0, 0);
    check_shape(p, "classifier.0.bias", 1, 128, 0, 0, 0);
    check_shape(p, "classifier.3.weight", 2, 10, 128, 0, 0);
    check_shape(p, "classifier.3.bias", 1, 10, 0, 0, 0);
    /* U(+-1/sqrt(fan_in)): the max |w| of each tensor lies just below the bound */
    const double fan[8] = {9, 9, 288, 288, 3136, 3136, 128, 128};
    int ok = p->n == 8;
    for (size_t i = 0; ok && i < p->n; i++) {
        const float *w = p->data + p->t[i].offset;
        double mx = 0, b = 1.0 / sqrt(fan[i]);
        for (size_t j = 0; j < p->t[i].numel; j++) mx = fmax(mx, fabs(w[j]));
        ok = mx <= b && mx > (p->t[i].numel >= 32 ? 0.8 * b : 0.2 * b);
        if (!ok) snprintf(d, sizeof d, "%s: max |w| %g, bound %g", p->t[i].name, mx, b);
    }
    test_report(ok, "init U(+-1/sqrt(fan_in)) per tensor", d);
    digitnet *m2 = digitnet_alloc(4, 1), *m3 = digitnet_alloc(4, 2);
    test_report(memcmp(p->data, digitnet_params(m2)->data, p->total * sizeof(float)) == 0, "init reproducible",
                "differs");
    test_report(memcmp(p->data, digitnet_params(m3)->data, p->total * sizeof(float)) != 0, "init depends on seed",
                "same");
    digitnet_free(m);
    digitnet_free(m2);
    digitnet_free(m3);
}

static void test_pool(void)
{
    /* widths 8 (one vector), 28 and 14 (the network's), 34 (beyond the vector path): ties, NaNs */
    const int Ws[4] = {8, 28, 14, 34}, planes = 5, H = 6;
    int ok = 1;
    rng *r = rng_alloc(3, 0);
    for (int c = 0; c < 4; c++) {
        const int W = Ws[c], n = planes * H * W, no = planes * (H / 2) * (W / 2);
        float *in = mem_new(float, n), *o1 = mem_new(float, no), *o2 = mem_new(float, no);
        int32_t *i1 = mem_new(int32_t, no), *i2 = mem_new(int32_t, no);
        for (int i = 0; i < n; i++) in[i] = (float)rng_index(r, 4);   /* many ties */
        in[2 * H * W + 1 * W + 3] = NAN;
        in[2 * H * W + 1 * W + 2] = NAN;   /* two NaNs in one window: the first wins */
        in[3 * H * W + 5 * W + W - 1] = NAN;   /* NaN at the last window position */
        in[4 * H * W + 2 * W + W - 2] = NAN;
        nn_pool_geom g = nn_maxpool2d_geom(planes, H, W, 2, 2, 0);
        nn_maxpool2d_forward(o1, i1, in, 1, &g);
        nn_maxpool2d_forward_ref(o2, i2, in, 1, &g);
        for (int i = 0; i < no; i++) ok &= i1[i] == i2[i] && (o1[i] == o2[i] || (isnan(o1[i]) && isnan(o2[i])));
        free(in);
        free(o1);
        free(o2);
        free(i1);
        free(i2);
    }
    rng_free(r);
    test_report(ok, "2x2 max-pool fast path == nn_maxpool2d_forward_ref (W 8/28/14/34; values, argmax, ties, NaN)", "differs");
}

/* ---------------------------------------------------------------- double-precision reference */

typedef struct {
    const double *w[8];   /* the 8 tensors in state_dict order */
} ref_w;

/* mean CE of x[n, 784] with labels y; mask[n, 128] (dropout multipliers; all 1 in eval); logits out (may be
 * NULL) */
static double ref_loss(const ref_w *rw, int n, const float *x, const uint8_t *y, const double *mask,
                       double *logits_out)
{
    static double a1[32 * 28 * 28], p1[32 * 14 * 14], a2[64 * 14 * 14], p2[64 * 7 * 7];
    double loss = 0;
    for (int b = 0; b < n; b++) {
        const float *img = x + (size_t)b * D;
        for (int o = 0; o < 32; o++)
            for (int i = 0; i < 28; i++)
                for (int j = 0; j < 28; j++) {
                    double s = rw->w[1][o];
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            int ii = i + u - 1, jj = j + v - 1;
                            if (ii >= 0 && ii < 28 && jj >= 0 && jj < 28) s += rw->w[0][o * 9 + u * 3 + v] * img[ii * 28 + jj];
                        }
                    a1[(o * 28 + i) * 28 + j] = s > 0 ? s : 0;
                }
        for (int c = 0; c < 32; c++)
            for (int i = 0; i < 14; i++)
                for (int j = 0; j < 14; j++) {
                    const double *q = a1 + (c * 28 + 2 * i) * 28 + 2 * j;
                    p1[(c * 14 + i) * 14 + j] = fmax(fmax(q[0], q[1]), fmax(q[28], q[29]));
                }
        for (int o = 0; o < 64; o++)
            for (int i = 0; i < 14; i++)
                for (int j = 0; j < 14; j++) {
                    double s = rw->w[3][o];
                    for (int c = 0; c < 32; c++)
                        for (int u = 0; u < 3; u++) {
                            int ii = i + u - 1;
                            if (ii < 0 || ii >= 14) continue;
                            for (int v = 0; v < 3; v++) {
                                int jj = j + v - 1;
                                if (jj >= 0 && jj < 14) s += rw->w[2][((o * 32 + c) * 3 + u) * 3 + v] * p1[(c * 14 + ii) * 14 + jj];
                            }
                        }
                    a2[(o * 14 + i) * 14 + j] = s > 0 ? s : 0;
                }
        for (int c = 0; c < 64; c++)
            for (int i = 0; i < 7; i++)
                for (int j = 0; j < 7; j++) {
                    const double *q = a2 + (c * 14 + 2 * i) * 14 + 2 * j;
                    p2[(c * 7 + i) * 7 + j] = fmax(fmax(q[0], q[1]), fmax(q[14], q[15]));
                }
        double hdn[HID], lg[K];
        for (int o = 0; o < HID; o++) {
            double s = rw->w[5][o];
            for (int f = 0; f < 3136; f++) s += rw->w[4][(size_t)o * 3136 + f] * p2[f];
            hdn[o] = (s > 0 ? s : 0) * mask[b * HID + o];
        }
        double mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            double s = rw->w[7][k];
            for (int o = 0; o < HID; o++) s += rw->w[6][k * HID + o] * hdn[o];
            lg[k] = s;
            mx = fmax(mx, s);
            if (logits_out) logits_out[b * K + k] = s;
        }
        double z = 0;
        for (int k = 0; k < K; k++) z += exp(lg[k] - mx);
        loss += -(lg[y[b]] - mx - log(z));
    }
    return loss / n;
}

/* the dropout multipliers digitnet_loss draws from a fresh stream (digitnet.h: a Philox seed from rng_u64, unit
 * i * 128 + j of stream (PHILOX_DROPOUT, 0); tensor_ops.h: mask = (u >= p) / (1 - p)) */
static void ref_mask(double *mask, int n, uint64_t seed)
{
    rng *r = rng_alloc(seed, 5);
    const uint64_t key = rng_u64(r);
    for (int i = 0; i < n * HID; i++)
        mask[i] = philox_uniform_at(key, philox_stream(PHILOX_DROPOUT, 0), (uint64_t)i) < P_DROP
                      ? 0.0 : 1.0 / (1.0 - P_DROP);
    rng_free(r);
}

static double model_loss_grad(digitnet *m, int n, const float *x, const uint8_t *y, int train, uint64_t seed)
{
    nn_params_zero_grad(digitnet_params(m));
    rng *r = train ? rng_alloc(seed, 5) : NULL;
    double l = digitnet_loss(m, (size_t)n, x, y, r, 1);
    rng_free(r);
    return l;
}

static void test_gradients(int train)
{
    enum { N = 3 };
    const uint64_t mseed = 11;
    digitnet *m = digitnet_alloc(2, 7);   /* max_batch 2 < N: two chunks */
    nn_params *p = digitnet_params(m);
    rng *r = rng_alloc(21, 0);
    /* biases of the hidden layers shifted up a little so that most units are active (a more informative check) */
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].ndim == 1)
            for (size_t j = 0; j < p->t[i].numel; j++) p->data[p->t[i].offset + j] += 0.05f;
    float *x = mem_new(float, N * D);
    uint8_t y[N] = {3, 7, 9};
    for (int i = 0; i < N * D; i++) x[i] = (float)rng_gaussian(r);
    double *mask = mem_new(double, N * HID);
    if (train) ref_mask(mask, N, mseed);
    else
        for (int i = 0; i < N * HID; i++) mask[i] = 1.0;

    double loss = model_loss_grad(m, N, x, y, train, mseed);
    double *wd = mem_new(double, p->total);
    for (size_t i = 0; i < p->total; i++) wd[i] = p->data[i];
    ref_w rw;
    for (int t = 0; t < 8; t++) rw.w[t] = wd + p->t[t].offset;
    double lg[N * K], rl = ref_loss(&rw, N, x, y, mask, lg);
    char name[160], det[256];
    snprintf(name, sizeof name, "%s: float loss == double reference", train ? "train (fixed mask)" : "eval");
    CHECK_CLOSE(loss, rl, 1e-5, 1e-5, name);
    if (!train) {
        float pr[N * K];
        digitnet_probs(m, N, x, pr);
        double worst = 0;
        for (int b = 0; b < N; b++) {
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < K; k++) mx = fmax(mx, lg[b * K + k]);
            for (int k = 0; k < K; k++) z += exp(lg[b * K + k] - mx);
            for (int k = 0; k < K; k++) worst = fmax(worst, fabs(pr[b * K + k] - exp(lg[b * K + k] - mx) / z));
        }
        snprintf(det, sizeof det, "max |diff| %g", worst);
        test_report(worst < 1e-5, "probs == double-reference softmax", det);
    }

    const double h = 1e-6;   /* double reference: FD noise ~1e-9, ReLU / max-pool kinks rarely crossed */
    for (size_t t = 0; t < p->n; t++) {
        const nn_params_tensor *T = &p->t[t];
        const float *g = p->grad + T->offset;
        double *w = wd + T->offset;
        size_t imax = 0;
        double gmax = 0;
        for (size_t j = 0; j < T->numel; j++)
            if (fabs(g[j]) > gmax) gmax = fabs(g[j]), imax = j;
        /* entries: the largest gradient + 5 random ones */
        double worst = 0;
        int ok = gmax > 0;
        for (int e = 0; e < 6; e++) {
            size_t j = e == 0 ? imax : rng_index(r, T->numel);
            double w0 = w[j];
            w[j] = w0 + h;
            double lp = ref_loss(&rw, N, x, y, mask, NULL);
            w[j] = w0 - h;
            double lm = ref_loss(&rw, N, x, y, mask, NULL);
            w[j] = w0;
            double fd = (lp - lm) / (2 * h), err = fabs(fd - g[j]);
            if (!(err <= 1e-4 * gmax + 1e-3 * fabs(fd))) ok = 0;
            worst = fmax(worst, err / gmax);
        }
        /* a random unit direction over the whole tensor */
        double *dir = mem_new(double, T->numel), nrm = 0, gd = 0;
        for (size_t j = 0; j < T->numel; j++) {
            dir[j] = rng_gaussian(r);
            nrm += dir[j] * dir[j];
        }
        nrm = sqrt(nrm);
        for (size_t j = 0; j < T->numel; j++) gd += (dir[j] /= nrm) * g[j];
        double *w0 = mem_new(double, T->numel);
        memcpy(w0, w, T->numel * sizeof(double));
        for (size_t j = 0; j < T->numel; j++) w[j] = w0[j] + h * dir[j];
        double lp = ref_loss(&rw, N, x, y, mask, NULL);
        for (size_t j = 0; j < T->numel; j++) w[j] = w0[j] - h * dir[j];
        double lm = ref_loss(&rw, N, x, y, mask, NULL);
        memcpy(w, w0, T->numel * sizeof(double));
        double fdd = (lp - lm) / (2 * h), errd = fabs(fdd - gd);
        double gn = 0;
        for (size_t j = 0; j < T->numel; j++) gn += (double)g[j] * g[j];
        gn = sqrt(gn);
        if (!(errd <= 1e-4 * gn + 1e-3 * fabs(fdd))) ok = 0;
        snprintf(name, sizeof name, "%s: dL/d%s vs finite differences (double reference)", train ? "train" : "eval",
                 T->name);
        snprintf(det, sizeof det, "worst entry err / max|g| %.3g; direction: fd %.8g analytic %.8g (|g| %.3g)", worst,
                 fdd, gd, gn);
        test_report(ok, name, det);
        printf("#   %-22s max|g| %.3e  worst entry err/max|g| %.2e  direction rel err %.2e\n", T->name, gmax, worst,
               errd / fmax(fabs(fdd), 1e-30));
        free(dir);
        free(w0);
    }
    free(wd);
    free(mask);
    free(x);
    rng_free(r);
    digitnet_free(m);
}

/* ---------------------------------------------------------------- probabilities, chunking, threads, NaN */

static void test_probs_misc(void)
{
    enum { N = 7 };
    rng *r = rng_alloc(5, 0);
    float *x = mem_new(float, N * D);
    uint8_t y[N] = {0, 1, 2, 3, 4, 5, 6};
    for (int i = 0; i < N * D; i++) x[i] = (float)rng_gaussian(r);
    digitnet *a = digitnet_alloc(2, 3), *b = digitnet_alloc(16, 3);
    float pa[N * K], pb[N * K];
    digitnet_probs(a, N, x, pa);
    digitnet_probs(b, N, x, pb);
    double worst = 0, sumerr = 0;
    int ok;
    for (int i = 0; i < N * K; i++) worst = fmax(worst, fabs(pa[i] - pb[i]));
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += pa[i * K + k];
        sumerr = fmax(sumerr, fabs(s - 1));
    }
    char det[128];
    snprintf(det, sizeof det, "max |diff| %g", worst);
    test_report(worst <= 1e-6, "probs independent of max_batch (2 vs 16)", det);
    snprintf(det, sizeof det, "max |sum - 1| %g", sumerr);
    test_report(sumerr < 1e-5, "probs rows sum to 1", det);
    double acc = digitnet_accuracy(a, N, x, y);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int bk = 0;
        for (int k = 1; k < K; k++)
            if (pa[i * K + k] > pa[i * K + bk]) bk = k;
        right += bk == y[i];
    }
    CHECK_CLOSE(acc, (double)right / N, 0, 0, "accuracy == argmax of probs");

    /* one train step: 1 thread vs 2 threads bitwise, and max_batch 2 vs 16 (chunked gradient) close */
    int nth = omp_get_max_threads();
    digitnet *c = digitnet_alloc(16, 3);
    rng *r1 = rng_alloc(9, 1), *r2 = rng_alloc(9, 1), *r3 = rng_alloc(9, 1);
    omp_set_num_threads(1);
    double l1 = digitnet_train_step(b, N, x, y, 1e-3, r1);
    omp_set_num_threads(2);
    double l2 = digitnet_train_step(c, N, x, y, 1e-3, r2);
    omp_set_num_threads(nth);
    nn_params *pb_ = digitnet_params(b), *pc = digitnet_params(c);
    test_report(l1 == l2 && memcmp(pb_->data, pc->data, pb_->total * sizeof(float)) == 0,
                "train step bitwise independent of the thread count (1 vs 2)", "differs");
    /* the gradient of a batch split into chunks of 2 (max_batch 2) == one chunk of 7, same dropout masks */
    digitnet *a2 = digitnet_alloc(16, 3);
    rng *q1 = rng_alloc(9, 2), *q2 = rng_alloc(9, 2);
    nn_params *pa_ = digitnet_params(a), *pq = digitnet_params(a2);
    nn_params_zero_grad(pa_);
    nn_params_zero_grad(pq);
    double l3 = digitnet_loss(a, N, x, y, q1, 1), l4 = digitnet_loss(a2, N, x, y, q2, 1);
    double gmax = 0;
    worst = 0;
    for (size_t i = 0; i < pa_->total; i++) {
        gmax = fmax(gmax, fabs(pq->grad[i]));
        worst = fmax(worst, fabs(pa_->grad[i] - pq->grad[i]));
    }
    snprintf(det, sizeof det, "loss %.9g vs %.9g, max |grad diff| %g (max |grad| %g)", l3, l4, worst, gmax);
    test_report(fabs(l3 - l4) < 1e-6 && gmax > 0 && worst <= 1e-5 * gmax,
                "gradient over chunks of 2 == one chunk of 7 (train mode, same masks)", det);
    rng_free(q1);
    rng_free(q2);
    digitnet_free(a2);
    digitnet_train_step(a, N, x, y, 1e-3, r3);
    test_report(digitnet_adam_step(a) == 1, "one Adam step counted", "count");

    /* a non-finite loss: no update */
    float *keep = mem_new(float, pa_->total);
    memcpy(keep, pa_->data, pa_->total * sizeof(float));
    x[3 * D + 400] = NAN;   /* one pixel of sample 3 */
    double ln = digitnet_train_step(a, N, x, y, 1e-3, r3);
    test_report(!isfinite(ln) && memcmp(keep, pa_->data, pa_->total * sizeof(float)) == 0 &&
                    digitnet_adam_step(a) == 1,
                "NaN input: non-finite loss returned, parameters untouched", "updated");
    digitnet_probs(a, N, x, pa);
    ok = 1;
    for (int i = 0; i < N * K; i++) ok &= (i / K == 3) ? isnan(pa[i]) : isfinite(pa[i]);
    test_report(ok, "NaN input propagates to that sample's probs only", "no");
    free(keep);
    rng_free(r1);
    rng_free(r2);
    rng_free(r3);
    digitnet_free(a);
    digitnet_free(b);
    digitnet_free(c);
    free(x);
    rng_free(r);
}

/* ---------------------------------------------------------------- checkpoints */

static void write_variant(const char *path, digitnet *m, const char *skip, const char *reshape, const char *arch)
{
    nn_params *p = digitnet_params(m);
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_metadata(w, "format", "scorefusion-digitnet");
    if (arch) safetensors_writer_metadata(w, "architecture", arch);
    int64_t bad[4] = {32, 1, 5, 5};
    for (size_t i = 0; i < p->n; i++) {
        if (skip && strcmp(p->t[i].name, skip) == 0) continue;
        int re = reshape && strcmp(p->t[i].name, reshape) == 0;
        /* the reshaped tensor keeps numel 32*1*5*5 > 288 floats: point at a big enough buffer */
        safetensors_writer_add_f32(w, p->t[i].name, p->t[i].ndim, re ? bad : p->t[i].shape,
                                   re ? p->data + p->t[4].offset : p->data + p->t[i].offset);
    }
    char err[256];
    LOG_CHECK(safetensors_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    safetensors_writer_free(w);
}

static void test_checkpoint(void)
{
    char path[96], bad[96], err[512];
    snprintf(path, sizeof path, "/tmp/test_digitnet_%d.safetensors", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/test_digitnet_bad_%d.safetensors", (int)getpid());
    enum { N = 5 };
    rng *r = rng_alloc(8, 0);
    float *x = mem_new(float, N * D);
    uint8_t y[N] = {1, 2, 3, 4, 5};
    for (int i = 0; i < N * D; i++) x[i] = (float)rng_gaussian(r);
    digitnet *m = digitnet_alloc(4, 17);
    digitnet_train_step(m, N, x, y, 1e-3, r);   /* weights away from the init */
    int rc = digitnet_save(m, path, err, sizeof err);
    test_report(rc == 0, "save checkpoint", err);
    digitnet *l = digitnet_load(path, 3, err, sizeof err);
    test_report(l != NULL, "load checkpoint", err);
    if (l) {
        float a[N * K], b[N * K];
        digitnet_probs(m, N, x, a);
        digitnet_probs(l, N, x, b);
        test_report(memcmp(a, b, sizeof a) == 0, "loaded model gives identical probs", "differs");
        nn_params *pm = digitnet_params(m), *pl = digitnet_params(l);
        test_report(memcmp(pm->data, pl->data, pm->total * sizeof(float)) == 0, "loaded parameters bitwise equal",
                    "differs");
        digitnet_free(l);
    }
    safetensors *st = safetensors_open(path, err, sizeof err);
    int ok = st && safetensors_count(st) == 8 && safetensors_metadata_get(st, "architecture") &&
             strcmp(safetensors_metadata_get(st, "architecture"), digitnet_architecture()) == 0 &&
             safetensors_find(st, "classifier.3.bias") && !safetensors_find(st, "ema.classifier.3.bias");
    test_report(ok, "file: 8 state_dict tensors, architecture in __metadata__", err);
    safetensors_close(st);

    write_variant(bad, m, NULL, "features.0.weight", NULL);
    err[0] = 0;
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(!l && strstr(err, bad) && strstr(err, "features.0.weight") && !strchr(err, '\n'),
                "wrong-shape tensor rejected, one line naming file and tensor", err);
    printf("# message: %s\n", err);
    write_variant(bad, m, "classifier.3.bias", NULL, NULL);
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(!l && strstr(err, bad) && strstr(err, "classifier.3.bias") && strstr(err, "missing"),
                "missing tensor rejected", err);
    printf("# message: %s\n", err);
    write_variant(bad, m, NULL, NULL, "features=[conv5x5(1,32)]");
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(!l && strstr(err, bad) && strstr(err, "architecture") && !strchr(err, '\n'),
                "other architecture in __metadata__ rejected", err);
    printf("# message: %s\n", err);
    /* a plain state_dict (no metadata beyond format) with the right tensors loads */
    write_variant(bad, m, NULL, NULL, NULL);
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(l != NULL, "state_dict without architecture metadata loads", err);
    digitnet_free(l);
    /* corrupt: the first 100 bytes of a good file */
    FILE *f = fopen(path, "rb"), *g = fopen(bad, "wb");
    char buf[100];
    size_t got = fread(buf, 1, sizeof buf, f);
    fwrite(buf, 1, got, g);
    fclose(f);
    fclose(g);
    err[0] = 0;
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(!l && err[0] && strstr(err, bad) && !strchr(err, '\n'), "corrupt file rejected, one line", err);
    printf("# message: %s\n", err);
    unlink(bad);
    err[0] = 0;
    l = digitnet_load(bad, 1, err, sizeof err);
    test_report(!l && strstr(err, bad), "absent file rejected", err);
    unlink(path);
    digitnet_free(m);
    free(x);
    rng_free(r);
}

/* ---------------------------------------------------------------- learnability */

/* class 0: a horizontal bar, class 1: a vertical bar, 3 px thick, random position and length, plus noise;
 * in normalised coordinates (background (0 - mean)/std, ink (1 - mean)/std) */
static void stroke(float *img, int cls, rng *r)
{
    const float bg = (float)((0.0 - DIGITNET_MEAN) / DIGITNET_STD), ink = (float)((1.0 - DIGITNET_MEAN) / DIGITNET_STD);
    int pos = 6 + (int)rng_index(r, 14), a = 3 + (int)rng_index(r, 6), len = 12 + (int)rng_index(r, 8);
    for (int i = 0; i < D; i++) img[i] = bg + 0.3f * (float)rng_gaussian(r);
    for (int t = 0; t < 3; t++)
        for (int s = a; s < a + len && s < 28; s++) {
            int row = cls == 0 ? pos + t : s, col = cls == 0 ? s : pos + t;
            img[row * 28 + col] = ink + 0.3f * (float)rng_gaussian(r);
        }
}

static void test_learn(void)
{
    enum { NTR = 512, NTE = 200, EP = 6 };
    rng *r = rng_alloc(4, 0);
    float *x = mem_new(float, (NTR + NTE) * D);
    uint8_t *y = mem_new(uint8_t, NTR + NTE);
    for (int i = 0; i < NTR + NTE; i++) {
        y[i] = (uint8_t)(i % 2 ? 7 : 9);   /* two of the ten classes, as the experiment's 7 / 9 */
        stroke(x + (size_t)i * D, y[i] == 9, r);
    }
    digitnet *m = digitnet_alloc(64, 2);
    digitnet_train_opts o = digitnet_train_opts_default();
    o.epochs = EP;
    o.batch = 32;   /* 16 steps per epoch; the default shift augmentation (2 px) stays on */
    double el[EP];
    double t0 = log_now();
    double last = digitnet_train(m, NTR, x, y, &o, r, el);
    double acc = digitnet_accuracy(m, NTE, x + (size_t)NTR * D, y + NTR);
    char det[160];
    snprintf(det, sizeof det, "epoch losses %.4f %.4f %.4f %.4f %.4f %.4f", el[0], el[1], el[2], el[3], el[4], el[5]);
    test_report(isfinite(last) && last == el[EP - 1] && el[EP - 1] < 0.1 * el[0] && el[0] < log(10.0),
                "training loss drops (last epoch < first / 10)", det);
    snprintf(det, sizeof det, "held-out accuracy %.4f", acc);
    test_report(acc == 1.0, "two synthetic classes learnt: 100% held-out accuracy", det);
    printf("# learnability: %s, epoch losses %.4f .. %.4f, %d epochs of %d, %.2f s\n", det, el[0], el[EP - 1], EP,
           NTR, log_now() - t0);
    digitnet_free(m);
    free(x);
    free(y);
    rng_free(r);
}

int main(void)
{
    log_set_quiet(1);
    test_layout();
    test_pool();
    test_gradients(0);
    test_gradients(1);
    test_probs_misc();
    test_checkpoint();
    test_learn();
    return test_finish();
}
