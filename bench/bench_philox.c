/* bench_philox: the cost of one DSM step's draws on the CPU (issue 8 item 5): batch x 784 Gaussians plus batch
 * uniforms, from GSL's MT19937 + ziggurat (rng.h, today's dsm_perturb) and from the counter-based Philox
 * (philox_dsm_draw), at batch 200 and 1024, on 1 thread and on all threads (Philox fills split across threads;
 * GSL's stream is serial). ~0.3 s per measurement. */
#include "philox.h"
#include "rng.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define SECONDS 0.3

static double time_gsl(rng *r, float *t, float *z, size_t B, size_t D)
{
    long n = 0;
    const double t0 = omp_get_wtime();
    double dt;
    do {
        for (size_t i = 0; i < B; i++) t[i] = (float)rng_uniform(r);
        rng_gaussian_fill(r, z, B * D);
        n++;
    } while ((dt = omp_get_wtime() - t0) < SECONDS);
    return dt / n * 1e3;
}

static double time_philox(float *t, float *z, size_t B, size_t D)
{
    long n = 0;
    const double t0 = omp_get_wtime();
    double dt;
    do {
        philox_dsm_draw(t, z, B, D, 1e-5, 1.0, 42, (uint64_t)n);
        n++;
    } while ((dt = omp_get_wtime() - t0) < SECONDS);
    return dt / n * 1e3;
}

int main(void)
{
    const size_t D = 784, Bs[2] = {200, 1024};
    const int nth = omp_get_max_threads();
    float *t = malloc(1024 * sizeof *t), *z = malloc(1024 * D * sizeof *z);
    if (!t || !z) {
        fprintf(stderr, "bench_philox: out of memory\n");
        return 1;
    }
    rng *r = rng_alloc(42, 0);
    printf("bench_philox: one DSM step's draws (B x 784 Gaussians + B uniforms), ms per step\n");
    printf("%6s %14s %16s %16s\n", "batch", "GSL MT+zigg.", "Philox 1 thread", "Philox threads");
    for (int b = 0; b < 2; b++) {
        const double g = time_gsl(r, t, z, Bs[b], D);
        omp_set_num_threads(1);
        const double p1 = time_philox(t, z, Bs[b], D);
        omp_set_num_threads(nth);
        const double pn = time_philox(t, z, Bs[b], D);
        printf("%6zu %14.3f %16.3f %13.3f (%d)\n", Bs[b], g, p1, pn, nth);
    }
    rng_free(r);
    free(t);
    free(z);
    return 0;
}
