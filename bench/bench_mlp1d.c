/* bench_mlp1d: throughput of the CPU nn engine on the 1-D score network (default config: width 32, depth 3).
 * Prints training-step throughput (samples/s) at batch 4096 and 256, sampling-eval throughput with a shared t
 * (the Euler-Maruyama sampler's call) at batch 8096, and linear-layer GFLOP/s (forward and full backward) at
 * batch 8192 for widths 32/64/128. Each measurement runs ~1 s; the whole bench stays under ~20 s.
 * Thread count: OMP_NUM_THREADS (default: all cores). */
#include "linear.h"
#include "log.h"
#include "mem.h"
#include "mlp1d.h"
#include "rng.h"
#include "sde.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_SECONDS 1.0

static double bench_train(mlp1d *m, size_t B, const float *x, rng *r, double *loss)
{
    for (int k = 0; k < 3; k++) *loss = mlp1d_train_step(m, B, x, 1e-5, 1.0, 1e-4, r);   /* warm up */
    long iters = 0;
    double t0 = log_now(), t;
    do {
        *loss = mlp1d_train_step(m, B, x, 1e-5, 1.0, 1e-4, r);
        iters++;
    } while ((t = log_now() - t0) < BENCH_SECONDS);
    return (double)iters * (double)B / t;
}

static double bench_sample(mlp1d *m, size_t B, const float *x, float *out)
{
    score_model sm = mlp1d_score_model(m, 1);
    float tt = 0.5f;
    score_eval(&sm, B, &tt, 0, x, out);
    long iters = 0;
    double t0 = log_now(), t;
    do {
        tt = 0.001f + 0.999f * (float)(iters % 1000) / 1000.0f;
        score_eval(&sm, B, &tt, 0, x, out);
        iters++;
    } while ((t = log_now() - t0) < BENCH_SECONDS);
    return (double)iters * (double)B / t;
}

static void bench_linear(int B, int C, double *gf_fwd, double *gf_bwd)
{
    float *in = mem_new(float, (size_t)B * C), *out = mem_new(float, (size_t)B * C), *W = mem_new(float, (size_t)C * C);
    float *b = mem_new(float, (size_t)C), *din = mem_new(float, (size_t)B * C), *dW = mem_new(float, (size_t)C * C);
    float *db = mem_new(float, (size_t)C);
    rng *r = rng_alloc(1, 1);
    rng_gaussian_fill(r, in, (size_t)B * C);
    rng_gaussian_fill(r, W, (size_t)C * C);
    rng_free(r);
    const double flop = 2.0 * B * C * C;
    long it = 0;
    double t0 = log_now(), t;
    do {
        nn_linear_forward(out, in, W, b, B, C, C);
        it++;
    } while ((t = log_now() - t0) < BENCH_SECONDS / 2);
    *gf_fwd = it * flop / t * 1e-9;
    it = 0;
    t0 = log_now();
    do {
        nn_linear_backward(din, dW, db, out, in, W, B, C, C);   /* din and dW: 2x the forward flops */
        it++;
    } while ((t = log_now() - t0) < BENCH_SECONDS / 2);
    *gf_bwd = it * 2.0 * flop / t * 1e-9;
    free(in); free(out); free(W); free(b); free(din); free(dW); free(db);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    sde s = sde_ve(25.0);
    mlp1d_config c = mlp1d_config_default();
    mlp1d *m = mlp1d_alloc(&c, &s, 1);
    rng *r = rng_alloc(2, 0);
    enum { NMAX = 8192 };
    float *x = mem_new(float, NMAX), *out = mem_new(float, NMAX);
    rng_gaussian_fill(r, x, NMAX);
    const double W = c.width, L = c.depth, F = c.n_freq;
    /* multiply-adds per sample: training forward (per-sample temb) and sampling (shared temb) */
    const double mac_fwd = 2 * F * W + W + (L - 1) * W * W + L * W * W + W;
    const double mac_samp = W + (L - 1) * W * W + W;
    printf("bench_mlp1d: width %d depth %d n_freq %d, %zu parameters, %d OpenMP threads\n", c.width, c.depth,
           c.n_freq, mlp1d_num_params(m), omp_get_max_threads());
    printf("%-34s %14s %10s\n", "measurement", "samples/s", "GFLOP/s");
    double loss;
    size_t bs[2] = {4096, 256};
    for (int k = 0; k < 2; k++) {
        double sps = bench_train(m, bs[k], x, r, &loss);
        char nm[64];
        snprintf(nm, sizeof nm, "train step, batch %zu", bs[k]);
        printf("%-34s %14.3e %10.2f\n", nm, sps, sps * 3 * 2 * mac_fwd * 1e-9);
    }
    double sps = bench_sample(m, 8096, x, out);
    printf("%-34s %14.3e %10.2f\n", "sample eval (shared t), batch 8096", sps, sps * 2 * mac_samp * 1e-9);
    printf("  (training GFLOP/s counts forward + 2x backward multiply-adds; sampling ~%.0f MACs/sample)\n", mac_samp);
    int widths[3] = {32, 64, 128};
    for (int k = 0; k < 3; k++) {
        double f, b;
        bench_linear(8192, widths[k], &f, &b);
        char nm[64];
        snprintf(nm, sizeof nm, "linear %dx%d fwd, batch 8192", widths[k], widths[k]);
        printf("%-34s %14s %10.2f\n", nm, "", f);
        snprintf(nm, sizeof nm, "linear %dx%d bwd (din+dW), batch 8192", widths[k], widths[k]);
        printf("%-34s %14s %10.2f\n", nm, "", b);
    }
    (void)loss;
    free(x);
    free(out);
    rng_free(r);
    mlp1d_free(m);
    return 0;
}
