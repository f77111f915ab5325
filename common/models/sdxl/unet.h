/* models/sdxl/unet: the SDXL UNet (diffusers UNet2DConditionModel with addition_embed_type "text_time"),
 * inference only. On the CPU: activations fp32, weights as stored (f32 / f16 / bf16 views: f16 widened one layer at
 * a time into a reused scratch buffer, bf16 straight into the bf16 / AMX GEMMs). On CUDA (sdxl_unet_set_device):
 * weights and activations fp16, fp32 accumulation. See sdxl_ops.h. Issue 9 item 3;
 * paper §5.2 / App. H (REFERENCE.md "SDXL experiment").
 *
 * Structure (every number from unet/config.json; nothing about SDXL's sizes is hard-coded):
 *   t -> sinusoidal(block_out_channels[0]) -> time_embedding (linear_1, SiLU, linear_2) = temb
 *   time_ids[B, 6] -> sinusoidal(addition_time_embed_dim) each, concat after text_embeds[B, P]
 *     -> add_embedding (linear_1, SiLU, linear_2); temb += that
 *   conv_in -> down blocks (ResNet [+ Transformer2D] x layers_per_block, then a stride-2 conv except the last)
 *   -> mid block (ResNet, Transformer2D, ResNet) -> up blocks (layers_per_block + 1 x (concat skip, ResNet
 *   [+ Transformer2D]), then nearest 2x + conv except the last) -> GroupNorm, SiLU, conv_out.
 *   ResNet: GroupNorm, SiLU, conv3x3, + time_emb_proj(SiLU(temb)), GroupNorm, SiLU, conv3x3, + shortcut (1x1 conv
 *   when the channels change). Transformer2D: GroupNorm (eps 1e-6), proj_in (linear or 1x1 conv), per layer
 *   LayerNorm + self-attention, LayerNorm + cross-attention on encoder_hidden_states, LayerNorm + GEGLU
 *   feed-forward (exact GELU), each with a residual; proj_out; + the block input.
 *   Attention is the tiled online-softmax kernel of nn/attention (no [HW x HW] score matrix).
 * Weight names are diffusers' (unet/diffusion_pytorch_model[.fp16].safetensors); a single-file checkpoint is read
 * through the name map of models/sdxl/unet_names.h.
 *
 * Errors (config, weights, inputs) are one line naming the file and the key or tensor, returned in err. */
#ifndef SF_SDXL_UNET_H
#define SF_SDXL_UNET_H
#include "device.h"
#include "lora.h"
#include "weights.h"
#include <stddef.h>

#define SDXL_UNET_MAX_BLOCKS 8

typedef struct {
    int in_channels, out_channels;
    int sample_size;                                /* latent side the model was trained at (informative) */
    int nblocks;                                    /* len(block_out_channels) == len(down_block_types) */
    int block_out_channels[SDXL_UNET_MAX_BLOCKS];
    int layers_per_block[SDXL_UNET_MAX_BLOCKS];     /* per down block (an int in the config is broadcast) */
    int down_attn[SDXL_UNET_MAX_BLOCKS];            /* CrossAttnDownBlock2D (1) or DownBlock2D (0) */
    int up_attn[SDXL_UNET_MAX_BLOCKS];              /* CrossAttnUpBlock2D (1) or UpBlock2D (0), up-block order */
    int transformer_layers[SDXL_UNET_MAX_BLOCKS];   /* per down block */
    int up_transformer_layers[SDXL_UNET_MAX_BLOCKS];/* per up block (reverse_transformer_layers_per_block or the
                                                     * reverse of transformer_layers) */
    int heads[SDXL_UNET_MAX_BLOCKS];                /* per down block: num_attention_heads, else attention_head_dim
                                                     * (diffusers' historical naming: it IS the head count) */
    int cross_attention_dim[SDXL_UNET_MAX_BLOCKS];  /* per down block */
    int mid_transformer_layers;                     /* transformer_layers[last] */
    int norm_num_groups;
    float norm_eps;                                 /* ResNet / output GroupNorm eps (transformer GroupNorm: 1e-6) */
    int flip_sin_to_cos, freq_shift;
    int has_add_embed;                              /* addition_embed_type == "text_time" */
    int addition_time_embed_dim, projection_class_embeddings_input_dim;
    int use_linear_projection;
    int time_embed_dim;                             /* 4 * block_out_channels[0] */
} sdxl_unet_config;

/* Read unet/config.json: 0, or -1 with "<path>: <key>: <why>" (missing key, bad value, unsupported option such
 * as a class embedding, time_cond_proj_dim, upcast, dual cross-attention). */
int sdxl_unet_config_load(sdxl_unet_config *cfg, const char *path, char *err, size_t errlen);

typedef struct sdxl_unet sdxl_unet;

/* Every tensor the config needs, with its shape, in binding order: for tools that write checkpoints of a config
 * and for benchmarks with random weights. */
typedef void (*sdxl_unet_tensor_fn)(const char *name, int ndim, const int64_t *shape, void *ctx);
void sdxl_unet_list_tensors(const sdxl_unet_config *cfg, sdxl_unet_tensor_fn fn, void *ctx);

/* Bind every weight of the config (checking each shape) from a store holding diffusers names, optionally under a
 * prefix (e.g. "unet."): NULL with "<file>: tensor '<name>': missing | shape [..], expected [..]". The store must
 * outlive the model. */
sdxl_unet *sdxl_unet_create(const sdxl_unet_config *cfg, const nn_weights *w, const char *prefix, char *err,
                            size_t errlen);
void sdxl_unet_free(sdxl_unet *u);
const sdxl_unet_config *sdxl_unet_cfg(const sdxl_unet *u);
size_t sdxl_unet_param_count(const sdxl_unet *u);
/* Seconds spent per kind of op since creation, indexed by sdxl_ops' SDXL_OPS_* kinds (SDXL_OPS_NKIND entries). */
const double *sdxl_unet_op_seconds(const sdxl_unet *u);

/* Convenience: a diffusers unet/ folder (config.json + the fp32 file, or the fp16 variant when variant = "fp16").
 * The store is owned by the model. */
sdxl_unet *sdxl_unet_load_diffusers(const char *unet_dir, const char *variant, char *err, size_t errlen);
/* Convenience: a single-file checkpoint (model.diffusion_model.* names) with the config.json given separately. */
sdxl_unet *sdxl_unet_load_single_file(const char *ckpt_path, const char *config_path, char *err, size_t errlen);

/* Workspace for batch B at latent size H x W (both divisible by 2^(nblocks-1)): floats. */
size_t sdxl_unet_ws_floats(const sdxl_unet *u, int B, int H, int W, int ctx_len);

/* eps[B, out_channels, H, W] = UNet(x[B, in_channels, H, W], t[B], ctx[B, ctx_len, cross_attention_dim],
 * text_embeds[B, P], time_ids[B, 6]) with P = projection_class_embeddings_input_dim - 6 addition_time_embed_dim
 * (text_embeds / time_ids unused and may be NULL without the text_time embedding). ws[ws_n] from
 * sdxl_unet_ws_floats. 0, or -1 with the reason in err (sizes that do not fit the model, a non-finite input). */
int sdxl_unet_forward(sdxl_unet *u, float *eps, const float *x, const float *t, const float *ctx, int ctx_len,
                      const float *text_embeds, const float *time_ids, int B, int H, int W, float *ws, size_t ws_n,
                      char *err, size_t errlen);

/* Run this UNet on device d (issue 9 item 7; call before the first forward pass): DEVICE_CUDA runs every layer on
 * the GPU in fp16 with fp32 accumulation (sdxl_ops.h), the weights uploaded once as fp16 on the first call; the
 * forward's inputs and output stay host fp32 arrays, and sdxl_unet_ws_floats then asks only for a small host
 * staging workspace (the device workspace belongs to the UNet). 0, or -1 with a one-line reason in err (no CUDA in
 * this build, no usable GPU). Run-time LoRA is CPU only (merge a LoRA to use it on CUDA). */
int sdxl_unet_set_device(sdxl_unet *u, device_kind d, char *err, size_t errlen);
device_kind sdxl_unet_device(const sdxl_unet *u);
/* bytes of fp16 weights on the device so far (0 on the CPU) */
size_t sdxl_unet_device_weight_bytes(const sdxl_unet *u);

/* Run-time LoRA on this UNet's (shared) weights: rt from sdxl_lora_runtime_build on the same store (NULL: none). Two
 * UNets created on one store with different tables are two LoRA'd models at the cost of one copy of the base. rt
 * must outlive its use. */
void sdxl_unet_set_lora(sdxl_unet *u, const sdxl_lora_runtime *rt);

#endif
