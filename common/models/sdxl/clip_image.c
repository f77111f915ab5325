/* clip_image: CLIP's preprocessing with PIL's bicubic resampling (see clip_image.h for what is reproduced and
 * the choices made). */
#include "clip_image.h"
#include "imgrid.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const float clip_image_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float clip_image_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

#define PRECISION_BITS (32 - 8 - 2)   /* PIL's fixed point for 8-bit images */

/* the cubic convolution kernel, a = -0.5 (Keys), support 2 */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for in_size -> out_size over the whole input: per output
 * sample xx, the first input index bounds[2xx], the count bounds[2xx+1], and fixed-point weights kk[xx*ksize ..].
 * Returns ksize. */
static int coeffs(int in_size, int out_size, int **boundsp, int **kkp)
{
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *pre = mem_alloc((size_t)out_size * ksize * sizeof(double));
    int *bounds = mem_alloc((size_t)out_size * 2 * sizeof(int));
    int *kk = mem_alloc((size_t)out_size * ksize * sizeof(int));
    for (int xx = 0; xx < out_size; xx++) {
        const double center = (xx + 0.5) * scale, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize, ww = 0.0;
        int x;
        for (x = 0; x < xmax; x++) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin, bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        kk[i] = pre[i] < 0 ? (int)(-0.5 + pre[i] * (1 << PRECISION_BITS)) : (int)(0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    *boundsp = bounds, *kkp = kk;
    return ksize;
}

static inline uint8_t clip8(int v)
{
    if (v < 0) return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

void clip_image_resize_bicubic(const uint8_t *in, int w, int h, int ch, uint8_t *out, int ow, int oh)
{
    if (ow == w && oh == h) {   /* PIL returns a copy */
        memcpy(out, in, (size_t)w * h * ch);
        return;
    }
    int *bh, *kh, *bv, *kv;
    const int ksh = coeffs(w, ow, &bh, &kh), ksv = coeffs(h, oh, &bv, &kv);
    const uint8_t *src = in;
    uint8_t *tmp = NULL;
    int rows = h;
    if (ow != w) {
        /* horizontal pass over the rows the vertical pass reads, rounded to 8 bits as PIL stores it */
        const int y0 = bv[0], y1 = bv[2 * oh - 2] + bv[2 * oh - 1];
        rows = y1 - y0;
        tmp = mem_alloc((size_t)rows * ow * ch);
        for (int y = 0; y < rows; y++)
            for (int xx = 0; xx < ow; xx++) {
                const int xmin = bh[2 * xx], xn = bh[2 * xx + 1];
                const int *k = kh + (size_t)xx * ksh;
                for (int c = 0; c < ch; c++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < xn; x++) ss += in[((size_t)(y + y0) * w + xmin + x) * ch + c] * k[x];
                    tmp[((size_t)y * ow + xx) * ch + c] = clip8(ss);
                }
            }
        for (int yy = 0; yy < oh; yy++) bv[2 * yy] -= y0;
        src = tmp;
    }
    if (oh != h) {
        for (int yy = 0; yy < oh; yy++) {
            const int ymin = bv[2 * yy], yn = bv[2 * yy + 1];
            const int *k = kv + (size_t)yy * ksv;
            for (int xx = 0; xx < ow; xx++)
                for (int c = 0; c < ch; c++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int y = 0; y < yn; y++) ss += src[((size_t)(ymin + y) * ow + xx) * ch + c] * k[y];
                    out[((size_t)yy * ow + xx) * ch + c] = clip8(ss);
                }
        }
    } else {
        memcpy(out, src, (size_t)rows * ow * ch);
    }
    free(tmp), free(bh), free(kh), free(bv), free(kv);
}

void clip_image_resize_size(int w, int h, int size, int *ow, int *oh)
{
    const int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    const int nl = (int)((double)((long long)size * lng) / (double)shrt);
    *ow = w <= h ? size : nl;
    *oh = w <= h ? nl : size;
}

/* Python's int(round(x / 2.0)) for an integer x >= 0: half to even */
static int round_half_even_half(int x) { return x % 2 == 0 ? x / 2 : ((x / 2) % 2 == 0 ? x / 2 : x / 2 + 1); }

void clip_image_crop_offsets(int w, int h, int size, int *left, int *top)
{
    *left = round_half_even_half(w - size);
    *top = round_half_even_half(h - size);
}

void clip_image_resize_crop(const uint8_t *in, int w, int h, int ch, int size, uint8_t *out)
{
    int ow, oh, left, top;
    clip_image_resize_size(w, h, size, &ow, &oh);
    uint8_t *r = mem_alloc((size_t)ow * oh * ch);
    clip_image_resize_bicubic(in, w, h, ch, r, ow, oh);
    clip_image_crop_offsets(ow, oh, size, &left, &top);
    for (int y = 0; y < size; y++)
        memcpy(out + (size_t)y * size * ch, r + ((size_t)(y + top) * ow + left) * ch, (size_t)size * ch);
    free(r);
}

void clip_image_normalise(const uint8_t *rc, int size, int ch, float *px)
{
    const size_t n = (size_t)size * size;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++) {
            /* ToTensor's v / 255 in float, then (v - mean) / std, as torch computes them in float32 */
            const float v = (float)rc[i * ch + (ch == 3 ? c : 0)] / 255.0f;
            px[c * n + i] = (v - clip_image_mean[c]) / clip_image_std[c];
        }
}

int clip_image_load_png(const char *path, int size, float *px, char *err, size_t errlen)
{
    imgrid_image im;
    if (imgrid_read_png_any(path, &im, err, errlen)) return -1;
    const char *why = NULL;
    if (im.palette)
        why = "a palette PNG (PIL resizes palette images with NEAREST, not bicubic): convert it to RGB first";
    else if (im.channels <= 2 && im.bit_depth == 1)
        why = "a 1-bit PNG (PIL resizes 1-bit images with NEAREST, not bicubic): convert it to 8-bit first";
    else if (im.channels <= 2 && im.bit_depth == 16)
        why = "a 16-bit grayscale PNG (PIL opens it as 32-bit integers, not 8-bit gray): convert it to 8-bit first";
    else if (im.w < 1 || im.h < 1 || im.w > 1u << 15 || im.h > 1u << 15)
        why = "an image side outside [1, 32768]";
    size_t n = im.w * im.h;
    if (!why && (im.channels == 2 || im.channels == 4))
        for (size_t i = 0; i < n; i++)
            if (im.pixels[i * im.channels + im.channels - 1] != 255) {
                why = "transparent pixels (PIL would resize with premultiplied alpha): flatten the image first";
                break;
            }
    if (why) {
        log_errf(err, errlen, path, "%s", why);
        free(im.pixels);
        return -1;
    }
    /* opaque alpha dropped: what PIL's premultiplied resize + convert('RGB') gives for alpha 255 */
    const int ch = im.channels <= 2 ? 1 : 3;
    uint8_t *col = im.pixels;
    if (im.channels == 2 || im.channels == 4) {
        col = mem_alloc(n * ch);
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < ch; c++) col[i * ch + c] = im.pixels[i * im.channels + c];
    }
    uint8_t *rc = mem_alloc((size_t)size * size * ch);
    clip_image_resize_crop(col, (int)im.w, (int)im.h, ch, size, rc);
    clip_image_normalise(rc, size, ch, px);
    if (col != im.pixels) free(col);
    free(im.pixels), free(rc);
    return 0;
}
