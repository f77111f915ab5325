/* clip_text: the CLIP text transformer of SDXL's two text encoders (issue 9 item 2): CLIP ViT-L/14 (quick-GELU,
 * diffusers text_encoder/) and OpenCLIP ViT-bigG/14 (GELU + text projection, text_encoder_2/), config-driven.
 *
 * The network (transformers' CLIPTextModel / open_clip's TextTransformer, pre-LN, causal):
 *     x = token_embedding[ids] + position_embedding[0..T-1]
 *     for each layer:  x += out_proj(causal_softmax(q k^T / sqrt(head_dim)) v),  q,k,v = proj(LN1(x))
 *                      x += fc2(act(fc1(LN2(x))))        act: quick_gelu x*sigmoid(1.702x) | gelu (erf)
 *     last = final_LN(x);  pooled = last[pool position];  text_embeds = pooled W_proj^T
 * hidden states "after layer L" are x after L layers, WITHOUT the final LayerNorm (transformers' hidden_states[L];
 * SDXL uses L = layers-1, "penultimate", as diffusers' hidden_states[-2]).
 * Pool position: eos_token_id == 2 in config.json (the legacy value SDXL's configs carry) -> the first argmax of
 * the ids (transformers' legacy rule, and open_clip's text.argmax(-1)); otherwise the first position holding
 * eos_token_id (0 when none), as newer transformers does.
 *
 * Weights stay in the dtype stored (f32, f16 or bf16 views of the safetensors mapping); each layer's matrices are
 * widened into one f32 scratch when it runs, embedding rows only as looked up.
 *
 * Name maps (L = layer index; every tensor's shape is checked against the config, errors name file and tensor):
 *   diffusers / transformers (text_encoder[_2]/model[.fp16].safetensors; single file: prefix
 *   "conditioner.embedders.0.transformer." for CLIP-L):
 *     text_model.embeddings.token_embedding.weight [V, D]     text_model.embeddings.position_embedding.weight [P, D]
 *     text_model.encoder.layers.L.self_attn.{q,k,v,out}_proj.{weight [D, D], bias [D]}
 *     text_model.encoder.layers.L.layer_norm{1,2}.{weight, bias} [D]
 *     text_model.encoder.layers.L.mlp.fc1.{weight [I, D], bias [I]}   ...mlp.fc2.{weight [D, I], bias [D]}
 *     text_model.final_layer_norm.{weight, bias} [D]          text_projection.weight [E, D] (WithProjection only)
 *   open_clip (single file: prefix "conditioner.embedders.1.model." for bigG):
 *     token_embedding.weight [V, D]    positional_embedding [P, D]
 *     transformer.resblocks.L.ln_1.{weight, bias}    transformer.resblocks.L.attn.in_proj_weight [3D, D] (q;k;v rows)
 *     transformer.resblocks.L.attn.in_proj_bias [3D]  transformer.resblocks.L.attn.out_proj.{weight, bias}
 *     transformer.resblocks.L.ln_2.{weight, bias}    transformer.resblocks.L.mlp.c_fc.{weight [I, D], bias}
 *     transformer.resblocks.L.mlp.c_proj.{weight [D, I], bias}   ln_final.{weight, bias}
 *     text_projection [D, E] (NOT transposed: text_embeds = pooled @ text_projection)
 *   Other tensors in the file (position_ids, logit_scale, the UNet, ...) are ignored.
 * A single file has no config.json: V, D, P, I, E and the layer count come from the tensor shapes; the head count
 * is the caller's, or D / 64 (both SDXL towers have 64-wide heads: 768/12, 1280/20); the activation is quick_gelu
 * for embedder 0 and gelu for embedder 1, LayerNorm eps 1e-5, pooling by argmax -- SDXL's own architecture.
 * The layers themselves (and their name maps) are clip_encoder's, shared with the image tower clip_vision. */
#ifndef SF_CLIP_TEXT_H
#define SF_CLIP_TEXT_H
#include "clip_encoder.h"
#include "json.h"
#include "safetensors.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab_size, hidden, layers, heads, intermediate, max_pos;
    int proj_dim;            /* 0: no text projection (CLIPTextModel) */
    clip_act act;
    float ln_eps;
    int eos_token_id;        /* 2: pool at argmax(ids) */
} clip_text_config;

typedef struct clip_text clip_text;

/* The config of a text tower from a JSON object: a text encoder's config.json (root) or the "text_config" of a
 * CLIPModel config.json. defaults 0: vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
 * intermediate_size, max_position_embeddings and hidden_act are required; 1: absent keys take transformers'
 * CLIPTextConfig defaults (49408, 512, 12, 8, 2048, 77, quick_gelu: ViT-B/32's text tower). eos_token_id defaults
 * to 2 (argmax pooling), layer_norm_eps to 1e-5; proj_dim is projection_dim when "architectures" names
 * CLIPTextModelWithProjection, else 0 (a CLIPModel caller sets it from the top-level projection_dim). */
int clip_text_config_parse(const json_doc *d, const json_value *obj, int defaults, clip_text_config *c, char *err,
                           size_t errlen);

/* A diffusers component folder: DIR/config.json + DIR/model[.VARIANT].safetensors (variant NULL: model.safetensors,
 * or model.fp16.safetensors when only that exists). NULL with one line in err. */
clip_text *clip_text_load_dir(const char *dir, const char *variant, char *err, size_t errlen);
/* One text tower of an open safetensors file (the single-file checkpoint): which = 0 (CLIP-L, HF names) or 1
 * (bigG, open_clip names); heads 0 = hidden / 64. st must stay open while the model is used. */
clip_text *clip_text_load_single(const safetensors *st, const char *label, int which, int heads, char *err,
                                 size_t errlen);
/* From explicit names: prefix + the HF names (open_clip = 0) or + the open_clip names (open_clip = 1), with a given
 * config (checked against the shapes). Used by both loaders; st must stay open. */
clip_text *clip_text_load_names(const safetensors *st, const char *label, const char *prefix, int open_clip,
                                const clip_text_config *cfg, char *err, size_t errlen);
void clip_text_free(clip_text *m);
const clip_text_config *clip_text_cfg(const clip_text *m);
const char *clip_text_dtype_name(const clip_text *m);    /* dtype of the token embedding as stored */

/* The matrices a LoRA adapts (diffusers' and kohya's text-encoder LoRAs, issue 9 item 6), under transformers'
 * module names whatever the file's layout: "text_model.encoder.layers.L.self_attn.{q,k,v,out}_proj" and
 * "text_model.encoder.layers.L.mlp.fc{1,2}" (in an open_clip layout q, k, v are the rows of in_proj_weight and
 * fc1 / fc2 are c_fc / c_proj). Module i < clip_text_module_count; its name goes to buf. The weight is the bound
 * tensor itself: a caller may put a same-shaped tensor in its place (a LoRA-merged copy) and must put the
 * original back before it frees the copy. */
size_t clip_text_module_count(const clip_text *m);
void clip_text_module_name(const clip_text *m, size_t i, char *buf, size_t len);
nn_tensor *clip_text_module_weight(clip_text *m, size_t i);

/* The forward pass for B sequences ids[B, T] (T <= max_pos; ids in [0, vocab_size)). Outputs (each may be NULL):
 *   hidden[B, T, D]   hidden states after `layer` layers (1..layers; no final LN);
 *   last[B, T, D]     final_LN(x after all layers);
 *   pooled[B, D]      last at the pool position;
 *   embeds[B, E]      pooled projected (error when the model has no projection).
 * Only the layers needed are run (hidden alone at layers-1 skips the last layer). 0, or -1 with err. */
int clip_text_forward(const clip_text *m, const int32_t *ids, int B, int T, int layer, float *hidden, float *last,
                      float *pooled, float *embeds, char *err, size_t errlen);

#endif
