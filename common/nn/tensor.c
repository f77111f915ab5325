/* nn/tensor: views, owned CPU tensors, dtype conversion and finite checks (see tensor.h). */
#include "tensor.h"
#include "log.h"
#include "mem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const size_t dtype_sizes[NN_NDTYPE] = {4, 2, 2};
static const char *const dtype_names[NN_NDTYPE] = {"f32", "f16", "bf16"};

size_t nn_dtype_size(nn_dtype d) { return (unsigned)d < NN_NDTYPE ? dtype_sizes[d] : 0; }
const char *nn_dtype_name(nn_dtype d) { return (unsigned)d < NN_NDTYPE ? dtype_names[d] : "?"; }

int nn_dtype_parse(const char *s, nn_dtype *d)
{
    static const struct { const char *name; nn_dtype d; } names[] = {
        {"f32", NN_F32},  {"fp32", NN_F32},    {"float32", NN_F32}, {"f16", NN_F16},       {"fp16", NN_F16},
        {"float16", NN_F16}, {"bf16", NN_BF16}, {"bfloat16", NN_BF16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *d = names[i].d;
            return 0;
        }
    return -1;
}

nn_tensor nn_tensor_view(void *data, nn_dtype dtype, device_kind dev, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > NN_TENSOR_MAX_DIM) LOG_FATAL("nn_tensor_view: ndim %d outside 0..%d", ndim, NN_TENSOR_MAX_DIM);
    if ((unsigned)dtype >= NN_NDTYPE) LOG_FATAL("nn_tensor_view: bad dtype %d", (int)dtype);
    nn_tensor t = {.data = data, .dtype = dtype, .device = dev, .ndim = ndim, .numel = 1, .owned = 0};
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) LOG_FATAL("nn_tensor_view: negative extent %lld in dim %d", (long long)shape[i], i);
        t.shape[i] = shape[i];
        t.numel *= (size_t)shape[i];
    }
    return t;
}

nn_tensor nn_tensor_alloc_cpu(nn_dtype dtype, int ndim, const int64_t *shape)
{
    nn_tensor t = nn_tensor_view(NULL, dtype, DEVICE_CPU, ndim, shape);
    size_t bytes = nn_tensor_nbytes(&t), padded = (bytes + 63) / 64 * 64;
    if (padded == 0) padded = 64;
    t.data = aligned_alloc(64, padded);
    if (!t.data) LOG_FATAL("nn_tensor_alloc_cpu: out of memory for %zu bytes", padded);
    memset(t.data, 0, padded);
    t.owned = 1;
    return t;
}

void nn_tensor_free(nn_tensor *t)
{
    if (!t) return;
    if (t->owned) {
        if (t->device != DEVICE_CPU) LOG_FATAL("nn_tensor_free: a device tensor is released by its backend");
        free(t->data);
    }
    memset(t, 0, sizeof *t);
}

int nn_tensor_shape_is(const nn_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

const char *nn_tensor_shape_str(const nn_tensor *t, char *buf, size_t len)
{
    size_t k = 0;
    if (len == 0) return buf;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

int nn_tensor_from_safetensors(nn_tensor *out, const safetensors_tensor *st, const char *label, char *err,
                               size_t errlen)
{
    nn_dtype d;
    switch (st->dtype) {
    case SAFETENSORS_F32: d = NN_F32; break;
    case SAFETENSORS_F16: d = NN_F16; break;
    case SAFETENSORS_BF16: d = NN_BF16; break;
    default:
        snprintf(err, errlen, "%s: tensor '%s': dtype %s is not a weight dtype (want F32, F16 or BF16)", label,
                 st->name, safetensors_dtype_name(st->dtype));
        return -1;
    }
    if (st->ndim > NN_TENSOR_MAX_DIM) {
        snprintf(err, errlen, "%s: tensor '%s': %d dimensions (at most %d)", label, st->name, st->ndim,
                 NN_TENSOR_MAX_DIM);
        return -1;
    }
    *out = nn_tensor_view((void *)st->data, d, DEVICE_CPU, st->ndim, st->shape);
    return 0;
}

static void require_cpu(const nn_tensor *t, const char *what)
{
    if (t->device != DEVICE_CPU) LOG_FATAL("%s: the tensor lives on %s (CPU only here)", what, device_name(t->device));
}

void nn_tensor_to_f32(float *out, const nn_tensor *t)
{
    require_cpu(t, "nn_tensor_to_f32");
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case NN_F32:
        memcpy(out, p, t->numel * 4);
        break;
    case NN_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = nn_f16_to_f32(h);
        }
        break;
    case NN_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = nn_bf16_to_f32(h);
        }
        break;
    default:
        LOG_FATAL("nn_tensor_to_f32: bad dtype %d", (int)t->dtype);
    }
}

void nn_f32_convert_to(void *dst, nn_dtype dtype, const float *src, size_t n)
{
    unsigned char *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        switch (dtype) {
        case NN_F32: memcpy(p + 4 * i, &src[i], 4); continue;
        case NN_F16: h = nn_f32_to_f16(src[i]); break;
        case NN_BF16: h = nn_f32_to_bf16(src[i]); break;
        default: LOG_FATAL("nn_f32_convert_to: bad dtype %d", (int)dtype);
        }
        memcpy(p + 2 * i, &h, 2);
    }
}

size_t nn_tensor_first_nonfinite(const nn_tensor *t)
{
    require_cpu(t, "nn_tensor_first_nonfinite");
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        float f;
        if (t->dtype == NN_F32) {
            memcpy(&f, p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            f = t->dtype == NN_F16 ? nn_f16_to_f32(h) : nn_bf16_to_f32(h);
        }
        if (!isfinite(f)) return i;
    }
    return (size_t)-1;
}
