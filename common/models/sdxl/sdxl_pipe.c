/* models/sdxl/sdxl_pipe: the SDXL text-to-image pipeline (issue 9; paper §5.2, App. H); see sdxl_pipe.h. The
 * order of operations and the conventions (row 0 negative, time_ids, CFG only for scale > 1, rescale only with
 * CFG, noise x init sigma also for given latents) are StableDiffusionXLPipeline.__call__'s (diffusers v0.25.1). */
#include "sdxl_pipe.h"
#include "euler.h"
#include "json.h"
#include "log.h"
#include "lora.h"
#include "mem.h"
#include "safetensors.h"
#include "sdxl_keys.h"
#include "sdxl_text.h"
#include "unet.h"
#include "unet_names.h"
#include "vae.h"
#include "weights.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sdxl_pipe_model {
    sdxl_pipe *p;
    float w[SDXL_PIPE_MAX_LORAS];   /* every LoRA's weight */
    int runtime;
    nn_weights *uw;                 /* merged: its own store (views of the base + merged copies); NULL: the pipe's */
    sdxl_unet *unet;
    sdxl_lora_runtime *rt;
    /* the text conditioning of the last prompt encoded ([2, T, C] and [2, P], rows negative, prompt) */
    char *prompt, *negative;
    int have_text, neg_null;
    float *ctx, *pooled;
};

struct sdxl_pipe {
    sdxl_text *text;
    nn_weights *uw;
    sdxl_unet_config ucfg;
    sdxl_vae *vae;
    safetensors *vae_st, *single;   /* the single file stays open: the text towers are views into it */
    sdxl_euler_config sched;
    int force_zeros;
    sdxl_lora *loras[SDXL_PIPE_MAX_LORAS];
    int nlora;
    sdxl_pipe_model *def;           /* the options' model */
    device_kind device;             /* where every model's UNet runs */
    float *ws;
    size_t ws_n;
};

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_file(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static char *path2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = mem_alloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* heads of a text encoder from DIR/config.json */
static int read_heads(const char *dir, int *heads, char *err, size_t errlen)
{
    char *p = path2(dir, "config.json");
    json_doc *d = json_load(p, err, errlen);
    int64_t h = 0;
    int rc = d ? json_get_int(d, json_root(d), "num_attention_heads", 1, 4096, &h, err, errlen) : -1;
    json_free(d);
    free(p);
    *heads = (int)h;
    return rc;
}

/* force_zeros_for_empty_prompt of DIR/model_index.json (true when the file or key is absent, as for SDXL base) */
static int read_force_zeros(const char *dir, int *fz, char *err, size_t errlen)
{
    char *p = path2(dir, "model_index.json");
    *fz = 1;
    int rc = 0;
    if (is_file(p)) {
        json_doc *d = json_load(p, err, errlen);
        rc = d ? json_get_bool_or(d, json_root(d), "force_zeros_for_empty_prompt", 1, fz, err, errlen) : -1;
        json_free(d);
    }
    free(p);
    return rc;
}

/* ---- LoRA ---- */

typedef struct {
    char (*d)[256], (*o)[256];
    size_t n, cap;
} alias_tab;

static void on_alias(const char *d, const char *o, int ndim, const int64_t *shape, void *ctx)
{
    (void)shape;
    alias_tab *t = ctx;
    size_t L = strlen(d);
    if ((ndim != 2 && ndim != 4) || !o || L < 8 || strcmp(d + L - 7, ".weight")) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->d = mem_realloc(t->d, t->cap * sizeof *t->d);
        t->o = mem_realloc(t->o, t->cap * sizeof *t->o);
    }
    snprintf(t->d[t->n], 256, "%.*s", (int)(L - 7), d);
    snprintf(t->o[t->n], 256, "%.*s", (int)(strlen(o) - 7), o);
    t->n++;
}

/* the UNet's shape for the original-name aliases; 0, or -1 when the config is outside what sdxl_keys lists */
static int unet_shape_of(const sdxl_unet_config *c, sdxl_unet_shape *s)
{
    memset(s, 0, sizeof *s);
    if (c->nblocks > SDXL_KEYS_MAX_BLOCKS) return -1;
    s->in_channels = c->in_channels, s->out_channels = c->out_channels, s->nblocks = c->nblocks;
    s->layers_per_block = c->layers_per_block[0];
    s->cross_attention_dim = c->cross_attention_dim[0];
    for (int b = 0; b < c->nblocks; b++) {
        if (c->layers_per_block[b] != s->layers_per_block || c->cross_attention_dim[b] != s->cross_attention_dim ||
            c->up_attn[c->nblocks - 1 - b] != c->down_attn[b] ||
            c->up_transformer_layers[c->nblocks - 1 - b] != c->transformer_layers[b])
            return -1;
        s->block_out[b] = c->block_out_channels[b];
        s->down_attn[b] = c->down_attn[b];
        s->transformer_layers[b] = c->transformer_layers[b];
    }
    s->addition_time_embed_dim = c->has_add_embed ? c->addition_time_embed_dim : 0;
    s->projection_class_embeddings_input_dim = c->projection_class_embeddings_input_dim;
    s->use_linear_projection = c->use_linear_projection;
    return 0;
}

/* open the LoRAs against the UNet's weights (with original-name aliases for kohya files) and the text encoders'
 * adaptable matrices (transformers names, whatever the layout) */
static int open_loras(sdxl_pipe *p, const sdxl_pipe_opts *o, char *err, size_t errlen)
{
    if (o->nlora == 0) return 0;
    sdxl_lora_index *idx = sdxl_lora_index_alloc();
    alias_tab at = {0};
    sdxl_unet_shape us;
    if (unet_shape_of(&p->ucfg, &us) == 0) sdxl_keys_unet(&us, on_alias, &at);
    for (size_t i = 0; i < nn_weights_count(p->uw); i++) {
        const char *name = nn_weights_name_at(p->uw, i);
        const nn_tensor *t = nn_weights_tensor_at(p->uw, i);
        size_t L = strlen(name);
        if ((t->ndim != 2 && t->ndim != 4) || L < 8 || strcmp(name + L - 7, ".weight")) continue;
        char mod[256];
        snprintf(mod, sizeof mod, "%.*s", (int)(L - 7), name);
        const char *alias = NULL;
        for (size_t k = 0; k < at.n && !alias; k++)
            if (!strcmp(at.d[k], mod)) alias = at.o[k];
        sdxl_lora_index_add(idx, SDXL_LORA_UNET, mod, alias, t->ndim, t->shape);
    }
    free(at.d), free(at.o);
    for (int k = 0; k < 2; k++) {
        clip_text *e = sdxl_text_encoder(p->text, k);
        for (size_t i = 0; i < clip_text_module_count(e); i++) {
            char mod[256];
            clip_text_module_name(e, i, mod, sizeof mod);
            const nn_tensor *t = clip_text_module_weight(e, i);
            sdxl_lora_index_add(idx, k ? SDXL_LORA_TE2 : SDXL_LORA_TE1, mod, NULL, t->ndim, t->shape);
        }
    }
    int rc = 0;
    for (int i = 0; i < o->nlora && rc == 0; i++) {
        if (!(p->loras[i] = sdxl_lora_open(o->lora_path[i], idx, err, errlen))) rc = -1;
        else p->nlora = i + 1;
    }
    sdxl_lora_index_free(idx);
    return rc;
}

/* ---- models ---- */

int sdxl_pipe_nlora(const sdxl_pipe *p) { return p->nlora; }
sdxl_pipe_model *sdxl_pipe_default_model(sdxl_pipe *p) { return p->def; }

void sdxl_pipe_model_free(sdxl_pipe_model *m)
{
    if (!m) return;
    sdxl_unet_free(m->unet);
    sdxl_lora_runtime_free(m->rt);
    nn_weights_free(m->uw);
    free(m->prompt), free(m->negative), free(m->ctx), free(m->pooled);
    free(m);
}

sdxl_pipe_model *sdxl_pipe_model_create(sdxl_pipe *p, const float *w, int runtime, char *err, size_t errlen)
{
    /* run-time LoRA is CPU only: on the GPU every model is its own merged fp16 copy of the UNet (about 5 GB for
     * SDXL, so the barycenter of two fine-tunes holds two) */
    if (p->device != DEVICE_CPU) runtime = 0;
    sdxl_pipe_model *m = mem_calloc(1, sizeof *m);
    m->p = p, m->runtime = runtime;
    for (int i = 0; i < p->nlora; i++) {
        if (!isfinite(w[i])) {
            log_errf(err, errlen, p->loras[i]->path, "LoRA weight %g is not finite", (double)w[i]);
            goto fail;
        }
        m->w[i] = w[i];
    }
    const sdxl_lora *const *ls = (const sdxl_lora *const *)p->loras;
    const nn_weights *store = p->uw;
    if (!runtime && p->nlora) {
        /* checkpoint merging: a store of views of the base in which every adapted weight is a merged copy */
        m->uw = nn_weights_alloc();
        for (size_t i = 0; i < nn_weights_count(p->uw); i++) {
            const char *name = nn_weights_name_at(p->uw, i);
            if (nn_weights_add_tensor(m->uw, name, nn_weights_tensor_at(p->uw, i),
                                      nn_weights_file_of(p->uw, NULL, name), err, errlen))
                goto fail;
        }
        for (int i = 0; i < p->nlora; i++)
            for (size_t k = 0; k < p->loras[i]->n; k++) {
                const sdxl_lora_pair *pr = &p->loras[i]->pairs[k];
                if (pr->comp != SDXL_LORA_UNET) continue;
                int seen = 0;   /* each module once, with every LoRA's pair */
                for (int j = 0; j < i && !seen; j++) seen = sdxl_lora_find(p->loras[j], SDXL_LORA_UNET, pr->module) != NULL;
                if (seen) continue;
                char wn[300];
                snprintf(wn, sizeof wn, "%s.weight", pr->module);
                nn_tensor merged;
                sdxl_lora_merge(&merged, nn_weights_find(p->uw, NULL, wn), SDXL_LORA_UNET, pr->module, ls, m->w,
                                (size_t)p->nlora);
                if (nn_weights_replace(m->uw, NULL, wn, &merged, err, errlen)) {
                    nn_tensor_free(&merged);
                    goto fail;
                }
            }
        store = m->uw;
    }
    if (!(m->unet = sdxl_unet_create(&p->ucfg, store, NULL, err, errlen))) goto fail;
    if (p->device != DEVICE_CPU && sdxl_unet_set_device(m->unet, p->device, err, errlen)) goto fail;
    if (runtime && p->nlora) {
        m->rt = sdxl_lora_runtime_build(p->uw, NULL, SDXL_LORA_UNET, ls, m->w, (size_t)p->nlora, err, errlen);
        if (!m->rt) goto fail;
        sdxl_unet_set_lora(m->unet, m->rt);
    }
    return m;
fail:
    sdxl_pipe_model_free(m);
    return NULL;
}

/* m's text conditioning of (prompt, negative), encoded once and kept: the text encoders' adapted matrices are
 * swapped for merged copies (W0 + sum_i w_i dW_i, as diffusers' fuse_lora rounds them: in the stored dtype) for
 * the encoding and swapped back after it */
static int model_text(sdxl_pipe *p, sdxl_pipe_model *m, const sdxl_gen *g, char *err, size_t errlen)
{
    if (m->have_text && !strcmp(m->prompt, g->prompt ? g->prompt : "") && m->neg_null == (g->negative == NULL) &&
        (!g->negative || !strcmp(m->negative, g->negative)))
        return 0;
    const int T = sdxl_text_tokens(p->text), C = sdxl_text_context_dim(p->text), P = sdxl_text_pooled_dim(p->text);
    if (!m->ctx) m->ctx = mem_alloc((size_t)2 * T * C * sizeof *m->ctx), m->pooled = mem_alloc((size_t)2 * P * sizeof *m->pooled);
    m->have_text = 0;
    const sdxl_lora *const *ls = (const sdxl_lora *const *)p->loras;
    size_t nsw = 0, cap = 0;
    struct swap { nn_tensor *slot, orig; } *sw = NULL;
    for (int k = 0; k < 2; k++) {
        clip_text *e = sdxl_text_encoder(p->text, k);
        sdxl_lora_comp comp = k ? SDXL_LORA_TE2 : SDXL_LORA_TE1;
        for (size_t i = 0; i < clip_text_module_count(e); i++) {
            char mod[256];
            clip_text_module_name(e, i, mod, sizeof mod);
            int any = 0;
            for (int j = 0; j < p->nlora && !any; j++) any = sdxl_lora_find(p->loras[j], comp, mod) != NULL;
            if (!any) continue;
            if (nsw == cap) sw = mem_realloc(sw, (cap = cap ? 2 * cap : 64) * sizeof *sw);
            nn_tensor *slot = clip_text_module_weight(e, i), merged;
            sdxl_lora_merge(&merged, slot, comp, mod, ls, m->w, (size_t)p->nlora);
            sw[nsw].slot = slot, sw[nsw].orig = *slot, nsw++;
            *slot = merged;
        }
    }
    int rc = sdxl_text_encode(p->text, g->prompt, g->negative, p->force_zeros, m->ctx, m->pooled, err, errlen);
    for (size_t i = 0; i < nsw; i++) {
        nn_tensor_free(sw[i].slot);
        *sw[i].slot = sw[i].orig;
    }
    free(sw);
    if (rc) return -1;
    free(m->prompt), free(m->negative);
    m->prompt = mem_strdup(g->prompt ? g->prompt : "");
    m->negative = g->negative ? mem_strdup(g->negative) : NULL;
    m->neg_null = g->negative == NULL;
    m->have_text = 1;
    return 0;
}

/* ---- load ---- */

sdxl_pipe *sdxl_pipe_load(const sdxl_pipe_opts *o, char *err, size_t errlen)
{
    sdxl_pipe *p = mem_calloc(1, sizeof *p);
    int single = !is_dir(o->model);
    const char *cdir = single ? o->config : o->model;
    char *s = NULL;
    int rc = -1;
    if (single && !is_file(o->model)) {
        log_errf(err, errlen, o->model, "no such model folder or checkpoint file");
        goto out;
    }
    if (single && !cdir) {
        log_errf(err, errlen, o->model, "a single-file checkpoint needs --config DIR: a diffusers folder with the "
                                        "configs and tokenizers (model_index.json, */config.json, tokenizer*/)");
        goto out;
    }
    if (!is_dir(cdir)) {
        log_errf(err, errlen, cdir, "not a folder");
        goto out;
    }
    static const char *const parts[] = {"scheduler", "unet", "vae", "text_encoder", "text_encoder_2", "tokenizer",
                                        "tokenizer_2"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        s = path2(cdir, parts[i]);
        if (!is_dir(s)) {
            log_errf(err, errlen, s, "missing component folder (an SDXL diffusers folder has %s/)", parts[i]);
            goto out;
        }
        free(s), s = NULL;
    }
    if (read_force_zeros(cdir, &p->force_zeros, err, errlen)) goto out;
    s = path2(cdir, "scheduler/scheduler_config.json");
    if (sdxl_euler_config_read(&p->sched, s, err, errlen)) goto out;
    free(s), s = path2(cdir, "unet/config.json");
    if (sdxl_unet_config_load(&p->ucfg, s, err, errlen)) goto out;
    free(s), s = path2(cdir, "vae/config.json");
    sdxl_vae_config vc;
    if (sdxl_vae_config_read(&vc, s, err, errlen)) goto out;
    free(s), s = NULL;
    p->uw = nn_weights_alloc();
    if (single) {
        if (!(p->single = safetensors_open(o->model, err, errlen))) goto out;
        int h1, h2;
        char *d1 = path2(cdir, "text_encoder"), *d2 = path2(cdir, "text_encoder_2");
        int bad = read_heads(d1, &h1, err, errlen) || read_heads(d2, &h2, err, errlen);
        free(d1), free(d2);
        if (bad) goto out;
        char *t1 = path2(cdir, "tokenizer"), *t2 = path2(cdir, "tokenizer_2");
        clip_tokenizer *tok1 = clip_tokenizer_load_dir(t1, err, errlen);
        clip_tokenizer *tok2 = tok1 ? clip_tokenizer_load_dir(t2, err, errlen) : NULL;
        free(t1), free(t2);
        clip_text *e1 = tok2 ? clip_text_load_single(p->single, o->model, 0, h1, err, errlen) : NULL;
        clip_text *e2 = e1 ? clip_text_load_single(p->single, o->model, 1, h2, err, errlen) : NULL;
        if (!e2) {
            clip_tokenizer_free(tok1), clip_tokenizer_free(tok2), clip_text_free(e1);
            goto out;
        }
        if (!(p->text = sdxl_text_create(tok1, tok2, e1, e2, err, errlen))) goto out;
        if (nn_weights_add_file(p->uw, o->model, sdxl_unet_rename_original, &p->ucfg, err, errlen)) goto out;
        if (!(p->vae = sdxl_vae_load(&vc, p->single, 1, o->model, err, errlen))) goto out;
    } else {
        if (!(p->text = sdxl_text_load_dir(o->model, o->variant, err, errlen))) goto out;
        s = path2(o->model, "unet");
        if (nn_weights_add_diffusers(p->uw, s, "diffusion_pytorch_model", o->variant, NULL, NULL, err, errlen))
            goto out;
        free(s);
        /* the VAE file: the variant's, else fp32, else the fp16 file when only that exists */
        char *f32 = path2(o->model, "vae/diffusion_pytorch_model.safetensors"),
             *f16 = path2(o->model, "vae/diffusion_pytorch_model.fp16.safetensors");
        s = mem_strdup(o->variant && !strcmp(o->variant, "fp16") ? f16 : !is_file(f32) && is_file(f16) ? f16 : f32);
        free(f32), free(f16);
        if (!(p->vae_st = safetensors_open(s, err, errlen))) goto out;
        if (!(p->vae = sdxl_vae_load(&vc, p->vae_st, 0, s, err, errlen))) goto out;
        free(s), s = NULL;
    }
    if (open_loras(p, o, err, errlen)) goto out;
    p->device = o->device;
    if (p->device != DEVICE_CPU && o->lora_runtime && o->nlora && !o->lora_defer) {
        snprintf(err, errlen, "--lora-mode runtime: run-time LoRA is CPU only (use merge with --device cuda)");
        goto out;
    }
    {
        float w0[SDXL_PIPE_MAX_LORAS] = {0};   /* deferred: the base (no LoRA opened counts) */
        const int apply = !o->lora_defer;
        if (!(p->def = sdxl_pipe_model_create(p, apply ? o->lora_weight : w0, apply ? o->lora_runtime : 1, err,
                                              errlen)))
            goto out;
        if (!apply) {   /* the base: no adapters at all, not adapters at weight 0 */
            sdxl_lora_runtime_free(p->def->rt), p->def->rt = NULL;
            sdxl_unet_set_lora(p->def->unet, NULL);
        }
    }
    if (sdxl_text_context_dim(p->text) != p->ucfg.cross_attention_dim[0]) {
        log_errf(err, errlen, cdir, "text context width %d does not match the UNet's cross_attention_dim %d",
                 sdxl_text_context_dim(p->text), p->ucfg.cross_attention_dim[0]);
        goto out;
    }
    if (p->ucfg.has_add_embed &&
        sdxl_text_pooled_dim(p->text) + 6 * p->ucfg.addition_time_embed_dim != p->ucfg.projection_class_embeddings_input_dim) {
        log_errf(err, errlen, cdir, "pooled width %d + 6 x %d does not match projection_class_embeddings_input_dim %d",
                 sdxl_text_pooled_dim(p->text), p->ucfg.addition_time_embed_dim,
                 p->ucfg.projection_class_embeddings_input_dim);
        goto out;
    }
    if (sdxl_vae_cfg(p->vae)->latent_channels != p->ucfg.in_channels ||
        p->ucfg.out_channels != p->ucfg.in_channels) {
        log_errf(err, errlen, cdir, "VAE latent channels %d vs UNet in/out channels %d/%d",
                 sdxl_vae_cfg(p->vae)->latent_channels, p->ucfg.in_channels, p->ucfg.out_channels);
        goto out;
    }
    rc = 0;
out:
    free(s);
    if (rc) {
        sdxl_pipe_free(p);
        return NULL;
    }
    return p;
}

void sdxl_pipe_free(sdxl_pipe *p)
{
    if (!p) return;
    sdxl_pipe_model_free(p->def);
    sdxl_text_free(p->text);
    for (int i = 0; i < p->nlora; i++) sdxl_lora_free(p->loras[i]);
    nn_weights_free(p->uw);
    sdxl_vae_free(p->vae);
    safetensors_close(p->vae_st);
    safetensors_close(p->single);
    free(p->ws);
    free(p);
}

int sdxl_pipe_latent_channels(const sdxl_pipe *p) { return p->ucfg.in_channels; }
int sdxl_pipe_vae_scale(const sdxl_pipe *p) { return sdxl_vae_scale(sdxl_vae_cfg(p->vae)); }
int sdxl_pipe_size_step(const sdxl_pipe *p) { return sdxl_pipe_vae_scale(p) << (p->ucfg.nblocks - 1); }
int sdxl_pipe_context_dim(const sdxl_pipe *p) { return sdxl_text_context_dim(p->text); }
int sdxl_pipe_pooled_dim(const sdxl_pipe *p) { return sdxl_text_pooled_dim(p->text); }

/* ---- generate ---- */

int sdxl_pipe_generate(sdxl_pipe *p, const sdxl_gen *g, const float *noise, float *image, sdxl_trace *tr, char *err,
                       size_t errlen)
{
    const float one = 1.0f;
    return sdxl_pipe_generate_mix(p, &p->def, &one, 1, g, noise, image, tr, err, errlen);
}

int sdxl_pipe_generate_mix(sdxl_pipe *p, sdxl_pipe_model *const *m, const float *lambda, int k, const sdxl_gen *g,
                           const float *noise, float *image, sdxl_trace *tr, char *err, size_t errlen)
{
    int step = sdxl_pipe_size_step(p), S = sdxl_pipe_vae_scale(p), L = p->ucfg.in_channels;
    if (k < 1) {
        log_errf(err, errlen, "barycenter", "%d models (at least 1)", k);
        return -1;
    }
    for (int i = 0; i < k; i++)
        if (!m[i] || m[i]->p != p || !isfinite(lambda[i])) {
            log_errf(err, errlen, "barycenter", "model %d is not a model of this pipeline, or its weight is not finite",
                     i);
            return -1;
        }
    if (g->width < step || g->height < step || g->width % step || g->height % step) {
        log_errf(err, errlen, "size", "%dx%d: width and height must be positive multiples of %d for this model",
                 g->width, g->height, step);
        return -1;
    }
    int h = g->height / S, w = g->width / S, T = sdxl_text_tokens(p->text), C = sdxl_text_context_dim(p->text),
        P = sdxl_text_pooled_dim(p->text);
    size_t n = (size_t)L * h * w;
    sdxl_euler sch;
    if (sdxl_euler_init(&sch, &p->sched, g->steps, err, errlen)) return -1;
    float *x = mem_alloc(n * sizeof *x), *xin = mem_alloc(2 * n * sizeof *xin), *eps = mem_alloc(2 * n * sizeof *eps);
    float *epsi = k > 1 ? mem_alloc(2 * n * sizeof *epsi) : NULL;
    int rc = -1;
    if (!g->prompt) {
        log_errf(err, errlen, "sdxl_text", "no prompt");
        goto out;
    }
    for (int i = 0; i < k; i++)
        if (model_text(p, m[i], g, err, errlen)) goto out;
    if (noise) memcpy(x, noise, n * sizeof *x);
    else sdxl_latents_init(x, n, g->seed, g->image, 1.0f);
    if (tr && tr->noise) memcpy(tr->noise, x, n * sizeof *x);
    for (size_t j = 0; j < n; j++) x[j] *= sch.init_noise_sigma;
    int cfg = g->cfg > 1.0f, B = cfg ? 2 : 1;
    float tid[12], tsv[2];
    for (int b = 0; b < 2; b++) {
        float *t6 = tid + 6 * b;
        t6[0] = (float)g->height, t6[1] = (float)g->width, t6[2] = 0, t6[3] = 0;
        t6[4] = (float)g->height, t6[5] = (float)g->width;
    }
    size_t need = sdxl_unet_ws_floats(m[0]->unet, B, h, w, T);
    if (need > p->ws_n) {
        free(p->ws);
        p->ws = mem_alloc(need * sizeof *p->ws);
        p->ws_n = need;
    }
    const size_t nb = (size_t)B * n;
    for (int i = 0; i < sch.n; i++) {
        sdxl_euler_scale_input(xin, x, n, &sch, i);
        if (cfg) memcpy(xin + n, xin, n * sizeof *xin);
        tsv[0] = tsv[1] = sch.timesteps[i];
        for (int j = 0; j < k; j++) {
            /* rows [negative, prompt] with CFG, else the prompt's row only, of model j's own conditioning */
            const float *c_rows = cfg ? m[j]->ctx : m[j]->ctx + (size_t)T * C;
            const float *p_rows = cfg ? m[j]->pooled : m[j]->pooled + P;
            float *out = j == 0 ? eps : epsi;
            if (sdxl_unet_forward(m[j]->unet, out, xin, tsv, c_rows, T, p_rows, tid, B, h, w, p->ws, p->ws_n, err,
                                  errlen))
                goto out;
            /* the barycenter's eps = sum_j lambda_j eps_j, before CFG (k = 1: eps_1 untouched) */
            if (k > 1 && j == 0)
                for (size_t q = 0; q < nb; q++) eps[q] *= lambda[0];
            else if (j > 0)
                for (size_t q = 0; q < nb; q++) eps[q] += lambda[j] * epsi[q];
        }
        if (cfg) sdxl_cfg_combine(eps, eps, eps + n, 1, n, g->cfg, g->rescale);
        sdxl_euler_step(x, eps, n, &sch, i);
    }
    for (size_t j = 0; j < n; j++)
        if (!isfinite(x[j])) {
            log_errf(err, errlen, "sampling", "non-finite latent after %d steps (element %zu)", sch.n, j);
            goto out;
        }
    if (tr && tr->final_latents) memcpy(tr->final_latents, x, n * sizeof *x);
    if (tr && tr->context) memcpy(tr->context, m[0]->ctx, (size_t)2 * T * C * sizeof *m[0]->ctx);
    if (tr && tr->pooled) memcpy(tr->pooled, m[0]->pooled, (size_t)2 * P * sizeof *m[0]->pooled);
    sdxl_vae_decode(p->vae, image, x, 1, h, w);
    rc = 0;
out:
    free(x), free(xin), free(eps), free(epsi);
    sdxl_euler_free(&sch);
    return rc;
}
