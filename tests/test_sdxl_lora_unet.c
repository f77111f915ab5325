/* test_sdxl_lora_unet: LoRAs applied to the SDXL UNet (models/sdxl/unet.h + lora.h) on the tiny model of
 * exp_sdxl/sdxl_tiny, both ways:
 *   - run time: two UNets created on ONE weight store, each with its own run-time table (LoRA A at 1; A at 0.6 +
 *     B at 0.4), give the same outputs as UNets on stores where the same LoRAs were merged (rel 1e-5), and the
 *     store still holds only views of the file (no weight copied): two LoRA'd UNets cost one copy of the base;
 *   - the plain UNet on that shared store gives bit for bit the output it gave before the LoRA'd UNets existed;
 *   - merging replaced exactly the adapted tensors (owned copies), every other tensor is still a view;
 *   - weight 0 at run time gives the base output bit for bit. */
#include "clip_text.h"
#include "lora.h"
#include "rng.h"
#include "test.h"
#include "unet.h"
#include "weights.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/sf_test_lora_unet_XXXXXX";
static sdxl_unet_config cfg;

static const char *variant = "fp16";

static nn_weights *store(char *err, size_t errlen)
{
    char d[256];
    snprintf(d, sizeof d, "%s/diffusers/unet", dir);
    nn_weights *w = nn_weights_alloc();
    if (nn_weights_add_diffusers(w, d, "diffusion_pytorch_model", variant, NULL, NULL, err, errlen)) {
        nn_weights_free(w);
        return NULL;
    }
    return w;
}

static sdxl_lora_index *index_of(const nn_weights *w)
{
    sdxl_lora_index *x = sdxl_lora_index_alloc();
    for (size_t i = 0; i < nn_weights_count(w); i++) {
        const char *n = nn_weights_name_at(w, i);
        size_t L = strlen(n);
        if (L < 8 || strcmp(n + L - 7, ".weight")) continue;
        char m[256];
        snprintf(m, sizeof m, "%.*s", (int)(L - 7), n);
        sdxl_lora_index_add(x, SDXL_LORA_UNET, m, NULL, nn_weights_tensor_at(w, i)->ndim,
                            nn_weights_tensor_at(w, i)->shape);
    }
    /* sdxl_tiny's LoRAs adapt the text encoders too: their modules join the index (applied by sdxl_pipe) */
    for (int k = 0; k < 2; k++) {
        char d[300], err[512], m[256];
        snprintf(d, sizeof d, "%s/diffusers/text_encoder%s", dir, k ? "_2" : "");
        clip_text *e = clip_text_load_dir(d, NULL, err, sizeof err);
        if (!e) {
            test_report(0, "tiny text encoder", err);
            continue;
        }
        for (size_t i = 0; i < clip_text_module_count(e); i++) {
            clip_text_module_name(e, i, m, sizeof m);
            const nn_tensor *t = clip_text_module_weight(e, i);
            sdxl_lora_index_add(x, k ? SDXL_LORA_TE2 : SDXL_LORA_TE1, m, NULL, t->ndim, t->shape);
        }
        clip_text_free(e);
    }
    return x;
}

enum { B = 2, H = 8, W = 8, L = 77 };
static float x[B * 4 * H * W], ctx[B * L * 16], te[B * 8], tid[B * 6], ts[B];

static float *forward(sdxl_unet *u)
{
    size_t n = sdxl_unet_ws_floats(u, B, H, W, L);
    float *ws = malloc(n * sizeof *ws), *eps = malloc(sizeof x);
    char err[256];
    if (sdxl_unet_forward(u, eps, x, ts, ctx, L, te, tid, B, H, W, ws, n, err, sizeof err)) {
        printf("forward: %s\n", err);
        memset(eps, 0, sizeof x);
    }
    free(ws);
    return eps;
}

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n)
{
    double w = 0, m = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return w / m;
}

static size_t owned_count(const nn_weights *w)
{
    size_t k = 0;
    for (size_t i = 0; i < nn_weights_count(w); i++) k += nn_weights_tensor_at(w, i)->owned != 0;
    return k;
}

/* a store with the LoRAs merged into it */
static nn_weights *merged_store(const sdxl_lora *const *ls, const float *wt, size_t nl, size_t *nrep)
{
    char err[256];
    nn_weights *w = store(err, sizeof err);
    *nrep = 0;
    for (size_t i = 0; i < nl; i++)
        for (size_t k = 0; k < ls[i]->n; k++) {
            if (ls[i]->pairs[k].comp != SDXL_LORA_UNET) continue;
            const char *m = ls[i]->pairs[k].module;
            char wn[300];
            snprintf(wn, sizeof wn, "%s.weight", m);
            if (nn_weights_find(w, NULL, wn)->owned) continue;
            nn_tensor t;
            sdxl_lora_merge(&t, nn_weights_find(w, NULL, wn), SDXL_LORA_UNET, m, ls, wt, nl);
            if (nn_weights_replace(w, NULL, wn, &t, err, sizeof err) == 0) (*nrep)++;
        }
    return w;
}

int main(void)
{
    char err[512], cmd[256], path[300];
    if (!mkdtemp(dir)) return 1;
    snprintf(cmd, sizeof cmd, "exp_sdxl/sdxl_tiny --out %s > /dev/null", dir);
    if (system(cmd) != 0) {
        test_report(0, "sdxl_tiny", cmd);
        return test_finish();
    }
    snprintf(path, sizeof path, "%s/diffusers/unet/config.json", dir);
    if (sdxl_unet_config_load(&cfg, path, err, sizeof err)) {
        test_report(0, "config", err);
        return test_finish();
    }
    rng *r = rng_alloc(11, 0);
    rng_gaussian_fill(r, x, sizeof x / 4), rng_gaussian_fill(r, ctx, sizeof ctx / 4), rng_gaussian_fill(r, te, sizeof te / 4);
    rng_free(r);
    for (int b = 0; b < B; b++) {
        ts[b] = 500.0f + 100 * b;
        float t6[6] = {32, 32, 0, 0, 32, 32};
        memcpy(tid + 6 * b, t6, sizeof t6);
    }
    nn_weights *shared = store(err, sizeof err);
    if (!shared) {
        test_report(0, "store", err);
        return test_finish();
    }
    sdxl_lora_index *idx = index_of(shared);
    /* the kohya files use original names (aliases: tested in test_exp_sdxl.sh); the diffusers-key twins here */
    snprintf(path, sizeof path, "%s/lora_a_diffusers.safetensors", dir);
    sdxl_lora *la = sdxl_lora_open(path, idx, err, sizeof err);
    snprintf(path, sizeof path, "%s/lora_b_diffusers.safetensors", dir);
    sdxl_lora *lb = la ? sdxl_lora_open(path, idx, err, sizeof err) : NULL;
    test_report(la && lb, "tiny LoRAs open", err);
    if (!la || !lb) return test_finish();

    sdxl_unet *u0 = sdxl_unet_create(&cfg, shared, NULL, err, sizeof err);
    float *e0 = forward(u0);
    const sdxl_lora *A[1] = {la}, *AB[2] = {la, lb};
    float w1[1] = {1.0f}, w64[2] = {0.6f, 0.4f}, w0[1] = {0.0f};
    sdxl_lora_runtime *r1 = sdxl_lora_runtime_build(shared, NULL, SDXL_LORA_UNET, A, w1, 1, err, sizeof err);
    sdxl_lora_runtime *r2 = sdxl_lora_runtime_build(shared, NULL, SDXL_LORA_UNET, AB, w64, 2, err, sizeof err);
    sdxl_lora_runtime *rz = sdxl_lora_runtime_build(shared, NULL, SDXL_LORA_UNET, A, w0, 1, err, sizeof err);
    size_t na_unet = 0;
    for (size_t k = 0; k < la->n; k++) na_unet += la->pairs[k].comp == SDXL_LORA_UNET;
    CHECK(r1 && r2 && rz && sdxl_lora_runtime_count(r1) == na_unet && na_unet == 7 &&
              sdxl_lora_runtime_count(r2) == 11,
          "run-time tables: 7 weights for A, 11 for A + B (one module in both)");
    sdxl_unet *u1 = sdxl_unet_create(&cfg, shared, NULL, err, sizeof err);
    sdxl_unet *u2 = sdxl_unet_create(&cfg, shared, NULL, err, sizeof err);
    sdxl_unet *uz = sdxl_unet_create(&cfg, shared, NULL, err, sizeof err);
    sdxl_unet_set_lora(u1, r1), sdxl_unet_set_lora(u2, r2), sdxl_unet_set_lora(uz, rz);
    float *e1 = forward(u1), *e2 = forward(u2), *ez = forward(uz), *e0b = forward(u0);
    CHECK(owned_count(shared) == 0, "shared store: still only views of the file (no weight copied)");
    CHECK(memcmp(e0, e0b, sizeof x) == 0, "plain UNet on the shared store: unchanged, bit for bit");
    CHECK(memcmp(e0, ez, sizeof x) == 0, "run-time LoRA at weight 0 = base, bit for bit");
    CHECK(rel(e1, e0, sizeof x / 4) > 1e-2, "run-time LoRA A changes the output");
    size_t nr1, nr2;
    nn_weights *m1 = merged_store(A, w1, 1, &nr1), *m2 = merged_store(AB, w64, 2, &nr2);
    CHECK(nr1 == 7 && owned_count(m1) == 7 && nr2 == 11 && owned_count(m2) == 11,
          "merging replaced exactly the adapted tensors (7; 11), the rest are views");
    sdxl_unet *um1 = sdxl_unet_create(&cfg, m1, NULL, err, sizeof err), *um2 = sdxl_unet_create(&cfg, m2, NULL, err, sizeof err);
    float *f1 = forward(um1), *f2 = forward(um2);
    char name[200];
    /* the merged weights are rounded to the store's fp16 once, the run-time path is fp32 throughout: they agree to
     * about fp16 precision (2^-11 relative) */
    snprintf(name, sizeof name, "A at 1: run time = merged fp16 weights, max |diff| / max |out| %.2g < 2e-3",
             rel(e1, f1, sizeof x / 4));
    CHECK(rel(e1, f1, sizeof x / 4) < 2e-3, name);
    snprintf(name, sizeof name, "A 0.6 + B 0.4: run time = merged, max |diff| / max |out| %.2g < 2e-3",
             rel(e2, f2, sizeof x / 4));
    CHECK(rel(e2, f2, sizeof x / 4) < 2e-3, name);
    /* fp32 weights: merged and run time differ only in summation order */
    variant = NULL;
    nn_weights *s32 = store(err, sizeof err);
    sdxl_lora_runtime *r32 = sdxl_lora_runtime_build(s32, NULL, SDXL_LORA_UNET, AB, w64, 2, err, sizeof err);
    size_t nr3;
    nn_weights *m32 = merged_store(AB, w64, 2, &nr3);
    sdxl_unet *ur = sdxl_unet_create(&cfg, s32, NULL, err, sizeof err), *um = sdxl_unet_create(&cfg, m32, NULL, err, sizeof err);
    sdxl_unet_set_lora(ur, r32);
    float *g1 = forward(ur), *g2 = forward(um);
    snprintf(name, sizeof name, "fp32 weights, A 0.6 + B 0.4: run time = merged, max |diff| / max |out| %.2g < 1e-5",
             rel(g1, g2, sizeof x / 4));
    CHECK(rel(g1, g2, sizeof x / 4) < 1e-5, name);
    free(g1), free(g2);
    sdxl_unet_free(ur), sdxl_unet_free(um);
    sdxl_lora_runtime_free(r32);
    nn_weights_free(s32), nn_weights_free(m32);
    free(e0), free(e0b), free(e1), free(e2), free(ez), free(f1), free(f2);
    sdxl_unet_free(u0), sdxl_unet_free(u1), sdxl_unet_free(u2), sdxl_unet_free(uz), sdxl_unet_free(um1), sdxl_unet_free(um2);
    sdxl_lora_runtime_free(r1), sdxl_lora_runtime_free(r2), sdxl_lora_runtime_free(rz);
    nn_weights_free(m1), nn_weights_free(m2), nn_weights_free(shared);
    sdxl_lora_free(la), sdxl_lora_free(lb);
    sdxl_lora_index_free(idx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
    return test_finish();
}
