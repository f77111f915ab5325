/* test_sdxl_pipe: the whole SDXL pipeline (common/models/sdxl/sdxl_pipe.h) against diffusers v0.25.1's
 * StableDiffusionXLPipeline: three 10-step runs at 32x32 px on the tiny model that exp_sdxl/sdxl_tiny writes
 * with --seed 0 (CFG 5; CFG 5 with guidance rescale 0.7; no CFG), from the same initial noise, with diffusers
 * given our text embeddings (the reference environment has no transformers for CLIP-L; the encoders are checked
 * against open_clip by test_sdxl_text). Fixture: tests/fixtures/sdxl/pipeline/reference.safetensors from
 * tests/reference/sdxl_pipe_ref.py pipeline (regenerate it if sdxl_tiny's weights change). Checks:
 *   - our text embeddings of the paper's prompts are the fixture's (abs 1e-5: a regression check);
 *   - final latents within 2e-4 + 1e-5 |x| of diffusers' (|x| up to ~37 after CFG 5 on random weights; measured
 *     5.7e-5), the fp32 decoded image within 5e-5, the uint8 image equal but for rounding ties;
 *   - the same image from the fp16 variant and from the single file (their values are the same fp16 numbers);
 *   - a missing component folder and a single file without --config are refused with one line naming the path. */
#include "safetensors.h"
#include "sdxl_pipe.h"
#include "tensor.h"
#include "test.h"
#include "vae.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROMPT "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus"
#define NEGATIVE "cartoon, anime, 3d, painting, b&w, low quality"

static const safetensors *fx;

static float *get(const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(fx, name);
    if (!t) return NULL;
    float *f = malloc(t->nbytes);
    memcpy(f, t->data, t->nbytes);
    *n = t->numel;
    return f;
}

static double worst(const float *got, const float *want, size_t n, double atol, double rtol, double *maxd)
{
    double w = 0;
    *maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), e = d / (atol + rtol * fabs(want[i]));
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
        if (d > *maxd) *maxd = d;
    }
    return w;
}

static void run(sdxl_pipe *p, const char *tag, float cfg, float rescale, const char *layout)
{
    char key[128], name[256], err[512];
    size_t nn = 0, nl = 0, ni = 0, nc = 0, np = 0, nr = 0;
    snprintf(key, sizeof key, "%s/noise", tag);
    float *noise = get(key, &nn);
    snprintf(key, sizeof key, "%s/latents", tag);
    float *lat = get(key, &nl);
    snprintf(key, sizeof key, "%s/image", tag);
    float *img = get(key, &ni);
    snprintf(key, sizeof key, "%s/context", tag);
    float *ctx = get(key, &nc);
    snprintf(key, sizeof key, "%s/pooled", tag);
    float *pooled = get(key, &np);
    snprintf(key, sizeof key, "%s/rgb", tag);
    float *rgbw = get(key, &nr);
    if (!noise || !lat || !img || !ctx || !pooled || !rgbw) {
        test_report(0, tag, "fixture tensors missing");
        return;
    }
    sdxl_gen g = {PROMPT, NEGATIVE, 3, 0, 10, cfg, rescale, 32, 32};
    float *out = malloc(ni * 4), *fl = malloc(nl * 4), *c2 = malloc(nc * 4), *p2 = malloc(np * 4);
    sdxl_trace tr = {NULL, fl, c2, p2};
    int rc = sdxl_pipe_generate(p, &g, noise, out, &tr, err, sizeof err);
    snprintf(name, sizeof name, "%s, %s: generates", layout, tag);
    test_report(rc == 0, name, err);
    if (rc == 0) {
        double m1, m2, m3, m4;
        double wc = worst(c2, ctx, nc, 1e-5, 0, &m1), wp = worst(p2, pooled, np, 1e-5, 0, &m2);
        snprintf(name, sizeof name, "%s, %s: text embeddings as recorded (max |diff| %.2g, %.2g)", layout, tag, m1, m2);
        CHECK(wc <= 1 && wp <= 1, name);
        double wl = worst(fl, lat, nl, 2e-4, 1e-5, &m3), wi = worst(out, img, ni, 5e-5, 0, &m4);
        snprintf(name, sizeof name, "%s, %s: final latents = diffusers' within 2e-4 + 1e-5 rel (max |diff| %.2g)",
                 layout, tag, m3);
        CHECK(wl <= 1, name);
        snprintf(name, sizeof name, "%s, %s: decoded image = diffusers' within 5e-5 (max |diff| %.2g)", layout, tag, m4);
        CHECK(wi <= 1, name);
        uint8_t *rgb = malloc(nr);
        sdxl_vae_to_rgb8(rgb, out, 32, 32);
        size_t off = 0, big = 0;
        for (size_t i = 0; i < nr; i++) {
            float d = fabsf((float)rgb[i] - rgbw[i]);
            off += d != 0, big += d > 1;
        }
        snprintf(name, sizeof name, "%s, %s: uint8 image = diffusers' (%zu of %zu values differ by 1, %zu more)", layout,
                 tag, off, nr, big);
        CHECK(big == 0 && off * 100 <= nr, name);
        free(rgb);
    }
    free(noise), free(lat), free(img), free(ctx), free(pooled), free(rgbw), free(out), free(fl), free(c2), free(p2);
}

int main(void)
{
    char err[512];
    safetensors *st = safetensors_open("tests/fixtures/sdxl/pipeline/reference.safetensors", err, sizeof err);
    if (!st) {
        test_report(0, "fixture", err);
        return test_finish();
    }
    fx = st;
    char dir[] = "/tmp/sf_test_sdxl_pipe_XXXXXX", cmd[512], model[256], single[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(cmd, sizeof cmd, "exp_sdxl/sdxl_tiny --out %s --seed 0 > /dev/null", dir);
    if (system(cmd) != 0) {
        test_report(0, "exp_sdxl/sdxl_tiny writes the tiny model", cmd);
        return test_finish();
    }
    snprintf(model, sizeof model, "%s/diffusers", dir);
    snprintf(single, sizeof single, "%s/sd_xl_tiny.safetensors", dir);
    static const struct { const char *tag; float cfg, rescale; } runs[] = {
        {"cfg5", 5.0f, 0.0f}, {"cfg5_rescale0.7", 5.0f, 0.7f}, {"nocfg", 1.0f, 0.0f}};
    sdxl_pipe_opts o;
    memset(&o, 0, sizeof o);
    o.model = model;
    sdxl_pipe *p = sdxl_pipe_load(&o, err, sizeof err);
    test_report(p != NULL, "diffusers folder (fp32) loads", err);
    if (p)
        for (int i = 0; i < 3; i++) run(p, runs[i].tag, runs[i].cfg, runs[i].rescale, "fp32 folder");
    sdxl_pipe_free(p);
    o.variant = "fp16";
    p = sdxl_pipe_load(&o, err, sizeof err);
    test_report(p != NULL, "fp16 variant loads", err);
    if (p) run(p, "cfg5", 5.0f, 0.0f, "fp16 variant");
    sdxl_pipe_free(p);
    o.variant = NULL, o.model = single, o.config = model;
    p = sdxl_pipe_load(&o, err, sizeof err);
    test_report(p != NULL, "single file + config folder loads", err);
    if (p) run(p, "cfg5_rescale0.7", 5.0f, 0.7f, "single file");
    sdxl_pipe_free(p);
    /* bad input */
    o.config = NULL;
    p = sdxl_pipe_load(&o, err, sizeof err);
    CHECK(!p && strstr(err, single) && strstr(err, "--config") && !strchr(err, '\n'),
          "a single file without --config is refused naming the file");
    snprintf(cmd, sizeof cmd, "mv %s/diffusers/vae %s/vae_moved", dir, dir);
    if (system(cmd) == 0) {
        o.model = model;
        p = sdxl_pipe_load(&o, err, sizeof err);
        char name[700];
        snprintf(name, sizeof name, "a missing component folder is refused naming it (\"%s\")", err);
        CHECK(!p && strstr(err, "vae") && strstr(err, "missing component folder") && !strchr(err, '\n'), name);
        sdxl_pipe_free(p);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
    safetensors_close(st);
    return test_finish();
}
