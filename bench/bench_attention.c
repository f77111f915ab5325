/* bench_attention: seconds per call of the SDXL UNet's attention (issue 9 speed goal) on the real shapes, batch 2,
 * head dim 64: the fp32 tiled kernel (nn_attention_forward, the UNet's fp32 path and the bf16 path before the bf16
 * kernel) beside nn_attention_bf16_forward (AMX tiles where available), alternated call by call so load changes on
 * a shared machine hit both alike. Shapes (latent 128x128 at 1024^2, 64x64 at 512^2):
 *     level 2 self   640 channels = 10 heads, tokens (res/16)^2 against themselves
 *     level 2 cross  the same queries against the 77 text tokens
 *     level 3 self   1280 channels = 20 heads, tokens (res/32)^2
 *     level 3 cross
 * and the per-UNet-call total with SDXL base's counts (10 transformer blocks at level 2, 60 at level 3; each one
 * self + one cross attention). Prints the median of --reps calls per kernel and the bf16 kernel's max |diff|
 * against the fp32 one, and the median process CPU seconds of each (cpu32, cpu16). Threads: OMP_NUM_THREADS (default all cores).
 *     bench/bin/bench_attention [--res 1024] [--batch 2] [--reps 3] */
#include "attention.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* process CPU seconds (all threads): on a shared machine less sensitive than wall time to other jobs taking the
 * cores, though OpenMP threads spinning at barriers count too */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int res = 1024, B = 2, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--res")) res = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_attention: bad flag '%s' (usage: %s [--res 1024] [--batch 2] [--reps 3])\n",
                    argv[i], argv[0]);
            return 1;
        }
    }
    if (res < 32 || res % 32 || B < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "bench_attention: --res must be a positive multiple of 32, --batch >= 1, --reps 1..100\n");
        return 1;
    }
    const int dh = 64, L = 77, nth = omp_get_max_threads();
    struct {
        const char *name;
        int heads, T, Tk, count;
    } sh[4] = {{"level 2 self ", 10, (res / 16) * (res / 16), 0, 10},
               {"level 2 cross", 10, (res / 16) * (res / 16), L, 10},
               {"level 3 self ", 20, (res / 32) * (res / 32), 0, 60},
               {"level 3 cross", 20, (res / 32) * (res / 32), L, 60}};
    for (int s = 0; s < 4; s++)
        if (!sh[s].Tk) sh[s].Tk = sh[s].T;
    printf("# bench_attention: res %d, batch %d, dh 64, %d threads, bf16 kernel: %s\n", res, B, nth,
           nn_attention_bf16_uses_amx(dh) ? "amx" : "fp32 fallback (no AMX)");
    printf("%-14s %6s %6s %6s %11s %11s %8s %10s %10s %8s %10s\n", "shape", "heads", "Tq", "Tk", "fp32_s", "bf16_s",
           "speedup", "cpu32_s", "cpu16_s", "cpu_x", "max|diff|");
    double tot32 = 0, tot16 = 0, c32 = 0, c16 = 0;
    for (int s = 0; s < 4; s++) {
        const int C = sh[s].heads * dh, Tq = sh[s].T, Tk = sh[s].Tk;
        const size_t nq = (size_t)B * Tq * C, nk = (size_t)B * Tk * C;
        float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nk * sizeof(float));
        float *o32 = malloc(nq * sizeof(float)), *o16 = malloc(nq * sizeof(float));
        unsigned long long st = 88172645463325252ull;
        for (size_t i = 0; i < nq; i++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            q[i] = (float)((double)(st >> 11) * 0x1.0p-53 - 0.5);
        }
        for (size_t i = 0; i < nk; i++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            k[i] = (float)((double)(st >> 11) * 0x1.0p-53 - 0.5);
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            v[i] = (float)((double)(st >> 11) * 0x1.0p-53 * 2 - 1);
        }
        const size_t w32 = nn_attention_ws_floats(dh, nth), w16 = nn_attention_bf16_ws_floats(B, sh[s].heads, Tk, dh, nth);
        float *ws = malloc((w32 > w16 ? w32 : w16) * sizeof(float));
        const float scale = 0.125f;
        double t32[100], t16[100], u32[100], u16[100];
        for (int r = 0; r < reps; r++) {
            double t0 = omp_get_wtime(), u0 = cpu_now();
            nn_attention_forward(o32, C, q, C, k, C, v, C, B, sh[s].heads, Tq, Tk, dh, scale, ws, w32);
            t32[r] = omp_get_wtime() - t0;
            u32[r] = cpu_now() - u0;
            t0 = omp_get_wtime(), u0 = cpu_now();
            nn_attention_bf16_forward(o16, C, q, C, k, C, v, C, B, sh[s].heads, Tq, Tk, dh, scale, ws, w16);
            t16[r] = omp_get_wtime() - t0;
            u16[r] = cpu_now() - u0;
        }
        qsort(t32, (size_t)reps, sizeof(double), cmp_d);
        qsort(t16, (size_t)reps, sizeof(double), cmp_d);
        qsort(u32, (size_t)reps, sizeof(double), cmp_d);
        qsort(u16, (size_t)reps, sizeof(double), cmp_d);
        double md = 0;
        for (size_t i = 0; i < nq; i++) md = fmax(md, fabs((double)o32[i] - o16[i]));
        const double m32 = t32[reps / 2], m16 = t16[reps / 2];
        const double n32 = u32[reps / 2], n16 = u16[reps / 2];
        printf("%-14s %6d %6d %6d %11.4f %11.4f %7.2fx %10.4f %10.4f %7.2fx %10.2e\n", sh[s].name, sh[s].heads, Tq, Tk,
               m32, m16, m32 / m16, n32, n16, n32 / n16, md);
        tot32 += sh[s].count * m32;
        tot16 += sh[s].count * m16;
        c32 += sh[s].count * n32;
        c16 += sh[s].count * n16;
        free(q), free(k), free(v), free(o32), free(o16), free(ws);
    }
    printf("per UNet call (10 level-2 + 60 level-3 blocks): wall fp32 %.2f s, bf16 %.2f s (%.2fx); CPU fp32 %.2f s, "
           "bf16 %.2f s (%.2fx)\n", tot32, tot16, tot32 / tot16, c32, c16, c32 / c16);
    return 0;
}
