/* cuda/cuda_conv: the GPU building blocks of the ONE conv loop (conv.c nn_conv*_on over the cuda backend table,
 * backend.h) -- conv2d and conv_transpose2d of the paper's image ScoreNet (paper §5.1, App. G; REFERENCE.md
 * "Score network": conv1..conv4, tconv4..tconv1). The loop, not repeated here, works on chunks of n images,
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

typedef nn_conv_win win;   /* conv.h: image [C, IH, IW] -> output positions [OH, OW] */

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

extern "C" void nn_im2col_cuda(float *col, const float *img, int n, const nn_conv_win *wp)
{
    const win w = *wp;
    const size_t total = (size_t)w.C * w.KH * w.KW * n * w.OH * w.OW;
    im2col_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(col, img, n, w);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_col2im_cuda(float *img, const float *col, int n, const nn_conv_win *wp, int accumulate,
                               const float *bias)
{
    const win w = *wp;
    const size_t total = (size_t)n * w.C * w.IH * w.IW;
    col2im_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(img, col, n, w, accumulate,
                                                                                    bias);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_conv_gather_cuda(float *T, const float *t, int n, int C, int P)
{
    const size_t total = (size_t)n * C * P;
    gather_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(T, t, n, C, P);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_conv_scatter_cuda(float *t, const float *T, const float *bias, int n, int C, int P, int add)
{
    const size_t total = (size_t)n * C * P;
    scatter_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(t, T, bias, n, C, P, add);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_conv_add_bias_cuda(float *t, const float *bias, int B, int C, int P)
{
    const size_t total = (size_t)B * C * P;
    add_bias_kernel<<<nn_cuda_blocks(total), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(t, bias, B, C, P);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_conv_bias_grad_cuda(float *db, const float *dout, int B, int C, int P)
{
    nn_cuda_chan_sum_add_(db, dout, B, C, P, 0);
}
