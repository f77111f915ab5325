/* nn/conv: conv2d and conv_transpose2d as ONE chunked im2col / col2im + GEMM loop over a backend table
 * (backend.h: the cpu table runs it with the OpenMP kernels below and nn_sgemm, the cuda table with the kernels
 * of cuda/cuda_conv.cu and cuBLAS); see conv.h; the ScoreNet layers of paper §5.1 / App. G, REFERENCE.md
 * "Score network".
 *
 * A chunk of n images, N = n * (positions per image) GEMM columns, K = C * KH * KW rows of the column matrix:
 *   col[(c KH + i) KW + j, b P + oh OW + ow] = img[b, c, oh SH - PH + i, ow SW - PW + j]  (0 outside the image)
 * conv2d forward    T[OC, N] = W[OC, K] col[K, N]                    -> scattered to out[b, OC, OH*OW] (+ b)
 *        backward   T = dout gathered to [OC, N];  dW[OC, K] += T col^T;  col = W^T T; col2im (+=) into din
 * conv_transpose2d  the adjoint: "image" = the output y[OC, OH, OW], "conv output" = the input x[IC, H, W]:
 *        forward    col[OC KK, N] = W^T[OC KK, IC] Xg[IC, N];  y = bias; col2im (+=) into y
 *        backward   col = im2col(dout);  dW[IC, OC KK] += Xg col^T;  dX[IC, N] = W col  (added into din)
 * With one image per chunk the gathers / scatters are skipped (GEMM straight from / into the tensors).
 * OpenMP: im2col over rows of col, col2im over (image, channel) planes, scatters over (image, channel), bias sums
 * over channels; every output element is summed in a fixed order, so results do not depend on the thread count
 * (nn_sgemm guarantees the same). */
#include "conv.h"
#include "backend.h"
#include "gemm.h"
#include "log.h"
#include <stddef.h>
#include <string.h>

#define CONV_PAR_MIN (1L << 15)   /* elements touched below which a data-movement loop stays single-threaded */

static int imin(int a, int b) { return a < b ? a : b; }

/* ---------------------------------------------------------------- geometry */

static void check_common(const nn_conv_geom *g)
{
    LOG_CHECK(g->IC > 0 && g->OC > 0 && g->H > 0 && g->W > 0 && g->KH > 0 && g->KW > 0 && g->SH > 0 && g->SW > 0 &&
                  g->PH >= 0 && g->PW >= 0 && g->OPH >= 0 && g->OPW >= 0,
              "conv: bad geometry (IC %d OC %d H %d W %d K %dx%d S %dx%d P %dx%d OP %dx%d)", g->IC, g->OC, g->H, g->W,
              g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->OPH, g->OPW);
}

void nn_conv2d_geom_finish(nn_conv_geom *g)
{
    check_common(g);
    LOG_CHECK(g->OPH == 0 && g->OPW == 0, "conv2d: output_padding must be 0");
    LOG_CHECK(g->H + 2 * g->PH >= g->KH && g->W + 2 * g->PW >= g->KW, "conv2d: kernel %dx%d larger than padded input",
              g->KH, g->KW);
    g->OH = (g->H + 2 * g->PH - g->KH) / g->SH + 1;
    g->OW = (g->W + 2 * g->PW - g->KW) / g->SW + 1;
}

void nn_conv_transpose2d_geom_finish(nn_conv_geom *g)
{
    check_common(g);
    LOG_CHECK(g->OPH < g->SH && g->OPW < g->SW, "conv_transpose2d: output_padding must be smaller than the stride");
    g->OH = (g->H - 1) * g->SH - 2 * g->PH + g->KH + g->OPH;
    g->OW = (g->W - 1) * g->SW - 2 * g->PW + g->KW + g->OPW;
    LOG_CHECK(g->OH > 0 && g->OW > 0, "conv_transpose2d: empty output (%dx%d)", g->OH, g->OW);
    /* the adjoint conv2d maps [OH, OW] back to exactly [H, W] */
    LOG_CHECK((g->OH + 2 * g->PH - g->KH) / g->SH + 1 == g->H && (g->OW + 2 * g->PW - g->KW) / g->SW + 1 == g->W,
              "conv_transpose2d: inconsistent geometry");
}

nn_conv_geom nn_conv2d_geom(int IC, int OC, int H, int W, int KH, int KW, int stride, int pad)
{
    nn_conv_geom g = {IC, OC, H, W, KH, KW, stride, stride, pad, pad, 0, 0, 0, 0};
    nn_conv2d_geom_finish(&g);
    return g;
}

nn_conv_geom nn_conv_transpose2d_geom(int IC, int OC, int H, int W, int KH, int KW, int stride, int pad,
                                      int output_padding)
{
    nn_conv_geom g = {IC, OC, H, W, KH, KW, stride, stride, pad, pad, output_padding, output_padding, 0, 0};
    nn_conv_transpose2d_geom_finish(&g);
    return g;
}

/* per-image floats: conv2d col [IC KK, OHW] + T [OC, OHW]; transposed col [OC KK, HW] + T [IC, HW] */
size_t nn_conv2d_ws_min(const nn_conv_geom *g)
{
    return ((size_t)g->IC * g->KH * g->KW + g->OC) * ((size_t)g->OH * g->OW);
}

size_t nn_conv_transpose2d_ws_min(const nn_conv_geom *g)
{
    return ((size_t)g->OC * g->KH * g->KW + g->IC) * ((size_t)g->H * g->W);
}

static size_t ws_for(size_t per_image, size_t positions, int B)
{
    size_t nb = (NN_CONV_COLS + positions - 1) / positions;
    if (nb > (size_t)(B > 0 ? B : 1)) nb = (size_t)(B > 0 ? B : 1);
    return per_image * nb;
}

size_t nn_conv2d_ws_floats(const nn_conv_geom *g, int B)
{
    return ws_for(nn_conv2d_ws_min(g), (size_t)g->OH * g->OW, B);
}

size_t nn_conv_transpose2d_ws_floats(const nn_conv_geom *g, int B)
{
    return ws_for(nn_conv_transpose2d_ws_min(g), (size_t)g->H * g->W, B);
}

/* ---------------------------------------------------------------- im2col / col2im */


/* [lo, hi) = output columns ow whose input column ow*S - P + j lies in [0, IW) */
static void ow_range(const nn_conv_win *w, int j, int *lo, int *hi)
{
    const int a = w->PW - j, bnum = w->IW - 1 + w->PW - j;
    int l = a <= 0 ? 0 : (a + w->SW - 1) / w->SW;
    int h = bnum < 0 ? 0 : bnum / w->SW + 1;
    if (l > w->OW) l = w->OW;
    if (h > w->OW) h = w->OW;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* col[C KH KW, n OH OW] from img[n, C, IH, IW] */
void nn_im2col(float *restrict col, const float *restrict img, int n, const nn_conv_win *w)
{
    const int KK = w->KH * w->KW, R = w->C * KK, P = w->OH * w->OW;
    const size_t N = (size_t)n * P, plane = (size_t)w->IH * w->IW;
#pragma omp parallel for schedule(static) if ((long)R * (long)N >= CONV_PAR_MIN)
    for (int r = 0; r < R; r++) {
        const int c = r / KK, i = (r / w->KW) % w->KH, j = r % w->KW;
        int lo, hi;
        ow_range(w, j, &lo, &hi);
        float *restrict dst = col + (size_t)r * N;
        for (int b = 0; b < n; b++) {
            const float *src = img + ((size_t)b * w->C + c) * plane;
            for (int oh = 0; oh < w->OH; oh++) {
                float *restrict d = dst + (size_t)b * P + (size_t)oh * w->OW;
                const int ih = oh * w->SH - w->PH + i;
                if (ih < 0 || ih >= w->IH) {
                    memset(d, 0, (size_t)w->OW * sizeof *d);
                    continue;
                }
                /* s[(ow - lo) SW] = img[ih, ow SW - PW + j] for ow in [lo, hi) */
                for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                if (hi > lo) {
                    const float *s = src + (size_t)ih * w->IW + (lo * w->SW - w->PW + j);
                    if (w->SW == 1) memcpy(d + lo, s, (size_t)(hi - lo) * sizeof *d);
                    else if (w->SW == 2)   /* the ScoreNet's strided layers: a constant stride vectorises */
                        for (int ow = lo; ow < hi; ow++) d[ow] = s[(size_t)(ow - lo) * 2];
                    else
                        for (int ow = lo; ow < hi; ow++) d[ow] = s[(size_t)(ow - lo) * w->SW];
                }
                for (int ow = hi; ow < w->OW; ow++) d[ow] = 0.0f;
            }
        }
    }
}

/* img[n, C, IH, IW] += col2im(col[C KH KW, n OH OW]) */
static void col2im_add(float *restrict img, const float *restrict col, int n, const nn_conv_win *w)
{
    const int KK = w->KH * w->KW, P = w->OH * w->OW;
    const size_t N = (size_t)n * P, plane = (size_t)w->IH * w->IW;
    const int planes = n * w->C;
#pragma omp parallel for schedule(static) if ((long)w->C * KK * (long)N >= CONV_PAR_MIN)
    for (int bc = 0; bc < planes; bc++) {
        const int b = bc / w->C, c = bc % w->C;
        float *dstp = img + ((size_t)b * w->C + c) * plane;
        for (int i = 0; i < w->KH; i++)
            for (int j = 0; j < w->KW; j++) {
                const float *src = col + ((size_t)(c * KK + i * w->KW + j)) * N + (size_t)b * P;
                int lo, hi;
                ow_range(w, j, &lo, &hi);
                for (int oh = 0; oh < w->OH; oh++) {
                    const int ih = oh * w->SH - w->PH + i;
                    if (ih < 0 || ih >= w->IH) continue;
                    const float *s = src + (size_t)oh * w->OW;
                    if (hi <= lo) continue;
                    /* d[(ow - lo) SW] = img[ih, ow SW - PW + j] for ow in [lo, hi) */
                    float *d = dstp + (size_t)ih * w->IW + (lo * w->SW - w->PW + j);
                    if (w->SW == 1) {
#pragma omp simd
                        for (int ow = lo; ow < hi; ow++) d[ow - lo] += s[ow];
                    } else if (w->SW == 2) {
                        for (int ow = lo; ow < hi; ow++) d[(size_t)(ow - lo) * 2] += s[ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++) d[(size_t)(ow - lo) * w->SW] += s[ow];
                    }
                }
            }
    }
}

void nn_col2im(float *img, const float *col, int n, const nn_conv_win *w, int accumulate, const float *bias)
{
    if (!accumulate) memset(img, 0, (size_t)n * w->C * w->IH * w->IW * sizeof *img);
    col2im_add(img, col, n, w);
    if (bias) nn_conv_add_bias(img, bias, n, w->C, w->IH * w->IW);
}

/* T[C, n P] <- t[n, C, P] (gather) */
void nn_conv_gather(float *restrict T, const float *restrict t, int n, int C, int P)
{
    const size_t N = (size_t)n * P;
#pragma omp parallel for schedule(static) if ((long)n * C * P >= CONV_PAR_MIN)
    for (int bc = 0; bc < n * C; bc++) {
        const int b = bc / C, c = bc % C;
        memcpy(T + (size_t)c * N + (size_t)b * P, t + ((size_t)b * C + c) * P, (size_t)P * sizeof *T);
    }
}

/* t[n, C, P] = T[C, n P] + bias[C] (add = 0) or t += T (add = 1, no bias) */
void nn_conv_scatter(float *restrict t, const float *restrict T, const float *bias, int n, int C, int P, int add)
{
    const size_t N = (size_t)n * P;
#pragma omp parallel for schedule(static) if ((long)n * C * P >= CONV_PAR_MIN)
    for (int bc = 0; bc < n * C; bc++) {
        const int b = bc / C, c = bc % C;
        float *restrict d = t + ((size_t)b * C + c) * P;
        const float *s = T + (size_t)c * N + (size_t)b * P;
        if (add) {
#pragma omp simd
            for (int p = 0; p < P; p++) d[p] += s[p];
        } else {
            const float bb = bias ? bias[c] : 0.0f;
#pragma omp simd
            for (int p = 0; p < P; p++) d[p] = s[p] + bb;
        }
    }
}

/* t[B, C, P] += bias[C] */
void nn_conv_add_bias(float *t, const float *bias, int B, int C, int P)
{
#pragma omp parallel for schedule(static) if ((long)B * C * P >= CONV_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const float bb = bias[bc % C];
        float *d = t + (size_t)bc * P;
#pragma omp simd
        for (int p = 0; p < P; p++) d[p] += bb;
    }
}

/* db[C] += sum_{b, p} dout[B, C, P] (double sums, fixed order) */
void nn_conv_bias_grad(float *db, const float *dout, int B, int C, int P)
{
#pragma omp parallel for schedule(static) if ((long)B * C * P >= CONV_PAR_MIN)
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int b = 0; b < B; b++) {
            const float *d = dout + ((size_t)b * C + c) * P;
            float sp = 0.0f;
            for (int p = 0; p < P; p++) sp += d[p];
            s += sp;
        }
        db[c] += (float)s;
    }
}

/* every loop entry: a geometry that nn_conv*_geom_finish did not make (a hand-filled struct) is a one-line
 * error rather than an out-of-bounds walk on whichever table runs it */
static void check_run(const nn_conv_geom *g, int transposed, const char *who)
{
    LOG_CHECK(g->IC > 0 && g->OC > 0 && g->H > 0 && g->W > 0 && g->KH > 0 && g->KW > 0 && g->SH > 0 && g->SW > 0 &&
                  g->PH >= 0 && g->PW >= 0 && g->OH > 0 && g->OW > 0 && (transposed || (g->OPH == 0 && g->OPW == 0)),
              "%s: bad geometry (use nn_conv%s2d_geom)", who, transposed ? "_transpose" : "");
}

static int chunk_images(size_t per_image, size_t ws_n, int B, const char *who)
{
    LOG_CHECK(per_image > 0 && ws_n >= per_image, "%s: workspace too small (%zu floats, need >= %zu)", who, ws_n,
              per_image);
    size_t nb = ws_n / per_image;
    return nb > (size_t)B ? B : (int)nb;
}

/* ---------------------------------------------------------------- conv2d */

static nn_conv_win conv_win(const nn_conv_geom *g)
{
    nn_conv_win w = {g->IC, g->H, g->W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->OH, g->OW};
    return w;
}

void nn_conv2d_forward_on(const nn_backend *be, float *out, const float *in, const float *W, const float *b, int B,
                          const nn_conv_geom *g, float *ws, size_t ws_n)
{
    check_run(g, 0, "nn_conv2d_forward");
    if (B <= 0) return;
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    const size_t in_img = (size_t)g->IC * g->H * g->W, out_img = (size_t)g->OC * P;
    const int nb = chunk_images(nn_conv2d_ws_min(g), ws_n, B, "nn_conv2d_forward");
    const nn_conv_win w = conv_win(g);
    const int pointwise = g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0;
    float *col = ws, *T = ws + (size_t)K * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *x = in + (size_t)b0 * in_img;
        const float *cm = col;
        if (pointwise && n == 1) cm = x;   /* 1x1 stride-1 conv: the image is its own column matrix */
        else be->im2col(col, x, n, &w);
        if (n == 1) {
            /* out[b0][OC, P] = W[OC, K] col[K, P] */
            float *o = out + (size_t)b0 * out_img;
            be->gemm(0, 0, g->OC, N, K, 1.0f, W, K, cm, N, 0.0f, o, N);
            if (b) be->add_bias(o, b, 1, g->OC, P);
        } else {
            /* T[OC, N] = W[OC, K] col[K, N], then scattered to out[b0 .. b0+n) with the bias */
            be->gemm(0, 0, g->OC, N, K, 1.0f, W, K, cm, N, 0.0f, T, N);
            be->scatter(out + (size_t)b0 * out_img, T, b, n, g->OC, P, 0);
        }
    }
}

void nn_conv2d_backward_on(const nn_backend *be, float *din, float *dW, float *db, const float *dout, const float *in,
                           const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    check_run(g, 0, "nn_conv2d_backward");
    if (B <= 0) return;
    const int K = g->IC * g->KH * g->KW, P = g->OH * g->OW;
    const size_t in_img = (size_t)g->IC * g->H * g->W, out_img = (size_t)g->OC * P;
    if (db) be->bias_grad(db, dout, B, g->OC, P);
    if (!din && !dW) return;
    const int nb = chunk_images(nn_conv2d_ws_min(g), ws_n, B, "nn_conv2d_backward");
    const nn_conv_win w = conv_win(g);
    float *col = ws, *T = ws + (size_t)K * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *G = dout + (size_t)b0 * out_img;   /* dout of the chunk as [OC, N] */
        if (n > 1) {
            be->gather(T, G, n, g->OC, P);
            G = T;
        }
        if (dW) {
            /* dW[OC, K] += G[OC, N] col[K, N]^T */
            be->im2col(col, in + (size_t)b0 * in_img, n, &w);
            be->gemm(0, 1, g->OC, K, N, 1.0f, G, N, col, N, 1.0f, dW, K);
        }
        if (din) {
            /* col[K, N] = W[OC, K]^T G[OC, N]; din += col2im(col) */
            be->gemm(1, 0, K, N, g->OC, 1.0f, W, K, G, N, 0.0f, col, N);
            be->col2im(din + (size_t)b0 * in_img, col, n, &w, 1, NULL);
        }
    }
}

/* ---------------------------------------------------------------- conv_transpose2d */

/* the adjoint conv2d window: image = the output y [OC, OH, OW], positions = the input x [H, W] */
static nn_conv_win tconv_win(const nn_conv_geom *g)
{
    nn_conv_win w = {g->OC, g->OH, g->OW, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, g->H, g->W};
    return w;
}

void nn_conv_transpose2d_forward_on(const nn_backend *be, float *out, const float *in, const float *W, const float *b,
                                    int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    check_run(g, 1, "nn_conv_transpose2d_forward");
    if (B <= 0) return;
    const int R = g->OC * g->KH * g->KW, P = g->H * g->W;
    const size_t in_img = (size_t)g->IC * P, out_img = (size_t)g->OC * g->OH * g->OW;
    const int nb = chunk_images(nn_conv_transpose2d_ws_min(g), ws_n, B, "nn_conv_transpose2d_forward");
    const nn_conv_win w = tconv_win(g);
    float *col = ws, *T = ws + (size_t)R * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        const float *X = in + (size_t)b0 * in_img;   /* the chunk's input as [IC, N] */
        if (n > 1) {
            be->gather(T, X, n, g->IC, P);
            X = T;
        }
        /* col[OC KK, N] = W[IC, OC KK]^T X[IC, N] */
        be->gemm(1, 0, R, N, g->IC, 1.0f, W, R, X, N, 0.0f, col, N);
        float *y = out + (size_t)b0 * out_img;
        be->col2im(y, col, n, &w, 0, b);   /* y = col2im(col) + bias, overwriting (output_padding rows too) */
    }
}

void nn_conv_transpose2d_backward_on(const nn_backend *be, float *din, float *dW, float *db, const float *dout,
                                     const float *in, const float *W, int B, const nn_conv_geom *g, float *ws,
                                     size_t ws_n)
{
    check_run(g, 1, "nn_conv_transpose2d_backward");
    if (B <= 0) return;
    const int R = g->OC * g->KH * g->KW, P = g->H * g->W;
    const size_t in_img = (size_t)g->IC * P, out_img = (size_t)g->OC * g->OH * g->OW;
    if (db) be->bias_grad(db, dout, B, g->OC, g->OH * g->OW);
    if (!din && !dW) return;
    const int nb = chunk_images(nn_conv_transpose2d_ws_min(g), ws_n, B, "nn_conv_transpose2d_backward");
    const nn_conv_win w = tconv_win(g);
    float *col = ws, *T = ws + (size_t)R * nb * P;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = imin(nb, B - b0), N = n * P;
        /* col[OC KK, N] = im2col(dout chunk) */
        be->im2col(col, dout + (size_t)b0 * out_img, n, &w);
        if (dW) {
            /* dW[IC, OC KK] += X[IC, N] col[OC KK, N]^T */
            const float *X = in + (size_t)b0 * in_img;
            if (n > 1) {
                be->gather(T, X, n, g->IC, P);
                X = T;
            }
            be->gemm(0, 1, g->IC, R, N, 1.0f, X, N, col, N, 1.0f, dW, R);
        }
        if (din) {
            /* dX[IC, N] = W[IC, OC KK] col[OC KK, N], added into din */
            float *d = din + (size_t)b0 * in_img;
            if (n == 1) {
                be->gemm(0, 0, g->IC, N, R, 1.0f, W, R, col, N, 1.0f, d, N);
            } else {
                be->gemm(0, 0, g->IC, N, R, 1.0f, W, R, col, N, 0.0f, T, N);
                be->scatter(d, T, NULL, n, g->IC, P, 1);
            }
        }
    }
}

/* ---------------------------------------------------------------- the cpu entries: the loop over the cpu table */

void nn_conv2d_forward(float *out, const float *in, const float *W, const float *b, int B, const nn_conv_geom *g,
                       float *ws, size_t ws_n)
{
    nn_conv2d_forward_on(nn_backend_cpu(), out, in, W, b, B, g, ws, ws_n);
}

void nn_conv2d_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W, int B,
                        const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv2d_backward_on(nn_backend_cpu(), din, dW, db, dout, in, W, B, g, ws, ws_n);
}

void nn_conv_transpose2d_forward(float *out, const float *in, const float *W, const float *b, int B,
                                 const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv_transpose2d_forward_on(nn_backend_cpu(), out, in, W, b, B, g, ws, ws_n);
}

void nn_conv_transpose2d_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                                  const float *W, int B, const nn_conv_geom *g, float *ws, size_t ws_n)
{
    nn_conv_transpose2d_backward_on(nn_backend_cpu(), din, dW, db, dout, in, W, B, g, ws, ws_n);
}
