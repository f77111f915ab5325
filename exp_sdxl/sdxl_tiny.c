/* sdxl_tiny: writes tiny random SDXL-structured checkpoints in the real file formats, so that the loading code of
 * the SDXL pipeline (issue 9 item 9; paper §5.2) is tested on the layouts users have:
 *   OUT/diffusers/      a stable-diffusion-xl-base-1.0 folder: model_index.json, scheduler/, unet/, vae/,
 *                       text_encoder/, text_encoder_2/ (config.json + fp32 .safetensors + the .fp16 variant),
 *                       tokenizer/ and tokenizer_2/ (vocab.json, merges.txt, tokenizer_config.json,
 *                       special_tokens_map.json)
 *   OUT/sd_xl_tiny.safetensors   the single-file layout (fp16): model.diffusion_model.* (original UNet names),
 *                       conditioner.embedders.0.transformer.* (CLIP-L, transformers names, with the int64
 *                       position_ids buffer), conditioner.embedders.1.model.* (OpenCLIP bigG layout: stacked
 *                       in_proj, transposed text_projection, logit_scale), first_stage_model.* (ldm VAE names)
 *   OUT/lora_{a,b}_{diffusers,kohya}.safetensors   two tiny LoRAs, each in diffusers keys
 *                       (unet.<module>.lora.{down,up}.weight) and in kohya keys with alphas and the ORIGINAL
 *                       module names (lora_unet_input_blocks_4_1_..., as kohya's SDXL LoRAs write them);
 *                       attention projections, feed-forwards and 3x3 / 1x1 convs of the UNet, and the text
 *                       encoders: A adapts every attention projection and MLP of CLIP-L and every attention
 *                       projection of bigG, B every attention projection and MLP of bigG (diffusers' loader needs
 *                       all of a tower's attention modules, and all of its MLPs or none), in diffusers keys
 *                       text_encoder[_2].<module>.lora_linear_layer.{down,up}.weight (as diffusers' SDXL trainer
 *                       saves them; A's bigG part in PEFT keys lora_{A,B}.weight instead: diffusers v0.25 without
 *                       PEFT converts those for attention projections only), in kohya keys lora_te1_ / lora_te2_
 *                       with alphas.
 * Every key of the real model is written (lists from models/sdxl/sdxl_keys.h and vae.h), only the widths are
 * tiny. The values are random from --seed, rounded to fp16, so the fp32 files, the fp16 variant and the single
 * file hold the same numbers and every layout must give the same images.
 * The tokenizer is a real CLIP byte-level BPE vocabulary (256 byte symbols, 256 with "</w>", then the merges,
 * then <|startoftext|> and <|endoftext|>, CLIP's order), with merges learned here by BPE on a small corpus (the
 * paper's prompts and a few words), so ordinary prompts tokenise into a handful of merged tokens. */
#include "cli.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "sdxl_keys.h"
#include "tensor.h"
#include "vae.h"
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tiny architecture (sdxl-unet's tiny UNet; text widths sum to its cross-attention width) ---- */
#define TE1_HIDDEN 8
#define TE2_HIDDEN 8
#define TE2_PROJ 8
#define TIME_DIM 4

typedef struct {
    char *dname, *oname;
    int ndim;
    int64_t shape[4];
    float *data;
    size_t n;
} tens;

typedef struct {
    tens *t;
    size_t n, cap;
    rng *r;
} tlist;

static void add_tensor(const char *d, const char *o, int ndim, const int64_t *shape, void *ctx)
{
    tlist *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = mem_realloc(l->t, l->cap * sizeof *l->t);
    }
    tens *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    size_t dl = strlen(d) + 1;
    t->dname = memcpy(mem_alloc(dl), d, dl);
    if (o) {
        size_t ol = strlen(o) + 1;
        t->oname = memcpy(mem_alloc(ol), o, ol);
    }
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], t->n *= (size_t)shape[i];
    t->data = mem_alloc(t->n * sizeof *t->data);
    size_t L = strlen(d), fan = t->n / (size_t)(ndim ? shape[0] : 1);
    int bias = L > 5 && !strcmp(d + L - 5, ".bias");
    for (size_t i = 0; i < t->n; i++) {
        double g = rng_gaussian(l->r);
        float v = bias ? (float)(0.05 * g) : ndim == 1 ? (float)(1.0 + 0.1 * g) : (float)(g / sqrt((double)fan));
        /* fp16-representable, so every layout holds the same numbers */
        t->data[i] = nn_f16_to_f32(nn_f32_to_f16(v));
    }
}

static void add_vae(const char *name, int ndim, const int64_t *shape, void *ctx) { add_tensor(name, NULL, ndim, shape, ctx); }

static void tlist_free(tlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->t[i].dname), free(l->t[i].oname), free(l->t[i].data);
    free(l->t);
}

static const tens *tfind(const tlist *l, const char *d)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].dname, d)) return &l->t[i];
    LOG_FATAL("sdxl_tiny: no tensor %s", d);
}

/* ---- writing ---- */

typedef struct {
    safetensors_writer *w;
    void **bufs;
    char **names;
    size_t n, cap;
} writer;

static void wr_init(writer *w) { memset(w, 0, sizeof *w), w->w = safetensors_writer_alloc(); }

static void *wr_keep(writer *w, void *buf, char *name)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->bufs = mem_realloc(w->bufs, w->cap * sizeof *w->bufs);
        w->names = mem_realloc(w->names, w->cap * sizeof *w->names);
    }
    w->bufs[w->n] = buf, w->names[w->n++] = name;
    return buf;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) LOG_FATAL("out of memory");
    va_end(ap);
    return s;
}

/* add data[n] of shape under name, in dtype f16 (1) or f32 (0) */
static void wr_add(writer *w, char *name, int f16, int ndim, const int64_t *shape, const float *data, size_t n)
{
    if (f16) {
        uint16_t *h = wr_keep(w, mem_alloc(n * 2 + 2), name);
        nn_f32_convert_to(h, NN_F16, data, n);
        safetensors_writer_add(w->w, name, SAFETENSORS_F16, ndim, shape, h);
    } else {
        float *f = wr_keep(w, mem_alloc(n * 4 + 4), name);
        memcpy(f, data, n * 4);
        safetensors_writer_add(w->w, name, SAFETENSORS_F32, ndim, shape, f);
    }
}

static void wr_done(writer *w, const char *path)
{
    char err[512];
    if (safetensors_writer_write(w->w, path, err, sizeof err)) log_die("%s", err);
    safetensors_writer_free(w->w);
    for (size_t i = 0; i < w->n; i++) free(w->bufs[i]), free(w->names[i]);
    free(w->bufs), free(w->names);
}

static void write_text(const char *path, const char *text)
{
    if (io_write_atomic(path, text, strlen(text))) log_die("%s: cannot write", path);
}

static void mkdir_p(const char *dir) { cli_output_dir("--out", dir); }

/* component in diffusers names, fp32 and the fp16 variant */
static void write_component(const tlist *l, const char *dir, const char *base)
{
    for (int f16 = 0; f16 < 2; f16++) {
        writer w;
        wr_init(&w);
        for (size_t i = 0; i < l->n; i++)
            wr_add(&w, fmt("%s", l->t[i].dname), f16, l->t[i].ndim, l->t[i].shape, l->t[i].data, l->t[i].n);
        char *p = fmt("%s/%s%s.safetensors", dir, base, f16 ? ".fp16" : "");
        wr_done(&w, p);
        free(p);
    }
}

/* ---- tokenizer: CLIP's byte symbols and BPE merges learned on a small corpus ---- */

static const char *const corpus[] = {
    "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus",
    "cartoon, anime, 3d, painting, b&w, low quality",
    "a photo of a female scientist", "a photo of a male scientist", "a photo of an east asian scientist",
    "a photo of a white scientist", "a photo of a cat", "a painting of the sea at night", "a red apple on a table",
    "portrait photo, studio light, high quality, detailed face", NULL};

#define MAXW 256
#define MAXS 48
#define SYML 40

typedef struct { char s[MAXS][SYML]; int n, count; } bword;

/* CLIP's bytes_to_unicode: printable bytes keep their code point, the rest map to 256 + k */
static unsigned byte_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    unsigned k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
    return 256 + k;
}

/* the bytes in CLIP's vocabulary order (printable ranges first, then the rest) */
static int byte_order(int i)
{
    int k = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
            if (k++ == i) return b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
            if (k++ == i) return b;
        }
    return -1;
}

/* JSON string body of a code point (UTF-8, with " and \ escaped) appended to s */
static void put_cp(char *s, unsigned cp)
{
    size_t n = strlen(s);
    if (cp == '"' || cp == '\\') s[n++] = '\\', s[n++] = (char)cp;
    else if (cp < 0x80) s[n++] = (char)cp;
    else s[n++] = (char)(0xC0 | (cp >> 6)), s[n++] = (char)(0x80 | (cp & 0x3F));
    s[n] = 0;
}

static int learn_merges(char (*merges)[2][SYML], int want)
{
    bword *w = mem_calloc(MAXW, sizeof *w);
    int nw = 0;
    for (int c = 0; corpus[c]; c++)
        for (const char *p = corpus[c]; *p;) {
            while (*p && !(*p >= 'a' && *p <= 'z')) p++;
            const char *q = p;
            while (*q >= 'a' && *q <= 'z') q++;
            if (q == p) break;
            int len = (int)(q - p), found = -1;
            for (int i = 0; i < nw && found < 0; i++) {
                char buf[MAXS * SYML] = "";
                for (int j = 0; j < w[i].n; j++) strcat(buf, w[i].s[j]);
                if ((int)strlen(buf) == len + 4 && !strncmp(buf, p, (size_t)len)) found = i;
            }
            if (found >= 0) w[found].count++;
            else if (nw < MAXW && len < MAXS) {
                for (int j = 0; j < len; j++) snprintf(w[nw].s[j], SYML, "%c%s", p[j], j == len - 1 ? "</w>" : "");
                w[nw].n = len, w[nw].count = 1, nw++;
            }
            p = q;
        }
    int nm = 0;
    for (; nm < want; nm++) {
        /* the most frequent adjacent pair (ties: the smallest pair, for a deterministic vocabulary) */
        char best[2][SYML] = {"", ""};
        int bestc = 0;
        for (int i = 0; i < nw; i++)
            for (int j = 0; j + 1 < w[i].n; j++) {
                int c = 0;
                for (int k = 0; k < nw; k++)
                    for (int m = 0; m + 1 < w[k].n; m++)
                        if (!strcmp(w[k].s[m], w[i].s[j]) && !strcmp(w[k].s[m + 1], w[i].s[j + 1])) c += w[k].count;
                int cmp = strcmp(w[i].s[j], best[0]) ? strcmp(w[i].s[j], best[0]) : strcmp(w[i].s[j + 1], best[1]);
                if (c > bestc || (c == bestc && cmp < 0)) {
                    bestc = c;
                    snprintf(best[0], SYML, "%s", w[i].s[j]);
                    snprintf(best[1], SYML, "%s", w[i].s[j + 1]);
                }
            }
        if (bestc < 2 || strlen(best[0]) + strlen(best[1]) >= SYML) break;
        memcpy(merges[nm][0], best[0], SYML), memcpy(merges[nm][1], best[1], SYML);
        for (int i = 0; i < nw; i++)
            for (int j = 0; j + 1 < w[i].n; j++)
                if (!strcmp(w[i].s[j], best[0]) && !strcmp(w[i].s[j + 1], best[1])) {
                    strcat(w[i].s[j], w[i].s[j + 1]);
                    memmove(w[i].s[j + 1], w[i].s[j + 2], (size_t)(w[i].n - j - 2) * SYML);
                    w[i].n--;
                }
    }
    free(w);
    return nm;
}

/* writes tokenizer folders; returns the vocabulary size */
static int write_tokenizers(const char *root)
{
    enum { WANT = 120 };
    char (*merges)[2][SYML] = mem_calloc(WANT, sizeof *merges);
    int nm = learn_merges(merges, WANT);
    size_t cap = 1 << 16;
    char *vocab = mem_alloc(cap), *mtxt = mem_alloc(cap);
    strcpy(vocab, "{");
    strcpy(mtxt, "#version: 0.2\n");
    int id = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            char tok[32] = "";
            put_cp(tok, byte_cp(byte_order(i)));
            size_t n = strlen(vocab);
            snprintf(vocab + n, cap - n, "%s\"%s%s\": %d", id ? ", " : "", tok, pass ? "</w>" : "", id);
            id++;
        }
    for (int m = 0; m < nm; m++) {
        size_t n = strlen(vocab);
        snprintf(vocab + n, cap - n, ", \"%s%s\": %d", merges[m][0], merges[m][1], id++);
        n = strlen(mtxt);
        snprintf(mtxt + n, cap - n, "%s %s\n", merges[m][0], merges[m][1]);
    }
    size_t n = strlen(vocab);
    snprintf(vocab + n, cap - n, ", \"<|startoftext|>\": %d, \"<|endoftext|>\": %d}\n", id, id + 1);
    id += 2;
    for (int k = 0; k < 2; k++) {
        char *dir = fmt("%s/%s", root, k ? "tokenizer_2" : "tokenizer"), *p;
        mkdir_p(dir);
        const char *pad = k ? "!" : "<|endoftext|>";
        write_text(p = fmt("%s/vocab.json", dir), vocab), free(p);
        write_text(p = fmt("%s/merges.txt", dir), mtxt), free(p);
        char *cfg = fmt("{\n  \"add_prefix_space\": false,\n  \"bos_token\": \"<|startoftext|>\",\n"
                        "  \"clean_up_tokenization_spaces\": true,\n  \"do_lower_case\": true,\n"
                        "  \"eos_token\": \"<|endoftext|>\",\n  \"errors\": \"replace\",\n"
                        "  \"model_max_length\": 77,\n  \"pad_token\": \"%s\",\n"
                        "  \"tokenizer_class\": \"CLIPTokenizer\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n", pad);
        write_text(p = fmt("%s/tokenizer_config.json", dir), cfg), free(p), free(cfg);
        cfg = fmt("{\n  \"bos_token\": \"<|startoftext|>\",\n  \"eos_token\": \"<|endoftext|>\",\n"
                  "  \"pad_token\": \"%s\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n", pad);
        write_text(p = fmt("%s/special_tokens_map.json", dir), cfg), free(p), free(cfg);
        free(dir);
    }
    free(vocab), free(mtxt), free(merges);
    return id;
}

/* ---- configs ---- */

static const char *UNET_CONFIG =
    "{\n  \"_class_name\": \"UNet2DConditionModel\",\n  \"_diffusers_version\": \"0.25.1\",\n"
    "  \"act_fn\": \"silu\",\n  \"addition_embed_type\": \"text_time\",\n  \"addition_embed_type_num_heads\": 64,\n"
    "  \"addition_time_embed_dim\": 4,\n  \"attention_head_dim\": [1, 2, 4],\n  \"attention_type\": \"default\",\n"
    "  \"block_out_channels\": [8, 16, 16],\n  \"center_input_sample\": false,\n  \"class_embed_type\": null,\n"
    "  \"class_embeddings_concat\": false,\n  \"conv_in_kernel\": 3,\n  \"conv_out_kernel\": 3,\n"
    "  \"cross_attention_dim\": 16,\n  \"cross_attention_norm\": null,\n"
    "  \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"],\n"
    "  \"downsample_padding\": 1,\n  \"dropout\": 0.0,\n  \"dual_cross_attention\": false,\n"
    "  \"encoder_hid_dim\": null,\n  \"encoder_hid_dim_type\": null,\n  \"flip_sin_to_cos\": true,\n"
    "  \"freq_shift\": 0,\n  \"in_channels\": 4,\n  \"layers_per_block\": 2,\n"
    "  \"mid_block_only_cross_attention\": null,\n  \"mid_block_scale_factor\": 1,\n"
    "  \"mid_block_type\": \"UNetMidBlock2DCrossAttn\",\n  \"norm_eps\": 1e-05,\n  \"norm_num_groups\": 4,\n"
    "  \"num_attention_heads\": null,\n  \"num_class_embeds\": null,\n  \"only_cross_attention\": false,\n"
    "  \"out_channels\": 4,\n  \"projection_class_embeddings_input_dim\": 32,\n"
    "  \"resnet_out_scale_factor\": 1.0,\n  \"resnet_skip_time_act\": false,\n"
    "  \"resnet_time_scale_shift\": \"default\",\n  \"reverse_transformer_layers_per_block\": null,\n"
    "  \"sample_size\": 16,\n  \"time_cond_proj_dim\": null,\n  \"time_embedding_act_fn\": null,\n"
    "  \"time_embedding_dim\": null,\n  \"time_embedding_type\": \"positional\",\n  \"timestep_post_act\": null,\n"
    "  \"transformer_layers_per_block\": [1, 1, 2],\n"
    "  \"up_block_types\": [\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"UpBlock2D\"],\n"
    "  \"upcast_attention\": false,\n  \"use_linear_projection\": true\n}\n";

static void unet_shape(sdxl_unet_shape *s)
{
    memset(s, 0, sizeof *s);
    s->in_channels = s->out_channels = 4, s->nblocks = 3, s->layers_per_block = 2;
    s->block_out[0] = 8, s->block_out[1] = 16, s->block_out[2] = 16;
    s->down_attn[1] = s->down_attn[2] = 1;
    s->transformer_layers[0] = 1, s->transformer_layers[1] = 1, s->transformer_layers[2] = 2;
    s->cross_attention_dim = TE1_HIDDEN + TE2_HIDDEN;
    s->addition_time_embed_dim = TIME_DIM;
    s->projection_class_embeddings_input_dim = TE2_PROJ + 6 * TIME_DIM;
    s->use_linear_projection = 1;
}

static void vae_cfg(sdxl_vae_config *v)
{
    memset(v, 0, sizeof *v);
    v->in_channels = v->out_channels = 3, v->latent_channels = 4, v->nblocks = 3;
    v->block_out[0] = 8, v->block_out[1] = 16, v->block_out[2] = 16;
    v->layers_per_block = 1, v->norm_num_groups = 4, v->scaling_factor = 0.13025f;
}

static const char *VAE_CONFIG =
    "{\n  \"_class_name\": \"AutoencoderKL\",\n  \"_diffusers_version\": \"0.25.1\",\n  \"act_fn\": \"silu\",\n"
    "  \"block_out_channels\": [8, 16, 16],\n"
    "  \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],\n"
    "  \"force_upcast\": true,\n  \"in_channels\": 3,\n  \"latent_channels\": 4,\n  \"layers_per_block\": 1,\n"
    "  \"norm_num_groups\": 4,\n  \"out_channels\": 3,\n  \"sample_size\": 32,\n  \"scaling_factor\": 0.13025,\n"
    "  \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]\n}\n";

static const char *SCHED_CONFIG =
    "{\n  \"_class_name\": \"EulerDiscreteScheduler\",\n  \"_diffusers_version\": \"0.19.0.dev0\",\n"
    "  \"beta_end\": 0.012,\n  \"beta_schedule\": \"scaled_linear\",\n  \"beta_start\": 0.00085,\n"
    "  \"clip_sample\": false,\n  \"interpolation_type\": \"linear\",\n  \"num_train_timesteps\": 1000,\n"
    "  \"prediction_type\": \"epsilon\",\n  \"sample_max_value\": 1.0,\n  \"set_alpha_to_one\": false,\n"
    "  \"skip_prk_steps\": true,\n  \"steps_offset\": 1,\n  \"timestep_spacing\": \"leading\",\n"
    "  \"trained_betas\": null,\n  \"use_karras_sigmas\": false\n}\n";

static const char *MODEL_INDEX =
    "{\n  \"_class_name\": \"StableDiffusionXLPipeline\",\n  \"_diffusers_version\": \"0.19.0.dev0\",\n"
    "  \"force_zeros_for_empty_prompt\": true,\n  \"add_watermarker\": null,\n"
    "  \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n  \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n";

static char *clip_config(const sdxl_clip_shape *s, int k)
{
    return fmt("{\n  \"architectures\": [\"%s\"],\n  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 0,\n"
               "  \"dropout\": 0.0,\n  \"eos_token_id\": 2,\n  \"hidden_act\": \"%s\",\n  \"hidden_size\": %d,\n"
               "  \"initializer_factor\": 1.0,\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n"
               "  \"layer_norm_eps\": 1e-05,\n  \"max_position_embeddings\": %d,\n"
               "  \"model_type\": \"clip_text_model\",\n  \"num_attention_heads\": %d,\n"
               "  \"num_hidden_layers\": %d,\n  \"pad_token_id\": 1,\n  \"projection_dim\": %d,\n"
               "  \"torch_dtype\": \"float32\",\n  \"vocab_size\": %d\n}\n",
               k ? "CLIPTextModelWithProjection" : "CLIPTextModel", k ? "gelu" : "quick_gelu", s->hidden,
               s->intermediate, s->max_pos, s->heads, s->layers, s->projection_dim ? s->projection_dim : 768,
               s->vocab);
}

/* ---- LoRAs ---- */

/* modules of the tiny UNet a LoRA adapts: attention projections and feed-forwards of one transformer, a 3x3 and a
 * 1x1 conv; which = 0 / 1 picks two different (overlapping) sets */
static int lora_target(const char *d, int which)
{
    static const char *const a[] = {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                                    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
                                    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v",
                                    "mid_block.attentions.0.transformer_blocks.1.attn1.to_out.0",
                                    "up_blocks.0.attentions.1.transformer_blocks.0.ff.net.2",
                                    "down_blocks.0.resnets.1.conv1", "up_blocks.2.resnets.0.conv_shortcut", NULL};
    static const char *const b[] = {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                                    "mid_block.attentions.0.proj_in",
                                    "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k",
                                    "up_blocks.1.resnets.1.conv2", "down_blocks.2.attentions.1.transformer_blocks.1.ff.net.0.proj",
                                    NULL};
    const char *const *l = which ? b : a;
    for (int i = 0; l[i]; i++) {
        size_t n = strlen(l[i]);
        if (!strncmp(d, l[i], n) && !strcmp(d + n, ".weight")) return 1;
    }
    return 0;
}

/* the text-encoder modules a LoRA adapts: te 0 (CLIP-L) or 1 (bigG); d is a tensor's name */
static int te_target(const char *d, int te, int which)
{
    static const char *const attn[] = {".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
                                       ".self_attn.v_proj.weight", ".self_attn.out_proj.weight", NULL},
                             *const mlp[] = {".mlp.fc1.weight", ".mlp.fc2.weight", NULL};
    int want_attn = which == 0 || te == 1, want_mlp = (which == 0 && te == 0) || (which == 1 && te == 1);
    if (which == 1 && te == 0) return 0;
    size_t L = strlen(d);
    for (int i = 0; attn[i]; i++)
        if (want_attn && L > strlen(attn[i]) && !strcmp(d + L - strlen(attn[i]), attn[i])) return 1;
    for (int i = 0; mlp[i]; i++)
        if (want_mlp && L > strlen(mlp[i]) && !strcmp(d + L - strlen(mlp[i]), mlp[i])) return 1;
    return 0;
}

/* one LoRA pair for tensor t (rank, alpha) from rr, added under the format's keys */
static void lora_pair(writer *w, const tens *t, int rank, float alpha, rng *rr, int kohya, const char *kprefix,
                      const char *dprefix, const char *dform, const char *mod_d, const char *mod_k)
{
    int64_t O = t->shape[0], C = t->shape[1], kh = t->ndim == 4 ? t->shape[2] : 1, kw = t->ndim == 4 ? t->shape[3] : 1;
    size_t na = (size_t)rank * (size_t)(C * kh * kw), nb = (size_t)O * rank;
    float *A = mem_alloc(na * 4), *B = mem_alloc(nb * 4);
    for (size_t j = 0; j < na; j++) A[j] = nn_f16_to_f32(nn_f32_to_f16((float)(0.5 * rng_gaussian(rr))));
    for (size_t j = 0; j < nb; j++) B[j] = nn_f16_to_f32(nn_f32_to_f16((float)(0.5 * rng_gaussian(rr))));
    int64_t sa[4] = {rank, C, kh, kw}, sb[4] = {O, rank, 1, 1};
    if (kohya) {
        char k[300];
        snprintf(k, sizeof k, "%s%s", kprefix, mod_k);
        for (char *p = k; *p; p++) *p = *p == '.' ? '_' : *p;
        wr_add(w, fmt("%s.lora_down.weight", k), 1, t->ndim, sa, A, na);
        wr_add(w, fmt("%s.lora_up.weight", k), 1, t->ndim, sb, B, nb);
        wr_add(w, fmt("%s.alpha", k), 0, 0, sa, &alpha, 1);
    } else {
        /* diffusers' trainer saves no alpha: scale alpha / rank = 1 -> fold the kohya scale into B */
        float s = alpha / (float)rank;
        for (size_t j = 0; j < nb; j++) B[j] *= s;
        int peft = !strcmp(dform, "peft");
        wr_add(w, fmt("%s%s.%s", dprefix, mod_d, peft ? "lora_A.weight" : !strcmp(dform, "linear") ? "lora_linear_layer.down.weight" : "lora.down.weight"), 1, t->ndim, sa, A, na);
        wr_add(w, fmt("%s%s.%s", dprefix, mod_d, peft ? "lora_B.weight" : !strcmp(dform, "linear") ? "lora_linear_layer.up.weight" : "lora.up.weight"), 1, t->ndim, sb, B, nb);
    }
    free(A), free(B);
}

static void write_loras(const tlist *unet, const tlist *te1, const tlist *te2, const char *out, rng *r)
{
    for (int which = 0; which < 2; which++)
        for (int kohya = 0; kohya < 2; kohya++) {
            writer w;
            wr_init(&w);
            rng *rr = rng_alloc(1000 + (uint64_t)which, 7);   /* both formats of one LoRA hold the same numbers */
            for (size_t i = 0; i < unet->n; i++) {
                const tens *t = &unet->t[i];
                if (!lora_target(t->dname, which)) continue;
                int rank = 2 + which;
                char mod[256], omod[256];
                snprintf(mod, sizeof mod, "%.*s", (int)(strlen(t->dname) - 7), t->dname);
                snprintf(omod, sizeof omod, "%.*s", (int)(strlen(t->oname) - 7), t->oname);
                lora_pair(&w, t, rank, (float)rank * (which ? 0.5f : 1.0f), rr, kohya, "lora_unet_", "unet.", "lora",
                          mod, omod);
            }
            /* the text encoders, from their own stream (the UNet pairs keep their values) */
            rng *rt = rng_alloc(2000 + (uint64_t)which, 7);
            for (int te = 0; te < 2; te++) {
                const tlist *l = te ? te2 : te1;
                for (size_t i = 0; i < l->n; i++) {
                    const tens *t = &l->t[i];
                    if (!te_target(t->dname, te, which)) continue;
                    char mod[256];
                    snprintf(mod, sizeof mod, "%.*s", (int)(strlen(t->dname) - 7), t->dname);
                    lora_pair(&w, t, 2, which ? 1.0f : 4.0f, rt, kohya, te ? "lora_te2_" : "lora_te1_",
                              te ? "text_encoder_2." : "text_encoder.", te && !which ? "peft" : "linear", mod, mod);
                }
            }
            rng_free(rt);
            rng_free(rr);
            char *p = fmt("%s/lora_%c_%s.safetensors", out, which ? 'b' : 'a', kohya ? "kohya" : "diffusers");
            safetensors_writer_metadata(w.w, "format", "pt");
            wr_done(&w, p);
            free(p);
        }
    (void)r;
}

/* ---- single file ---- */

static void write_single(const tlist *unet, const tlist *vae, const tlist *te1, const tlist *te2, int nblocks,
                         const char *path)
{
    writer w;
    wr_init(&w);
    for (size_t i = 0; i < unet->n; i++)
        wr_add(&w, fmt("model.diffusion_model.%s", unet->t[i].oname), 1, unet->t[i].ndim, unet->t[i].shape,
               unet->t[i].data, unet->t[i].n);
    char ldm[256];
    for (size_t i = 0; i < vae->n; i++) {
        if (sdxl_vae_name_ldm(vae->t[i].dname, nblocks, ldm, sizeof ldm)) LOG_FATAL("no ldm name: %s", vae->t[i].dname);
        const tens *t = &vae->t[i];
        int attn = strstr(ldm, ".attn_1.") && t->ndim == 2;   /* ldm keeps q/k/v/proj_out as 1x1 convs */
        int64_t s4[4] = {t->shape[0], t->shape[1], 1, 1};
        wr_add(&w, fmt("first_stage_model.%s", ldm), 1, attn ? 4 : t->ndim, attn ? s4 : t->shape, t->data, t->n);
    }
    for (size_t i = 0; i < te1->n; i++)
        wr_add(&w, fmt("conditioner.embedders.0.transformer.%s", te1->t[i].dname), 1, te1->t[i].ndim, te1->t[i].shape,
               te1->t[i].data, te1->t[i].n);
    static int64_t pos_ids[77];
    for (int i = 0; i < 77; i++) pos_ids[i] = i;
    int64_t ps[2] = {1, 77};
    char *pn = wr_keep(&w, NULL, fmt("conditioner.embedders.0.transformer.text_model.embeddings.position_ids"));
    (void)pn;
    safetensors_writer_add(w.w, w.names[w.n - 1], SAFETENSORS_I64, 2, ps, pos_ids);
    /* encoder 2 in OpenCLIP's layout */
    char on[256];
    int part;
    for (size_t i = 0; i < te2->n; i++) {
        const tens *t = &te2->t[i];
        int kind = sdxl_keys_openclip(t->dname, on, sizeof on, &part);
        if (kind < 0) LOG_FATAL("no OpenCLIP name: %s", t->dname);
        if (kind == 0) {
            wr_add(&w, fmt("conditioner.embedders.1.model.%s", on), 1, t->ndim, t->shape, t->data, t->n);
        } else if (kind == 2) {
            int64_t P = t->shape[0], D = t->shape[1], s[2] = {D, P};
            float *tr = mem_alloc(t->n * 4);
            for (int64_t a = 0; a < P; a++)
                for (int64_t b = 0; b < D; b++) tr[b * P + a] = t->data[a * D + b];
            wr_add(&w, fmt("conditioner.embedders.1.model.%s", on), 1, 2, s, tr, t->n);
            free(tr);
        } else if (part == 0) {   /* q: stack q, k, v */
            char kn[256], vn[256];
            snprintf(kn, sizeof kn, "%s", t->dname), snprintf(vn, sizeof vn, "%s", t->dname);
            memcpy(strstr(kn, "q_proj"), "k_proj", 6), memcpy(strstr(vn, "q_proj"), "v_proj", 6);
            const tens *k = tfind(te2, kn), *v = tfind(te2, vn);
            float *st = mem_alloc(3 * t->n * 4);
            memcpy(st, t->data, t->n * 4), memcpy(st + t->n, k->data, t->n * 4), memcpy(st + 2 * t->n, v->data, t->n * 4);
            int64_t s[2] = {3 * t->shape[0], t->ndim == 2 ? t->shape[1] : 0};
            wr_add(&w, fmt("conditioner.embedders.1.model.%s", on), 1, t->ndim, s, st, 3 * t->n);
            free(st);
        }
    }
    float ls = (float)log(1.0 / 0.07);
    int64_t none[1] = {0};
    wr_add(&w, fmt("conditioner.embedders.1.model.logit_scale"), 1, 0, none, &ls, 1);
    wr_done(&w, path);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sdxl_tiny --out DIR [--seed N]\n"
            "Writes a tiny random SDXL-structured model in the real formats (every key of SDXL 1.0, tiny widths):\n"
            "  DIR/diffusers/                 diffusers folder (model_index.json, scheduler/, unet/, vae/, text_encoder/,\n"
            "                                 text_encoder_2/ with fp32 and .fp16 weights, tokenizer/, tokenizer_2/)\n"
            "  DIR/sd_xl_tiny.safetensors     the single-file layout (fp16, original names)\n"
            "  DIR/lora_{a,b}_{diffusers,kohya}.safetensors   two LoRAs (UNet and text encoders), each in both key\n"
            "                                 formats\n"
            "options:\n"
            "  --out DIR   output directory (created)\n"
            "  --seed N    random seed of the weights (default 0)\n"
            "  --help      this text\n");
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    const char *out = NULL;
    long seed = 0;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'}, {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o') out = optarg;
        else if (c == 's') seed = cli_long("--seed", optarg, 0, 1L << 40);
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            cli_bad_option(argv[optind - 1]);
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (!out) log_die("--out DIR is required (see --help)");
    char *root = fmt("%s/diffusers", out), *p;
    mkdir_p(root);
    rng *r = rng_alloc((uint64_t)seed, rng_stream_id(0x7464u /* "td" */, 0));

    int vocab = write_tokenizers(root);
    sdxl_unet_shape us;
    unet_shape(&us);
    sdxl_vae_config vc;
    vae_cfg(&vc);
    sdxl_clip_shape c1 = {vocab, TE1_HIDDEN, 32, 2, 2, 77, 0}, c2 = {vocab, TE2_HIDDEN, 32, 3, 2, 77, TE2_PROJ};
    tlist unet = {0}, vae = {0}, te1 = {0}, te2 = {0};
    unet.r = vae.r = te1.r = te2.r = r;
    sdxl_keys_unet(&us, add_tensor, &unet);
    sdxl_vae_enumerate(&vc, add_vae, &vae);
    sdxl_keys_clip(&c1, add_tensor, &te1);
    sdxl_keys_clip(&c2, add_tensor, &te2);

    write_text(p = fmt("%s/model_index.json", root), MODEL_INDEX), free(p);
    static const char *const comps[] = {"scheduler", "unet", "vae", "text_encoder", "text_encoder_2"};
    for (int i = 0; i < 5; i++) {
        char *d = fmt("%s/%s", root, comps[i]);
        mkdir_p(d);
        free(d);
    }
    write_text(p = fmt("%s/scheduler/scheduler_config.json", root), SCHED_CONFIG), free(p);
    write_text(p = fmt("%s/unet/config.json", root), UNET_CONFIG), free(p);
    write_text(p = fmt("%s/vae/config.json", root), VAE_CONFIG), free(p);
    char *cj = clip_config(&c1, 0);
    write_text(p = fmt("%s/text_encoder/config.json", root), cj), free(p), free(cj);
    cj = clip_config(&c2, 1);
    write_text(p = fmt("%s/text_encoder_2/config.json", root), cj), free(p), free(cj);
    char *d;
    write_component(&unet, d = fmt("%s/unet", root), "diffusion_pytorch_model"), free(d);
    write_component(&vae, d = fmt("%s/vae", root), "diffusion_pytorch_model"), free(d);
    write_component(&te1, d = fmt("%s/text_encoder", root), "model"), free(d);
    write_component(&te2, d = fmt("%s/text_encoder_2", root), "model"), free(d);
    write_single(&unet, &vae, &te1, &te2, vc.nblocks, p = fmt("%s/sd_xl_tiny.safetensors", out)), free(p);
    write_loras(&unet, &te1, &te2, out, r);
    printf("sdxl_tiny: wrote %s (UNet %zu, VAE %zu, text encoders %zu + %zu tensors; vocabulary %d)\n", out, unet.n,
           vae.n, te1.n, te2.n, vocab);
    tlist_free(&unet), tlist_free(&vae), tlist_free(&te1), tlist_free(&te2);
    rng_free(r);
    free(root);
    return 0;
}
