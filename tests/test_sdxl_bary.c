/* test_sdxl_bary: barycenter sampling and checkpoint merging of the SDXL experiment (common/models/sdxl/sdxl_pipe.h
 * models + sdxl_pipe_generate_mix; paper §5.2, App. H) on the tiny model exp_sdxl/sdxl_tiny writes, LoRA A
 * (diffusers keys) and LoRA B (kohya keys), each adapting the UNet and both text encoders. Checks:
 *   - lambda = 1: the barycenter of (A, B) with BOTH UNets run equals A alone, bit for bit (1 eps_A + 0 eps_B is
 *     eps_A exactly: 0 times a finite number is 0 and adding 0 changes nothing); lambda = 0 likewise equals B;
 *   - k = 1 is plain sampling: A alone through the mixing loop equals sdxl_pipe_generate of a pipe loaded with
 *     --lora A:1 at run time (another pipe, the options' path), bit for bit; and (A, A) at (0.5, 0.5) equals A
 *     (0.5 e + 0.5 e = e exactly);
 *   - w = 1 merging (one UNet with W0 + 1 dW_A + 0 dW_B) equals A at run time, not bit for bit, because the
 *     arithmetic order differs ((W0 + B A) x with the merged weight rounded to the stored dtype, against
 *     W0 x + B (A x)): after one step within 2e-6 of the latents' size (fp32 rounding; measured 2.3e-6 of 3.0 ->
 *     7.6e-7), after 4 steps within 1e-3 of the image range [-1, 1] (measured 3.4e-4: the tiny random model
 *     under CFG 5 amplifies rounding about a thousandfold in 4 steps; its latents reach tens);
 *   - a LoRA at scale 0 equals the base, bit for bit, merged and at run time (text encoders included);
 *   - one Euler step is linear in eps, so the barycenter's latents at lambda = 0.3 are 0.3 x A's + 0.7 x B's
 *     (within 1e-5 of their size): eps is mixed, each model with its own text conditioning;
 *   - the text-encoder LoRAs change the conditioning; merged and run-time models of the same weights see the same
 *     conditioning; the barycenter at 0.5 and merging at 0.5 give different images. */
#include "sdxl_pipe.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROMPT "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus"
#define NEGATIVE "cartoon, anime, 3d, painting, b&w, low quality"
#define S 32

static char dir[] = "/tmp/sf_test_sdxl_bary_XXXXXX";
static char la[512], lb[512], model[512];

static sdxl_pipe *load(int nlora, const char *const *paths, const float *w, int runtime, int defer)
{
    sdxl_pipe_opts o;
    memset(&o, 0, sizeof o);
    o.model = model, o.nlora = nlora, o.lora_runtime = runtime, o.lora_defer = defer;
    for (int i = 0; i < nlora; i++) o.lora_path[i] = paths[i], o.lora_weight[i] = w[i];
    char err[1024];
    sdxl_pipe *p = sdxl_pipe_load(&o, err, sizeof err);
    if (!p) test_report(0, "pipe loads", err);
    return p;
}

typedef struct {
    float img[3 * S * S], lat[4 * (S / 8) * (S / 8)], ctx[2 * 77 * 16], pooled[2 * 8];
} result;

static void gen(sdxl_pipe *p, sdxl_pipe_model *const *m, const float *lam, int k, int steps, result *r)
{
    sdxl_gen g = {PROMPT, NEGATIVE, 2, 0, steps, 5.0f, 0.0f, S, S};
    sdxl_trace tr = {NULL, r->lat, r->ctx, r->pooled};
    char err[1024];
    int rc = m ? sdxl_pipe_generate_mix(p, m, lam, k, &g, NULL, r->img, &tr, err, sizeof err)
               : sdxl_pipe_generate(p, &g, NULL, r->img, &tr, err, sizeof err);
    if (rc) test_report(0, "generate", err);
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static sdxl_pipe_model *model_of(sdxl_pipe *p, float wa, float wb, int runtime)
{
    char err[1024];
    const float w[2] = {wa, wb};
    sdxl_pipe_model *m = sdxl_pipe_model_create(p, w, runtime, err, sizeof err);
    if (!m) test_report(0, "model", err);
    return m;
}

int main(void)
{
    if (!mkdtemp(dir)) {
        test_report(0, "temp dir", dir);
        return test_finish();
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exp_sdxl/sdxl_tiny --out %s --seed 0 > /dev/null", dir);
    if (system(cmd) != 0) {
        test_report(0, "exp_sdxl/sdxl_tiny writes the tiny model", cmd);
        return test_finish();
    }
    snprintf(model, sizeof model, "%s/diffusers", dir);
    snprintf(la, sizeof la, "%s/lora_a_diffusers.safetensors", dir);
    snprintf(lb, sizeof lb, "%s/lora_b_kohya.safetensors", dir);
    const char *ab[2] = {la, lb};
    const float ones[2] = {1, 1};
    sdxl_pipe *P = load(2, ab, ones, 1, 1), *Q = load(1, ab, ones, 1, 0), *B = load(0, NULL, NULL, 0, 0);
    if (!P || !Q || !B) return test_finish();
    CHECK(sdxl_pipe_nlora(P) == 2, "deferred pipe opened both LoRAs");
    sdxl_pipe_model *A = model_of(P, 1, 0, 1), *Bm = model_of(P, 0, 1, 1), *M1 = model_of(P, 1, 0, 0),
                    *Z = model_of(P, 0, 0, 1), *ZM = model_of(P, 0, 0, 0), *M5 = model_of(P, 0.5f, 0.5f, 0);
    static result ra, rb, rab1, rab0, rq, rm1, rz, rzm, rbase, raa, r1a, r1b, r1ab, rbar5, rm5;
    const float one = 1, l10[2] = {1, 0}, l01[2] = {0, 1}, half[2] = {0.5f, 0.5f}, l37[2] = {0.3f, 0.7f};
    sdxl_pipe_model *ab_m[2] = {A, Bm}, *aa_m[2] = {A, A};
    const int steps = 4;
    gen(P, &A, &one, 1, steps, &ra);
    gen(P, &Bm, &one, 1, steps, &rb);
    gen(P, ab_m, l10, 2, steps, &rab1);
    gen(P, ab_m, l01, 2, steps, &rab0);
    CHECK(memcmp(rab1.img, ra.img, sizeof ra.img) == 0 && memcmp(rab1.lat, ra.lat, sizeof ra.lat) == 0,
          "barycenter lambda = 1 (both UNets run) = LoRA A alone, bit for bit");
    CHECK(memcmp(rab0.img, rb.img, sizeof rb.img) == 0, "barycenter lambda = 0 = LoRA B alone, bit for bit");
    CHECK(maxdiff(ra.img, rb.img, 3 * S * S) > 1e-3, "LoRA A and LoRA B give different images");
    gen(Q, NULL, NULL, 0, steps, &rq);
    CHECK(memcmp(rq.img, ra.img, sizeof ra.img) == 0,
          "barycenter with k = 1 = plain sampling (a pipe loaded with --lora A:1 at run time), bit for bit");
    gen(P, aa_m, half, 2, steps, &raa);
    CHECK(memcmp(raa.img, ra.img, sizeof ra.img) == 0, "barycenter of (A, A) at (0.5, 0.5) = A, bit for bit");
    static result r1m, r1r;
    gen(P, &M1, &one, 1, 1, &r1m);
    gen(P, &A, &one, 1, 1, &r1r);
    double d1 = maxdiff(r1m.lat, r1r.lat, sizeof r1m.lat / 4), s1 = 0;
    for (size_t i = 0; i < sizeof r1r.lat / 4; i++) s1 = fmax(s1, fabs(r1r.lat[i]));
    printf("one step: w = 1 merged vs A at run time: latents max |diff| %.3g (max |latent| %.3g)\n", d1, s1);
    CHECK(d1 <= 2e-6 * s1, "one step: w = 1 merging = LoRA A within 2e-6 of the latents' size (rounding only)");
    gen(P, &M1, &one, 1, steps, &rm1);
    double dm = maxdiff(rm1.img, ra.img, 3 * S * S);
    printf("w = 1 merged vs A at run time: image max |diff| %.3g (range [-1, 1]), latents %.3g\n", dm,
           maxdiff(rm1.lat, ra.lat, sizeof ra.lat / sizeof ra.lat[0]));
    CHECK(dm <= 2e-3, "w = 1 merging = LoRA A within 1e-3 of the image range after 4 steps (rounding, amplified)");
    CHECK(memcmp(rm1.ctx, ra.ctx, sizeof ra.ctx) == 0 && memcmp(rm1.pooled, ra.pooled, sizeof ra.pooled) == 0,
          "merged and run-time models of the same weights see the same text conditioning");
    gen(B, NULL, NULL, 0, steps, &rbase);
    gen(P, &Z, &one, 1, steps, &rz);
    gen(P, &ZM, &one, 1, steps, &rzm);
    CHECK(memcmp(rz.img, rbase.img, sizeof rz.img) == 0, "LoRAs at scale 0, run time = the base, bit for bit");
    CHECK(memcmp(rzm.img, rbase.img, sizeof rz.img) == 0 && memcmp(rzm.ctx, rbase.ctx, sizeof rz.ctx) == 0,
          "LoRAs at scale 0, merged (UNet and text encoders) = the base, bit for bit");
    CHECK(maxdiff(ra.ctx, rbase.ctx, sizeof ra.ctx / 4) > 1e-4 && maxdiff(ra.ctx, rb.ctx, sizeof ra.ctx / 4) > 1e-4,
          "the text-encoder LoRAs change the conditioning (each model its own)");
    /* one Euler step: linear in eps */
    gen(P, &A, &one, 1, 1, &r1a);
    gen(P, &Bm, &one, 1, 1, &r1b);
    gen(P, ab_m, l37, 2, 1, &r1ab);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < sizeof r1a.lat / 4; i++) {
        double want = 0.3 * r1a.lat[i] + 0.7 * r1b.lat[i];
        worst = fmax(worst, fabs(r1ab.lat[i] - want)), scale = fmax(scale, fabs(want));
    }
    printf("one step, lambda 0.3: |barycenter - (0.3 A + 0.7 B)| %.3g of max %.3g\n", worst, scale);
    CHECK(worst <= 1e-5 * scale && maxdiff(r1a.lat, r1b.lat, sizeof r1a.lat / 4) > 1e-3 * scale,
          "one step at lambda 0.3: latents = 0.3 A + 0.7 B (eps mixed, each model with its own conditioning)");
    gen(P, ab_m, half, 2, steps, &rbar5);
    gen(P, &M5, &one, 1, steps, &rm5);
    printf("barycenter 0.5 vs merged 0.5: image max |diff| %.3g\n", maxdiff(rbar5.img, rm5.img, 3 * S * S));
    CHECK(maxdiff(rbar5.img, rm5.img, 3 * S * S) > 1e-3, "barycenter at 0.5 and merging at 0.5 differ");
    char err[1024];
    const float bad[2] = {NAN, 0};
    sdxl_pipe_model *nm = sdxl_pipe_model_create(P, bad, 1, err, sizeof err);
    CHECK(!nm && strstr(err, "lora_a_diffusers") && strstr(err, "not finite"), "a NaN weight is refused naming the LoRA");
    sdxl_pipe_model *ms[2] = {A, NULL};
    CHECK(sdxl_pipe_generate_mix(P, ms, l10, 2, &(sdxl_gen){PROMPT, NEGATIVE, 0, 0, 1, 5, 0, S, S}, NULL, ra.img, NULL,
                                 err, sizeof err) != 0 && !strchr(err, '\n'),
          "a missing model is refused with one line");
    sdxl_pipe_model *mods[] = {A, Bm, M1, Z, ZM, M5};
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) sdxl_pipe_model_free(mods[i]);
    sdxl_pipe_free(P), sdxl_pipe_free(Q), sdxl_pipe_free(B);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
    return test_finish();
}
