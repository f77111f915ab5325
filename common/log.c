/* log: one-line user errors, file:line fatal errors, info lines and stderr progress bars (see log.h). */
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *g_prog = "scorefusion";
static int g_quiet = 0;

void log_set_prog(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    g_prog = slash ? slash + 1 : argv0;
}

const char *log_prog(void) { return g_prog; }
void log_set_quiet(int quiet) { g_quiet = quiet; }

void log_die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: error: ", g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

void log_fatal_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s:%d: error: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    if (g_quiet) return;
    fprintf(stderr, "%s: ", g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double log_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_draw(const log_progress *p, int final)
{
    double el = log_now() - p->start;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    int width = 30, fill = (int)(frac * width + 0.5);
    double eta = (frac > 0 && !final) ? el * (1.0 - frac) / frac : 0.0;
    fprintf(stderr, "\r%-28.28s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    if (final)
        fprintf(stderr, "] %zu/%zu %.1fs        \n", p->done, p->total, el);
    else
        fprintf(stderr, "] %zu/%zu %.1fs eta %.0fs  ", p->done, p->total, el, eta);
    fflush(stderr);
}

void log_progress_begin(log_progress *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start = log_now();
    p->last_draw = 0.0;
    p->tty = !g_quiet && isatty(STDERR_FILENO);
}

void log_progress_step(log_progress *p, size_t increment)
{
    p->done += increment;
    if (!p->tty) return;
    double now = log_now();
    if (now - p->last_draw < 0.1 && p->done < p->total) return;
    p->last_draw = now;
    progress_draw(p, 0);
}

void log_progress_end(log_progress *p)
{
    if (p->tty) progress_draw(p, 1);
}

void log_errf(char *err, size_t errlen, const char *who, const char *fmt, ...)
{
    if (!err || !errlen) return;
    int k = snprintf(err, errlen, "%s: ", who);
    if (k < 0 || (size_t)k >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    log_one_line(err);
}

void log_one_line(char *msg)
{
    /* names and values quoted from a damaged file may hold any byte: the message stays one printable line */
    for (unsigned char *c = (unsigned char *)msg; *c; c++)
        if (*c < 0x20 || *c == 0x7f) *c = '?';
}
