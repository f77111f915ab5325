/* cuda/cuda_optim: GPU twins of the training-step pieces -- adam.h (torch.optim.Adam defaults, the optimiser of
 * every network in the paper; REFERENCE.md), ema.h (the paper code's parameter EMA with the (1+n)/(10+n)
 * warm-up) and dsm.h's dsm_loss (the denoising score-matching loss, paper eq. 5, with its gradient).
 * Adam / EMA run over flat buffers (params.h lays parameters, grads and moments out identically). The step
 * scalars (bias corrections, decay) are computed on the host in double exactly as the CPU twins do, and the
 * per-element float arithmetic is written with __fmul_rn / __fadd_rn / __fdiv_rn so that nvcc cannot contract it
 * into FMAs: with IEEE sqrtf and division (nvcc's defaults) every element is then computed with the same float
 * operations as the CPU (ISO C mode: no contraction there either), i.e. bitwise equal barring compiler bugs.
 * dsm loss: per-block double partial sums, then one block sums the partials in a fixed order (deterministic);
 * the partials live in the context's grown-once scratch buffer. */
#include "cuda_internal.cuh"
#include <math.h>

/* guard (NULL: none): the resident step's guard (backend.h); a set g[1] skips the update */
static __global__ void adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float step_size,
                                   float inv_sqrt_bc2, float b1, float b2, float eps, float c1, float c2,
                                   const double *guard)
{
    if (guard && guard[1] != 0.0) return;
    NN_GRID_STRIDE(i, n)
    {
        const float gi = g[i];
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(c1, gi));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(c2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        const float den = __fadd_rn(__fmul_rn(sqrtf(vi), inv_sqrt_bc2), eps);
        p[i] = __fsub_rn(p[i], __fdiv_rn(__fmul_rn(step_size, mi), den));
    }
}

static void adam_launch(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n,
                        const double *guard)
{
    /* host scalars: identical to nn_adam_step */
    a->step++;
    const double bc1 = 1.0 - pow(a->beta1, (double)a->step);
    const double bc2 = 1.0 - pow(a->beta2, (double)a->step);
    const float step_size = (float)(lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = (float)a->beta1, b2 = (float)a->beta2, eps = (float)a->eps;
    const float c1 = (float)(1.0 - a->beta1), c2 = (float)(1.0 - a->beta2);
    if (n == 0) return;
    adam_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(p, g, m, v, n, step_size, inv_sqrt_bc2,
                                                                               b1, b2, eps, c1, c2, guard);
    CUDA_CHECK_LAUNCH();
}

extern "C" void nn_adam_step_cuda(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n)
{
    adam_launch(a, lr, p, g, m, v, n, NULL);
}

extern "C" void nn_adam_step_guarded_cuda(nn_adam *a, double lr, float *p, const float *g, float *m, float *v,
                                          size_t n, const double *guard)
{
    adam_launch(a, lr, p, g, m, v, n, guard);
}

static __global__ void ema_kernel(float *shadow, const float *p, size_t n, float omd, const double *guard)
{
    if (guard && guard[1] != 0.0) return;
    NN_GRID_STRIDE(i, n)
    {
        const float s = shadow[i];
        shadow[i] = __fsub_rn(s, __fmul_rn(omd, __fsub_rn(s, p[i])));
    }
}

static double ema_launch(nn_ema *e, float *shadow, const float *p, size_t n, const double *guard)
{
    e->num_updates++;
    const double d = nn_ema_decay_at(e->decay, e->num_updates);
    const float omd = (float)(1.0 - d);
    if (n > 0) {
        ema_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_stream_()>>>(shadow, p, n, omd, guard);
        CUDA_CHECK_LAUNCH();
    }
    return d;
}

extern "C" double nn_ema_update_cuda(nn_ema *e, float *shadow, const float *p, size_t n)
{
    return ema_launch(e, shadow, p, n, NULL);
}

extern "C" void nn_ema_update_guarded_cuda(nn_ema *e, float *shadow, const float *p, size_t n, const double *guard)
{
    (void)ema_launch(e, shadow, p, n, guard);
}

#define DSM_MAX_BLOCKS 1024   /* partial sums; the final pass is one block */

static __global__ void dsm_partial_kernel(double *partial, float *dscore, const float *score, const float *std,
                                          const float *z, size_t n, size_t dim, float inv_n)
{
    const size_t total = n * dim;
    double s = 0.0;
    NN_GRID_STRIDE(j, total)
    {
        const float sd = std[j / dim];
        const float r = __fadd_rn(__fmul_rn(score[j], sd), z[j]);
        s += (double)r * (double)r;
        if (dscore) dscore[j] = __fmul_rn(__fmul_rn(2.0f * r, sd), inv_n);
    }
    s = nn_cuda_block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

static __global__ void dsm_final_kernel(double *out, const double *partial, int nparts)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += partial[i];
    s = nn_cuda_block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

extern "C" double nn_dsm_loss_cuda(size_t n, size_t dim, const float *score, const float *std, const float *z,
                                   float *dscore)
{
    LOG_CHECK(n > 0 && dim > 0, "nn_dsm_loss_cuda: empty batch (n %zu dim %zu)", n, dim);
    unsigned blocks = nn_cuda_blocks(n * dim);
    if (blocks > DSM_MAX_BLOCKS) blocks = DSM_MAX_BLOCKS;
    double *scratch = nn_cuda_scratch_((size_t)blocks + 1);   /* partial[blocks], then the total */
    const float inv_n = 1.0f / (float)n;
    cudaStream_t s = nn_cuda_stream_();
    dsm_partial_kernel<<<blocks, NN_CUDA_THREADS, 0, s>>>(scratch + 1, dscore, score, std, z, n, dim, inv_n);
    CUDA_CHECK_LAUNCH();
    dsm_final_kernel<<<1, NN_CUDA_THREADS, 0, s>>>(scratch, scratch + 1, (int)blocks);
    CUDA_CHECK_LAUNCH();
    double sum = 0.0;
    nn_cuda_memcpy_d2h(&sum, scratch, sizeof sum);
    return sum / (double)n;
}

/* the resident step's loss: the same partial sums and final block sum as nn_dsm_loss_cuda, then the host's chunk
 * arithmetic ((sum / nc) * nc / ntot added to acc) in double with explicit rounding, so nothing is fused */
static __global__ void dsm_final_acc_kernel(double *acc, const double *partial, int nparts, double nc, double ntot)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += partial[i];
    s = nn_cuda_block_sum(s);
    if (threadIdx.x == 0) {
        const double l = __ddiv_rn(s, nc);
        acc[0] = __dadd_rn(acc[0], __ddiv_rn(__dmul_rn(l, nc), ntot));
    }
}

extern "C" void nn_dsm_loss_acc_cuda(double *acc, size_t nc, size_t ntot, size_t dim, const float *score,
                                     const float *std, const float *z, float *dscore)
{
    LOG_CHECK(nc > 0 && dim > 0 && ntot >= nc, "nn_dsm_loss_acc_cuda: bad sizes (nc %zu ntot %zu dim %zu)", nc, ntot,
              dim);
    unsigned blocks = nn_cuda_blocks(nc * dim);
    if (blocks > DSM_MAX_BLOCKS) blocks = DSM_MAX_BLOCKS;
    double *scratch = nn_cuda_scratch_((size_t)blocks + 1);
    const float inv_n = 1.0f / (float)nc;
    cudaStream_t s = nn_cuda_stream_();
    dsm_partial_kernel<<<blocks, NN_CUDA_THREADS, 0, s>>>(scratch + 1, dscore, score, std, z, nc, dim, inv_n);
    CUDA_CHECK_LAUNCH();
    dsm_final_acc_kernel<<<1, NN_CUDA_THREADS, 0, s>>>(acc, scratch + 1, (int)blocks, (double)nc, (double)ntot);
    CUDA_CHECK_LAUNCH();
}

static __global__ void guard_kernel(double *g)
{
    if (g[1] != 0.0 || !isfinite(g[0])) g[1] = 1.0;
}

extern "C" void nn_guard_check_cuda(double *g)
{
    guard_kernel<<<1, 1, 0, nn_cuda_stream_()>>>(g);
    CUDA_CHECK_LAUNCH();
}
