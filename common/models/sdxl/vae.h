/* models/sdxl/vae: the decoder half of SDXL's AutoencoderKL (issue 9 item 5; paper §5.2, App. H: "VAE decoded in
 * fp32, latents divided by 0.13025"), config-driven from vae/config.json, as diffusers v0.25.1 builds it
 * (AutoencoderKL.decode -> post_quant_conv -> Decoder):
 *   z / scaling_factor -> post_quant_conv (1x1) -> conv_in (3x3, L -> C_last)
 *   mid block: ResNet, single-head self-attention over the H*W positions (GroupNorm, q/k/v/out linear, scale
 *              C^-1/2, residual), ResNet
 *   up blocks i = 0..n-1 over reversed(block_out_channels): layers_per_block + 1 ResNets, then (not the last
 *              block) nearest 2x upsampling and a 3x3 conv
 *   GroupNorm -> SiLU -> conv_out (3x3, C_0 -> 3)
 * ResNet (ResnetBlock2D, no time embedding): x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), with a 1x1
 * conv_shortcut on x when the channel count changes. Every GroupNorm has norm_num_groups groups and eps 1e-6.
 *
 * Everything runs in fp32: SDXL's VAE overflows in fp16. Weights of any stored dtype are widened to fp32 once, at
 * load (the decoder is ~50 M parameters: 200 MB); activations are processed one image at a time; the attention is
 * computed in blocks of query rows, so a 128x128 latent never holds the 16384^2 score matrix.
 *
 * Single-file checkpoints (sd_xl_base_1.0.safetensors) keep the original (ldm) names under "first_stage_model.";
 * sdxl_vae_name_ldm maps a diffusers name onto that name, as diffusers' convert_ldm_vae_checkpoint
 * (v0.25.1, pipelines/stable_diffusion/convert_from_ckpt.py) maps the other way:
 *   {encoder,decoder}.conv_norm_out      <- {encoder,decoder}.norm_out
 *   *.mid_block.resnets.{0,1}            <- *.mid.block_{1,2}
 *   *.mid_block.attentions.0.group_norm  <- *.mid.attn_1.norm;  to_q/to_k/to_v <- q/k/v;  to_out.0 <- proj_out
 *       (the ldm q/k/v/proj_out weights are 1x1 convs [C, C, 1, 1]; both shapes are accepted)
 *   encoder.down_blocks.i.resnets.j      <- encoder.down.i.block.j;  downsamplers.0.conv <- down.i.downsample.conv
 *   decoder.up_blocks.i.resnets.j        <- decoder.up.(n-1-i).block.j  (ldm counts up blocks from the bottom)
 *   decoder.up_blocks.i.upsamplers.0.conv <- decoder.up.(n-1-i).upsample.conv
 *   resnet conv_shortcut                 <- nin_shortcut;  everything else (conv_in, conv_out, quant_conv,
 *                                           post_quant_conv, norm1/conv1/norm2/conv2) keeps its name. */
#ifndef SF_SDXL_VAE_H
#define SF_SDXL_VAE_H
#include "safetensors.h"
#include <stddef.h>
#include <stdint.h>

#define SDXL_VAE_MAX_BLOCKS 8

typedef struct {
    int in_channels, out_channels, latent_channels;
    int nblocks, block_out[SDXL_VAE_MAX_BLOCKS];
    int layers_per_block, norm_num_groups;
    float scaling_factor;
} sdxl_vae_config;

/* SDXL 1.0's vae/config.json: [128, 256, 512, 512], 2 layers per block, 32 groups, 4 latent channels, 0.13025. */
void sdxl_vae_config_sdxl(sdxl_vae_config *c);
/* Read vae/config.json (class AutoencoderKL, act_fn silu, up_block_types all UpDecoderBlock2D, one per block):
 * 0, or -1 with one line naming the file and key. */
int sdxl_vae_config_read(sdxl_vae_config *c, const char *path, char *err, size_t errlen);
/* Pixels per latent pixel on each side: 2^(nblocks - 1) (8 for SDXL). */
int sdxl_vae_scale(const sdxl_vae_config *c);

/* The ldm (single-file) name, without "first_stage_model.", of a diffusers AutoencoderKL tensor name, into
 * out[outlen]. 0, or -1 when the name is not one of the VAE's (or does not fit). nblocks: of the config. */
int sdxl_vae_name_ldm(const char *diffusers, int nblocks, char *out, size_t outlen);

/* Call fn(name, ndim, shape, ctx) for every tensor of the full AutoencoderKL (encoder and decoder) in diffusers
 * naming, with its shape: what a checkpoint of this config holds (the tiny-checkpoint tool writes these). */
void sdxl_vae_enumerate(const sdxl_vae_config *c,
                        void (*fn)(const char *name, int ndim, const int64_t *shape, void *ctx), void *ctx);

typedef struct sdxl_vae sdxl_vae;

/* Load the decoder (post_quant_conv + decoder.*) from st. single_file 0: diffusers names (a vae/ safetensors file);
 * 1: "first_stage_model." + ldm names. Every tensor is checked (present, shape, finite) and widened to fp32.
 * NULL with one line "<label>: tensor '<name>': <why>" on failure. */
sdxl_vae *sdxl_vae_load(const sdxl_vae_config *c, const safetensors *st, int single_file, const char *label,
                        char *err, size_t errlen);
void sdxl_vae_free(sdxl_vae *v);
const sdxl_vae_config *sdxl_vae_cfg(const sdxl_vae *v);

/* img[B, out_channels, s h, s w] (values ~[-1, 1]) from latents[B, latent_channels, h, w] (s = sdxl_vae_scale);
 * the latents are divided by scaling_factor first, as the SDXL pipeline does. */
void sdxl_vae_decode(sdxl_vae *v, float *img, const float *latents, int B, int h, int w);

/* diffusers' postprocessing of one image img[3, H, W]: round(255 clamp(x / 2 + 0.5, 0, 1)) (half to even, as
 * numpy rounds) into rgb[H, W, 3]. */
void sdxl_vae_to_rgb8(uint8_t *rgb, const float *img, int H, int W);

#endif
