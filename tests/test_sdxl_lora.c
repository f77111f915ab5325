/* test_sdxl_lora: LoRA files resolved, merged and applied at run time (common/models/sdxl/lora.h).
 * Against diffusers v0.25.1 (fixture tests/fixtures/sdxl/lora/ from tests/reference/sdxl_pipe_ref.py: the tiny
 * SDXL-structured UNet of sdxl_unet_ref.py, fp16 base, LoRAs on linear, 1x1 and 3x3 conv layers):
 *   - diffusers keys at scale 1, and kohya A at 0.6 + kohya B at 0.4 (two LoRAs on one shared module), merged
 *     into fp16 weights, equal diffusers' load_lora_into_unet + fuse_lora within 1 fp16 ulp of the largest of
 *     base, result and ours (diffusers rounds to fp16 after each LoRA it fuses, we once);
 *   - text-encoder LoRAs (fixture tests/fixtures/sdxl/lora_te/ from sdxl_pipe_ref.py lora_te: the tiny CLIP-L and
 *     bigG towers of tests/fixtures/sdxl/text_encoder{,_2}, fp16): diffusers keys (text_encoder.* lora_linear_layer,
 *     text_encoder_2.* PEFT lora_A/B) at scale 1, and kohya lora_te1_/lora_te2_ A at 0.6 + B at 0.4, merged into
 *     the towers' fp16 weights (transformers module names from clip_text), against diffusers'
 *     load_lora_into_text_encoder + fuse_lora: diffusers keys bit for bit; two kohya LoRAs merged in diffusers'
 *     order (rounded to fp16 after each) within 1 ulp in 3 of 32,256 elements (the alpha scaling's rounding), and
 *     our one-rounding merge within 1 ulp of the larger of diffusers' intermediate and result;
 * and on their own:
 *   - merged equals runtime (y = W0 x + s B A x) for linear and conv layers, in fp32, rel 1e-5;
 *   - weight 0 gives the base bit for bit (merge and runtime), and merging touches only the adapted tensors;
 *   - PEFT keys (lora_A / lora_B) and the attention-processor keys give the same merge as the diffusers keys;
 *   - kohya paths written with the original single-file names resolve through the index's aliases;
 *   - errors, one line naming the file and the key: unknown key, unknown module, missing half, shape that does
 *     not fit, ambiguous kohya path, NaN, bad alpha. */
#include "clip_text.h"
#include "conv.h"
#include "gemm.h"
#include "lora.h"
#include "rng.h"
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/sdxl/lora/"

static safetensors *base;

static sdxl_lora_index *index_of(const safetensors *st)
{
    sdxl_lora_index *x = sdxl_lora_index_alloc();
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        size_t L = strlen(t->name);
        if (L > 7 && !strcmp(t->name + L - 7, ".weight")) {
            char m[256];
            snprintf(m, sizeof m, "%.*s", (int)(L - 7), t->name);
            sdxl_lora_index_add(x, SDXL_LORA_UNET, m, NULL, t->ndim, t->shape);
        }
    }
    return x;
}

static nn_tensor base_tensor(const char *module)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", module);
    nn_tensor t = {0};
    char err[256];
    const safetensors_tensor *st = safetensors_find(base, n);
    if (st) nn_tensor_from_safetensors(&t, st, "base", err, sizeof err);
    return t;
}

/* fp16 tensors got, want (and the base): the worst |got - want| in units of the fp16 ulp of the largest magnitude
 * among base, want and got at that element (diffusers rounds to fp16 after each LoRA it fuses: where two deltas
 * nearly cancel, its intermediate rounding is an ulp of the intermediate, larger than the result); *ndiff counts
 * elements that differ at all */
static double ulp_diff(const nn_tensor *got, const nn_tensor *want, const nn_tensor *b, size_t *ndiff)
{
    double worst = 0;
    *ndiff = 0;
    float *g = malloc(got->numel * 4), *w = malloc(got->numel * 4), *o = malloc(got->numel * 4);
    nn_tensor_to_f32(g, got), nn_tensor_to_f32(w, want), nn_tensor_to_f32(o, b);
    for (size_t i = 0; i < got->numel; i++) {
        double m = fmax(fabs(o[i]), fmax(fabs(w[i]), fabs(g[i])));
        double ulp = m < 0x1p-14 ? 0x1p-24 : ldexp(1.0, ilogb(m) - 10);
        double d = fabs((double)g[i] - w[i]) / ulp;
        *ndiff += g[i] != w[i];
        worst = d > worst ? d : worst;
    }
    free(g), free(w), free(o);
    return worst;
}

static void check_against_diffusers(const sdxl_lora_index *idx)
{
    char err[512], name[384];
    sdxl_lora *a = sdxl_lora_open(FIX "a_diffusers.safetensors", idx, err, sizeof err);
    test_report(a != NULL, "diffusers-key LoRA opens", err);
    sdxl_lora *ka = sdxl_lora_open(FIX "a_kohya.safetensors", idx, err, sizeof err);
    test_report(ka != NULL, "kohya LoRA A opens (paths resolved against the UNet's names)", err);
    sdxl_lora *kb = sdxl_lora_open(FIX "b_kohya.safetensors", idx, err, sizeof err);
    test_report(kb != NULL, "kohya LoRA B opens", err);
    safetensors *fu = safetensors_open(FIX "fused.safetensors", err, sizeof err);
    if (!a || !ka || !kb || !fu) return;
    CHECK(a->n == 7 && ka->n == 7 && kb->n == 4, "pair counts 7, 7, 4");
    for (int mode = 0; mode < 2; mode++) {
        const char *prefix = mode == 0 ? "diffusers_a_1.0/" : "kohya_a0.6_b0.4/";
        const sdxl_lora *ls[2] = {mode == 0 ? a : ka, kb};
        float w[2] = {mode == 0 ? 1.0f : 0.6f, 0.4f};
        size_t nl = mode == 0 ? 1 : 2;
        double worst = 0;
        int count = 0;
        size_t ndiff = 0, total = 0;
        for (size_t i = 0; i < safetensors_count(fu); i++) {
            const safetensors_tensor *f = safetensors_at(fu, i);
            if (strncmp(f->name, prefix, strlen(prefix)) != 0) continue;
            char module[256];
            snprintf(module, sizeof module, "%s", f->name + strlen(prefix));
            module[strlen(module) - 7] = 0;
            nn_tensor b = base_tensor(module), m, want;
            int applied = sdxl_lora_merge(&m, &b, SDXL_LORA_UNET, module, ls, w, nl);
            nn_tensor_from_safetensors(&want, f, "fused", err, sizeof err);
            size_t nd;
            double u = ulp_diff(&m, &want, &b, &nd);
            worst = u > worst ? u : worst;
            ndiff += nd, total += want.numel;
            count += applied > 0 && m.dtype == NN_F16 && nn_tensor_shape_is(&m, b.ndim, b.shape);
            nn_tensor_free(&m);
        }
        snprintf(name, sizeof name, "%s merged fp16 weights = diffusers' fuse_lora within 1 ulp (%d tensors; %zu of "
                 "%zu elements differ, by at most %.2g ulp)", mode == 0 ? "diffusers keys, w 1:" : "kohya A 0.6 + B 0.4:",
                 count, ndiff, total, worst);
        CHECK(count == (mode == 0 ? 7 : 10) && worst <= 1, name);
    }
    sdxl_lora_free(a), sdxl_lora_free(ka), sdxl_lora_free(kb);
    safetensors_close(fu);
}

#define FIXTE "tests/fixtures/sdxl/lora_te/"

/* text-encoder LoRAs against diffusers' own loading and fusing of the same files */
static void check_te_against_diffusers(void)
{
    char err[512], name[512];
    clip_text *te[2] = {clip_text_load_dir("tests/fixtures/sdxl/text_encoder", NULL, err, sizeof err), NULL};
    if (te[0]) te[1] = clip_text_load_dir("tests/fixtures/sdxl/text_encoder_2", NULL, err, sizeof err);
    if (!te[0] || !te[1]) {
        test_report(0, "text encoder fixtures", err);
        clip_text_free(te[0]);
        return;
    }
    sdxl_lora_index *idx = sdxl_lora_index_alloc();
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < clip_text_module_count(te[k]); i++) {
            char m[256];
            clip_text_module_name(te[k], i, m, sizeof m);
            const nn_tensor *t = clip_text_module_weight(te[k], i);
            sdxl_lora_index_add(idx, k ? SDXL_LORA_TE2 : SDXL_LORA_TE1, m, NULL, t->ndim, t->shape);
        }
    sdxl_lora *a = sdxl_lora_open(FIXTE "te_a_diffusers.safetensors", idx, err, sizeof err);
    test_report(a != NULL, "text-encoder LoRA in diffusers keys (lora_linear_layer, PEFT lora_A/B) opens", err);
    sdxl_lora *ka = sdxl_lora_open(FIXTE "te_a_kohya.safetensors", idx, err, sizeof err);
    test_report(ka != NULL, "text-encoder LoRA A in kohya keys (lora_te1_, lora_te2_) opens", err);
    sdxl_lora *kb = sdxl_lora_open(FIXTE "te_b_kohya.safetensors", idx, err, sizeof err);
    test_report(kb != NULL, "text-encoder LoRA B in kohya keys opens", err);
    safetensors *fu = safetensors_open(FIXTE "fused.safetensors", err, sizeof err);
    if (a && ka && kb && fu) {
        /* the tiny towers have 3 (CLIP-L) and 4 (bigG) layers: A = 6 x 3 + 4 x 4, B = 6 x 4 pairs */
        CHECK(a->n == 34 && ka->n == 34 && kb->n == 24, "text-encoder pair counts 34, 34, 24");
        for (int mode = 0; mode < 2; mode++) {
            const char *prefix = mode == 0 ? "diffusers_a_1.0/" : "kohya_a0.6_b0.4/";
            const sdxl_lora *ls[2] = {mode == 0 ? a : ka, kb};
            float w[2] = {mode == 0 ? 1.0f : 0.6f, 0.4f};
            size_t nl = mode == 0 ? 1 : 2, ndiff = 0, total = 0, ndiff_seq = 0;
            double worst = 0, worst_seq = 0;
            int count = 0, found = 0;
            for (size_t i = 0; i < safetensors_count(fu); i++) {
                const safetensors_tensor *f = safetensors_at(fu, i);
                if (strncmp(f->name, prefix, strlen(prefix)) != 0) continue;
                const char *rest = f->name + strlen(prefix);   /* te1/<module>.weight */
                int k = rest[2] == '2';
                char module[256];
                snprintf(module, sizeof module, "%s", rest + 4);
                module[strlen(module) - 7] = 0;
                const nn_tensor *b = NULL;
                for (size_t j = 0; j < clip_text_module_count(te[k]) && !b; j++) {
                    char m[256];
                    clip_text_module_name(te[k], j, m, sizeof m);
                    if (!strcmp(m, module)) b = clip_text_module_weight(te[k], j);
                }
                if (!b) continue;
                found++;
                nn_tensor m, want, s1, s2;
                const sdxl_lora_comp comp = k ? SDXL_LORA_TE2 : SDXL_LORA_TE1;
                int applied = sdxl_lora_merge(&m, b, comp, module, ls, w, nl);
                nn_tensor_from_safetensors(&want, f, "fused", err, sizeof err);
                /* diffusers' order: LoRA A fused and rounded to fp16, then B onto that */
                sdxl_lora_merge(&s1, b, comp, module, ls, w, 1);
                if (nl == 2) sdxl_lora_merge(&s2, &s1, comp, module, ls + 1, w + 1, 1);
                else s2 = s1, s1 = (nn_tensor){0};
                size_t nd, nds;
                /* ours rounds once: within an ulp of the larger of diffusers' intermediate and result */
                double u = ulp_diff(&m, &want, nl == 2 ? &s1 : b, &nd), us = ulp_diff(&s2, &want, b, &nds);
                worst = u > worst ? u : worst, worst_seq = us > worst_seq ? us : worst_seq;
                ndiff += nd, total += want.numel, ndiff_seq += nds;
                count += applied > 0 && m.dtype == NN_F16 && nn_tensor_shape_is(&m, b->ndim, b->shape);
                nn_tensor_free(&m), nn_tensor_free(&s1), nn_tensor_free(&s2);
            }
            snprintf(name, sizeof name, "text encoders, %s merged sequentially as diffusers does (round after each "
                     "LoRA) = its load_lora_into_text_encoder + fuse_lora (%zu of %zu elements differ, by at most %.2g "
                     "ulp: diffusers scales B by alpha then divides by r, we multiply by alpha / r)",
                     mode == 0 ? "diffusers keys, w 1:" : "kohya A 0.6 + B 0.4:", ndiff_seq, total, worst_seq);
            CHECK(found == count && count == (mode == 0 ? 34 : 42) && worst_seq <= 1 &&
                      (mode == 1 ? ndiff_seq * 1000 <= total : ndiff_seq == 0), name);
            snprintf(name, sizeof name, "text encoders, %s merged fp16 weights (one rounding) = diffusers' within 1 ulp "
                     "of the larger of its intermediate and result (%d tensors; %zu of %zu elements differ, by at most "
                     "%.2g ulp)", mode == 0 ? "diffusers keys, w 1:" : "kohya A 0.6 + B 0.4:", count, ndiff, total, worst);
            CHECK(worst <= 1 && (mode == 1 || ndiff == 0), name);
        }
    }
    /* the old text-encoder form: <...>.self_attn.to_{q,k,v,out}_lora.{down,up}.weight resolves to the same pairs */
    safetensors *st = a ? safetensors_open(FIXTE "te_a_diffusers.safetensors", err, sizeof err) : NULL;
    if (st) {
        char p1[] = "/tmp/sf_test_lora_te_old_XXXXXX", names[128][320];
        close(mkstemp(p1));
        safetensors_writer *w1 = safetensors_writer_alloc();
        size_t nn = 0, renamed = 0;
        for (size_t i = 0; i < safetensors_count(st) && nn < 128; i++) {
            const safetensors_tensor *t = safetensors_at(st, i);
            const char *sa = strstr(t->name, ".self_attn."), *ll = strstr(t->name, "_proj.lora_linear_layer.");
            if (sa && ll) {
                const char *proj = sa + 11;   /* q_proj / k_proj / v_proj / out_proj */
                snprintf(names[nn], 320, "%.*sto_%.*s_lora.%s", (int)(proj - t->name), t->name, (int)(ll - proj), proj,
                         ll + strlen("_proj.lora_linear_layer."));
                renamed++;
            } else {
                snprintf(names[nn], 320, "%s", t->name);
            }
            safetensors_writer_add(w1, names[nn++], t->dtype, t->ndim, t->shape, t->data);
        }
        safetensors_writer_write(w1, p1, err, sizeof err);
        safetensors_writer_free(w1);
        sdxl_lora *old = sdxl_lora_open(p1, idx, err, sizeof err);
        int same = old && old->n == a->n && renamed == 24;
        for (size_t i = 0; same && i < a->n; i++) {
            const sdxl_lora_pair *pa = &a->pairs[i], *q = sdxl_lora_find(old, pa->comp, pa->module);
            same = q && q->rank == pa->rank && !memcmp(pa->A, q->A, (size_t)pa->rank * pa->wshape[1] * 4) &&
                   !memcmp(pa->B, q->B, (size_t)pa->wshape[0] * pa->rank * 4);
        }
        snprintf(name, sizeof name, "text encoders: the old key form self_attn.to_q_lora.down.weight (%zu keys) gives "
                 "the same pairs as lora_linear_layer", renamed);
        test_report(same, name, old ? "pairs differ" : err);
        sdxl_lora_free(old);
        unlink(p1);
        safetensors_close(st);
    }
    sdxl_lora_free(a), sdxl_lora_free(ka), sdxl_lora_free(kb);
    safetensors_close(fu);
    sdxl_lora_index_free(idx);
    clip_text_free(te[0]), clip_text_free(te[1]);
}

/* y from the merged fp32 weight vs y from the base plus the runtime adapters, for one module */
static double merged_vs_runtime(const sdxl_lora *const *ls, const float *w, size_t nl, const char *module, int *ok)
{
    nn_tensor b16 = base_tensor(module);
    nn_tensor b = nn_tensor_alloc_cpu(NN_F32, b16.ndim, b16.shape), m;
    nn_tensor_to_f32(b.data, &b16);
    sdxl_lora_merge(&m, &b, SDXL_LORA_UNET, module, ls, w, nl);
    sdxl_lora_adapter ad[4];
    size_t na = sdxl_lora_adapters(ad, 4, SDXL_LORA_UNET, module, ls, w, nl);
    rng *r = rng_alloc(7, 1);
    double worst = 0;
    int O = (int)b.shape[0];
    if (b.ndim == 2) {
        int I = (int)b.shape[1], N = 5;
        float *x = malloc(sizeof(float) * N * I), *y1 = malloc(sizeof(float) * N * O), *y2 = malloc(sizeof(float) * N * O);
        rng_gaussian_fill(r, x, (size_t)N * I);
        nn_sgemm(0, 1, N, O, I, 1, x, I, m.data, I, 0, y1, O);
        nn_sgemm(0, 1, N, O, I, 1, x, I, b.data, I, 0, y2, O);
        float *ws = malloc(sizeof(float) * (sdxl_lora_linear_ws(ad, na, N) + 1));
        sdxl_lora_linear_add(y2, x, N, I, O, ad, na, ws);
        for (int i = 0; i < N * O; i++) worst = fmax(worst, fabs(y1[i] - y2[i]) / (1e-5 + 1e-5 * fabs(y1[i])));
        free(x), free(y1), free(y2), free(ws);
    } else {
        int C = (int)b.shape[1], k = (int)b.shape[2], B = 2, H = 5, W = 6;
        nn_conv_geom g = nn_conv2d_geom(C, O, H, W, k, k, 1, k / 2);
        size_t nin = (size_t)B * C * H * W, nout = (size_t)B * O * g.OH * g.OW;
        float *x = malloc(sizeof(float) * nin), *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout);
        size_t cws = nn_conv2d_ws_floats(&g, B);
        float *cw = malloc(sizeof(float) * cws), *ws = malloc(sizeof(float) * (sdxl_lora_conv_ws(ad, na, B, &g) + 1));
        rng_gaussian_fill(r, x, nin);
        nn_conv2d_forward(y1, x, m.data, NULL, B, &g, cw, cws);
        nn_conv2d_forward(y2, x, b.data, NULL, B, &g, cw, cws);
        sdxl_lora_conv_add(y2, x, B, &g, ad, na, ws);
        for (size_t i = 0; i < nout; i++) worst = fmax(worst, fabs(y1[i] - y2[i]) / (1e-5 + 1e-5 * fabs(y1[i])));
        free(x), free(y1), free(y2), free(cw), free(ws);
    }
    *ok = na > 0;
    rng_free(r);
    nn_tensor_free(&b), nn_tensor_free(&m);
    return worst;
}

static void check_runtime(const sdxl_lora_index *idx)
{
    char err[512], name[256];
    sdxl_lora *ka = sdxl_lora_open(FIX "a_kohya.safetensors", idx, err, sizeof err);
    sdxl_lora *kb = sdxl_lora_open(FIX "b_kohya.safetensors", idx, err, sizeof err);
    if (!ka || !kb) return;
    const sdxl_lora *ls[2] = {ka, kb};
    float w[2] = {0.6f, 0.4f};
    static const char *const mods[] = {
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",   /* linear, both LoRAs */
        "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2",       /* linear */
        "down_blocks.0.resnets.1.conv1",                                 /* 3x3 conv */
        "up_blocks.1.resnets.2.conv2",                                   /* 3x3 conv, LoRA B */
        "up_blocks.2.resnets.0.conv_shortcut",                           /* 1x1 conv */
    };
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        int ok;
        double e = merged_vs_runtime(ls, w, 2, mods[i], &ok);
        snprintf(name, sizeof name, "merged = runtime on %s (worst %.3g of 1e-5 + 1e-5 rel)", mods[i], e);
        CHECK(ok && e <= 1, name);
    }
    /* weight 0: base bit for bit, merged and runtime */
    float w0[2] = {0, 0};
    nn_tensor b = base_tensor(mods[0]), m;
    sdxl_lora_merge(&m, &b, SDXL_LORA_UNET, mods[0], ls, w0, 2);
    CHECK(memcmp(m.data, b.data, nn_tensor_nbytes(&b)) == 0, "weight 0: merged fp16 weight is the base, bit for bit");
    nn_tensor_free(&m);
    sdxl_lora_adapter ad[2];
    size_t na = sdxl_lora_adapters(ad, 2, SDXL_LORA_UNET, mods[2], ls, w0, 2);
    nn_tensor c = base_tensor(mods[2]);
    float *cw = malloc(sizeof(float) * c.numel);
    nn_tensor_to_f32(cw, &c);
    nn_conv_geom g = nn_conv2d_geom((int)c.shape[1], (int)c.shape[0], 4, 4, 3, 3, 1, 1);
    size_t nin = (size_t)c.shape[1] * 16, nout = (size_t)c.shape[0] * 16, cws = nn_conv2d_ws_floats(&g, 1);
    float *x = malloc(sizeof(float) * nin), *y1 = malloc(sizeof(float) * nout), *y2 = malloc(sizeof(float) * nout),
          *ws = malloc(sizeof(float) * cws), *lws = malloc(sizeof(float) * sdxl_lora_conv_ws(ad, na, 1, &g));
    for (size_t i = 0; i < nin; i++) x[i] = (float)sin(i * 0.37);
    nn_conv2d_forward(y1, x, cw, NULL, 1, &g, ws, cws);
    memcpy(y2, y1, sizeof(float) * nout);
    sdxl_lora_conv_add(y2, x, 1, &g, ad, na, lws);
    CHECK(na == 1 && memcmp(y1, y2, sizeof(float) * nout) == 0, "weight 0: runtime conv output is the base's");
    free(cw), free(x), free(y1), free(y2), free(ws), free(lws);
    /* merging changes only adapted tensors: a module no LoRA touches is reported as 0 pairs applied */
    nn_tensor o = base_tensor("conv_in");
    CHECK(sdxl_lora_merge(&m, &o, SDXL_LORA_UNET, "conv_in", ls, w, 2) == 0 &&
              !memcmp(m.data, o.data, nn_tensor_nbytes(&o)),
          "an unadapted module: 0 pairs applied, a copy of the base");
    nn_tensor_free(&m);
    sdxl_lora_free(ka), sdxl_lora_free(kb);
}

/* rewrite the diffusers-key file under other key forms; the merges must be identical */
static void check_key_forms(const sdxl_lora_index *idx)
{
    char err[512];
    safetensors *st = safetensors_open(FIX "a_diffusers.safetensors", err, sizeof err);
    if (!st) return;
    char p1[] = "/tmp/sf_test_lora_peft_XXXXXX", p2[] = "/tmp/sf_test_lora_proc_XXXXXX";
    close(mkstemp(p1)), close(mkstemp(p2));
    safetensors_writer *w1 = safetensors_writer_alloc(), *w2 = safetensors_writer_alloc();
    char names[64][320];
    size_t nn = 0;
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        const char *m = t->name + 5;   /* drop "unet." */
        size_t L = strlen(m);
        int down = strstr(m, ".lora.down.weight") != NULL;
        size_t stem = L - strlen(down ? ".lora.down.weight" : ".lora.up.weight");
        snprintf(names[nn], 320, "unet.%.*s.lora_%s.weight", (int)stem, m, down ? "A" : "B");
        safetensors_writer_add(w1, names[nn++], t->dtype, t->ndim, t->shape, t->data);
        const char *attn = strstr(m, ".to_");
        if (attn && strstr(m, "transformer_blocks") && (attn - m) < (long)stem) {
            int out = strncmp(attn, ".to_out.0", 9) == 0;
            snprintf(names[nn], 320, "%.*s.processor.%.*s_lora.%s.weight", (int)(attn - m), m, out ? 6 : 4, attn + 1,
                     down ? "down" : "up");
        } else {
            snprintf(names[nn], 320, "%s", m);   /* no prefix: the UNet */
        }
        safetensors_writer_add(w2, names[nn++], t->dtype, t->ndim, t->shape, t->data);
    }
    safetensors_writer_write(w1, p1, err, sizeof err);
    safetensors_writer_write(w2, p2, err, sizeof err);
    safetensors_writer_free(w1), safetensors_writer_free(w2);
    sdxl_lora *a = sdxl_lora_open(FIX "a_diffusers.safetensors", idx, err, sizeof err);
    sdxl_lora *pf = sdxl_lora_open(p1, idx, err, sizeof err);
    test_report(pf != NULL, "PEFT keys (lora_A / lora_B) open", err);
    sdxl_lora *pr = sdxl_lora_open(p2, idx, err, sizeof err);
    test_report(pr != NULL, "attention-processor keys (processor.to_q_lora, to_out_lora) and unprefixed keys open", err);
    if (a && pf && pr) {
        int same = a->n == pf->n && a->n == pr->n;
        for (size_t i = 0; same && i < a->n; i++) {
            const sdxl_lora_pair *p = &a->pairs[i], *q = sdxl_lora_find(pf, p->comp, p->module),
                                 *s = sdxl_lora_find(pr, p->comp, p->module);
            size_t na = (size_t)p->rank * (size_t)(p->wshape[1] * p->A_kh * p->A_kw);
            same = q && s && !memcmp(p->A, q->A, na * 4) && !memcmp(p->A, s->A, na * 4) && q->alpha == p->alpha &&
                   s->alpha == p->alpha && !memcmp(p->B, s->B, (size_t)p->wshape[0] * p->rank * 4);
        }
        CHECK(same, "all three key forms resolve to the same modules, A, B and alpha");
    }
    sdxl_lora_free(a), sdxl_lora_free(pf), sdxl_lora_free(pr);
    unlink(p1), unlink(p2);
    safetensors_close(st);
}

/* a one-tensor-per-entry LoRA file from (name, shape, value) */
typedef struct { const char *name; int ndim; int64_t shape[4]; float v; } ent;

static int write_lora(const char *path, const ent *e, size_t n)
{
    safetensors_writer *w = safetensors_writer_alloc();
    float *bufs[16];
    for (size_t i = 0; i < n; i++) {
        size_t m = 1;
        for (int d = 0; d < e[i].ndim; d++) m *= (size_t)e[i].shape[d];
        bufs[i] = malloc(m * sizeof(float) + 4);
        for (size_t j = 0; j < m; j++) bufs[i][j] = e[i].v * (float)(j % 7 + 1) / 7;
        safetensors_writer_add_f32(w, e[i].name, e[i].ndim, e[i].shape, bufs[i]);
    }
    char err[256];
    int rc = safetensors_writer_write(w, path, err, sizeof err);
    safetensors_writer_free(w);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    return rc;
}

static void check_errors(void)
{
    sdxl_lora_index *x = sdxl_lora_index_alloc();
    int64_t lin[2] = {6, 5}, cv[4] = {4, 3, 3, 3}, amb[2] = {2, 2};
    sdxl_lora_index_add(x, SDXL_LORA_UNET, "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                        "input_blocks.4.1.transformer_blocks.0.attn1.to_q", 2, lin);
    sdxl_lora_index_add(x, SDXL_LORA_UNET, "down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2", 4, cv);
    sdxl_lora_index_add(x, SDXL_LORA_UNET, "a.b_c", NULL, 2, amb);
    sdxl_lora_index_add(x, SDXL_LORA_UNET, "a_b.c", NULL, 2, amb);
    char path[] = "/tmp/sf_test_lora_err_XXXXXX", err[512], name[700];
    close(mkstemp(path));
    /* kohya with the original names (as kohya's SDXL LoRAs write them) resolve through the aliases */
    ent ok[] = {{"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight", 2, {2, 5}, 1},
                {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight", 2, {6, 2}, 1},
                {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.alpha", 0, {0}, 1},
                {"lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight", 4, {2, 3, 3, 3}, 1},
                {"lora_unet_input_blocks_1_0_in_layers_2.lora_up.weight", 4, {4, 2, 1, 1}, 1}};
    write_lora(path, ok, 5);
    sdxl_lora *l = sdxl_lora_open(path, x, err, sizeof err);
    test_report(l && l->n == 2 && sdxl_lora_find(l, SDXL_LORA_UNET, "down_blocks.0.resnets.0.conv1") &&
                    sdxl_lora_find(l, SDXL_LORA_UNET, "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q")
                            ->alpha == 1.0f / 7 &&
                    sdxl_lora_find(l, SDXL_LORA_UNET, "down_blocks.0.resnets.0.conv1")->alpha == 2.0f,
                "kohya paths in the original (single-file) names resolve through aliases; no alpha -> rank", err);
    sdxl_lora_free(l);
    static const struct { ent e[3]; size_t n; const char *want, *what; } bad[] = {
        {{{"lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a", 2, {2, 2}, 1}}, 1, "hada_w1_a", "unknown key form"},
        {{{"unet.down_blocks.9.foo.lora.down.weight", 2, {2, 2}, 1}}, 1, "down_blocks.9.foo", "unknown module"},
        {{{"lora_unet_down_blocks_0_resnets_0_conv9.lora_down.weight", 2, {2, 2}, 1}}, 1, "conv9",
         "unknown kohya path"},
        {{{"lora_unet_a_b_c.lora_down.weight", 2, {1, 2}, 1}, {"lora_unet_a_b_c.lora_up.weight", 2, {2, 1}, 1}}, 2,
         "ambiguous", "ambiguous kohya path"},
        {{{"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", 4, {2, 3, 3, 3}, 1}}, 1, "up (B) half",
         "missing half"},
        {{{"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", 4, {2, 3, 1, 1}, 1},
          {"unet.down_blocks.0.resnets.0.conv1.lora.up.weight", 4, {4, 2, 1, 1}, 1}}, 2, "do not fit",
         "1x1 down on a 3x3 conv"},
        {{{"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", 4, {2, 3, 3, 3}, 1},
          {"unet.down_blocks.0.resnets.0.conv1.lora.up.weight", 4, {5, 2, 1, 1}, 1}}, 2, "do not fit",
         "wrong output channels"},
        {{{"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", 4, {2, 3, 3, 3}, NAN},
          {"unet.down_blocks.0.resnets.0.conv1.lora.up.weight", 4, {4, 2, 1, 1}, 1}}, 2, "non-finite", "NaN"},
        {{{"unet.down_blocks.0.resnets.0.conv1.lora.down.weight", 4, {2, 3, 3, 3}, 1},
          {"unet.down_blocks.0.resnets.0.conv1.lora.up.weight", 4, {4, 2, 1, 1}, 1},
          {"unet.down_blocks.0.resnets.0.conv1.alpha", 1, {2}, 1}}, 3, "alpha", "two alphas"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_lora(path, bad[i].e, bad[i].n);
        err[0] = 0;
        l = sdxl_lora_open(path, x, err, sizeof err);
        snprintf(name, sizeof name, "%s refused (\"%s\")", bad[i].what, err);
        CHECK(!l && strstr(err, path) && strstr(err, bad[i].want) && !strchr(err, '\n'), name);
        sdxl_lora_free(l);
    }
    l = sdxl_lora_open("/nonexistent/lora.safetensors", x, err, sizeof err);
    CHECK(!l && strstr(err, "/nonexistent/lora.safetensors"), "missing file named");
    unlink(path);
    sdxl_lora_index_free(x);
}

int main(void)
{
    char err[512];
    base = safetensors_open(FIX "base_fp16.safetensors", err, sizeof err);
    if (!base) {
        test_report(0, "fixture", err);
        return test_finish();
    }
    sdxl_lora_index *idx = index_of(base);
    check_against_diffusers(idx);
    check_te_against_diffusers();
    check_runtime(idx);
    check_key_forms(idx);
    check_errors();
    sdxl_lora_index_free(idx);
    safetensors_close(base);
    return test_finish();
}
