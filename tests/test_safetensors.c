/* test_safetensors: the safetensors reader/writer (common/safetensors.h): a file hand-built byte by byte per
 * the spec, writer -> reader round trips (all dtypes, metadata with escapes, 0-d and empty tensors, 8-byte
 * alignment of the data section), and every corruption path rejected with a one-line message naming the file. */
#include "io.h"
#include "log.h"
#include "safetensors.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/sf_test_st_XXXXXX";

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) LOG_FATAL("cannot write %s", path);
    fclose(f);
}

/* 8-byte LE length + header + data */
static size_t build(unsigned char *out, const char *header, const void *data, size_t dlen)
{
    size_t h = strlen(header);
    for (int k = 0; k < 8; k++) out[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(out + 8, header, h);
    if (dlen) memcpy(out + 8 + h, data, dlen);
    return 8 + h + dlen;
}

static void expect_reject(const char *tag, const char *header, const void *data, size_t dlen, const char *needle)
{
    static unsigned char buf[4096];
    char path[256], err[512] = "", nm[sizeof err + 64];
    size_t n = build(buf, header, data, dlen);
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, tag);
    write_file(path, buf, n);
    safetensors *st = safetensors_open(path, err, sizeof err);
    snprintf(nm, sizeof nm, "reject %s (\"%s\")", tag, err);
    test_report(!st && strstr(err, path) && strstr(err, needle) && !strchr(err, '\n'), nm,
                needle);
    safetensors_close(st);
}

static void test_handbuilt(void)
{
    /* header padded with spaces to 8-byte alignment, as the spec suggests */
    const char *hdr = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[1,3],\"data_offsets\":[8,11]}}";
    char padded[256];
    snprintf(padded, sizeof padded, "%s", hdr);
    while ((8 + strlen(padded)) % 8) strcat(padded, " ");
    unsigned char data[11] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 7, 8, 9};   /* 1.0f, -2.0f LE */
    unsigned char buf[512];
    size_t n = build(buf, padded, data, sizeof data);
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/hand.safetensors", dir);
    write_file(path, buf, n);
    safetensors *st = safetensors_open(path, err, sizeof err);
    CHECK(st != NULL, "hand-built file opens");
    if (!st) {
        printf("    %s\n", err);
        return;
    }
    const safetensors_tensor *a = safetensors_find(st, "a"), *b = safetensors_find(st, "b");
    float av[2];
    if (a) memcpy(av, a->data, 8);
    CHECK(safetensors_count(st) == 2 && a && b && a->dtype == SAFETENSORS_F32 && a->ndim == 1 && a->shape[0] == 2 &&
              av[0] == 1.0f && av[1] == -2.0f,
          "hand-built: F32 tensor name/dtype/shape/data");
    CHECK(b && b->dtype == SAFETENSORS_U8 && b->ndim == 2 && b->shape[1] == 3 && b->nbytes == 3 &&
              ((const unsigned char *)b->data)[2] == 9,
          "hand-built: U8 tensor");
    CHECK(safetensors_metadata_count(st) == 1 && strcmp(safetensors_metadata_get(st, "k"), "v") == 0,
          "hand-built: __metadata__ pairs");
    CHECK(safetensors_aligned(st), "hand-built: data section 8-byte aligned");
    CHECK(safetensors_find(st, "c") == NULL && safetensors_at(st, 0) == safetensors_find(st, "a"),
          "lookup of absent name is NULL; header order kept");
    safetensors_close(st);
}

static void test_roundtrip(void)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    float f32[6] = {1, 2, 3, 4, 5, 6.5f};
    double f64[2] = {3.14159265358979, -1e300};
    uint16_t f16[3] = {0x3c00, 0xc000, 0x7bff}, bf16[2] = {0x3f80, 0x4049};
    int64_t i64[2] = {-5, 1ll << 40};
    int32_t i32[3] = {-1, 0, 7};
    uint8_t u8[5] = {1, 2, 3, 4, 5};
    float scalar = 42.0f;
    int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s5[1] = {5}, s0[2] = {0, 4};
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_add_f32(w, "layer.weight", 2, s23, f32);
    safetensors_writer_add(w, "f64", SAFETENSORS_F64, 1, s2, f64);
    safetensors_writer_add(w, "f16", SAFETENSORS_F16, 1, s3, f16);
    safetensors_writer_add(w, "bf16", SAFETENSORS_BF16, 1, s2, bf16);
    safetensors_writer_add(w, "i64", SAFETENSORS_I64, 1, s2, i64);
    safetensors_writer_add(w, "i32", SAFETENSORS_I32, 1, s3, i32);
    safetensors_writer_add(w, "u8", SAFETENSORS_U8, 1, s5, u8);
    safetensors_writer_add_f32(w, "scalar", 0, NULL, &scalar);
    safetensors_writer_add_f32(w, "empty", 2, s0, NULL);
    safetensors_writer_add_f32(w, "we\"ird\\name\n\x01", 1, s2, f32);
    safetensors_writer_metadata(w, "format", "pt");
    safetensors_writer_metadata(w, "quote\"key", "line1\nline2\ttab \\ \xc3\xa9");
    CHECK(safetensors_writer_write(w, path, err, sizeof err) == 0, "writer writes");
    safetensors_writer_free(w);
    char *tmpname = io_tmp_path(path);
    CHECK(access(tmpname, F_OK) != 0, "writer leaves no temp file behind (temp + rename)");
    free(tmpname);
    safetensors *st = safetensors_open(path, err, sizeof err);
    CHECK(st != NULL, "round trip: file opens");
    if (!st) {
        printf("    %s\n", err);
        return;
    }
    const safetensors_tensor *t;
    int ok = safetensors_count(st) == 10;
    ok &= (t = safetensors_find(st, "layer.weight")) && t->ndim == 2 && t->shape[0] == 2 && !memcmp(t->data, f32, 24);
    ok &= (t = safetensors_find(st, "f64")) && t->dtype == SAFETENSORS_F64 && !memcmp(t->data, f64, 16);
    ok &= (t = safetensors_find(st, "f16")) && t->dtype == SAFETENSORS_F16 && !memcmp(t->data, f16, 6);
    ok &= (t = safetensors_find(st, "bf16")) && t->dtype == SAFETENSORS_BF16 && !memcmp(t->data, bf16, 4);
    ok &= (t = safetensors_find(st, "i64")) && t->dtype == SAFETENSORS_I64 && !memcmp(t->data, i64, 16);
    ok &= (t = safetensors_find(st, "i32")) && t->dtype == SAFETENSORS_I32 && !memcmp(t->data, i32, 12);
    ok &= (t = safetensors_find(st, "u8")) && t->dtype == SAFETENSORS_U8 && !memcmp(t->data, u8, 5);
    CHECK(ok, "round trip: every dtype bitwise");
    t = safetensors_find(st, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && *(const float *)t->data == 42.0f, "round trip: 0-d tensor");
    t = safetensors_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->numel == 0 && t->nbytes == 0, "round trip: empty tensor");
    CHECK(safetensors_find(st, "we\"ird\\name\n\x01") != NULL, "round trip: name with quotes/escapes/control chars");
    const char *v = safetensors_metadata_get(st, "quote\"key");
    CHECK(v && strcmp(v, "line1\nline2\ttab \\ \xc3\xa9") == 0 && strcmp(safetensors_metadata_get(st, "format"), "pt") == 0,
          "round trip: __metadata__ with escapes and UTF-8");
    CHECK(safetensors_aligned(st), "writer pads the header: data section 8-byte aligned");
    /* every tensor at a multiple of its own dtype size (issue 11: UBSan flagged the 0-d F32 load above, which
     * followed the odd-sized F16 tensor), with the header still in the order the tensors were added */
    int aligned = 1;
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const safetensors_tensor *ti = safetensors_at(st, i);
        aligned &= ((uintptr_t)ti->data % safetensors_dtype_size(ti->dtype)) == 0;
    }
    CHECK(aligned, "writer: every tensor's data aligned to its dtype size");
    CHECK(strcmp(safetensors_at(st, 0)->name, "layer.weight") == 0 && strcmp(safetensors_at(st, 1)->name, "f64") == 0,
          "writer: header keeps the insertion order");
    CHECK(safetensors_checksummed(st) && safetensors_metadata_get(st, SAFETENSORS_CHECKSUM_KEY),
          "writer records a checksum; the reader verified it");
    safetensors_close(st);
}

/* A bit flip anywhere in a checkpoint we wrote is caught by the checksum in __metadata__ (issue 11). */
static void test_checksum(void)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = 0.01f * (float)i;
    int64_t s64[1] = {64};
    safetensors_writer *wr = safetensors_writer_alloc();
    safetensors_writer_add_f32(wr, "w", 1, s64, w);
    safetensors_writer_add_f32(wr, "ema.w", 1, s64, w);
    safetensors_writer_metadata(wr, "format", "pt");
    safetensors_writer_metadata(wr, SAFETENSORS_CHECKSUM_KEY, "00000000");   /* replaced by the real one */
    CHECK(safetensors_writer_write(wr, path, err, sizeof err) == 0, "checksum: writer writes");
    safetensors_writer_free(wr);
    FILE *f = fopen(path, "rb");
    static unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    safetensors *st = safetensors_open_memory(buf, n, "mem", err, sizeof err);
    CHECK(st && safetensors_checksummed(st), "checksum: a stale checksum entry is replaced by the file's own");
    safetensors_close(st);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = (hl << 8) | buf[k];
    /* one bit of one float in the data section */
    static unsigned char b2[4096];
    memcpy(b2, buf, n);
    b2[8 + hl + 4 * 37 + 1] ^= 0x10;
    snprintf(path, sizeof path, "%s/flip.safetensors", dir);
    write_file(path, b2, n);
    err[0] = 0;
    st = safetensors_open(path, err, sizeof err);
    CHECK(!st && strstr(err, path) && strstr(err, "checksum mismatch") && !strchr(err, '\n'),
          "checksum: a flipped data bit is rejected, naming the file");
    safetensors_close(st);
    /* the value NaN, as the reproducer wrote it */
    memcpy(b2, buf, n);
    float nan_ = NAN;
    memcpy(b2 + 8 + hl + 4 * 3, &nan_, 4);
    st = safetensors_open_memory(b2, n, "mem", err, sizeof err);
    CHECK(!st && strstr(err, "checksum mismatch"), "checksum: a float set to NaN is rejected");
    safetensors_close(st);
    /* a tensor renamed in the header (still valid JSON): "ema.w" -> "ema.v" */
    memcpy(b2, buf, n);
    unsigned char *p = memmem(b2 + 8, hl, "\"ema.w\"", 7);
    if (p) p[5] = 'v';
    st = safetensors_open_memory(b2, n, "mem", err, sizeof err);
    CHECK(p && !st && strstr(err, "checksum mismatch"), "checksum: a changed tensor name is rejected");
    safetensors_close(st);
    /* a malformed checksum value */
    memcpy(b2, buf, n);
    p = memmem(b2 + 8, hl, SAFETENSORS_CHECKSUM_KEY "\":\"", strlen(SAFETENSORS_CHECKSUM_KEY) + 3);
    if (p) p[strlen(SAFETENSORS_CHECKSUM_KEY) + 3] = 'z';
    st = safetensors_open_memory(b2, n, "mem", err, sizeof err);
    CHECK(p && !st && strstr(err, "malformed checksum"), "checksum: a malformed checksum is rejected");
    safetensors_close(st);
}

static void test_unicode(void)
{
    /* \u escapes incl. a surrogate pair decode to UTF-8 */
    const char *hdr = "{\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    unsigned char buf[256], d = 5;
    size_t n = build(buf, hdr, &d, 1);
    char err[256];
    safetensors *st = safetensors_open_memory(buf, n, "mem", err, sizeof err);
    CHECK(st && safetensors_find(st, "\xc3\xa9\xf0\x9f\x98\x80"), "\\u escapes and surrogate pairs decode to UTF-8");
    safetensors_close(st);
    /* unknown keys (any JSON value) are skipped */
    const char *h2 = "{\"a\":{\"x\":[[{\"y\":-1.5e3}],true,null],\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    n = build(buf, h2, &d, 1);
    st = safetensors_open_memory(buf, n, "mem", err, sizeof err);
    CHECK(st && safetensors_count(st) == 1, "unknown tensor keys with nested values are skipped");
    safetensors_close(st);
}

static void test_corrupt(void)
{
    unsigned char d8[8] = {0}, buf[64];
    char path[256], err[512];
    /* too short for the length field */
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    write_file(path, "abc", 3);
    err[0] = 0;
    CHECK(!safetensors_open(path, err, sizeof err) && strstr(err, path) && strstr(err, "too short"),
          "reject file shorter than 8 bytes");
    /* header length beyond the file */
    for (int k = 0; k < 8; k++) buf[k] = 0;
    buf[0] = 200;
    memcpy(buf + 8, "{}", 2);
    snprintf(path, sizeof path, "%s/hlen.safetensors", dir);
    write_file(path, buf, 10);
    err[0] = 0;
    CHECK(!safetensors_open(path, err, sizeof err) && strstr(err, path) && strstr(err, "exceeds the file size"),
          "reject header length beyond file size");
    /* missing file */
    snprintf(path, sizeof path, "%s/nope.safetensors", dir);
    err[0] = 0;
    CHECK(!safetensors_open(path, err, sizeof err) && strstr(err, path) && strstr(err, "cannot open"),
          "reject missing file");
    /* truncated: a valid file cut short -> data section smaller than the tensors */
    const char *ok1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_reject("truncated", ok1, d8, 5, "outside");
    expect_reject("notjson", "xyz", NULL, 0, "does not start with '{'");
    expect_reject("badjson1", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d8, 8, "bad JSON");
    expect_reject("badjson2", "{\"a\" {}}", NULL, 0, "bad JSON");
    expect_reject("badjson3", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", d8, 8, "bad JSON");
    expect_reject("badjson4", "{\"a\\q\":{}}", NULL, 0, "bad escape");
    expect_reject("trailing", "{} x", NULL, 0, "after the JSON value");
    expect_reject("dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", d8, 2,
                  "unsupported dtype");
    expect_reject("offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,10]}}", d8, 8, "outside");
    expect_reject("reversed", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", d8, 8, "outside");
    expect_reject("sizemismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d8, 8,
                  "size mismatch");
    expect_reject("overlap",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
                  d8, 8, "overlaps");
    expect_reject("hole", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", d8, 8, "hole");
    expect_reject("uncovered", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", d8, 8, "cover");
    expect_reject("duplicate",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
                  d8, 8, "duplicate");
    expect_reject("negative", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-4],\"data_offsets\":[0,4]}}", d8, 4, "negative");
    expect_reject("float", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4.0],\"data_offsets\":[0,4]}}", d8, 4, "integer");
    expect_reject("missingkey", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", d8, 4, "lacks data_offsets");
    expect_reject("metavalue", "{\"__metadata__\":{\"k\":1}}", NULL, 0, "not a string");
    expect_reject("overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
                  d8, 8, "overflow");
}

/* A header that quotes a decoded "\n" (an escaped newline in a key) back in its error: found by fuzz_safetensors.
 * Every rejection must stay ONE line whatever bytes the file holds. */
static void test_error_one_line(void)
{
    static const unsigned char crash[] = {0x18, 0, 0, 0, 0, 0, 0, 0, '{', '"', '_', 0xdf, 0x93, 'e', '\\', '\n',
                                          'd', 'a', '0', '6', ',', '"', 's', '"', ':', ' ', '}', '}', ' ', ' ', ' ', ' '};
    char err[512] = "";
    safetensors *st = safetensors_open_memory(crash, sizeof crash, "fuzz-case", err, sizeof err);
    CHECK(st == NULL && err[0] && !strchr(err, '\n'), "error quoting an escaped newline from the header stays one line");
    if (st) safetensors_close(st);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    if (!mkdtemp(dir)) LOG_FATAL("mkdtemp failed");
    test_handbuilt();
    test_error_one_line();
    test_roundtrip();
    test_checksum();
    test_unicode();
    test_corrupt();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
    return test_finish();
}
