/* clip_tokenizer: CLIP byte-level BPE (see clip_tokenizer.h for the exact semantics and what differs from
 * transformers). Text is handled as an array of code points; symbols are vocabulary ids, and a merge is a hash
 * entry (id_a, id_b) -> (rank, id of the joined string), so one BPE step is an integer scan. */
#include "clip_tokenizer.h"
#include "clip_unicode.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- Unicode lookups over the generated tables ---- */
static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int clip_uc_is_letter(uint32_t cp) { return in_ranges(clip_uc_letter, clip_uc_letter_n, cp); }
int clip_uc_is_number(uint32_t cp) { return in_ranges(clip_uc_number, clip_uc_number_n, cp); }
int clip_uc_is_other(uint32_t cp) { return in_ranges(clip_uc_other, clip_uc_other_n, cp); }
int clip_uc_is_space(uint32_t cp) { return in_ranges(clip_uc_space, clip_uc_space_n, cp); }
int clip_uc_is_strip_space(uint32_t cp) { return in_ranges(clip_uc_isspace, clip_uc_isspace_n, cp); }
int clip_uc_is_case_ignorable(uint32_t cp) { return in_ranges(clip_uc_case_ignorable, clip_uc_case_ignorable_n, cp); }
int clip_uc_is_cased(uint32_t cp) { return in_ranges(clip_uc_cased, clip_uc_cased_n, cp); }

uint32_t clip_uc_lower1(uint32_t cp)
{
    size_t lo = 0, hi = clip_uc_lower_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const clip_uc_case_run *r = &clip_uc_lower[mid];
        if (cp < r->lo) hi = mid;
        else if (cp > r->hi) lo = mid + 1;
        else return (cp - r->lo) % r->stride == 0 ? (uint32_t)((int64_t)cp + r->delta) : cp;
    }
    return cp;
}

/* ---- code point arrays ---- */
typedef struct {
    uint32_t *c;
    size_t n, cap;
} cpvec;

static void cp_push(cpvec *v, uint32_t c)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->c = mem_realloc(v->c, v->cap * sizeof *v->c);
    }
    v->c[v->n++] = c;
}

/* Strict UTF-8 decode (the same validity rules as the JSON reader). 0, or -1 at the byte offset *bad. */
static int utf8_decode(const unsigned char *s, size_t len, cpvec *out, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            cp_push(out, c);
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            *bad = i;
            return -1;
        }
        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi) {
            *bad = i;
            return -1;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                *bad = i;
                return -1;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        cp_push(out, cp);
        i += n;
    }
    return 0;
}

/* ---- cleaning: html.unescape, strip, \s+ -> ' ', strip, lower ---- */
static void push_utf8_str(cpvec *o, const char *s)
{
    cpvec tmp = {0};
    size_t bad;
    if (utf8_decode((const unsigned char *)s, strlen(s), &tmp, &bad)) LOG_FATAL("clip_unicode: bad entity table");
    for (size_t k = 0; k < tmp.n; k++) cp_push(o, tmp.c[k]);
    free(tmp.c);
}

static const clip_uc_entity *entity_find(const char *name)
{
    size_t lo = 0, hi = clip_uc_entities_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(clip_uc_entities[mid].name, name);
        if (c == 0) return &clip_uc_entities[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Python's html.unescape over code points: in[n] -> out */
static void html_unescape(const uint32_t *in, size_t n, cpvec *out)
{
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&' || i + 1 >= n) {
            cp_push(out, in[i++]);
            continue;
        }
        size_t j = i + 1;
        if (in[j] == '#') {
            int hex = 0;
            size_t k = j + 1;
            if (k < n && is_digit(in[k])) {
                /* #[0-9]+ */
            } else if (k + 1 < n && (in[k] == 'x' || in[k] == 'X') && is_hex(in[k + 1])) {
                hex = 1;
                k++;
            } else {
                cp_push(out, in[i++]);   /* "&#" alone: no match, '&' stays */
                continue;
            }
            uint64_t num = 0;
            while (k < n && (hex ? is_hex(in[k]) : is_digit(in[k]))) {
                uint32_t c = in[k], d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
                num = num * (hex ? 16 : 10) + d;
                if (num > 0x10FFFFu) num = 0x110000u;   /* saturate: anything above maps to U+FFFD */
                k++;
            }
            if (k < n && in[k] == ';') k++;
            uint32_t cp = (uint32_t)num;
            int remapped = 0;
            for (size_t r = 0; r < clip_uc_charref_remap_n; r++)
                if (clip_uc_charref_remap[r][0] == cp) {
                    cp_push(out, clip_uc_charref_remap[r][1]);
                    remapped = 1;
                    break;
                }
            if (!remapped) {
                if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp_push(out, 0xFFFD);
                else if (!in_ranges(clip_uc_charref_drop, clip_uc_charref_drop_n, cp)) cp_push(out, cp);
            }
            i = k;
            continue;
        }
        /* named: [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' && in[k] != ' ' &&
               in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
            k++;
        if (k == j) {
            cp_push(out, in[i++]);
            continue;
        }
        size_t end = k < n && in[k] == ';' ? k + 1 : k;   /* s = in[j, end) */
        /* s itself, else the longest of its prefixes of length len(s)-1 down to 2 (Python's rule) */
        size_t slen = end - j, found = 0;
        const clip_uc_entity *e = NULL;
        for (size_t len = slen; len >= 1 && !e; len--) {
            if (len < slen && len < 2) break;
            char name[40];
            int ascii = 1;
            for (size_t q = 0; q < len && ascii; q++) {
                ascii = in[j + q] < 0x80;
                name[q] = (char)in[j + q];
            }
            name[len] = 0;
            if (ascii && (e = entity_find(name))) found = len;
        }
        if (!e) {
            for (size_t q = i; q < end; q++) cp_push(out, in[q]);   /* '&' + s unchanged */
        } else {
            push_utf8_str(out, e->utf8);
            for (size_t q = j + found; q < end; q++) cp_push(out, in[q]);
        }
        i = end;
    }
}

static void strip(cpvec *v)
{
    size_t a = 0, b = v->n;
    while (a < b && clip_uc_is_strip_space(v->c[a])) a++;
    while (b > a && clip_uc_is_strip_space(v->c[b - 1])) b--;
    if (a && b > a) memmove(v->c, v->c + a, (b - a) * sizeof *v->c);
    v->n = b - a;
}

/* in -> cleaned out (out must be empty) */
static void clean(const uint32_t *in, size_t n, cpvec *out)
{
    cpvec a = {0}, b = {0};
    html_unescape(in, n, &a);
    html_unescape(a.c, a.n, &b);
    strip(&b);
    a.n = 0;
    for (size_t i = 0; i < b.n;) {
        if (clip_uc_is_space(b.c[i])) {
            cp_push(&a, ' ');
            while (i < b.n && clip_uc_is_space(b.c[i])) i++;
        } else {
            cp_push(&a, b.c[i++]);
        }
    }
    strip(&a);
    for (size_t i = 0; i < a.n; i++) {
        if (a.c[i] == 0x130) {   /* the one 1:2 lower-case mapping */
            cp_push(out, 'i');
            cp_push(out, 0x307);
        } else if (a.c[i] == 0x3A3) {
            /* Python's Final_Sigma: a cased letter before (case-ignorables skipped), and no cased letter after */
            size_t j = i;
            while (j > 0 && clip_uc_is_case_ignorable(a.c[j - 1])) j--;
            int fin = j > 0 && clip_uc_is_cased(a.c[j - 1]);
            if (fin) {
                size_t k = i + 1;
                while (k < a.n && clip_uc_is_case_ignorable(a.c[k])) k++;
                fin = k == a.n || !clip_uc_is_cased(a.c[k]);
            }
            cp_push(out, fin ? 0x3C2 : 0x3C3);
        } else {
            cp_push(out, clip_uc_lower1(a.c[i]));
        }
    }
    free(a.c);
    free(b.c);
}

char *clip_tokenizer_clean(const char *text, char *err, size_t errlen)
{
    cpvec in = {0}, out = {0};
    size_t bad;
    if (utf8_decode((const unsigned char *)text, strlen(text), &in, &bad)) {
        log_errf(err, errlen, "clip_tokenizer", "text is not valid UTF-8 (byte %zu)", bad);
        free(in.c);
        return NULL;
    }
    clean(in.c, in.n, &out);
    char *s = mem_alloc(4 * out.n + 1);
    size_t k = 0;
    for (size_t i = 0; i < out.n; i++) k += json_utf8_encode(out.c[i], (unsigned char *)s + k);
    s[k] = 0;
    free(in.c);
    free(out.c);
    return s;
}

/* ---- hash maps: string -> id, (id, id) -> (rank, id) ---- */
typedef struct {
    const char **key;
    int32_t *val;
    size_t cap, n;
} strmap;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strmap_init(strmap *m, size_t expect)
{
    m->cap = 64;
    while (m->cap < 2 * expect + 16) m->cap *= 2;
    m->key = mem_calloc(m->cap, sizeof *m->key);
    m->val = mem_calloc(m->cap, sizeof *m->val);
    m->n = 0;
}

/* key must outlive the map; later puts of the same key overwrite (Python dict semantics) */
static void strmap_put(strmap *m, const char *key, int32_t v)
{
    size_t i = fnv1a(key) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], key)) i = (i + 1) & (m->cap - 1);
    if (!m->key[i]) {
        m->key[i] = key;
        m->n++;
    }
    m->val[i] = v;
}

static int strmap_get(const strmap *m, const char *key, int32_t *v)
{
    size_t i = fnv1a(key) & (m->cap - 1);
    while (m->key[i]) {
        if (!strcmp(m->key[i], key)) {
            *v = m->val[i];
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

typedef struct {
    uint64_t *key;       /* (a << 32 | b) + 1; 0 = empty */
    int32_t *rank, *merged;
    size_t cap;
} pairmap;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static void pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = mix64(k) & (m->cap - 1);
    while (m->key[i] && m->key[i] != k) i = (i + 1) & (m->cap - 1);
    m->key[i] = k;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

static int pairmap_get(const pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = mix64(k) & (m->cap - 1);
    while (m->key[i]) {
        if (m->key[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

/* ---- the tokenizer ---- */
#define CLIP_MAX_SPECIAL 16

struct clip_tokenizer {
    char *label;
    char *strings;                /* every token string, NUL-separated */
    size_t strings_len, strings_cap;
    const char **by_id;           /* id -> token (NULL where no token) */
    size_t nid;
    strmap vocab;
    pairmap merges;
    int32_t byte_id[256], byte_id_w[256];   /* byte symbol, and byte symbol + "</w>" */
    uint32_t *special[CLIP_MAX_SPECIAL];     /* code points of the special / added tokens */
    size_t special_len[CLIP_MAX_SPECIAL];
    int32_t special_id[CLIP_MAX_SPECIAL];
    int nspecial;
    int split_raw;                /* 1: split raw text at specials (transformers); 0: match after cleaning */
    int32_t bos, eos, pad;
    int context;
};

/* CLIP's reversible byte -> code point map (bytes_to_unicode): printable Latin-1 bytes map to themselves, the
 * other 68 to 256, 257, ... in byte order. order[k] is the byte whose symbol is the k-th vocabulary entry. */
static void byte_symbols(uint32_t cp_of[256], int order[256])
{
    int k = 0, seen[256] = {0};
    for (int b = '!'; b <= '~'; b++) seen[b] = 1, cp_of[b] = (uint32_t)b, order[k++] = b;
    for (int b = 0xA1; b <= 0xAC; b++) seen[b] = 1, cp_of[b] = (uint32_t)b, order[k++] = b;
    for (int b = 0xAE; b <= 0xFF; b++) seen[b] = 1, cp_of[b] = (uint32_t)b, order[k++] = b;
    int extra = 0;
    for (int b = 0; b < 256; b++)
        if (!seen[b]) cp_of[b] = 256u + (uint32_t)extra++, order[k++] = b;
}

static const char *str_add(clip_tokenizer *t, const char *s, size_t len)
{
    if (t->strings_len + len + 1 > t->strings_cap) LOG_FATAL("clip_tokenizer: string pool overflow");
    char *p = t->strings + t->strings_len;
    memcpy(p, s, len);
    p[len] = 0;
    t->strings_len += len + 1;
    return p;
}

static void set_id(clip_tokenizer *t, int32_t id, const char *tok)
{
    if ((size_t)id >= t->nid) {
        size_t n = (size_t)id + 1;
        t->by_id = mem_realloc(t->by_id, n * sizeof *t->by_id);
        for (size_t k = t->nid; k < n; k++) t->by_id[k] = NULL;
        t->nid = n;
    }
    t->by_id[id] = tok;
    strmap_put(&t->vocab, tok, id);
}

static clip_tokenizer *tok_new(const char *label, size_t pool)
{
    clip_tokenizer *t = mem_calloc(1, sizeof *t);
    t->label = mem_strdup(label);
    t->strings_cap = pool;
    t->strings = mem_alloc(pool);
    strmap_init(&t->vocab, 50000);
    t->merges.cap = 1u << 17;
    t->merges.key = mem_calloc(t->merges.cap, sizeof *t->merges.key);
    t->merges.rank = mem_calloc(t->merges.cap, sizeof *t->merges.rank);
    t->merges.merged = mem_calloc(t->merges.cap, sizeof *t->merges.merged);
    t->context = 77;
    return t;
}

void clip_tokenizer_free(clip_tokenizer *t)
{
    if (!t) return;
    free(t->label);
    free(t->strings);
    free(t->by_id);
    free(t->vocab.key);
    free(t->vocab.val);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    for (int k = 0; k < t->nspecial; k++) free(t->special[k]);
    free(t);
}

static int add_special(clip_tokenizer *t, const char *content, int32_t id, const char *who, char *err, size_t errlen)
{
    for (int k = 0; k < t->nspecial; k++)
        if (t->special_id[k] == id) return 0;
    if (t->nspecial == CLIP_MAX_SPECIAL) {
        log_errf(err, errlen, who, "more than %d special tokens", CLIP_MAX_SPECIAL);
        return -1;
    }
    cpvec v = {0};
    size_t bad;
    if (!*content || utf8_decode((const unsigned char *)content, strlen(content), &v, &bad)) {
        log_errf(err, errlen, who, "special token \"%s\" is empty or not UTF-8", content);
        free(v.c);
        return -1;
    }
    t->special[t->nspecial] = v.c;
    t->special_len[t->nspecial] = v.n;
    t->special_id[t->nspecial++] = id;
    return 0;
}

/* The merges text: line 0 is a header; lines 1..48894 are "a b". Splits on Python's whitespace. */
static int read_merges(clip_tokenizer *t, char *text, size_t len, const char *who, int hf, char *err, size_t errlen)
{
    if (hf) {   /* transformers: .strip() the whole file first */
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t'))
            len--;
        text[len] = 0;
    }
    size_t pos = 0, line = 0;
    int32_t rank = 0;
    while (pos <= len && rank < CLIP_TOKENIZER_MERGES) {
        char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        text[end] = 0;
        char *s = text + pos;
        pos = end + 1;
        if (++line == 1) continue;      /* the "#version" header */
        if (!nl && !*s) break;          /* what follows a final newline (open_clip would add an empty token) */
        /* split into exactly two fields on whitespace */
        char *f[3] = {0};
        int nf = 0;
        char *p = s;
        while (*p && nf < 3) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f') p++;
            if (!*p) break;
            f[nf++] = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f') p++;
            if (*p) *p++ = 0;
        }
        if (nf != 2) {
            log_errf(err, errlen, who, "line %zu: expected two symbols, got %d", line, nf);
            return -1;
        }
        int32_t a, b, ab;
        char joined[512];
        size_t l0 = strlen(f[0]), l1 = strlen(f[1]);
        if (l0 + l1 >= sizeof joined) {
            log_errf(err, errlen, who, "line %zu: symbol too long", line);
            return -1;
        }
        memcpy(joined, f[0], l0);
        memcpy(joined + l0, f[1], l1 + 1);
        if (!hf) {   /* open_clip: the vocabulary is made of the merges, in order */
            set_id(t, (int32_t)(512 + rank), str_add(t, joined, strlen(joined)));
        }
        if (!strmap_get(&t->vocab, f[0], &a) || !strmap_get(&t->vocab, f[1], &b) ||
            !strmap_get(&t->vocab, joined, &ab)) {
            log_errf(err, errlen, who, "line %zu: merge \"%s %s\" uses a symbol that is not in the vocabulary", line,
                     f[0], f[1]);
            return -1;
        }
        pairmap_put(&t->merges, a, b, rank, ab);   /* a repeated pair keeps its last rank, as dict() does */
        rank++;
    }
    if (rank == 0) {
        log_errf(err, errlen, who, "no merges");
        return -1;
    }
    return 0;
}

static int byte_ids(clip_tokenizer *t, const char *who, char *err, size_t errlen)
{
    uint32_t cp_of[256];
    int order[256];
    byte_symbols(cp_of, order);
    for (int b = 0; b < 256; b++) {
        char s[16];
        size_t n = json_utf8_encode(cp_of[b], (unsigned char *)s);
        memcpy(s + n, "</w>", 5);
        int32_t id, idw;
        char plain[8];
        memcpy(plain, s, n);
        plain[n] = 0;
        if (!strmap_get(&t->vocab, plain, &id) || !strmap_get(&t->vocab, s, &idw)) {
            log_errf(err, errlen, who, "the byte symbol U+%04X (byte 0x%02X) is not in the vocabulary", cp_of[b], b);
            return -1;
        }
        t->byte_id[b] = id;
        t->byte_id_w[b] = idw;
    }
    return 0;
}

clip_tokenizer *clip_tokenizer_load_bpe(const char *path, char *err, size_t errlen)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno ? errno : ENOENT));
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = mem_alloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= ((size_t)64 << 20)) {
                log_errf(err, errlen, path, "more than 64 MiB of merges");
                gzclose(gz);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = mem_realloc(buf, cap + 1);
        }
        int got = gzread(gz, buf + len, (unsigned)(cap - len));
        if (got < 0) {
            int zerr;
            log_errf(err, errlen, path, "gzip error: %s", gzerror(gz, &zerr));
            gzclose(gz);
            free(buf);
            return NULL;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(gz);
    buf[len] = 0;
    /* open_clip reads only the first 48,894 merges; so do we (the file has ~262k) */
    clip_tokenizer *t = tok_new(path, 64 * (size_t)(CLIP_TOKENIZER_MERGES + 600));
    uint32_t cp_of[256];
    int order[256];
    byte_symbols(cp_of, order);
    for (int k = 0; k < 256; k++) {
        char s[16];
        size_t n = json_utf8_encode(cp_of[order[k]], (unsigned char *)s);
        set_id(t, k, str_add(t, s, n));
        memcpy(s + n, "</w>", 4);
        set_id(t, 256 + k, str_add(t, s, n + 4));
    }
    if (read_merges(t, buf, len, path, 0, err, errlen) || byte_ids(t, path, err, errlen)) {
        free(buf);
        clip_tokenizer_free(t);
        return NULL;
    }
    free(buf);
    int32_t sot = (int32_t)t->nid, eot = sot + 1;
    set_id(t, sot, str_add(t, "<start_of_text>", 15));
    set_id(t, eot, str_add(t, "<end_of_text>", 13));
    if (add_special(t, "<start_of_text>", sot, path, err, errlen) ||
        add_special(t, "<end_of_text>", eot, path, err, errlen)) {
        clip_tokenizer_free(t);
        return NULL;
    }
    t->bos = sot;
    t->eos = eot;
    t->pad = 0;
    t->split_raw = 0;
    return t;
}

/* A special token entry of special_tokens_map.json / tokenizer_config.json: a string or {"content": ...}. */
static const char *special_content(const json_value *v)
{
    if (!v) return NULL;
    if (v->type == JSON_STRING) return v->u.str.s;
    if (v->type == JSON_OBJECT) {
        const json_value *c = json_get(v, "content");
        if (c && c->type == JSON_STRING) return c->u.str.s;
    }
    return NULL;
}

static char *read_text(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_errf(err, errlen, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = mem_alloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                log_errf(err, errlen, path, "larger than %zu bytes", max);
                fclose(f);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = mem_realloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        log_errf(err, errlen, path, "read error");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

clip_tokenizer *clip_tokenizer_load_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096], mpath[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    json_doc *vd = json_load(path, err, errlen);
    if (!vd) return NULL;
    const json_value *root = json_root(vd);
    if (root->type != JSON_OBJECT || json_len(root) == 0) {
        log_errf(err, errlen, path, "expected an object of token -> id");
        json_free(vd);
        return NULL;
    }
    size_t pool = 0;
    for (size_t k = 0; k < json_len(root); k++) pool += json_member_at(root, k)->keylen + 1;
    clip_tokenizer *t = tok_new(dir, pool + 64);
    clip_tokenizer *fail = NULL;
    char *mtext = NULL;
    json_doc *sd = NULL, *cd = NULL;
    for (size_t k = 0; k < json_len(root); k++) {
        const json_member *m = json_member_at(root, k);
        int64_t id;
        char what[96];
        snprintf(what, sizeof what, "token \"%.40s\"", m->key);
        if (json_value_int(vd, &m->value, what, 0, (1 << 20) - 1, &id, err, errlen)) goto out;
        if (strlen(m->key) != m->keylen) {
            log_errf(err, errlen, path, "a token holds a NUL character");
            goto out;
        }
        if ((size_t)id < t->nid && t->by_id[id]) {
            log_errf(err, errlen, path, "id %lld is given to \"%.40s\" and \"%.40s\"", (long long)id, t->by_id[id],
                     m->key);
            goto out;
        }
        set_id(t, (int32_t)id, str_add(t, m->key, m->keylen));
    }
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    size_t mlen;
    mtext = read_text(mpath, (size_t)64 << 20, &mlen, err, errlen);
    if (!mtext || read_merges(t, mtext, mlen, mpath, 1, err, errlen) || byte_ids(t, path, err, errlen)) goto out;

    /* special tokens: special_tokens_map.json, then tokenizer_config.json, then CLIPTokenizer's defaults */
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        if (!(sd = json_load(path, err, errlen))) goto out;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        if (!(cd = json_load(path, err, errlen))) goto out;
        int64_t ml;
        if (json_get_int_or(cd, json_root(cd), "model_max_length", 3, 4096, 77, &ml, err, errlen)) goto out;
        t->context = (int)ml;
        const json_value *added = json_get(json_root(cd), "added_tokens_decoder");
        for (size_t k = 0; added && k < json_len(added); k++) {
            const json_member *m = json_member_at(added, k);
            const char *c = special_content(&m->value);
            char *endp;
            errno = 0;
            long id = strtol(m->key, &endp, 10);
            if (!c || *endp || errno || id < 0 || (size_t)id >= t->nid) {
                log_errf(err, errlen, path, "added_tokens_decoder entry \"%.40s\" is malformed", m->key);
                goto out;
            }
            if (add_special(t, c, (int32_t)id, path, err, errlen)) goto out;
        }
    }
    static const char *names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    static const char *defaults[4] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"};
    int32_t ids[4];
    for (int k = 0; k < 4; k++) {
        const char *c = sd ? special_content(json_get(json_root(sd), names[k])) : NULL;
        const char *src = sd ? json_label(sd) : dir;
        if (!c && cd) {
            c = special_content(json_get(json_root(cd), names[k]));
            src = json_label(cd);
        }
        if (!c) c = defaults[k];
        if (!strmap_get(&t->vocab, c, &ids[k])) {
            log_errf(err, errlen, src, "%s \"%s\" is not in vocab.json", names[k], c);
            goto out;
        }
        if (add_special(t, c, ids[k], src, err, errlen)) goto out;
    }
    t->bos = ids[0];
    t->eos = ids[1];
    t->pad = ids[3];
    t->split_raw = 1;
    json_free(vd);
    json_free(sd);
    json_free(cd);
    free(mtext);
    return t;
out:
    fail = t;
    json_free(vd);
    json_free(sd);
    json_free(cd);
    free(mtext);
    clip_tokenizer_free(fail);
    return NULL;
}

/* ---- encoding ---- */
typedef struct {
    int32_t *ids;
    size_t n, cap;
    int32_t *sym, *tmp;       /* BPE scratch */
    size_t symcap;
} outbuf;

static void out_push(outbuf *o, int32_t id)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 128;
        o->ids = mem_realloc(o->ids, o->cap * sizeof *o->ids);
    }
    o->ids[o->n++] = id;
}

/* BPE of one piece (its UTF-8 bytes): lowest-rank pair first, all its non-overlapping occurrences left to right */
static void bpe_piece(const clip_tokenizer *t, const unsigned char *bytes, size_t nb, outbuf *o)
{
    if (nb > o->symcap) {
        o->symcap = nb;
        o->sym = mem_realloc(o->sym, nb * sizeof *o->sym);
        o->tmp = mem_realloc(o->tmp, nb * sizeof *o->tmp);
    }
    int32_t *s = o->sym;
    size_t n = nb;
    for (size_t k = 0; k < nb; k++) s[k] = k + 1 < nb ? t->byte_id[bytes[k]] : t->byte_id_w[bytes[k]];
    while (n > 1) {
        int32_t best = INT32_MAX, a = 0, b = 0, ab = 0;
        for (size_t k = 0; k + 1 < n; k++) {
            int32_t r, m;
            if (pairmap_get(&t->merges, s[k], s[k + 1], &r, &m) && r < best) {
                best = r;
                a = s[k];
                b = s[k + 1];
                ab = m;
            }
        }
        if (best == INT32_MAX) break;
        size_t w = 0;
        for (size_t k = 0; k < n;) {
            if (k + 1 < n && s[k] == a && s[k + 1] == b) {
                o->tmp[w++] = ab;
                k += 2;
            } else {
                o->tmp[w++] = s[k++];
            }
        }
        memcpy(s, o->tmp, w * sizeof *s);
        n = w;
    }
    for (size_t k = 0; k < n; k++) out_push(o, s[k]);
}

static int match_special(const clip_tokenizer *t, const uint32_t *c, size_t n, size_t i, size_t *len, int32_t *id)
{
    size_t best = 0;
    for (int k = 0; k < t->nspecial; k++) {
        size_t L = t->special_len[k];
        if (L > best && i + L <= n && !memcmp(c + i, t->special[k], L * sizeof *c)) {
            best = L;
            *id = t->special_id[k];
        }
    }
    *len = best;
    return best > 0;
}

static void piece(const clip_tokenizer *t, const uint32_t *c, size_t a, size_t b, outbuf *o, unsigned char **ub,
                  size_t *ubcap)
{
    if (4 * (b - a) > *ubcap) {
        *ubcap = 4 * (b - a);
        *ub = mem_realloc(*ub, *ubcap);
    }
    size_t nb = 0;
    for (size_t k = a; k < b; k++) nb += json_utf8_encode(c[k], *ub + nb);
    bpe_piece(t, *ub, nb, o);
}

/* CLIP's pattern over cleaned text; with_specials: special tokens are the pattern's first alternative */
static void pretokenize(const clip_tokenizer *t, const uint32_t *c, size_t n, int with_specials, outbuf *o)
{
    unsigned char *ub = NULL;
    size_t ubcap = 0;
    static const char *contr[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (size_t i = 0; i < n;) {
        size_t len;
        int32_t id;
        if (with_specials && match_special(t, c, n, i, &len, &id)) {
            out_push(o, id);
            i += len;
            continue;
        }
        if (c[i] == '\'') {
            size_t hit = 0;
            for (int k = 0; k < 7 && !hit; k++) {
                size_t L = strlen(contr[k]), q;
                for (q = 0; q < L && i + 1 + q < n; q++) {
                    uint32_t ch = c[i + 1 + q];
                    if (ch == 0x17F) ch = 's';   /* IGNORECASE: the long s folds to s */
                    if (ch != (unsigned char)contr[k][q] && ch != (uint32_t)(contr[k][q] - 32)) break;
                }
                if (q == L) hit = L + 1;
            }
            if (hit) {
                piece(t, c, i, i + hit, o, &ub, &ubcap);
                i += hit;
                continue;
            }
        }
        if (clip_uc_is_letter(c[i])) {
            size_t j = i + 1;
            while (j < n && clip_uc_is_letter(c[j])) j++;
            piece(t, c, i, j, o, &ub, &ubcap);
            i = j;
        } else if (clip_uc_is_number(c[i])) {
            piece(t, c, i, i + 1, o, &ub, &ubcap);
            i++;
        } else if (clip_uc_is_other(c[i])) {
            size_t j = i + 1;
            while (j < n && clip_uc_is_other(c[j])) j++;
            piece(t, c, i, j, o, &ub, &ubcap);
            i = j;
        } else {
            i++;   /* whitespace, and U+0345: no alternative of the pattern matches there */
        }
    }
    free(ub);
}

static void encode_segment(const clip_tokenizer *t, const uint32_t *c, size_t n, int with_specials, outbuf *o)
{
    cpvec cl = {0};
    clean(c, n, &cl);
    pretokenize(t, cl.c, cl.n, with_specials, o);
    free(cl.c);
}

static int encode_all(const clip_tokenizer *t, const char *text, outbuf *o, char *err, size_t errlen)
{
    size_t len = strlen(text), bad;
    if (len > CLIP_TOKENIZER_MAX_TEXT) {
        log_errf(err, errlen, t->label, "prompt of %zu bytes is longer than %u", len, CLIP_TOKENIZER_MAX_TEXT);
        return -1;
    }
    cpvec c = {0};
    if (utf8_decode((const unsigned char *)text, len, &c, &bad)) {
        log_errf(err, errlen, t->label, "prompt is not valid UTF-8 (byte %zu)", bad);
        free(c.c);
        return -1;
    }
    if (!t->split_raw) {
        encode_segment(t, c.c, c.n, 1, o);
    } else {
        size_t start = 0;
        for (size_t i = 0; i < c.n;) {
            size_t slen;
            int32_t id;
            if (match_special(t, c.c, c.n, i, &slen, &id)) {
                if (i > start) encode_segment(t, c.c + start, i - start, 0, o);
                out_push(o, id);
                i += slen;
                start = i;
            } else {
                i++;
            }
        }
        if (c.n > start) encode_segment(t, c.c + start, c.n - start, 0, o);
    }
    free(c.c);
    return 0;
}

int clip_tokenizer_encode(const clip_tokenizer *t, const char *text, int32_t *ids, size_t max, size_t *n, char *err,
                          size_t errlen)
{
    outbuf o = {0};
    int rc = encode_all(t, text, &o, err, errlen);
    if (!rc) {
        for (size_t k = 0; k < o.n && k < max; k++) ids[k] = o.ids[k];
        *n = o.n;
    }
    free(o.ids);
    free(o.sym);
    free(o.tmp);
    return rc;
}

int clip_tokenizer_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids, size_t *untruncated,
                            char *err, size_t errlen)
{
    outbuf o = {0};
    int rc = encode_all(t, text, &o, err, errlen);
    if (!rc) {
        size_t ctx = (size_t)t->context, keep = o.n < ctx - 2 ? o.n : ctx - 2, k = 0;
        ids[k++] = t->bos;
        for (size_t q = 0; q < keep; q++) ids[k++] = o.ids[q];
        ids[k++] = t->eos;
        while (k < ctx) ids[k++] = t->pad;
        if (untruncated) *untruncated = o.n + 2;
    }
    free(o.ids);
    free(o.sym);
    free(o.tmp);
    return rc;
}

int clip_tokenizer_set_pad(clip_tokenizer *t, int32_t id, char *err, size_t errlen)
{
    if (!clip_tokenizer_token(t, id)) {
        log_errf(err, errlen, t->label, "pad id %d is not a token", id);
        return -1;
    }
    t->pad = id;
    return 0;
}

int clip_tokenizer_context(const clip_tokenizer *t) { return t->context; }
int32_t clip_tokenizer_bos(const clip_tokenizer *t) { return t->bos; }
int32_t clip_tokenizer_eos(const clip_tokenizer *t) { return t->eos; }
int32_t clip_tokenizer_pad(const clip_tokenizer *t) { return t->pad; }
size_t clip_tokenizer_vocab_size(const clip_tokenizer *t) { return t->nid; }
const char *clip_tokenizer_label(const clip_tokenizer *t) { return t->label; }

const char *clip_tokenizer_token(const clip_tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->nid ? t->by_id[id] : NULL;
}
