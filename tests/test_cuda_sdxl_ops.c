/* test_cuda_sdxl_ops: every SDXL layer call of models/sdxl/sdxl_ops.h on a CUDA context (fp16 activations and
 * weights, fp32 accumulation: sdxl_cuda_backend.c over common/cuda/cuda_sdxl.cu) against the same call on a CPU
 * context, the reference (DESIGN.md §5). Inputs are random values that fp16 represents exactly (weights also bf16),
 * so both sides start from the same numbers and the difference is the GPU's fp16 storage of results and
 * intermediates plus summation order. Covered: linear (bias, no bias, accumulate; f16, f32 and bf16 stored
 * weights, a 1x1-conv-shaped weight), linear_multi, conv2d (3x3 pad 1 stride 1 and 2, 1x1, odd sizes, chunked
 * workspace), GroupNorm (+SiLU, in place), LayerNorm, SiLU, GEGLU, attention (self and cross, head dims 4, 8, 40,
 * 64, 128, sequence lengths that are not multiples of the tiles, one of 1100 tokens, large logits, the SDXL level-2
 * self-attention shape; the CUDA-core kernel and, at dh 64, the tensor-core kernel, each by name), to/from token
 * layout, add, channel add, concat, nearest 2x upsampling, copy, upload/download round trip.
 * Tolerances |gpu - cpu| <= atol + rtol |cpu|, with S = max |cpu| over the compared array (fp16 has a unit
 * roundoff of 2^-11 = 4.9e-4):
 *   exact moves (tokens, concat, upsample, copy, round trip)   0 (fp16 values move unchanged)
 *   add, channel add                                           rtol 1e-3, atol 1e-7 (one fp16 rounding)
 *   SiLU, GEGLU                                                rtol 2e-3, atol 1e-6 S (one rounding; erf/exp ulps)
 *   linear, conv (fp32 accumulate, fp16 result)                rtol 2e-3, atol 2e-3 S (+ the bias's own rounding)
 *   GroupNorm, LayerNorm (fp32 statistics)                     rtol 4e-3, atol 4e-3 S
 *   attention (fp32 scores / softmax / accumulator)            rtol 4e-3, atol 2e-3 S
 * Without a GPU (or in a CPU-only build) prints "SKIP ..." (FAIL with SF_REQUIRE_CUDA=1) and checks that a CUDA
 * context is refused with a one-line reason. */
#include "device.h"
#include "sdxl_ops.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
#include "mem.h"
#include "nn_cuda.h"
#include "nn_cuda_sdxl.h"

static sdxl_ops CPU, GPU;
static uint64_t seed = 0x5d1c0ffee;

static double urand(void)
{
    seed += 0x9E3779B97F4A7C15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

/* n host floats uniform in [lo, hi), rounded to fp16 (exactly representable on both sides) */
static float *hrand(size_t n, double lo, double hi)
{
    float *p = mem_new(float, n);
    for (size_t i = 0; i < n; i++) p[i] = nn_f16_to_f32(nn_f32_to_f16((float)(lo + (hi - lo) * urand())));
    return p;
}

/* a device buffer of n float slots holding h[n] as fp16 */
static float *dput(const float *h, size_t n)
{
    float *d = nn_cuda_malloc_floats(n ? n : 1);
    sdxl_ops_upload(&GPU, d, h, n);
    return d;
}

static float *dget(const float *d, size_t n)
{
    float *h = mem_new(float, n ? n : 1);
    sdxl_ops_download(&GPU, h, d, n);
    return h;
}

/* a weight tensor of the given dtype whose values k/256 in [-s, s) are exact in f16, bf16 and f32 */
typedef struct {
    nn_tensor t;
    void *buf;
} wt;

static wt weight(nn_dtype dt, int ndim, const int64_t *shape, double s)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *v = mem_new(float, n);
    for (size_t i = 0; i < n; i++) v[i] = (float)(s * floor((urand() * 2 - 1) * 256) / 256);
    wt w;
    w.buf = aligned_alloc(64, (n * nn_dtype_size(dt) + 63) / 64 * 64);
    nn_f32_convert_to(w.buf, dt, v, n);
    w.t = nn_tensor_view(w.buf, dt, DEVICE_CPU, ndim, shape);
    free(v);
    return w;
}

static double maxabs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* device gpu[n] vs host cpu[n]: |gpu - cpu| <= atol_s max|cpu| + atol + rtol |cpu|; one PASS / FAIL line */
static void cmpd(const char *name, const float *gpu_dev, const float *cpu, size_t n, double atol_s, double atol,
                 double rtol)
{
    float *g = dget(gpu_dev, n);
    const double a = atol + atol_s * maxabs(cpu, n);
    size_t bad = 0, worst = 0;
    double wr = -1;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)g[i] - cpu[i]), lim = a + rtol * fabs(cpu[i]);
        if (!isfinite(g[i]) || d > lim) bad++;
        const double r = !isfinite(g[i]) ? INFINITY : lim > 0 ? d / lim : (d > 0 ? INFINITY : 0);
        if (r > wr) wr = r, worst = i;
    }
    char detail[300];
    snprintf(detail, sizeof detail, "%zu of %zu outside; worst [%zu] gpu %.7g cpu %.7g allowed %.3g", bad, n, worst,
             n ? (double)g[worst] : 0.0, n ? (double)cpu[worst] : 0.0, n ? a + rtol * fabs(cpu[worst]) : 0.0);
    test_report(bad == 0 && n > 0, name, detail);
    if (bad == 0 && n > 0) printf("#   %s: worst |diff| / allowed %.3f\n", name, wr);
    free(g);
}

#define EXACT 0, 0, 0
#define T_ADD 0, 1e-7, 1e-3
#define T_ACT 1e-6, 0, 2e-3
#define T_GEMM 2e-3, 0, 2e-3
#define T_NORM 4e-3, 0, 4e-3
#define T_ATT 2e-3, 0, 4e-3

static void test_moves(void)
{
    const int B = 2, C = 37, H = 9, W = 11, HW = H * W, C2 = 5;
    const size_t n = (size_t)B * C * HW;
    float *x = hrand(n, -3, 3), *r = hrand(n, -3, 3), *y = hrand((size_t)B * C2 * HW, -3, 3);
    float *dx = dput(x, n), *dr = dput(r, n), *dy = dput(y, (size_t)B * C2 * HW);
    cmpd("upload / download round trip", dx, x, n, EXACT);
    float *ref = mem_new(float, 4 * n + (size_t)B * C2 * HW), *dout = nn_cuda_malloc_floats(4 * n + 64);
    sdxl_ops_to_tokens(&CPU, ref, x, B, C, HW);
    sdxl_ops_to_tokens(&GPU, dout, dx, B, C, HW);
    cmpd("to_tokens B 2 C 37 HW 99", dout, ref, n, EXACT);
    float *tok = mem_new(float, n);
    memcpy(tok, ref, n * sizeof *tok);
    float *dtok = dput(tok, n);
    sdxl_ops_from_tokens_add(&CPU, ref, tok, r, B, C, HW);
    sdxl_ops_from_tokens_add(&GPU, dout, dtok, dr, B, C, HW);
    cmpd("from_tokens_add", dout, ref, n, T_ADD);
    float *rr = mem_new(float, n);
    memcpy(rr, r, n * sizeof *rr);
    sdxl_ops_from_tokens_add(&CPU, rr, tok, rr, B, C, HW);
    sdxl_ops_from_tokens_add(&GPU, dr, dtok, dr, B, C, HW);   /* out == res */
    cmpd("from_tokens_add in place (out == res)", dr, rr, n, T_ADD);
    sdxl_ops_upload(&GPU, dr, r, n);
    sdxl_ops_add(&CPU, ref, x, r, n);
    sdxl_ops_add(&GPU, dout, dx, dr, n);
    cmpd("add", dout, ref, n, T_ADD);
    sdxl_ops_concat(&CPU, ref, x, C, y, C2, B, HW);
    sdxl_ops_concat(&GPU, dout, dx, C, dy, C2, B, HW);
    cmpd("concat C1 37 + C2 5", dout, ref, (size_t)B * (C + C2) * HW, EXACT);
    sdxl_ops_upsample2x(&CPU, ref, x, B, C, H, W);
    sdxl_ops_upsample2x(&GPU, dout, dx, B, C, H, W);
    cmpd("upsample2x 9x11 -> 18x22", dout, ref, 4 * n, EXACT);
    sdxl_ops_copy(&GPU, dout, dx, n);
    cmpd("copy", dout, x, n, EXACT);
    float *v = hrand((size_t)B * C, -2, 2), *dv = dput(v, (size_t)B * C);
    memcpy(ref, x, n * sizeof *ref);
    sdxl_ops_copy(&GPU, dout, dx, n);
    sdxl_ops_chan_add(&CPU, ref, v, B, C, HW);
    sdxl_ops_chan_add(&GPU, dout, dv, B, C, HW);
    cmpd("chan_add [B, C] per sample", dout, ref, n, T_ADD);
    sdxl_ops_silu(&CPU, ref, x, n);
    sdxl_ops_silu(&GPU, dout, dx, n);
    cmpd("silu", dout, ref, n, T_ACT);
    sdxl_ops_silu(&GPU, dx, dx, n);
    cmpd("silu in place", dx, ref, n, T_ACT);
    const int T = 2 * 99, I = 5 * 13;
    float *g = hrand((size_t)T * 2 * I, -4, 4), *dg = dput(g, (size_t)T * 2 * I);
    sdxl_ops_geglu(&CPU, ref, g, T, I);
    sdxl_ops_geglu(&GPU, dout, dg, T, I);
    cmpd("geglu T 198 I 65", dout, ref, (size_t)T * I, T_ACT);
    free(x), free(r), free(y), free(ref), free(tok), free(rr), free(v), free(g);
    nn_cuda_free(dx), nn_cuda_free(dr), nn_cuda_free(dy), nn_cuda_free(dout), nn_cuda_free(dtok), nn_cuda_free(dv);
    nn_cuda_free(dg);
}

static void linear_case(nn_dtype dt, int T, int IC, int OC, int bias, int acc, int conv_shape)
{
    int64_t shp4[4] = {OC, IC, 1, 1};
    wt W = weight(dt, conv_shape ? 4 : 2, shp4, 0.5), b = weight(dt, 1, (int64_t[]){OC}, 1.0);
    float *x = hrand((size_t)T * IC, -1, 1), *y0 = hrand((size_t)T * OC, -1, 1);
    float *ref = mem_new(float, (size_t)T * OC);
    memcpy(ref, y0, (size_t)T * OC * sizeof *ref);
    float *dx = dput(x, (size_t)T * IC), *dy = dput(y0, (size_t)T * OC);
    sdxl_ops_linear(&CPU, ref, x, T, &W.t, bias ? &b.t : NULL, acc);
    sdxl_ops_linear(&GPU, dy, dx, T, &W.t, bias ? &b.t : NULL, acc);
    char name[200];
    snprintf(name, sizeof name, "linear %s T %d IC %d OC %d%s%s%s", nn_dtype_name(dt), T, IC, OC,
             bias ? " bias" : "", acc ? " accumulate" : "", conv_shape ? " [OC, IC, 1, 1]" : "");
    cmpd(name, dy, ref, (size_t)T * OC, T_GEMM);
    sdxl_ops_drop_weights(&GPU);   /* the next case's tensors may reuse these addresses */
    free(W.buf), free(b.buf), free(x), free(y0), free(ref);
    nn_cuda_free(dx), nn_cuda_free(dy);
}

static void test_linear(void)
{
    linear_case(NN_F16, 77, 64, 48, 1, 0, 0);
    linear_case(NN_F16, 130, 96, 200, 0, 0, 0);
    linear_case(NN_F16, 33, 40, 24, 1, 1, 0);
    linear_case(NN_F32, 64, 72, 40, 1, 0, 0);
    linear_case(NN_BF16, 50, 64, 64, 1, 1, 0);
    linear_case(NN_F16, 2, 320, 1280, 1, 0, 0);   /* the time embedding: batch rows only */
    linear_case(NN_F16, 4096, 640, 640, 1, 1, 0);   /* an SDXL level-1 projection with its residual */
    linear_case(NN_F16, 100, 32, 32, 1, 0, 1);
    /* linear_multi: q, k, v of one input */
    const int T = 90, IC = 48, OC = 48;
    wt w[3];
    const nn_tensor *wp[3];
    float *x = hrand((size_t)T * IC, -1, 1), *dx = dput(x, (size_t)T * IC), *ref[3], *dy[3];
    for (int i = 0; i < 3; i++) {
        w[i] = weight(NN_F16, 2, (int64_t[]){OC, IC}, 0.5);
        wp[i] = &w[i].t;
        ref[i] = mem_new(float, (size_t)T * OC);
        dy[i] = nn_cuda_malloc_floats((size_t)T * OC);
    }
    sdxl_ops_linear_multi(&CPU, ref, x, T, wp, 3);
    sdxl_ops_linear_multi(&GPU, dy, dx, T, wp, 3);
    CHECK(sdxl_ops_device_weight_bytes(&GPU) == 3 * (size_t)OC * IC * 2, "weight cache: 3 fp16 weights uploaded once");
    sdxl_ops_drop_weights(&GPU);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "linear_multi output %d", i);
        cmpd(name, dy[i], ref[i], (size_t)T * OC, T_GEMM);
        free(w[i].buf), free(ref[i]), nn_cuda_free(dy[i]);
    }
    free(x), nn_cuda_free(dx);
}

static void conv_case(int B, int IC, int OC, int H, int W, int k, int stride, int ws_images)
{
    nn_conv_geom g = nn_conv2d_geom(IC, OC, H, W, k, k, stride, k / 2);
    wt Wt = weight(NN_F16, 4, (int64_t[]){OC, IC, k, k}, 0.25), b = weight(NN_F16, 1, (int64_t[]){OC}, 1.0);
    const size_t nin = (size_t)B * IC * H * W, nout = (size_t)B * OC * g.OH * g.OW;
    float *x = hrand(nin, -1, 1), *ref = mem_new(float, nout), *dx = dput(x, nin), *dy = nn_cuda_malloc_floats(nout);
    size_t cws = nn_conv2d_ws_floats(&g, B);
    float *cpu_ws = mem_new(float, cws ? cws : 1);
    sdxl_ops_conv2d(&CPU, ref, x, B, &g, &Wt.t, &b.t, cpu_ws, cws);
    size_t gws = ws_images ? sdxl_ops_conv_ws_floats(&GPU, &g, ws_images) : sdxl_ops_conv_ws_floats(&GPU, &g, B);
    float *dws = gws ? nn_cuda_malloc_floats(gws) : NULL;
    sdxl_ops_conv2d(&GPU, dy, dx, B, &g, &Wt.t, &b.t, dws, gws);
    char name[200];
    snprintf(name, sizeof name, "conv2d B %d IC %d OC %d %dx%d k %d stride %d -> %dx%d, workspace %s", B, IC, OC, H,
             W, k, stride, g.OH, g.OW, ws_images ? "one image" : "whole batch");
    cmpd(name, dy, ref, nout, T_GEMM);
    sdxl_ops_drop_weights(&GPU);
    free(Wt.buf), free(b.buf), free(x), free(ref), free(cpu_ws);
    nn_cuda_free(dx), nn_cuda_free(dy), nn_cuda_free(dws);
}

static void test_conv(void)
{
    conv_case(2, 4, 8, 16, 16, 3, 1, 0);
    conv_case(3, 8, 12, 13, 7, 3, 1, 1);
    conv_case(2, 16, 16, 15, 16, 3, 2, 0);
    conv_case(2, 24, 16, 10, 10, 1, 1, 0);
    conv_case(2, 64, 32, 32, 32, 3, 1, 0);
}

static void norm_case(int B, int C, int HW, int G, int silu, int inplace)
{
    wt gm = weight(NN_F16, 1, (int64_t[]){C}, 2.0), bt = weight(NN_F16, 1, (int64_t[]){C}, 1.0);
    const size_t n = (size_t)B * C * HW;
    float *x = hrand(n, -2, 3), *ref = mem_new(float, n), *dx = dput(x, n), *dy = nn_cuda_malloc_floats(n);
    sdxl_ops_groupnorm(&CPU, ref, x, B, C, HW, G, 1e-5f, &gm.t, &bt.t, silu);
    sdxl_ops_groupnorm(&GPU, inplace ? dx : dy, dx, B, C, HW, G, 1e-5f, &gm.t, &bt.t, silu);
    char name[160];
    snprintf(name, sizeof name, "groupnorm B %d C %d HW %d G %d%s%s", B, C, HW, G, silu ? " + silu" : "",
             inplace ? " in place" : "");
    cmpd(name, inplace ? dx : dy, ref, n, T_NORM);
    sdxl_ops_drop_weights(&GPU);
    free(gm.buf), free(bt.buf), free(x), free(ref), nn_cuda_free(dx), nn_cuda_free(dy);
}

static void ln_case(int N, int D)
{
    wt gm = weight(NN_F16, 1, (int64_t[]){D}, 2.0), bt = weight(NN_F16, 1, (int64_t[]){D}, 1.0);
    const size_t n = (size_t)N * D;
    float *x = hrand(n, -3, 2), *ref = mem_new(float, n), *dx = dput(x, n), *dy = nn_cuda_malloc_floats(n);
    sdxl_ops_layernorm(&CPU, ref, x, N, D, 1e-5f, &gm.t, &bt.t);
    sdxl_ops_layernorm(&GPU, dy, dx, N, D, 1e-5f, &gm.t, &bt.t);
    char name[100];
    snprintf(name, sizeof name, "layernorm N %d D %d", N, D);
    cmpd(name, dy, ref, n, T_NORM);
    sdxl_ops_drop_weights(&GPU);
    free(gm.buf), free(bt.buf), free(x), free(ref), nn_cuda_free(dx), nn_cuda_free(dy);
}

static void test_norms(void)
{
    norm_case(2, 16, 64, 4, 0, 0);
    norm_case(2, 32, 81, 32, 1, 0);
    norm_case(2, 320, 4096, 32, 1, 0);
    norm_case(1, 12, 50, 3, 1, 1);
    ln_case(77, 40);
    ln_case(300, 640);
    ln_case(5, 1280);
}

static void att_case(int B, int heads, int Tq, int Tk, int dh, double qscale)
{
    const int C = heads * dh;
    const size_t nq = (size_t)B * Tq * C, nk = (size_t)B * Tk * C;
    float *q = hrand(nq, -qscale, qscale), *k = hrand(nk, -1, 1), *v = hrand(nk, -1, 1), *ref = mem_new(float, nq);
    float *dq = dput(q, nq), *dk = dput(k, nk), *dv = dput(v, nk), *dy = nn_cuda_malloc_floats(nq);
    sdxl_ops_attention(&CPU, ref, q, k, v, B, heads, Tq, Tk, dh);
    sdxl_ops_attention(&GPU, dy, dq, dk, dv, B, heads, Tq, Tk, dh);
    char name[160];
    snprintf(name, sizeof name, "attention B %d heads %d Tq %d Tk %d dh %d |q| <= %g", B, heads, Tq, Tk, dh, qscale);
    cmpd(name, dy, ref, nq, T_ATT);
    for (int kern = 0; kern < 2; kern++) {   /* each kernel by name, whatever SF_SDXL_ATTN picks as default */
        if (kern == 1 && !nn_h_attention_mma_applies(dq, dk, dv, heads, dh)) continue;
        nn_cuda_memset(dy, 0xff, nq * sizeof(float));   /* NaN garbage: every output must be written */
        nn_h_attention_cuda_kernel(dy, dq, dk, dv, B, heads, Tq, Tk, dh, kern);
        snprintf(name, sizeof name, "attention (%s kernel) B %d heads %d Tq %d Tk %d dh %d |q| <= %g",
                 kern ? "tensor-core" : "CUDA-core", B, heads, Tq, Tk, dh, qscale);
        cmpd(name, dy, ref, nq, T_ATT);
    }
    free(q), free(k), free(v), free(ref), nn_cuda_free(dq), nn_cuda_free(dk), nn_cuda_free(dv), nn_cuda_free(dy);
}

static void test_attention(void)
{
    att_case(2, 2, 64, 64, 8, 1);       /* the tiny fixture's self-attention */
    att_case(2, 4, 16, 7, 4, 1);        /* cross-attention on a short context */
    att_case(2, 3, 200, 77, 40, 1);     /* dh padded to 64; Tq not a multiple of 128 */
    att_case(1, 2, 1100, 1100, 64, 1);  /* many key tiles and chunks: the online softmax across tiles */
    att_case(2, 2, 130, 150, 128, 1);   /* the dh 128 instance */
    att_case(1, 2, 300, 333, 64, 8);    /* large logits (|q.k| / sqrt(dh) up to ~64): the running max matters */
    att_case(2, 10, 256, 77, 64, 1);    /* SDXL level-1 cross-attention shape (10 heads of 64), fewer tokens */
    att_case(1, 2, 100, 30, 64, 1);     /* one partial query tile, one partial key tile */
    att_case(2, 20, 1024, 1024, 64, 2); /* SDXL level-2 self-attention (32 x 32 tokens, 20 heads of 64) */
}
#endif

int main(void)
{
    char why[256] = "";
    if (device_cuda_count(why, sizeof why) == 0) {
        /* a CUDA context must be refused with one line naming the reason */
        sdxl_ops o;
        sdxl_ops_init(&o);
        char err[400] = "";
        const int rc = sdxl_ops_set_device(&o, DEVICE_CUDA, err, sizeof err);
        char d[500];
        snprintf(d, sizeof d, "rc %d, error '%s'", rc, err);
        test_report(rc == -1 && strstr(err, "cuda") && !strchr(err, '\n') && o.dev == DEVICE_CPU,
                    "no GPU: sdxl_ops_set_device(cuda) fails with a one-line reason", d);
        printf("# %s\n", err);
        sdxl_ops_free(&o);
        test_cuda_unavailable("test_cuda_sdxl_ops", why);
        return test_finish();
    }
#ifdef SF_HAVE_CUDA
    char desc[300], err[400];
    device_describe(DEVICE_CUDA, desc, sizeof desc);
    fprintf(stderr, "test_cuda_sdxl_ops: %s\n", desc);
    sdxl_ops_init(&CPU);
    sdxl_ops_init(&GPU);
    if (sdxl_ops_set_device(&GPU, DEVICE_CUDA, err, sizeof err)) {
        test_report(0, "sdxl_ops_set_device(cuda)", err);
        return test_finish();
    }
    test_moves();
    test_linear();
    test_conv();
    test_norms();
    test_attention();
    nn_cuda_sync();
    sdxl_ops_free(&GPU);
    sdxl_ops_free(&CPU);
#endif
    return test_finish();
}
