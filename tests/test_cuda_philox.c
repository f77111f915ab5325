/* test_cuda_philox: the GPU twins of the counter-based generator (common/cuda/cuda_philox.cu) against the CPU
 * functions (common/philox.c): uniform, Gaussian and Rademacher fills, the DSM step draws, the sampler noise and
 * the Hutchinson probe must be IDENTICAL bit for bit (the same philox_core.h arithmetic with explicitly rounded
 * float operations on both sides), for slices at odd offsets and for a 2^22-element fill.
 * Without a GPU (or in a CPU-only build) prints "SKIP ..." and "RESULT passed=0 failed=0", exit 0; with
 * SF_REQUIRE_CUDA=1 that is one FAIL instead. */
#include "device.h"
#include "philox.h"
#include "test.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef SF_HAVE_CUDA
#include "nn_cuda.h"

/* bitwise comparison of a device array with a host one; reports the first difference */
static void same_bits(const char *name, const float *d, const float *h, size_t n)
{
    float *g = nn_cuda_download_floats(d, n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&g[i], &h[i], sizeof(float))) {
            if (!bad) first = i;
            bad++;
        }
    char d_[200];
    snprintf(d_, sizeof d_, "%zu of %zu differ; first at %zu: gpu %.9g cpu %.9g", bad, n, first,
             bad ? g[first] : 0.0, bad ? h[first] : 0.0);
    test_report(bad == 0, name, d_);
    free(g);
}

typedef void (*fill_fn)(float *, size_t, uint64_t, uint64_t, uint64_t);

static void test_fills(void)
{
    const fill_fn cpu[3] = {philox_uniform_fill, philox_gaussian_fill, philox_rademacher_fill};
    const fill_fn gpu[3] = {philox_uniform_fill_cuda, philox_gaussian_fill_cuda, philox_rademacher_fill_cuda};
    const char *kind[3] = {"uniform", "gaussian", "rademacher"};
    const struct {
        size_t n;
        uint64_t offset;
    } cases[] = {{1, 0}, {3, 1}, {7, 2}, {1001, 3}, {4096, 4}, {123457, 5}, {1u << 22, 0}, {999, (5ull << 32) + 3}};
    const size_t nmax = 1u << 22;
    float *h = malloc(nmax * sizeof *h);
    float *d = nn_cuda_malloc_floats(nmax);
    for (int k = 0; k < 3; k++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const uint64_t seed = 0xC0FFEE00ull + c, stream = philox_stream(PHILOX_TEST, 100 + c);
            cpu[k](h, cases[c].n, seed, stream, cases[c].offset);
            gpu[k](d, cases[c].n, seed, stream, cases[c].offset);
            char name[128];
            snprintf(name, sizeof name, "%s fill n=%zu offset=%llu: gpu == cpu (bits)", kind[k], cases[c].n,
                     (unsigned long long)cases[c].offset);
            same_bits(name, d, h, cases[c].n);
        }
    nn_cuda_free(d);
    free(h);
}

static void test_helpers(void)
{
    enum { B = 1024, D = 784 };
    float *t = malloc(B * sizeof *t), *z = malloc((size_t)B * D * sizeof *z);
    float *dt = nn_cuda_malloc_floats(B), *dz = nn_cuda_malloc_floats((size_t)B * D);
    philox_dsm_draw(t, z, B, D, 1e-5, 1.0, 7, 123456);
    philox_dsm_draw_cuda(dt, dz, B, D, 1e-5, 1.0, 7, 123456);
    same_bits("dsm_draw t[1024]: gpu == cpu (bits)", dt, t, B);
    same_bits("dsm_draw z[1024 x 784]: gpu == cpu (bits)", dz, z, (size_t)B * D);
    philox_sampler_noise(z, (size_t)B * D, 7, 3, 999);
    philox_sampler_noise_cuda(dz, (size_t)B * D, 7, 3, 999);
    same_bits("sampler noise: gpu == cpu (bits)", dz, z, (size_t)B * D);
    for (int r = 0; r < 2; r++) {
        philox_probe(z, (size_t)B * D, r, 7, 2);
        philox_probe_cuda(dz, (size_t)B * D, r, 7, 2);
        same_bits(r ? "probe rademacher: gpu == cpu (bits)" : "probe gaussian: gpu == cpu (bits)", dz, z,
                  (size_t)B * D);
    }
    nn_cuda_free(dt);
    nn_cuda_free(dz);
    free(t);
    free(z);
}
#endif /* SF_HAVE_CUDA */

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        test_cuda_unavailable("test_cuda_philox", why);
        return test_finish();
    }
#ifdef SF_HAVE_CUDA
    char desc[300];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    fprintf(stderr, "test_cuda_philox: %s\n", desc);
    nn_cuda_init();
    test_fills();
    test_helpers();
    nn_cuda_sync();
    nn_cuda_shutdown();
#endif
    return test_finish();
}
