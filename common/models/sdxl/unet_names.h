/* models/sdxl/unet_names: the UNet part of the single-file checkpoint name map (sd_xl_base_1.0.safetensors, the
 * original Stability "generative-models" names under `model.diffusion_model.`) -> diffusers names, as diffusers
 * v0.25.1 converts them (pipelines/stable_diffusion/convert_from_ckpt.py, convert_ldm_unet_checkpoint). Issue 9
 * item 1. The map, with lpb_b = layers_per_block of down block b and nb blocks:
 *
 *   time_embed.{0,2}.*                 -> time_embedding.linear_{1,2}.*
 *   label_emb.0.{0,2}.*                -> add_embedding.linear_{1,2}.*        (addition_embed_type "text_time")
 *   input_blocks.0.0.*                 -> conv_in.*
 *   input_blocks.I.0.<resnet>          -> down_blocks.b.resnets.l.<resnet'>   I = 1 + sum_{b'<b} (lpb_b' + 1) + l,
 *   input_blocks.I.1.*                 -> down_blocks.b.attentions.l.*        l < lpb_b
 *   input_blocks.I.0.op.*              -> down_blocks.b.downsamplers.0.conv.* l = lpb_b (every block but the last)
 *   middle_block.0.<resnet>            -> mid_block.resnets.0.<resnet'>
 *   middle_block.1.*                   -> mid_block.attentions.0.*
 *   middle_block.2.<resnet>            -> mid_block.resnets.1.<resnet'>
 *   output_blocks.I.0.<resnet>         -> up_blocks.b.resnets.l.<resnet'>     I = sum_{b'<b} (lpb_up_b' + 1) + l,
 *   output_blocks.I.1.* (not conv.*)   -> up_blocks.b.attentions.l.*          lpb_up_b = lpb of down block nb-1-b
 *   output_blocks.I.{1,2}.conv.*       -> up_blocks.b.upsamplers.0.conv.*    (1 without attention, 2 with)
 *   out.0.*                            -> conv_norm_out.*
 *   out.2.*                            -> conv_out.*
 * with <resnet> -> <resnet'>: in_layers.0 -> norm1, in_layers.2 -> conv1, emb_layers.1 -> time_emb_proj,
 * out_layers.0 -> norm2, out_layers.3 -> conv2, skip_connection -> conv_shortcut. Inside attentions the names are
 * the same in both layouts (norm, proj_in, transformer_blocks.j.{norm1,attn1.to_q,...,ff.net.0.proj,ff.net.2},
 * proj_out). The tensors themselves are identical (no reshapes) for SDXL, whose transformers use linear
 * projections in both layouts. tests/reference/sdxl_unet_ref.py checks this map against diffusers' converter. */
#ifndef SF_SDXL_UNET_NAMES_H
#define SF_SDXL_UNET_NAMES_H
#include "unet.h"
#include <stddef.h>

#define SDXL_UNET_ORIGINAL_PREFIX "model.diffusion_model."

/* orig: a name without the prefix. 0 with the diffusers name in out[outlen], or -1 (a name the map does not know,
 * or an index outside the config's blocks) with the reason in out. */
int sdxl_unet_name_from_original(const sdxl_unet_config *cfg, const char *orig, char *out, size_t outlen);

/* nn_weights_rename_fn over a whole single-file checkpoint (ctx: const sdxl_unet_config *): UNet tensors are
 * renamed, everything else (conditioner.*, first_stage_model.*) is left out. */
int sdxl_unet_rename_original(const char *name, char *out, size_t outlen, void *ctx);

#endif
