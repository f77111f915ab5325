/* idx: IDX (MNIST / EMNIST) reader and writer (see idx.h).
 *
 * The paper's image experiments (§5.1, App. G) calibrate on MNIST/EMNIST 7s and 9s; this module is how the
 * suite reads those files. Design points:
 *   - zlib's gzread reads gzip and raw files alike, so the .gz downloads need no separate unpack step;
 *   - the payload buffer grows as bytes arrive, so a corrupt header claiming billions of images costs memory
 *     only for the bytes really in the file, and a truncated file is reported with both sizes;
 *   - EMNIST images are stored transposed; idx_read_images(..., transpose = 1, ...) undoes it on load;
 *   - one-line errors "<path>: <reason>" in a caller buffer and no half-filled outputs, as safetensors does. */
#include "idx.h"
#include "io.h"
#include "mem.h"
#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_UBYTE 0x08u
#define IDX_CHUNK ((size_t)1 << 26)   /* gzread/gzwrite count in unsigned: move data in 64 MiB pieces */
#define IDX_PATH_MAX 4096

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void idx_images_free(idx_images *im)
{
    if (!im) return;
    free(im->pixels);
    *im = (idx_images){0};
}

void idx_labels_free(idx_labels *lab)
{
    if (!lab) return;
    free(lab->labels);
    *lab = (idx_labels){0};
}

/* ---------------------------------------------------------------------------------------------------------
 * Reading: a gzFile plus the path for messages. */

typedef struct {
    gzFile gz;
    const char *path;
} idx_src;

/* Open path for reading (raw or gzip). Opening the descriptor ourselves gives errno-accurate messages and
 * lets us refuse directories, which gzopen would accept and then fail on at the first read. */
static int src_open(idx_src *s, const char *path, char *err, size_t errlen)
{
    s->gz = NULL;
    s->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        log_errf(err, errlen, path, "not a regular file");
        return -1;
    }
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        log_errf(err, errlen, path, "cannot open: zlib could not allocate its state");
        return -1;
    }
    gzbuffer(s->gz, 1u << 17);   /* larger than the 8 KiB default: fewer read(2) calls on 47 MB files */
    return 0;
}

static void src_close(idx_src *s)
{
    if (s->gz) gzclose_r(s->gz);
    s->gz = NULL;
}

/* Report the zlib error state. gzerror's text starts with the name given to gzdopen ("<fd:3>"), which
 * means nothing to a user: strip it, the path is prefixed instead. */
static int src_fail(idx_src *s, char *err, size_t errlen)
{
    int code = Z_OK;
    const char *msg = gzerror(s->gz, &code);
    if (code == Z_ERRNO) {
        log_errf(err, errlen, s->path, "read error: %s", strerror(errno));
        return -1;
    }
    if (msg && msg[0] == '<') {
        const char *c = strstr(msg, ": ");
        if (c) msg = c + 2;
    }
    if (code == Z_BUF_ERROR)
        log_errf(err, errlen, s->path, "corrupt gzip data: the compressed stream ends early (%s)", msg);
    else
        log_errf(err, errlen, s->path, "corrupt gzip data: %s", msg ? msg : "unknown zlib error");
    return -1;
}

/* Read up to len bytes into buf; *got receives the count. Returns 0 (a short *got means the data ended) or
 * -1 on a zlib error, which includes a gzip stream cut short: gzread returns the bytes it could decode and
 * leaves Z_BUF_ERROR set, so the error state is checked after every read, not only on a negative return. */
static int src_read(idx_src *s, void *buf, size_t len, size_t *got, char *err, size_t errlen)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < len) {
        size_t want = len - *got < IDX_CHUNK ? len - *got : IDX_CHUNK;
        int k = gzread(s->gz, p + *got, (unsigned)want);
        if (k < 0) return src_fail(s, err, errlen);
        if (k == 0) break;
        *got += (size_t)k;
    }
    int code = Z_OK;
    gzerror(s->gz, &code);
    if (code != Z_OK) return src_fail(s, err, errlen);
    return 0;
}

static const char *dtype_name(unsigned t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
    }
}

/* Read the magic and the ndims big-endian sizes; check the magic says unsigned bytes with ndims dimensions.
 * what: "image" or "label", for the message. */
static int read_header(idx_src *s, unsigned ndims, const char *what, uint32_t *dims, char *err, size_t errlen)
{
    unsigned char h[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndims, got;
    if (src_read(s, h, hlen, &got, err, errlen)) return -1;
    if (got < 4) {
        log_errf(err, errlen, s->path, "file too short (%zu bytes) to hold an IDX magic number", got);
        return -1;
    }
    uint32_t magic = be32(h), want = IDX_UBYTE << 8 | ndims;
    if (magic != want) {
        char why[128];
        if (h[0] || h[1])
            snprintf(why, sizeof why, "not an IDX file: its first two bytes are not zero");
        else if (h[2] != IDX_UBYTE)
            snprintf(why, sizeof why, "data type 0x%02x (%s) is not supported", h[2], dtype_name(h[2]));
        else
            snprintf(why, sizeof why, "it has %u dimension%s, an IDX %s file has %u", h[3], h[3] == 1 ? "" : "s",
                     what, ndims);
        log_errf(err, errlen, s->path,
                "bad magic 0x%08x (expected 0x%08x, an IDX file of unsigned bytes with %u dimension%s): %s", magic,
                want, ndims, ndims == 1 ? "" : "s", why);
        return -1;
    }
    if (got < hlen) {
        log_errf(err, errlen, s->path, "truncated header: %zu bytes, an IDX %s header has %zu", got, what, hlen);
        return -1;
    }
    for (unsigned d = 0; d < ndims; d++) dims[d] = be32(h + 4 + 4 * d);
    return 0;
}

/* Read exactly len payload bytes into a new buffer (*out; NULL on error). The buffer starts at 1 MiB (or
 * len) and doubles as data arrives, so memory follows the real file size, not the header's claim.
 * Returns 0 with *got == len, 0 with *got < len (the file ended: caller reports the truncation, *out freed),
 * or -1 on a read error. */
static int read_payload(idx_src *s, size_t len, uint8_t **out, size_t *got, char *err, size_t errlen)
{
    size_t cap = len < ((size_t)1 << 20) ? len : (size_t)1 << 20;
    uint8_t *buf = mem_alloc(cap);
    *got = 0;
    *out = NULL;
    for (;;) {
        size_t k;
        if (src_read(s, buf + *got, cap - *got, &k, err, errlen)) {
            free(buf);
            return -1;
        }
        *got += k;
        if (*got < cap || cap == len) break;   /* the file ended, or everything is in */
        cap = cap > len / 2 ? len : 2 * cap;
        buf = mem_realloc(buf, cap);
    }
    if (*got < len) {
        free(buf);
        return 0;
    }
    *out = buf;
    return 0;
}

/* After the payload the file must end: count what follows, so the message can say how much. */
static int check_end(idx_src *s, size_t hlen, size_t payload, char *err, size_t errlen)
{
    unsigned char buf[1 << 16];
    size_t extra = 0, got;
    do {
        if (src_read(s, buf, sizeof buf, &got, err, errlen)) return -1;
        extra += got;
    } while (got == sizeof buf);
    if (extra) {
        log_errf(err, errlen, s->path,
                "%zu trailing byte%s after the payload: the header describes %zu bytes (%zu-byte header + %zu), "
                "the file holds %zu", extra, extra == 1 ? "" : "s", hlen + payload, hlen, payload,
                hlen + payload + extra);
        return -1;
    }
    return 0;
}

/* Transpose each of the n rows x cols images in place (through a copy): out[c][r] = in[r][c]. */
static void transpose_images(uint8_t *pixels, size_t n, size_t rows, size_t cols)
{
    size_t sz = rows * cols;
    uint8_t *tmp = mem_alloc(sz);
    for (size_t i = 0; i < n; i++) {
        uint8_t *im = pixels + i * sz;
        memcpy(tmp, im, sz);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) im[c * rows + r] = tmp[r * cols + c];
    }
    free(tmp);
}

int idx_read_images(const char *path, int transpose, idx_images *out, char *err, size_t errlen)
{
    *out = (idx_images){0};
    idx_src s;
    if (src_open(&s, path, err, errlen)) return -1;
    uint32_t d[3];
    if (read_header(&s, 3, "image", d, err, errlen)) goto fail;
    if (d[0] == 0) {
        log_errf(err, errlen, path, "empty: the header says 0 images");
        goto fail;
    }
    if (d[1] == 0 || d[2] == 0 || d[1] > IDX_MAX_SIDE || d[2] > IDX_MAX_SIDE) {
        log_errf(err, errlen, path, "bad image size %ux%u in the header (rows and cols must be in 1..%d)", d[1],
                d[2], IDX_MAX_SIDE);
        goto fail;
    }
    size_t n = d[0], rows = d[1], cols = d[2], len;
    if (n > SIZE_MAX / (rows * cols)) {
        log_errf(err, errlen, path, "%zu images of %zux%zu do not fit in memory on this machine", n, rows, cols);
        goto fail;
    }
    len = n * rows * cols;
    uint8_t *px;
    size_t got;
    if (read_payload(&s, len, &px, &got, err, errlen)) goto fail;
    if (!px) {
        log_errf(err, errlen, path,
                "truncated: header says %zu images of %zux%zu (%zu bytes after the 16-byte header) but the file "
                "holds %zu", n, rows, cols, len, got);
        goto fail;
    }
    if (check_end(&s, 16, len, err, errlen)) {
        free(px);
        goto fail;
    }
    src_close(&s);
    if (transpose) {
        transpose_images(px, n, rows, cols);
        size_t t = rows;
        rows = cols;
        cols = t;
    }
    *out = (idx_images){.n = n, .rows = rows, .cols = cols, .pixels = px};
    return 0;
fail:
    src_close(&s);
    return -1;
}

int idx_read_labels_max(const char *path, unsigned max_label, idx_labels *out, char *err, size_t errlen)
{
    *out = (idx_labels){0};
    idx_src s;
    if (src_open(&s, path, err, errlen)) return -1;
    uint32_t d[1];
    if (read_header(&s, 1, "label", d, err, errlen)) goto fail;
    if (d[0] == 0) {
        log_errf(err, errlen, path, "empty: the header says 0 labels");
        goto fail;
    }
    size_t n = d[0], got;
    uint8_t *lab;
    if (read_payload(&s, n, &lab, &got, err, errlen)) goto fail;
    if (!lab) {
        log_errf(err, errlen, path,
                "truncated: header says %zu labels (%zu bytes after the 8-byte header) but the file holds %zu", n, n,
                got);
        goto fail;
    }
    if (check_end(&s, 8, n, err, errlen)) {
        free(lab);
        goto fail;
    }
    src_close(&s);
    for (size_t i = 0; i < n; i++)
        if (lab[i] > max_label) {
            log_errf(err, errlen, path, "label %u at index %zu exceeds the maximum %u for this dataset", lab[i], i,
                    max_label);
            free(lab);
            return -1;
        }
    *out = (idx_labels){.n = n, .labels = lab};
    return 0;
fail:
    src_close(&s);
    return -1;
}

int idx_read_labels(const char *path, idx_labels *out, char *err, size_t errlen)
{
    return idx_read_labels_max(path, 255, out, err, errlen);
}

/* ---------------------------------------------------------------------------------------------------------
 * Datasets on disk. */

int idx_resolve(const char *dir, const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
    char raw[IDX_PATH_MAX], gz[IDX_PATH_MAX];
    int a = snprintf(raw, sizeof raw, "%s/%s", dir, name), b = snprintf(gz, sizeof gz, "%s/%s.gz", dir, name);
    if (a < 0 || b < 0 || (size_t)b >= sizeof gz) {
        log_errf(err, errlen, dir, "path too long for '%s'", name);
        return -1;
    }
    struct stat st;
    const char *found = stat(raw, &st) == 0 ? raw : stat(gz, &st) == 0 ? gz : NULL;
    if (!found) {
        log_errf(err, errlen, raw, "not found (nor %s)", gz);
        return -1;
    }
    if ((size_t)snprintf(path, pathlen, "%s", found) >= pathlen) {
        log_errf(err, errlen, found, "path too long for the caller's buffer");
        return -1;
    }
    return 0;
}

int idx_load_split(const char *dir, const char *kind, int train, idx_images *img, idx_labels *lab, char *err,
                   size_t errlen)
{
    *img = (idx_images){0};
    *lab = (idx_labels){0};
    const char *split = train ? "train" : "test";
    char iname[64], lname[64], ipath[IDX_PATH_MAX], lpath[IDX_PATH_MAX];
    unsigned max_label;
    int transpose;
    if (strcmp(kind, "mnist") == 0) {
        const char *pre = train ? "train" : "t10k";   /* MNIST calls its test split "t10k" */
        snprintf(iname, sizeof iname, "%s-images-idx3-ubyte", pre);
        snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte", pre);
        max_label = 9;
        transpose = 0;
    } else if (strcmp(kind, "emnist") == 0) {
        snprintf(iname, sizeof iname, "emnist-byclass-%s-images-idx3-ubyte", split);
        snprintf(lname, sizeof lname, "emnist-byclass-%s-labels-idx1-ubyte", split);
        max_label = 61;   /* byclass: 10 digits + 26 upper + 26 lower case letters */
        transpose = 1;
    } else {
        log_errf(err, errlen, dir, "unknown dataset kind '%s' (expected mnist or emnist)", kind);
        return -1;
    }
    if (idx_resolve(dir, iname, ipath, sizeof ipath, err, errlen) ||
        idx_resolve(dir, lname, lpath, sizeof lpath, err, errlen))
        return -1;
    if (idx_read_images(ipath, transpose, img, err, errlen)) return -1;
    if (idx_read_labels_max(lpath, max_label, lab, err, errlen)) {
        idx_images_free(img);
        return -1;
    }
    if (img->n != lab->n) {
        log_errf(err, errlen, ipath, "%zu images but %s: %zu labels", img->n, lpath, lab->n);
        idx_images_free(img);
        idx_labels_free(lab);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------
 * Writing. */

/* Write header + payload to io_tmp_path(path) through zlib ("wbT": zlib's transparent, uncompressed mode),
 * then rename onto path. The temp file is removed on any failure. */
static int write_atomic(const char *path, const unsigned char *hdr, size_t hlen, const uint8_t *data, size_t len,
                        int gzip, char *err, size_t errlen)
{
    char *tmp = io_tmp_path(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_errf(err, errlen, path, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    gzFile gz = gzdopen(fd, gzip ? "wb6" : "wbT");
    if (!gz) {
        close(fd);
        unlink(tmp);
        log_errf(err, errlen, path, "cannot write: zlib could not allocate its state");
        free(tmp);
        return -1;
    }
    int bad = gzwrite(gz, hdr, (unsigned)hlen) != (int)hlen;
    for (size_t off = 0; off < len && !bad; off += IDX_CHUNK) {
        size_t k = len - off < IDX_CHUNK ? len - off : IDX_CHUNK;
        bad = gzwrite(gz, data + off, (unsigned)k) != (int)k;
    }
    char why[256] = "";
    if (bad) {
        int code;
        const char *m = gzerror(gz, &code);
        snprintf(why, sizeof why, "%s", code == Z_ERRNO ? strerror(errno) : m);
    }
    errno = 0;
    int rc = gzclose_w(gz);   /* flushes and closes fd: a full disk may only show here */
    if (!bad && rc != Z_OK) {
        bad = 1;
        snprintf(why, sizeof why, "%s", rc == Z_ERRNO && errno ? strerror(errno) : "zlib error on close");
    }
    if (!bad) {   /* gzclose_w closed the descriptor: sync through a new one before the rename */
        int sfd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (sfd < 0 || fsync(sfd) != 0) {
            bad = 1;
            snprintf(why, sizeof why, "cannot sync '%s': %s", tmp, strerror(errno));
        }
        if (sfd >= 0) close(sfd);
    }
    if (!bad && io_rename_durable(tmp, path) != 0) {
        bad = 1;
        snprintf(why, sizeof why, "cannot rename '%s' into place: %s", tmp, strerror(errno));
    }
    if (bad) {
        unlink(tmp);
        log_errf(err, errlen, path, "write failed: %s", why);
    }
    free(tmp);
    return bad ? -1 : 0;
}

int idx_write_images(const char *path, const idx_images *im, int gzip, char *err, size_t errlen)
{
    if (!im->pixels || im->n == 0 || im->n > UINT32_MAX || im->rows == 0 || im->cols == 0 ||
        im->rows > IDX_MAX_SIDE || im->cols > IDX_MAX_SIDE) {
        log_errf(err, errlen, path, "cannot write %zu images of %zux%zu (need 1..2^32-1 images, sides 1..%d)%s",
                im->n, im->rows, im->cols, IDX_MAX_SIDE, im->pixels ? "" : ", and pixels is NULL");
        return -1;
    }
    unsigned char h[16];
    put_be32(h, IDX_UBYTE << 8 | 3);
    put_be32(h + 4, (uint32_t)im->n);
    put_be32(h + 8, (uint32_t)im->rows);
    put_be32(h + 12, (uint32_t)im->cols);
    return write_atomic(path, h, sizeof h, im->pixels, im->n * im->rows * im->cols, gzip, err, errlen);
}

int idx_write_labels(const char *path, const idx_labels *lab, int gzip, char *err, size_t errlen)
{
    if (!lab->labels || lab->n == 0 || lab->n > UINT32_MAX) {
        log_errf(err, errlen, path, "cannot write %zu labels (need 1..2^32-1)%s", lab->n,
                lab->labels ? "" : ", and labels is NULL");
        return -1;
    }
    unsigned char h[8];
    put_be32(h, IDX_UBYTE << 8 | 1);
    put_be32(h + 4, (uint32_t)lab->n);
    return write_atomic(path, h, sizeof h, lab->labels, lab->n, gzip, err, errlen);
}
