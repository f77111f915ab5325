/* mem: allocation that cannot silently fail.
 * Out-of-memory is a programmer/resource error (DESIGN.md §4): report file and line, exit non-zero. */
#ifndef SF_MEM_H
#define SF_MEM_H
#include <stddef.h>

#ifdef __cplusplus   /* also included by the CUDA sources */
extern "C" {
#endif

void *mem_alloc_at(size_t n, const char *file, int line);           /* malloc or die */
void *mem_calloc_at(size_t n, size_t size, const char *file, int line);
void *mem_realloc_at(void *p, size_t n, const char *file, int line);
char *mem_strdup_at(const char *s, const char *file, int line);

#define mem_alloc(n) mem_alloc_at((n), __FILE__, __LINE__)
#define mem_calloc(n, size) mem_calloc_at((n), (size), __FILE__, __LINE__)
#define mem_realloc(p, n) mem_realloc_at((p), (n), __FILE__, __LINE__)
#define mem_strdup(s) mem_strdup_at((s), __FILE__, __LINE__)
/* typed helpers: mem_new(float, n) */
#define mem_new(T, n) ((T *)mem_calloc_at((n), sizeof(T), __FILE__, __LINE__))

#ifdef __cplusplus
}
#endif

#endif
