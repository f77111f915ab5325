/* log: error reporting and progress bars (DESIGN.md §4).
 * Two kinds of failure:
 *   - user errors (bad flag, missing or corrupt file): log_die() prints ONE line "prog: error: ..." and exits 2;
 *   - programmer / I-O / allocation errors: LOG_FATAL prints "file:line: error: ..." and exits 1.
 * Progress bars go to stderr and only draw when stderr is a terminal (CI logs stay clean). */
#ifndef SF_LOG_H
#define SF_LOG_H
#include <stddef.h>

void log_set_prog(const char *argv0);     /* program name used in messages (basename of argv0) */
const char *log_prog(void);

void log_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_fatal_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
#define LOG_FATAL(...) log_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define LOG_CHECK(cond, ...) do { if (!(cond)) log_fatal_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* For functions that report errors to their caller instead of exiting: writes one line "<who>: <reason>" into
 * err[errlen] (who: usually the file path); nothing when err is NULL or errlen 0. */
void log_errf(char *err, size_t errlen, const char *who, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Replace control characters (newlines included) in msg by '?', so text quoted from a file keeps an error one line
 * (log_errf does this itself). */
void log_one_line(char *msg);

/* "prog: msg" on stderr, for diagnostics that are not errors */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Silence log_info (tests, --quiet). */
void log_set_quiet(int quiet);

/* Wall-clock seconds since an arbitrary origin (monotonic). */
double log_now(void);

typedef struct {
    const char *label;
    size_t total, done;
    double start, last_draw;
    int tty;
} log_progress;

void log_progress_begin(log_progress *p, const char *label, size_t total);
void log_progress_step(log_progress *p, size_t increment);   /* redraws at most ~10 times a second */
void log_progress_end(log_progress *p);                      /* final line with elapsed time */

#endif
