/* safetensors: reader (mmap, zero-copy, fully validated) and atomic writer for the safetensors format
 * (https://github.com/huggingface/safetensors, "Format"):
 *     [8 bytes: N, little-endian u64] [N bytes: UTF-8 JSON header] [data section]
 * The header is a JSON object mapping tensor names to {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}
 * (offsets relative to the data section) plus an optional "__metadata__" object of string -> string.
 * Used for our own checkpoints (score networks: params + EMA + config in __metadata__) and, later, for the
 * multi-GB fp16 SDXL UNet / LoRA files: the reader maps the file and hands out pointers into the mapping.
 *
 * Validation (every failure -> NULL and one line "<file>: <reason>" in err): file at least 8 bytes; header length
 * <= 100 MB and within the file; header is well-formed JSON starting with '{' (trailing spaces allowed, as the
 * spec pads the header); each tensor has a known dtype (F32 F16 BF16 F64 I64 I32 U8), a shape of non-negative
 * integers, data_offsets [begin, end] with begin <= end <= data size and end - begin == numel * dtype size;
 * no duplicate names; tensors neither overlap nor leave holes, and together cover the data section exactly
 * (as the reference implementation requires).
 * Alignment: the writer pads the header with spaces so the data section starts at a multiple of 8 bytes, and
 * lays the data out by dtype size, largest first (the header keeps the order tensors were added in), so every
 * tensor starts at a multiple of its own dtype size without holes; a file written by another tool may not be
 * aligned, so readers of F32/F64 data from foreign files should check safetensors_aligned() or memcpy.
 * Integrity: the writer records in __metadata__ under SAFETENSORS_CHECKSUM_KEY the CRC-32 of the data section
 * and of the header's tensor entries and other metadata (8 hex digits; PyTorch's readers ignore it). The
 * reader verifies it whenever it is present and rejects a mismatch ("checksum mismatch"), so a flipped bit in
 * one of our checkpoints is an error, not a result. Files without it (other tools) are read as before. */
#ifndef SF_SAFETENSORS_H
#define SF_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SAFETENSORS_F32 = 0,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_F64,
    SAFETENSORS_I64,
    SAFETENSORS_I32,
    SAFETENSORS_U8,
    SAFETENSORS_NDTYPE
} safetensors_dtype;

#define SAFETENSORS_MAX_DIM 8

typedef struct {
    const char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIM];
    size_t numel, nbytes;
    const void *data;               /* into the mapping; valid until safetensors_close */
} safetensors_tensor;

typedef struct safetensors safetensors;

safetensors *safetensors_open(const char *path, char *err, size_t errlen);
/* Parse a buffer in memory (no copy: buf must outlive the handle); label names it in messages. */
safetensors *safetensors_open_memory(const void *buf, size_t len, const char *label, char *err, size_t errlen);
void safetensors_close(safetensors *st);

size_t safetensors_count(const safetensors *st);                       /* tensors, in header order */
const safetensors_tensor *safetensors_at(const safetensors *st, size_t i);
const safetensors_tensor *safetensors_find(const safetensors *st, const char *name);   /* NULL if absent */
int safetensors_aligned(const safetensors *st);                        /* data section 8-byte aligned? */
int safetensors_checksummed(const safetensors *st);   /* 1 if the file carried a checksum (and it matched) */

#define SAFETENSORS_CHECKSUM_KEY "sf_crc32"

size_t safetensors_metadata_count(const safetensors *st);
const char *safetensors_metadata_key(const safetensors *st, size_t i);
const char *safetensors_metadata_value(const safetensors *st, size_t i);
const char *safetensors_metadata_get(const safetensors *st, const char *key);   /* NULL if absent */
/* Typed metadata (values are strings in the format): 0, or -1 if absent, malformed or outside [lo, hi] / not finite */
int safetensors_metadata_long(const safetensors *st, const char *key, long lo, long hi, long *out);
int safetensors_metadata_double(const safetensors *st, const char *key, double *out);

const char *safetensors_dtype_name(safetensors_dtype d);
size_t safetensors_dtype_size(safetensors_dtype d);
int safetensors_dtype_parse(const char *s, safetensors_dtype *d);      /* 0 ok, -1 unknown */

/* Writer. Tensors are referenced, not copied: their data must stay valid until safetensors_writer_write.
 * The file goes to io_tmp_path(path), is synced, then renamed onto path (atomic, durable). A metadata entry
 * under SAFETENSORS_CHECKSUM_KEY is replaced by the file's own checksum. */
typedef struct safetensors_writer safetensors_writer;

safetensors_writer *safetensors_writer_alloc(void);
void safetensors_writer_free(safetensors_writer *w);
void safetensors_writer_add(safetensors_writer *w, const char *name, safetensors_dtype dtype, int ndim,
                            const int64_t *shape, const void *data);
void safetensors_writer_add_f32(safetensors_writer *w, const char *name, int ndim, const int64_t *shape,
                                const float *data);
void safetensors_writer_metadata(safetensors_writer *w, const char *key, const char *value);
/* 0 on success; -1 with "<path>: <reason>" in err. */
int safetensors_writer_write(const safetensors_writer *w, const char *path, char *err, size_t errlen);

#endif
