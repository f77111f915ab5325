/* safetensors: validated mmap reader and atomic writer (see safetensors.h).
 * The JSON parser is the minimum a safetensors header needs (objects, arrays, strings with all escapes incl.
 * \uXXXX surrogate pairs, integers; other JSON values are parsed only to be skipped), written as recursive
 * descent with a depth limit, decoding directly into the tensor table rather than building a tree. */
#include "safetensors.h"
#include "io.h"
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

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    char msg[200];
} jp;

static int jp_fail(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jp_fail(jp *p, const char *fmt, ...)
{
    if (p->msg[0]) return -1;   /* keep the first (innermost) reason */
    char m[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(p->msg, sizeof p->msg, "bad JSON header at byte %zu: %s", p->i, m);
    return -1;
}

static void jp_ws(jp *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int jp_expect(jp *p, char c)
{
    jp_ws(p);
    if (p->i >= p->n) return jp_fail(p, "unexpected end, expected '%c'", c);
    if (p->s[p->i] != c) return jp_fail(p, "expected '%c', found '%c'", c, p->s[p->i]);
    p->i++;
    return 0;
}

/* 1 if the next non-space char is c (consumed), 0 otherwise */
static int jp_accept(jp *p, char c)
{
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 1;
    }
    return 0;
}

static int hex4(jp *p, unsigned *out)
{
    if (p->i + 4 > p->n) return jp_fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return jp_fail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

/* Parses a string; if out != NULL stores a malloc'd, NUL-terminated, UTF-8 decoded copy. */
static int jp_string(jp *p, char **out)
{
    if (jp_expect(p, '"')) return -1;
    /* decoded length <= raw length */
    size_t start = p->i, cap = 0;
    while (start + cap < p->n && p->s[start + cap] != '"') cap += (p->s[start + cap] == '\\') ? 2 : 1;
    char *d = out ? mem_alloc(cap + 1) : NULL;
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n) {
            free(d);
            return jp_fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') break;
        if (c < 0x20) {
            free(d);
            return jp_fail(p, "control character in string");
        }
        if (c != '\\') {
            if (d) d[k++] = (char)c;
            continue;
        }
        if (p->i >= p->n) {
            free(d);
            return jp_fail(p, "unterminated escape");
        }
        char e = p->s[p->i++];
        unsigned cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(p, &cp)) {
                free(d);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->i + 2 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    free(d);
                    return jp_fail(p, "unpaired surrogate in \\u escape");
                }
                p->i += 2;
                if (hex4(p, &lo)) {
                    free(d);
                    return -1;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(d);
                    return jp_fail(p, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(d);
                return jp_fail(p, "unpaired surrogate in \\u escape");
            }
            if (cp == 0) {
                free(d);
                return jp_fail(p, "\\u0000 in string");
            }
            break;
        default:
            free(d);
            return jp_fail(p, "bad escape '\\%c'", e);
        }
        if (!d) continue;
        /* UTF-8 encode (a \u escape takes >= 6 raw bytes, its encoding <= 4: fits in cap) */
        if (cp < 0x80) d[k++] = (char)cp;
        else if (cp < 0x800) {
            d[k++] = (char)(0xC0 | (cp >> 6));
            d[k++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            d[k++] = (char)(0xE0 | (cp >> 12));
            d[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            d[k++] = (char)(0x80 | (cp & 0x3F));
        } else {
            d[k++] = (char)(0xF0 | (cp >> 18));
            d[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            d[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            d[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (d) {
        d[k] = 0;
        *out = d;
    }
    return 0;
}

/* A non-negative integer (shape entries and offsets). */
static int jp_uint(jp *p, uint64_t *out)
{
    jp_ws(p);
    if (p->i >= p->n) return jp_fail(p, "unexpected end, expected an integer");
    if (p->s[p->i] == '-') return jp_fail(p, "negative integer where a size or offset is expected");
    if (p->s[p->i] < '0' || p->s[p->i] > '9') return jp_fail(p, "expected an integer");
    uint64_t v = 0;
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned dgt = (unsigned)(p->s[p->i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return jp_fail(p, "integer overflow");
        v = v * 10 + dgt;
        p->i++;
    }
    if (p->s[start] == '0' && p->i - start > 1) return jp_fail(p, "leading zero in integer");
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        return jp_fail(p, "expected an integer, found a fraction or exponent");
    *out = v;
    return 0;
}

static int jp_skip_value(jp *p);

static int jp_skip_number(jp *p)
{
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    size_t d0 = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i == d0) return jp_fail(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        size_t f0 = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == f0) return jp_fail(p, "bad number");
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t e0 = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == e0) return jp_fail(p, "bad number");
    }
    (void)start;
    return 0;
}

static int jp_skip_value(jp *p)
{
    jp_ws(p);
    if (p->i >= p->n) return jp_fail(p, "unexpected end, expected a value");
    char c = p->s[p->i];
    if (c == '"') return jp_string(p, NULL);
    if (c == '{' || c == '[') {
        if (++p->depth > ST_DEPTH_MAX) return jp_fail(p, "nesting deeper than %d", ST_DEPTH_MAX);
        p->i++;
        char close = c == '{' ? '}' : ']';
        if (!jp_accept(p, close)) {
            do {
                if (c == '{') {
                    if (jp_string(p, NULL) || jp_expect(p, ':')) return -1;
                }
                if (jp_skip_value(p)) return -1;
            } while (jp_accept(p, ','));
            if (jp_expect(p, close)) return -1;
        }
        p->depth--;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return jp_skip_number(p);
    static const char *const lits[3] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t L = strlen(lits[k]);
        if (p->i + L <= p->n && memcmp(p->s + p->i, lits[k], L) == 0) {
            p->i += L;
            return 0;
        }
    }
    return jp_fail(p, "unexpected character '%c'", c);
}

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

static int parse_metadata(jp *p, safetensors *st)
{
    if (jp_expect(p, '{')) return -1;
    if (jp_accept(p, '}')) return 0;
    do {
        char *k = NULL, *v = NULL;
        if (jp_string(p, &k)) return -1;
        if (jp_expect(p, ':')) {
            free(k);
            return -1;
        }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] != '"') {
            jp_fail(p, "__metadata__ value of '%s' is not a string", k);
            free(k);
            return -1;
        }
        if (jp_string(p, &v)) {
            free(k);
            return -1;
        }
        if (st->nmeta == st->capmeta) {
            st->capmeta = st->capmeta ? 2 * st->capmeta : 8;
            st->mkey = mem_realloc(st->mkey, st->capmeta * sizeof *st->mkey);
            st->mval = mem_realloc(st->mval, st->capmeta * sizeof *st->mval);
        }
        st->mkey[st->nmeta] = k;
        st->mval[st->nmeta] = v;
        st->nmeta++;
    } while (jp_accept(p, ','));
    return jp_expect(p, '}');
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} ; unknown keys are skipped */
static int parse_tensor(jp *p, safetensors_tensor *t, span *sp)
{
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (jp_expect(p, '{')) return -1;
    if (!jp_accept(p, '}')) {
        do {
            char *k = NULL;
            if (jp_string(p, &k)) return -1;
            if (jp_expect(p, ':')) {
                free(k);
                return -1;
            }
            if (strcmp(k, "dtype") == 0) {
                char *v = NULL;
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] != '"') {
                    free(k);
                    return jp_fail(p, "tensor '%s': dtype is not a string", t->name);
                }
                if (jp_string(p, &v)) {
                    free(k);
                    return -1;
                }
                if (safetensors_dtype_parse(v, &t->dtype)) {
                    jp_fail(p, "tensor '%s': unsupported dtype '%.20s' (want F32 F16 BF16 F64 I64 I32 U8)",
                            t->name, v);
                    free(v);
                    free(k);
                    return -1;
                }
                free(v);
                have_dtype = 1;
            } else if (strcmp(k, "shape") == 0) {
                if (jp_expect(p, '[')) {
                    free(k);
                    return -1;
                }
                t->ndim = 0;
                if (!jp_accept(p, ']')) {
                    do {
                        uint64_t v;
                        if (t->ndim == SAFETENSORS_MAX_DIM) {
                            free(k);
                            return jp_fail(p, "tensor '%s': more than %d dimensions", t->name,
                                           SAFETENSORS_MAX_DIM);
                        }
                        if (jp_uint(p, &v)) {
                            free(k);
                            return -1;
                        }
                        if (v > (uint64_t)INT64_MAX) {
                            free(k);
                            return jp_fail(p, "tensor '%s': dimension too large", t->name);
                        }
                        t->shape[t->ndim++] = (int64_t)v;
                    } while (jp_accept(p, ','));
                    if (jp_expect(p, ']')) {
                        free(k);
                        return -1;
                    }
                }
                have_shape = 1;
            } else if (strcmp(k, "data_offsets") == 0) {
                if (jp_expect(p, '[') || jp_uint(p, &sp->begin) || jp_expect(p, ',') || jp_uint(p, &sp->end) ||
                    jp_expect(p, ']')) {
                    free(k);
                    return jp_fail(p, "tensor '%s': data_offsets must be [begin, end]", t->name);
                }
                have_off = 1;
            } else if (jp_skip_value(p)) {
                free(k);
                return -1;
            }
            free(k);
        } while (jp_accept(p, ','));
        if (jp_expect(p, '}')) return -1;
    }
    if (!have_dtype || !have_shape || !have_off)
        return jp_fail(p, "tensor '%s' lacks %s", t->name,
                       !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
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
    jp p = {(const char *)b + 8, (size_t)hlen, 0, 0, {0}};
    span *spans = NULL;
    size_t capspan = 0;
    int bad = 0;
    if (jp_expect(&p, '{')) bad = 1;
    if (!bad && !jp_accept(&p, '}')) {
        do {
            char *key = NULL;
            if (jp_string(&p, &key) || jp_expect(&p, ':')) {
                free(key);
                bad = 1;
                break;
            }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (st->nmeta) {
                    jp_fail(&p, "duplicate __metadata__");
                    bad = 1;
                    break;
                }
                if (parse_metadata(&p, st)) {
                    bad = 1;
                    break;
                }
                continue;
            }
            if (st->n == st->cap) {
                st->cap = st->cap ? 2 * st->cap : 64;
                st->t = mem_realloc(st->t, st->cap * sizeof *st->t);
            }
            if (st->n == capspan) {
                capspan = st->cap;
                spans = mem_realloc(spans, capspan * sizeof *spans);
            }
            safetensors_tensor *t = &st->t[st->n];
            memset(t, 0, sizeof *t);
            t->name = key;
            st->n++;
            if (parse_tensor(&p, t, &spans[st->n - 1])) {
                bad = 1;
                break;
            }
        } while (jp_accept(&p, ','));
        if (!bad && jp_expect(&p, '}')) bad = 1;
    }
    if (!bad) {
        jp_ws(&p);
        if (p.i != p.n) {
            jp_fail(&p, "trailing characters after the header object");
            bad = 1;
        }
    }
    if (bad) {
        log_errf(err, errlen, label, "%s", p.msg);
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
