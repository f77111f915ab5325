/* models/sdxl/unet_names: original (generative-models) UNet names -> diffusers names (see unet_names.h). */
#include "unet_names.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<int>." at *s: the value, *s advanced past the dot; -1 if not there */
static long take_index(const char **s)
{
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    char *end;
    long v = strtol(p, &end, 10);
    if (*end != '.' || v > 100000) return -1;
    *s = end + 1;
    return v;
}

static int starts(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

/* ResNet-internal rename; 0, or -1 if rest is not a ResNet parameter */
static int resnet_rest(const char *rest, char *out, size_t len)
{
    static const char *const map[][2] = {
        {"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},         {"emb_layers.1.", "time_emb_proj."},
        {"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."},        {"skip_connection.", "conv_shortcut."},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (starts(rest, map[i][0])) {
            snprintf(out, len, "%s%s", map[i][1], rest + strlen(map[i][0]));
            return 0;
        }
    return -1;
}

static int fail(char *out, size_t len, const char *why)
{
    snprintf(out, len, "%s", why);
    return -1;
}

int sdxl_unet_name_from_original(const sdxl_unet_config *cfg, const char *orig, char *out, size_t outlen)
{
    const char *s = orig;
    char r[512];
    const int nb = cfg->nblocks;
    if (starts(s, "time_embed.0.")) return snprintf(out, outlen, "time_embedding.linear_1.%s", s + 13), 0;
    if (starts(s, "time_embed.2.")) return snprintf(out, outlen, "time_embedding.linear_2.%s", s + 13), 0;
    if (starts(s, "label_emb.0.0.") && cfg->has_add_embed)
        return snprintf(out, outlen, "add_embedding.linear_1.%s", s + 14), 0;
    if (starts(s, "label_emb.0.2.") && cfg->has_add_embed)
        return snprintf(out, outlen, "add_embedding.linear_2.%s", s + 14), 0;
    if (starts(s, "out.0.")) return snprintf(out, outlen, "conv_norm_out.%s", s + 6), 0;
    if (starts(s, "out.2.")) return snprintf(out, outlen, "conv_out.%s", s + 6), 0;
    if (starts(s, "input_blocks.")) {
        s += 13;
        long I = take_index(&s), J = take_index(&s);
        if (I < 0 || J < 0) return fail(out, outlen, "malformed input_blocks name");
        if (I == 0) {
            if (J != 0) return fail(out, outlen, "input_blocks.0 has one layer (conv_in)");
            return snprintf(out, outlen, "conv_in.%s", s), 0;
        }
        long idx = I - 1;
        int b = 0;
        for (; b < nb; b++) {
            const long n = cfg->layers_per_block[b] + (b < nb - 1);
            if (idx < n) break;
            idx -= n;
        }
        if (b == nb) return fail(out, outlen, "input block index beyond the config's down blocks");
        if (idx == cfg->layers_per_block[b]) {   /* the downsampler slot */
            if (J != 0 || !starts(s, "op.")) return fail(out, outlen, "expected the downsampler (I.0.op.*)");
            return snprintf(out, outlen, "down_blocks.%d.downsamplers.0.conv.%s", b, s + 3), 0;
        }
        if (J == 0) {
            if (resnet_rest(s, r, sizeof r)) return fail(out, outlen, "not a ResNet parameter");
            return snprintf(out, outlen, "down_blocks.%d.resnets.%ld.%s", b, idx, r), 0;
        }
        if (J == 1 && cfg->down_attn[b]) return snprintf(out, outlen, "down_blocks.%d.attentions.%ld.%s", b, idx, s), 0;
        return fail(out, outlen, "no such layer in this down block");
    }
    if (starts(s, "middle_block.")) {
        s += 13;
        long J = take_index(&s);
        if (J == 1) return snprintf(out, outlen, "mid_block.attentions.0.%s", s), 0;
        if (J == 0 || J == 2) {
            if (resnet_rest(s, r, sizeof r)) return fail(out, outlen, "not a ResNet parameter");
            return snprintf(out, outlen, "mid_block.resnets.%ld.%s", J / 2, r), 0;
        }
        return fail(out, outlen, "middle_block has layers 0..2");
    }
    if (starts(s, "output_blocks.")) {
        s += 14;
        long I = take_index(&s), J = take_index(&s);
        if (I < 0 || J < 0) return fail(out, outlen, "malformed output_blocks name");
        long idx = I;
        int b = 0;
        for (; b < nb; b++) {
            const long n = cfg->layers_per_block[nb - 1 - b] + 1;
            if (idx < n) break;
            idx -= n;
        }
        if (b == nb) return fail(out, outlen, "output block index beyond the config's up blocks");
        if (J == 0) {
            if (resnet_rest(s, r, sizeof r)) return fail(out, outlen, "not a ResNet parameter");
            return snprintf(out, outlen, "up_blocks.%d.resnets.%ld.%s", b, idx, r), 0;
        }
        const int last_layer = idx == cfg->layers_per_block[nb - 1 - b];
        if (starts(s, "conv.") && last_layer && b < nb - 1 && J == 1 + cfg->up_attn[b])
            return snprintf(out, outlen, "up_blocks.%d.upsamplers.0.conv.%s", b, s + 5), 0;
        if (J == 1 && cfg->up_attn[b]) return snprintf(out, outlen, "up_blocks.%d.attentions.%ld.%s", b, idx, s), 0;
        return fail(out, outlen, "no such layer in this up block");
    }
    return fail(out, outlen, "not a UNet name the map knows");
}

int sdxl_unet_rename_original(const char *name, char *out, size_t outlen, void *ctx)
{
    const size_t pl = strlen(SDXL_UNET_ORIGINAL_PREFIX);
    if (strncmp(name, SDXL_UNET_ORIGINAL_PREFIX, pl)) return 0;
    char why[256];
    if (sdxl_unet_name_from_original(ctx, name + pl, out, outlen)) {
        snprintf(why, sizeof why, "%s", out);
        snprintf(out, outlen, "no diffusers name for it (%s)", why);
        return -1;
    }
    return 1;
}
