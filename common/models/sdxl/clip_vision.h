/* clip_vision: CLIP's ViT image tower (transformers' CLIPVisionModelWithProjection / open_clip's
 * VisionTransformer), config-driven; for the heterogeneity metric of the SDXL experiment (paper §5.2, App. H:
 * CLIP ViT-B/32 zero-shot, issue 10 item 2).
 *
 * The network, for pixels[B, 3, S, S] (already preprocessed: clip_image):
 *     patches = conv_{P x P, stride P, no bias}(pixels)            -> [B, G*G, D], G = S / P, row-major patches
 *     x = [class_embedding ; patches] + position_embedding[0..G*G]  -> [B, T = G*G + 1, D]
 *     x = pre_LN(x);  the clip_encoder layers (no mask);  pooled = post_LN(x[:, 0]);  embeds = pooled W_proj^T
 *
 * Name maps (L = layer index; layers as clip_encoder.h; every shape checked, errors name file and tensor):
 *   transformers (CLIPModel model.safetensors as openai/clip-vit-base-patch32 ships it):
 *     vision_model.embeddings.patch_embedding.weight [D, 3, P, P]   vision_model.embeddings.class_embedding [D]
 *     vision_model.embeddings.position_embedding.weight [G*G+1, D]  vision_model.pre_layrnorm.{weight, bias} [D]
 *     vision_model.encoder.layers.L.*                               vision_model.post_layernorm.{weight, bias} [D]
 *     visual_projection.weight [E, D]
 *   open_clip (CLIP state_dict, e.g. ViT-B-32):
 *     visual.conv1.weight [D, 3, P, P]   visual.class_embedding [D]   visual.positional_embedding [G*G+1, D]
 *     visual.ln_pre.{weight, bias}   visual.transformer.resblocks.L.*   visual.ln_post.{weight, bias}
 *     visual.proj [D, E] (NOT transposed: embeds = pooled @ proj)
 * open_clip's defaults of ViT-B-32 hold: token pooling ('tok'), no attentional pool, LN before the pool. */
#ifndef SF_CLIP_VISION_H
#define SF_CLIP_VISION_H
#include "clip_encoder.h"
#include "json.h"
#include "safetensors.h"
#include <stddef.h>

typedef struct {
    int hidden, layers, heads, intermediate;
    int image_size, patch_size;   /* S, P; S % P == 0 */
    int proj_dim;                 /* E; 0: no projection */
    clip_act act;
    float ln_eps;
} clip_vision_config;

typedef struct clip_vision clip_vision;

/* The "vision_config" object of a CLIPModel config.json; absent keys take transformers' CLIPVisionConfig defaults
 * (hidden 768, layers 12, heads 12, intermediate 3072, image 224, patch 32, quick_gelu, eps 1e-5: ViT-B/32);
 * num_channels must be 3. proj_dim is left 0 (the caller sets the top-level projection_dim). */
int clip_vision_config_parse(const json_doc *d, const json_value *obj, clip_vision_config *c, char *err,
                             size_t errlen);
/* From explicit names: prefix + the transformers names (open_clip = 0) or the open_clip names (open_clip = 1, with
 * "visual." included in the names above: pass prefix ""). st must stay open while the model is used. */
clip_vision *clip_vision_load_names(const safetensors *st, const char *label, const char *prefix, int open_clip,
                                    const clip_vision_config *cfg, char *err, size_t errlen);
void clip_vision_free(clip_vision *m);
const clip_vision_config *clip_vision_cfg(const clip_vision *m);

/* pixels[B, 3, S, S] -> pooled[B, D] (post-LN class token) and/or embeds[B, E]; each may be NULL (embeds needs a
 * projection). 0, or -1 with err. */
int clip_vision_forward(const clip_vision *m, const float *pixels, int B, float *pooled, float *embeds, char *err,
                        size_t errlen);

#endif
