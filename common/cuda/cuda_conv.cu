/* cuda/cuda_conv: GPU twins of conv.h -- conv2d and conv_transpose2d forward / backward, the layers of the paper's
 * image ScoreNet (paper §5.1, App. G; REFERENCE.md "Score network": conv1..conv4, tconv4..tconv1).
 * The algorithm and the workspace convention are exactly the CPU's (conv.c): a chunk of n images,
 * N = n * (positions per image) GEMM columns, column matrix col[K, N] with
 *   col[(c KH + i) KW + j, b P + oh OW + ow] = img[b, c, oh SH - PH + i, ow SW - PW + j]  (0 outside the image)
 * conv2d forward    T[OC, N] = W[OC, K] col[K, N]                    -> scattered to out[b, OC, OH*OW] (+ bias)
 *        backward   T = dout gathered to [OC, N];  dW[OC, K] += T col^T;  col = W^T T; col2im (+=) into din
 * conv_transpose2d  the adjoint: "image" = the output y[OC, OH, OW], "positions" = the input x[IC, H, W]:
 *        forward    col[OC KK, N] = W^T[OC KK, IC] Xg[IC, N];  y = col2im(col) + bias
 *        backward   col = im2col(dout);  dW[IC, OC KK] += Xg col^T;  dX[IC, N] = W col  (added into din)
 * The device workspace ws[ws_n] holds col (K n P floats) then T; chunks are floor(ws_n / ws_min) images, so
 * nn_conv*_ws_min(g) * B floats give one GEMM over the whole batch (best on a GPU: the deep ScoreNet layers have
 * 2x2 .. 5x5 outputs). GEMMs: nn_sgemm_cuda (cuBLAS, row-major swap explained in cuda_gemm.cu).
 * Kernels (grid-stride, one output element per thread iteration, no atomics, so results are deterministic):
 *   im2col      one col element each (coalesced writes along N);
 *   col2im      GATHER form: one image element each sums the col entries that map onto it (no scatter race),
 *               then adds to / overwrites the image (+ optional bias);
 *   gather / scatter between [n, C, P] and [C, n P]; NCHW bias add; bias gradient = nn_cuda_chan_sum_add_. */
#include "cuda_internal.cuh"

/* one sliding-window geometry: image [C, IH, IW] -> output positions [OH, OW] (the CPU's `win`) */
struct win {
    int C, IH, IW, KH, KW, SH, SW, PH, PW, OH, OW;
};

static __global__ void im2col_kernel(float *col, const float *img, int n, win w)
{
    const int KK = w.KH * w.KW, P = w.OH * w.OW;
    const size_t N = (size_t)n * P, R = (size_t)w.C * KK, total = R * N;
    NN_GRID_STRIDE(e, total)
    {
        const size_t r = e / N, q = e - r * N;
        const int b = (int)(q / P), p = (int)(q - (size_t)b * P);
        const int oh = p / w.OW, ow = p - oh * w.OW;
        const int c = (int)(r / KK), rem = (int)(r - (size_t)c * KK), i = rem / w.KW, j = rem - i * w.KW;
        const int ih = oh * w.SH - w.PH + i, iw = ow * w.SW - w.PW + j;
        float v = 0.0f;
        if (ih >= 0 && ih < w.IH && iw >= 0 && iw < w.IW) v = img[(((size_t)b * w.C + c) * w.IH + ih) * w.IW + iw];
        col[e] = v;
    }
}

/* img[n, C, IH, IW] (+)= col2im(col[C KK, n P]) (+ bias[c]); accumulate 0 overwrites */
static __global__ void col2im_kernel(float *img, const float *col, int n, win w, int accumulate, const float *bias)
{
    const int KK = w.KH * w.KW, P = w.OH * w.OW;
    const size_t N = (size_t)n * P, plane = (size_t)w.IH * w.IW, total = (size_t)n * w.C * plane;
    NN_GRID_STRIDE(e, total)
    {
        const size_t bc = e / plane;
        const int pix = (int)(e - bc * plane), ih = pix / w.IW, iw = pix - ih * w.IW;
        const int b = (int)(bc / w.C), c = (int)(bc - (size_t)b * w.C);
        const float *cb = col + (size_t)c * KK * N + (size_t)b * P;
        float s = 0.0f;
        for (int i = 0; i < w.KH; i++) {
            const int th = ih + w.PH - i;   /* = oh SH */
            if (th < 0) break;              /* th decreases with i */
            if (th % w.SH) continue;
            const int oh = th / w.SH;
            if (oh >= w.OH) continue;
            for (int j = 0; j < w.KW; j++) {
                const int tw = iw + w.PW - j;
                if (tw < 0) break;
                if (tw % w.SW) continue;
                const int ow = tw / w.SW;
                if (ow >= w.OW) continue;
                s += cb[(size_t)(i * w.KW + j) * N + (size_t)oh * w.OW + ow];
            }
        }
        if (bias) s += bias[c];
        img[e] = accumulate ? img[e] + s : s;
    }
}

/* T[C, n P] <- t[n, C, P] */
static __global__ void gather_kernel(float *T, const float *t, int n, int C, int P)
{
    const size_t N = (size_t)n * P, total = (size_t)C * N;
    NN_GRID_STRIDE(e, total)
    {
        const size_t c = e / N, q = e - c * N, b = q / P, p = q - b * P;
        T[e] = t[(b * C + c) * P + p];
    }
}

/* t[n, C, P] = T[C, n P] + bias[C] (add 0; bias may be NULL) or t += T (add 1) */
static __global__ void scatter_kernel(float *t, const float *T, const float *bias, int n, int C, int P, int add)
{
    const size_t N = (size_t)n * P, total = (size_t)C * N;
    NN_GRID_STRIDE(e, total)
    {
        const size_t bc = e / P, p = e - bc * P, b = bc / C, c = bc - b * C;
        const float v = T[c * N + b * P + p];
        if (add) t[e] += v;
        else t[e] = v + (bias ? bias[c] : 0.0f);
    }
}

/* t[B, C, P] += bias[C] */
static __global__ void add_bias_kernel(float *t, const float *bias, int B, int C, int P)
{
    const size_t total = (size_t)B * C * P;
    NN_GRID_STRIDE(e, total) t[e] += bias[(e / P) % C];
}

static void im2col(float *col, const float *img, int n, const win &w)
{
    const size_t total = (size_t)w.C * w.KH * w.KW * n * w.OH * w.OW;
    im2col_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(col, img, n, w);
    CUDA_CHECK_LAUNCH();
}

static void col2im(float *img, const float *col, int n, const win &w, int accumulate, const float *bias)
{
    const size_t total = (size_t)n * w.C * w.IH * w.IW;
    col2im_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(img, col, n, w, accumulate,
                                                                                    bias);
    CUDA_CHECK_LAUNCH();
}

static void gather(float *T, const float *t, int n, int C, int P)
{
    const size_t total = (size_t)n * C * P;
    gather_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(T, t, n, C, P);
    CUDA_CHECK_LAUNCH();
}

static void scatter(float *t, const float *T, const float *bias, int n, int C, int P, int add)
{
    const size_t total = (size_t)n * C * P;
    scatter_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(t, T, bias, n, C, P, add);
    CUDA_CHECK_LAUNCH();
}

static void add_bias(float *t, const float *bias, int B, int C, int P)
{
    const size_t total = (size_t)B * C * P;
    add_bias_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(t, bias, B, C, P);
    CUDA_CHECK_LAUNCH();
}

static int imin(int a, int b) { return a < b ? a : b; }

/* images per chunk (the CPU's rule: as many as fit, at least one must) */
static int chunk_images(size_t per_image, size_t ws_n, int B, const char *who)
{
    LOG_CHECK(per_image > 0 && ws_n >= per_image, "%s: workspace too small (%zu floats, need >= %zu)", who, ws_n,
              per_image);
    const size_t nb = ws_n / per_image;
    return nb > (size_t)B ? B : (int)nb;
}

static void check_geom(const nn_conv_geom *g, int transposed, const char *who)
{
    LOG_CHECK(g->IC > 0 && g->OC > 0 && g->H > 0 && g->W > 0 && g->KH > 0 && g->KW > 0 && g->SH > 0 && g->SW > 0 &&
                  g->PH >= 0 && g->PW >= 0 && g->OH > 0 && g->OW > 0 && (transposed || (g->OPH == 0 && g->OPW == 0)),
              "%s: bad geometry (use nn_conv%s2d_geom)", who, transposed ? "_transpose" : "");
}

/* per-image workspace floats, as nn_conv2d_ws_min / nn_conv_transpose2d_ws_min */
static size_t conv_ws_min(const nn_conv_geom *g)
{
    return ((size_t)g->IC * g->KH * g->KW + g->OC) * ((size_t)g->OH * g->OW);
}

static size_t tconv_ws_min(const nn_conv_geom *g)
{
    return ((size_t)g->OC * g->KH * g->KW + g->IC) * ((size_t)g->H * g->W);
}

/* ---------------------------------------------------------------- conv2d */

static win conv_win(const nn_conv_geom *g)
{
    win w = {g->IC, g->H, g->W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->OH, g->OW};
    return w;
}

extern "C" void nn_conv2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B,
                                       const nn_conv_geom *g, float *ws, size_t ws_n)
{
    if (B <= 0) return;
    check_geom(g, 0, "nn_conv2d_forward_cuda");
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    const size_t in_img = (size_t)g->IC * g->H * g->W, out_img = (size_t)g->OC * P;
    const int nb = chunk_images(conv_ws_min(g), ws_n, B, "nn_conv2d_forward_cuda");
    const win w = conv_win(g);
    const int pointwise = g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0;
    float *col = ws, *T = ws + (size_t)K * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *x = in + (size_t)b0 * in_img;
        const float *cm = col;
        if (pointwise && n == 1) cm = x;   /* 1x1 stride-1 conv: the image is its own column matrix */
        else im2col(col, x, n, w);
        if (n == 1) {
            /* out[b0][OC, P] = W[OC, K] col[K, P]  (row-major NN: M = OC, N = P, K) */
            float *o = out + (size_t)b0 * out_img;
            nn_sgemm_cuda(0, 0, g->OC, N, K, 1.0f, W, K, cm, N, 0.0f, o, N);
            if (b) add_bias(o, b, 1, g->OC, P);
        } else {
            /* T[OC, N] = W[OC, K] col[K, N], then scattered to out[b0 .. b0+n) with the bias */
            nn_sgemm_cuda(0, 0, g->OC, N, K, 1.0f, W, K, cm, N, 0.0f, T, N);
            scatter(out + (size_t)b0 * out_img, T, b, n, g->OC, P, 0);
        }
    }
}

extern "C" void nn_conv2d_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in,
                                        const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    if (B <= 0) return;
    check_geom(g, 0, "nn_conv2d_backward_cuda");
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    const size_t in_img = (size_t)g->IC * g->H * g->W, out_img = (size_t)g->OC * P;
    if (db) nn_cuda_chan_sum_add_(db, dout, B, g->OC, P, 0);
    if (!din && !dW) return;
    const int nb = chunk_images(conv_ws_min(g), ws_n, B, "nn_conv2d_backward_cuda");
    const win w = conv_win(g);
    float *col = ws, *T = ws + (size_t)K * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *G = dout + (size_t)b0 * out_img;   /* dout of the chunk as [OC, N] */
        if (n > 1) {
            gather(T, G, n, g->OC, P);
            G = T;
        }
        if (dW) {
            /* dW[OC, K] += G[OC, N] col[K, N]^T  (row-major NT: M = OC, N = K, K = N; beta 1 accumulates) */
            im2col(col, in + (size_t)b0 * in_img, n, w);
            nn_sgemm_cuda(0, 1, g->OC, K, N, 1.0f, G, N, col, N, 1.0f, dW, K);
        }
        if (din) {
            /* col[K, N] = W[OC, K]^T G[OC, N]  (row-major TN: M = K, N = N, K = OC); din += col2im(col) */
            nn_sgemm_cuda(1, 0, K, N, g->OC, 1.0f, W, K, G, N, 0.0f, col, N);
            col2im(din + (size_t)b0 * in_img, col, n, w, 1, NULL);
        }
    }
}

/* ---------------------------------------------------------------- conv_transpose2d */

/* the adjoint conv2d window: image = the output y [OC, OH, OW], positions = the input x [H, W] */
static win tconv_win(const nn_conv_geom *g)
{
    win w = {g->OC, g->OH, g->OW, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->H, g->W};
    return w;
}

extern "C" void nn_conv_transpose2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B,
                                                 const nn_conv_geom *g, float *ws, size_t ws_n)
{
    if (B <= 0) return;
    check_geom(g, 1, "nn_conv_transpose2d_forward_cuda");
    const int R = g->OC * g->KH * g->KW, P = g->H * g->W;
    const size_t in_img = (size_t)g->IC * P, out_img = (size_t)g->OC * g->OH * g->OW;
    const int nb = chunk_images(tconv_ws_min(g), ws_n, B, "nn_conv_transpose2d_forward_cuda");
    const win w = tconv_win(g);
    float *col = ws, *T = ws + (size_t)R * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *X = in + (size_t)b0 * in_img;   /* the chunk's input as [IC, N] */
        if (n > 1) {
            gather(T, X, n, g->IC, P);
            X = T;
        }
        /* col[OC KK, N] = W[IC, OC KK]^T X[IC, N]  (row-major TN: M = R, N = N, K = IC; W stored [IC, R]) */
        nn_sgemm_cuda(1, 0, R, N, g->IC, 1.0f, W, R, X, N, 0.0f, col, N);
        /* y = col2im(col) + bias, overwriting (covers the output_padding rows / columns too) */
        col2im(out + (size_t)b0 * out_img, col, n, w, 0, b);
    }
}

extern "C" void nn_conv_transpose2d_backward_cuda(float *din, float *dW, float *db, const float *dout,
                                                  const float *in, const float *W, int B, const nn_conv_geom *g,
                                                  float *ws, size_t ws_n)
{
    if (B <= 0) return;
    check_geom(g, 1, "nn_conv_transpose2d_backward_cuda");
    const int R = g->OC * g->KH * g->KW, P = g->H * g->W;
    const size_t in_img = (size_t)g->IC * P, out_img = (size_t)g->OC * g->OH * g->OW;
    if (db) nn_cuda_chan_sum_add_(db, dout, B, g->OC, g->OH * g->OW, 0);
    if (!din && !dW) return;
    const int nb = chunk_images(tconv_ws_min(g), ws_n, B, "nn_conv_transpose2d_backward_cuda");
    const win w = tconv_win(g);
    float *col = ws, *T = ws + (size_t)R * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        /* col[OC KK, N] = im2col(dout chunk) */
        im2col(col, dout + (size_t)b0 * out_img, n, w);
        if (dW) {
            /* dW[IC, OC KK] += X[IC, N] col[OC KK, N]^T  (row-major NT: M = IC, N = R, K = N; beta 1) */
            const float *X = in + (size_t)b0 * in_img;
            if (n > 1) {
                gather(T, X, n, g->IC, P);
                X = T;
            }
            nn_sgemm_cuda(0, 1, g->IC, R, N, 1.0f, X, N, col, N, 1.0f, dW, R);
        }
        if (din) {
            /* dX[IC, N] = W[IC, OC KK] col[OC KK, N]  (row-major NN: M = IC, N = N, K = R), added into din */
            float *d = din + (size_t)b0 * in_img;
            if (n == 1) {
                nn_sgemm_cuda(0, 0, g->IC, N, R, 1.0f, W, R, col, N, 1.0f, d, N);
            } else {
                nn_sgemm_cuda(0, 0, g->IC, N, R, 1.0f, W, R, col, N, 0.0f, T, N);
                scatter(d, T, NULL, n, g->IC, P, 1);
            }
        }
    }
}
