/* fuzz_safetensors: libFuzzer harness for the safetensors reader (common/safetensors.c): checkpoints we write
 * and, later, SDXL weights from outside. The input is parsed from memory (safetensors_open_memory, the same
 * validation safetensors_open runs on its mapping); when it parses, every tensor's bytes and every metadata
 * entry are touched, so a tensor reaching past the buffer or a dangling name is caught by ASan, and the
 * invariants the header promises (offsets inside the data, numel * dtype size = nbytes) are checked. */
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy: the reader must not depend on bytes after the end (ASan sees reads past size) */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    char err[512] = "";
    safetensors *st = safetensors_open_memory(buf, size, "fuzz-input", err, sizeof err);
    volatile unsigned sink = 0;
    if (st) {
        for (size_t i = 0; i < safetensors_count(st); i++) {
            const safetensors_tensor *t = safetensors_at(st, i);
            size_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
            if (t->ndim < 0 || t->ndim > SAFETENSORS_MAX_DIM || numel != t->numel ||
                t->nbytes != t->numel * safetensors_dtype_size(t->dtype))
                abort();
            const uint8_t *p = t->data;
            if (t->nbytes && (p < buf || p + t->nbytes > buf + size)) abort();
            for (size_t b = 0; b < t->nbytes; b++) sink += p[b];
            if (safetensors_find(st, t->name) != t) abort();   /* names are unique */
            sink += (unsigned)strlen(safetensors_dtype_name(t->dtype));
        }
        for (size_t i = 0; i < safetensors_metadata_count(st); i++) {
            const char *k = safetensors_metadata_key(st, i), *v = safetensors_metadata_value(st, i);
            sink += (unsigned)strlen(k) + (unsigned)strlen(v);
            long l;
            double x;
            safetensors_metadata_long(st, k, -1000, 1000, &l);
            safetensors_metadata_double(st, k, &x);
        }
        safetensors_aligned(st);
        safetensors_close(st);
    } else if (!err[0] || strchr(err, '\n')) {
        abort();   /* every rejection is one line */
    }
    free(buf);
    (void)sink;
    return 0;
}
