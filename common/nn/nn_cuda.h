/* nn/nn_cuda: the CUDA twins of the CPU engine in common/nn/ (DESIGN.md §4: "CUDA twin nn_<layer>_forward_cuda
 * behind a narrow C header"), used to train the paper's image ScoreNet (paper §5.1, App. G; REFERENCE.md "Score
 * network") on a GPU. Plain C: no CUDA type appears here, so C code includes it freely; the definitions live in
 * the .cu files of common/cuda/ and exist only in a CUDA build (SF_HAVE_CUDA), so every CALL must sit under
 * #ifdef SF_HAVE_CUDA.
 *
 * Conventions (identical to the CPU twins unless stated):
 *   - every tensor pointer is a DEVICE pointer (nn_cuda_malloc); sizes / scalars / geometry are host values;
 *   - same argument order, layouts (row-major, NCHW, PyTorch weight layouts) and semantics as the CPU function
 *     named in each comment; gradients ACCUMULATE (+=) and may be NULL where the CPU twin allows it;
 *   - all work is queued on one stream owned by a process-wide context (created on first use or by
 *     nn_cuda_init, with its cuBLAS handle, in TF32-free fp32 math: results are compared with fp32 PyTorch with
 *     TF32 off and with the CPU reference). Functions return without waiting for the GPU, except the d2h copy,
 *     nn_dsm_loss_cuda (which returns a host value), nn_cuda_sync and the timer's stop;
 *   - every CUDA / cuBLAS error (including kernel launch errors) prints "file:line: error: ..." and exits 1.
 *     Set SF_CUDA_SYNC=1 in the environment to synchronise after every launch (asynchronous faults are then
 *     reported at the kernel that caused them);
 *   - reductions (bias / norm / loss sums) accumulate in double in a fixed order: results are deterministic
 *     run to run (cuBLAS SGEMM is deterministic for a fixed handle, stream and sizes);
 *   - nothing is allocated per call, except the context's scratch buffer for nn_dsm_loss_cuda, grown once to
 *     the largest size asked for (a few KiB).
 * Workspaces: the conv twins take a device workspace ws[ws_n] with exactly the CPU convention (conv.h): size it
 * with nn_conv2d_ws_floats / nn_conv_transpose2d_ws_floats (or nn_conv*_ws_min(g) * B for one GEMM over the
 * whole batch, best on a GPU); images are processed in chunks of floor(ws_n / ws_min) images. */
#ifndef SF_NN_CUDA_H
#define SF_NN_CUDA_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "adam.h"
#include "conv.h"
#include "ema.h"
#include "pool.h"
#include <stdint.h>

/* ---------------------------------------------------------------- context */

void nn_cuda_init(void);       /* device 0, one stream, one cuBLAS handle (idempotent; called by every twin) */
void nn_cuda_shutdown(void);   /* destroys handle, stream and scratch (a later call re-creates them) */
void nn_cuda_sync(void);       /* waits for the stream; reports any asynchronous error */
void *nn_cuda_stream(void);    /* the context's cudaStream_t, as void* (for callers that launch their own work) */

/* ---------------------------------------------------------------- memory (die with file:line on error) */

void *nn_cuda_malloc(size_t bytes);             /* cudaMalloc (bytes 0: returns NULL) */
float *nn_cuda_malloc_floats(size_t n);         /* n floats */
float *nn_cuda_upload_floats(const float *h, size_t n);    /* new device copy of host h[n] (h NULL: zeroed) */
float *nn_cuda_download_floats(const float *d, size_t n);  /* new host copy of device d[n] (release with free) */
void nn_cuda_free(void *p);                     /* NULL is fine */
/* host -> device, ordered on the stream, without waiting for it (staged through pinned memory up to 64 MiB;
 * src may be reused at once) */
void nn_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes);
void nn_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes);  /* device -> host; waits for the stream */
void nn_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes);  /* device -> device, on the stream */
void nn_cuda_memset(void *p, int byte, size_t bytes);               /* cudaMemsetAsync on the stream */

/* ---------------------------------------------------------------- timing (cudaEvent pair on the stream) */

typedef struct nn_cuda_timer nn_cuda_timer;
nn_cuda_timer *nn_cuda_timer_create(void);
void nn_cuda_timer_start(nn_cuda_timer *t);
double nn_cuda_timer_stop_ms(nn_cuda_timer *t);   /* waits for the stop event; milliseconds since start */
void nn_cuda_timer_free(nn_cuda_timer *t);

/* ---------------------------------------------------------------- GEMM (gemm.h) */

/* C[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C[M, N], row-major, lda/ldb/ldc = row strides as stored
 * (exactly nn_sgemm). beta == 0 overwrites C. fp32 FFMA math (no TF32). */
void nn_sgemm_cuda(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc);

/* ---------------------------------------------------------------- linear.h */

/* out[B, OC] = in[B, IC] W[OC, IC]^T + b[OC] (b may be NULL) */
void nn_linear_forward_cuda(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);
/* out[B, OC] += in[B, IC] W[OC, IC]^T + b[OC] */
void nn_linear_forward_add_cuda(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);
/* din[B, IC] += dout[B, OC] W;  dW[OC, IC] += dout^T in[B, IC];  db[OC] += colsum(dout). din, dW, db may be NULL */
void nn_linear_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                             int B, int IC, int OC);

/* ---------------------------------------------------------------- act.h (expf on the GPU, nn_act_expf on the CPU) */

void nn_silu_forward_cuda(float *out, const float *x, size_t n);                    /* out[n] = x sigmoid(x) */
void nn_silu_backward_cuda(float *din, const float *dout, const float *x, size_t n); /* din[n] += dout silu'(x) */
void nn_relu_forward_cuda(float *out, const float *x, size_t n);                    /* out[n] = max(x, 0) */
void nn_relu_backward_cuda(float *din, const float *dout, const float *x, size_t n); /* din[n] += dout [x > 0] */
void nn_relu_mask_cuda(float *g, const float *h, size_t n);                         /* g = h > 0 ? g : 0 */

/* ---------------------------------------------------------------- fourier.h */

/* out[B, 2F] = [sin(2 pi t_b W), cos(2 pi t_b W)], t_b = t[b * t_stride], W[F]; phase and sin/cos in double */
void nn_fourier_forward_cuda(float *out, const float *t, size_t t_stride, const float *W, int B, int F);

/* ---------------------------------------------------------------- conv.h (geometry from nn_conv*_geom) */

/* the building blocks of the one conv loop (conv.h nn_im2col .. nn_conv_bias_grad; backend.h) */
void nn_im2col_cuda(float *col, const float *img, int n, const nn_conv_win *w);
void nn_col2im_cuda(float *img, const float *col, int n, const nn_conv_win *w, int accumulate, const float *bias);
void nn_conv_gather_cuda(float *T, const float *t, int n, int C, int P);
void nn_conv_scatter_cuda(float *t, const float *T, const float *bias, int n, int C, int P, int add);
void nn_conv_add_bias_cuda(float *t, const float *bias, int B, int C, int P);
void nn_conv_bias_grad_cuda(float *db, const float *dout, int B, int C, int P);
/* the conv layers: the one loop of conv.c (nn_conv*_on) over the cuda table */

/* out[B, OC, OH, OW] = conv2d(in[B, IC, H, W], W[OC, IC, KH, KW]) + b[OC] (b may be NULL); ws[ws_n] device */
void nn_conv2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g,
                            float *ws, size_t ws_n);
/* din[B, IC, H, W] += ..; dW[OC, IC, KH, KW] += ..; db[OC] += ..  (each may be NULL) */
void nn_conv2d_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                             int B, const nn_conv_geom *g, float *ws, size_t ws_n);
/* out[B, OC, OH, OW] = conv_transpose2d(in[B, IC, H, W], W[IC, OC, KH, KW]) + b[OC] */
void nn_conv_transpose2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B,
                                      const nn_conv_geom *g, float *ws, size_t ws_n);
/* din[B, IC, H, W] += ..; dW[IC, OC, KH, KW] += ..; db[OC] += ..  (each may be NULL) */
void nn_conv_transpose2d_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in,
                                       const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n);

/* ---------------------------------------------------------------- norm.h */

/* out[B, C, HW] = GroupNorm_G(in) gamma[C] + beta[C]; saves mean[B, G], rstd[B, G]; out may equal in */
void nn_groupnorm_forward_cuda(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                               const float *beta, int B, int C, int HW, int G, float eps);
/* din[B, C, HW] += ..; dgamma[C] += ..; dbeta[C] += ..  (each may be NULL; gamma NULL = 1) */
void nn_groupnorm_backward_cuda(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                const float *mean, const float *rstd, const float *gamma, int B, int C, int HW, int G);

/* ---------------------------------------------------------------- tensor_ops.h */

/* x[B, C, HW] += v[b * v_bstride + c] (v_bstride C: per sample, 0: shared) */
/* dst[n, d] = v[n] (one scale per row) * src[n, d] + beta dst (beta == 0: dst is not read; dst may be src):
 * per-sample factors such as 1/std(t) and alpha(t). CPU reference: the obvious loop (tests/test_cuda_layers.c). */
void nn_rowscale_cuda(float *dst, const float *v, const float *src, int n, int d, float beta);
/* dst[n, d] = src / v[n] (tensor_ops.h nn_rowdiv; IEEE division on both sides, so bitwise equal) */
void nn_rowdiv_cuda(float *dst, const float *v, const float *src, int n, int d);
void nn_scale_cuda(float *x, float a, size_t n);   /* x[n] *= a (tensor_ops.h nn_scale) */
void nn_chan_add_forward_cuda(float *x, const float *v, int B, int C, int HW, int v_bstride);
/* dv[b * v_bstride + c] += sum_p dout[b, c, p] (v_bstride 0: summed over b too); dv NULL: nothing */
void nn_chan_add_backward_cuda(float *dv, const float *dout, int B, int C, int HW, int v_bstride);
/* out[B, C1 + C2, HW] = cat(a[B, C1, HW], b[B, C2, HW]) */
void nn_concat_forward_cuda(float *out, const float *a, const float *b, int B, int C1, int C2, int HW);
/* da[B, C1, HW] += dout[:, :C1]; db[B, C2, HW] += dout[:, C1:] (either may be NULL) */
void nn_concat_backward_cuda(float *da, float *db, const float *dout, int B, int C1, int C2, int HW);

/* ---------------------------------------------------------------- pool.h, dropout / cross-entropy (tensor_ops.h)
 * (cuda_classify.cu: the digit classifier's layers) */

/* out[B, C, OH, OW] = maxpool(in), idx = argmax (ih * W + iw; first maximum, a NaN wins): the same bits as the CPU */
void nn_maxpool2d_forward_cuda(float *out, int32_t *idx, const float *in, int B, const nn_pool_geom *g);
/* din[B, C, H, W] += scatter of dout to idx (one thread per input element gathering its window: no atomics,
 * deterministic; the CPU adds in output order, so equal sums up to rounding when windows overlap) */
void nn_maxpool2d_backward_cuda(float *din, const float *dout, const int32_t *idx, int B, const nn_pool_geom *g);
/* nn_dropout_forward / _backward with the same Philox mask (bitwise the CPU's) */
void nn_dropout_forward_cuda(float *out, float *mask, const float *in, size_t n_units, size_t inner, float p,
                             int train, uint64_t seed, uint64_t stream, uint64_t offset);
void nn_dropout_backward_cuda(float *din, const float *dout, const float *mask, size_t n_units, size_t inner,
                              int train);
/* nn_cross_entropy_forward: logp[B, K] saved, mean loss returned to the host (waits); labels [B] device int32,
 * checked on the host by the caller (an out-of-range label gives NaN here) */
double nn_cross_entropy_forward_cuda(float *logp, const float *logits, const int *labels, int B, int K);
void nn_cross_entropy_backward_cuda(float *dlogits, float dloss, const float *logp, const int *labels, int B, int K);

/* ---------------------------------------------------------------- adam.h / ema.h (flat buffers) */

/* nn_adam_step on the GPU: increments a->step (host struct), then p[n] -= ... from g[n], m[n], v[n] */
void nn_adam_step_cuda(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n);
/* nn_ema_update on the GPU: e->num_updates++, shadow[n] -= (1 - decay_n)(shadow - p[n]); returns decay_n */
double nn_ema_update_cuda(nn_ema *e, float *shadow, const float *p, size_t n);

/* ---------------------------------------------------------------- dsm.h */

/* dsm_loss on the GPU: L = (1/n) sum_i sum_d (score[i, d] std[i] + z[i, d])^2 (double sums), returned to the
 * host; if dscore != NULL writes dscore[n*dim] = dL/dscore = 2 r std / n. score, std[n], z, dscore: device. */
double nn_dsm_loss_cuda(size_t n, size_t dim, const float *score, const float *std, const float *z, float *dscore);

/* ---------------------------------------------------------------- the resident-data step (backend.h) */

/* dst[i, :] = src[idx[i], :], idx int32 device */
void nn_gather_rows_cuda(float *dst, const float *src, const int32_t *idx, size_t n, size_t dim);
/* acc[0] += (nn_dsm_loss(nc, ..) * nc) / ntot on the device (the same partial sums as nn_dsm_loss_cuda, the host's
 * double arithmetic with explicit rounding): never waits. acc device. */
void nn_dsm_loss_acc_cuda(double *acc, size_t nc, size_t ntot, size_t dim, const float *score, const float *std,
                          const float *z, float *dscore);
void nn_guard_check_cuda(double *g);   /* g[1] = g[1] || !isfinite(g[0]), device */
/* nn_adam_step_cuda / nn_ema_update_cuda applied only while guard[1] == 0 (device); host counters advance */
void nn_adam_step_guarded_cuda(nn_adam *a, double lr, float *p, const float *g, float *m, float *v, size_t n,
                               const double *guard);
void nn_ema_update_guarded_cuda(nn_ema *e, float *shadow, const float *p, size_t n, const double *guard);
/* device double -> pinned host slot (0..3) queued on the stream with an event; fetch_end waits for that event
 * only (not the stream) and returns the value */
void nn_cuda_fetch_begin(int slot, const double *src);
double nn_cuda_fetch_end(int slot);

#ifdef __cplusplus
}
#endif
#endif
