/* nn/cuda_backend: the cuda backend table (backend.h) over the kernels of common/cuda/ and cuBLAS (nn_cuda.h),
 * and the cuda conv layers as the one conv loop of conv.c run over this table. In a build without CUDA only
 * nn_backend_cuda exists, and it dies with a one-line message. */
#include "backend.h"
#include "log.h"
#include "philox.h"

#ifdef SF_HAVE_CUDA
#include "nn_cuda.h"

static float *cu_alloc(size_t n)
{
    if (!n) return NULL;
    float *p = nn_cuda_malloc_floats(n);
    nn_cuda_memset(p, 0, n * sizeof *p);
    return p;
}
static void cu_upload(float *dst, const float *src, size_t n)
{
    if (n) nn_cuda_memcpy_h2d(dst, src, n * sizeof *dst);
}
static void cu_download(float *dst, const float *src, size_t n)
{
    if (n) nn_cuda_memcpy_d2h(dst, src, n * sizeof *dst);
}
static void cu_copy(float *dst, const float *src, size_t n)
{
    if (n && dst != src) nn_cuda_memcpy_d2d(dst, src, n * sizeof *dst);
}
static void cu_zero(float *p, size_t n)
{
    if (n) nn_cuda_memset(p, 0, n * sizeof *p);
}

void nn_conv2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g,
                            float *ws, size_t ws_n)
{
    nn_conv2d_forward_on(nn_backend_cuda(), out, in, W, b, B, g, ws, ws_n);
}

void nn_conv2d_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                             int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv2d_backward_on(nn_backend_cuda(), din, dW, db, dout, in, W, B, g, ws, ws_n);
}

void nn_conv_transpose2d_forward_cuda(float *out, const float *in, const float *W, const float *b, int B,
                                      const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv_transpose2d_forward_on(nn_backend_cuda(), out, in, W, b, B, g, ws, ws_n);
}

void nn_conv_transpose2d_backward_cuda(float *din, float *dW, float *db, const float *dout, const float *in,
                                       const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv_transpose2d_backward_on(nn_backend_cuda(), din, dW, db, dout, in, W, B, g, ws, ws_n);
}

static const nn_backend CUDA = {
    .name = "cuda",
    .kind = DEVICE_CUDA,
    .host = 0,
    .alloc = cu_alloc,
    .release = nn_cuda_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .zero = cu_zero,
    .sync = nn_cuda_sync,
    .gemm = nn_sgemm_cuda,
    .im2col = nn_im2col_cuda,
    .col2im = nn_col2im_cuda,
    .gather = nn_conv_gather_cuda,
    .scatter = nn_conv_scatter_cuda,
    .add_bias = nn_conv_add_bias_cuda,
    .bias_grad = nn_conv_bias_grad_cuda,
    .linear_forward = nn_linear_forward_cuda,
    .linear_forward_add = nn_linear_forward_add_cuda,
    .linear_backward = nn_linear_backward_cuda,
    .silu_forward = nn_silu_forward_cuda,
    .silu_backward = nn_silu_backward_cuda,
    .relu_forward = nn_relu_forward_cuda,
    .relu_backward = nn_relu_backward_cuda,
    .relu_mask = nn_relu_mask_cuda,
    .maxpool2d_forward = nn_maxpool2d_forward_cuda,
    .maxpool2d_backward = nn_maxpool2d_backward_cuda,
    .dropout_forward = nn_dropout_forward_cuda,
    .dropout_backward = nn_dropout_backward_cuda,
    .cross_entropy_forward = nn_cross_entropy_forward_cuda,
    .cross_entropy_backward = nn_cross_entropy_backward_cuda,
    .fourier_forward = nn_fourier_forward_cuda,
    .groupnorm_forward = nn_groupnorm_forward_cuda,
    .groupnorm_backward = nn_groupnorm_backward_cuda,
    .chan_add_forward = nn_chan_add_forward_cuda,
    .chan_add_backward = nn_chan_add_backward_cuda,
    .concat_forward = nn_concat_forward_cuda,
    .concat_backward = nn_concat_backward_cuda,
    .rowdiv = nn_rowdiv_cuda,
    .scale = nn_scale_cuda,
    .gaussian_fill = philox_gaussian_fill_cuda,
    .rowscale = nn_rowscale_cuda,
    .dsm_loss = nn_dsm_loss_cuda,
    .adam_step = nn_adam_step_cuda,
    .ema_update = nn_ema_update_cuda,
    .gather_rows = nn_gather_rows_cuda,
    .dsm_loss_acc = nn_dsm_loss_acc_cuda,
    .guard_check = nn_guard_check_cuda,
    .adam_step_guarded = nn_adam_step_guarded_cuda,
    .ema_update_guarded = nn_ema_update_guarded_cuda,
    .fetch_begin = nn_cuda_fetch_begin,
    .fetch_end = nn_cuda_fetch_end,
};

const nn_backend *nn_backend_cuda(void)
{
    nn_cuda_init();
    return &CUDA;
}

#else

const nn_backend *nn_backend_cuda(void)
{
    log_die("the cuda backend was asked for, but this build has no CUDA (rebuild with nvcc on PATH)");
}

#endif
