/* cuda/cuda_internal: what the common/cuda/ sources share and nothing else sees (the public API is
 * common/nn/nn_cuda.h): the error-checking macros (DESIGN.md §4: every CUDA call and every kernel launch is
 * checked; failures print file:line and exit 1 through log_fatal_at), the context accessors (one stream, one
 * cuBLAS handle), launch-size helpers for grid-stride loops, and a double block reduction. */
#ifndef SF_CUDA_INTERNAL_CUH
#define SF_CUDA_INTERNAL_CUH

/* The C++ runtime that nvcc's launch stubs need (__cxa_guard_*, __gxx_personality_v0) is linked by the Makefile
 * (-lstdc++ in CUDA builds), so host code keeps thread-safe statics. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "nn_cuda.h"
extern "C" {
#include "log.h"
}

const char *nn_cuda_blas_status_string(cublasStatus_t s);
void nn_cuda_after_launch(const char *file, int line);   /* cudaGetLastError (+ sync when SF_CUDA_SYNC=1) */

#define CUDA_CHECK(call)                                                                                  \
    do {                                                                                                  \
        cudaError_t e_ = (call);                                                                          \
        if (e_ != cudaSuccess) log_fatal_at(__FILE__, __LINE__, "CUDA: %s: %s", #call, cudaGetErrorString(e_)); \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                \
    do {                                                                                                  \
        cublasStatus_t s_ = (call);                                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                  \
            log_fatal_at(__FILE__, __LINE__, "cuBLAS: %s: %s", #call, nn_cuda_blas_status_string(s_));    \
    } while (0)

/* after every <<<>>> launch */
#define CUDA_CHECK_LAUNCH() nn_cuda_after_launch(__FILE__, __LINE__)

cudaStream_t nn_cuda_stream_(void);     /* the context's stream (initialises the context) */
cublasHandle_t nn_cuda_blas_(void);     /* its cuBLAS handle, bound to that stream */
double *nn_cuda_scratch_(size_t n);     /* device scratch of >= n doubles, grown once (never shrinks) */

/* dv[b * v_bstride + c] += sum_p dout[b, c, p] (v_bstride 0: summed over b too) for dout[B, C, HW]: the bias
 * gradient of conv / channel-add layers (cuda_ops.cu; block per output, double sums, deterministic) */
void nn_cuda_chan_sum_add_(float *dv, const float *dout, int B, int C, int HW, int v_bstride);

/* Two-stage deterministic reductions of a per-channel sum over n = B * HW values (bias / GroupNorm affine
 * gradients): stage 1 runs C x S blocks, block (c, s) summing slice s (a fixed range of n) into part[c S + s];
 * stage 2 (nn_cuda_sum_partials_) adds sum_s part[c S + s], in order, to dst[c]. S depends only on n, so the
 * result does not depend on timing; it replaces one block per channel (C = 32 blocks over B * 676 values). */
int nn_cuda_slices_(size_t n);
void nn_cuda_sum_partials_(float *dst, const double *part, int C, int S);

#define NN_CUDA_THREADS 256
#define NN_CUDA_MAX_BLOCKS 65535L        /* grid-stride loops cover the rest */

#define NN_GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* blocks for a grid-stride loop over n elements */
static inline unsigned nn_cuda_blocks(size_t n)
{
    size_t b = (n + NN_CUDA_THREADS - 1) / NN_CUDA_THREADS;
    if (b < 1) b = 1;
    if (b > (size_t)NN_CUDA_MAX_BLOCKS) b = (size_t)NN_CUDA_MAX_BLOCKS;
    return (unsigned)b;
}

/* Sum of v over the block (blockDim.x a multiple of 32, <= 1024); the result is valid in thread 0 only.
 * Fixed reduction tree: deterministic. Contains __syncthreads: every thread of the block must call it. */
__device__ __forceinline__ double nn_cuda_block_sum(double v)
{
    __shared__ double warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();   /* warp_sums may still be read by a previous call */
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = 0.0;
    if (warp == 0) {
        v = lane < nwarps ? warp_sums[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

/* Broadcast version: every thread gets the block sum. */
__device__ __forceinline__ double nn_cuda_block_sum_all(double v)
{
    __shared__ double total;
    v = nn_cuda_block_sum(v);
    if (threadIdx.x == 0) total = v;
    __syncthreads();
    v = total;
    __syncthreads();   /* total may be overwritten by the next call */
    return v;
}

#endif
