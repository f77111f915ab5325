/* nn/cpu_backend: the cpu backend tables (backend.h): host memory, the reference kernels and nn_sgemm; and its
 * bf16 twin, the same table whose convolution GEMMs run on bf16-rounded operands (issue 8 item 7). */
#include "backend.h"
#include "act.h"
#include "dsm.h"
#include "fourier.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "linear.h"
#include "log.h"
#include "philox.h"
#include "norm.h"
#include "pool.h"
#include "tensor_ops.h"
#include "ws.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

static float *cpu_alloc(size_t n) { return n ? nn_ws_falloc(n) : NULL; }
static void cpu_release(void *p) { free(p); }
static void cpu_copy(float *dst, const float *src, size_t n)
{
    if (n && dst != src) memcpy(dst, src, n * sizeof *dst);
}
static void cpu_zero(float *p, size_t n)
{
    if (n) memset(p, 0, n * sizeof *p);
}
static void cpu_sync(void) {}

/* the resident-data step entries (backend.h): host memory, so each is the obvious loop */
static void cpu_gather_rows(float *dst, const float *src, const int32_t *idx, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) memcpy(dst + i * dim, src + (size_t)idx[i] * dim, dim * sizeof *dst);
}
static void cpu_dsm_loss_acc(double *acc, size_t nc, size_t ntot, size_t dim, const float *score, const float *std,
                             const float *z, float *dscore)
{
    /* the expression of scorenet's host-side chunk sum, so a resident cpu run equals the classic one bitwise */
    acc[0] += dsm_loss(nc, dim, score, std, z, dscore) * (double)nc / (double)ntot;
}
static void cpu_guard_check(double *g)
{
    if (g[1] != 0.0 || !isfinite(g[0])) g[1] = 1.0;
}
static void cpu_adam_guarded(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n,
                             const double *guard)
{
    if (guard[1] == 0.0) nn_adam_step(a, lr, p, g, m, v, n);
    else a->step++;
}
static void cpu_ema_guarded(nn_ema *e, float *shadow, const float *p, size_t n, const double *guard)
{
    if (guard[1] == 0.0) nn_ema_update(e, shadow, p, n);
    else e->num_updates++;
}
static double cpu_fetch_slot[4];
static void cpu_fetch_begin(int slot, const double *src) { cpu_fetch_slot[slot & 3] = *src; }
static double cpu_fetch_end(int slot) { return cpu_fetch_slot[slot & 3]; }

static const nn_backend CPU = {
    .name = "cpu",
    .kind = DEVICE_CPU,
    .host = 1,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = nn_sgemm,
    .im2col = nn_im2col,
    .col2im = nn_col2im,
    .gather = nn_conv_gather,
    .scatter = nn_conv_scatter,
    .add_bias = nn_conv_add_bias,
    .bias_grad = nn_conv_bias_grad,
    .linear_forward = nn_linear_forward,
    .linear_forward_add = nn_linear_forward_add,
    .linear_backward = nn_linear_backward,
    .silu_forward = nn_silu_forward,
    .silu_backward = nn_silu_backward,
    .relu_forward = nn_relu_forward,
    .relu_backward = nn_relu_backward,
    .relu_mask = nn_relu_mask,
    .maxpool2d_forward = nn_maxpool2d_forward,
    .maxpool2d_backward = nn_maxpool2d_backward,
    .dropout_forward = nn_dropout_forward,
    .dropout_backward = nn_dropout_backward,
    .cross_entropy_forward = nn_cross_entropy_forward,
    .cross_entropy_backward = nn_cross_entropy_backward,
    .fourier_forward = nn_fourier_forward,
    .groupnorm_forward = nn_groupnorm_forward,
    .groupnorm_backward = nn_groupnorm_backward,
    .groupnorm_silu_forward = nn_groupnorm_silu_forward,
    .groupnorm_silu_backward = nn_groupnorm_silu_backward,
    .chan_add_forward = nn_chan_add_forward,
    .chan_add_backward = nn_chan_add_backward,
    .concat_forward = nn_concat_forward,
    .concat_backward = nn_concat_backward,
    .concat_split = nn_concat_split,
    .rowdiv = nn_rowdiv,
    .scale = nn_scale,
    .gaussian_fill = philox_gaussian_fill,
    .rowscale = nn_rowscale,
    .dsm_loss = dsm_loss,
    .adam_step = nn_adam_step,
    .ema_update = nn_ema_update,
    .gather_rows = cpu_gather_rows,
    .dsm_loss_acc = cpu_dsm_loss_acc,
    .guard_check = cpu_guard_check,
    .adam_step_guarded = cpu_adam_guarded,
    .ema_update_guarded = cpu_ema_guarded,
    .fetch_begin = cpu_fetch_begin,
    .fetch_end = cpu_fetch_end,
};

const nn_backend *nn_backend_cpu(void) { return &CPU; }

/* ---- cpu-bf16: the table's GEMM, and so every convolution (nn_conv*_on), takes fp32 operands rounded to bf16
 * while they are packed (nn_gemm_bf16: AMX tiles where the CPU has them) and accumulates in fp32; everything else
 * is the cpu table. */
static nn_backend CPU_BF16;
static once_flag cpu_bf16_once = ONCE_FLAG_INIT;

static void gemm_bf16_f32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc)
{
    nn_gemm_bf16(transA, transB, M, N, K, alpha, A, 0, lda, B, 0, ldb, beta, C, ldc);
}
static void cpu_bf16_make(void)
{
    CPU_BF16 = CPU;
    CPU_BF16.name = "cpu-bf16";
    CPU_BF16.gemm = gemm_bf16_f32;
}

const nn_backend *nn_backend_cpu_bf16(void)
{
    call_once(&cpu_bf16_once, cpu_bf16_make);
    return &CPU_BF16;
}

const nn_backend *nn_backend_for(device_kind d) { return d == DEVICE_CUDA ? nn_backend_cuda() : nn_backend_cpu(); }
