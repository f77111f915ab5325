/* test_idx: the IDX reader/writer (common/idx.h). Synthetic files written raw and gzipped to a temp directory
 * and read back; EMNIST transposition (non-square images, so rows/cols swapping is visible); dataset splits;
 * every error path provoked on purpose (bad magic, wrong data type, wrong ndims, short header, truncated
 * payload, trailing bytes, zero count, bad sizes, label out of range, count mismatch, missing file, directory,
 * corrupt and truncated gzip), each checked for a one-line message naming the file and zeroed outputs.
 * When run from the repository root with data/mnist present, the real MNIST files are checked too. */
#include "idx.h"
#include "io.h"
#include "log.h"
#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/sf_test_idx_XXXXXX";

/* ---- helpers ---------------------------------------------------------------------------------------- */

static void write_raw(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0) LOG_FATAL("cannot write %s", path);
}

static void write_gz(const char *path, const void *buf, size_t len)
{
    gzFile g = gzopen(path, "wb");
    if (!g || (len && gzwrite(g, buf, (unsigned)len) != (int)len) || gzclose(g) != Z_OK)
        LOG_FATAL("cannot write %s", path);
}

static unsigned char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) LOG_FATAL("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) LOG_FATAL("cannot read %s", path);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An image file image in memory: magic, n, rows, cols, then npay payload bytes (pattern). Returns length. */
static size_t build_images(unsigned char *out, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t npay)
{
    be32(out, magic);
    be32(out + 4, n);
    be32(out + 8, rows);
    be32(out + 12, cols);
    for (size_t i = 0; i < npay; i++) out[16 + i] = (unsigned char)(i * 7 + 1);
    return 16 + npay;
}

static size_t build_labels(unsigned char *out, uint32_t magic, uint32_t n, size_t npay)
{
    be32(out, magic);
    be32(out + 4, n);
    for (size_t i = 0; i < npay; i++) out[8 + i] = (unsigned char)(i % 10);
    return 8 + npay;
}

static int one_line_naming(const char *err, const char *path)
{
    return strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':' && !strchr(err, '\n');
}

/* The reader must fail with a message naming the file, containing needle, and leave *out zeroed (it is
 * pre-filled with garbage to see that). */
static void expect_images_reject(const char *tag, const char *path, int transpose, const char *needle)
{
    char err[512] = "", nm[700];
    idx_images im = {.n = 7, .rows = 7, .cols = 7, .pixels = (uint8_t *)&im};
    int rc = idx_read_images(path, transpose, &im, err, sizeof err);
    snprintf(nm, sizeof nm, "images reject %s (\"%s\")", tag, err);
    test_report(rc == -1 && one_line_naming(err, path) && strstr(err, needle) && im.n == 0 && im.rows == 0 &&
                    im.cols == 0 && im.pixels == NULL,
                nm, needle);
}

static void expect_labels_reject(const char *tag, const char *path, unsigned maxl, const char *needle)
{
    char err[512] = "", nm[700];
    idx_labels lab = {.n = 7, .labels = (uint8_t *)&lab};
    int rc = idx_read_labels_max(path, maxl, &lab, err, sizeof err);
    snprintf(nm, sizeof nm, "labels reject %s (\"%s\")", tag, err);
    test_report(rc == -1 && one_line_naming(err, path) && strstr(err, needle) && lab.n == 0 && lab.labels == NULL,
                nm, needle);
}

/* ---- round trips ------------------------------------------------------------------------------------ */

enum { N = 3, R = 4, C = 5 };

static void fill_images(idx_images *im, uint8_t *px)
{
    for (size_t i = 0; i < (size_t)N * R * C; i++) px[i] = (uint8_t)(i * 3 + 11);
    *im = (idx_images){.n = N, .rows = R, .cols = C, .pixels = px};
}

static void test_roundtrip(void)
{
    uint8_t px[N * R * C];
    idx_images im;
    fill_images(&im, px);
    char raw[256], gz[256], err[512] = "";
    snprintf(raw, sizeof raw, "%s/rt-images-idx3-ubyte", dir);
    snprintf(gz, sizeof gz, "%s/rt-images-idx3-ubyte.gz", dir);
    CHECK(idx_write_images(raw, &im, 0, err, sizeof err) == 0, "write raw images");
    CHECK(idx_write_images(gz, &im, 1, err, sizeof err) == 0, "write gzip images");

    size_t len;
    unsigned char *b = read_whole(raw, &len);
    CHECK(len == 16 + sizeof px && b[0] == 0 && b[1] == 0 && b[2] == 8 && b[3] == 3 && b[7] == N && b[11] == R &&
              b[15] == C && memcmp(b + 16, px, sizeof px) == 0,
          "raw image file is the IDX byte layout (big-endian header, row-major payload)");
    free(b);
    b = read_whole(gz, &len);
    CHECK(len >= 2 && b[0] == 0x1f && b[1] == 0x8b, "gzip image file starts with the gzip magic");
    free(b);

    const char *paths[2] = {raw, gz};
    for (int k = 0; k < 2; k++) {
        idx_images got;
        char nm[128];
        int rc = idx_read_images(paths[k], 0, &got, err, sizeof err);
        snprintf(nm, sizeof nm, "read back %s images: same n, rows, cols, pixels", k ? "gzip" : "raw");
        CHECK(rc == 0 && got.n == N && got.rows == R && got.cols == C && memcmp(got.pixels, px, sizeof px) == 0, nm);
        idx_images_free(&got);
        CHECK(got.n == 0 && got.pixels == NULL, "idx_images_free zeroes the struct");
    }

    /* transposition: pixels[r][c] = file[c][r], and the sides swap */
    idx_images t;
    int rc = idx_read_images(gz, 1, &t, err, sizeof err);
    int ok = rc == 0 && t.n == N && t.rows == C && t.cols == R;
    for (size_t i = 0; ok && i < N; i++)
        for (size_t r = 0; r < C; r++)
            for (size_t c = 0; c < R; c++)
                if (t.pixels[i * R * C + r * R + c] != px[i * R * C + c * C + r]) ok = 0;
    CHECK(ok, "transpose on load: 4x5 file images become 5x4 with pixels[r][c] = file[c][r]");
    idx_images_free(&t);

    /* labels */
    uint8_t lv[6] = {0, 9, 3, 7, 255, 1};
    idx_labels lab = {.n = 6, .labels = lv}, lg;
    snprintf(raw, sizeof raw, "%s/rt-labels-idx1-ubyte", dir);
    snprintf(gz, sizeof gz, "%s/rt-labels-idx1-ubyte.gz", dir);
    CHECK(idx_write_labels(raw, &lab, 0, err, sizeof err) == 0 && idx_write_labels(gz, &lab, 1, err, sizeof err) == 0,
          "write raw and gzip labels");
    b = read_whole(raw, &len);
    CHECK(len == 14 && b[2] == 8 && b[3] == 1 && b[7] == 6 && memcmp(b + 8, lv, 6) == 0, "raw label file layout");
    free(b);
    for (int k = 0; k < 2; k++) {
        const char *p = k ? gz : raw;
        rc = idx_read_labels(p, &lg, err, sizeof err);
        CHECK(rc == 0 && lg.n == 6 && memcmp(lg.labels, lv, 6) == 0,
              k ? "read back gzip labels (255 accepted without a maximum)" : "read back raw labels");
        idx_labels_free(&lg);
    }
    CHECK(lg.n == 0 && lg.labels == NULL, "idx_labels_free zeroes the struct");
    expect_labels_reject("label above the maximum", raw, 9, "label 255 at index 4 exceeds the maximum 9");
    rc = idx_read_labels_max(raw, 255, &lg, err, sizeof err);
    CHECK(rc == 0 && lg.n == 6, "maximum 255 accepts every byte");
    idx_labels_free(&lg);

    /* no temp files are left by the writer */
    char path_rt[300];
    snprintf(path_rt, sizeof path_rt, "%s/rt-images-idx3-ubyte", dir);
    char *tmp = io_tmp_path(path_rt);
    CHECK(access(tmp, F_OK) != 0, "writer leaves no temp file after success");
    free(tmp);
}

/* a larger payload through the growing buffer (several doublings from 1 MiB) */
static void test_large(void)
{
    size_t n = 5000, sz = 28 * 28;
    uint8_t *px = malloc(n * sz);
    for (size_t i = 0; i < n * sz; i++) px[i] = (uint8_t)((i * 2654435761u) >> 24);
    idx_images im = {.n = n, .rows = 28, .cols = 28, .pixels = px}, got;
    char p[256], err[512] = "";
    snprintf(p, sizeof p, "%s/big-images-idx3-ubyte.gz", dir);
    int rc = idx_write_images(p, &im, 1, err, sizeof err);
    rc = rc || idx_read_images(p, 0, &got, err, sizeof err);
    CHECK(rc == 0 && got.n == n && memcmp(got.pixels, px, n * sz) == 0, "3.9 MB gzip payload round trip (buffer growth)");
    idx_images_free(&got);
    free(px);
}

/* ---- error paths ------------------------------------------------------------------------------------ */

static void test_errors(void)
{
    static unsigned char buf[1 << 12];
    char p[256], err[512];
    size_t len;
    const size_t pay = 2 * 3 * 4;   /* 2 images of 3x4 */

#define PATH(name) (snprintf(p, sizeof p, "%s/%s", dir, (name)), p)

    len = build_images(buf, 0x00000903, 2, 3, 4, pay);
    write_raw(PATH("signed-images"), buf, len);
    expect_images_reject("wrong data type (signed byte)", p, 0,
                         "bad magic 0x00000903 (expected 0x00000803, an IDX file of unsigned bytes with 3 dimensions)");
    expect_images_reject("wrong data type names it", p, 0, "signed byte");
    len = build_images(buf, 0x00000d03, 2, 3, 4, pay);
    write_raw(PATH("float-images"), buf, len);
    expect_images_reject("wrong data type (float32)", p, 0, "data type 0x0d (float32) is not supported");
    len = build_images(buf, 0x89504e47, 2, 3, 4, pay);   /* a PNG signature */
    write_raw(PATH("nonzero-magic"), buf, len);
    expect_images_reject("magic with non-zero leading bytes", p, 0, "not an IDX file");

    len = build_labels(buf, 0x00000801, 5, 5);
    write_raw(PATH("labels-as-images"), buf, len);
    expect_images_reject("wrong ndims (label file read as images)", p, 0, "bad magic 0x00000801");
    expect_images_reject("wrong ndims says how many", p, 0, "it has 1 dimension, an IDX image file has 3");
    len = build_images(buf, 0x00000803, 2, 3, 4, pay);
    write_raw(PATH("images-as-labels"), buf, len);
    expect_labels_reject("wrong ndims (image file read as labels)", p, 255, "bad magic 0x00000803");

    write_raw(PATH("two-bytes"), "\0\0", 2);
    expect_images_reject("file shorter than the magic", p, 0, "file too short (2 bytes)");
    write_raw(PATH("empty"), "", 0);
    expect_labels_reject("empty file", p, 255, "file too short (0 bytes)");
    len = build_images(buf, 0x00000803, 2, 3, 4, 0);
    write_raw(PATH("short-header"), buf, 10);
    expect_images_reject("truncated header", p, 0, "truncated header: 10 bytes, an IDX image header has 16");

    len = build_images(buf, 0x00000803, 2, 3, 4, pay - 5);
    write_raw(PATH("trunc-images"), buf, len);
    expect_images_reject("truncated payload", p, 0,
                         "truncated: header says 2 images of 3x4 (24 bytes after the 16-byte header) but the file "
                         "holds 19");
    write_gz(PATH("trunc-images.gz"), buf, len);
    expect_images_reject("truncated payload inside a valid gzip", p, 0, "but the file holds 19");
    len = build_labels(buf, 0x00000801, 10, 4);
    write_raw(PATH("trunc-labels"), buf, len);
    expect_labels_reject("truncated labels", p, 255, "truncated: header says 10 labels");

    len = build_images(buf, 0x00000803, 2, 3, 4, pay + 3);
    write_raw(PATH("trailing-images"), buf, len);
    expect_images_reject("trailing bytes", p, 0, "3 trailing bytes after the payload");
    write_gz(PATH("trailing-images.gz"), buf, len);
    expect_images_reject("trailing bytes inside gzip", p, 0, "3 trailing bytes");
    len = build_labels(buf, 0x00000801, 4, 5);
    write_raw(PATH("trailing-labels"), buf, len);
    expect_labels_reject("trailing label byte", p, 255, "1 trailing byte after the payload");

    len = build_images(buf, 0x00000803, 0, 3, 4, 0);
    write_raw(PATH("zero-images"), buf, len);
    expect_images_reject("zero image count", p, 0, "empty: the header says 0 images");
    len = build_labels(buf, 0x00000801, 0, 0);
    write_raw(PATH("zero-labels"), buf, len);
    expect_labels_reject("zero label count", p, 255, "empty: the header says 0 labels");
    len = build_images(buf, 0x00000803, 2, 0, 4, 0);
    write_raw(PATH("zero-rows"), buf, len);
    expect_images_reject("zero rows", p, 0, "bad image size 0x4");
    len = build_images(buf, 0x00000803, 1, 4097, 1, 0);
    write_raw(PATH("huge-rows"), buf, len);
    expect_images_reject("rows > 4096", p, 0, "bad image size 4097x1");
    /* a header claiming 2^32-1 images of 4096x4096 must be reported as truncated, not allocated */
    len = build_images(buf, 0x00000803, 0xffffffffu, 4096, 4096, 100);
    write_raw(PATH("huge-claim"), buf, len);
    expect_images_reject("huge header claim with a tiny payload", p, 0, "but the file holds 100");

    expect_images_reject("missing file", PATH("no-such-file"), 0, "cannot open: No such file or directory");
    expect_labels_reject("missing label file", p, 255, "No such file");
    expect_images_reject("directory", dir, 0, "not a regular file");

    /* corrupt gzip: a valid .gz with its deflate data overwritten */
    uint8_t px[64 * 8 * 8];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * i);
    idx_images im = {.n = 64, .rows = 8, .cols = 8, .pixels = px};
    PATH("corrupt-images.gz");
    if (idx_write_images(p, &im, 1, err, sizeof err)) LOG_FATAL("%s", err);
    unsigned char *g = read_whole(p, &len);
    unsigned char *good = malloc(len);
    memcpy(good, g, len);
    for (size_t i = 12; i < len - 8 && i < 40; i++) g[i] ^= 0x5a;
    write_raw(p, g, len);
    expect_images_reject("corrupt gzip data", p, 0, "corrupt gzip data");
    /* truncated gzip stream: the first half of a valid .gz */
    write_raw(PATH("cut-images.gz"), good, len / 2);
    expect_images_reject("truncated gzip stream", p, 0, "corrupt gzip data: the compressed stream ends early");
    /* bad CRC in the gzip trailer: all data decodes, the check at the end fails */
    memcpy(g, good, len);
    g[len - 8] ^= 0xff;
    write_raw(PATH("crc-images.gz"), g, len);
    expect_images_reject("gzip CRC mismatch", p, 0, "corrupt gzip data");
    free(g);
    free(good);

    /* writer errors: nothing is left behind */
    snprintf(p, sizeof p, "%s/no-such-dir/x-images-idx3-ubyte", dir);
    err[0] = 0;
    int rc = idx_write_images(p, &im, 0, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, p) && strstr(err, "cannot create"),
          "write into a missing directory fails with a message naming the file");
    idx_images bad = {.n = 0, .rows = 8, .cols = 8, .pixels = px};
    PATH("zero-write");
    rc = idx_write_images(p, &bad, 0, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, p) && access(p, F_OK) != 0, "writing 0 images is refused, no file made");
    bad = (idx_images){.n = 1, .rows = 5000, .cols = 1, .pixels = px};
    rc = idx_write_images(p, &bad, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "5000x1"), "writing a 5000-row image is refused");
    idx_labels badl = {.n = 3, .labels = NULL};
    rc = idx_write_labels(p, &badl, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "NULL"), "writing NULL labels is refused");
#undef PATH
}

/* ---- splits ------------------------------------------------------------------------------------------ */

static void mkdir_or_die(const char *p)
{
    if (mkdir(p, 0755) != 0) LOG_FATAL("mkdir %s", p);
}

static void test_resolve_and_split(void)
{
    char d[256], p[512], found[512], err[512];
    snprintf(d, sizeof d, "%s/mnist", dir);
    mkdir_or_die(d);
    uint8_t px[N * R * C];
    idx_images im, img;
    idx_labels lab;
    fill_images(&im, px);
    uint8_t lv[N] = {7, 9, 0};
    idx_labels l = {.n = N, .labels = lv};

    /* train: raw images, gzip labels */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", d);
    if (idx_write_images(p, &im, 0, err, sizeof err)) LOG_FATAL("%s", err);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", d);
    if (idx_write_labels(p, &l, 1, err, sizeof err)) LOG_FATAL("%s", err);

    int rc = idx_resolve(d, "train-labels-idx1-ubyte", found, sizeof found, err, sizeof err);
    CHECK(rc == 0 && strcmp(found, p) == 0, "resolve finds DIR/NAME.gz when DIR/NAME is absent");
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", d);
    if (idx_write_images(p, &im, 1, err, sizeof err)) LOG_FATAL("%s", err);
    rc = idx_resolve(d, "train-images-idx3-ubyte", found, sizeof found, err, sizeof err);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", d);
    CHECK(rc == 0 && strcmp(found, p) == 0, "resolve prefers DIR/NAME over DIR/NAME.gz");
    rc = idx_resolve(d, "nothing", found, sizeof found, err, sizeof err);
    snprintf(p, sizeof p, "%s/nothing", d);
    CHECK(rc == -1 && one_line_naming(err, p) && strstr(err, "not found (nor ") && strstr(err, "nothing.gz"),
          "resolve failure names both candidates");

    rc = idx_load_split(d, "mnist", 1, &img, &lab, err, sizeof err);
    CHECK(rc == 0 && img.n == N && img.rows == R && img.cols == C && memcmp(img.pixels, px, sizeof px) == 0 &&
              lab.n == N && lab.labels[0] == 7 && lab.labels[1] == 9,
          "mnist train split loads (raw images + gzip labels), not transposed");
    idx_images_free(&img);
    idx_labels_free(&lab);

    rc = idx_load_split(d, "mnist", 0, &img, &lab, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "t10k-images-idx3-ubyte: not found") && img.pixels == NULL && lab.labels == NULL,
          "missing test split: names t10k-images-idx3-ubyte");
    rc = idx_load_split(d, "cifar", 1, &img, &lab, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "unknown dataset kind 'cifar'"), "unknown dataset kind rejected");

    /* count mismatch: 3 images, 2 labels */
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", d);
    if (idx_write_images(p, &im, 0, err, sizeof err)) LOG_FATAL("%s", err);
    l.n = 2;
    char lp[512];
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte", d);
    if (idx_write_labels(lp, &l, 0, err, sizeof err)) LOG_FATAL("%s", err);
    img = (idx_images){.n = 9, .pixels = px};
    lab = (idx_labels){.n = 9, .labels = lv};
    rc = idx_load_split(d, "mnist", 0, &img, &lab, err, sizeof err);
    char want[1200];
    snprintf(want, sizeof want, "%s: 3 images but %s: 2 labels", p, lp);
    CHECK(rc == -1 && strcmp(err, want) == 0 && img.n == 0 && img.pixels == NULL && lab.n == 0 && lab.labels == NULL,
          "image/label count mismatch: one line naming both files, outputs zeroed");
    /* mnist labels above 9 */
    uint8_t lv10[N] = {1, 10, 2};
    l = (idx_labels){.n = N, .labels = lv10};
    if (idx_write_labels(lp, &l, 0, err, sizeof err)) LOG_FATAL("%s", err);
    rc = idx_load_split(d, "mnist", 0, &img, &lab, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, lp) && strstr(err, "label 10 at index 1 exceeds the maximum 9") &&
              img.pixels == NULL && lab.labels == NULL,
          "mnist label 10 rejected, image output freed");

    /* emnist: transposed on load, labels up to 61 */
    snprintf(d, sizeof d, "%s/emnist", dir);
    mkdir_or_die(d);
    snprintf(p, sizeof p, "%s/emnist-byclass-train-images-idx3-ubyte.gz", d);
    if (idx_write_images(p, &im, 1, err, sizeof err)) LOG_FATAL("%s", err);
    uint8_t le[N] = {61, 0, 9};
    l = (idx_labels){.n = N, .labels = le};
    snprintf(p, sizeof p, "%s/emnist-byclass-train-labels-idx1-ubyte.gz", d);
    if (idx_write_labels(p, &l, 1, err, sizeof err)) LOG_FATAL("%s", err);
    rc = idx_load_split(d, "emnist", 1, &img, &lab, err, sizeof err);
    int ok = rc == 0 && img.n == N && img.rows == C && img.cols == R && lab.n == N && lab.labels[0] == 61;
    for (size_t i = 0; ok && i < N; i++)
        for (size_t r = 0; r < C; r++)
            for (size_t c = 0; c < R; c++)
                if (img.pixels[i * R * C + r * R + c] != px[i * R * C + c * C + r]) ok = 0;
    CHECK(ok, "emnist byclass train split: gzip files, transposed on load, label 61 accepted");
    idx_images_free(&img);
    idx_labels_free(&lab);
    le[0] = 62;
    if (idx_write_labels(p, &l, 1, err, sizeof err)) LOG_FATAL("%s", err);
    rc = idx_load_split(d, "emnist", 1, &img, &lab, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "label 62 at index 0 exceeds the maximum 61"), "emnist label 62 rejected");
    rc = idx_load_split(d, "emnist", 0, &img, &lab, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "emnist-byclass-test-images-idx3-ubyte: not found"),
          "emnist test split file names");
}

/* ---- the real MNIST files ---------------------------------------------------------------------------- */

static void count_79(const idx_labels *lab, size_t *n7, size_t *n9)
{
    *n7 = *n9 = 0;
    for (size_t i = 0; i < lab->n; i++) {
        *n7 += lab->labels[i] == 7;
        *n9 += lab->labels[i] == 9;
    }
}

static long pixel_sum(const idx_images *im, size_t i)
{
    long s = 0;
    for (size_t k = 0; k < im->rows * im->cols; k++) s += im->pixels[i * im->rows * im->cols + k];
    return s;
}

static void test_real_mnist(void)
{
    struct stat st;
    if (stat("data/mnist", &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP real MNIST checks: data/mnist not found (run `make data`, from the repository root)\n");
        return;
    }
    idx_images img;
    idx_labels lab;
    char err[1024] = "";
    size_t n7, n9;
    int rc = idx_load_split("data/mnist", "mnist", 1, &img, &lab, err, sizeof err);
    if (rc) printf("# %s\n", err);
    CHECK(rc == 0 && img.n == 60000 && img.rows == 28 && img.cols == 28 && lab.n == 60000,
          "MNIST train: 60000 images of 28x28 with 60000 labels <= 9");
    if (rc == 0) {
        count_79(&lab, &n7, &n9);
        printf("# MNIST train: %zu sevens, %zu nines\n", n7, n9);
        CHECK(n7 == 6265 && n9 == 5949, "MNIST train: 6265 sevens and 5949 nines");
        /* fingerprint: the first training digit is a 5 whose pixels sum to 27525 (computed independently) */
        CHECK(lab.labels[0] == 5 && pixel_sum(&img, 0) == 27525, "MNIST train[0] is a 5 with pixel sum 27525");
    }
    idx_images_free(&img);
    idx_labels_free(&lab);

    rc = idx_load_split("data/mnist", "mnist", 0, &img, &lab, err, sizeof err);
    if (rc) printf("# %s\n", err);
    CHECK(rc == 0 && img.n == 10000 && img.rows == 28 && img.cols == 28 && lab.n == 10000,
          "MNIST test: 10000 images of 28x28 with 10000 labels <= 9");
    if (rc == 0) {
        count_79(&lab, &n7, &n9);
        printf("# MNIST test: %zu sevens, %zu nines\n", n7, n9);
        CHECK(n7 == 1028 && n9 == 1009, "MNIST test: 1028 sevens and 1009 nines");
        CHECK(lab.labels[0] == 7 && pixel_sum(&img, 0) == 18454, "MNIST test[0] is a 7 with pixel sum 18454");
    }
    idx_images_free(&img);
    idx_labels_free(&lab);
}

int main(void)
{
    if (!mkdtemp(dir)) LOG_FATAL("mkdtemp failed");
    test_roundtrip();
    test_large();
    test_errors();
    test_resolve_and_split();
    test_real_mnist();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return test_finish();
}
