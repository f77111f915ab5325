/* cuda/cuda_gemm: nn_sgemm_cuda (the GPU twin of gemm.h's row-major nn_sgemm) on cuBLAS, and the linear layer
 * twins of linear.h (nn_linear_forward / _forward_add / _backward) built on it plus a bias / column-sum kernel.
 * These carry the ScoreNet's Dense layers (time embedding Linear(256, 256), the Dense(embed -> C) projections;
 * paper §5.1, App. G) and, through the conv twins, its convolutions.
 *
 * Row-major on a column-major BLAS (the standard swap): a row-major matrix X[r, c] with row stride ld is, read
 * column-major with leading dimension ld, the matrix X^T[c, r]. We want row-major C[M, N] = op(A) op(B); seen
 * column-major that is C^T[N, M] = op(B)^T op(A)^T. So cublasSgemm is called with the operands swapped (B first),
 * sizes (m, n, k) = (N, M, K), leading dimensions unchanged (ldb, lda, ldc), and each operand keeps its own
 * transpose flag: the column-major view of row-major B is B^T, so "no transpose" of the view yields B^T
 * = op(B)^T when transB = 0, and "transpose" of the view yields B = op(B)^T when transB = 1 (op(B) = B^T);
 * likewise for A. */
#include "cuda_internal.cuh"

extern "C" void nn_sgemm_cuda(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    LOG_CHECK(K >= 0 && lda >= (transA ? M : (K > 0 ? K : 1)) && ldb >= (transB ? (K > 0 ? K : 1) : N) && ldc >= N,
              "nn_sgemm_cuda: bad sizes (M %d N %d K %d lda %d ldb %d ldc %d, transA %d transB %d)", M, N, K, lda,
              ldb, ldc, transA, transB);
    /* row-major C[M, N] = op(A) op(B)  <=>  column-major C^T[N, M] = op(B)^T op(A)^T: swap operands and sizes
     * (see the file comment); beta == 0 makes cuBLAS ignore C's old contents, as nn_sgemm. */
    CUBLAS_CHECK(cublasSgemm(nn_cuda_blas_(), transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

/* out[r, c] += b[c] for out[R, Cn] row-major */
static __global__ void rows_add_bias_kernel(float *out, const float *b, size_t R, int Cn)
{
    const size_t n = R * (size_t)Cn;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] += b[i % (size_t)Cn];
}

/* db[c] += sum_r dout[r, c] for dout[R, Cn], two deterministic stages (cuda_internal.cuh): stage 1 runs a grid of
 * (column tiles) x S row slices, block (tile, s) of (32, 8) threads summing rows of slice s for its 32 columns
 * (coalesced 128-byte rows, the 8 partials reduced in a fixed order) into part[c S + s]; stage 2 adds the S
 * partials in order. S depends only on R, so the result does not depend on timing. The ScoreNet's Dense layers
 * (OC = 32 .. 256 columns over B = 1,024 rows) used to run on 1 .. 8 blocks. */
#define COLSUM_X 32
#define COLSUM_Y 8
static __global__ void colsum_part_kernel(double *part, const float *dout, int R, int Cn, int S)
{
    __shared__ double acc[COLSUM_Y][COLSUM_X];
    const int c = blockIdx.x * COLSUM_X + threadIdx.x, sl = blockIdx.y;
    const int len = (R + S - 1) / S, lo = sl * len, hi = lo + len < R ? lo + len : R;
    double s = 0.0;
    if (c < Cn)
        for (int r = lo + threadIdx.y; r < hi; r += COLSUM_Y) s += dout[(size_t)r * Cn + c];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < Cn) {
        double t = 0.0;
        for (int y = 0; y < COLSUM_Y; y++) t += acc[y][threadIdx.x];
        part[(size_t)c * S + sl] = t;
    }
}

static void colsum_add(float *db, const float *dout, int R, int Cn)
{
    int S = nn_cuda_slices_((size_t)R * COLSUM_X);   /* >= 8 values per thread in stage 1 */
    if (S > R) S = R;
    double *part = nn_cuda_scratch_((size_t)Cn * S);
    dim3 block(COLSUM_X, COLSUM_Y), grid((unsigned)((Cn + COLSUM_X - 1) / COLSUM_X), (unsigned)S);
    colsum_part_kernel<<<grid, block, 0, nn_cuda_stream_()>>>(part, dout, R, Cn, S);
    CUDA_CHECK_LAUNCH();
    nn_cuda_sum_partials_(db, part, Cn, S);
}

static void linear_fwd(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC,
                       float beta)
{
    LOG_CHECK(B >= 0 && IC > 0 && OC > 0, "nn_linear_forward_cuda: bad sizes (B %d IC %d OC %d)", B, IC, OC);
    if (B == 0) return;
    /* out[B, OC] = in[B, IC] W[OC, IC]^T (+ beta out): row-major NT product, M = B, N = OC, K = IC */
    nn_sgemm_cuda(0, 1, B, OC, IC, 1.0f, in, IC, W, IC, beta, out, OC);
    if (b) {
        const size_t n = (size_t)B * OC;
        rows_add_bias_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(out, b, (size_t)B, OC);
        CUDA_CHECK_LAUNCH();
    }
}

extern "C" void nn_linear_forward_cuda(float *out, const float *in, const float *W, const float *b, int B, int IC,
                                       int OC)
{
    linear_fwd(out, in, W, b, B, IC, OC, 0.0f);
}

extern "C" void nn_linear_forward_add_cuda(float *out, const float *in, const float *W, const float *b, int B,
                                           int IC, int OC)
{
    linear_fwd(out, in, W, b, B, IC, OC, 1.0f);
}

extern "C" void nn_linear_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in,
                                        const float *W, int B, int IC, int OC)
{
    LOG_CHECK(B >= 0 && IC > 0 && OC > 0, "nn_linear_backward_cuda: bad sizes (B %d IC %d OC %d)", B, IC, OC);
    if (B == 0) return;
    /* din[B, IC] += dout[B, OC] W[OC, IC]: NN, M = B, N = IC, K = OC, beta 1 (accumulate) */
    if (din) nn_sgemm_cuda(0, 0, B, IC, OC, 1.0f, dout, OC, W, IC, 1.0f, din, IC);
    /* dW[OC, IC] += dout[B, OC]^T in[B, IC]: TN, M = OC, N = IC, K = B; dout stored [B, OC] so lda = OC */
    if (dW) nn_sgemm_cuda(1, 0, OC, IC, B, 1.0f, dout, OC, in, IC, 1.0f, dW, IC);
    if (db) colsum_add(db, dout, B, OC);
}
