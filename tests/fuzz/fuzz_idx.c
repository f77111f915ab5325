/* fuzz_idx: libFuzzer harness for the IDX reader (common/idx.c), the reader of the MNIST / EMNIST files that
 * come from outside. Each input is written to a file and read as an image file (plain and transposed, as
 * EMNIST is) and as a label file (any labels, and labels <= 9); gzip and raw inputs take the same path through
 * zlib, and the seed corpus holds both. A successful read must describe exactly the bytes it returns, which
 * is checked by touching every one (ASan catches a short buffer). */
#include "fuzz_util.h"
#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/input", fuzz_scratch_dir());
    fuzz_write_file(path, data, size);
    volatile unsigned sink = 0;
    for (int transpose = 0; transpose < 2; transpose++) {
        idx_images im;
        if (idx_read_images(path, transpose, &im, err, sizeof err) == 0) {
            size_t bytes = im.n * im.rows * im.cols;
            if (im.n == 0 || im.rows == 0 || im.cols == 0 || im.rows > IDX_MAX_SIDE || im.cols > IDX_MAX_SIDE) abort();
            for (size_t i = 0; i < bytes; i++) sink += im.pixels[i];
            idx_images_free(&im);
        } else if (!err[0] || strchr(err, '\n') || im.pixels || im.n) {
            abort();   /* a failure is one line, and leaves the output zeroed */
        }
    }
    idx_labels lab;
    if (idx_read_labels(path, &lab, err, sizeof err) == 0) {
        for (size_t i = 0; i < lab.n; i++) sink += lab.labels[i];
        idx_labels_free(&lab);
    } else if (!err[0] || strchr(err, '\n') || lab.labels || lab.n) {
        abort();
    }
    if (idx_read_labels_max(path, 9, &lab, err, sizeof err) == 0) {
        for (size_t i = 0; i < lab.n; i++)
            if (lab.labels[i] > 9) abort();
        idx_labels_free(&lab);
    }
    (void)sink;
    return 0;
}
