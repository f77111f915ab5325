/* mem: allocation wrappers that die with file:line on failure (see mem.h). */
#include "mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mem_oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "%s:%d: error: out of memory allocating %zu bytes\n", file, line, n);
    exit(1);
}

void *mem_alloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) mem_oom(n, file, line);
    return p;
}

void *mem_calloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mem_oom(n * size, file, line);
    return p;
}

void *mem_realloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) mem_oom(n, file, line);
    return q;
}

char *mem_strdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc_at(n, file, line);
    memcpy(d, s, n);
    return d;
}
