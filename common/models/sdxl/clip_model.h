/* clip_model: a whole CLIP model -- text tower (clip_text), image tower (clip_vision), logit scale -- loaded from
 * the layouts people have, for the CLIP metric of the SDXL experiment (paper §5.2, App. H: CLIP ViT-B/32 zero-shot;
 * issue 10 item 2).
 *
 * Layouts (clip_model_load(path)):
 *   - a transformers CLIPModel folder, as openai/clip-vit-base-patch32 ships it: PATH/config.json with
 *     "text_config", "vision_config" and "projection_dim" (absent keys take transformers' defaults, which are
 *     ViT-B/32's), and PATH/model.safetensors with text_model.*, vision_model.*, text_projection.weight,
 *     visual_projection.weight, logit_scale (names in clip_text.h and clip_vision.h);
 *   - one safetensors file in the same transformers names, or in open_clip's CLIP state_dict names
 *     (token_embedding.weight, positional_embedding, transformer.resblocks.*, ln_final.*, text_projection,
 *     visual.conv1.weight, visual.class_embedding, visual.positional_embedding, visual.ln_pre.*,
 *     visual.transformer.resblocks.*, visual.ln_post.*, visual.proj, logit_scale). The naming is told by
 *     vision_model.embeddings.patch_embedding.weight (transformers) or visual.conv1.weight (open_clip). Without a
 *     config the sizes come from the shapes (widths, vocabulary, positions, patch, grid, layer counts, projection);
 *     what shapes cannot tell comes from clip_model_opts: the activation (default quick_gelu, OpenAI's CLIP;
 *     open_clip's own ViT-B-32 trainings use gelu) and the head counts (default width / 64, which holds for every
 *     OpenAI and open_clip ViT); LayerNorm eps 1e-5; text pooling at argmax(ids), which is the end token.
 * Other tensors (position_ids, attn_mask, ...) are ignored. */
#ifndef SF_CLIP_MODEL_H
#define SF_CLIP_MODEL_H
#include "clip_text.h"
#include "clip_vision.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    clip_act act;                    /* files without config.json */
    int text_heads, vision_heads;    /* files without config.json; 0: width / 64 */
} clip_model_opts;

typedef struct clip_model clip_model;

/* opts may be NULL (quick_gelu, width / 64). NULL with one line in err naming the file (and tensor). */
clip_model *clip_model_load(const char *path, const clip_model_opts *opts, char *err, size_t errlen);
void clip_model_free(clip_model *m);

const clip_text *clip_model_text(const clip_model *m);
const clip_vision *clip_model_vision(const clip_model *m);
int clip_model_embed_dim(const clip_model *m);           /* E of both projections */
int clip_model_image_size(const clip_model *m);          /* S */
const char *clip_model_naming(const clip_model *m);      /* "transformers" | "open_clip" */
const char *clip_model_weights_path(const clip_model *m);
/* exp(logit_scale) when the file has it (100 for OpenAI's trained CLIP), else NAN */
double clip_model_logit_scale(const clip_model *m);

/* embeds[B, E] of images px[B, 3, S, S] / of token ids[B, T]. 0, or -1 with err. */
int clip_model_encode_image(const clip_model *m, const float *px, int B, float *embeds, char *err, size_t errlen);
int clip_model_encode_text(const clip_model *m, const int32_t *ids, int B, int T, float *embeds, char *err,
                           size_t errlen);

#endif
