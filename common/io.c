/* io: atomic CSV + .meta writer, durable renames, part verification, stale temp files (see io.h). */
#include "io.h"
#include "log.h"
#include "mem.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef SF_GIT_COMMIT
#define SF_GIT_COMMIT "unknown"
#endif

struct io_csv {
    FILE *f;
    char *path, *tmp;
};

const char *io_git_commit(void) { return SF_GIT_COMMIT; }

void io_meta_init(io_meta *m, int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    m->cmdline = mem_alloc(len);
    m->cmdline[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i) strcat(m->cmdline, " ");
        strcat(m->cmdline, argv[i]);
    }
    m->start = log_now();
    m->n = 0;
}

void io_meta_set(io_meta *m, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) {
            free(m->val[i]);
            m->val[i] = mem_strdup(buf);
            return;
        }
    LOG_CHECK(m->n < IO_META_MAX, "too many meta keys");
    m->key[m->n] = mem_strdup(key);
    m->val[m->n] = mem_strdup(buf);
    m->n++;
}

void io_meta_copy(io_meta *dst, const io_meta *src)
{
    *dst = *src;
    dst->cmdline = src->cmdline ? mem_strdup(src->cmdline) : NULL;
    for (int i = 0; i < src->n; i++) {
        dst->key[i] = mem_strdup(src->key[i]);
        dst->val[i] = mem_strdup(src->val[i]);
    }
}

void io_meta_free(io_meta *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->val[i]);
    }
    free(m->cmdline);
    m->n = 0;
    m->cmdline = NULL;
}

/* This host's name as it appears in temp names: no '/' or '.', so "<path>.tmp.<host>.<pid>" parses back. */
static const char *tmp_host(void)
{
    static char host[72];
    if (!host[0]) {
        char h[256] = "";
        if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "localhost");
        size_t k = 0;
        for (const char *c = h; *c && k < sizeof host - 1; c++)
            host[k++] = (*c == '/' || *c == '.') ? '_' : *c;
        host[k] = '\0';
    }
    return host;
}

char *io_tmp_path(const char *path)
{
    size_t len = strlen(path) + strlen(tmp_host()) + 32;
    char *t = mem_alloc(len);
    snprintf(t, len, "%s.tmp.%s.%ld", path, tmp_host(), (long)getpid());
    return t;
}

static char *tmp_name(const char *path) { return io_tmp_path(path); }

int io_close_durable(FILE *f)
{
    int bad = fflush(f) != 0 || ferror(f);
    int e = bad ? (errno ? errno : EIO) : 0;
    if (!bad && fsync(fileno(f)) != 0) {
        bad = 1;
        e = errno;
    }
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) errno = e ? e : EIO;
    return bad ? -1 : 0;
}

int io_fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno == EACCES ? 0 : -1;   /* a write-only directory: the rename stands, unsynced */
    int rc = fsync(fd);
    /* some file systems cannot fsync a directory; the rename is still atomic there */
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int io_rename_durable(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) return -1;
    return io_fsync_dir_of(path);
}

io_csv *io_csv_open(const char *path, const char *header)
{
    io_csv *c = mem_calloc(1, sizeof *c);
    c->path = mem_strdup(path);
    c->tmp = tmp_name(path);
    c->f = fopen(c->tmp, "w");
    if (!c->f) log_die("cannot write '%s': %s", path, strerror(errno));
    fprintf(c->f, "%s\n", header);
    return c;
}

void io_csv_row(io_csv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->f, fmt, ap);
    va_end(ap);
    fputc('\n', c->f);
}

FILE *io_csv_stream(io_csv *c) { return c->f; }

static void csv_free(io_csv *c)
{
    free(c->path);
    free(c->tmp);
    free(c);
}

/* CRC-32 and size of a file's bytes; 0 or -1 with errno */
static int file_crc32(const char *path, unsigned long *crc, unsigned long long *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char buf[1 << 16];
    uLong c = crc32(0L, Z_NULL, 0);
    unsigned long long n = 0;
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        c = crc32(c, buf, (uInt)k);
        n += k;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        errno = EIO;
        return -1;
    }
    *crc = c;
    *bytes = n;
    return 0;
}

/* <csv_path>.meta, written to a temp file, synced and renamed into place; the data's size and CRC-32 let a
 * reader tell a complete, untouched part from a damaged one (io_csv_verify). On failure the CSV's temp file
 * csv_tmp is removed too, so no result is ever left without its .meta. */
static void meta_write(const char *csv_path, const char *csv_tmp, const io_meta *m, unsigned long crc,
                       unsigned long long bytes)
{
    size_t len = strlen(csv_path) + 8;
    char *mpath = mem_alloc(len);
    snprintf(mpath, len, "%s.meta", csv_path);
    char *tmp = tmp_name(mpath);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        unlink(csv_tmp);
        log_die("cannot write '%s': %s", mpath, strerror(e));
    }
    char host[256] = "unknown", when[64] = "";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "command: %s\n", m->cmdline);
    fprintf(f, "git_commit: %s\n", io_git_commit());
    fprintf(f, "host: %s\n", host);
    fprintf(f, "written: %s\n", when);
    fprintf(f, "wall_seconds: %.3f\n", log_now() - m->start);
    for (int i = 0; i < m->n; i++) fprintf(f, "%s: %s\n", m->key[i], m->val[i]);
    fprintf(f, "data_bytes: %llu\n", bytes);
    fprintf(f, "data_crc32: %08lx\n", crc);
    if (io_close_durable(f) != 0 || io_rename_durable(tmp, mpath) != 0) {
        int e = errno;
        unlink(tmp);
        unlink(csv_tmp);
        log_die("cannot write '%s': %s", mpath, strerror(e));
    }
    free(tmp);
    free(mpath);
}

/* Commit order: the CSV's bytes are synced, its .meta (with their checksum) is committed, and only then is the
 * CSV renamed into place. A crash in between leaves at worst a .meta without its CSV (the part is simply not
 * done), or an old CSV beside a new .meta (the checksums disagree: io_csv_verify reports it), never a result
 * without its .meta. */
void io_csv_commit(io_csv *c, const io_meta *meta)
{
    if (io_close_durable(c->f) != 0) {
        int e = errno;
        unlink(c->tmp);
        log_die("cannot write '%s': %s", c->path, strerror(e));
    }
    if (meta) {
        unsigned long crc;
        unsigned long long bytes;
        if (file_crc32(c->tmp, &crc, &bytes) != 0) {
            int e = errno;
            unlink(c->tmp);
            log_die("cannot read back '%s': %s", c->tmp, strerror(e));
        }
        meta_write(c->path, c->tmp, meta, crc, bytes);
    }
    if (io_rename_durable(c->tmp, c->path) != 0) {
        int e = errno;
        unlink(c->tmp);
        log_die("cannot write '%s': %s", c->path, strerror(e));
    }
    csv_free(c);
}

/* value of "key: value" in a .meta file, into val[len]; 0 or -1 if absent */
static int meta_get(FILE *f, const char *key, char *val, size_t len)
{
    char line[4096];
    size_t kl = strlen(key);
    rewind(f);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':' && line[kl + 1] == ' ') {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(val, len, "%s", line + kl + 2);
            return 0;
        }
    return -1;
}

int io_meta_get(const char *path, const char *key, char *val, size_t len)
{
    size_t n = strlen(path) + 8;
    char *mpath = mem_alloc(n);
    snprintf(mpath, n, "%s.meta", path);
    FILE *f = fopen(mpath, "r");
    free(mpath);
    if (!f) return -1;
    int rc = meta_get(f, key, val, len);
    fclose(f);
    return rc;
}

int io_csv_verify(const char *path, char *err, size_t errlen)
{
    unsigned long crc;
    unsigned long long bytes;
    if (file_crc32(path, &crc, &bytes) != 0) {
        log_errf(err, errlen, path, "cannot read: %s", strerror(errno));
        return -1;
    }
    size_t len = strlen(path) + 8;
    char *mpath = mem_alloc(len);
    snprintf(mpath, len, "%s.meta", path);
    FILE *f = fopen(mpath, "r");
    if (!f) {
        log_errf(err, errlen, path, "its .meta file is missing (%s): incomplete or damaged", strerror(errno));
        free(mpath);
        return -1;
    }
    free(mpath);
    char vb[64], vc[64];
    int have = meta_get(f, "data_bytes", vb, sizeof vb) == 0 && meta_get(f, "data_crc32", vc, sizeof vc) == 0;
    fclose(f);
    if (!have) {
        log_errf(err, errlen, path, "its .meta file records no checksum (damaged, or written by an older version)");
        return -1;
    }
    char *end1, *end2;
    unsigned long long want_bytes = strtoull(vb, &end1, 10);
    unsigned long want_crc = strtoul(vc, &end2, 16);
    if (*end1 || *end2 || end1 == vb || end2 == vc) {
        log_errf(err, errlen, path, "its .meta file has a malformed checksum");
        return -1;
    }
    if (want_bytes != bytes || want_crc != crc) {
        log_errf(err, errlen, path,
                 "content does not match the checksum in its .meta (%llu bytes, crc32 %08lx; recorded %llu bytes, "
                 "crc32 %08lx): damaged or edited",
                 bytes, crc, want_bytes, want_crc);
        return -1;
    }
    return 0;
}

void io_csv_abort(io_csv *c)
{
    fclose(c->f);
    unlink(c->tmp);
    csv_free(c);
}

int io_write_atomic(const char *path, const void *buf, size_t len)
{
    char *tmp = tmp_name(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(tmp);
        return -1;
    }
    size_t w = fwrite(buf, 1, len, f);
    int bad = (w != len) || ferror(f);
    int e = bad ? EIO : 0;
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
        free(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    free(tmp);
    return 0;
}

/* 1 if name is "<something>.tmp.<host>.<pid>" (or the older "<something>.tmp.<pid>") of this host whose
 * process no longer exists */
static int tmp_is_stale(const char *name)
{
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t || t == name) return 0;
    const char *rest = t + 5, *dot = strrchr(rest, '.');
    const char *pid_s = dot ? dot + 1 : rest;
    if (dot) {
        size_t hl = (size_t)(dot - rest);
        if (hl != strlen(tmp_host()) || strncmp(rest, tmp_host(), hl) != 0) return 0;   /* another host's */
    }
    char *end;
    errno = 0;
    long pid = strtol(pid_s, &end, 10);
    if (end == pid_s || *end || errno || pid <= 0 || pid > INT_MAX) return 0;
    if (pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

size_t io_remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!tmp_is_stale(e->d_name)) continue;
        char *p = io_path(dir, "%s", e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(p) == 0) {
            log_info("removed '%s', left by a process that no longer runs", p);
            removed++;
        }
        free(p);
    }
    closedir(d);
    return removed;
}

unsigned long long io_hash64(const char *s)
{
    unsigned long long h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

char *io_path(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = io_vpath(dir, fmt, ap);
    va_end(ap);
    return p;
}

char *io_vpath(const char *dir, const char *fmt, va_list ap)
{
    char rel[1024];
    vsnprintf(rel, sizeof rel, fmt, ap);
    size_t len = strlen(dir) + strlen(rel) + 2;
    char *p = mem_alloc(len);
    snprintf(p, len, "%s/%s", dir, rel);
    return p;
}
