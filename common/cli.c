/* cli: strict value parsing with one-line errors naming the flag (see cli.h). */
#include "cli.h"
#include "log.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

double cli_double(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        log_die("%s: '%s' is not a finite number", flag, s);
    return v;
}

double cli_double_range(const char *flag, const char *s, double lo, double hi)
{
    double v = cli_double(flag, s);
    if (v < lo || v > hi) log_die("%s: %s is outside [%g, %g]", flag, s, lo, hi);
    return v;
}

long cli_long(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE) log_die("%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi) log_die("%s: %ld is outside [%ld, %ld]", flag, v, lo, hi);
    return v;
}

/* Split s on commas; calls item(i, token) for each. Every item must be non-empty: "32,,64", ",64" and "64,"
 * are typing mistakes, not shorter lists. */
static size_t cli_split(const char *flag, const char *s, size_t max, void (*item)(const char *, const char *, size_t, void *),
                        void *ctx)
{
    size_t len = strlen(s), count = 0;
    if (len == 0) log_die("%s: empty list", flag);
    char *buf = malloc(len + 1);
    if (!buf) LOG_FATAL("out of memory");
    memcpy(buf, s, len + 1);
    char *tok = buf;
    for (;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (*tok == '\0') {
            free(buf);
            log_die("%s: empty item in the list '%s'", flag, s);
        }
        if (count == max) {
            free(buf);
            log_die("%s: more than %zu items in '%s'", flag, max, s);
        }
        item(flag, tok, count++, ctx);
        if (!comma) break;
        tok = comma + 1;
    }
    free(buf);
    return count;
}

struct long_ctx { long *out, lo, hi; };
static void long_item(const char *flag, const char *tok, size_t i, void *ctx)
{
    struct long_ctx *c = ctx;
    c->out[i] = cli_long(flag, tok, c->lo, c->hi);
    for (size_t j = 0; j < i; j++)
        if (c->out[j] == c->out[i]) log_die("%s: %ld given twice", flag, c->out[i]);
}

size_t cli_long_list(const char *flag, const char *s, long *out, size_t max, long lo, long hi)
{
    struct long_ctx c = {out, lo, hi};
    return cli_split(flag, s, max, long_item, &c);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

size_t cli_long_ranges(const char *flag, const char *s, long **out, size_t max, long lo, long hi)
{
    size_t len = strlen(s), n = 0, cap = 0;
    if (len == 0) log_die("%s: empty list", flag);
    long *v = NULL;
    char *buf = malloc(len + 1), *tok;
    if (!buf) LOG_FATAL("out of memory");
    memcpy(buf, s, len + 1);
    tok = buf;
    for (;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (*tok == '\0') log_die("%s: empty item in the list '%s'", flag, s);
        char *dash = strchr(tok + 1, '-');   /* tok + 1: a leading '-' is a sign */
        long a, b;
        if (dash) {
            *dash = '\0';
            a = cli_long(flag, tok, lo, hi), b = cli_long(flag, dash + 1, lo, hi);
            if (b < a) log_die("%s: the range %ld-%ld is empty", flag, a, b);
        } else {
            a = b = cli_long(flag, tok, lo, hi);
        }
        if ((unsigned long)(b - a) >= max - n) log_die("%s: more than %zu values in '%s'", flag, max, s);
        for (long x = a;; x++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                v = realloc(v, cap * sizeof *v);
                if (!v) LOG_FATAL("out of memory");
            }
            v[n++] = x;
            if (x == b) break;
        }
        if (!comma) break;
        tok = comma + 1;
    }
    free(buf);
    /* distinct: sort a copy */
    long *c = malloc(n * sizeof *c);
    if (!c) LOG_FATAL("out of memory");
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_long);
    for (size_t i = 1; i < n; i++)
        if (c[i] == c[i - 1]) log_die("%s: %ld given twice", flag, c[i]);
    free(c);
    *out = v;
    return n;
}

static void double_item(const char *flag, const char *tok, size_t i, void *ctx)
{
    ((double *)ctx)[i] = cli_double(flag, tok);
}

size_t cli_double_list(const char *flag, const char *s, double *out, size_t max)
{
    return cli_split(flag, s, max, double_item, out);
}

int cli_choice(const char *flag, const char *s, const char *const *choices)
{
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) return i;
        if (i) strncat(list, "|", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    log_die("%s: '%s' is not one of %s", flag, s, list);
}

void cli_output_dir(const char *flag, const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) log_die("%s: bad directory '%s'", flag, path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            log_die("%s: cannot create directory '%s': %s", flag, buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        log_die("%s: cannot create directory '%s': %s", flag, buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) log_die("%s: '%s' is not a directory", flag, path);
    if (access(buf, W_OK) != 0) log_die("%s: directory '%s' is not writable", flag, path);
}

void cli_bad_option(const char *arg)
{
    log_die("bad option %s (see --help)", arg ? arg : "");
}

const char *cli_prescan(int argc, char **argv, const char *flag, const char *dflt)
{
    size_t fl = strlen(flag);
    const char *v = dflt;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0 && i + 1 < argc) v = argv[i + 1];
        else if (strncmp(argv[i], flag, fl) == 0 && argv[i][fl] == '=') v = argv[i] + fl + 1;
    }
    return v;
}
