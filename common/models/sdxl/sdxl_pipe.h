/* models/sdxl/sdxl_pipe: the SDXL 1.0 text-to-image pipeline (issue 9 items 1, 4, 5, 6, 8; paper §5.2, App. H),
 * as diffusers v0.25.1's StableDiffusionXLPipeline runs it:
 *   prompt + negative -> sdxl_text (CLIP-L + bigG: context [2, 77, 2048], pooled [2, 1280]; a missing negative
 *   gives zeros when model_index.json says force_zeros_for_empty_prompt, as for SDXL base)
 *   noise N(0, 1) (ours, seeded per image; or given) x init sigma -> for each Euler step: UNet on
 *   [uncond, cond] (scale_model_input, time step, context, pooled text_embeds, time_ids = (H, W, 0, 0, H, W)),
 *   CFG (scale > 1; optional rescale), Euler step -> VAE decode in fp32 (latents / scaling_factor) -> image.
 * Loading: a diffusers folder (model_index.json, scheduler/, unet/, vae/, text_encoder/, text_encoder_2/,
 * tokenizer/, tokenizer_2/; the fp32 files or the "fp16" variant), or a single-file checkpoint
 * (sd_xl_base_1.0.safetensors) with a folder that holds the configs and tokenizers (as diffusers'
 * from_single_file takes them from the hub). Weights stay memory-mapped views in the stored dtype.
 * LoRAs (models/sdxl/lora.h) are merged into the UNet when it is loaded (only the adapted tensors get new merged
 * copies in the base dtype, every other tensor stays a view of the file), or applied at run time on the unchanged
 * base weights (y = W0 x + s B A x in the UNet's linear and conv ops). Text-encoder LoRA keys (text_encoder.,
 * text_encoder_2., lora_te1_, lora_te2_) adapt CLIP-L and bigG: their merged copies are swapped in while a
 * model encodes its prompt (once per model and prompt; the towers run once per prompt, so run-time application
 * would save nothing there) and swapped out again, so several models share the towers too.
 *
 * Models and the KL barycenter (paper §5.2, App. H; REFERENCE.md "SDXL experiment"): with lora_defer the LoRAs
 * are opened but not applied; sdxl_pipe_model_create then makes models of the base with the LoRAs at chosen
 * weights, merged (checkpoint merging: one UNet with W0 + sum_i w_i dW_i, new tensors only for the adapted
 * weights) or at run time (any number of such UNets on the one shared copy of the base weights), and
 * sdxl_pipe_generate_mix samples the barycenter of k models: at every step every model's UNet runs on the same
 * input, with its own text conditioning, and eps = sum_i lambda_i eps_i BEFORE classifier-free guidance (CFG is
 * linear, so the order does not matter mathematically; the paper's code mixes first). k = 1 is plain sampling:
 * sdxl_pipe_generate is sdxl_pipe_generate_mix of the model the options describe. */
#ifndef SF_SDXL_PIPE_H
#define SF_SDXL_PIPE_H
#include "device.h"
#include <stddef.h>
#include <stdint.h>

#define SDXL_PIPE_MAX_LORAS 16

typedef struct {
    const char *model;          /* diffusers folder, or a .safetensors single file */
    const char *config;         /* folder with the configs + tokenizers (single file only; NULL: model) */
    const char *variant;        /* NULL (fp32 files, or fp16 where only those exist) or "fp16" */
    int nlora;
    const char *lora_path[SDXL_PIPE_MAX_LORAS];
    float lora_weight[SDXL_PIPE_MAX_LORAS];
    int lora_runtime;           /* 0: merge into new tensors; 1: apply at run time on the unchanged base */
    int lora_defer;             /* 1: open the LoRAs only (models come from sdxl_pipe_model_create); the pipe's
                                 * own model is then the base */
    device_kind device;         /* where the UNets run (DEVICE_CPU, the zero value, or DEVICE_CUDA: fp16 on the GPU,
                                 * every model a merged copy; the text encoders and the VAE stay on the CPU) */
} sdxl_pipe_opts;

typedef struct {
    const char *prompt;
    const char *negative;       /* NULL: none (zeros with force_zeros_for_empty_prompt, else "") */
    uint64_t seed, image;       /* the noise stream: image k of seed s */
    int steps;
    float cfg, rescale;         /* CFG only when cfg > 1 (diffusers' rule); rescale only with CFG */
    int width, height;          /* pixels */
} sdxl_gen;

/* What one generation saw, for comparisons with the reference (each NULL or of the stated size). */
typedef struct {
    float *noise;               /* [4, h, w] the N(0, 1) draw (before init sigma) */
    float *final_latents;       /* [4, h, w] */
    float *context;             /* [2, 77, context_dim] rows negative, prompt */
    float *pooled;              /* [2, pooled_dim] */
} sdxl_trace;

typedef struct sdxl_pipe sdxl_pipe;

/* NULL with one line "<file>: <why>" in err (missing component folder or file, bad config, shape, LoRA key ...). */
sdxl_pipe *sdxl_pipe_load(const sdxl_pipe_opts *o, char *err, size_t errlen);
void sdxl_pipe_free(sdxl_pipe *p);

int sdxl_pipe_latent_channels(const sdxl_pipe *p);
int sdxl_pipe_vae_scale(const sdxl_pipe *p);        /* pixels per latent pixel (8 for SDXL) */
int sdxl_pipe_size_step(const sdxl_pipe *p);        /* width and height must be multiples of this */
int sdxl_pipe_context_dim(const sdxl_pipe *p);
int sdxl_pipe_pooled_dim(const sdxl_pipe *p);

/* image[3, height, width] (~[-1, 1], before postprocessing) for g; noise[4, h, w] overrides the seeded draw when
 * not NULL. 0, or -1 with one line in err (sizes, a prompt the tokenizer refuses, non-finite values). */
int sdxl_pipe_generate(sdxl_pipe *p, const sdxl_gen *g, const float *noise, float *image, sdxl_trace *tr, char *err,
                       size_t errlen);

/* ---- models and barycenter sampling ---- */
typedef struct sdxl_pipe_model sdxl_pipe_model;
int sdxl_pipe_nlora(const sdxl_pipe *p);                    /* LoRAs opened (the options' count) */
/* The base with LoRA i at weight w[i] (i < sdxl_pipe_nlora; every LoRA is applied as given, also at weight 0),
 * merged (runtime 0) or at run time (1). NULL with one line in err. Free models before their pipe. */
sdxl_pipe_model *sdxl_pipe_model_create(sdxl_pipe *p, const float *w, int runtime, char *err, size_t errlen);
void sdxl_pipe_model_free(sdxl_pipe_model *m);
/* The pipe's own model (the base, or the base with the options' LoRAs applied at load). */
sdxl_pipe_model *sdxl_pipe_default_model(sdxl_pipe *p);
/* image[3, height, width] sampled from the barycenter of models m[k] with weights lambda[k] (any reals; the
 * paper's are on the simplex): eps = sum_i lambda_i eps_i(x, t, own text conditioning) before CFG. k = 1 with
 * lambda 1 uses eps_1 as it is (plain sampling). Noise, trace (context and pooled: model 0's) and errors as
 * sdxl_pipe_generate. */
int sdxl_pipe_generate_mix(sdxl_pipe *p, sdxl_pipe_model *const *m, const float *lambda, int k, const sdxl_gen *g,
                           const float *noise, float *image, sdxl_trace *tr, char *err, size_t errlen);

#endif
