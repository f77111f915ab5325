/* models/sdxl/lora: LoRA adapters for SDXL's networks, in the file formats people have (issue 9 item 6; paper
 * §5.2, App. H: two UNet LoRA fine-tunes, "checkpoint merging" W = W0 + w dW1 + (1 - w) dW2 versus the
 * barycenter, which runs both LoRA'd UNets on one shared base).
 *
 * A LoRA pair adapts one weight W[O, I...] of a component (UNet, text encoder 1 or 2) by
 *     dW = (alpha / r) B A,   A = "down" [r, I] or [r, C, kh, kw],  B = "up" [O, r] or [O, r, 1, 1]
 * (a conv LoRA's A is itself a conv with the layer's kernel, stride and padding; B is 1x1). alpha is the file's
 * `.alpha` scalar when present, else r (scale 1), as kohya and diffusers default it.
 *
 * Key formats accepted (anything else is refused with one line naming the file and the key):
 *   diffusers / PEFT   [unet.|text_encoder.|text_encoder_2.]<module>.{lora_A,lora_B}.weight
 *                      ...<module>.lora.{down,up}.weight, ...<module>.lora_linear_layer.{down,up}.weight,
 *                      ...<module>.alpha; no prefix means the UNet; the old attention-processor form
 *                      <attn>.processor.{to_q,to_k,to_v,to_out}_lora.{down,up}.weight addresses <attn>.to_q ...
 *                      (to_out -> to_out.0); the text encoders' old form
 *                      text_encoder[_2].<...>.self_attn.{to_q,to_k,to_v,to_out}_lora.{down,up}.weight addresses
 *                      <...>.self_attn.{q,k,v,out}_proj (as diffusers' converter reads it)
 *   kohya              lora_unet_<path>.{lora_down,lora_up}.weight, ..alpha; lora_te1_ / lora_te_ (text
 *                      encoder 1), lora_te2_; <path> is the module name with '.' written '_'. It is resolved by
 *                      matching against the model's own module names (and their aliases, e.g. the original
 *                      single-file names input_blocks_4_1_... that kohya's SDXL LoRAs use), never by guessing
 *                      where the underscores were; a path that two modules share is refused as ambiguous.
 * The caller describes the model with an sdxl_lora_index: every adaptable weight (module name without
 * ".weight", optional alias, shape); for the text encoders, transformers' module names
 * (text_model.encoder.layers.L.self_attn.q_proj, ...mlp.fc1: clip_text_module_name), whatever the checkpoint's
 * layout.
 *
 * Two ways to apply (both exact in fp32 up to rounding; tests/test_sdxl_lora.c checks they agree):
 *   merge     W = W0 + sum_i w_i (alpha_i / r_i) B_i A_i, computed in fp32 and stored in a NEW tensor in W0's
 *             dtype: only the adapted tensors are copied, every other weight stays a view of the shared base;
 *   runtime   y = W0 x + sum_i s_i B_i (A_i x), s_i = w_i alpha_i / r_i, on the unchanged shared base: two
 *             LoRA'd UNets cost one copy of the base weights (plus the small A, B).
 * A and B are widened to fp32 when the file is opened (they are small). */
#ifndef SF_SDXL_LORA_H
#define SF_SDXL_LORA_H
#include "conv.h"
#include "tensor.h"
#include "weights.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { SDXL_LORA_UNET = 0, SDXL_LORA_TE1, SDXL_LORA_TE2, SDXL_LORA_NCOMP } sdxl_lora_comp;

/* ---- the model's adaptable weights ---- */
typedef struct sdxl_lora_index sdxl_lora_index;
sdxl_lora_index *sdxl_lora_index_alloc(void);
void sdxl_lora_index_free(sdxl_lora_index *x);
/* Register the weight "<module>.weight" of component comp, with shape[ndim] (2: linear, 4: conv); alias: another
 * name of the same module (NULL: none). Weights of other ranks (norms, biases) are not adaptable: not added. */
void sdxl_lora_index_add(sdxl_lora_index *x, sdxl_lora_comp comp, const char *module, const char *alias, int ndim,
                         const int64_t *shape);
/* Register every 2-D and 4-D "<module>.weight" tensor among names[n] with its shape (the model's state_dict);
 * alias_fn (may be NULL) gives a module's alias into buf or returns -1 for none. */
void sdxl_lora_index_add_names(sdxl_lora_index *x, sdxl_lora_comp comp, size_t n, const char *const *names,
                               const int *ndims, const int64_t (*shapes)[4],
                               int (*alias_fn)(const char *module, char *buf, size_t len));
size_t sdxl_lora_index_count(const sdxl_lora_index *x);

/* ---- a LoRA file ---- */
typedef struct {
    sdxl_lora_comp comp;
    const char *module;     /* the model's module name (owned copy) */
    int rank, kind;         /* kind 0: linear A [r, I]; 1: conv A [r, C, kh, kw] */
    int64_t wshape[4];      /* the adapted weight's shape */
    int wndim;
    int64_t A_kh, A_kw;     /* conv A kernel (1 for linear) */
    float *A, *B;           /* fp32: A [r, I] or [r, C kh kw], B [O, r] */
    float alpha;
} sdxl_lora_pair;

typedef struct {
    char *path;
    sdxl_lora_pair *pairs;
    size_t n;
} sdxl_lora;

/* Open a LoRA safetensors file and resolve every key against idx. NULL with one line "<path>: <why naming the
 * key>" on any unknown key, unresolved or ambiguous module, missing half of a pair, shape that does not fit the
 * weight, bad alpha, non-finite value or unreadable file. */
sdxl_lora *sdxl_lora_open(const char *path, const sdxl_lora_index *idx, char *err, size_t errlen);
void sdxl_lora_free(sdxl_lora *l);

/* The pair of l adapting (comp, module), or NULL. */
const sdxl_lora_pair *sdxl_lora_find(const sdxl_lora *l, sdxl_lora_comp comp, const char *module);

/* Merge: out = base + sum_i w[i] (alpha/r) B A over the pairs of loras[i] adapting (comp, module) (none: a copy
 * of base), as a new owned CPU tensor in base's dtype. Returns the number of pairs applied. */
int sdxl_lora_merge(nn_tensor *out, const nn_tensor *base, sdxl_lora_comp comp, const char *module,
                    const sdxl_lora *const *loras, const float *w, size_t nl);

/* ---- runtime application ---- */
typedef struct {
    const sdxl_lora_pair *p;
    float scale;           /* w alpha / r */
} sdxl_lora_adapter;

/* The adapters for (comp, module) from loras[nl] with weights w[nl], into out[max]; returns the count. */
size_t sdxl_lora_adapters(sdxl_lora_adapter *out, size_t max, sdxl_lora_comp comp, const char *module,
                          const sdxl_lora *const *loras, const float *w, size_t nl);
/* Scratch floats the two calls below need for N rows / a batch. */
size_t sdxl_lora_linear_ws(const sdxl_lora_adapter *ad, size_t n, int N);
size_t sdxl_lora_conv_ws(const sdxl_lora_adapter *ad, size_t n, int B, const nn_conv_geom *g);
/* out[N, O] += sum_k s_k (in[N, I] A_k^T) B_k^T */
void sdxl_lora_linear_add(float *out, const float *in, int N, int I, int O, const sdxl_lora_adapter *ad, size_t n,
                          float *ws);
/* out[B, O, OH, OW] += sum_k s_k B_k conv_{A_k}(in[B, C, H, W]) with the layer's geometry g (g->OC = O) */
void sdxl_lora_conv_add(float *out, const float *in, int B, const nn_conv_geom *g, const sdxl_lora_adapter *ad,
                        size_t n, float *ws);

/* ---- runtime table: the adapters of every adapted weight of a model, keyed by the weight tensor ----
 * Built against the model's weight store (the tensors the network binds), so the layer ops can find a weight's
 * adapters by the nn_tensor pointer they are given (models/sdxl/sdxl_ops.h). Several tables on one store = several
 * LoRA'd networks on one shared copy of the base weights. */
typedef struct sdxl_lora_runtime sdxl_lora_runtime;
/* For every module of comp that any of loras[nl] adapts: the tensor prefix + "<module>.weight" of w, with its
 * adapters at weights wts[nl]. NULL with one line in err when a module has no weight in w. */
sdxl_lora_runtime *sdxl_lora_runtime_build(const nn_weights *w, const char *prefix, sdxl_lora_comp comp,
                                           const sdxl_lora *const *loras, const float *wts, size_t nl, char *err,
                                           size_t errlen);
void sdxl_lora_runtime_free(sdxl_lora_runtime *rt);
size_t sdxl_lora_runtime_count(const sdxl_lora_runtime *rt);           /* adapted weights */
/* The adapters of weight W (by address: a tensor of the store), *ad set; 0 when W is not adapted. */
size_t sdxl_lora_runtime_find(const sdxl_lora_runtime *rt, const nn_tensor *W, const sdxl_lora_adapter **ad);

#endif
