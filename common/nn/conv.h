/* nn/conv: 2-D convolution and transposed convolution (NCHW, float32, groups = 1, dilation 1) with explicit
 * forward / backward (DESIGN.md §4, llm.c style). These are the layers of the paper's image ScoreNet (paper §5.1,
 * App. G; REFERENCE.md "Score network": conv1..conv4 k3 s1/s2, tconv4..tconv1 with output_padding 1), and of
 * the classifier and the SDXL UNet later.
 *
 * PyTorch weight layouts, so checkpoints carry the same tensors as a torch state_dict:
 *     conv2d            W[OC, IC, KH, KW], bias b[OC]  (nn.Conv2d)
 *     conv_transpose2d  W[IC, OC, KH, KW], bias b[OC]  (nn.ConvTranspose2d: IC = the layer's in_channels)
 * Sizes (torch's formulas, floor division):
 *     conv2d            OH = (H + 2 PH - KH) / SH + 1
 *     conv_transpose2d  OH = (H - 1) SH - 2 PH + KH + OPH      (output_padding OPH < SH)
 * The transposed convolution is exactly the input-gradient (adjoint) of the conv2d with the same W, stride and
 * padding mapping [OC, OH, OW] -> [IC, H, W]; output_padding only adds rows/columns that receive the bias.
 *
 * Implementation: im2col / col2im + nn_sgemm over CHUNKS of images (several images side by side in one GEMM,
 * so the small deep layers -- ScoreNet's conv4 has 2x2 outputs -- still make one decent-sized GEMM).
 * Workspace: the caller passes ws[ws_n] floats; the chunk is as many images as fit (at least one must:
 * ws_n >= nn_conv*_ws_min()). nn_conv*_ws_floats(g, B) is the recommended size for batches up to B (chunks of
 * ~NN_CONV_COLS output positions). Forward and backward use the same workspace size. Nothing is allocated.
 * Results depend on the chunk size (the order of the dW sums) but not on the number of OpenMP threads.
 *
 * Backward: every gradient ACCUMULATES (+=): din, dW, db; each may be NULL (skipped). */
#ifndef SF_NN_CONV_H
#define SF_NN_CONV_H
#include <stddef.h>

#define NN_CONV_COLS 2048   /* target GEMM width (output positions per chunk) of the recommended workspace */

typedef struct {
    int IC, OC;     /* input / output channels */
    int H, W;       /* input spatial size */
    int KH, KW;     /* kernel */
    int SH, SW;     /* stride */
    int PH, PW;     /* zero padding on each side */
    int OPH, OPW;   /* output_padding (conv_transpose2d only; 0 for conv2d) */
    int OH, OW;     /* output spatial size (set by the constructors / _finish) */
} nn_conv_geom;

/* One sliding window: image [C, IH, IW] -> output positions [OH, OW] (conv2d: the input; conv_transpose2d: its
 * output, the adjoint's image). The column matrix of n images is col[C KH KW, n OH OW] with
 *   col[(c KH + i) KW + j, b P + oh OW + ow] = img[b, c, oh SH - PH + i, ow SW - PW + j]  (0 outside the image) */
typedef struct {
    int C, IH, IW, KH, KW, SH, SW, PH, PW, OH, OW;
} nn_conv_win;

/* The CPU building blocks of the conv loop (the cpu backend table's entries, backend.h; OpenMP inside):
 * col = im2col(img[n]); img (=|+=) col2im(col) (+ bias); T[C, n P] <- t[n, C, P]; t = T + bias or t += T;
 * t[B, C, P] += bias[C]; db[C] += sum_{b, p} dout[B, C, P] (double sums, fixed order). */
void nn_im2col(float *col, const float *img, int n, const nn_conv_win *w);
void nn_col2im(float *img, const float *col, int n, const nn_conv_win *w, int accumulate, const float *bias);
void nn_conv_gather(float *T, const float *t, int n, int C, int P);
void nn_conv_scatter(float *t, const float *T, const float *bias, int n, int C, int P, int add);
void nn_conv_add_bias(float *t, const float *bias, int B, int C, int P);
void nn_conv_bias_grad(float *db, const float *dout, int B, int C, int P);

/* Square stride / padding constructors (die on an impossible geometry). */
nn_conv_geom nn_conv2d_geom(int IC, int OC, int H, int W, int KH, int KW, int stride, int pad);
nn_conv_geom nn_conv_transpose2d_geom(int IC, int OC, int H, int W, int KH, int KW, int stride, int pad,
                                      int output_padding);
/* Asymmetric strides / paddings: fill every input field, then call one of these to set (and check) OH, OW. */
void nn_conv2d_geom_finish(nn_conv_geom *g);
void nn_conv_transpose2d_geom_finish(nn_conv_geom *g);

/* Workspace, in floats: the minimum (one image per chunk) and the recommended size for batches of up to B. */
size_t nn_conv2d_ws_min(const nn_conv_geom *g);
size_t nn_conv2d_ws_floats(const nn_conv_geom *g, int B);
size_t nn_conv_transpose2d_ws_min(const nn_conv_geom *g);
size_t nn_conv_transpose2d_ws_floats(const nn_conv_geom *g, int B);

/* out[B, OC, OH, OW] = conv2d(in[B, IC, H, W], W[OC, IC, KH, KW]) + b[OC] (b may be NULL); ws[ws_n] scratch */
void nn_conv2d_forward(float *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g,
                       float *ws, size_t ws_n);
/* din[B, IC, H, W] += dL/din;  dW[OC, IC, KH, KW] += dL/dW;  db[OC] += sum_{b,oh,ow} dout
 * from dout[B, OC, OH, OW], the forward input in[B, IC, H, W] (needed only for dW) and W[OC, IC, KH, KW]. */
void nn_conv2d_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W, int B,
                        const nn_conv_geom *g, float *ws, size_t ws_n);

/* out[B, OC, OH, OW] = conv_transpose2d(in[B, IC, H, W], W[IC, OC, KH, KW]) + b[OC] (b may be NULL) */
void nn_conv_transpose2d_forward(float *out, const float *in, const float *W, const float *b, int B,
                                 const nn_conv_geom *g, float *ws, size_t ws_n);
/* din[B, IC, H, W] += dL/din;  dW[IC, OC, KH, KW] += dL/dW;  db[OC] += sum dout
 * from dout[B, OC, OH, OW], in[B, IC, H, W] (needed only for dW), W[IC, OC, KH, KW]. */
void nn_conv_transpose2d_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                                  const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n);

#endif
