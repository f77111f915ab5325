/* models/sdxl/sdxl_keys: SDXL's UNet and CLIP text-encoder weight names and shapes from the architecture numbers
 * (issue 9 items 1, 9); see sdxl_keys.h. The diffusers/original pairing follows diffusers v0.25.1's
 * convert_ldm_unet_checkpoint: input_blocks count conv_in, then per down block its layers and downsampler;
 * output_blocks count layers_per_block + 1 per up block; resnet leaves in_layers.0/2, emb_layers.1,
 * out_layers.0/3, skip_connection are norm1/conv1, time_emb_proj, norm2/conv2, conv_shortcut. */
#include "sdxl_keys.h"
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sdxl_unet_shape_sdxl(sdxl_unet_shape *s)
{
    memset(s, 0, sizeof *s);
    s->in_channels = s->out_channels = 4;
    s->nblocks = 3;
    s->block_out[0] = 320, s->block_out[1] = 640, s->block_out[2] = 1280;
    s->layers_per_block = 2;
    s->down_attn[1] = s->down_attn[2] = 1;
    s->transformer_layers[0] = 1, s->transformer_layers[1] = 2, s->transformer_layers[2] = 10;
    s->cross_attention_dim = 2048;
    s->addition_time_embed_dim = 256;
    s->projection_class_embeddings_input_dim = 2816;
    s->use_linear_projection = 1;
}

typedef struct {
    sdxl_key_fn fn;
    void *ctx;
} emitter;

/* "<dp><dleaf>" / "<op><oleaf>" with shape (a, b, c, d) of ndim */
static void emit(const emitter *e, const char *dp, const char *dleaf, const char *op, const char *oleaf, int ndim,
                 int64_t a, int64_t b, int64_t c, int64_t d)
{
    char dn[640], on[640];
    snprintf(dn, sizeof dn, "%s%s", dp, dleaf);
    if (op) snprintf(on, sizeof on, "%s%s", op, oleaf);
    int64_t shape[4] = {a, b, c, d};
    e->fn(dn, op ? on : NULL, ndim, shape, e->ctx);
}

static void wb(const emitter *e, const char *dp, const char *dl, const char *op, const char *ol, int ndim, int64_t a,
               int64_t b, int64_t c, int64_t d)
{
    char x[192], y[192];
    snprintf(x, sizeof x, "%s.weight", dl), snprintf(y, sizeof y, "%s.weight", ol);
    emit(e, dp, x, op, y, ndim, a, b, c, d);
    snprintf(x, sizeof x, "%s.bias", dl), snprintf(y, sizeof y, "%s.bias", ol);
    emit(e, dp, x, op, y, 1, a, 0, 0, 0);
}

static void resnet(const emitter *e, const char *dp, const char *op, int ic, int oc, int temb)
{
    wb(e, dp, "norm1", op, "in_layers.0", 1, ic, 0, 0, 0);
    wb(e, dp, "conv1", op, "in_layers.2", 4, oc, ic, 3, 3);
    wb(e, dp, "time_emb_proj", op, "emb_layers.1", 2, oc, temb, 0, 0);
    wb(e, dp, "norm2", op, "out_layers.0", 1, oc, 0, 0, 0);
    wb(e, dp, "conv2", op, "out_layers.3", 4, oc, oc, 3, 3);
    if (ic != oc) wb(e, dp, "conv_shortcut", op, "skip_connection", 4, oc, ic, 1, 1);
}

static void transformer(const emitter *e, const sdxl_unet_shape *s, const char *dp, const char *op, int C, int depth)
{
    int X = s->cross_attention_dim;
    wb(e, dp, "norm", op, "norm", 1, C, 0, 0, 0);
    if (s->use_linear_projection) wb(e, dp, "proj_in", op, "proj_in", 2, C, C, 0, 0);
    else wb(e, dp, "proj_in", op, "proj_in", 4, C, C, 1, 1);
    for (int j = 0; j < depth; j++) {
        char l[48], w[128];
        snprintf(l, sizeof l, "transformer_blocks.%d.", j);
        char dq[256], oq[256];
        snprintf(dq, sizeof dq, "%s%s", dp, l), snprintf(oq, sizeof oq, "%s%s", op, l);
        for (int a = 1; a <= 2; a++) {
            int kv = a == 1 ? C : X;
            snprintf(w, sizeof w, "attn%d.to_q.weight", a), emit(e, dq, w, oq, w, 2, C, C, 0, 0);
            snprintf(w, sizeof w, "attn%d.to_k.weight", a), emit(e, dq, w, oq, w, 2, C, kv, 0, 0);
            snprintf(w, sizeof w, "attn%d.to_v.weight", a), emit(e, dq, w, oq, w, 2, C, kv, 0, 0);
            snprintf(w, sizeof w, "attn%d.to_out.0", a), wb(e, dq, w, oq, w, 2, C, C, 0, 0);
        }
        wb(e, dq, "norm1", oq, "norm1", 1, C, 0, 0, 0);
        wb(e, dq, "norm2", oq, "norm2", 1, C, 0, 0, 0);
        wb(e, dq, "norm3", oq, "norm3", 1, C, 0, 0, 0);
        wb(e, dq, "ff.net.0.proj", oq, "ff.net.0.proj", 2, 8 * C, C, 0, 0);
        wb(e, dq, "ff.net.2", oq, "ff.net.2", 2, C, 4 * C, 0, 0);
    }
    if (s->use_linear_projection) wb(e, dp, "proj_out", op, "proj_out", 2, C, C, 0, 0);
    else wb(e, dp, "proj_out", op, "proj_out", 4, C, C, 1, 1);
}

void sdxl_keys_unet(const sdxl_unet_shape *s, sdxl_key_fn fn, void *ctx)
{
    emitter E = {fn, ctx}, *e = &E;
    int nb = s->nblocks, lpb = s->layers_per_block, C0 = s->block_out[0], T = 4 * C0;
    LOG_CHECK(nb >= 1 && nb <= SDXL_KEYS_MAX_BLOCKS, "sdxl_keys: %d blocks", nb);
    char dp[160], op[160];
    wb(e, "", "time_embedding.linear_1", "", "time_embed.0", 2, T, C0, 0, 0);
    wb(e, "", "time_embedding.linear_2", "", "time_embed.2", 2, T, T, 0, 0);
    if (s->addition_time_embed_dim > 0) {
        wb(e, "", "add_embedding.linear_1", "", "label_emb.0.0", 2, T, s->projection_class_embeddings_input_dim, 0, 0);
        wb(e, "", "add_embedding.linear_2", "", "label_emb.0.2", 2, T, T, 0, 0);
    }
    wb(e, "", "conv_in", "", "input_blocks.0.0", 4, C0, s->in_channels, 3, 3);
    int I = 1, prev = C0;
    for (int b = 0; b < nb; b++) {
        int C = s->block_out[b];
        for (int l = 0; l < lpb; l++, I++) {
            snprintf(dp, sizeof dp, "down_blocks.%d.resnets.%d.", b, l);
            snprintf(op, sizeof op, "input_blocks.%d.0.", I);
            resnet(e, dp, op, l == 0 ? prev : C, C, T);
            if (s->down_attn[b]) {
                snprintf(dp, sizeof dp, "down_blocks.%d.attentions.%d.", b, l);
                snprintf(op, sizeof op, "input_blocks.%d.1.", I);
                transformer(e, s, dp, op, C, s->transformer_layers[b]);
            }
        }
        if (b < nb - 1) {
            snprintf(dp, sizeof dp, "down_blocks.%d.downsamplers.0.", b);
            snprintf(op, sizeof op, "input_blocks.%d.0.", I++);
            wb(e, dp, "conv", op, "op", 4, C, C, 3, 3);
        }
        prev = C;
    }
    int Cl = s->block_out[nb - 1];
    resnet(e, "mid_block.resnets.0.", "middle_block.0.", Cl, Cl, T);
    transformer(e, s, "mid_block.attentions.0.", "middle_block.1.", Cl, s->transformer_layers[nb - 1]);
    resnet(e, "mid_block.resnets.1.", "middle_block.2.", Cl, Cl, T);
    I = 0;
    prev = Cl;
    for (int u = 0; u < nb; u++) {
        int b = nb - 1 - u, C = s->block_out[b], Cin = s->block_out[b > 0 ? b - 1 : 0];
        for (int l = 0; l <= lpb; l++, I++) {
            int skip = l == lpb ? Cin : C, rin = l == 0 ? prev : C;
            snprintf(dp, sizeof dp, "up_blocks.%d.resnets.%d.", u, l);
            snprintf(op, sizeof op, "output_blocks.%d.0.", I);
            resnet(e, dp, op, rin + skip, C, T);
            if (s->down_attn[b]) {
                snprintf(dp, sizeof dp, "up_blocks.%d.attentions.%d.", u, l);
                snprintf(op, sizeof op, "output_blocks.%d.1.", I);
                transformer(e, s, dp, op, C, s->transformer_layers[b]);
            }
            if (l == lpb && u < nb - 1) {
                snprintf(dp, sizeof dp, "up_blocks.%d.upsamplers.0.", u);
                snprintf(op, sizeof op, "output_blocks.%d.%d.", I, s->down_attn[b] ? 2 : 1);
                wb(e, dp, "conv", op, "conv", 4, C, C, 3, 3);
            }
        }
        prev = C;
    }
    wb(e, "", "conv_norm_out", "", "out.0", 1, C0, 0, 0, 0);
    wb(e, "", "conv_out", "", "out.2", 4, s->out_channels, C0, 3, 3);
}

void sdxl_keys_clip(const sdxl_clip_shape *s, sdxl_key_fn fn, void *ctx)
{
    emitter E = {fn, ctx}, *e = &E;
    int D = s->hidden;
    emit(e, "text_model.embeddings.", "token_embedding.weight", NULL, NULL, 2, s->vocab, D, 0, 0);
    emit(e, "text_model.embeddings.", "position_embedding.weight", NULL, NULL, 2, s->max_pos, D, 0, 0);
    for (int i = 0; i < s->layers; i++) {
        char p[96];
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.", i);
        wb(e, p, "self_attn.q_proj", NULL, "", 2, D, D, 0, 0);
        wb(e, p, "self_attn.k_proj", NULL, "", 2, D, D, 0, 0);
        wb(e, p, "self_attn.v_proj", NULL, "", 2, D, D, 0, 0);
        wb(e, p, "self_attn.out_proj", NULL, "", 2, D, D, 0, 0);
        wb(e, p, "layer_norm1", NULL, "", 1, D, 0, 0, 0);
        wb(e, p, "mlp.fc1", NULL, "", 2, s->intermediate, D, 0, 0);
        wb(e, p, "mlp.fc2", NULL, "", 2, D, s->intermediate, 0, 0);
        wb(e, p, "layer_norm2", NULL, "", 1, D, 0, 0, 0);
    }
    wb(e, "text_model.", "final_layer_norm", NULL, "", 1, D, 0, 0, 0);
    if (s->projection_dim > 0) emit(e, "", "text_projection.weight", NULL, NULL, 2, s->projection_dim, D, 0, 0);
}

int sdxl_keys_openclip(const char *t, char *out, size_t outlen, int *part)
{
    int i, k = 0, n;
    char leaf[64];
    *part = 0;
    if (!strcmp(t, "text_model.embeddings.token_embedding.weight")) n = snprintf(out, outlen, "token_embedding.weight");
    else if (!strcmp(t, "text_model.embeddings.position_embedding.weight"))
        n = snprintf(out, outlen, "positional_embedding");
    else if (sscanf(t, "text_model.final_layer_norm.%63s", leaf) == 1) n = snprintf(out, outlen, "ln_final.%s", leaf);
    else if (!strcmp(t, "text_projection.weight")) {
        snprintf(out, outlen, "text_projection");
        return 2;
    } else if (sscanf(t, "text_model.encoder.layers.%d.%n", &i, &k) == 1 && k > 0) {
        const char *r = t + k;
        static const char *const qkv[] = {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."};
        for (int j = 0; j < 3; j++)
            if (!strncmp(r, qkv[j], strlen(qkv[j]))) {
                *part = j;
                n = snprintf(out, outlen, "transformer.resblocks.%d.attn.in_proj_%s", i, r + strlen(qkv[j]));
                return n < 0 || (size_t)n >= outlen ? -1 : 1;
            }
        static const char *const m[][2] = {{"self_attn.out_proj.", "attn.out_proj."}, {"layer_norm1.", "ln_1."},
                                           {"layer_norm2.", "ln_2."}, {"mlp.fc1.", "mlp.c_fc."},
                                           {"mlp.fc2.", "mlp.c_proj."}};
        for (int j = 0; j < 5; j++)
            if (!strncmp(r, m[j][0], strlen(m[j][0]))) {
                n = snprintf(out, outlen, "transformer.resblocks.%d.%s%s", i, m[j][1], r + strlen(m[j][0]));
                return n < 0 || (size_t)n >= outlen ? -1 : 0;
            }
        return -1;
    } else
        return -1;
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
