/* nn/weights: a store of named weight tensors read from one or several safetensors files (DESIGN.md §4
 * "Weights are named tensors in the dtype they are stored in"; issue 9 item 1 "Loading").
 *
 * Every tensor is an nn_tensor VIEW into the file's memory mapping, in the dtype stored (F32, F16, BF16):
 * nothing is widened or copied, so a 5 GB fp16 UNet costs its page cache, not 10 GB of fp32. Files stay mapped
 * until nn_weights_free. Tensors of other dtypes (I64 position ids and the like) are not weights: they are left
 * out of the store (counted in nn_weights_skipped).
 *
 * Names: as stored, or renamed while adding by a caller's map (nn_weights_rename_fn), so a single-file
 * checkpoint with the original `model.diffusion_model.*` names can be read under diffusers names (see
 * models/sdxl/unet_names.h). A name present twice (in two files, or mapped twice) is an error.
 *
 * Sources:
 *   nn_weights_add_file      one .safetensors file
 *   nn_weights_add_index     a sharded diffusers file: "<base>.safetensors.index.json" ({"weight_map": {tensor:
 *                            shard file}}): every shard listed is added, and every tensor the index names must
 *                            be in the shard it names
 *   nn_weights_add_diffusers a diffusers component folder (unet/, vae/ ...): "<base>[.<variant>].safetensors",
 *                            else its ".index.json" (variant "fp16" -> diffusion_pytorch_model.fp16.safetensors;
 *                            NULL -> the fp32 file diffusion_pytorch_model.safetensors)
 * Lookup: nn_weights_find (NULL if absent), nn_weights_get (with a shape check and a one-line error naming the
 * file and the tensor), both with an optional prefix ("unet." + "conv_in.weight").
 * Errors are one line "<file>: <reason>" (or "<file>: tensor '<name>': <reason>") in err; nothing dies. */
#ifndef SF_NN_WEIGHTS_H
#define SF_NN_WEIGHTS_H
#include "tensor.h"
#include <stddef.h>
#include <stdint.h>

typedef struct nn_weights nn_weights;

/* Rename while adding: write the name to keep under into out[outlen] and return 1; return 0 to leave the tensor
 * out; return -1 to reject the file (write the reason into out, e.g. "no diffusers name for it"). */
typedef int (*nn_weights_rename_fn)(const char *name, char *out, size_t outlen, void *ctx);

nn_weights *nn_weights_alloc(void);
void nn_weights_free(nn_weights *w);

/* 0, or -1 with "<path>: <reason>" in err (the store then holds whatever was added before the call). */
int nn_weights_add_file(nn_weights *w, const char *path, nn_weights_rename_fn rename, void *ctx, char *err,
                        size_t errlen);
int nn_weights_add_index(nn_weights *w, const char *index_path, nn_weights_rename_fn rename, void *ctx, char *err,
                         size_t errlen);
/* dir/<base>[.variant].safetensors or dir/<base>[.variant].safetensors.index.json; variant NULL or "" = none */
int nn_weights_add_diffusers(nn_weights *w, const char *dir, const char *base, const char *variant,
                             nn_weights_rename_fn rename, void *ctx, char *err, size_t errlen);

/* Add a caller's tensor as a view (its data must outlive the store), e.g. weights made in memory (a merged LoRA, a
 * benchmark's random weights); label names its origin in messages. 0, or -1 (a name already present). */
int nn_weights_add_tensor(nn_weights *w, const char *name, const nn_tensor *t, const char *label, char *err,
                          size_t errlen);

size_t nn_weights_count(const nn_weights *w);
const char *nn_weights_name_at(const nn_weights *w, size_t i);          /* i < count; order unspecified */
const nn_tensor *nn_weights_tensor_at(const nn_weights *w, size_t i);
size_t nn_weights_skipped(const nn_weights *w);                         /* non-float tensors left out */
/* The file a tensor came from (or the store's first file / "weights" if absent): for messages. */
const char *nn_weights_file_of(const nn_weights *w, const char *prefix, const char *name);

/* prefix may be NULL or "": the looked-up name is prefix followed by name. */
const nn_tensor *nn_weights_find(const nn_weights *w, const char *prefix, const char *name);
/* As find, and the shape must be shape[ndim]: NULL with "<file>: tensor '<prefix><name>': missing" or
 * "... shape [a, b], expected [c, d]" in err. */
const nn_tensor *nn_weights_get(const nn_weights *w, const char *prefix, const char *name, int ndim,
                                const int64_t *shape, char *err, size_t errlen);

/* Replace the tensor prefix+name (which must exist, with the same shape) by t, taking ownership of t's data (t
 * must be owned; *t is cleared): how a LoRA merge swaps in the merged copy of a weight while every other tensor
 * stays a view of the shared file. 0, or -1 with "<file>: tensor '<name>': <why>". */
int nn_weights_replace(nn_weights *w, const char *prefix, const char *name, nn_tensor *t, char *err, size_t errlen);

#endif
