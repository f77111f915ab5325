/* safetensors: validated mmap reader and atomic writer (see safetensors.h). The header is parsed by common/json
 * (the project's one JSON reader) and then checked against the safetensors schema. */
#include "safetensors.h"
#include "io.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define ST_HEADER_MAX (100u * 1000u * 1000u)   /* the reference implementation's limit */
#define ST_DEPTH_MAX 64

static const char *const dtype_names[SAFETENSORS_NDTYPE] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8"};
static const size_t dtype_sizes[SAFETENSORS_NDTYPE] = {4, 2, 2, 8, 8, 4, 1};

const char *safetensors_dtype_name(safetensors_dtype d)
{
    return (unsigned)d < SAFETENSORS_NDTYPE ? dtype_names[d] : "?";
}
size_t safetensors_dtype_size(safetensors_dtype d) { return (unsigned)d < SAFETENSORS_NDTYPE ? dtype_sizes[d] : 0; }

int safetensors_dtype_parse(const char *s, safetensors_dtype *d)
{
    for (int i = 0; i < SAFETENSORS_NDTYPE; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *d = (safetensors_dtype)i;
            return 0;
        }
    return -1;
}

struct safetensors {
    const unsigned char *buf;
    size_t len;
    int mapped;
    size_t n, cap;
    safetensors_tensor *t;
    size_t *sorted;             /* tensor indices sorted by name, for bsearch */
    size_t nmeta, capmeta;
    char **mkey, **mval;
    int aligned;
    int checksummed;            /* the file carried SAFETENSORS_CHECKSUM_KEY and it matched */
};

/* ---------------------------------------------------------------- checksum
 * CRC-32 (zlib) of a canonical form of the header -- every tensor's name, dtype, shape and offsets in header
 * order, every metadata pair but the checksum's own -- followed by the data section. The writer and the reader
 * build it from the same fields, so any change to a tensor's description or bytes, or to a metadata value,
 * changes it; the JSON's spacing does not. */
typedef struct {
    uLong crc;
} st_crc;

static void crc_put(st_crc *c, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {   /* zlib takes uInt lengths */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c->crc = crc32(c->crc, b, k);
        b += k;
        n -= k;
    }
}

static void crc_tensor(st_crc *c, const char *name, safetensors_dtype dt, int ndim, const int64_t *shape,
                       uint64_t begin, uint64_t end)
{
    char buf[64];
    crc_put(c, name, strlen(name) + 1);
    crc_put(c, dtype_names[dt], strlen(dtype_names[dt]) + 1);
    for (int d = 0; d < ndim; d++) crc_put(c, buf, (size_t)snprintf(buf, sizeof buf, "%lld,", (long long)shape[d]));
    crc_put(c, buf, (size_t)snprintf(buf, sizeof buf, "[%llu,%llu]\n", (unsigned long long)begin,
                                      (unsigned long long)end));
}

static void crc_meta(st_crc *c, const char *key, const char *val)
{
    crc_put(c, key, strlen(key) + 1);
    crc_put(c, val, strlen(val) + 1);
}

/* ---------------------------------------------------------------- JSON */

/* ---------------------------------------------------------------- reader */

typedef struct {
    uint64_t begin, end;
} span;

static void st_free_tables(safetensors *st)
{
    for (size_t i = 0; i < st->n; i++) free((char *)st->t[i].name);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->mkey[i]);
        free(st->mval[i]);
    }
    free(st->t);
    free(st->sorted);
    free(st->mkey);
    free(st->mval);
}

void safetensors_close(safetensors *st)
{
    if (!st) return;
    st_free_tables(st);
    if (st->mapped && st->len) munmap((void *)st->buf, st->len);
    free(st);
}

/* The header is read by the project's one JSON reader (json.h: strict RFC 8259, duplicate keys rejected, depth
 * and size bounded); its messages name the file and say "bad JSON header: line L, column C: why". What follows
 * checks the safetensors schema on the tree. Strings that become names or metadata must not hold \u0000 (C strings
 * here). */

static int st_cstring(const json_value *v, const char *what, const char *name, const char *label, char *err,
                      size_t errlen, char **out)
{
    if (!v || v->type != JSON_STRING) {
        log_errf(err, errlen, label, "bad JSON header: %s%s%s is not a string", what, name ? " of " : "",
                 name ? name : "");
        return -1;
    }
    if (strlen(v->u.str.s) != v->u.str.len) {
        log_errf(err, errlen, label, "bad JSON header: \\u0000 in %s", what);
        return -1;
    }
    *out = mem_strdup(v->u.str.s);
    return 0;
}

/* a size or offset: a non-negative integer literal */
static int st_uint(const json_value *v, const char *tname, const char *label, char *err, size_t errlen,
                   uint64_t *out)
{
    if (v && v->type == JSON_NUMBER && v->u.num.is_int && v->u.num.i >= 0) {
        *out = (uint64_t)v->u.num.i;
        return 0;
    }
    log_errf(err, errlen, label, "bad JSON header: tensor '%s': %s", tname,
             v && v->type == JSON_NUMBER && v->u.num.is_int ? "negative integer where a size or offset is expected"
                                                           : "expected an integer (a size or offset)");
    return -1;
}

static int parse_metadata(const json_value *o, safetensors *st, const char *label, char *err, size_t errlen)
{
    if (o->type != JSON_OBJECT) {
        log_errf(err, errlen, label, "bad JSON header: __metadata__ is not an object");
        return -1;
    }
    const size_t n = json_len(o);
    st->mkey = mem_new(char *, n ? n : 1);
    st->mval = mem_new(char *, n ? n : 1);
    st->capmeta = n;
    for (size_t i = 0; i < n; i++) {
        const json_member *mb = json_member_at(o, i);
        char *k = NULL, *v = NULL;
        json_value key = {.type = JSON_STRING, .u.str = {mb->key, mb->keylen}};
        if (st_cstring(&key, "a __metadata__ key", NULL, label, err, errlen, &k)) return -1;
        if (st_cstring(&mb->value, "__metadata__ value", k, label, err, errlen, &v)) {
            free(k);
            return -1;
        }
        st->mkey[st->nmeta] = k;
        st->mval[st->nmeta] = v;
        st->nmeta++;
    }
    return 0;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} ; unknown keys are skipped */
static int parse_tensor(const json_value *o, safetensors_tensor *t, span *sp, const char *label, char *err,
                        size_t errlen)
{
    if (o->type != JSON_OBJECT) {
        log_errf(err, errlen, label, "bad JSON header: tensor '%s' is not an object", t->name);
        return -1;
    }
    const json_value *dt = json_get(o, "dtype"), *sh = json_get(o, "shape"), *off = json_get(o, "data_offsets");
    if (!dt || !sh || !off) {
        log_errf(err, errlen, label, "bad JSON header: tensor '%s' lacks %s", t->name,
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return -1;
    }
    char *v = NULL;
    if (st_cstring(dt, "dtype", t->name, label, err, errlen, &v)) return -1;
    if (safetensors_dtype_parse(v, &t->dtype)) {
        log_errf(err, errlen, label, "tensor '%s': unsupported dtype '%.20s' (want F32 F16 BF16 F64 I64 I32 U8)",
                 t->name, v);
        free(v);
        return -1;
    }
    free(v);
    if (sh->type != JSON_ARRAY) {
        log_errf(err, errlen, label, "bad JSON header: tensor '%s': shape is not an array", t->name);
        return -1;
    }
    if (json_len(sh) > SAFETENSORS_MAX_DIM) {
        log_errf(err, errlen, label, "tensor '%s': more than %d dimensions", t->name, SAFETENSORS_MAX_DIM);
        return -1;
    }
    t->ndim = (int)json_len(sh);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t x;
        if (st_uint(json_at(sh, (size_t)d), t->name, label, err, errlen, &x)) return -1;
        t->shape[d] = (int64_t)x;
    }
    if (off->type != JSON_ARRAY || json_len(off) != 2) {
        log_errf(err, errlen, label, "bad JSON header: tensor '%s': data_offsets must be [begin, end]", t->name);
        return -1;
    }
    if (st_uint(json_at(off, 0), t->name, label, err, errlen, &sp->begin) ||
        st_uint(json_at(off, 1), t->name, label, err, errlen, &sp->end))
        return -1;
    return 0;
}

static int cmp_name(const void *a, const void *b, void *ctx)
{
    const safetensors *st = ctx;
    return strcmp(st->t[*(const size_t *)a].name, st->t[*(const size_t *)b].name);
}
static int cmp_span(const void *a, const void *b, void *ctx)
{
    const span *sp = ctx;
    const span *x = &sp[*(const size_t *)a], *y = &sp[*(const size_t *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static safetensors *st_parse(safetensors *st, const char *label, char *err, size_t errlen)
{
    const unsigned char *b = st->buf;
    if (st->len < 8) {
        log_errf(err, errlen, label, "file too short (%zu bytes) to hold the 8-byte header length", st->len);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | b[k];
    if (hlen > st->len - 8) {
        log_errf(err, errlen, label, "header length %llu exceeds the file size (%zu bytes): truncated or corrupt",
                (unsigned long long)hlen, st->len);
        return NULL;
    }
    if (hlen > ST_HEADER_MAX) {
        log_errf(err, errlen, label, "header length %llu exceeds the %u-byte limit", (unsigned long long)hlen,
                ST_HEADER_MAX);
        return NULL;
    }
    if (hlen < 2 || b[8] != '{') {
        log_errf(err, errlen, label, "header does not start with '{' (not a safetensors file?)");
        return NULL;
    }
    const size_t data_off = 8 + (size_t)hlen, data_len = st->len - data_off;
    st->aligned = (data_off % 8) == 0 && ((uintptr_t)b % 8) == 0;
    span *spans = NULL;
    char *jlabel = mem_new(char, strlen(label) + 20);
    sprintf(jlabel, "%s: bad JSON header", label);
    json_doc *doc = json_parse_limits((const char *)b + 8, (size_t)hlen, jlabel, ST_DEPTH_MAX, ST_HEADER_MAX, err,
                                      errlen);
    free(jlabel);
    if (!doc) return NULL;
    const json_value *root = json_root(doc);
    int bad = root->type != JSON_OBJECT;
    if (bad) log_errf(err, errlen, label, "header is not a JSON object");
    const size_t nmem = bad ? 0 : json_len(root);
    st->t = mem_new(safetensors_tensor, nmem ? nmem : 1);
    st->cap = nmem;
    spans = mem_new(span, nmem ? nmem : 1);
    for (size_t i = 0; i < nmem && !bad; i++) {
        const json_member *mb = json_member_at(root, i);
        if (strcmp(mb->key, "__metadata__") == 0) {
            bad = parse_metadata(&mb->value, st, label, err, errlen) != 0;
            continue;
        }
        safetensors_tensor *t = &st->t[st->n];
        memset(t, 0, sizeof *t);
        json_value key = {.type = JSON_STRING, .u.str = {mb->key, mb->keylen}};
        char *tname = NULL;
        if (st_cstring(&key, "a tensor name", NULL, label, err, errlen, &tname)) {
            bad = 1;
            break;
        }
        t->name = tname;
        st->n++;
        bad = parse_tensor(&mb->value, t, &spans[st->n - 1], label, err, errlen) != 0;
    }
    json_free(doc);
    if (bad) {
        free(spans);
        return NULL;
    }
    /* sizes and ranges */
    for (size_t i = 0; i < st->n; i++) {
        safetensors_tensor *t = &st->t[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel)) {
                log_errf(err, errlen, label, "tensor '%s': element count overflows", t->name);
                free(spans);
                return NULL;
            }
        }
        uint64_t nbytes;
        if (__builtin_mul_overflow(numel, (uint64_t)dtype_sizes[t->dtype], &nbytes)) {
            log_errf(err, errlen, label, "tensor '%s': byte size overflows", t->name);
            free(spans);
            return NULL;
        }
        const span *s = &spans[i];
        if (s->begin > s->end || s->end > data_len) {
            log_errf(err, errlen, label, "tensor '%s': data_offsets [%llu, %llu] outside the %zu-byte data section",
                    t->name, (unsigned long long)s->begin, (unsigned long long)s->end, data_len);
            free(spans);
            return NULL;
        }
        if (s->end - s->begin != nbytes) {
            log_errf(err, errlen, label,
                    "tensor '%s': data_offsets span %llu bytes but %s shape needs %llu (size mismatch)", t->name,
                    (unsigned long long)(s->end - s->begin), dtype_names[t->dtype], (unsigned long long)nbytes);
            free(spans);
            return NULL;
        }
        t->numel = (size_t)numel;
        t->nbytes = (size_t)nbytes;
        t->data = b + data_off + s->begin;
    }
    /* no overlaps, no holes, full coverage */
    size_t *ord = mem_new(size_t, st->n ? st->n : 1);
    for (size_t i = 0; i < st->n; i++) ord[i] = i;
    qsort_r(ord, st->n, sizeof *ord, cmp_span, spans);
    uint64_t pos = 0;
    for (size_t k = 0; k < st->n; k++) {
        const span *s = &spans[ord[k]];
        if (s->begin < pos) {
            log_errf(err, errlen, label, "tensor '%s' overlaps another tensor's data (bytes %llu..%llu)",
                    st->t[ord[k]].name, (unsigned long long)s->begin, (unsigned long long)pos);
            free(ord);
            free(spans);
            return NULL;
        }
        if (s->begin > pos) {
            log_errf(err, errlen, label, "hole in the data section before tensor '%s' (bytes %llu..%llu unused)",
                    st->t[ord[k]].name, (unsigned long long)pos, (unsigned long long)s->begin);
            free(ord);
            free(spans);
            return NULL;
        }
        pos = s->end;
    }
    free(ord);
    free(spans);
    if (pos != data_len) {
        log_errf(err, errlen, label, "data section has %zu bytes but the tensors cover %llu", data_len,
                (unsigned long long)pos);
        return NULL;
    }
    /* name index, duplicates */
    st->sorted = mem_new(size_t, st->n ? st->n : 1);
    for (size_t i = 0; i < st->n; i++) st->sorted[i] = i;
    qsort_r(st->sorted, st->n, sizeof *st->sorted, cmp_name, st);
    for (size_t k = 1; k < st->n; k++)
        if (strcmp(st->t[st->sorted[k]].name, st->t[st->sorted[k - 1]].name) == 0) {
            log_errf(err, errlen, label, "duplicate tensor name '%s'", st->t[st->sorted[k]].name);
            return NULL;
        }
    for (size_t a = 0; a < st->nmeta; a++)
        for (size_t c = a + 1; c < st->nmeta; c++)
            if (strcmp(st->mkey[a], st->mkey[c]) == 0) {
                log_errf(err, errlen, label, "duplicate __metadata__ key '%s'", st->mkey[a]);
                return NULL;
            }
    const char *want = safetensors_metadata_get(st, SAFETENSORS_CHECKSUM_KEY);
    if (want) {
        char *end;
        errno = 0;
        unsigned long w = strtoul(want, &end, 16);
        if (errno || end == want || *end || strlen(want) != 8) {
            log_errf(err, errlen, label, "malformed checksum '%s' in __metadata__", want);
            return NULL;
        }
        st_crc c = {crc32(0L, Z_NULL, 0)};
        for (size_t i = 0; i < st->n; i++) {
            const safetensors_tensor *t = &st->t[i];
            uint64_t begin = (uint64_t)((const unsigned char *)t->data - (b + data_off));
            crc_tensor(&c, t->name, t->dtype, t->ndim, t->shape, begin, begin + t->nbytes);
        }
        for (size_t i = 0; i < st->nmeta; i++)
            if (strcmp(st->mkey[i], SAFETENSORS_CHECKSUM_KEY) != 0) crc_meta(&c, st->mkey[i], st->mval[i]);
        crc_put(&c, b + data_off, data_len);
        if ((unsigned long)c.crc != w) {
            log_errf(err, errlen, label,
                     "checksum mismatch (crc32 %08lx, the file records %s): the file is damaged (a changed byte or "
                     "tensor entry)", (unsigned long)c.crc, want);
            return NULL;
        }
        st->checksummed = 1;
    }
    return st;
}

safetensors *safetensors_open_memory(const void *buf, size_t len, const char *label, char *err, size_t errlen)
{
    safetensors *st = mem_calloc(1, sizeof *st);
    st->buf = buf;
    st->len = len;
    if (!st_parse(st, label, err, errlen)) {
        if (err && errlen) log_one_line(err);
        safetensors_close(st);
        return NULL;
    }
    return st;
}

safetensors *safetensors_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        log_errf(err, errlen, path, "not a regular file");
        close(fd);
        return NULL;
    }
    safetensors *st = mem_calloc(1, sizeof *st);
    st->len = (size_t)sb.st_size;
    if (st->len >= 8) {
        void *m = mmap(NULL, st->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            log_errf(err, errlen, path, "mmap failed: %s", strerror(errno));
            close(fd);
            free(st);
            return NULL;
        }
        st->buf = m;
        st->mapped = 1;
    } else {
        st->buf = (const unsigned char *)"";
    }
    close(fd);
    if (!st_parse(st, path, err, errlen)) {
        if (err && errlen) log_one_line(err);
        safetensors_close(st);
        return NULL;
    }
    return st;
}

size_t safetensors_count(const safetensors *st) { return st->n; }
const safetensors_tensor *safetensors_at(const safetensors *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }
int safetensors_aligned(const safetensors *st) { return st->aligned; }
int safetensors_checksummed(const safetensors *st) { return st->checksummed; }

const safetensors_tensor *safetensors_find(const safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->t[st->sorted[mid]].name, name);
        if (c == 0) return &st->t[st->sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t safetensors_metadata_count(const safetensors *st) { return st->nmeta; }
const char *safetensors_metadata_key(const safetensors *st, size_t i) { return i < st->nmeta ? st->mkey[i] : NULL; }
const char *safetensors_metadata_value(const safetensors *st, size_t i)
{
    return i < st->nmeta ? st->mval[i] : NULL;
}
const char *safetensors_metadata_get(const safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->mkey[i], key) == 0) return st->mval[i];
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIM];
    const void *data;
    size_t nbytes;
} st_wtensor;

struct safetensors_writer {
    size_t n, cap;
    st_wtensor *t;
    size_t nmeta, capmeta;
    char **mkey, **mval;
};

safetensors_writer *safetensors_writer_alloc(void) { return mem_calloc(1, sizeof(safetensors_writer)); }

void safetensors_writer_free(safetensors_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

void safetensors_writer_add(safetensors_writer *w, const char *name, safetensors_dtype dtype, int ndim,
                            const int64_t *shape, const void *data)
{
    LOG_CHECK((unsigned)dtype < SAFETENSORS_NDTYPE, "safetensors writer: bad dtype %d", (int)dtype);
    LOG_CHECK(ndim >= 0 && ndim <= SAFETENSORS_MAX_DIM, "safetensors writer: '%s' has %d dims", name, ndim);
    LOG_CHECK(strcmp(name, "__metadata__") != 0, "safetensors writer: reserved tensor name");
    for (size_t i = 0; i < w->n; i++) LOG_CHECK(strcmp(w->t[i].name, name) != 0, "duplicate tensor '%s'", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->t = mem_realloc(w->t, w->cap * sizeof *w->t);
    }
    st_wtensor *t = &w->t[w->n++];
    t->name = mem_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        LOG_CHECK(shape[d] >= 0, "safetensors writer: '%s' has a negative dimension", name);
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->data = data;
    t->nbytes = numel * dtype_sizes[dtype];
}

void safetensors_writer_add_f32(safetensors_writer *w, const char *name, int ndim, const int64_t *shape,
                                const float *data)
{
    safetensors_writer_add(w, name, SAFETENSORS_F32, ndim, shape, data);
}

void safetensors_writer_metadata(safetensors_writer *w, const char *key, const char *value)
{
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = mem_strdup(value);
            return;
        }
    if (w->nmeta == w->capmeta) {
        w->capmeta = w->capmeta ? 2 * w->capmeta : 8;
        w->mkey = mem_realloc(w->mkey, w->capmeta * sizeof *w->mkey);
        w->mval = mem_realloc(w->mval, w->capmeta * sizeof *w->mval);
    }
    w->mkey[w->nmeta] = mem_strdup(key);
    w->mval[w->nmeta] = mem_strdup(value);
    w->nmeta++;
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        while (b->n + len + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = mem_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}
static void sb_json_string(sbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"') sb_puts(b, "\\\"");
        else if (*c == '\\') sb_puts(b, "\\\\");
        else if (*c == '\n') sb_puts(b, "\\n");
        else if (*c == '\t') sb_puts(b, "\\t");
        else if (*c == '\r') sb_puts(b, "\\r");
        else if (*c < 0x20) sb_printf(b, "\\u%04x", *c);
        else sb_put(b, (const char *)c, 1);
    }
    sb_puts(b, "\"");
}

/* Data order: by dtype size, largest first, then in insertion order. Each tensor's size is a multiple of its
 * dtype size, and every size is a power of two, so every tensor then starts at a multiple of its own dtype size
 * from the (8-byte aligned) data section: aligned loads for every dtype with no padding, which the format
 * cannot express (it forbids holes). */
static int cmp_wsize(const void *a, const void *b, void *ctx)
{
    const safetensors_writer *w = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t si = dtype_sizes[w->t[i].dtype], sj = dtype_sizes[w->t[j].dtype];
    if (si != sj) return si > sj ? -1 : 1;
    return i < j ? -1 : i > j;
}

int safetensors_writer_write(const safetensors_writer *w, const char *path, char *err, size_t errlen)
{
    size_t *ord = mem_new(size_t, w->n ? w->n : 1);
    uint64_t *off = mem_new(uint64_t, w->n ? w->n : 1);
    for (size_t i = 0; i < w->n; i++) ord[i] = i;
    qsort_r(ord, w->n, sizeof *ord, cmp_wsize, (void *)w);
    uint64_t pos = 0;
    for (size_t k = 0; k < w->n; k++) {
        off[ord[k]] = pos;
        pos += w->t[ord[k]].nbytes;
    }
    st_crc crc = {crc32(0L, Z_NULL, 0)};
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        crc_tensor(&crc, t->name, t->dtype, t->ndim, t->shape, off[i], off[i] + t->nbytes);
    }
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], SAFETENSORS_CHECKSUM_KEY) != 0) crc_meta(&crc, w->mkey[i], w->mval[i]);
    for (size_t k = 0; k < w->n; k++)
        if (w->t[ord[k]].nbytes) crc_put(&crc, w->t[ord[k]].data, w->t[ord[k]].nbytes);
    char crc_hex[16];
    snprintf(crc_hex, sizeof crc_hex, "%08lx", (unsigned long)crc.crc);

    sbuf h = {0};
    sb_puts(&h, "{\"__metadata__\":{");
    int firstm = 1;
    for (size_t i = 0; i < w->nmeta; i++) {
        if (strcmp(w->mkey[i], SAFETENSORS_CHECKSUM_KEY) == 0) continue;   /* recomputed below */
        if (!firstm) sb_puts(&h, ",");
        firstm = 0;
        sb_json_string(&h, w->mkey[i]);
        sb_puts(&h, ":");
        sb_json_string(&h, w->mval[i]);
    }
    if (!firstm) sb_puts(&h, ",");
    sb_json_string(&h, SAFETENSORS_CHECKSUM_KEY);
    sb_puts(&h, ":");
    sb_json_string(&h, crc_hex);
    sb_puts(&h, "}");
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        sb_puts(&h, ",");
        sb_json_string(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t->dtype]);
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off[i],
                  (unsigned long long)(off[i] + t->nbytes));
    }
    sb_puts(&h, "}");
    while ((8 + h.n) % 8) sb_puts(&h, " ");   /* align the data section to 8 bytes */

    char *tmp = io_tmp_path(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        log_errf(err, errlen, path, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(h.s);
        free(ord);
        free(off);
        return -1;
    }
    unsigned char lenb[8];
    uint64_t hl = h.n;
    for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)(hl >> (8 * k));
    int bad = fwrite(lenb, 1, 8, f) != 8 || fwrite(h.s, 1, h.n, f) != h.n;
    for (size_t k = 0; k < w->n && !bad; k++) {
        const st_wtensor *t = &w->t[ord[k]];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes) bad = 1;
    }
    int e = bad ? (errno ? errno : EIO) : 0;
    /* data synced before the rename, and the rename synced after: a crash leaves the old file or the new one */
    if (io_close_durable(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && io_rename_durable(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        log_errf(err, errlen, path, "write failed: %s", strerror(e ? e : EIO));
    }
    free(tmp);
    free(h.s);
    free(ord);
    free(off);
    return bad ? -1 : 0;
}

int safetensors_metadata_long(const safetensors *st, const char *key, long lo, long hi, long *out)
{
    const char *v = safetensors_metadata_get(st, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

int safetensors_metadata_double(const safetensors *st, const char *key, double *out)
{
    const char *v = safetensors_metadata_get(st, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x)) return -1;
    *out = x;
    return 0;
}
