/* test_sdxl_keys: the SDXL weight lists (common/models/sdxl/sdxl_keys.h) and the VAE's (vae.h).
 *   - tiny UNet: the diffusers names and shapes are exactly diffusers' UNet2DConditionModel state_dict for
 *     sdxl-unet's tiny config (tests/fixtures/sdxl/lora/base_fp16.safetensors, written by diffusers);
 *   - the real SDXL 1.0 sizes: parameter counts of the UNet (2,567,463,684), CLIP ViT-L/14 text encoder
 *     (123,060,480), OpenCLIP bigG/14 text encoder with projection (694,659,840) and the VAE (83,653,863), the
 *     published counts of those models;
 *   - original names: unique, and every one of a few hand-checked pairs (input_blocks / output_blocks counting,
 *     upsampler index 2 after attention, resnet leaves);
 *   - OpenCLIP names of the text tower;
 *   - the same UNet list as the UNet's own binder (sdxl_unet_list_tensors) for the tiny and the real SDXL
 *     config.json: names, shapes, order-free. */
#include "safetensors.h"
#include "sdxl_keys.h"
#include "unet.h"
#include "test.h"
#include "vae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const safetensors *st;
    size_t n, missing, badshape;
    uint64_t params;
    char (*onames)[200];
    char (*dnames)[200];
    size_t cap;
} ctx;

static void on_key(const char *d, const char *o, int ndim, const int64_t *shape, void *p)
{
    ctx *c = p;
    uint64_t m = 1;
    for (int i = 0; i < ndim; i++) m *= (uint64_t)shape[i];
    c->params += m;
    if (c->onames && c->n < c->cap) {
        snprintf(c->onames[c->n], 200, "%s", o ? o : "");
        snprintf(c->dnames[c->n], 200, "%s", d);
    }
    c->n++;
    if (!c->st) return;
    const safetensors_tensor *t = safetensors_find(c->st, d);
    if (!t) {
        if (c->missing++ < 3) printf("  enumerated but not in diffusers' state_dict: %s\n", d);
        return;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok && c->badshape++ < 3) printf("  shape differs: %s\n", d);
}

static void on_vae(const char *name, int ndim, const int64_t *shape, void *p) { on_key(name, NULL, ndim, shape, p); }

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

/* names + shapes as "name:d0,d1,..." lines */
typedef struct { char (*l)[240]; size_t n, cap; } lines;

static void put(lines *L, const char *name, int ndim, const int64_t *shape)
{
    if (L->n == L->cap) return;
    int o = snprintf(L->l[L->n], 240, "%s:", name);
    for (int i = 0; i < ndim && o < 230; i++) o += snprintf(L->l[L->n] + o, (size_t)(240 - o), "%lld,", (long long)shape[i]);
    L->n++;
}
static void on_binder(const char *name, int ndim, const int64_t *shape, void *p) { put(p, name, ndim, shape); }
static void on_keys(const char *d, const char *o, int ndim, const int64_t *shape, void *p)
{
    (void)o;
    put(p, d, ndim, shape);
}

/* the UNet shape of a config.json, as sdxl_pipe derives it */
static void same_as_binder(const char *cfg_path, const char *what)
{
    sdxl_unet_config c;
    char err[256], name[300];
    if (sdxl_unet_config_load(&c, cfg_path, err, sizeof err)) {
        test_report(0, what, err);
        return;
    }
    sdxl_unet_shape s;
    memset(&s, 0, sizeof s);
    s.in_channels = c.in_channels, s.out_channels = c.out_channels, s.nblocks = c.nblocks;
    s.layers_per_block = c.layers_per_block[0], s.cross_attention_dim = c.cross_attention_dim[0];
    for (int b = 0; b < c.nblocks; b++)
        s.block_out[b] = c.block_out_channels[b], s.down_attn[b] = c.down_attn[b],
        s.transformer_layers[b] = c.transformer_layers[b];
    s.addition_time_embed_dim = c.has_add_embed ? c.addition_time_embed_dim : 0;
    s.projection_class_embeddings_input_dim = c.projection_class_embeddings_input_dim;
    s.use_linear_projection = c.use_linear_projection;
    lines a = {calloc(4096, 240), 0, 4096}, b = {calloc(4096, 240), 0, 4096};
    sdxl_keys_unet(&s, on_keys, &a);
    sdxl_unet_list_tensors(&c, on_binder, &b);
    qsort(a.l, a.n, 240, cmp), qsort(b.l, b.n, 240, cmp);
    int same = a.n == b.n && a.n < 4096;
    for (size_t i = 0; same && i < a.n; i++) same = !strcmp(a.l[i], b.l[i]);
    snprintf(name, sizeof name, "%s: sdxl_keys = the UNet binder's list (%zu vs %zu tensors, names and shapes)", what,
             a.n, b.n);
    CHECK(same, name);
    free(a.l), free(b.l);
}

int main(void)
{
    char err[256], name[256];
    safetensors *st = safetensors_open("tests/fixtures/sdxl/lora/base_fp16.safetensors", err, sizeof err);
    sdxl_unet_shape s;
    memset(&s, 0, sizeof s);
    s.in_channels = s.out_channels = 4, s.nblocks = 3, s.layers_per_block = 2;
    s.block_out[0] = 8, s.block_out[1] = 16, s.block_out[2] = 16;
    s.down_attn[1] = s.down_attn[2] = 1;
    s.transformer_layers[0] = 1, s.transformer_layers[1] = 1, s.transformer_layers[2] = 2;
    s.cross_attention_dim = 16, s.addition_time_embed_dim = 4, s.projection_class_embeddings_input_dim = 32;
    s.use_linear_projection = 1;
    ctx c = {st, 0, 0, 0, 0, NULL, NULL, 0};
    if (st) {
        sdxl_keys_unet(&s, on_key, &c);
        snprintf(name, sizeof name, "tiny UNet: %zu names = diffusers' %zu, %zu missing, %zu shapes differ", c.n,
                 safetensors_count(st), c.missing, c.badshape);
        CHECK(c.n == safetensors_count(st) && !c.missing && !c.badshape, name);
        safetensors_close(st);
    } else {
        test_report(0, "fixture", err);
    }
    /* original names: unique, hand-checked pairs */
    c = (ctx){NULL, 0, 0, 0, 0, NULL, NULL, 4096};
    c.onames = calloc(c.cap, 200), c.dnames = calloc(c.cap, 200);
    sdxl_keys_unet(&s, on_key, &c);
    static const char *const pairs[][2] = {
        {"conv_in.weight", "input_blocks.0.0.weight"},
        {"down_blocks.0.resnets.1.conv1.weight", "input_blocks.2.0.in_layers.2.weight"},
        {"down_blocks.0.downsamplers.0.conv.bias", "input_blocks.3.0.op.bias"},
        {"down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight"},
        {"down_blocks.1.attentions.1.proj_in.weight", "input_blocks.5.1.proj_in.weight"},
        {"down_blocks.2.attentions.0.transformer_blocks.1.attn2.to_k.weight",
         "input_blocks.7.1.transformer_blocks.1.attn2.to_k.weight"},
        {"mid_block.resnets.1.time_emb_proj.weight", "middle_block.2.emb_layers.1.weight"},
        {"up_blocks.0.resnets.2.norm2.bias", "output_blocks.2.0.out_layers.0.bias"},
        {"up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.2.conv.weight"},
        {"up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.weight",
         "output_blocks.5.1.transformer_blocks.0.ff.net.0.proj.weight"},
        {"up_blocks.2.resnets.0.conv_shortcut.bias", "output_blocks.6.0.skip_connection.bias"},
        {"time_embedding.linear_2.weight", "time_embed.2.weight"},
        {"add_embedding.linear_1.bias", "label_emb.0.0.bias"},
        {"conv_norm_out.weight", "out.0.weight"},
        {"conv_out.bias", "out.2.bias"},
    };
    int okp = 1;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t j;
        for (j = 0; j < c.n && strcmp(c.dnames[j], pairs[i][0]); j++) {}
        if (j == c.n || strcmp(c.onames[j], pairs[i][1])) {
            printf("  %s -> %s (want %s)\n", pairs[i][0], j < c.n ? c.onames[j] : "(absent)", pairs[i][1]);
            okp = 0;
        }
    }
    CHECK(okp, "original names of 15 hand-checked tensors (convert_ldm_unet_checkpoint's numbering)");
    qsort(c.onames, c.n, 200, cmp);
    int uniq = 1;
    for (size_t i = 1; i < c.n; i++) uniq &= strcmp(c.onames[i - 1], c.onames[i]) != 0;
    CHECK(uniq, "original names are unique");
    free(c.onames), free(c.dnames);

    /* real SDXL sizes */
    sdxl_unet_shape real;
    sdxl_unet_shape_sdxl(&real);
    c = (ctx){0};
    sdxl_keys_unet(&real, on_key, &c);
    snprintf(name, sizeof name, "SDXL UNet: %llu parameters (published 2,567,463,684)", (unsigned long long)c.params);
    CHECK(c.params == 2567463684ull, name);
    sdxl_clip_shape L = {49408, 768, 3072, 12, 12, 77, 0}, G = {49408, 1280, 5120, 32, 20, 77, 1280};
    c = (ctx){0};
    sdxl_keys_clip(&L, on_key, &c);
    snprintf(name, sizeof name, "CLIP ViT-L/14 text: %llu parameters (123,060,480)", (unsigned long long)c.params);
    CHECK(c.params == 123060480ull, name);
    c = (ctx){0};
    sdxl_keys_clip(&G, on_key, &c);
    snprintf(name, sizeof name, "OpenCLIP bigG/14 text + projection: %llu parameters (694,659,840)",
             (unsigned long long)c.params);
    CHECK(c.params == 694659840ull, name);
    sdxl_vae_config v;
    sdxl_vae_config_sdxl(&v);
    c = (ctx){0};
    sdxl_vae_enumerate(&v, on_vae, &c);
    snprintf(name, sizeof name, "SDXL VAE: %llu parameters (83,653,863)", (unsigned long long)c.params);
    CHECK(c.params == 83653863ull, name);

    char out[200];
    int part;
    CHECK(sdxl_keys_openclip("text_model.encoder.layers.3.self_attn.k_proj.bias", out, sizeof out, &part) == 1 &&
              part == 1 && !strcmp(out, "transformer.resblocks.3.attn.in_proj_bias"),
          "OpenCLIP: k_proj -> second third of in_proj_bias");
    CHECK(sdxl_keys_openclip("text_model.encoder.layers.0.mlp.fc2.weight", out, sizeof out, &part) == 0 &&
              !strcmp(out, "transformer.resblocks.0.mlp.c_proj.weight"),
          "OpenCLIP: fc2 -> mlp.c_proj");
    CHECK(sdxl_keys_openclip("text_projection.weight", out, sizeof out, &part) == 2 && !strcmp(out, "text_projection"),
          "OpenCLIP: text_projection transposed");
    CHECK(sdxl_keys_openclip("text_model.embeddings.position_embedding.weight", out, sizeof out, &part) == 0 &&
              !strcmp(out, "positional_embedding"),
          "OpenCLIP: positional_embedding");
    CHECK(sdxl_keys_openclip("text_model.foo", out, sizeof out, &part) == -1, "OpenCLIP: unknown name refused");
    same_as_binder("tests/fixtures/sdxl/unet/unet/config.json", "tiny UNet config");
    same_as_binder("tests/fixtures/sdxl/sdxl_base_unet_config.json", "SDXL 1.0 base UNet config");
    return test_finish();
}
