/* nn/params: one flat float buffer carved into named tensors (DESIGN.md §4).
 * A layout is a list of (name, shape, offset); every tensor starts on a 16-float (64-byte) boundary so AVX-512
 * loads of any tensor are aligned. The weights (data) always exist. The trainer state -- gradients, Adam's
 * first and second moments, the EMA copy and the kept (remembered) weights -- exists only once a trainer asks
 * for it (nn_params_train), so an inference-only model costs its weights (and its activations) and nothing
 * else. The same layout indexes every buffer, so optimisers and EMA are single loops over flat arrays and a
 * checkpoint is a walk over the tensor list. Without trainer state the EMA IS the weights (a fresh model's EMA
 * starts as a copy of them; a model loaded for inference holds the one set it asked for). Names follow PyTorch
 * state_dict keys ("embed.1.weight"), so our safetensors files line up with the authors' checkpoints.
 * Usage: nn_params_alloc(); nn_params_add(...) for each tensor; nn_params_finalize(); then read/write
 * p->data + p->t[i].offset (or nn_params_get); nn_params_train(p) before touching grad, m, v, ema or keep. */
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
    float *data;                     /* [total] the weights, zero-initialised by nn_params_finalize */
    /* trainer state, NULL until nn_params_train: [total] each */
    float *grad, *m, *v, *ema;       /* gradient (zeroed), Adam moments (zeroed), EMA (a copy of data) */
    float *keep;                     /* remembered weights (best/kept checkpoint), see nn_params_snapshot */
    int have_keep;
} nn_params;

nn_params *nn_params_alloc(void);
void nn_params_free(nn_params *p);
/* Adds a tensor to the layout (before finalize); returns its index. Dies on a duplicate or too-long name. */
size_t nn_params_add(nn_params *p, const char *name, int ndim, const int64_t *shape, int trainable);
/* nn_params_add with the shape given inline: the first ndim of a, b, c, d (trainable) */
size_t nn_params_add4(nn_params *p, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d);
/* w[n] ~ U(-bound, bound) from r (torch's kaiming_uniform(a = sqrt 5) and bias init: bound = 1/sqrt(fan_in)) */
struct rng;
void nn_params_init_uniform(float *w, size_t n, double bound, struct rng *r);
/* Allocates the weights (64-byte aligned, zeroed). */
void nn_params_finalize(nn_params *p);
/* The trainer state (grad, m, v zeroed; ema = a copy of data; keep), allocated on the first call; later calls do
 * nothing. Returns p. Every function below that touches trainer state calls it. */
nn_params *nn_params_train(nn_params *p);
static inline int nn_params_has_train(const nn_params *p) { return p->grad != NULL; }
/* The weights a forward pass uses: the EMA if use_ema and trainer state exists, else data (which then is the
 * EMA too, see above). */
static inline const float *nn_params_weights(const nn_params *p, int use_ema)
{
    return use_ema && p->ema ? p->ema : p->data;
}
/* Index of the tensor called name, or (size_t)-1. */
size_t nn_params_find(const nn_params *p, const char *name);
/* buf + offset of tensor i, for buf one of p->data, grad, m, v, ema */
static inline float *nn_params_get(const nn_params *p, float *buf, size_t i) { return buf + p->t[i].offset; }
/* number of trainable scalars (padding excluded) */
size_t nn_params_count(const nn_params *p);
/* zero the gradient buffer (allocating the trainer state) */
void nn_params_zero_grad(nn_params *p);

/* Kept-checkpoint bookkeeping shared by every model (train.h's snapshot/restore): remember the EMA (from_ema) or
 * raw weights; restore copies them into BOTH data and ema (-1 if nothing was remembered). copy_ema_to_data
 * does nothing without trainer state (the EMA is data then). */
void nn_params_copy_ema_to_data(nn_params *p);
void nn_params_snapshot(nn_params *p, int from_ema);
int nn_params_restore(nn_params *p);

/* Checkpoint tensors: every tensor under its name (data) and "ema.<name>" (EMA; data without trainer state),
 * F32. */
struct safetensors_writer;
struct safetensors;
void nn_params_write(const nn_params *p, struct safetensors_writer *w);

/* The optimiser's part of a training checkpoint: the Adam moments m, v and the remembered (kept) weights, as
 * flat tensors "optim.m", "optim.v" [total] and, if remembered, "optim.keep". With nn_params_write this is
 * everything a resumed run needs from the buffers. */
void nn_params_write_optim(const nn_params *p, struct safetensors_writer *w);
int nn_params_read_optim(nn_params *p, const struct safetensors *st, const char *path, char *err, size_t errlen);
/* Read every tensor back with a shape check. A name may also appear as "module.<name>" (nn.DataParallel
 * state_dicts). Missing "ema.*" tensors: an error if ema_required, else EMA = data (a plain PyTorch
 * state_dict). Without trainer state only data is read ("ema.*" are checked for presence if ema_required).
 * 0, or -1 with a one-line reason naming path. */
int nn_params_read(nn_params *p, const struct safetensors *st, const char *path, int ema_required, char *err,
                   size_t errlen);
/* Inference: ONE set of weights into data, the "ema.<name>" tensors if use_ema (falling back to "<name>" when a
 * file has none, as a plain state_dict), else "<name>". No trainer state is allocated. 0, or -1 + reason. */
int nn_params_read_weights(nn_params *p, const struct safetensors *st, const char *path, int use_ema, char *err,
                           size_t errlen);

#endif
