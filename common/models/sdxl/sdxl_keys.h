/* models/sdxl/sdxl_keys: every weight of SDXL's UNet and CLIP text encoders, by name and shape, from the
 * architecture numbers (issue 9 items 1 and 9). Two users:
 *   - the tiny-checkpoint tool (exp_sdxl/sdxl_tiny.c), which writes random checkpoints with every key of the real
 *     model in both layouts;
 *   - LoRA resolution (lora.h): kohya's SDXL LoRAs name UNet modules by their ORIGINAL (single-file) names, so each
 *     diffusers module gets its original name as an alias.
 * The UNet names come in pairs: diffusers (UNet2DConditionModel state_dict) and original (Stability's
 * generative-models names, without "model.diffusion_model."), the pairing diffusers v0.25.1's
 * convert_ldm_unet_checkpoint undoes (map documented in models/sdxl/unet_names.h). The loaders check these lists:
 * a checkpoint written from them must bind every tensor of the UNet, VAE and text encoders, with the parameter
 * counts equal (tests/test_exp_sdxl.sh, tests/test_sdxl_keys.c).
 * CLIP names are transformers' (CLIPTextModel / CLIPTextModelWithProjection); the single file keeps encoder 1
 * under "conditioner.embedders.0.transformer." with the same names, and encoder 2 in OpenCLIP's layout (q/k/v
 * stacked into attn.in_proj_*, text_projection transposed): see sdxl_keys_openclip. */
#ifndef SF_SDXL_KEYS_H
#define SF_SDXL_KEYS_H
#include <stddef.h>
#include <stdint.h>

#define SDXL_KEYS_MAX_BLOCKS 8

/* fn(diffusers name, original name (NULL where there is none), ndim, shape, ctx) */
typedef void (*sdxl_key_fn)(const char *dname, const char *oname, int ndim, const int64_t *shape, void *ctx);

typedef struct {
    int in_channels, out_channels, nblocks;
    int block_out[SDXL_KEYS_MAX_BLOCKS];
    int layers_per_block;
    int down_attn[SDXL_KEYS_MAX_BLOCKS];           /* CrossAttnDownBlock2D (1) or DownBlock2D (0) */
    int transformer_layers[SDXL_KEYS_MAX_BLOCKS];  /* per down block; up blocks mirror them */
    int cross_attention_dim;
    int addition_time_embed_dim, projection_class_embeddings_input_dim;   /* 0: no text_time embedding */
    int use_linear_projection;
} sdxl_unet_shape;

/* SDXL 1.0 base: [320, 640, 1280], 2 layers, attention in blocks 1 and 2 with depths 2 and 10, context 2048,
 * 256 / 2816 for the added time embedding, linear projections. */
void sdxl_unet_shape_sdxl(sdxl_unet_shape *s);
void sdxl_keys_unet(const sdxl_unet_shape *s, sdxl_key_fn fn, void *ctx);

typedef struct {
    int vocab, hidden, intermediate, layers, heads, max_pos;
    int projection_dim;   /* 0: CLIPTextModel (no text_projection) */
} sdxl_clip_shape;

/* transformers CLIPTextModel(WithProjection) names (oname NULL) */
void sdxl_keys_clip(const sdxl_clip_shape *s, sdxl_key_fn fn, void *ctx);

/* OpenCLIP's text-tower name of a transformers CLIP tensor (single-file encoder 2, after
 * "conditioner.embedders.1.model."), into out: 0 = same tensor, 1 = one third of attn.in_proj_{weight,bias}
 * (*part = 0, 1, 2 for q, k, v), 2 = transposed (text_projection), -1 = no such name. */
int sdxl_keys_openclip(const char *tname, char *out, size_t outlen, int *part);

#endif
