/* imgrid: grayscale PNG image grids through libpng (see imgrid.h).
 *
 * libpng reports errors by longjmp. To keep that well defined, every object that changes after setjmp (the
 * libpng structs, buffers, the error message) lives in a context struct owned by the caller of the function
 * that calls setjmp; that function only reads its own locals after setjmp. Our error callback records
 * libpng's message and longjmps; warnings are ignored (they do not affect the pixels we write or read). */
#include "imgrid.h"
#include "io.h"
#include "mem.h"
#include "log.h"
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMGRID_MAX_SIDE 1000000u            /* libpng's default user limit per side (the reader applies it) */
#define IMGRID_MAX_PIXELS ((size_t)1 << 31) /* a grid beyond 2 GiB is a bug, not a figure */

typedef struct {
    png_structp png;
    png_infop info;
    uint8_t *buf;        /* reader: the pixels */
    png_bytep *rows;     /* reader: row pointers into buf */
    char msg[256];       /* libpng's error message, or ours */
} png_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* ---------------------------------------------------------------------------------------------------------
 * Writing. */

/* The value -> byte map of imgrid.h: round(255 (v - lo) / (hi - lo)), clipped; NaN -> 0. */
static uint8_t to_byte(float v, double lo, double hi)
{
    if (isnan(v)) return 0;
    double x = 255.0 * ((double)v - lo) / (hi - lo);
    if (!(x > 0)) return 0;
    if (x >= 255) return 255;
    return (uint8_t)round(x);
}

/* Lay the tiles out into a H x W canvas, grey everywhere no tile pixel lands. */
static void compose(uint8_t *canvas, size_t H, size_t W, size_t n, size_t gc, size_t h, size_t w, const float *imgs,
                    double lo, double hi, size_t pad)
{
    memset(canvas, IMGRID_GREY, H * W);
    for (size_t k = 0; k < n; k++) {
        size_t y0 = (k / gc) * (h + pad), x0 = (k % gc) * (w + pad);
        const float *im = imgs + k * h * w;
        for (size_t r = 0; r < h; r++)
            for (size_t c = 0; c < w; c++) canvas[(y0 + r) * W + x0 + c] = to_byte(im[r * w + c], lo, hi);
    }
}

/* Encode a H x W 8-bit canvas of `ch` channels (1: gray, 3: RGB) to f. */
static int png_encode(png_ctx *c, FILE *f, const uint8_t *canvas, size_t H, size_t W, int ch)
{
    c->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    if (!c->info) {
        snprintf(c->msg, sizeof c->msg, "libpng could not allocate its state");
        return -1;
    }
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_init_io(c->png, f);
    png_set_IHDR(c->png, c->info, (png_uint_32)W, (png_uint_32)H, 8, ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(c->png, c->info);
    for (size_t r = 0; r < H; r++) png_write_row(c->png, canvas + r * W * (size_t)ch);
    png_write_end(c->png, NULL);
    return 0;
}

/* Check the arguments and compute the output size; 0 or -1 with a message. */
static int grid_size(const char *path, size_t n, size_t gc, size_t h, size_t w, const float *imgs, float lo, float hi,
                     size_t pad, size_t *H, size_t *W, char *err, size_t errlen)
{
    if (!n || !gc || !h || !w || !imgs) {
        log_errf(err, errlen, path, "empty grid: n=%zu, grid_cols=%zu, tile %zux%zu%s", n, gc, h, w,
                imgs ? "" : ", images NULL");
        return -1;
    }
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi)) {
        log_errf(err, errlen, path, "bad value range [%g, %g] (need finite lo < hi)", (double)lo, (double)hi);
        return -1;
    }
    size_t rows = n / gc + (n % gc != 0);
    /* each factor is bounded first, so the products below cannot overflow */
    if (h > IMGRID_MAX_SIDE || w > IMGRID_MAX_SIDE || pad > IMGRID_MAX_SIDE || gc > IMGRID_MAX_SIDE ||
        rows > IMGRID_MAX_SIDE || gc * w + (gc - 1) * pad > IMGRID_MAX_SIDE ||
        rows * h + (rows - 1) * pad > IMGRID_MAX_SIDE) {
        log_errf(err, errlen, path, "grid of %zu x %zu tiles of %zux%zu with pad %zu exceeds %u pixels a side", rows,
                gc, h, w, pad, IMGRID_MAX_SIDE);
        return -1;
    }
    *W = gc * w + (gc - 1) * pad;
    *H = rows * h + (rows - 1) * pad;
    if (*H * *W > IMGRID_MAX_PIXELS) {
        log_errf(err, errlen, path, "grid of %zux%zu pixels is too large", *W, *H);
        return -1;
    }
    return 0;
}

/* Encode canvas[H][W][ch] to "<path>.tmp.<pid>" and rename it onto path; nothing is left behind on failure. */
static int write_atomic(const char *path, const uint8_t *canvas, size_t H, size_t W, int ch, char *err,
                        size_t errlen)
{
    /* same directory as path, so the rename cannot cross file systems */
    char *tmp = io_tmp_path(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        log_errf(err, errlen, path, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    png_ctx c = {0};
    int bad = png_encode(&c, f, canvas, H, W, ch);
    png_destroy_write_struct(&c.png, &c.info);
    errno = 0;
    /* flush + fsync + close: the bytes are on disk before the rename makes them the file */
    if (io_close_durable(f) != 0 && !bad) {
        bad = 1;
        snprintf(c.msg, sizeof c.msg, "%s", strerror(errno ? errno : EIO));
    }
    if (!bad && io_rename_durable(tmp, path) != 0) {
        bad = 1;
        snprintf(c.msg, sizeof c.msg, "cannot rename '%s' into place: %s", tmp, strerror(errno));
    }
    if (bad) {
        unlink(tmp);
        log_errf(err, errlen, path, "write failed: %s", c.msg);
    }
    free(tmp);
    return bad ? -1 : 0;
}

int imgrid_write_png(const char *path, size_t n, size_t grid_cols, size_t h, size_t w, const float *imgs, float lo,
                     float hi, size_t pad, char *err, size_t errlen)
{
    size_t H, W;
    if (grid_size(path, n, grid_cols, h, w, imgs, lo, hi, pad, &H, &W, err, errlen)) return -1;
    uint8_t *canvas = mem_alloc(H * W);
    compose(canvas, H, W, n, grid_cols, h, w, imgs, lo, hi, pad);
    int rc = write_atomic(path, canvas, H, W, 1, err, errlen);
    free(canvas);
    return rc;
}

int imgrid_write_png_rgb(const char *path, size_t h, size_t w, const uint8_t *rgb, char *err, size_t errlen)
{
    if (!h || !w || !rgb || h > IMGRID_MAX_SIDE || w > IMGRID_MAX_SIDE || h * w > IMGRID_MAX_PIXELS) {
        log_errf(err, errlen, path, "bad RGB image of %zux%zu pixels%s", w, h, rgb ? "" : " (pixels NULL)");
        return -1;
    }
    return write_atomic(path, rgb, h, w, 3, err, errlen);
}

/* ---------------------------------------------------------------------------------------------------------
 * Reading. */

static const char *color_name(int t)
{
    switch (t) {
    case PNG_COLOR_TYPE_GRAY: return "grayscale";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "grayscale+alpha";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    default: return "unknown";
    }
}

/* Decode f (signature already read and checked) into c->buf; *h, *w set on success. ch 1 or 3: exactly an 8-bit
 * gray or RGB file, no conversion; ch 0: any PNG, converted to 8 bits as imgrid_read_png_any says, with the
 * channel count, stored depth and palette flag in *info. */
static int png_decode(png_ctx *c, FILE *f, size_t *h, size_t *w, int ch, imgrid_image *info)
{
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    if (!c->info) {
        snprintf(c->msg, sizeof c->msg, "libpng could not allocate its state");
        return -1;
    }
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_init_io(c->png, f);
    png_set_sig_bytes(c->png, 8);
    png_read_info(c->png, c->info);
    png_uint_32 pw = png_get_image_width(c->png, c->info), ph = png_get_image_height(c->png, c->info);
    int depth = png_get_bit_depth(c->png, c->info), ct = png_get_color_type(c->png, c->info);
    if (ch && (ct != (ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY) || depth != 8)) {
        snprintf(c->msg, sizeof c->msg, "not an 8-bit %s PNG (colour type %s, bit depth %d)",
                 ch == 3 ? "RGB" : "grayscale", color_name(ct), depth);
        return -1;
    }
    if (!ch) {
        /* PIL's readings: palette -> its colours (tRNS -> alpha), gray below 8 bits scaled up (v * 255 / (2^d - 1),
         * which is libpng's bit replication), 16 bits -> the high byte; a tRNS on gray or RGB adds no channel */
        if (ct == PNG_COLOR_TYPE_PALETTE) {
            png_set_palette_to_rgb(c->png);
            if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
        }
        if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
        if (depth == 16) png_set_strip_16(c->png);
        info->bit_depth = depth;
        info->palette = ct == PNG_COLOR_TYPE_PALETTE;
    }
    if (png_get_interlace_type(c->png, c->info) != PNG_INTERLACE_NONE) png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    const int nch = ch ? ch : png_get_channels(c->png, c->info);
    if (!ch) {
        if (png_get_bit_depth(c->png, c->info) != 8 || nch < 1 || nch > 4 ||
            png_get_rowbytes(c->png, c->info) != (size_t)pw * (size_t)nch) {
            snprintf(c->msg, sizeof c->msg, "cannot convert a %d-bit %s PNG to 8 bits", depth, color_name(ct));
            return -1;
        }
        info->channels = nch;
    }
    if ((size_t)pw * ph > IMGRID_MAX_PIXELS) {
        snprintf(c->msg, sizeof c->msg, "image of %ux%u pixels is too large", (unsigned)pw, (unsigned)ph);
        return -1;
    }
    c->buf = mem_alloc((size_t)pw * ph * (size_t)nch);
    c->rows = mem_alloc(ph * sizeof *c->rows);
    for (png_uint_32 r = 0; r < ph; r++) c->rows[r] = c->buf + (size_t)r * pw * (size_t)nch;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL);
    *h = ph;
    *w = pw;
    return 0;
}

static int read_png(const char *path, size_t *h, size_t *w, uint8_t **pixels, int ch, imgrid_image *info, char *err,
                    size_t errlen)
{
    *h = *w = 0;
    *pixels = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(f);
        log_errf(err, errlen, path, "not a PNG file (%s)", got != sizeof sig ? "shorter than the 8-byte signature"
                                                                           : "bad signature");
        return -1;
    }
    png_ctx c = {0};
    size_t hh = 0, ww = 0;
    int bad = png_decode(&c, f, &hh, &ww, ch, info);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    fclose(f);
    free(c.rows);
    if (bad) {
        free(c.buf);
        /* libpng's own messages ("Read Error", "IDAT: CRC error") need the context */
        if (strncmp(c.msg, "libpng: ", 8) == 0)
            log_errf(err, errlen, path, "corrupt or truncated PNG (%s)", c.msg);
        else
            log_errf(err, errlen, path, "%s", c.msg);
        return -1;
    }
    *h = hh;
    *w = ww;
    *pixels = c.buf;
    return 0;
}

int imgrid_read_png_gray(const char *path, size_t *h, size_t *w, uint8_t **pixels, char *err, size_t errlen)
{
    return read_png(path, h, w, pixels, 1, NULL, err, errlen);
}

int imgrid_read_png_rgb(const char *path, size_t *h, size_t *w, uint8_t **pixels, char *err, size_t errlen)
{
    return read_png(path, h, w, pixels, 3, NULL, err, errlen);
}

int imgrid_read_png_any(const char *path, imgrid_image *img, char *err, size_t errlen)
{
    memset(img, 0, sizeof *img);
    imgrid_image info = {0};
    size_t h, w;
    uint8_t *px;
    if (read_png(path, &h, &w, &px, 0, &info, err, errlen)) return -1;
    *img = info;
    img->h = h, img->w = w, img->pixels = px;
    return 0;
}
