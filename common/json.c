/* json: strict RFC 8259 DOM reader (see json.h for what is accepted and why).
 * Recursive descent with a depth bound. Containers are built on one scratch stack of members (array items use
 * only the value field) and copied into the document's arena when they close, so each container is one
 * contiguous block and nothing is reallocated after it is handed out. */
#include "json.h"
#include "log.h"
#include "mem.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- arena: chunks of at least 64 KiB, 16-byte aligned allocations, freed together ---- */
typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} chunk;

struct json_doc {
    chunk *chunks;
    json_value root;
    char *label;
};

static void *arena_alloc(json_doc *d, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!d->chunks || d->chunks->cap - d->chunks->used < n) {
        size_t cap = n > ((size_t)64 << 10) ? n : ((size_t)64 << 10);
        chunk *c = mem_alloc(sizeof(chunk) + cap);
        c->next = d->chunks;
        c->cap = cap;
        c->used = 0;
        d->chunks = c;
    }
    void *p = d->chunks->data + d->chunks->used;
    d->chunks->used += n;
    return p;
}

/* ---- parser state ---- */
typedef struct {
    const unsigned char *s, *end, *p;
    const char *label;
    int depth, max_depth;
    json_doc *doc;
    json_member *stack;          /* scratch members of all open containers */
    size_t sn, scap;
    char *buf;                   /* scratch for one decoded string */
    size_t bn, bcap;
    char *err;
    size_t errlen;
    int failed;
} parser;

static void fail_at(parser *ps, const unsigned char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(parser *ps, const unsigned char *at, const char *fmt, ...)
{
    if (ps->failed) return;
    ps->failed = 1;
    long line = 1, col = 1;
    for (const unsigned char *q = ps->s; q < at && q < ps->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if ((*q & 0xC0) != 0x80) {   /* columns count characters, not UTF-8 continuation bytes */
            col++;
        }
    }
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    log_errf(ps->err, ps->errlen, ps->label, "line %ld, column %ld: %s", line, col, why);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static void buf_put(parser *ps, const void *src, size_t n)
{
    if (ps->bn + n + 1 > ps->bcap) {
        size_t cap = ps->bcap ? ps->bcap : 256;
        while (cap < ps->bn + n + 1) cap *= 2;
        ps->buf = mem_realloc(ps->buf, cap);
        ps->bcap = cap;
    }
    memcpy(ps->buf + ps->bn, src, n);
    ps->bn += n;
}

/* Length of the valid UTF-8 sequence starting at p (1..4), or 0 if it is not valid (truncated, stray
 * continuation byte, overlong form, UTF-16 surrogate, or above U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;           /* overlong */
        if (c == 0xED) hi = 0x9F;           /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;           /* overlong */
        if (c == 0xF4) hi = 0x8F;           /* above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return n;
}

size_t json_utf8_encode(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(parser *ps, const unsigned char *at, unsigned *out)
{
    if (ps->end - at < 4) {
        fail_at(ps, at, "truncated \\u escape");
        return -1;
    }
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = at[k], h;
        if (c >= '0' && c <= '9') h = c - '0';
        else if (c >= 'a' && c <= 'f') h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') h = c - 'A' + 10;
        else {
            fail_at(ps, at + k, "bad hex digit in \\u escape");
            return -1;
        }
        v = v * 16 + h;
    }
    *out = v;
    return 0;
}

/* At the opening quote. Decodes into ps->buf, then copies into the arena. */
static int parse_string(parser *ps, const char **out, size_t *outlen)
{
    const unsigned char *start = ps->p;
    ps->p++;
    ps->bn = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            fail_at(ps, start, "unterminated string");
            return -1;
        }
        unsigned c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            fail_at(ps, ps->p, "raw control character 0x%02x in string (must be escaped)", c);
            return -1;
        }
        if (c == '\\') {
            if (ps->end - ps->p < 2) {
                fail_at(ps, ps->p, "truncated escape");
                return -1;
            }
            unsigned e = ps->p[1];
            char ch;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned cp;
                if (hex4(ps, ps->p + 2, &cp)) return -1;
                const unsigned char *esc = ps->p;
                ps->p += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fail_at(ps, esc, "lone low surrogate \\u%04X", cp);
                    return -1;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        fail_at(ps, esc, "high surrogate \\u%04X not followed by a low surrogate", cp);
                        return -1;
                    }
                    if (hex4(ps, ps->p + 2, &lo)) return -1;
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        fail_at(ps, esc, "high surrogate \\u%04X not followed by a low surrogate", cp);
                        return -1;
                    }
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                unsigned char u[4];
                buf_put(ps, u, json_utf8_encode(cp, u));
                continue;
            }
            default:
                fail_at(ps, ps->p, "bad escape '\\%c'", e >= 0x20 && e < 0x7f ? (char)e : '?');
                return -1;
            }
            buf_put(ps, &ch, 1);
            ps->p += 2;
            continue;
        }
        size_t n = utf8_valid_len(ps->p, ps->end);
        if (!n) {
            fail_at(ps, ps->p, "invalid UTF-8 in string");
            return -1;
        }
        buf_put(ps, ps->p, n);
        ps->p += n;
    }
    char *s = arena_alloc(ps->doc, ps->bn + 1);
    if (ps->bn) memcpy(s, ps->buf, ps->bn);
    s[ps->bn] = '\0';
    *out = s;
    *outlen = ps->bn;
    return 0;
}

static int parse_number(parser *ps, json_value *v)
{
    const unsigned char *st = ps->p, *q = ps->p;
    int is_int = 1;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || !(*q >= '0' && *q <= '9')) {
        fail_at(ps, st, "bad number (a digit must follow '-')");
        return -1;
    }
    if (*q == '0') {
        q++;
        if (q < ps->end && *q >= '0' && *q <= '9') {
            fail_at(ps, st, "bad number (leading zero)");
            return -1;
        }
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && *q == '.') {
        is_int = 0;
        q++;
        if (q >= ps->end || !(*q >= '0' && *q <= '9')) {
            fail_at(ps, st, "bad number (a digit must follow '.')");
            return -1;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        is_int = 0;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || !(*q >= '0' && *q <= '9')) {
            fail_at(ps, st, "bad number (a digit must follow the exponent)");
            return -1;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - st);
    char small[64], *tmp = n < sizeof small ? small : mem_alloc(n + 1);   /* strtod needs a terminated copy */
    memcpy(tmp, st, n);
    tmp[n] = '\0';
    errno = 0;
    double d = strtod(tmp, NULL);
    int range = errno == ERANGE && fabs(d) > 1.0;   /* overflow; underflow to 0 or a subnormal is fine */
    v->type = JSON_NUMBER;
    v->u.num.d = d;
    v->u.num.is_int = 0;
    v->u.num.i = 0;
    if (is_int) {
        errno = 0;
        long long i = strtoll(tmp, NULL, 10);
        if (errno != ERANGE) {
            v->u.num.is_int = 1;
            v->u.num.i = (int64_t)i;
        }
    }
    if (tmp != small) free(tmp);
    if (range || !isfinite(d)) {
        fail_at(ps, st, "number out of the double range");
        return -1;
    }
    ps->p = q;
    return 0;
}

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail_at(ps, ps->p, "unexpected character (expected a value)");
        return -1;
    }
    ps->p += n;
    return 0;
}

static void stack_push(parser *ps, const json_member *m)
{
    if (ps->sn == ps->scap) {
        ps->scap = ps->scap ? 2 * ps->scap : 64;
        ps->stack = mem_realloc(ps->stack, ps->scap * sizeof(json_member));
    }
    ps->stack[ps->sn++] = *m;
}

static int key_cmp(const json_member *a, const json_member *b)
{
    size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
    int c = memcmp(a->key, b->key, n);
    if (c) return c;
    return a->keylen < b->keylen ? -1 : a->keylen > b->keylen;
}

static int idx_cmp(const void *x, const void *y, void *base)
{
    const json_member *m = base, *a = &m[*(const uint32_t *)x], *b = &m[*(const uint32_t *)y];
    int c = key_cmp(a, b);
    if (c) return c;
    /* ties by position, so the first duplicate in file order is found first */
    return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

static int parse_value(parser *ps, json_value *v);

static int parse_container(parser *ps, json_value *v, int is_obj)
{
    const unsigned char *open = ps->p;
    if (++ps->depth > ps->max_depth) {
        fail_at(ps, open, "nesting deeper than %d levels", ps->max_depth);
        return -1;
    }
    ps->p++;
    size_t base = ps->sn;
    skip_ws(ps);
    char close = is_obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            json_member m = {0};
            skip_ws(ps);
            if (is_obj) {
                if (ps->p >= ps->end || *ps->p != '"') {
                    fail_at(ps, ps->p, ps->p >= ps->end ? "unexpected end of input (expected an object key)"
                                                        : "expected a string key");
                    return -1;
                }
                if (parse_string(ps, &m.key, &m.keylen)) return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') {
                    fail_at(ps, ps->p, "expected ':' after object key \"%.40s\"", m.key);
                    return -1;
                }
                ps->p++;
                skip_ws(ps);
            }
            if (parse_value(ps, &m.value)) return -1;
            stack_push(ps, &m);
            if (ps->sn - base > UINT32_MAX - 1) {
                fail_at(ps, ps->p, "container too large");
                return -1;
            }
            skip_ws(ps);
            if (ps->p >= ps->end) {
                fail_at(ps, ps->p, "unexpected end of input (expected ',' or '%c')", close);
                return -1;
            }
            if (*ps->p == ',') {
                ps->p++;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == close) {
                    fail_at(ps, ps->p, "trailing comma before '%c'", close);
                    return -1;
                }
                continue;
            }
            if (*ps->p == close) {
                ps->p++;
                break;
            }
            fail_at(ps, ps->p, "expected ',' or '%c'", close);
            return -1;
        }
    }
    size_t n = ps->sn - base;
    if (is_obj) {
        json_member *mem = n ? arena_alloc(ps->doc, n * sizeof *mem) : NULL;
        if (n) memcpy(mem, ps->stack + base, n * sizeof *mem);
        uint32_t *idx = n ? arena_alloc(ps->doc, n * sizeof *idx) : NULL;
        for (size_t k = 0; k < n; k++) idx[k] = (uint32_t)k;
        if (n > 1) {
            qsort_r(idx, n, sizeof *idx, idx_cmp, mem);
            for (size_t k = 1; k < n; k++)
                if (!key_cmp(&mem[idx[k - 1]], &mem[idx[k]])) {
                    fail_at(ps, open, "duplicate key \"%.60s\" in object", mem[idx[k]].key);
                    return -1;
                }
        }
        v->type = JSON_OBJECT;
        v->u.obj.members = mem;
        v->u.obj.n = n;
        v->u.obj.sorted = idx;
    } else {
        json_value *items = n ? arena_alloc(ps->doc, n * sizeof *items) : NULL;
        for (size_t k = 0; k < n; k++) items[k] = ps->stack[base + k].value;
        v->type = JSON_ARRAY;
        v->u.arr.items = items;
        v->u.arr.n = n;
    }
    ps->sn = base;
    ps->depth--;
    return 0;
}

static int parse_value(parser *ps, json_value *v)
{
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end) {
        fail_at(ps, ps->p, "unexpected end of input (expected a value)");
        return -1;
    }
    switch (*ps->p) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"':
        v->type = JSON_STRING;
        return parse_string(ps, &v->u.str.s, &v->u.str.len);
    case 't':
        v->type = JSON_BOOL;
        v->u.boolean = 1;
        return literal(ps, "true");
    case 'f':
        v->type = JSON_BOOL;
        return literal(ps, "false");
    case 'n':
        v->type = JSON_NULL;
        return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, v);
        if (*ps->p == 'N' || *ps->p == 'I')
            fail_at(ps, ps->p, "NaN/Infinity are not JSON");
        else
            fail_at(ps, ps->p, "unexpected character (expected a value)");
        return -1;
    }
}

json_doc *json_parse_limits(const char *text, size_t len, const char *label, int max_depth, size_t max_bytes,
                            char *err, size_t errlen)
{
    if (!label) label = "json";
    if (len > max_bytes) {
        log_errf(err, errlen, label, "%zu bytes is more than the %zu-byte limit for a JSON file", len, max_bytes);
        return NULL;
    }
    json_doc *d = mem_calloc(1, sizeof *d);
    d->label = mem_strdup(label);
    parser ps = {.s = (const unsigned char *)text, .end = (const unsigned char *)text + len,
                 .p = (const unsigned char *)text, .label = d->label, .max_depth = max_depth < 1 ? 1 : max_depth,
                 .doc = d, .err = err, .errlen = errlen};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.p += 3;
    skip_ws(&ps);
    if (ps.p >= ps.end) {
        fail_at(&ps, ps.p, "empty document");
    } else if (!parse_value(&ps, &d->root)) {
        skip_ws(&ps);
        if (ps.p < ps.end) fail_at(&ps, ps.p, "unexpected data after the JSON value");
    }
    free(ps.stack);
    free(ps.buf);
    if (ps.failed) {
        json_free(d);
        return NULL;
    }
    return d;
}

json_doc *json_parse(const char *text, size_t len, const char *label, char *err, size_t errlen)
{
    return json_parse_limits(text, len, label, JSON_MAX_DEPTH, JSON_MAX_BYTES, err, errlen);
}

json_doc *json_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        log_errf(err, errlen, path, "not a regular file");
        fclose(f);
        return NULL;
    }
    if ((uint64_t)sb.st_size > JSON_MAX_BYTES) {
        log_errf(err, errlen, path, "%lld bytes is more than the %zu-byte limit for a JSON file",
                 (long long)sb.st_size, JSON_MAX_BYTES);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    char *buf = mem_alloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != n || rerr) {
        log_errf(err, errlen, path, "read error (%zu of %zu bytes)", got, n);
        free(buf);
        return NULL;
    }
    json_doc *d = json_parse(buf, n, path, err, errlen);
    free(buf);
    return d;
}

void json_free(json_doc *d)
{
    if (!d) return;
    for (chunk *c = d->chunks, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    free(d->label);
    free(d);
}

const json_value *json_root(const json_doc *d) { return &d->root; }
const char *json_label(const json_doc *d) { return d->label; }

const char *json_type_name(json_type t)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* ---- navigation ---- */
const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    json_member probe = {.key = key, .keylen = strlen(key)};
    size_t lo = 0, hi = obj->u.obj.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const json_member *m = &obj->u.obj.members[obj->u.obj.sorted[mid]];
        int c = key_cmp(m, &probe);
        if (c == 0) return &m->value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const json_value *json_at(const json_value *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARRAY || i >= arr->u.arr.n) return NULL;
    return &arr->u.arr.items[i];
}

size_t json_len(const json_value *v)
{
    if (!v) return 0;
    if (v->type == JSON_ARRAY) return v->u.arr.n;
    if (v->type == JSON_OBJECT) return v->u.obj.n;
    return 0;
}

const json_member *json_member_at(const json_value *obj, size_t i)
{
    if (!obj || obj->type != JSON_OBJECT || i >= obj->u.obj.n) return NULL;
    return &obj->u.obj.members[i];
}

/* ---- typed lookups ---- */
static const char *lbl(const json_doc *d) { return d ? d->label : "json"; }

/* The member's value, or NULL with an error when obj is no object or (required) the key is missing. */
static const json_value *lookup(const json_doc *d, const json_value *obj, const char *key, int required, char *err,
                                size_t errlen, int *failed)
{
    *failed = 0;
    if (!obj || obj->type != JSON_OBJECT) {
        log_errf(err, errlen, lbl(d), "key '%s': looked up in a %s, not an object", key,
                 obj ? json_type_name(obj->type) : "missing value");
        *failed = 1;
        return NULL;
    }
    const json_value *v = json_get(obj, key);
    if (!v && required) {
        log_errf(err, errlen, lbl(d), "key '%s' is missing", key);
        *failed = 1;
    }
    return v;
}

int json_value_int(const json_doc *d, const json_value *v, const char *what, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen)
{
    int64_t i;
    if (!v || v->type != JSON_NUMBER) {
        log_errf(err, errlen, lbl(d), "%s: expected an integer, got %s", what, v ? json_type_name(v->type) : "nothing");
        return -1;
    }
    if (v->u.num.is_int) {
        i = v->u.num.i;
    } else if (v->u.num.d == floor(v->u.num.d) && fabs(v->u.num.d) <= 9007199254740992.0) {
        i = (int64_t)v->u.num.d;   /* "2.0" or "1e3": integral and exact */
    } else {
        log_errf(err, errlen, lbl(d), "%s: expected an integer, got %.17g", what, v->u.num.d);
        return -1;
    }
    if (i < lo || i > hi) {
        log_errf(err, errlen, lbl(d), "%s: %lld is outside [%lld, %lld]", what, (long long)i, (long long)lo,
                 (long long)hi);
        return -1;
    }
    *out = i;
    return 0;
}

static int get_int(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi, int required,
                   int64_t def, int64_t *out, char *err, size_t errlen)
{
    int failed;
    const json_value *v = lookup(d, obj, key, required, err, errlen, &failed);
    if (failed) return -1;
    if (!v || (!required && v->type == JSON_NULL)) {
        *out = def;
        return 0;
    }
    char what[200];
    snprintf(what, sizeof what, "key '%s'", key);
    return json_value_int(d, v, what, lo, hi, out, err, errlen);
}

int json_get_int(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                 char *err, size_t errlen)
{
    return get_int(d, obj, key, lo, hi, 1, 0, out, err, errlen);
}

int json_get_int_or(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t def,
                    int64_t *out, char *err, size_t errlen)
{
    return get_int(d, obj, key, lo, hi, 0, def, out, err, errlen);
}

static int get_double(const json_doc *d, const json_value *obj, const char *key, int required, double def,
                      double *out, char *err, size_t errlen)
{
    int failed;
    const json_value *v = lookup(d, obj, key, required, err, errlen, &failed);
    if (failed) return -1;
    if (!v || (!required && v->type == JSON_NULL)) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_NUMBER) {
        log_errf(err, errlen, lbl(d), "key '%s': expected a number, got %s", key, json_type_name(v->type));
        return -1;
    }
    *out = v->u.num.d;
    return 0;
}

int json_get_double(const json_doc *d, const json_value *obj, const char *key, double *out, char *err,
                    size_t errlen)
{
    return get_double(d, obj, key, 1, 0.0, out, err, errlen);
}

int json_get_double_or(const json_doc *d, const json_value *obj, const char *key, double def, double *out,
                       char *err, size_t errlen)
{
    return get_double(d, obj, key, 0, def, out, err, errlen);
}

static int get_bool(const json_doc *d, const json_value *obj, const char *key, int required, int def, int *out,
                    char *err, size_t errlen)
{
    int failed;
    const json_value *v = lookup(d, obj, key, required, err, errlen, &failed);
    if (failed) return -1;
    if (!v || (!required && v->type == JSON_NULL)) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_BOOL) {
        log_errf(err, errlen, lbl(d), "key '%s': expected true or false, got %s", key, json_type_name(v->type));
        return -1;
    }
    *out = v->u.boolean;
    return 0;
}

int json_get_bool(const json_doc *d, const json_value *obj, const char *key, int *out, char *err, size_t errlen)
{
    return get_bool(d, obj, key, 1, 0, out, err, errlen);
}

int json_get_bool_or(const json_doc *d, const json_value *obj, const char *key, int def, int *out, char *err,
                     size_t errlen)
{
    return get_bool(d, obj, key, 0, def, out, err, errlen);
}

static int get_string(const json_doc *d, const json_value *obj, const char *key, int required, const char *def,
                      const char **out, char *err, size_t errlen)
{
    int failed;
    const json_value *v = lookup(d, obj, key, required, err, errlen, &failed);
    if (failed) return -1;
    if (!v || (!required && v->type == JSON_NULL)) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_STRING) {
        log_errf(err, errlen, lbl(d), "key '%s': expected a string, got %s", key, json_type_name(v->type));
        return -1;
    }
    if (strlen(v->u.str.s) != v->u.str.len) {
        log_errf(err, errlen, lbl(d), "key '%s': string holds a NUL character", key);
        return -1;
    }
    *out = v->u.str.s;
    return 0;
}

int json_get_string(const json_doc *d, const json_value *obj, const char *key, const char **out, char *err,
                    size_t errlen)
{
    return get_string(d, obj, key, 1, NULL, out, err, errlen);
}

int json_get_string_or(const json_doc *d, const json_value *obj, const char *key, const char *def,
                       const char **out, char *err, size_t errlen)
{
    return get_string(d, obj, key, 0, def, out, err, errlen);
}

int json_get_int_array(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi,
                       int64_t *out, size_t max, size_t *n, char *err, size_t errlen)
{
    int failed;
    const json_value *v = lookup(d, obj, key, 1, err, errlen, &failed);
    if (failed) return -1;
    if (v->type != JSON_ARRAY) {
        log_errf(err, errlen, lbl(d), "key '%s': expected an array of integers, got %s", key,
                 json_type_name(v->type));
        return -1;
    }
    if (v->u.arr.n == 0 || v->u.arr.n > max) {
        log_errf(err, errlen, lbl(d), "key '%s': %zu items (expected 1 to %zu)", key, v->u.arr.n, max);
        return -1;
    }
    for (size_t k = 0; k < v->u.arr.n; k++) {
        char what[200];
        snprintf(what, sizeof what, "key '%s'[%zu]", key, k);
        if (json_value_int(d, &v->u.arr.items[k], what, lo, hi, &out[k], err, errlen)) return -1;
    }
    *n = v->u.arr.n;
    return 0;
}
