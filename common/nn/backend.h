/* nn/backend: the engine's backend table (DESIGN.md §2, §4): every operation a network needs, as function
 * pointers over memory on ONE device. A network is written once over a table and picks it when it is allocated
 * (nn_backend_for(device_select(...))); it never calls a backend directly.
 *   cpu   today's reference kernels (act, conv, fourier, linear, norm, tensor_ops, adam, ema, dsm) and the packed
 *         AVX-512 SGEMM; pointers are plain host memory (host = 1: copies are memcpy).
 *   cuda  the CUDA kernels of common/cuda/ and cuBLAS (nn_cuda.h); pointers are device memory, every op is
 *         queued on the one stream of the nn_cuda context; only download, dsm_loss and sync wait for it.
 * Each entry has the semantics (argument order, layouts, accumulation) of the CPU function it names; the CPU
 * function is the reference, and tests/test_cuda_layers.c / test_cuda_classify.c compare every CUDA entry against
 * it on a GPU. Integer arrays (pool argmax, labels) live in the same 4-byte words: alloc / upload / download
 * carry them as floats by size, never reading them as floats (cast the pointer). */
#ifndef SF_NN_BACKEND_H
#define SF_NN_BACKEND_H
#include "adam.h"
#include "conv.h"
#include "device.h"
#include "ema.h"
#include "pool.h"
#include <stddef.h>
#include <stdint.h>

typedef struct nn_backend {
    const char *name;
    device_kind kind;
    int host;   /* 1: pointers are host memory (a host array may be passed where the table's memory is wanted) */

    /* ---- memory on the device (float counts) */
    float *(*alloc)(size_t n);                                    /* n zeroed floats (n 0: NULL) */
    void (*release)(void *p);                                     /* NULL is fine */
    void (*upload)(float *dst, const float *host_src, size_t n);  /* host -> device */
    void (*download)(float *host_dst, const float *src, size_t n);   /* device -> host, waits */
    void (*copy)(float *dst, const float *src, size_t n);         /* device -> device */
    void (*zero)(float *p, size_t n);
    void (*sync)(void);                                           /* waits for queued work */

    /* ---- GEMM (gemm.h nn_sgemm: row-major, C = alpha op(A) op(B) + beta C) */
    void (*gemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc);

    /* ---- convolution building blocks (conv.h: the one chunked loop calls these and gemm) */
    void (*im2col)(float *col, const float *img, int n, const nn_conv_win *w);
    /* img[n, C, IH, IW] = (accumulate: img +) col2im(col) (+ bias[c], bias may be NULL) */
    void (*col2im)(float *img, const float *col, int n, const nn_conv_win *w, int accumulate, const float *bias);
    void (*gather)(float *T, const float *t, int n, int C, int P);   /* T[C, n P] <- t[n, C, P] */
    /* t[n, C, P] = T + bias (add 0) or t += T (add 1) */
    void (*scatter)(float *t, const float *T, const float *bias, int n, int C, int P, int add);
    void (*add_bias)(float *t, const float *bias, int B, int C, int P);          /* t[B, C, P] += bias[C] */
    void (*bias_grad)(float *db, const float *dout, int B, int C, int P);        /* db[C] += sum_{b,p} dout */

    /* ---- layers (linear.h, act.h, fourier.h, norm.h, tensor_ops.h). Convolutions are not entries: they are the
     * one chunked loop nn_conv*_on(table, ...) below, over the building blocks above, so a table that changes
     * a building block (cpu-bf16: the GEMM) changes every convolution with it. */
    void (*linear_forward)(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);
    void (*linear_forward_add)(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);
    void (*linear_backward)(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                            int B, int IC, int OC);
    void (*silu_forward)(float *out, const float *x, size_t n);
    void (*silu_backward)(float *din, const float *dout, const float *x, size_t n);
    void (*relu_forward)(float *out, const float *x, size_t n);
    void (*relu_backward)(float *din, const float *dout, const float *x, size_t n);
    void (*relu_mask)(float *g, const float *h, size_t n);
    /* pool.h; idx int32 in table memory */
    void (*maxpool2d_forward)(float *out, int32_t *idx, const float *in, int B, const nn_pool_geom *g);
    void (*maxpool2d_backward)(float *din, const float *dout, const int32_t *idx, int B, const nn_pool_geom *g);
    /* tensor_ops.h: Philox masks (the same on every table), cross-entropy with int labels in table memory; the
     * loss is returned to the host (waits) */
    void (*dropout_forward)(float *out, float *mask, const float *in, size_t n_units, size_t inner, float p,
                            int train, uint64_t seed, uint64_t stream, uint64_t offset);
    void (*dropout_backward)(float *din, const float *dout, const float *mask, size_t n_units, size_t inner,
                             int train);
    double (*cross_entropy_forward)(float *logp, const float *logits, const int *labels, int B, int K);
    void (*cross_entropy_backward)(float *dlogits, float dloss, const float *logp, const int *labels, int B, int K);
    void (*fourier_forward)(float *out, const float *t, size_t t_stride, const float *W, int B, int F);
    void (*groupnorm_forward)(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                              const float *beta, int B, int C, int HW, int G, float eps);
    void (*groupnorm_backward)(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *gamma, int B, int C, int HW, int G);
    /* norm.h GroupNorm + SiLU fused; OPTIONAL (NULL: the network runs groupnorm_* and silu_* instead) */
    void (*groupnorm_silu_forward)(float *y, float *h, float *mean, float *rstd, const float *in, const float *gamma,
                                   const float *beta, int B, int C, int HW, int G, float eps);
    void (*groupnorm_silu_backward)(float *din, float *dgamma, float *dbeta, const float *dh, size_t dh_bstride,
                                    const float *y, const float *in, const float *mean, const float *rstd, const float *gamma, int B,
                                    int C, int HW, int G, float *ws);
    void (*chan_add_forward)(float *x, const float *v, int B, int C, int HW, int v_bstride);
    void (*chan_add_backward)(float *dv, const float *dout, int B, int C, int HW, int v_bstride);
    void (*concat_forward)(float *out, const float *a, const float *b, int B, int C1, int C2, int HW);
    void (*concat_backward)(float *da, float *db, const float *dout, int B, int C1, int C2, int HW);
    /* tensor_ops.h nn_concat_split (overwrites); OPTIONAL (NULL: zero + concat_backward) */
    void (*concat_split)(float *da, float *db, const float *dout, int B, int C1, int C2, int HW);
    /* dst[n, d] = src[n, d] / v[n] (per-sample factors such as std(t); dst may be src) */
    void (*rowdiv)(float *dst, const float *v, const float *src, int n, int d);
    void (*scale)(float *x, float a, size_t n);   /* x[n] *= a */
    void (*rowscale)(float *dst, const float *v, const float *src, int n, int d, float beta);   /* v[n] src + beta dst */
    /* philox.h philox_gaussian_fill: the same bits on every table, drawn where the memory is */
    void (*gaussian_fill)(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

    /* ---- losses and optimiser (dsm.h, adam.h, ema.h; flat buffers) */
    /* L = (1/n) sum (score std + z)^2 in double, returned to the host; dscore (may be NULL) = dL/dscore */
    double (*dsm_loss)(size_t n, size_t dim, const float *score, const float *std, const float *z, float *dscore);
    void (*adam_step)(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n);
    double (*ema_update)(nn_ema *e, float *shadow, const float *p, size_t n);

    /* ---- a training step that never waits for the host (scorenet's resident-data path, train.h): the data and
     * the shuffle orders live in table memory, the loss goes to a table-memory double and is read back later.
     * A step "guard" is two doubles in table memory: g[0] the step's loss accumulator, g[1] a sticky flag set
     * once any guarded loss was not finite (the updates of that step and of every later one are skipped, as
     * scorenet_train_step skips a non-finite step and train_run stops there). */
    /* dst[i, :] = src[idx[i], :] for i < n (idx int32 in table memory) */
    void (*gather_rows)(float *dst, const float *src, const int32_t *idx, size_t n, size_t dim);
    /* acc[0] += (dsm_loss(nc, ...) * nc) / ntot, in double exactly as scorenet's host arithmetic; dscore as
     * dsm_loss. Never waits. */
    void (*dsm_loss_acc)(double *acc, size_t nc, size_t ntot, size_t dim, const float *score, const float *std,
                         const float *z, float *dscore);
    void (*guard_check)(double *g);   /* g[1] = g[1] || !isfinite(g[0]) */
    /* adam_step / ema_update, applied only while g[1] == 0; the host counters advance either way (the caller
     * rolls them back when it learns of the non-finite loss) */
    void (*adam_step_guarded)(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n,
                              const double *guard);
    void (*ema_update_guarded)(nn_ema *e, float *shadow, const float *p, size_t n, const double *guard);
    /* read a table-memory double without stalling: fetch_begin queues its copy into host slot (0..3) behind the
     * work already queued; fetch_end waits for that copy only and returns the value */
    void (*fetch_begin)(int slot, const double *src);
    double (*fetch_end)(int slot);
} nn_backend;

const nn_backend *nn_backend_cpu(void);
/* The cpu table with bf16 convolution GEMMs: the conv / conv-transpose loops' GEMMs round both fp32 operands to
 * bf16 while packing and accumulate in fp32 (gemm_bf16.h; AMX tiles where available). Everything else (linear
 * layers, norms, optimiser) is the cpu table's. Host memory, like the cpu table. */
const nn_backend *nn_backend_cpu_bf16(void);
/* The CUDA table; dies with a one-line message in a build without CUDA. */
const nn_backend *nn_backend_cuda(void);
const nn_backend *nn_backend_for(device_kind d);

/* The one chunked im2col / GEMM loop of conv.h over any table: how every network runs a convolution (conv.h's
 * nn_conv2d_forward etc. are these over the cpu table). Workspace ws[ws_n] on the table's device, as conv.h
 * describes; a geometry not made by nn_conv*_geom (bad sizes) is a one-line error. */
void nn_conv2d_forward_on(const nn_backend *be, float *out, const float *in, const float *W, const float *b, int B,
                          const nn_conv_geom *g, float *ws, size_t ws_n);
void nn_conv2d_backward_on(const nn_backend *be, float *din, float *dW, float *db, const float *dout, const float *in,
                           const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n);
void nn_conv_transpose2d_forward_on(const nn_backend *be, float *out, const float *in, const float *W, const float *b,
                                    int B, const nn_conv_geom *g, float *ws, size_t ws_n);
void nn_conv_transpose2d_backward_on(const nn_backend *be, float *din, float *dW, float *db, const float *dout,
                                     const float *in, const float *W, int B, const nn_conv_geom *g, float *ws,
                                     size_t ws_n);

#endif
