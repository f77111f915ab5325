/* io: atomic CSV + .meta provenance writer (DESIGN.md §1).
 * A CSV is written to "<path>.tmp.<host>.<pid>" and renamed onto <path> only by io_csv_commit, so a crash or an
 * error never leaves a half-written table. The .meta file beside it records how the table was made:
 * command line, git commit, seed, profile, device, mode, wall time, plus any key the experiment adds, and the
 * CSV's size and CRC-32 (data_bytes, data_crc32), so a cached part is used only when it verifies
 * (io_csv_verify). Every atomic writer of the suite (this one, safetensors, imgrid, idx) syncs the data and
 * then the directory around its rename, and names its temp files with io_tmp_path, so that
 * io_remove_stale_tmp can tell the leftovers of a killed process from the files of a running one. */
#ifndef SF_IO_H
#define SF_IO_H
#include <stdarg.h>
#include <stdio.h>

#define IO_META_MAX 48

typedef struct {
    char *cmdline;                  /* argv joined by spaces */
    double start;                   /* log_now() at io_meta_init */
    int n;
    char *key[IO_META_MAX], *val[IO_META_MAX];
} io_meta;

void io_meta_init(io_meta *m, int argc, char **argv);
void io_meta_set(io_meta *m, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void io_meta_free(io_meta *m);
void io_meta_copy(io_meta *dst, const io_meta *src);   /* a deep copy, to add keys for one file */

typedef struct io_csv io_csv;

/* Opens the temp file and writes the header line (column names, comma-separated). Dies with a one-line
 * error naming the path if it cannot be created. */
io_csv *io_csv_open(const char *path, const char *header);
void io_csv_row(io_csv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
FILE *io_csv_stream(io_csv *c);     /* for callers that print rows piecewise */
/* Flush, check for write errors and fsync; write <path>.meta (temp, fsync, rename) with the data's checksum;
 * then rename the CSV into place and fsync the directory. meta may be NULL (no .meta). Frees c. Dies with one
 * line naming the file on any failure, leaving neither temp file behind. */
void io_csv_commit(io_csv *c, const io_meta *meta);
void io_csv_abort(io_csv *c);       /* remove the temp file; frees c */

/* 0 when path exists, its .meta exists and records the size and CRC-32 of exactly these bytes; otherwise -1
 * and one line "<path>: <reason>" in err (missing, no .meta, no checksum, mismatch). */
int io_csv_verify(const char *path, char *err, size_t errlen);
/* The value recorded under key in path's .meta (0), or -1 (no .meta, no such key). */
int io_meta_get(const char *path, const char *key, char *val, size_t len);

/* Write a whole buffer to path atomically (temp + fsync + rename + directory fsync); 0 or -1 with errno set. */
int io_write_atomic(const char *path, const void *buf, size_t len);

/* The temp name an atomic writer uses for path: "<path>.tmp.<host>.<pid>" (new string; free it). */
char *io_tmp_path(const char *path);
/* fflush, fsync and fclose f (always closed); 0 or -1 with errno set. */
int io_close_durable(FILE *f);
/* fsync the directory holding path, so that a rename into it survives a crash; 0 or -1 with errno set. */
int io_fsync_dir_of(const char *path);
/* rename(tmp, path), then io_fsync_dir_of(path); 0 or -1 with errno set. */
int io_rename_durable(const char *tmp, const char *path);
/* Remove, from dir (not recursively), the temp files "*.tmp.<host>.<pid>" (and the older "*.tmp.<pid>") that
 * a process of THIS host left behind and that no longer runs (kill(pid, 0) says ESRCH). Temp files of live
 * processes and of other hosts (a shared file system) are left alone. Logs each removal; returns the count. */
size_t io_remove_stale_tmp(const char *dir);

/* A new string "dir/<fmt...>" (free it): paths of an experiment's outputs under its --out directory. */
char *io_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *io_vpath(const char *dir, const char *fmt, va_list ap);
/* FNV-1a 64-bit hash of a string: cache keys for checkpoints named by everything that determines them, so a
 * stale checkpoint is never reused silently. */
unsigned long long io_hash64(const char *s);
/* Git commit the binary was built from (or "unknown"). */
const char *io_git_commit(void);

#endif
