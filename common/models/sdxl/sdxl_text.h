/* sdxl_text: SDXL's text conditioning (issue 9 item 2; diffusers' StableDiffusionXLPipeline.encode_prompt):
 *     context = concat(CLIP-L hidden states after layers-1 layers, bigG hidden states after layers-1 layers)
 *               -> [77, 768 + 1280 = 2048] per prompt (the UNet's encoder_hidden_states)
 *     pooled  = bigG final-LN at the pool position, @ text_projection -> [1280] (the UNet's text_embeds)
 * for the negative prompt and the prompt, in diffusers' order: row 0 = negative (unconditional), row 1 = prompt.
 * Each encoder gets the ids of its own tokenizer (tokenizer/ pads with the end token, tokenizer_2/ with "!" = 0).
 * negative == NULL with zero_negative (the pipeline's force_zeros_for_empty_prompt, true for SDXL base) gives
 * all-zero negative rows, as diffusers does when negative_prompt is None; otherwise a NULL negative is "".
 * Outputs are fp32 (diffusers casts them to the text encoder's dtype; the caller converts if it wants fp16). */
#ifndef SF_SDXL_TEXT_H
#define SF_SDXL_TEXT_H
#include "clip_text.h"
#include "clip_tokenizer.h"
#include <stddef.h>

typedef struct sdxl_text sdxl_text;

/* A diffusers model folder: DIR/tokenizer, DIR/tokenizer_2, DIR/text_encoder, DIR/text_encoder_2 (variant: NULL
 * or "fp16", as clip_text_load_dir). */
sdxl_text *sdxl_text_load_dir(const char *dir, const char *variant, char *err, size_t errlen);
/* From parts (e.g. the towers of a single-file checkpoint, clip_text_load_single); takes ownership of all four. */
sdxl_text *sdxl_text_create(clip_tokenizer *tok1, clip_tokenizer *tok2, clip_text *enc1, clip_text *enc2, char *err,
                            size_t errlen);
void sdxl_text_free(sdxl_text *s);

int sdxl_text_tokens(const sdxl_text *s);        /* 77 */
int sdxl_text_context_dim(const sdxl_text *s);   /* D1 + D2 (2048) */
int sdxl_text_pooled_dim(const sdxl_text *s);    /* E2 (1280) */
/* Encoder k (0: CLIP-L, 1: bigG), e.g. to adapt its weights with a LoRA (clip_text_module_weight). */
clip_text *sdxl_text_encoder(sdxl_text *s, int k);

/* context[2, tokens, context_dim], pooled[2, pooled_dim]: row 0 negative, row 1 prompt. 0, or -1 with err.
 * A prompt longer than 75 tokens is truncated (as diffusers does) with one warning line on stderr. */
int sdxl_text_encode(const sdxl_text *s, const char *prompt, const char *negative, int zero_negative,
                     float *context, float *pooled, char *err, size_t errlen);

#endif
