/* test_lora_adapter: nn/lora_adapter and models/scorenet_lora (issue 10 item 3). The chain-rule gradients dA, dB
 * against central finite differences of a non-linear loss of W = W0 + c B A (double, tiny shapes); the merge
 * W0 + sum w_i dW_i; on a random ScoreNet with two random adapters, seed-paired Euler-Maruyama samples: lambda = 1
 * barycenter == fine-tune 1, w = 1 merge == fine-tune 1, lambda = 0 barycenter == fine-tune 2, a LoRA at scale 0
 * == the base, a barycenter of k = 1 == plain sampling (all bit for bit); a LoRA checkpoint round trip; one LoRA
 * training step changes only A and B and lowers the loss of its batch at a small learning rate. */
#include "lora_adapter.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "sampler.h"
#include "score.h"
#include "scorenet.h"
#include "scorenet_lora.h"
#include "test.h"
#include <unistd.h>

/* L(W) = sum_j g_j sin(W_j) + 0.5 W_j^2 (so dL/dW_j = g_j cos W_j + W_j), W = W0 + c B A, in double */
static double loss_of(size_t R, size_t C, size_t K, const double *W0, const double *A, const double *B, double c,
                      const double *g, double *dW)
{
    double L = 0.0;
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++) s += B[i * K + k] * A[k * C + j];
            double w = W0[i * C + j] + c * s;
            L += g[i * C + j] * sin(w) + 0.5 * w * w;
            if (dW) dW[i * C + j] = g[i * C + j] * cos(w) + w;
        }
    return L;
}

static void test_grad_fd(void)
{
    enum { R = 5, C = 7, K = 3 };
    const double c = 0.75;
    rng *r = rng_alloc(3, 0);
    double W0[R * C], A[K * C], B[R * K], g[R * C], dW[R * C];
    float Af[K * C], Bf[R * K], dWf[R * C], dA[K * C] = {0}, dB[R * K] = {0};
    for (size_t i = 0; i < R * C; i++) W0[i] = rng_gaussian(r), g[i] = rng_gaussian(r);
    for (size_t i = 0; i < K * C; i++) Af[i] = (float)rng_gaussian(r), A[i] = Af[i];
    for (size_t i = 0; i < R * K; i++) Bf[i] = (float)rng_gaussian(r), B[i] = Bf[i];
    loss_of(R, C, K, W0, A, B, c, g, dW);
    for (size_t i = 0; i < R * C; i++) dWf[i] = (float)dW[i];
    lora_adapter_grad(R, C, K, Af, Bf, dWf, c, dA, dB);
    const double h = 1e-5;
    double worst = 0.0;
    for (size_t i = 0; i < K * C; i++) {
        double s = A[i];
        A[i] = s + h;
        double lp = loss_of(R, C, K, W0, A, B, c, g, NULL);
        A[i] = s - h;
        double lm = loss_of(R, C, K, W0, A, B, c, g, NULL);
        A[i] = s;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - dA[i]) / (1e-3 + fabs(fd));
        if (e > worst) worst = e;
    }
    CHECK_CLOSE(worst, 0.0, 1e-4, 0, "lora_adapter_grad: dA = c B^T dW matches central differences");
    worst = 0.0;
    for (size_t i = 0; i < R * K; i++) {
        double s = B[i];
        B[i] = s + h;
        double lp = loss_of(R, C, K, W0, A, B, c, g, NULL);
        B[i] = s - h;
        double lm = loss_of(R, C, K, W0, A, B, c, g, NULL);
        B[i] = s;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - dB[i]) / (1e-3 + fabs(fd));
        if (e > worst) worst = e;
    }
    CHECK_CLOSE(worst, 0.0, 1e-4, 0, "lora_adapter_grad: dB = c dW A^T matches central differences");
    /* the delta itself */
    float delta[R * C];
    lora_adapter_delta(R, C, K, Af, Bf, c, delta);
    double e = 0.0;
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++) s += B[i * K + k] * A[k * C + j];
            e = fmax(e, fabs(delta[i * C + j] - c * s));
        }
    CHECK_CLOSE(e, 0.0, 1e-5, 0, "lora_adapter_delta = c B A");
    rng_free(r);
}

static void test_merge(void)
{
    enum { N = 37 };
    float W0[N], d1[N], d2[N], W[N], W1[N];
    rng *r = rng_alloc(4, 0);
    rng_gaussian_fill(r, W0, N);
    rng_gaussian_fill(r, d1, N);
    rng_gaussian_fill(r, d2, N);
    const float *d[2] = {d1, d2};
    double w[2] = {0.3, 0.7};
    lora_adapter_merge(N, W0, 2, d, w, W);
    double e = 0.0;
    for (size_t j = 0; j < N; j++) e = fmax(e, fabs(W[j] - (W0[j] + 0.3 * d1[j] + 0.7 * d2[j])));
    CHECK_CLOSE(e, 0.0, 1e-5, 0, "lora_adapter_merge: W0 + 0.3 dW1 + 0.7 dW2");
    double w10[2] = {1.0, 0.0}, one = 1.0;
    lora_adapter_merge(N, W0, 2, d, w10, W);
    lora_adapter_merge(N, W0, 1, d, &one, W1);
    CHECK(memcmp(W, W1, sizeof W) == 0, "lora_adapter_merge: weights (1, 0) == W0 + dW1 bit for bit");
    rng_free(r);
}

static void sample(scorenet *m, float *x, size_t n, int steps)
{
    score_model s = scorenet_score_model(m, 0);
    sampler_opts o = sampler_opts_paper();
    o.steps = steps;
    rng *r = rng_alloc(11, 7);
    sampler_em(scorenet_sde(m), &s, n, x, &o, r);
    rng_free(r);
}

static void sample_bary(scorenet *a, scorenet *b, size_t k, const double *lambda, float *x, size_t n, int steps)
{
    score_model sa = scorenet_score_model(a, 0), sb = scorenet_score_model(b, 0);
    const score_model *ms[2] = {&sa, &sb};
    score_bary *bary = score_bary_alloc(k, ms, lambda);
    score_model s = score_bary_model(bary);
    sampler_opts o = sampler_opts_paper();
    o.steps = steps;
    rng *r = rng_alloc(11, 7);
    sampler_em(scorenet_sde(a), &s, n, x, &o, r);
    rng_free(r);
    score_bary_free(bary);
}

static void randomise_b(scorenet_lora *l, uint64_t seed)
{
    lora_adapter *ad = scorenet_lora_adapter(l);
    rng *r = rng_alloc(seed, 1);
    for (size_t k = 0; k < ad->n; k++) {
        float *B = nn_params_get(ad->p, ad->p->data, ad->b_index[k]);
        nn_params_init_uniform(B, ad->rows[k] * ad->rank, 0.05, r);
    }
    memcpy(ad->p->ema, ad->p->data, ad->p->total * sizeof(float));
    rng_free(r);
}

static void test_scorenet(void)
{
    enum { NS = 2, STEPS = 6 };
    sde ve = sde_ve(25.0);
    scorenet *base = scorenet_alloc(&ve, NS, 5);
    scorenet_lora *l1 = scorenet_lora_alloc(base, 2, 2.0, NS, 21), *l2 = scorenet_lora_alloc(base, 2, 2.0, NS, 22);
    randomise_b(l1, 31);
    randomise_b(l2, 32);
    lora_adapter *ad = scorenet_lora_adapter(l1);
    CHECK(ad->n == 16, "scorenet_lora: adapters on embed.1, dense1-7, conv1-4, tconv4-1 (16 tensors)");
    const size_t T = ad->base_total;
    const float *W0 = scorenet_lora_base_weights(l1);
    float *d1 = mem_new(float, T), *d2 = mem_new(float, T), *d0 = mem_new(float, T);
    scorenet_lora_delta(l1, 0, 1.0, d1);
    scorenet_lora_delta(l2, 0, 1.0, d2);
    scorenet_lora_delta(l1, 0, 0.0, d0);
    CHECK(lora_adapter_delta_norm(T, d1) > 0 && lora_adapter_delta_norm(T, d0) == 0,
          "scorenet_lora: a random adapter changes the weights, scale 0 does not");
    scorenet *ft1 = scorenet_alloc(&ve, NS, 1), *ft2 = scorenet_alloc(&ve, NS, 1), *mg = scorenet_alloc(&ve, NS, 1),
             *s0 = scorenet_alloc(&ve, NS, 1);
    const float *dd[2] = {d1, d2};
    double one = 1.0, w10[2] = {1.0, 0.0};
    scorenet_lora_set_weights(ft1, W0, 1, dd, &one);
    scorenet_lora_set_weights(ft2, W0, 1, dd + 1, &one);
    scorenet_lora_set_weights(mg, W0, 2, dd, w10);
    const float *dz = d0;
    scorenet_lora_set_weights(s0, W0, 1, &dz, &one);
    const size_t D = NS * SCORENET_DIM;
    float *x_ft1 = mem_new(float, D), *x_ft2 = mem_new(float, D), *x = mem_new(float, D), *x_base = mem_new(float, D);
    sample(ft1, x_ft1, NS, STEPS);
    sample(ft2, x_ft2, NS, STEPS);
    sample(base, x_base, NS, STEPS);
    CHECK(memcmp(x_ft1, x_base, D * sizeof(float)) != 0, "samples: fine-tune 1 differs from the base (same noise)");
    sample_bary(ft1, ft2, 2, w10, x, NS, STEPS);
    CHECK(memcmp(x, x_ft1, D * sizeof(float)) == 0, "samples: barycenter lambda = 1 == fine-tune 1 bit for bit");
    double w01[2] = {0.0, 1.0};
    sample_bary(ft1, ft2, 2, w01, x, NS, STEPS);
    CHECK(memcmp(x, x_ft2, D * sizeof(float)) == 0, "samples: barycenter lambda = 0 == fine-tune 2 bit for bit");
    sample(mg, x, NS, STEPS);
    CHECK(memcmp(x, x_ft1, D * sizeof(float)) == 0, "samples: merge w = 1 == fine-tune 1 bit for bit");
    sample(s0, x, NS, STEPS);
    CHECK(memcmp(x, x_base, D * sizeof(float)) == 0, "samples: a LoRA at scale 0 == the base bit for bit");
    sample_bary(ft1, ft2, 1, &one, x, NS, STEPS);
    CHECK(memcmp(x, x_ft1, D * sizeof(float)) == 0, "samples: barycenter of k = 1 model == plain sampling");
    double wh[2] = {0.5, 0.5};
    sample_bary(ft1, ft2, 2, wh, x, NS, STEPS);
    CHECK(memcmp(x, x_ft1, D * sizeof(float)) != 0 && memcmp(x, x_ft2, D * sizeof(float)) != 0,
          "samples: barycenter lambda = 0.5 differs from both fine-tunes");

    /* checkpoint round trip */
    char path[] = "/tmp/test_lora_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[512];
    CHECK(scorenet_lora_save(l1, NULL, path, err, sizeof err) == 0, "scorenet_lora_save");
    scorenet_lora *l3 = scorenet_lora_alloc(base, 2, 2.0, NS, 99);
    safetensors *st = safetensors_open(path, err, sizeof err);
    CHECK(st && scorenet_lora_read(l3, st, path, 0, err, sizeof err) == 0, "scorenet_lora_read");
    float *d3 = mem_new(float, T);
    scorenet_lora_delta(l3, 0, 1.0, d3);
    CHECK(memcmp(d3, d1, T * sizeof(float)) == 0, "scorenet_lora: checkpoint round trip gives the same delta");
    scorenet_lora *l4 = scorenet_lora_alloc(base, 3, 2.0, NS, 99);
    CHECK(st && scorenet_lora_read(l4, st, path, 0, err, sizeof err) != 0 && strstr(err, "rank"),
          "scorenet_lora_read: another rank is refused with one line");
    if (st) safetensors_close(st);
    st = safetensors_open(path, err, sizeof err);   /* a ScoreNet checkpoint is not a LoRA */
    scorenet_save(base, path, err, sizeof err);
    if (st) safetensors_close(st);
    st = safetensors_open(path, err, sizeof err);
    CHECK(st && scorenet_lora_read(l3, st, path, 0, err, sizeof err) != 0 && strstr(err, "not a ScoreNet LoRA"),
          "scorenet_lora_read: a ScoreNet checkpoint is refused");
    if (st) safetensors_close(st);
    unlink(path);

    /* one training step: only A, B move; loss of the same batch (same draws) goes down at a small lr */
    train_model tm = scorenet_lora_train_model(l2);
    lora_adapter *a2 = scorenet_lora_adapter(l2);
    float *x0 = mem_new(float, 2 * SCORENET_DIM);
    rng *r = rng_alloc(1, 2);
    rng_gaussian_fill(r, x0, 2 * SCORENET_DIM);
    rng *r1 = rng_alloc(8, 8), *r2 = rng_alloc(8, 8), *r3 = rng_alloc(8, 8);
    double before = tm.eval_loss(tm.ctx, 0, 2, x0, 0.1, 1.0, r1);
    float *ab = mem_new(float, a2->p->total);
    memcpy(ab, a2->p->data, a2->p->total * sizeof(float));
    double l_step = tm.train_step(tm.ctx, 2, x0, 0.1, 1.0, 1e-4, r2);
    double after = tm.eval_loss(tm.ctx, 0, 2, x0, 0.1, 1.0, r3);
    CHECK_CLOSE(l_step, before, 1e-9, 1e-9, "LoRA train step: its loss is the loss at the pre-step weights");
    CHECK(after < before, "LoRA train step lowers the batch loss at lr 1e-4");
    CHECK(memcmp(ab, a2->p->data, a2->p->total * sizeof(float)) != 0, "LoRA train step moves the adapter");
    CHECK(memcmp(W0, scorenet_lora_base_weights(l2), T * sizeof(float)) == 0 &&
              memcmp(W0, nn_params_weights(scorenet_params_const(base), 0), T * sizeof(float)) == 0,
          "LoRA train step leaves the base weights frozen");
    rng_free(r);
    rng_free(r1);
    rng_free(r2);
    rng_free(r3);
    free(ab);
    free(x0);
    free(d0);
    free(d1);
    free(d2);
    free(d3);
    free(x_ft1);
    free(x_ft2);
    free(x);
    free(x_base);
    scorenet_free(ft1);
    scorenet_free(ft2);
    scorenet_free(mg);
    scorenet_free(s0);
    scorenet_lora_free(l1);
    scorenet_lora_free(l2);
    scorenet_lora_free(l3);
    scorenet_lora_free(l4);
    scorenet_free(base);
}

int main(void)
{
    test_grad_fd();
    test_merge();
    test_scorenet();
    return test_finish();
}
