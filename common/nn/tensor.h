/* nn/tensor: the engine's tensor -- a data pointer with a dtype (f32, f16, bf16), a shape and a device
 * (DESIGN.md §2 "nn/", issue "common/nn v2" item 1).
 *
 * A tensor is a VIEW unless it owns its data (owned = 1, then nn_tensor_free releases it). Weights read from a
 * safetensors file are views into the file's memory mapping, in the dtype stored: nothing is widened to fp32
 * unless a layer asks (nn_tensor_to_f32), so a 2.6-billion-parameter fp16 UNet costs its file size, not 2x.
 * Layout is always contiguous row-major (C order); a layer that needs a strided view takes explicit strides.
 *
 * Device: data of a DEVICE_CUDA tensor is a device pointer. The functions here that touch data (conversion,
 * finite checks) are CPU-only and die on a CUDA tensor: device copies go through the backend.
 *
 * The scalar conversions are exact IEEE round-to-nearest-even (ties to even), NaN kept NaN (quiet), +-Inf kept,
 * f16 subnormals handled, and overflow to +-Inf -- the same results as torch's .to(dtype) on the CPU. */
#ifndef SF_NN_TENSOR_H
#define SF_NN_TENSOR_H
#include "device.h"
#include "safetensors.h"
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { NN_F32 = 0, NN_F16 = 1, NN_BF16 = 2, NN_NDTYPE } nn_dtype;

#define NN_TENSOR_MAX_DIM 8

typedef struct {
    void *data;                        /* CPU or device memory, per device */
    nn_dtype dtype;
    device_kind device;
    int ndim;
    int64_t shape[NN_TENSOR_MAX_DIM];
    size_t numel;
    int owned;                         /* 1: nn_tensor_free releases data */
} nn_tensor;

size_t nn_dtype_size(nn_dtype d);                  /* bytes per element (4, 2, 2) */
const char *nn_dtype_name(nn_dtype d);             /* "f32", "f16", "bf16" */
/* Parse "f32" | "fp32" | "float32" | "f16" | "fp16" | "float16" | "bf16" | "bfloat16": 0, or -1. */
int nn_dtype_parse(const char *s, nn_dtype *d);

static inline size_t nn_tensor_nbytes(const nn_tensor *t) { return t->numel * nn_dtype_size(t->dtype); }

/* A view of existing memory (not owned). shape[ndim]; ndim 0 is a scalar. Dies on ndim > NN_TENSOR_MAX_DIM or a
 * negative extent. */
nn_tensor nn_tensor_view(void *data, nn_dtype dtype, device_kind dev, int ndim, const int64_t *shape);
/* A zeroed, 64-byte-aligned CPU tensor that owns its data. */
nn_tensor nn_tensor_alloc_cpu(nn_dtype dtype, int ndim, const int64_t *shape);
/* Releases owned data (CPU only here; a CUDA-owned tensor is released by the backend) and clears *t. */
void nn_tensor_free(nn_tensor *t);

/* 1 if t has exactly this shape. */
int nn_tensor_shape_is(const nn_tensor *t, int ndim, const int64_t *shape);
/* "[320, 4, 3, 3]" into buf (truncated to len). Returns buf. */
const char *nn_tensor_shape_str(const nn_tensor *t, char *buf, size_t len);

/* A view of a safetensors tensor (F32, F16 or BF16), zero-copy. 0, or -1 with "<label>: tensor '<name>': <why>"
 * in err (other dtype; label names the file). */
int nn_tensor_from_safetensors(nn_tensor *out, const safetensors_tensor *st, const char *label, char *err,
                               size_t errlen);

/* Widen (or copy) numel elements of a CPU tensor to fp32: out[numel]. The data may be unaligned (foreign files
 * need not align tensors), so it is read bytewise-safely. */
void nn_tensor_to_f32(float *out, const nn_tensor *t);
/* Narrow fp32 to dtype: dst holds n elements of dtype (RNE). */
void nn_f32_convert_to(void *dst, nn_dtype dtype, const float *src, size_t n);
/* Index of the first non-finite element of a CPU tensor, or (size_t)-1 if all are finite. */
size_t nn_tensor_first_nonfinite(const nn_tensor *t);

/* ---- scalar conversions (inline: used in the inner loops of packing and widening kernels) ---- */
static inline float nn_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t nn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);   /* NaN: keep, quiet */
    u += 0x7fffu + ((u >> 16) & 1u);                                                /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float nn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);                       /* Inf / NaN */
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13);                /* normal: rebias 15 -> 127 */
    } else if (m == 0) {
        u = sign;                                                 /* +-0 */
    } else {                                                      /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t nn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));   /* NaN, quiet */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520 rounds to Inf (and Inf itself) */
    if (a < 0x38800000u) {                                     /* below 2^-14: f16 subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;            /* < 2^-25: rounds to 0 (2^-25 itself ties to 0) */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;                             /* 14..24: value = m * 2^(e-150) -> units 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((a >> 13) - (112u << 10));                   /* rebias exponent, keep 10 mantissa bits */
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;    /* carry into the exponent is correct rounding */
    return (uint16_t)(sign | q);
}

#ifdef __cplusplus
}
#endif

#endif
