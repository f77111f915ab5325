/* nn/params: one flat float buffer carved into named tensors (DESIGN.md §4).
 * A layout is a list of (name, shape, offset); every tensor starts on a 16-float (64-byte) boundary so AVX-512
 * loads of any tensor are aligned. The same layout indexes five buffers of equal size: the parameters, their
 * gradients, Adam's first and second moments, and the EMA copy, so optimisers and EMA are single loops over
 * flat arrays and a checkpoint is a walk over the tensor list. Names follow PyTorch state_dict keys
 * ("embed.1.weight"), so our safetensors files line up with the authors' checkpoints.
 * Usage: nn_params_alloc(); nn_params_add(...) for each tensor; nn_params_finalize(); then read/write
 * p->data + p->t[i].offset (or nn_params_get). */
#ifndef SF_NN_PARAMS_H
#define SF_NN_PARAMS_H
#include <stddef.h>
#include <stdint.h>

#define NN_PARAMS_NAME_MAX 96
#define NN_PARAMS_MAX_DIM 4
#define NN_PARAMS_ALIGN 16            /* floats */

typedef struct {
    char name[NN_PARAMS_NAME_MAX];
    int ndim;
    int64_t shape[NN_PARAMS_MAX_DIM];
    size_t numel, offset;            /* offset in floats into every buffer */
    int trainable;                   /* 0 for fixed tensors (e.g. Fourier frequencies): zero grad, never counted */
} nn_params_tensor;

typedef struct {
    size_t n, cap;
    nn_params_tensor *t;
    size_t total;                    /* floats in each buffer, padding included */
    int finalized;
    float *data, *grad, *m, *v, *ema; /* [total] each, zero-initialised by nn_params_finalize */
} nn_params;

nn_params *nn_params_alloc(void);
void nn_params_free(nn_params *p);
/* Adds a tensor to the layout (before finalize); returns its index. Dies on a duplicate or too-long name. */
size_t nn_params_add(nn_params *p, const char *name, int ndim, const int64_t *shape, int trainable);
/* Allocates the five buffers (64-byte aligned, zeroed). */
void nn_params_finalize(nn_params *p);
/* Index of the tensor called name, or (size_t)-1. */
size_t nn_params_find(const nn_params *p, const char *name);
/* buf + offset of tensor i, for buf one of p->data, grad, m, v, ema */
static inline float *nn_params_get(const nn_params *p, float *buf, size_t i) { return buf + p->t[i].offset; }
/* number of trainable scalars (padding excluded) */
size_t nn_params_count(const nn_params *p);
/* zero the gradient buffer */
void nn_params_zero_grad(nn_params *p);

#endif
