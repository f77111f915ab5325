/* imgrid: image grids as 8-bit grayscale PNG (libpng), for the sample figures of the image experiments
 * (paper §5.1 / App. G: generated 7s and 9s), and a matching reader for tests and tools; single 8-bit RGB images
 * (paper §5.2: SDXL samples) and their reader.
 * (Not named png.h: that would shadow libpng's own header.)
 *
 * Errors never exit: functions return 0, or -1 with ONE line "<path>: <reason>" in err (when err != NULL and
 * errlen > 0). libpng errors are caught (setjmp) and reported the same way. */
#ifndef SF_IMGRID_H
#define SF_IMGRID_H
#include <stddef.h>
#include <stdint.h>

#define IMGRID_GREY 128   /* separator and unused-tile value */

/* Write n images of h x w (imgs is [n][h][w], row-major) as a grid of grid_cols columns and
 * ceil(n / grid_cols) rows of tiles, always grid_cols tiles wide (so layouts do not change with n), with
 * `pad` pixels of IMGRID_GREY between neighbouring tiles (none around the border). The output is
 *   width  = grid_cols * w + (grid_cols - 1) * pad,   height = rows * h + (rows - 1) * pad.
 * Tile k sits at grid row k / grid_cols, column k % grid_cols; tiles past n are IMGRID_GREY.
 * A value v becomes round(255 (v - lo) / (hi - lo)) clipped to [0, 255]; NaN becomes 0 (black), +-inf clip.
 * Needs n, grid_cols, h, w >= 1 and finite lo < hi.
 * The file is written atomically: io_tmp_path(path) in the same directory, synced, renamed onto path; on any error
 * the temp file is removed and path is untouched. */
int imgrid_write_png(const char *path, size_t n, size_t grid_cols, size_t h, size_t w, const float *imgs, float lo,
                     float hi, size_t pad, char *err, size_t errlen);

/* Read an 8-bit grayscale PNG (interlaced or not; no alpha, no palette, no other depth: those are refused with
 * a message naming the colour type and depth). On success *pixels is a malloc'ed [h][w] buffer (free()).
 * On error *h = *w = 0 and *pixels = NULL. */
int imgrid_read_png_gray(const char *path, size_t *h, size_t *w, uint8_t **pixels, char *err, size_t errlen);

/* Write one 8-bit RGB image rgb[h][w][3] (the decoded images of the SDXL pipeline), atomically as above. */
int imgrid_write_png_rgb(const char *path, size_t h, size_t w, const uint8_t *rgb, char *err, size_t errlen);
/* Read an 8-bit RGB PNG (no alpha) into a malloc'ed [h][w][3] buffer; other colour types are refused. */
int imgrid_read_png_rgb(const char *path, size_t *h, size_t *w, uint8_t **pixels, char *err, size_t errlen);

/* Any PNG (gray, gray+alpha, RGB, RGBA, palette; 1 to 16 bits; interlaced or not) as 8-bit pixels, converted as
 * PIL reads them: a palette becomes its RGB colours (RGBA when the file has a tRNS chunk), gray below 8 bits is
 * scaled up (v * 255 / (2^depth - 1)), 16-bit samples keep their high byte; a tRNS chunk on a gray or RGB image
 * adds no channel. bit_depth and palette say what the file stored, so callers can refuse what they cannot treat
 * as PIL would. */
typedef struct {
    size_t h, w;
    int channels;        /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int bit_depth;       /* as stored: 1, 2, 4, 8 or 16 */
    int palette;         /* 1: the file is a palette image */
    uint8_t *pixels;     /* [h][w][channels], malloc'ed (free()) */
} imgrid_image;
int imgrid_read_png_any(const char *path, imgrid_image *img, char *err, size_t errlen);

#endif
