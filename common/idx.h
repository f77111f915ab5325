/* idx: reader and writer for the IDX file format of MNIST and EMNIST (paper §5.1 and App. G: the 7-vs-9
 * calibration experiment trains on MNIST / EMNIST digits).
 *
 * An IDX file is a 4-byte big-endian magic 0x0000TTDD (TT: data type, 0x08 = unsigned byte; DD: number of
 * dimensions), DD big-endian uint32 sizes, then the row-major payload. Image files have 3 dimensions
 * (n, rows, cols), label files 1 (n). Only unsigned-byte files are accepted, since that is all MNIST/EMNIST use.
 *
 * Files are read through zlib's gzread, so "x-idx3-ubyte" and "x-idx3-ubyte.gz" are read the same way.
 * Everything is validated: magic, dimensions, the exact payload length (a truncated file and trailing bytes
 * are both errors), and, for a split, that image and label counts agree.
 *
 * EMNIST stores every image transposed (the NIST scans were written column by column); readers pass
 * transpose = 1 to get upright images: pixels[r][c] = file[c][r].
 *
 * Errors never exit: each function returns 0 on success or -1 and writes ONE line "<path>: <reason>" into
 * err (when err != NULL and errlen > 0). On error the outputs are freed and zeroed, never half-filled. */
#ifndef SF_IDX_H
#define SF_IDX_H
#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_SIDE 4096   /* rows and cols of an image file must lie in [1, IDX_MAX_SIDE] */

typedef struct {
    size_t n, rows, cols;
    uint8_t *pixels;        /* [n][rows][cols], row-major */
} idx_images;

typedef struct {
    size_t n;
    uint8_t *labels;        /* [n] */
} idx_labels;

/* Read an image file (raw or gzip). transpose != 0: EMNIST layout, each image is transposed on load (and
 * rows/cols swapped, for non-square images). */
int idx_read_images(const char *path, int transpose, idx_images *out, char *err, size_t errlen);

/* Read a label file (raw or gzip); any byte value is accepted. */
int idx_read_labels(const char *path, idx_labels *out, char *err, size_t errlen);
/* As idx_read_labels, and every label must be <= max_label (e.g. 9 for MNIST). */
int idx_read_labels_max(const char *path, unsigned max_label, idx_labels *out, char *err, size_t errlen);

void idx_images_free(idx_images *im);     /* frees pixels and zeroes *im; safe on a zeroed struct */
void idx_labels_free(idx_labels *lab);

/* Find DIR/NAME, else DIR/NAME.gz; writes the path found into path (size pathlen). Returns 0, or -1 with
 * "DIR/NAME: not found (nor DIR/NAME.gz)" in err. */
int idx_resolve(const char *dir, const char *name, char *path, size_t pathlen, char *err, size_t errlen);

/* Load one split of a dataset from dir:
 *   kind "mnist":  train-images-idx3-ubyte / train-labels-idx1-ubyte (train = 1),
 *                  t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte (train = 0); labels <= 9;
 *   kind "emnist": EMNIST "byclass", emnist-byclass-{train,test}-{images-idx3,labels-idx1}-ubyte, images
 *                  transposed on load; labels <= 61 (0-9 are the digits, 10-35 upper case, 36-61 lower case).
 * Each file is found as DIR/NAME or DIR/NAME.gz. The image and label counts must agree. On error both
 * outputs are zeroed. */
int idx_load_split(const char *dir, const char *kind, int train, idx_images *img, idx_labels *lab, char *err,
                   size_t errlen);

/* Write an image / label file atomically (temp file io_tmp_path(path), synced, then renamed; the temp is removed on
 * any error). gzip != 0 compresses (the file is then read back transparently by the readers above). Pixels are
 * written as stored (no transposition). n must be in [1, 2^32-1], rows and cols in [1, IDX_MAX_SIDE]. */
int idx_write_images(const char *path, const idx_images *im, int gzip, char *err, size_t errlen);
int idx_write_labels(const char *path, const idx_labels *lab, int gzip, char *err, size_t errlen);

#endif
