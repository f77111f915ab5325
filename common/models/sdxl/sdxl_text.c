/* sdxl_text: SDXL text conditioning, prompt + negative -> [2, 77, 2048] context and [2, 1280] pooled
 * (see sdxl_text.h; diffusers v0.25.1 pipeline_stable_diffusion_xl.py encode_prompt, clip_skip None). */
#include "sdxl_text.h"
#include "log.h"
#include "mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sdxl_text {
    clip_tokenizer *tok[2];
    clip_text *enc[2];
};

void sdxl_text_free(sdxl_text *s)
{
    if (!s) return;
    for (int k = 0; k < 2; k++) {
        clip_tokenizer_free(s->tok[k]);
        clip_text_free(s->enc[k]);
    }
    free(s);
}

sdxl_text *sdxl_text_create(clip_tokenizer *tok1, clip_tokenizer *tok2, clip_text *enc1, clip_text *enc2, char *err,
                            size_t errlen)
{
    sdxl_text *s = mem_calloc(1, sizeof *s);
    s->tok[0] = tok1, s->tok[1] = tok2, s->enc[0] = enc1, s->enc[1] = enc2;
    if (!tok1 || !tok2 || !enc1 || !enc2) {
        log_errf(err, errlen, "sdxl_text", "two tokenizers and two text encoders are needed");
        sdxl_text_free(s);
        return NULL;
    }
    const clip_text_config *c1 = clip_text_cfg(enc1), *c2 = clip_text_cfg(enc2);
    int ctx = clip_tokenizer_context(tok1);
    if (clip_tokenizer_context(tok2) != ctx || ctx > c1->max_pos || ctx > c2->max_pos) {
        log_errf(err, errlen, "sdxl_text", "tokenizer contexts %d / %d do not fit the encoders' %d / %d positions", ctx,
                 clip_tokenizer_context(tok2), c1->max_pos, c2->max_pos);
        sdxl_text_free(s);
        return NULL;
    }
    if (!c2->proj_dim) {
        log_errf(err, errlen, "sdxl_text", "text_encoder_2 has no text projection (the pooled embedding needs it)");
        sdxl_text_free(s);
        return NULL;
    }
    if (c1->layers < 2 || c2->layers < 2) {
        log_errf(err, errlen, "sdxl_text", "the encoders need at least 2 layers (penultimate hidden states)");
        sdxl_text_free(s);
        return NULL;
    }
    for (int k = 0; k < 2; k++) {
        const clip_text_config *c = k ? c2 : c1;
        if (clip_tokenizer_vocab_size(s->tok[k]) > (size_t)c->vocab_size) {
            log_errf(err, errlen, clip_tokenizer_label(s->tok[k]), "%zu token ids but text_encoder%s has %d",
                     clip_tokenizer_vocab_size(s->tok[k]), k ? "_2" : "", c->vocab_size);
            sdxl_text_free(s);
            return NULL;
        }
    }
    return s;
}

sdxl_text *sdxl_text_load_dir(const char *dir, const char *variant, char *err, size_t errlen)
{
    static const char *tn[2] = {"tokenizer", "tokenizer_2"}, *en[2] = {"text_encoder", "text_encoder_2"};
    clip_tokenizer *tok[2] = {0};
    clip_text *enc[2] = {0};
    char path[4096];
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, tn[k]);
        if (!(tok[k] = clip_tokenizer_load_dir(path, err, errlen))) goto fail;
        snprintf(path, sizeof path, "%s/%s", dir, en[k]);
        if (!(enc[k] = clip_text_load_dir(path, variant, err, errlen))) goto fail;
    }
    return sdxl_text_create(tok[0], tok[1], enc[0], enc[1], err, errlen);
fail:
    for (int k = 0; k < 2; k++) {
        clip_tokenizer_free(tok[k]);
        clip_text_free(enc[k]);
    }
    return NULL;
}

int sdxl_text_tokens(const sdxl_text *s) { return clip_tokenizer_context(s->tok[0]); }
int sdxl_text_context_dim(const sdxl_text *s) { return clip_text_cfg(s->enc[0])->hidden + clip_text_cfg(s->enc[1])->hidden; }
int sdxl_text_pooled_dim(const sdxl_text *s) { return clip_text_cfg(s->enc[1])->proj_dim; }
clip_text *sdxl_text_encoder(sdxl_text *s, int k) { return s->enc[k ? 1 : 0]; }

int sdxl_text_encode(const sdxl_text *s, const char *prompt, const char *negative, int zero_negative,
                     float *context, float *pooled, char *err, size_t errlen)
{
    const int T = sdxl_text_tokens(s), C = sdxl_text_context_dim(s), E = sdxl_text_pooled_dim(s);
    const int zero = negative == NULL && zero_negative;
    const char *texts[2] = {negative ? negative : "", prompt};
    const int first = zero ? 1 : 0, B = 2 - first;   /* rows encoded: [first, 2) */
    int32_t *ids = mem_alloc((size_t)2 * T * sizeof *ids);
    int rc = -1;
    float *hid = NULL;
    if (!prompt) {
        log_errf(err, errlen, "sdxl_text", "no prompt");
        goto out;
    }
    memset(context, 0, (size_t)2 * T * C * sizeof(float));
    memset(pooled, 0, (size_t)2 * E * sizeof(float));
    int off = 0;
    for (int k = 0; k < 2; k++) {
        const clip_text_config *c = clip_text_cfg(s->enc[k]);
        for (int r = first; r < 2; r++) {
            size_t n;
            if (clip_tokenizer_tokenize(s->tok[k], texts[r], ids + (size_t)(r - first) * T, &n, err, errlen)) goto out;
            if (k == 0 && n > (size_t)T)
                log_info("the %s was truncated to %d tokens (it has %zu)", r ? "prompt" : "negative prompt", T, n);
        }
        const int D = c->hidden;
        hid = mem_realloc(hid, (size_t)B * T * D * sizeof(float));
        /* CLIP-L: only the penultimate states; bigG: those and the projected pooled output */
        if (clip_text_forward(s->enc[k], ids, B, T, c->layers - 1, hid, NULL, NULL,
                              k ? pooled + (size_t)first * E : NULL, err, errlen))
            goto out;
        for (int r = first; r < 2; r++)
            for (int t = 0; t < T; t++)
                memcpy(context + ((size_t)r * T + t) * C + off, hid + ((size_t)(r - first) * T + t) * D,
                       (size_t)D * sizeof(float));
        off += D;
    }
    rc = 0;
out:
    free(ids);
    free(hid);
    return rc;
}
