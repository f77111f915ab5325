/* json: a small, strict, fully validated JSON (RFC 8259) DOM reader for the configuration and vocabulary files
 * of model folders: diffusers' config.json, CLIP's vocab.json, tokenizer_config.json, special_tokens_map.json.
 *
 * What is accepted is exactly RFC 8259 text, plus a leading UTF-8 byte-order mark (skipped):
 *   - objects, arrays, strings, numbers, true, false, null, with JSON whitespace (space, tab, CR, LF) only;
 *   - strings: valid UTF-8 (no overlong forms, no encoded surrogates, nothing above U+10FFFF), no raw control
 *     characters, the escapes \" \\ \/ \b \f \n \r \t and \uXXXX; a \u escape of a surrogate must be a
 *     high/low pair and becomes one 4-byte UTF-8 sequence (a lone surrogate is rejected: it has no UTF-8 form);
 *     \u0000 is kept (strings carry their length), but json_get_string rejects a string holding a NUL;
 *   - numbers: the RFC grammar (no leading '+', no leading zeros, no '.5', no NaN/Infinity); a number too large
 *     for a double is rejected; integer literals that fit int64 are kept exactly;
 *   - objects with duplicate keys are rejected (Python keeps the last one silently; a config with two values for
 *     one key is a corrupt config);
 *   - nesting depth and input size are bounded (JSON_MAX_DEPTH, JSON_MAX_BYTES by default).
 * Every failure gives one line "<label>: line L, column C: <why>" (label: usually the file path).
 *
 * The document owns all its memory (one arena); values are read through const pointers and stay valid until
 * json_free. Member order of objects is kept; lookup by key is a binary search over a sorted index, so a
 * 49,408-entry vocab.json costs O(log n) per key.
 *
 * common/safetensors.c reads its headers with this parser too (one JSON reader in the project). */
#ifndef SF_JSON_H
#define SF_JSON_H
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64
#define JSON_MAX_BYTES ((size_t)256 << 20)   /* 256 MiB: far above any tokenizer/config file */

typedef enum { JSON_NULL = 0, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
    json_type type;
    union {
        int boolean;                                             /* JSON_BOOL: 0 or 1 */
        struct { double d; int64_t i; int is_int; } num;         /* is_int: integer literal that fits int64 (i) */
        struct { const char *s; size_t len; } str;               /* UTF-8, NUL-terminated, len bytes */
        struct { const json_value *items; size_t n; } arr;
        struct { const json_member *members; size_t n; const uint32_t *sorted; } obj;   /* sorted: key order */
    } u;
};

struct json_member {
    const char *key;       /* UTF-8, NUL-terminated */
    size_t keylen;
    json_value value;
};

typedef struct json_doc json_doc;

/* Parse len bytes of text (need not be NUL-terminated). label names the source in messages. NULL on failure with
 * one line in err. */
json_doc *json_parse(const char *text, size_t len, const char *label, char *err, size_t errlen);
/* The same with explicit limits (max_depth >= 1 nesting levels of arrays/objects; max_bytes of input). */
json_doc *json_parse_limits(const char *text, size_t len, const char *label, int max_depth, size_t max_bytes,
                            char *err, size_t errlen);
/* Read and parse a file; the path is the label. */
json_doc *json_load(const char *path, char *err, size_t errlen);
void json_free(json_doc *d);

const json_value *json_root(const json_doc *d);
const char *json_label(const json_doc *d);
const char *json_type_name(json_type t);          /* "null", "boolean", "number", "string", "array", "object" */

/* ---- navigation (no errors: NULL when absent or of the wrong kind) ---- */
const json_value *json_get(const json_value *obj, const char *key);      /* NULL if obj is not an object */
const json_value *json_at(const json_value *arr, size_t i);              /* NULL if not an array or i >= n */
size_t json_len(const json_value *v);             /* items of an array, members of an object, else 0 */
const json_member *json_member_at(const json_value *obj, size_t i);      /* in file order */

/* ---- typed lookups with one-line errors "<label>: key '<key>': <why>" ----
 * Each returns 0, or -1 with the message in err. The plain forms require the key; the _or forms store def when
 * the key is absent (or null, as diffusers writes unset options) and fail only on a present value of the wrong
 * type or range. obj must be an object (else: error naming the key). */
int json_get_int(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                 char *err, size_t errlen);
int json_get_int_or(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t def,
                    int64_t *out, char *err, size_t errlen);
int json_get_double(const json_doc *d, const json_value *obj, const char *key, double *out, char *err,
                    size_t errlen);
int json_get_double_or(const json_doc *d, const json_value *obj, const char *key, double def, double *out,
                       char *err, size_t errlen);
int json_get_bool(const json_doc *d, const json_value *obj, const char *key, int *out, char *err, size_t errlen);
int json_get_bool_or(const json_doc *d, const json_value *obj, const char *key, int def, int *out, char *err,
                     size_t errlen);
/* *out points into the document (valid until json_free). */
int json_get_string(const json_doc *d, const json_value *obj, const char *key, const char **out, char *err,
                    size_t errlen);
int json_get_string_or(const json_doc *d, const json_value *obj, const char *key, const char *def,
                       const char **out, char *err, size_t errlen);
/* An array of integers in [lo, hi] with 1..max items: out[max], *n the count. A bare integer is NOT accepted
 * here (callers that allow "int or list", like diffusers' attention_head_dim, check json_type first). */
int json_get_int_array(const json_doc *d, const json_value *obj, const char *key, int64_t lo, int64_t hi,
                       int64_t *out, size_t max, size_t *n, char *err, size_t errlen);

/* Value-level conversions used by the lookups (what names the value in messages: e.g. "key 'x'[2]"). */
int json_value_int(const json_doc *d, const json_value *v, const char *what, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen);

/* UTF-8 bytes of code point cp (< 0x110000) into o[4]; returns how many (1-4). Shared with the CLIP tokenizer. */
size_t json_utf8_encode(uint32_t cp, unsigned char *o);

#endif
