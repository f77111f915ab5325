/* bench_cuda_layers: GPU timings (cudaEvent pairs on the nn_cuda stream) of the CUDA twins (nn_cuda.h) at the
 * shapes of the paper's image ScoreNet on 28x28 images (§5.1, App. G; REFERENCE.md "Score network": conv layers
 * 1->32->64->128->256, 3x3 kernels, strides 1/2/2/2, transposed convs back up), in GFLOP/s:
 *   - nn_sgemm_cuda on the im2col GEMMs of training at batch 256 (forward W cols NN, weight gradient dY cols^T
 *     NT, input gradient W^T dY TN), the 256x256 linear layers at batch 1024, and square 1024 / 4096 products
 *     (fp32 FFMA, TF32 off: H100 SXM fp32 peak ~67 TFLOP/s, PCIe ~51);
 *   - conv2d / conv_transpose2d forward and backward (din + dW + db) of every ScoreNet layer at batch 256 with a
 *     whole-batch workspace (one GEMM per call), counting 2 MACs-as-flops of the GEMMs only (im2col / col2im are
 *     overhead);
 *   - GroupNorm forward + backward at the ScoreNet shapes, in GB/s of compulsory traffic.
 * Each measurement repeats the call until >= 50 ms of GPU time (after one warm-up call) and reports the mean.
 * Without a GPU (or in a CPU-only build) prints one SKIP line and exits 0. */
#include "device.h"
#include <stdio.h>
#include <stdlib.h>

#ifdef SF_HAVE_CUDA
#include "conv.h"
#include "mem.h"
#include "nn_cuda.h"
#include "rng.h"

#define MIN_MS 50.0

static float *drand(rng *r, size_t n)   /* device buffer of U[-1, 1) */
{
    float *h = mem_new(float, n ? n : 1);
    for (size_t i = 0; i < n; i++) h[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    float *d = nn_cuda_upload_floats(h, n);
    free(h);
    return d;
}

typedef void (*bench_fn)(void *arg);

/* mean milliseconds per call of fn(arg), after a warm-up call */
static double time_ms(nn_cuda_timer *t, bench_fn fn, void *arg)
{
    fn(arg);
    nn_cuda_sync();
    long reps = 1;
    for (;;) {
        nn_cuda_timer_start(t);
        for (long i = 0; i < reps; i++) fn(arg);
        const double ms = nn_cuda_timer_stop_ms(t);
        if (ms >= MIN_MS || reps >= (1L << 20)) return ms / (double)reps;
        reps = ms <= 0.0 ? reps * 16 : (long)((double)reps * (MIN_MS * 1.2 / ms)) + 1;
    }
}

typedef struct {
    int tA, tB, M, N, K;
    const float *A, *B;
    float *C;
} gemm_arg;

static void run_gemm(void *p)
{
    gemm_arg *a = p;
    nn_sgemm_cuda(a->tA, a->tB, a->M, a->N, a->K, 1.0f, a->A, a->tA ? a->M : a->K, a->B, a->tB ? a->K : a->N, 0.0f,
                  a->C, a->N);
}

typedef struct {
    const nn_conv_geom *g;
    int transposed, B;
    float *in, *W, *b, *out, *dout, *din, *dW, *db, *ws;
    size_t ws_n;
} conv_arg;

static void run_conv_fwd(void *p)
{
    conv_arg *a = p;
    if (a->transposed) nn_conv_transpose2d_forward_cuda(a->out, a->in, a->W, a->b, a->B, a->g, a->ws, a->ws_n);
    else nn_conv2d_forward_cuda(a->out, a->in, a->W, a->b, a->B, a->g, a->ws, a->ws_n);
}

static void run_conv_bwd(void *p)
{
    conv_arg *a = p;
    if (a->transposed)
        nn_conv_transpose2d_backward_cuda(a->din, a->dW, a->db, a->dout, a->in, a->W, a->B, a->g, a->ws, a->ws_n);
    else nn_conv2d_backward_cuda(a->din, a->dW, a->db, a->dout, a->in, a->W, a->B, a->g, a->ws, a->ws_n);
}

typedef struct {
    int B, C, HW, G;
    float *x, *y, *mean, *rstd, *gamma, *beta, *dy, *dx, *dg, *db;
} gn_arg;

static void run_gn(void *p)
{
    gn_arg *a = p;
    nn_groupnorm_forward_cuda(a->y, a->mean, a->rstd, a->x, a->gamma, a->beta, a->B, a->C, a->HW, a->G, 1e-5f);
    nn_groupnorm_backward_cuda(a->dx, a->dg, a->db, a->dy, a->x, a->mean, a->rstd, a->gamma, a->B, a->C, a->HW,
                               a->G);
}

static void bench_gemm(nn_cuda_timer *t, rng *r)
{
    const int Bt = 256;
    struct {
        const char *name;
        int tA, tB, M, N, K;
    } s[] = {
        {"conv1 fwd  W*cols   (32x9 . 9xB*676)", 0, 0, 32, Bt * 676, 9},
        {"conv2 fwd  W*cols   (64x288)", 0, 0, 64, Bt * 144, 288},
        {"conv3 fwd  W*cols   (128x576)", 0, 0, 128, Bt * 25, 576},
        {"conv4 fwd  W*cols   (256x1152)", 0, 0, 256, Bt * 4, 1152},
        {"conv2 dW   dY*cols^T", 0, 1, 64, 288, Bt * 144},
        {"conv3 dW   dY*cols^T", 0, 1, 128, 576, Bt * 25},
        {"conv4 dW   dY*cols^T", 0, 1, 256, 1152, Bt * 4},
        {"conv2 dcols W^T*dY  (tconv2 fwd)", 1, 0, 288, Bt * 144, 64},
        {"conv3 dcols W^T*dY  (tconv3 fwd)", 1, 0, 576, Bt * 25, 128},
        {"conv4 dcols W^T*dY", 1, 0, 1152, Bt * 4, 256},
        {"linear 256x256 NT, in*W^T, batch 1024", 0, 1, 1024, 256, 256},
        {"linear 256x256 TN, dW = dout^T in", 1, 0, 256, 256, 1024},
        {"square 1024 NN", 0, 0, 1024, 1024, 1024},
        {"square 4096 NN", 0, 0, 4096, 4096, 4096},
    };
    printf("%-40s %2s %6s %7s %6s %9s %9s\n", "sgemm (cuBLAS fp32, no TF32)", "op", "M", "N", "K", "ms", "GFLOP/s");
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        gemm_arg a = {s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K, NULL, NULL, NULL};
        float *A = drand(r, (size_t)s[i].M * s[i].K), *B = drand(r, (size_t)s[i].K * s[i].N);
        float *C = nn_cuda_malloc_floats((size_t)s[i].M * s[i].N);
        a.A = A, a.B = B, a.C = C;
        const double ms = time_ms(t, run_gemm, &a);
        const double gf = 2.0 * s[i].M * (double)s[i].N * s[i].K / (ms * 1e6);
        printf("%-40s %c%c %6d %7d %6d %9.4f %9.1f\n", s[i].name, s[i].tA ? 'T' : 'N', s[i].tB ? 'T' : 'N', s[i].M,
               s[i].N, s[i].K, ms, gf);
        nn_cuda_free(A), nn_cuda_free(B), nn_cuda_free(C);
    }
}

static void bench_conv(nn_cuda_timer *t, rng *r)
{
    const int Bt = 256;
    struct {
        const char *name;
        int transposed;
        nn_conv_geom g;
    } L[] = {
        {"conv1  1->32   28->26 s1", 0, nn_conv2d_geom(1, 32, 28, 28, 3, 3, 1, 0)},
        {"conv2  32->64  26->12 s2", 0, nn_conv2d_geom(32, 64, 26, 26, 3, 3, 2, 0)},
        {"conv3  64->128 12->5  s2", 0, nn_conv2d_geom(64, 128, 12, 12, 3, 3, 2, 0)},
        {"conv4  128->256 5->2  s2", 0, nn_conv2d_geom(128, 256, 5, 5, 3, 3, 2, 0)},
        {"tconv4 256->128 2->5  s2", 1, nn_conv_transpose2d_geom(256, 128, 2, 2, 3, 3, 2, 0, 0)},
        {"tconv3 256->64  5->12 s2 op1", 1, nn_conv_transpose2d_geom(256, 64, 5, 5, 3, 3, 2, 0, 1)},
        {"tconv2 128->32 12->26 s2 op1", 1, nn_conv_transpose2d_geom(128, 32, 12, 12, 3, 3, 2, 0, 1)},
        {"tconv1 64->1   26->28 s1", 1, nn_conv_transpose2d_geom(64, 1, 26, 26, 3, 3, 1, 0, 0)},
    };
    printf("\n%-30s %5s %10s %9s %10s %9s\n", "conv (batch 256, whole-batch ws)", "", "fwd ms", "GFLOP/s", "bwd ms",
           "GFLOP/s");
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        const nn_conv_geom *g = &L[i].g;
        conv_arg a = {g, L[i].transposed, Bt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        const size_t nin = (size_t)Bt * g->IC * g->H * g->W, nout = (size_t)Bt * g->OC * g->OH * g->OW;
        const size_t nw = (size_t)g->OC * g->IC * g->KH * g->KW;
        a.ws_n = (L[i].transposed ? nn_conv_transpose2d_ws_min(g) : nn_conv2d_ws_min(g)) * (size_t)Bt;
        a.in = drand(r, nin), a.W = drand(r, nw), a.b = drand(r, g->OC), a.out = drand(r, nout);
        a.dout = drand(r, nout), a.din = drand(r, nin), a.dW = drand(r, nw), a.db = drand(r, g->OC);
        a.ws = nn_cuda_malloc_floats(a.ws_n);
        /* GEMM flops: one product of nw MACs per output position (conv2d) / input position (transposed) */
        const double pos = L[i].transposed ? (double)Bt * g->H * g->W : (double)Bt * g->OH * g->OW;
        const double f_fwd = 2.0 * (double)nw * pos, f_bwd = 2.0 * f_fwd;
        const double mf = time_ms(t, run_conv_fwd, &a), mb = time_ms(t, run_conv_bwd, &a);
        printf("%-30s %5s %10.4f %9.1f %10.4f %9.1f\n", L[i].name, "", mf, f_fwd / (mf * 1e6), mb,
               f_bwd / (mb * 1e6));
        nn_cuda_free(a.in), nn_cuda_free(a.W), nn_cuda_free(a.b), nn_cuda_free(a.out), nn_cuda_free(a.dout);
        nn_cuda_free(a.din), nn_cuda_free(a.dW), nn_cuda_free(a.db), nn_cuda_free(a.ws);
    }
}

static void bench_gn(nn_cuda_timer *t, rng *r)
{
    const int Bt = 256;
    struct {
        const char *name;
        int C, HW, G;
    } L[] = {
        {"gnorm1 GN(4, 32)   26x26", 32, 676, 4},
        {"gnorm2 GN(32, 64)  12x12", 64, 144, 32},
        {"gnorm3 GN(32, 128) 5x5", 128, 25, 32},
        {"gnorm4 GN(32, 256) 2x2", 256, 4, 32},
    };
    printf("\n%-30s %5s %10s %9s\n", "groupnorm fwd+bwd (batch 256)", "", "ms", "GB/s");
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        gn_arg a = {Bt, L[i].C, L[i].HW, L[i].G, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        const size_t n = (size_t)Bt * L[i].C * L[i].HW;
        a.x = drand(r, n), a.y = drand(r, n), a.dy = drand(r, n), a.dx = drand(r, n);
        a.mean = drand(r, (size_t)Bt * L[i].G), a.rstd = drand(r, (size_t)Bt * L[i].G);
        a.gamma = drand(r, L[i].C), a.beta = drand(r, L[i].C), a.dg = drand(r, L[i].C), a.db = drand(r, L[i].C);
        const double ms = time_ms(t, run_gn, &a);
        /* compulsory traffic: fwd reads x twice, writes y; bwd din reads x, dy twice each, rmw dx; affine reads
         * x, dy once more: 11 n floats */
        printf("%-30s %5s %10.4f %9.1f\n", L[i].name, "", ms, 11.0 * 4.0 * (double)n / (ms * 1e6));
        nn_cuda_free(a.x), nn_cuda_free(a.y), nn_cuda_free(a.dy), nn_cuda_free(a.dx), nn_cuda_free(a.mean);
        nn_cuda_free(a.rstd), nn_cuda_free(a.gamma), nn_cuda_free(a.beta), nn_cuda_free(a.dg), nn_cuda_free(a.db);
    }
}
#endif /* SF_HAVE_CUDA */

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        printf("bench_cuda_layers: SKIP %s\n", why);
        return 0;
    }
#ifdef SF_HAVE_CUDA
    char desc[300];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    printf("bench_cuda_layers: %s\n", desc);
    rng *r = rng_alloc(1, 0);
    nn_cuda_init();
    nn_cuda_timer *t = nn_cuda_timer_create();
    bench_gemm(t, r);
    bench_conv(t, r);
    bench_gn(t, r);
    nn_cuda_timer_free(t);
    nn_cuda_shutdown();
    rng_free(r);
#endif
    return 0;
}
