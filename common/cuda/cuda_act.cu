/* cuda/cuda_act: elementwise twins of act.h (SiLU = the ScoreNet's swish `act`, ReLU) and fourier.h (the Gaussian
 * Fourier time embedding, the ScoreNet's `embed.0`; paper §5.1, App. G). Grid-stride loops, one element per
 * iteration. SiLU uses CUDA's expf (full precision; no fast-math intrinsics), the CPU twin a ~2-ulp polynomial:
 * the two agree to a few float ulps. The Fourier phase and sin/cos are computed in double, as the CPU twin. */
#include "cuda_internal.cuh"

static __global__ void silu_fwd_kernel(float *out, const float *x, size_t n)
{
    NN_GRID_STRIDE(i, n)
    {
        const float xi = x[i];
        out[i] = xi / (1.0f + expf(-xi));
    }
}

static __global__ void silu_bwd_kernel(float *din, const float *dout, const float *x, size_t n)
{
    NN_GRID_STRIDE(i, n)
    {
        const float xi = x[i];
        const float s = 1.0f / (1.0f + expf(-xi));
        din[i] += dout[i] * (s * (1.0f + xi * (1.0f - s)));
    }
}

static __global__ void relu_fwd_kernel(float *out, const float *x, size_t n)
{
    NN_GRID_STRIDE(i, n) out[i] = x[i] < 0.0f ? 0.0f : x[i];   /* a NaN stays NaN, as the CPU and torch.relu */
}

static __global__ void relu_mask_kernel(float *g, const float *h, size_t n)
{
    NN_GRID_STRIDE(i, n) g[i] = h[i] > 0.0f ? g[i] : 0.0f;
}

extern "C" void nn_relu_mask_cuda(float *g, const float *h, size_t n)
{
    if (n == 0) return;
    relu_mask_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(g, h, n);
    CUDA_CHECK_LAUNCH();
}

static __global__ void relu_bwd_kernel(float *din, const float *dout, const float *x, size_t n)
{
    NN_GRID_STRIDE(i, n) din[i] += x[i] > 0.0f ? dout[i] : 0.0f;
}

extern "C" void nn_silu_forward_cuda(float *out, const float *x, size_t n)
{
    if (n == 0) return;
    silu_fwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, x, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_silu_backward_cuda(float *din, const float *dout, const float *x, size_t n)
{
    if (n == 0) return;
    silu_bwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(din, dout, x, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_relu_forward_cuda(float *out, const float *x, size_t n)
{
    if (n == 0) return;
    relu_fwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, x, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_relu_backward_cuda(float *din, const float *dout, const float *x, size_t n)
{
    if (n == 0) return;
    relu_bwd_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(din, dout, x, n);
    CUDA_CHECK_LAUNCH();
}

/* out[b, j] = sin(2 pi t_b W_j), out[b, F + j] = cos(...), one (b, j) pair per iteration */
static __global__ void fourier_kernel(float *out, const float *t, size_t t_stride, const float *W, int B, int F)
{
    const double two_pi = 6.283185307179586476925;
    const size_t n = (size_t)B * F;
    NN_GRID_STRIDE(i, n)
    {
        const size_t b = i / (size_t)F, j = i % (size_t)F;
        double s, c;
        sincos(two_pi * (double)t[b * t_stride] * (double)W[j], &s, &c);
        float *o = out + b * 2 * (size_t)F;
        o[j] = (float)s;
        o[F + j] = (float)c;
    }
}

extern "C" void nn_fourier_forward_cuda(float *out, const float *t, size_t t_stride, const float *W, int B, int F)
{
    LOG_CHECK(B >= 0 && F > 0, "nn_fourier_forward_cuda: bad sizes (B %d F %d)", B, F);
    const size_t n = (size_t)B * F;
    if (n == 0) return;
    fourier_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, t, t_stride, W, B, F);
    CUDA_CHECK_LAUNCH();
}
