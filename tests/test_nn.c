/* test_nn: the CPU neural-network engine (common/nn/): every backward against central finite differences
 * (linear: din, dW, db; SiLU; ReLU; the whole mlp1d DSM loss w.r.t. every parameter tensor and some inputs),
 * the fast paths against naive double references, the vectorised exp, Adam against a hand-computed step,
 * EMA warm-up decays, parameter carving, mlp1d checkpoints (bitwise round trip + every rejection path),
 * the early-stopping state machine and the training loop's checkpoint policies on scripted losses, and an
 * end-to-end training on N(0,1) data that must approach the exact DSM optimum and learn the score -x/(1+std^2).
 * Run with OMP_NUM_THREADS=1 on shared machines; results do not depend on the thread count. */
#include "act.h"
#include "adam.h"
#include "ema.h"
#include "fourier.h"
#include "linear.h"
#include "log.h"
#include "mem.h"
#include "mlp1d.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "sde.h"
#include "test.h"
#include "train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fill_uniform(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* ---------------------------------------------------------------- linear */

static double lin_obj(const float *out, const float *R, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

static void test_linear_fd(rng *r)
{
    const int B = 3, IC = 5, OC = 4;
    float in[15], W[20], b[4], R[12], out[12], din[15] = {0}, dW[20] = {0}, db[4] = {0};
    fill_uniform(r, in, 15, -1, 1);
    fill_uniform(r, W, 20, -1, 1);
    fill_uniform(r, b, 4, -1, 1);
    fill_uniform(r, R, 12, -1, 1);
    nn_linear_forward(out, in, W, b, B, IC, OC);
    nn_linear_backward(din, dW, db, R, in, W, B, IC, OC);   /* dL/dout = R for L = <out, R> */
    const float h = 1e-2f;
    double e_in = 0, e_w = 0, e_b = 0;
    float *arrs[3] = {in, W, b}, *grads[3] = {din, dW, db};
    int lens[3] = {15, 20, 4};
    double *errs[3] = {&e_in, &e_w, &e_b};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < lens[a]; i++) {
            float keep = arrs[a][i];
            arrs[a][i] = keep + h;
            nn_linear_forward(out, in, W, b, B, IC, OC);
            double lp = lin_obj(out, R, 12);
            arrs[a][i] = keep - h;
            nn_linear_forward(out, in, W, b, B, IC, OC);
            double lm = lin_obj(out, R, 12);
            arrs[a][i] = keep;
            double fd = (lp - lm) / (2 * h), e = fabs(fd - grads[a][i]);
            if (e > *errs[a]) *errs[a] = e;
        }
    CHECK_CLOSE(e_in, 0, 2e-5, 0, "linear backward din vs central FD");
    CHECK_CLOSE(e_w, 0, 2e-5, 0, "linear backward dW vs central FD");
    CHECK_CLOSE(e_b, 0, 2e-5, 0, "linear backward db vs central FD");
    /* accumulation: a second call doubles every gradient; NULL outputs are skipped */
    float din2[15], dW2[20], db2[4];
    memcpy(din2, din, sizeof din);
    memcpy(dW2, dW, sizeof dW);
    memcpy(db2, db, sizeof db);
    nn_linear_backward(din2, dW2, db2, R, in, W, B, IC, OC);
    nn_linear_backward(NULL, NULL, NULL, R, in, W, B, IC, OC);
    double e2 = 0;
    for (int i = 0; i < 15; i++) e2 = fmax(e2, fabs(din2[i] - 2 * din[i]));
    for (int i = 0; i < 20; i++) e2 = fmax(e2, fabs(dW2[i] - 2 * dW[i]));
    for (int i = 0; i < 4; i++) e2 = fmax(e2, fabs(db2[i] - 2 * db[i]));
    CHECK_CLOSE(e2, 0, 1e-6, 0, "linear backward accumulates (+=) into din, dW, db");
}

/* fast path (and the large-layer fallback) against naive double loops, odd sizes, with and without bias */
static void test_linear_ref(rng *r, int B, int IC, int OC, int with_bias, const char *name)
{
    size_t nin = (size_t)B * IC, nout = (size_t)B * OC, nw = (size_t)OC * IC;
    float *in = mem_new(float, nin), *W = mem_new(float, nw), *b = mem_new(float, (size_t)OC);
    float *out = mem_new(float, nout), *g = mem_new(float, nout), *din = mem_new(float, nin);
    float *dW = mem_new(float, nw), *db = mem_new(float, (size_t)OC), *out2 = mem_new(float, nout);
    fill_uniform(r, in, nin, -1, 1);
    fill_uniform(r, W, nw, -1, 1);
    fill_uniform(r, b, (size_t)OC, -1, 1);
    fill_uniform(r, g, nout, -1, 1);
    const float *bb = with_bias ? b : NULL;
    nn_linear_forward(out, in, W, bb, B, IC, OC);
    fill_uniform(r, out2, nout, -1, 1);
    float *base = mem_new(float, nout);
    memcpy(base, out2, nout * sizeof *base);
    nn_linear_forward_add(out2, in, W, bb, B, IC, OC);
    nn_linear_backward(din, dW, db, g, in, W, B, IC, OC);
    double ef = 0, ea = 0, ei = 0, ew = 0, eb = 0;
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OC; o++) {
            double s = with_bias ? b[o] : 0;
            for (int i = 0; i < IC; i++) s += (double)in[n * IC + i] * W[o * IC + i];
            ef = fmax(ef, fabs(out[n * OC + o] - s));
            ea = fmax(ea, fabs(out2[n * OC + o] - (base[n * OC + o] + s)));
        }
    for (int n = 0; n < B; n++)
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)g[n * OC + o] * W[o * IC + i];
            ei = fmax(ei, fabs(din[n * IC + i] - s));
        }
    for (int o = 0; o < OC; o++) {
        double sb = 0;
        for (int n = 0; n < B; n++) sb += g[n * OC + o];
        eb = fmax(eb, fabs(db[o] - sb));
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int n = 0; n < B; n++) s += (double)g[n * OC + o] * in[n * IC + i];
            ew = fmax(ew, fabs(dW[o * IC + i] - s));
        }
    }
    double tol = 1e-5 * sqrt((double)(IC > B ? IC : B) + OC);
    char nm[160];
    double errs[5] = {ef, ea, ei, ew, eb};
    const char *what[5] = {"forward", "forward_add", "din", "dW", "db"};
    for (int k = 0; k < 5; k++) {
        snprintf(nm, sizeof nm, "linear %s vs double reference (%s)", what[k], name);
        CHECK_CLOSE(errs[k], 0, tol, 0, nm);
    }
    free(in); free(W); free(b); free(out); free(g); free(din); free(dW); free(db); free(out2); free(base);
}

/* ---------------------------------------------------------------- activations */

static void test_act(void)
{
    double maxrel = 0;
    for (double x = -87.0; x < 88.0; x += 0.00317) {
        double e = exp((double)(float)x);
        maxrel = fmax(maxrel, fabs(nn_act_expf((float)x) - e) / e);
    }
    CHECK_CLOSE(maxrel, 0, 3e-7, 0, "nn_act_expf max relative error on [-87, 88]");
    CHECK(nn_act_expf(-1000.0f) >= 0.0f && nn_act_expf(-1000.0f) < 1e-37f && isfinite(nn_act_expf(1000.0f)),
          "nn_act_expf saturates without inf/nan");
    CHECK(isnan(nn_act_expf(NAN)), "nn_act_expf propagates NaN");

    enum { N = 41 };
    float x[N], y[N], yp[N], ym[N], g[N], din[N];
    for (int i = 0; i < N; i++) {
        x[i] = -10.0f + 0.5f * (float)i + 0.013f;
        g[i] = 1.0f;
        din[i] = 0.5f;   /* accumulation check: result must be 0.5 + derivative */
    }
    nn_silu_forward(y, x, N);
    double ey = 0;
    for (int i = 0; i < N; i++) ey = fmax(ey, fabs(y[i] - x[i] / (1.0 + exp(-(double)x[i]))));
    CHECK_CLOSE(ey, 0, 2e-6, 0, "SiLU forward vs x sigmoid(x)");
    nn_silu_backward(din, g, x, N);
    double ed = 0;
    const double h = 1e-2;
    for (int i = 0; i < N; i++) {
        /* central difference in double of the float forward at +-h (smooth: O(h^2) error) */
        float xp = (float)(x[i] + h), xm = (float)(x[i] - h);
        nn_silu_forward(yp + i, &xp, 1);
        nn_silu_forward(ym + i, &xm, 1);
        double fd = ((double)yp[i] - ym[i]) / ((double)xp - xm);
        ed = fmax(ed, fabs(din[i] - 0.5 - fd));
    }
    CHECK_CLOSE(ed, 0, 1e-4, 0, "SiLU backward (accumulating) vs central FD");
    float r[4] = {-1.5f, -0.2f, 0.3f, 2.0f}, ry[4], rd[4] = {0}, rg[4] = {1, 2, 3, 4};
    nn_relu_forward(ry, r, 4);
    nn_relu_backward(rd, rg, r, 4);
    CHECK(ry[0] == 0 && ry[1] == 0 && ry[2] == 0.3f && ry[3] == 2.0f && rd[0] == 0 && rd[1] == 0 && rd[2] == 3 &&
              rd[3] == 4,
          "ReLU forward/backward (derivative 0/1 away from the kink, as FD gives)");
}

static void test_fourier(void)
{
    float W[3] = {0.5f, -1.25f, 3.0f}, t[2] = {0.1f, 0.7f}, out[12], out0[12];
    nn_fourier_forward(out, t, 1, W, 2, 3);
    double e = 0;
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 3; j++) {
            double ph = 2 * M_PI * (double)t[b] * W[j];
            e = fmax(e, fabs(out[b * 6 + j] - sin(ph)));
            e = fmax(e, fabs(out[b * 6 + 3 + j] - cos(ph)));
        }
    CHECK_CLOSE(e, 0, 1e-7, 0, "Fourier features [sin 2 pi t W, cos 2 pi t W]");
    nn_fourier_forward(out0, t + 1, 0, W, 2, 3);
    CHECK(memcmp(out0, out + 6, 6 * sizeof(float)) == 0 && memcmp(out0 + 6, out + 6, 6 * sizeof(float)) == 0,
          "Fourier t_stride 0 shares t[0]");
}

/* ---------------------------------------------------------------- params, adam, ema */

static void test_params(void)
{
    nn_params *p = nn_params_alloc();
    int64_t s1[1] = {5}, s2[2] = {2, 3}, s3[1] = {17};
    size_t a = nn_params_add(p, "a", 1, s1, 1), b = nn_params_add(p, "b.weight", 2, s2, 1);
    size_t c = nn_params_add(p, "c", 1, s3, 0);
    nn_params_finalize(p);
    CHECK(a == 0 && b == 1 && c == 2, "params: indices in insertion order");
    CHECK(p->t[0].offset == 0 && p->t[1].offset == 16 && p->t[2].offset == 32 && p->total == 64,
          "params: offsets aligned to 16 floats (0, 16, 32; total 64)");
    CHECK(p->t[1].numel == 6 && p->t[1].ndim == 2 && p->t[1].shape[1] == 3, "params: shape and numel recorded");
    CHECK(nn_params_find(p, "b.weight") == 1 && nn_params_find(p, "nope") == (size_t)-1, "params: lookup by name");
    CHECK(nn_params_count(p) == 11, "params: count excludes fixed (non-trainable) tensors");
    CHECK(!nn_params_has_train(p) && !p->grad && !p->m && !p->v && !p->ema && !p->keep &&
              nn_params_weights(p, 1) == p->data,
          "params: weights only until a trainer asks (the EMA is the weights)");
    float *pb = nn_params_get(p, p->data, b);
    pb[5] = 7.0f;
    CHECK(nn_params_train(p) == p && nn_params_has_train(p), "params: trainer state allocated on request");
    CHECK(((uintptr_t)p->data % 64) == 0 && ((uintptr_t)p->grad % 64) == 0 && ((uintptr_t)p->ema % 64) == 0 &&
              ((uintptr_t)p->m % 64) == 0,
          "params: buffers 64-byte aligned");
    CHECK(p->data[21] == 7.0f && p->m[21] == 0.0f && p->v[21] == 0.0f && p->grad[21] == 0.0f && p->ema[21] == 7.0f,
          "params: carving, zeroed moments, EMA starts as a copy");
    float *g0 = p->grad;
    p->ema[21] = 3.0f;
    CHECK(nn_params_train(p) == p && p->grad == g0 && p->ema[21] == 3.0f && nn_params_weights(p, 1) == p->ema,
          "params: a second request keeps the state");
    nn_params_free(p);
}

static void test_adam(void)
{
    nn_adam a = nn_adam_default();
    float p[1] = {1.0f}, m[1] = {0}, v[1] = {0}, g[1] = {0.5f};
    nn_adam_step(&a, 0.1, p, g, m, v, 1);
    /* step 1: m = 0.05, v = 2.5e-4, mhat = 0.5, vhat = 0.25 -> p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) */
    CHECK_CLOSE(p[0], 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 2e-7, 0, "Adam step 1 (bias-corrected) by hand");
    g[0] = -1.0f;
    nn_adam_step(&a, 0.1, p, g, m, v, 1);
    double m2 = 0.9 * 0.05 - 0.1, v2 = 0.999 * 2.5e-4 + 0.001;
    double want = (1.0 - 0.1 * 0.5 / (0.5 + 1e-8)) - (0.1 / (1 - 0.81)) * m2 / (sqrt(v2) / sqrt(1 - 0.998001) + 1e-8);
    CHECK_CLOSE(m[0], m2, 0, 1e-6, "Adam first moment after 2 steps");
    CHECK_CLOSE(v[0], v2, 0, 1e-6, "Adam second moment after 2 steps");
    CHECK_CLOSE(p[0], want, 3e-7, 0, "Adam step 2 by hand");
    CHECK(a.step == 2, "Adam counts steps");
}

static void test_ema(void)
{
    CHECK_CLOSE(nn_ema_decay_at(0.999, 1), 2.0 / 11.0, 1e-15, 0, "EMA warm-up decay n=1 is 2/11");
    CHECK_CLOSE(nn_ema_decay_at(0.999, 2), 3.0 / 12.0, 1e-15, 0, "EMA warm-up decay n=2 is 3/12");
    CHECK_CLOSE(nn_ema_decay_at(0.999, 100), 101.0 / 110.0, 1e-15, 0, "EMA warm-up decay n=100 is 101/110");
    CHECK(nn_ema_decay_at(0.999, 8989) < 0.999 && nn_ema_decay_at(0.999, 8991) == 0.999,
          "EMA decay reaches its cap 0.999 at n ~ 8990");
    nn_ema e = nn_ema_init(0.999);
    float sh[2] = {1.0f, 4.0f}, p[2] = {0.0f, 4.0f};
    double d = nn_ema_update(&e, sh, p, 2);
    CHECK(e.num_updates == 1 && d == 2.0 / 11.0, "EMA first update uses n = 1");
    CHECK_CLOSE(sh[0], 2.0 / 11.0, 1e-7, 0, "EMA shadow -= (1-d)(shadow - p)");
    CHECK(sh[1] == 4.0f, "EMA of a constant stays exact");
    nn_ema_update(&e, sh, p, 2);
    CHECK_CLOSE(sh[0], (2.0 / 11.0) * (3.0 / 12.0), 1e-7, 0, "EMA second update uses n = 2");
}

/* ---------------------------------------------------------------- mlp1d gradients */

static void test_mlp1d_grad(void)
{
    sde s = sde_ve(25.0);
    mlp1d_config c = {4, 3, 3, 2.0, 1.0};
    mlp1d *m = mlp1d_alloc(&c, &s, 7);
    nn_params *p = mlp1d_params(m);
    enum { N = 5 };
    float x0[N] = {-1.3f, 0.4f, 2.2f, -0.1f, 0.9f}, t[N] = {0.05f, 0.3f, 0.55f, 0.8f, 0.97f};
    float z[N] = {0.7f, -1.1f, 0.2f, 1.6f, -0.4f}, dx0[N];
    nn_params_zero_grad(p);
    double L0 = mlp1d_loss_at(m, 0, N, x0, t, z, dx0, 1);
    CHECK(isfinite(L0) && L0 > 0, "mlp1d loss finite and positive");
    int all_ok = 1;
    for (size_t k = 0; k < p->n; k++) {
        const nn_params_tensor *tt = &p->t[k];
        double num = 0, den = 0, gmax = 0;
        for (size_t i = 0; i < tt->numel; i++) {
            float *w = p->data + tt->offset + i;
            float keep = *w;
            double h = 1e-2 * fmax(1.0, fabs(keep));
            *w = (float)(keep + h);
            double hp = (double)*w - keep;
            double lp = mlp1d_loss_at(m, 0, N, x0, t, z, NULL, 0);
            *w = (float)(keep - h);
            double hm = keep - (double)*w;
            double lm = mlp1d_loss_at(m, 0, N, x0, t, z, NULL, 0);
            *w = keep;
            double fd = (lp - lm) / (hp + hm), g = p->grad[tt->offset + i];
            if (!tt->trainable) fd = 0;   /* fixed Fourier frequencies: no gradient is kept */
            num += (fd - g) * (fd - g);
            den += fd * fd;
            gmax = fmax(gmax, fabs(g));
        }
        double rel = sqrt(num) / (sqrt(den) + 1e-6);
        char nm[160];
        snprintf(nm, sizeof nm, "mlp1d dL/d%s vs central FD (relative L2 error %.2e)", tt->name, rel);
        int ok = rel < 1e-2 || sqrt(num) < 1e-4;
        if (!ok) all_ok = 0;
        test_report(ok, nm, "relative error above 1e-2");
    }
    (void)all_ok;
    double ex = 0, sx = 0;
    for (int i = 0; i < N; i++) {
        float keep = x0[i];
        x0[i] = keep + 1e-2f;
        double lp = mlp1d_loss_at(m, 0, N, x0, t, z, NULL, 0);
        x0[i] = keep - 1e-2f;
        double lm = mlp1d_loss_at(m, 0, N, x0, t, z, NULL, 0);
        x0[i] = keep;
        double fd = (lp - lm) / 2e-2;
        ex = fmax(ex, fabs(fd - dx0[i]));
        sx = fmax(sx, fabs(fd));
    }
    CHECK_CLOSE(ex, 0, 1e-2 * sx + 1e-4, 0, "mlp1d dL/dx0 vs central FD (all 5 inputs)");
    mlp1d_free(m);
}

static void test_mlp1d_eval_paths(void)
{
    sde s = sde_ve(25.0);
    mlp1d_config c = mlp1d_config_default();
    mlp1d *m = mlp1d_alloc(&c, &s, 3);
    size_t want = (size_t)(16 * 0 + 32 * 32 + 32) + (32 + 32) + 2 * (32 * 32 + 32) + 3 * (32 * 32 + 32) + 33;
    CHECK(mlp1d_num_params(m) == want, "mlp1d default parameter count (fixed Fourier W excluded)");
    enum { N = 37 };
    float x[N], t[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        x[i] = -3.0f + 0.17f * (float)i;
        t[i] = 0.4f;
    }
    score_model sm = mlp1d_score_model(m, 0);
    score_eval(&sm, N, t, 0, x, a);
    score_eval(&sm, N, t, 1, x, b);
    double e = 0, sc = 0;
    for (int i = 0; i < N; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        sc = fmax(sc, fabs(b[i]));
    }
    CHECK_CLOSE(e, 0, 1e-5 * sc + 1e-7, 0, "mlp1d shared-t (sampler) path == per-sample path");
    /* batch growth: a larger batch after a smaller one, then a smaller one again, same answers */
    float xb[1000], tb[1000], ob[1000];
    for (int i = 0; i < 1000; i++) {
        xb[i] = x[i % N];
        tb[i] = 0.4f;
    }
    score_eval(&sm, 1000, tb, 0, xb, ob);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= ob[i] == a[i % N];
    score_eval(&sm, 3, t, 0, x, ob);
    for (int i = 0; i < 3; i++) same &= ob[i] == a[i];
    CHECK(same, "mlp1d eval handles any batch size (workspace grows) with identical results");
    mlp1d_free(m);
}

/* ---------------------------------------------------------------- checkpoints */

static void test_mlp1d_io(void)
{
    char dir[] = "/tmp/sf_test_nn_XXXXXX";
    if (!mkdtemp(dir)) {
        test_report(0, "mkdtemp", "cannot create a temp dir");
        return;
    }
    char path[256], bad[256], err[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    sde s = sde_ve(25.0);
    mlp1d_config c = {8, 2, 4, 16.0, 1.0};
    mlp1d *m = mlp1d_alloc(&c, &s, 11);
    rng *r = rng_alloc(5, 1);
    float x0[64];
    rng_gaussian_fill(r, x0, 64);
    for (int k = 0; k < 5; k++) mlp1d_train_step(m, 64, x0, 1e-5, 1.0, 1e-2, r);
    CHECK(mlp1d_save(m, path, err, sizeof err) == 0, "mlp1d_save writes a checkpoint");
    mlp1d *m2 = mlp1d_load(path, &s, err, sizeof err);
    CHECK(m2 != NULL, "mlp1d_load reads it back");
    if (m2) {
        float t[16], x[16], a[16], b[16];
        int same = 1;
        for (int i = 0; i < 16; i++) {
            t[i] = 0.01f + 0.06f * (float)i;
            x[i] = -4.0f + 0.5f * (float)i;
        }
        for (int ue = 0; ue < 2; ue++)
            for (int ts = 0; ts < 2; ts++) {
                score_model s1 = mlp1d_score_model(m, ue), s2 = mlp1d_score_model(m2, ue);
                score_eval(&s1, 16, t, (size_t)ts, x, a);
                score_eval(&s2, 16, t, (size_t)ts, x, b);
                same &= memcmp(a, b, sizeof a) == 0;
            }
        CHECK(same, "mlp1d save/load round trip: bitwise equal outputs (params and EMA, both t paths)");
        CHECK(mlp1d_get_config(m2)->width == 8 && mlp1d_get_config(m2)->depth == 2 &&
                  mlp1d_get_config(m2)->fourier_scale == 16.0,
              "mlp1d_load restores the config from __metadata__");
        mlp1d_free(m2);
    }
    /* rejection paths */
    snprintf(bad, sizeof bad, "%s/missing.safetensors", dir);
    err[0] = 0;
    CHECK(mlp1d_load(bad, &s, err, sizeof err) == NULL && strstr(err, "missing.safetensors") && !strchr(err, '\n'),
          "mlp1d_load: missing file -> NULL + one line naming it");
    sde s2 = sde_ve(30.0);
    err[0] = 0;
    CHECK(mlp1d_load(path, &s2, err, sizeof err) == NULL && strstr(err, "SDE"), "mlp1d_load: SDE mismatch rejected");
    /* truncated copy */
    FILE *f = fopen(path, "rb");
    static unsigned char buf[1 << 16];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    snprintf(bad, sizeof bad, "%s/trunc.safetensors", dir);
    f = fopen(bad, "wb");
    if (f) {
        fwrite(buf, 1, len - 7, f);
        fclose(f);
    }
    err[0] = 0;
    CHECK(mlp1d_load(bad, &s, err, sizeof err) == NULL && strstr(err, "trunc.safetensors"),
          "mlp1d_load: truncated (corrupt) file rejected");
    /* right metadata, wrong shapes: metadata says width 8, tensors come from a width-4 model */
    mlp1d_config c4 = {4, 2, 4, 16.0, 1.0};
    mlp1d *m4 = mlp1d_alloc(&c4, &s, 1);
    snprintf(bad, sizeof bad, "%s/shape.safetensors", dir);
    mlp1d_save(m4, bad, err, sizeof err);
    safetensors *st = safetensors_open(bad, err, sizeof err);
    safetensors_writer *w = safetensors_writer_alloc();
    for (size_t i = 0; st && i < safetensors_metadata_count(st); i++)
        safetensors_writer_metadata(w, safetensors_metadata_key(st, i), safetensors_metadata_value(st, i));
    safetensors_writer_metadata(w, "width", "8");
    for (size_t i = 0; st && i < safetensors_count(st); i++) {
        const safetensors_tensor *tt = safetensors_at(st, i);
        safetensors_writer_add(w, tt->name, tt->dtype, tt->ndim, tt->shape, tt->data);
    }
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    safetensors_close(st);
    err[0] = 0;
    CHECK(mlp1d_load(bad, &s, err, sizeof err) == NULL && strstr(err, "expected F32"),
          "mlp1d_load: wrong tensor shape rejected with the expected shape in the message");
    printf("    (message: %s)\n", err);
    /* not an mlp1d file */
    w = safetensors_writer_alloc();
    float one = 1;
    int64_t sh1[1] = {1};
    safetensors_writer_add_f32(w, "x", 1, sh1, &one);
    snprintf(bad, sizeof bad, "%s/other.safetensors", dir);
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    err[0] = 0;
    CHECK(mlp1d_load(bad, &s, err, sizeof err) == NULL && strstr(err, "not an mlp1d checkpoint"),
          "mlp1d_load: a foreign safetensors file rejected");
    /* a NaN weight in a file whose checksum is consistent (re-saved by a tool): refused, naming the tensor
     * (issue 11: a NaN weight became "100% digit 0" in a table) */
    st = safetensors_open(path, err, sizeof err);
    w = safetensors_writer_alloc();
    float *nanbuf = NULL;
    const char *victim = NULL;
    for (size_t i = 0; st && i < safetensors_metadata_count(st); i++)
        safetensors_writer_metadata(w, safetensors_metadata_key(st, i), safetensors_metadata_value(st, i));
    for (size_t i = 0; st && i < safetensors_count(st); i++) {
        const safetensors_tensor *tt = safetensors_at(st, i);
        const void *data = tt->data;
        if (!victim && tt->dtype == SAFETENSORS_F32 && tt->numel > 3 && strncmp(tt->name, "ema.", 4) != 0) {
            victim = tt->name;
            nanbuf = malloc(tt->nbytes);
            memcpy(nanbuf, tt->data, tt->nbytes);
            nanbuf[3] = NAN;
            data = nanbuf;
        }
        safetensors_writer_add(w, tt->name, tt->dtype, tt->ndim, tt->shape, data);
    }
    snprintf(bad, sizeof bad, "%s/nan.safetensors", dir);
    safetensors_writer_write(w, bad, err, sizeof err);
    safetensors_writer_free(w);
    char want[160];
    snprintf(want, sizeof want, "tensor '%s' has a non-finite value", victim ? victim : "?");
    err[0] = 0;
    CHECK(victim && mlp1d_load(bad, &s, err, sizeof err) == NULL && strstr(err, want) && strstr(err, "nan.safetensors") &&
              strstr(err, "element 3"),
          "mlp1d_load: a NaN weight is refused, naming the tensor and the file");
    printf("    (message: %s)\n", err);
    safetensors_close(st);
    free(nanbuf);
    mlp1d_free(m4);
    mlp1d_free(m);
    rng_free(r);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("    (could not remove %s)\n", dir);
}

/* ---------------------------------------------------------------- early stopping + train loop */

static void test_stopper(void)
{
    /* patience 2, max_fraction 0.5, countdown 3 */
    double vals[8] = {10, 9, 20, 9.5, 30, 5, 100, 100};
    int better[8] = {1, 1, 0, 0, 0, 1, 0, 0}, dostop[8] = {0, 0, 0, 0, 1, 0, 0, 1}, fin[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    train_stopper s;
    train_stopper_init(&s, 2, 0.5, 3, NULL, 0);
    int ok = 1;
    for (int e = 0; e < 8; e++) {
        train_stop_event ev = train_stopper_epoch(&s, e, vals[e]);
        ok &= ev.better == better[e] && ev.do_stop == dostop[e] && ev.finish == fin[e];
    }
    CHECK(ok, "stopper: better/bad/neutral epochs, counter resets only on improvement, trigger, countdown");
    /* countdown: trigger at epoch 1 with patience 1 and countdown 2 -> epochs 2, 3 run, finish after 3 */
    train_stopper_init(&s, 1, 0.0, 2, NULL, 0);
    train_stopper_epoch(&s, 0, 1.0);
    train_stop_event e1 = train_stopper_epoch(&s, 1, 2.0), e2 = train_stopper_epoch(&s, 2, 0.5),
                     e3 = train_stopper_epoch(&s, 3, 0.6);
    CHECK(e1.do_stop && !e1.finish && e2.better && !e2.finish && e3.finish,
          "stopper: `countdown` more epochs after the trigger, even if the loss improves");
    /* countdown 0: finish on the trigger epoch */
    train_stopper_init(&s, 1, 0.0, 0, NULL, 0);
    train_stopper_epoch(&s, 0, 1.0);
    CHECK(train_stopper_epoch(&s, 1, 1.5).finish, "stopper: countdown 0 finishes on the trigger epoch");
    /* decay points halve max_fraction at the listed epoch */
    int dp[1] = {1};
    train_stopper_init(&s, 1, 1.0, 5, dp, 1);
    train_stopper_epoch(&s, 0, 1.0);
    CHECK(train_stopper_epoch(&s, 1, 1.6).do_stop && s.max_fraction == 0.5,
          "stopper: decay point halves max_fraction before judging the epoch");
    /* equal to best*(1+f) is not bad; NaN is neither better nor bad (as in Python) */
    train_stopper_init(&s, 1, 0.5, 5, NULL, 0);
    train_stopper_epoch(&s, 0, 2.0);
    train_stop_event eq = train_stopper_epoch(&s, 1, 3.0), en = train_stopper_epoch(&s, 2, NAN);
    CHECK(!eq.do_stop && !eq.better && !en.do_stop && !en.better, "stopper: boundary and NaN semantics");
}

typedef struct {
    const double *val;
    int epoch, steps, snap_epoch, snap_from_ema, restored, nan_epoch;
    size_t val_sizes[16];
} fake_model;

static double fake_step(void *ctx, size_t n, const float *x0, double lo, double hi, double lr, rng *r)
{
    fake_model *f = ctx;
    (void)n; (void)x0; (void)lo; (void)hi; (void)lr; (void)r;
    f->steps++;
    return f->epoch == f->nan_epoch ? NAN : 1.0;
}
static double fake_eval(void *ctx, int use_ema, size_t n, const float *x0, double lo, double hi, rng *r)
{
    fake_model *f = ctx;
    (void)x0; (void)lo; (void)hi; (void)r;
    if (use_ema) {
        if (f->epoch < 16) f->val_sizes[f->epoch] = n;
        return f->val[f->epoch];
    }
    double v = 2.0 * f->val[f->epoch];
    f->epoch++;   /* raw eval is the last call of an epoch */
    return v;
}
static void fake_snap(void *ctx, int from_ema)
{
    fake_model *f = ctx;
    f->snap_epoch = f->epoch - 1;   /* called after both evals of the epoch */
    f->snap_from_ema = from_ema;
}
static void fake_restore(void *ctx) { ((fake_model *)ctx)->restored = 1; }

static void test_train_loop(void)
{
    double vals[12] = {10, 9, 20, 9.5, 30, 5, 100, 100, 1, 1, 1, 1};
    float xt[10], xv[5];
    for (int i = 0; i < 10; i++) xt[i] = (float)i;
    for (int i = 0; i < 5; i++) xv[i] = (float)i;
    train_keep keeps[3] = {TRAIN_KEEP_PAPER, TRAIN_KEEP_BEST_EMA, TRAIN_KEEP_PAPER_EXP};
    int want_kept[3] = {6, 5, 6}, want_from_ema[3] = {1, 1, 0};
    for (int k = 0; k < 3; k++) {
        fake_model f = {vals, 0, 0, -1, -1, 0, -1, {0}};
        train_model tm = {.ctx = &f, .dim = 1, .train_step = fake_step, .eval_loss = fake_eval, .snapshot = fake_snap,
                      .restore = fake_restore};
        train_config c = train_config_default();
        c.max_epochs = 12;
        c.batch = 4;
        c.val_batch = 2;
        c.patience = 2;
        c.max_fraction = 0.5;
        c.countdown = 3;
        c.keep = keeps[k];
        rng *r = rng_alloc(1, 2);
        train_result res;
        train_status st = train_run(&tm, &c, 10, xt, 5, xv, r, &res);
        char nm[200];
        snprintf(nm, sizeof nm, "train loop (%s): 8 epochs, trigger 4, best 5, kept epoch %d (%s weights)",
                 train_keep_name(keeps[k]), want_kept[k], want_from_ema[k] ? "EMA" : "raw");
        CHECK(st == TRAIN_OK && res.epochs_run == 8 && res.trigger_epoch == 4 && res.best_epoch == 5 &&
                  res.best_val == 5 && res.kept_epoch == want_kept[k] && f.snap_epoch == want_kept[k] &&
                  f.snap_from_ema == want_from_ema[k] && f.restored,
              nm);
        if (k == 0) {
            CHECK(f.steps == 24, "train loop: 3 minibatches per epoch (10 samples, batch 4, last one partial)");
            CHECK(f.val_sizes[0] == 2 && f.val_sizes[1] == 2 && f.val_sizes[2] == 1 && f.val_sizes[3] == 2,
                  "train loop: one val batch per epoch, cycling through the (partial-last) val batches");
            CHECK(res.ema_val_loss[5] == 5 && res.val_loss[5] == 10 && res.train_loss[3] == 1.0 &&
                      res.train_loss_last[3] == 1.0,
                  "train loop: per-epoch train / val / EMA val records");
        }
        train_result_free(&res);
        rng_free(r);
    }
    fake_model f = {vals, 0, 0, -1, -1, 0, 2, {0}};
    train_model tm = {.ctx = &f, .dim = 1, .train_step = fake_step, .eval_loss = fake_eval, .snapshot = fake_snap,
                      .restore = fake_restore};
    train_config c = train_config_default();
    c.max_epochs = 12;
    c.batch = 4;
    c.val_batch = 2;
    rng *r = rng_alloc(1, 2);
    train_result res;
    CHECK(train_run(&tm, &c, 10, xt, 5, xv, r, &res) == TRAIN_NONFINITE && res.bad_epoch == 2 &&
              res.epochs_run == 3 && strcmp(res.what, "train loss") == 0,
          "train loop: a non-finite loss stops with TRAIN_NONFINITE naming the epoch");
    train_result_free(&res);
    rng_free(r);
}

/* ---------------------------------------------------------------- end to end */

static void test_end_to_end(void)
{
    sde s = sde_ve(25.0);
    mlp1d_config c = mlp1d_config_default();
    mlp1d *m = mlp1d_alloc(&c, &s, 2024);
    rng *rd = rng_alloc(9, 0);
    enum { NT = 4096, NV = 1024, NE = 8192 };
    float *xt = mem_new(float, NT), *xv = mem_new(float, NV), *xe = mem_new(float, NE);
    rng_gaussian_fill(rd, xt, NT);
    rng_gaussian_fill(rd, xv, NV);
    rng_gaussian_fill(rd, xe, NE);
    /* exact optimum of the DSM loss for N(0,1) data under VE: E_t[1 / (1 + std(t)^2)], t ~ U[1e-5, 1] */
    double opt = 0;
    const int K = 20000;
    for (int k = 0; k < K; k++) {
        double t = 1e-5 + (1 - 1e-5) * (k + 0.5) / K, sd = sde_std(&s, t);
        opt += 1.0 / (1.0 + sd * sd) / K;
    }
    double before = 0, after = 0;
    for (int rep = 0; rep < 4; rep++) {
        rng *re = rng_alloc(77, (uint64_t)rep);
        before += mlp1d_eval_loss(m, 1, NE, xe, 1e-5, 1.0, re) / 4;
        rng_free(re);
    }
    train_config tc = train_config_default();
    tc.max_epochs = 500;   /* ~3 s on one core */
    tc.batch = 256;
    tc.val_batch = 512;
    tc.lr = 1e-3;
    tc.keep = TRAIN_KEEP_BEST_EMA;
    train_model tm = mlp1d_train_model(m);
    rng *r = rng_alloc(3, 4);
    train_result res;
    double t0 = log_now();
    train_status st = train_run(&tm, &tc, NT, xt, NV, xv, r, &res);
    double secs = log_now() - t0;
    for (int rep = 0; rep < 4; rep++) {
        rng *re = rng_alloc(77, (uint64_t)rep);
        after += mlp1d_eval_loss(m, 1, NE, xe, 1e-5, 1.0, re) / 4;
        rng_free(re);
    }
    printf("    end-to-end: %d epochs in %.1f s, best epoch %d; DSM loss %.4f -> %.4f (exact optimum %.4f)\n",
           res.epochs_run, secs, res.best_epoch, before, after, opt);
    CHECK(st == TRAIN_OK, "end-to-end training finishes");
    CHECK(after < before - 0.1, "end-to-end training reduces the DSM loss");
    CHECK_CLOSE(after, opt, 0.02, 0, "end-to-end DSM loss within 0.02 of the exact optimum");
    /* learned score at small t against the exact -x / (1 + std^2) on |x| <= 2 */
    score_model sm = mlp1d_score_model(m, 1);
    const float ts[2] = {0.01f, 0.1f};
    for (int k = 0; k < 2; k++) {
        float x[41], sc[41];
        for (int i = 0; i < 41; i++) x[i] = -2.0f + 0.1f * (float)i;
        score_eval(&sm, 41, &ts[k], 0, x, sc);
        double sd = sde_std(&s, ts[k]), num = 0, den = 0;
        for (int i = 0; i < 41; i++) {
            double ex = -x[i] / (1.0 + sd * sd);
            num += (sc[i] - ex) * (sc[i] - ex);
            den += ex * ex;
        }
        double rel = sqrt(num / den);
        char nm[160];
        snprintf(nm, sizeof nm, "learned score at t=%g on [-2, 2] vs exact -x/(1+std^2): relative RMS %.3f < 0.15",
                 (double)ts[k], rel);
        test_report(rel < 0.15, nm, "too far from the exact score");
    }
    train_result_free(&res);
    rng_free(r);
    rng_free(rd);
    free(xt);
    free(xv);
    free(xe);
    mlp1d_free(m);
}

/* ---------------------------------------------------------------- saved training state is validated */

/* Writes p to path and reads it back for config c; returns train_progress_read's result, message in err. */
static int progress_roundtrip(const train_progress *p, const train_config *c, const char *path, char *err,
                              size_t errlen)
{
    safetensors_writer *w = safetensors_writer_alloc();
    train_progress_write(p, w);
    if (safetensors_writer_write(w, path, err, errlen) != 0) LOG_FATAL("%s", err);
    safetensors_writer_free(w);
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return -2;
    train_progress q;
    int rc = train_progress_read(&q, st, c, p->n_train, p->n_val, path, err, errlen);
    if (rc == 0) train_progress_free(&q);
    safetensors_close(st);
    return rc;
}

static void test_progress_validation(void)
{
    enum { NT = 6, NV = 4, DONE = 3 };
    train_config c = train_config_default();
    c.max_epochs = 10;
    rng *r = rng_alloc(5, 5);
    int64_t tidx[NT] = {3, 1, 4, 0, 5, 2}, vidx[NV] = {2, 0, 3, 1};
    double tl[DONE] = {5, 4, 3.5}, tll[DONE] = {5.1, 4.1, 3.6}, vl[DONE] = {3.2, 2.1, 2.6}, evl[DONE] = {3, 2, 2.5};
    unsigned char rs[8192];
    size_t rb = rng_state_size(r);
    memcpy(rs, rng_state_ptr(r), rb);
    train_progress p;
    memset(&p, 0, sizeof p);
    p.epochs_done = DONE;
    p.max_epochs = c.max_epochs;
    train_stopper_init(&p.stopper, c.patience, c.max_fraction, c.countdown, NULL, 0);
    p.stopper.best = 2;
    p.stopper.counter = 0;
    p.n_train = NT;
    p.n_val = NV;
    p.vpos = 3;
    p.tidx = tidx;
    p.vidx = vidx;
    p.have_kept = 1;
    p.res.train_loss = tl;
    p.res.train_loss_last = tll;
    p.res.val_loss = vl;
    p.res.ema_val_loss = evl;
    p.res.best_epoch = 1;
    p.res.best_val = 2;
    p.res.kept_epoch = 2;
    p.res.trigger_epoch = -1;
    p.rng_state = rs;
    p.rng_bytes = rb;
    char path[128], err[512];
    snprintf(path, sizeof path, "/tmp/test_nn_progress_%d.safetensors", (int)getpid());
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == 0, "train_progress: a consistent state reads back");

    /* issue 11 reproducer 1: the MT19937 position (int32 at byte 4992 of train.rng) set to -100000000 or -3 */
    static const int bad_pos[2] = {-100000000, -3};
    for (int k = 0; k < 2; k++) {
        memcpy(rs + 624 * sizeof(unsigned long), &bad_pos[k], sizeof(int));
        char name[96];
        snprintf(name, sizeof name, "train_progress: rng position %d refused, naming the file and tensor", bad_pos[k]);
        err[0] = 0;
        CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, path) &&
                  strstr(err, "train.rng") && strstr(err, "position") && !strchr(err, '\n'),
              name);
    }
    memcpy(rs, rng_state_ptr(r), rb);
    tidx[4] = 1;   /* 1 twice, 5 never */
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "train.tidx") &&
              strstr(err, "not a permutation"),
          "train_progress: a shuffle order with a repeated index refused");
    tidx[4] = 5;
    vidx[1] = 7;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "train.vidx") && strstr(err, "outside"),
          "train_progress: a shuffle order indexing outside the data refused");
    vidx[1] = 0;
    p.res.best_epoch = 2;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "best epoch"),
          "train_progress: a best epoch that disagrees with the losses refused");
    p.res.best_epoch = 1;
    p.res.kept_epoch = 7;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "kept epoch"),
          "train_progress: a kept epoch past the epochs done refused");
    p.res.kept_epoch = 2;
    p.stopper.countdown = c.countdown + 5;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "counters"),
          "train_progress: an early-stopping countdown out of range refused");
    p.stopper.countdown = c.countdown;
    evl[1] = NAN;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == -1 && strstr(err, "not finite"),
          "train_progress: a non-finite recorded loss refused");
    evl[1] = 2;
    CHECK(progress_roundtrip(&p, &c, path, err, sizeof err) == 0, "train_progress: the repaired state reads back");
    unlink(path);
    rng_free(r);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    log_set_quiet(1);
    rng *r = rng_alloc(42, 0);
    test_linear_fd(r);
    test_linear_ref(r, 67, 33, 17, 1, "B67 IC33 OC17, bias");
    test_linear_ref(r, 5, 1, 32, 0, "B5 IC1 OC32, no bias");
    test_linear_ref(r, 9, 32, 1, 1, "B9 IC32 OC1");
    test_linear_ref(r, 1000, 32, 32, 1, "B1000 IC32 OC32 (threaded)");
    test_linear_ref(r, 3, 200, 100, 1, "B3 IC200 OC100, large-layer fallback");
    test_act();
    test_fourier();
    test_params();
    test_adam();
    test_ema();
    test_mlp1d_grad();
    test_mlp1d_eval_paths();
    test_mlp1d_io();
    test_stopper();
    test_train_loop();
    test_progress_validation();
    test_end_to_end();
    rng_free(r);
    return test_finish();
}
