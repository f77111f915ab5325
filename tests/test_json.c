/* test_json: the strict JSON reader (common/json.h): a diffusers-style config read through every typed lookup,
 * string escapes (incl. surrogate pairs -> 4-byte UTF-8), numbers at their edges, a large object (binary-search
 * lookup agrees with a linear scan), and malformed inputs each rejected with one line naming the label, line and
 * column; lookup errors name the file and the key. */
#include "json.h"
#include "log.h"
#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_doc *parse(const char *s, char *err, size_t errlen)
{
    return json_parse(s, strlen(s), "t.json", err, errlen);
}

static void expect_reject(const char *text, const char *needle)
{
    char err[512] = "", nm[700];
    json_doc *d = parse(text, err, sizeof err);
    snprintf(nm, sizeof nm, "reject %.40s -> \"%s\"", text, err);
    for (char *c = nm; *c; c++)   /* keep the PASS/FAIL line printable ASCII (some inputs are invalid UTF-8) */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
    test_report(!d && strncmp(err, "t.json: line ", 13) == 0 && strstr(err, needle) && !strchr(err, '\n'), nm,
                needle);
    json_free(d);
}

static void test_config(void)
{
    const char *cfg = "{\n"
                      "  \"_class_name\": \"CLIPTextModel\",\n"
                      "  \"hidden_size\": 768, \"num_hidden_layers\": 12,\n"
                      "  \"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-05,\n"
                      "  \"block_out_channels\": [320, 640, 1280],\n"
                      "  \"use_linear_projection\": true, \"addition_embed_type\": null,\n"
                      "  \"nested\": {\"a\": [1, {\"b\": false}], \"e\": {}}, \"empty\": [],\n"
                      "  \"two\": 2.0, \"half\": 0.5, \"neg\": -3\n"
                      "}\n";
    char err[512] = "";
    json_doc *d = parse(cfg, err, sizeof err);
    CHECK(d != NULL, "config parses");
    if (!d) {
        printf("  %s\n", err);
        return;
    }
    const json_value *r = json_root(d);
    CHECK(r->type == JSON_OBJECT && json_len(r) == 13, "root is an object of 13 members");
    CHECK(strcmp(json_member_at(r, 0)->key, "_class_name") == 0 && strcmp(json_member_at(r, 12)->key, "neg") == 0,
          "members in file order");
    int64_t i = 0;
    double x = 0;
    int b = -1;
    const char *s = NULL;
    CHECK(json_get_int(d, r, "hidden_size", 1, 100000, &i, err, sizeof err) == 0 && i == 768, "get_int");
    CHECK(json_get_int(d, r, "two", 0, 10, &i, err, sizeof err) == 0 && i == 2, "get_int accepts 2.0");
    CHECK(json_get_int(d, r, "neg", -5, 0, &i, err, sizeof err) == 0 && i == -3, "get_int negative");
    CHECK(json_get_double(d, r, "layer_norm_eps", &x, err, sizeof err) == 0 && x == 1e-5, "get_double 1e-05");
    CHECK(json_get_bool(d, r, "use_linear_projection", &b, err, sizeof err) == 0 && b == 1, "get_bool");
    CHECK(json_get_string(d, r, "hidden_act", &s, err, sizeof err) == 0 && strcmp(s, "quick_gelu") == 0,
          "get_string");
    CHECK(json_get_int_or(d, r, "absent", 0, 10, 7, &i, err, sizeof err) == 0 && i == 7, "get_int_or default");
    CHECK(json_get_string_or(d, r, "addition_embed_type", "none", &s, err, sizeof err) == 0 && strcmp(s, "none") == 0,
          "get_string_or: null means unset");
    CHECK(json_get_double_or(d, r, "half", 9.0, &x, err, sizeof err) == 0 && x == 0.5, "get_double_or present");
    CHECK(json_get_bool_or(d, r, "absent", 0, &b, err, sizeof err) == 0 && b == 0, "get_bool_or default");
    int64_t arr[4];
    size_t n = 0;
    CHECK(json_get_int_array(d, r, "block_out_channels", 1, 4096, arr, 4, &n, err, sizeof err) == 0 && n == 3 &&
              arr[0] == 320 && arr[2] == 1280,
          "get_int_array");
    const json_value *nested = json_get(r, "nested");
    CHECK(nested && json_get(json_at(json_get(nested, "a"), 1), "b")->type == JSON_BOOL, "nested navigation");
    CHECK(json_len(json_get(nested, "e")) == 0 && json_get(r, "empty")->type == JSON_ARRAY &&
              json_len(json_get(r, "empty")) == 0,
          "empty object and array");
    CHECK(json_at(json_get(r, "empty"), 0) == NULL && json_get(json_get(r, "empty"), "x") == NULL,
          "navigation out of range / wrong kind gives NULL");

    /* lookup errors: one line naming the file and the key */
    CHECK(json_get_int(d, r, "missing_key", 0, 1, &i, err, sizeof err) == -1 &&
              strstr(err, "t.json: key 'missing_key' is missing"),
          "missing key -> names file and key");
    CHECK(json_get_int(d, r, "hidden_act", 0, 10, &i, err, sizeof err) == -1 &&
              strstr(err, "t.json: key 'hidden_act': expected an integer, got string"),
          "string where an integer is expected");
    CHECK(json_get_int(d, r, "half", 0, 10, &i, err, sizeof err) == -1 && strstr(err, "expected an integer, got 0.5"),
          "0.5 is no integer");
    CHECK(json_get_int(d, r, "hidden_size", 1, 512, &i, err, sizeof err) == -1 &&
              strstr(err, "key 'hidden_size': 768 is outside [1, 512]"),
          "integer out of range");
    CHECK(json_get_int_array(d, r, "block_out_channels", 1, 1000, arr, 4, &n, err, sizeof err) == -1 &&
              strstr(err, "key 'block_out_channels'[2]: 1280 is outside"),
          "array item out of range names the index");
    CHECK(json_get_int_array(d, r, "block_out_channels", 1, 4096, arr, 2, &n, err, sizeof err) == -1 &&
              strstr(err, "3 items (expected 1 to 2)"),
          "array too long");
    CHECK(json_get_int_array(d, r, "hidden_size", 1, 4096, arr, 2, &n, err, sizeof err) == -1 &&
              strstr(err, "expected an array of integers, got number"),
          "int where an array is expected");
    CHECK(json_get_bool(d, r, "hidden_size", &b, err, sizeof err) == -1 && strstr(err, "expected true or false"),
          "bool type error");
    CHECK(json_get_string(d, r, "two", &s, err, sizeof err) == -1 && strstr(err, "expected a string, got number"),
          "string type error");
    CHECK(json_get_double(d, r, "hidden_act", &x, err, sizeof err) == -1 && strstr(err, "expected a number"),
          "double type error");
    CHECK(json_get_int_or(d, r, "hidden_act", 0, 10, 1, &i, err, sizeof err) == -1, "_or fails on a wrong type");
    CHECK(json_get_int(d, json_get(r, "block_out_channels"), "x", 0, 1, &i, err, sizeof err) == -1 &&
              strstr(err, "looked up in a array, not an object"),
          "lookup in a non-object");
    json_free(d);
}

static void test_strings(void)
{
    char err[512] = "";
    /* \u00e9 -> C3 A9; \u20ac -> E2 82 AC; \ud83d\ude00 (U+1F600) -> F0 9F 98 80; raw UTF-8 passes through */
    const char *txt = "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\\ud83d\\ude00\", \"caf\xc3\xa9 \xf0\x9f\x98\x80\","
                      " \"x\\u0000y\", \"\"]";
    json_doc *d = parse(txt, err, sizeof err);
    CHECK(d != NULL, "escapes parse");
    if (!d) {
        printf("  %s\n", err);
        return;
    }
    const json_value *r = json_root(d);
    CHECK(strcmp(json_at(r, 0)->u.str.s, "a\"b\\c/d\b\f\n\r\t") == 0, "simple escapes");
    CHECK(strcmp(json_at(r, 1)->u.str.s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0 && json_at(r, 1)->u.str.len == 9,
          "\\u escapes incl. a surrogate pair -> UTF-8");
    CHECK(strcmp(json_at(r, 2)->u.str.s, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0, "raw UTF-8 kept");
    CHECK(json_at(r, 3)->u.str.len == 3 && json_at(r, 3)->u.str.s[1] == 0, "\\u0000 kept with its length");
    CHECK(json_at(r, 4)->u.str.len == 0 && json_at(r, 4)->u.str.s[0] == 0, "empty string");
    json_free(d);

    d = parse("{\"k\":\"x\\u0000y\"}", err, sizeof err);
    const char *s;
    CHECK(d && json_get_string(d, json_root(d), "k", &s, err, sizeof err) == -1 && strstr(err, "NUL"),
          "get_string refuses an embedded NUL");
    json_free(d);
    /* keys with escapes are looked up by their decoded text */
    d = parse("{\"\\u0041b\": 1, \"\xc3\xa9\": 2}", err, sizeof err);
    CHECK(d && json_get(json_root(d), "Ab") && json_get(json_root(d), "\xc3\xa9") &&
              json_get(json_root(d), "\xc3\xa9")->u.num.i == 2,
          "escaped and non-ASCII keys");
    json_free(d);
    /* a BOM is skipped */
    d = parse("\xEF\xBB\xBF {\"a\":1}", err, sizeof err);
    CHECK(d && json_get(json_root(d), "a"), "UTF-8 BOM skipped");
    json_free(d);
}

static void test_numbers(void)
{
    char err[512] = "";
    json_doc *d = parse("[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.5e300, 1e-400,"
                        " 3.141592653589793, 1E2, 12e+1]",
                        err, sizeof err);
    CHECK(d != NULL, "numbers parse");
    if (!d) {
        printf("  %s\n", err);
        return;
    }
    const json_value *r = json_root(d);
    CHECK(json_at(r, 0)->u.num.is_int && json_at(r, 0)->u.num.i == 0, "0");
    CHECK(json_at(r, 2)->u.num.is_int && json_at(r, 2)->u.num.i == INT64_MAX, "INT64_MAX exact");
    CHECK(json_at(r, 3)->u.num.is_int && json_at(r, 3)->u.num.i == INT64_MIN, "INT64_MIN exact");
    CHECK(!json_at(r, 4)->u.num.is_int && json_at(r, 4)->u.num.d == 9223372036854775808.0,
          "2^63 is a double, not an int64");
    CHECK(json_at(r, 5)->u.num.d == 1.5e300, "1.5e300");
    CHECK(json_at(r, 6)->u.num.d == 0.0, "1e-400 underflows to 0 (accepted, as Python does)");
    CHECK(json_at(r, 7)->u.num.d == 3.141592653589793, "pi round-trips");
    int64_t i;
    CHECK(json_value_int(d, json_at(r, 8), "x", 0, 1000, &i, err, sizeof err) == 0 && i == 100, "1E2 as integer");
    CHECK(json_value_int(d, json_at(r, 9), "x", 0, 1000, &i, err, sizeof err) == 0 && i == 120, "12e+1 as integer");
    CHECK(json_value_int(d, json_at(r, 4), "x", INT64_MIN, INT64_MAX, &i, err, sizeof err) == -1,
          "2^63 refused as integer");
    json_free(d);
}

static void test_big_object(void)
{
    /* 20,000 keys like a vocab.json: binary-search lookup agrees with the file order */
    size_t nkeys = 20000, cap = nkeys * 32 + 16, len = 0;
    char *txt = malloc(cap);
    txt[len++] = '{';
    for (size_t k = 0; k < nkeys; k++)
        len += (size_t)snprintf(txt + len, cap - len, "%s\"w%zx</w>\": %zu", k ? "," : "", (k * 7919) % 65521, k);
    txt[len++] = '}';
    char err[512] = "";
    json_doc *d = json_parse(txt, len, "vocab.json", err, sizeof err);
    CHECK(d != NULL, "20,000-key object parses");
    int ok = d != NULL;
    for (size_t k = 0; ok && k < nkeys; k++) {
        const json_member *m = json_member_at(json_root(d), k);
        const json_value *v = json_get(json_root(d), m->key);
        ok = v == &m->value && v->u.num.i == (int64_t)k;
    }
    CHECK(ok, "every key found by json_get at its own member");
    CHECK(d && json_get(json_root(d), "nope") == NULL, "absent key -> NULL");
    json_free(d);
    /* a duplicate far apart is found */
    len = (size_t)snprintf(txt, cap, "{\"dup\": 1");
    for (size_t k = 0; k < 1000; k++) len += (size_t)snprintf(txt + len, cap - len, ",\"k%zu\":0", k);
    len += (size_t)snprintf(txt + len, cap - len, ",\"dup\": 2}");
    d = json_parse(txt, len, "t.json", err, sizeof err);
    CHECK(!d && strstr(err, "duplicate key \"dup\""), "duplicate key among 1,002 rejected");
    json_free(d);
    free(txt);
}

static void test_malformed(void)
{
    expect_reject("", "empty document");
    expect_reject("   \n ", "empty document");
    expect_reject("{", "unexpected end of input");
    expect_reject("[1, 2", "unexpected end of input");
    expect_reject("[1 2]", "expected ',' or ']'");
    expect_reject("[1,]", "trailing comma");
    expect_reject("{\"a\":1,}", "trailing comma");
    expect_reject("{\"a\" 1}", "expected ':'");
    expect_reject("{a:1}", "expected a string key");
    expect_reject("{'a':1}", "expected a string key");
    expect_reject("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
    expect_reject("[01]", "leading zero");
    expect_reject("[+1]", "expected a value");
    expect_reject("[.5]", "expected a value");
    expect_reject("[1.]", "a digit must follow '.'");
    expect_reject("[1e]", "a digit must follow the exponent");
    expect_reject("[-]", "a digit must follow '-'");
    expect_reject("[NaN]", "NaN/Infinity");
    expect_reject("[Infinity]", "NaN/Infinity");
    expect_reject("[1e999]", "out of the double range");
    expect_reject("[tru]", "expected a value");
    expect_reject("[nul]", "expected a value");
    expect_reject("[True]", "expected a value");
    expect_reject("[\"abc]", "unterminated string");
    expect_reject("[\"a\tb\"]", "raw control character 0x09");
    expect_reject("[\"a\nb\"]", "raw control character 0x0a");
    expect_reject("[\"\\x\"]", "bad escape");
    expect_reject("[\"\\u12G4\"]", "bad hex digit");
    expect_reject("[\"\\u12\"]", "bad hex digit");
    expect_reject("[\"\\ud83d\"]", "not followed by a low surrogate");
    expect_reject("[\"\\ud83d\\u0041\"]", "not followed by a low surrogate");
    expect_reject("[\"\\ude00\"]", "lone low surrogate");
    expect_reject("[\"\xc3\"]", "invalid UTF-8");                /* truncated sequence */
    expect_reject("[\"\xc0\xaf\"]", "invalid UTF-8");            /* overlong '/' */
    expect_reject("[\"\xe0\x80\xaf\"]", "invalid UTF-8");        /* overlong 3-byte */
    expect_reject("[\"\xed\xa0\x80\"]", "invalid UTF-8");        /* encoded surrogate */
    expect_reject("[\"\xf4\x90\x80\x80\"]", "invalid UTF-8");    /* above U+10FFFF */
    expect_reject("[\"\x80\"]", "invalid UTF-8");                /* stray continuation */
    expect_reject("[\"\xff\"]", "invalid UTF-8");
    expect_reject("{} {}", "unexpected data after");
    expect_reject("[1] x", "unexpected data after");
    expect_reject("\x0b[1]", "expected a value");               /* vertical tab is no JSON whitespace */
    expect_reject("/* c */ {}", "expected a value");

    /* line and column of the error */
    char err[512] = "";
    json_doc *d = parse("{\n  \"a\": 1,\n  \"b\": x\n}", err, sizeof err);
    CHECK(!d && strstr(err, "t.json: line 3, column 8:"), "error position line 3, column 8");
    json_free(d);

    /* depth limit */
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = 0;
    d = parse(deep, err, sizeof err);
    CHECK(!d && strstr(err, "nesting deeper than 64 levels"), "100 nested arrays over the default depth 64");
    json_free(d);
    d = json_parse_limits(deep + 40, 120, "t.json", 60, JSON_MAX_BYTES, err, sizeof err);
    CHECK(d != NULL, "60 nested arrays within a limit of 60");
    json_free(d);
    d = json_parse_limits(deep + 40, 120, "t.json", 59, JSON_MAX_BYTES, err, sizeof err);
    CHECK(!d, "60 nested arrays over a limit of 59");
    json_free(d);
    /* size limit */
    d = json_parse_limits("[1, 2, 3]", 9, "t.json", 8, 8, err, sizeof err);
    CHECK(!d && strstr(err, "t.json: 9 bytes is more than the 8-byte limit"), "size limit");
    json_free(d);
    /* a length that cuts a valid text */
    d = json_parse("{\"a\": 12}", 8, "t.json", err, sizeof err);
    CHECK(!d && strstr(err, "unexpected end of input"), "length honoured (no reliance on NUL)");
    json_free(d);
}

static void test_files(void)
{
    char dir[] = "/tmp/sf_test_json_XXXXXX", path[256], err[512] = "";
    if (!mkdtemp(dir)) LOG_FATAL("mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"hidden_size\": 32, \"projection_dim\": \"x\"}", f);
    fclose(f);
    json_doc *d = json_load(path, err, sizeof err);
    int64_t i;
    CHECK(d && json_get_int(d, json_root(d), "hidden_size", 1, 64, &i, err, sizeof err) == 0 && i == 32,
          "json_load reads a file");
    CHECK(d && json_get_int(d, json_root(d), "projection_dim", 1, 64, &i, err, sizeof err) == -1 &&
              strncmp(err, path, strlen(path)) == 0 && strstr(err, "key 'projection_dim'"),
          "lookup error names the file path and key");
    json_free(d);
    f = fopen(path, "w");
    fputs("{\"hidden_size\": 32,", f);
    fclose(f);
    d = json_load(path, err, sizeof err);
    CHECK(!d && strncmp(err, path, strlen(path)) == 0 && strstr(err, "line 1, column 20"), "truncated file");
    json_free(d);
    snprintf(path, sizeof path, "%s/absent.json", dir);
    d = json_load(path, err, sizeof err);
    CHECK(!d && strncmp(err, path, strlen(path)) == 0 && strstr(err, "cannot open"), "missing file");
    json_free(d);
    d = json_load(dir, err, sizeof err);
    CHECK(!d && strstr(err, "not a regular file"), "a directory is refused");
    json_free(d);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    test_config();
    test_strings();
    test_numbers();
    test_big_object();
    test_malformed();
    test_files();
    return test_finish();
}
