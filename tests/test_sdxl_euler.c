/* test_sdxl_euler: the SDXL Euler scheduler, classifier-free guidance and initial latents
 * (common/models/sdxl/euler.h) against diffusers v0.25.1's EulerDiscreteScheduler and rescale_noise_cfg, through
 * the fixture tests/fixtures/sdxl/euler/reference.json written by tests/reference/sdxl_pipe_ref.py:
 *   - time steps (exact) and sigmas (rel 1e-6: fp32 values; diffusers' own fp32 ops) for 10, 50 and 100 steps,
 *     and the initial noise sigma;
 *   - scale_model_input and one Euler step at steps 0, 4 and 9 of 10, epsilon and v prediction (rel 1e-6);
 *   - guidance with and without rescale 0.7 (abs 1e-5);
 * and on its own: the config reader on SDXL's scheduler_config.json and its refusals, leading spacing by hand,
 * and the latents' reproducibility (same seed and image -> same latents; another image -> others). */
#include "euler.h"
#include "json.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/sdxl/euler/"

static float *farr(const json_value *a, size_t *n)
{
    *n = json_len(a);
    float *f = malloc((*n ? *n : 1) * sizeof *f);
    for (size_t i = 0; i < *n; i++) f[i] = (float)json_at(a, i)->u.num.d;
    return f;
}

/* max over i of |got - want| / (atol + rtol |want|): <= 1 passes */
static double worst(const float *got, const float *want, size_t n, double atol, double rtol)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
    }
    return w;
}

static void check_schedules(const json_value *root)
{
    const json_value *steps = json_get(root, "schedules");
    sdxl_euler_config c;
    sdxl_euler_config_sdxl(&c);
    char err[256];
    for (size_t k = 0; k < json_len(steps); k++) {
        const json_member *m = json_member_at(steps, k);
        int n = atoi(m->key);
        sdxl_euler s;
        char name[128];
        if (sdxl_euler_init(&s, &c, n, err, sizeof err)) {
            test_report(0, "euler init", err);
            continue;
        }
        size_t nt, ns;
        float *ts = farr(json_get(&m->value, "timesteps"), &nt), *sg = farr(json_get(&m->value, "sigmas"), &ns);
        snprintf(name, sizeof name, "%d steps: %zu time steps and %zu sigmas", n, nt, ns);
        CHECK(nt == (size_t)n && ns == (size_t)n + 1, name);
        if (nt == (size_t)n && ns == (size_t)n + 1) {
            snprintf(name, sizeof name, "%d steps: time steps equal diffusers' exactly", n);
            CHECK(memcmp(s.timesteps, ts, nt * sizeof *ts) == 0, name);
            snprintf(name, sizeof name, "%d steps: sigmas within rel 1e-6 of diffusers' (worst %.3g)", n,
                     worst(s.sigmas, sg, ns, 1e-30, 1e-6));
            CHECK(worst(s.sigmas, sg, ns, 1e-30, 1e-6) <= 1, name);
            snprintf(name, sizeof name, "%d steps: final sigma 0", n);
            CHECK(s.sigmas[n] == 0.0f, name);
        }
        snprintf(name, sizeof name, "%d steps: init noise sigma", n);
        CHECK_CLOSE(s.init_noise_sigma, json_get(&m->value, "init_noise_sigma")->u.num.d, 0, 1e-6, name);
        free(ts), free(sg);
        sdxl_euler_free(&s);
    }
}

static void check_steps(const json_value *root, const char *key, sdxl_prediction pred)
{
    const json_value *o = json_get(root, key);
    sdxl_euler_config c;
    sdxl_euler_config_sdxl(&c);
    c.prediction_type = pred;
    sdxl_euler s;
    char err[256], name[160];
    int n = (int)json_get(o, "n")->u.num.i;
    if (sdxl_euler_init(&s, &c, n, err, sizeof err)) {
        test_report(0, "euler init", err);
        return;
    }
    size_t nx, ne;
    float *x = farr(json_get(o, "x"), &nx), *mo = farr(json_get(o, "model_output"), &ne);
    const json_value *cs = json_get(o, "checks");
    for (size_t k = 0; k < json_len(cs); k++) {
        const json_value *ck = json_at(cs, k);
        int i = (int)json_get(ck, "i")->u.num.i;
        size_t n1, n2;
        float *sc = farr(json_get(ck, "scaled"), &n1), *nx_ = farr(json_get(ck, "next"), &n2);
        float *a = malloc(nx * sizeof *a), *b = malloc(nx * sizeof *b);
        sdxl_euler_scale_input(a, x, nx, &s, i);
        memcpy(b, x, nx * sizeof *b);
        sdxl_euler_step(b, mo, nx, &s, i);
        snprintf(name, sizeof name, "%s step %d: scale_model_input within rel 1e-6 (worst %.3g)", key, i,
                 worst(a, sc, nx, 1e-7, 1e-6));
        CHECK(n1 == nx && worst(a, sc, nx, 1e-7, 1e-6) <= 1, name);
        snprintf(name, sizeof name, "%s step %d: Euler step within rel 1e-6 (worst %.3g)", key, i,
                 worst(b, nx_, nx, 1e-6, 1e-6));
        CHECK(n2 == nx && worst(b, nx_, nx, 1e-6, 1e-6) <= 1, name);
        free(sc), free(nx_), free(a), free(b);
    }
    free(x), free(mo);
    sdxl_euler_free(&s);
}

static void check_cfg(const json_value *root)
{
    const json_value *o = json_get(root, "cfg");
    int B = (int)json_get(o, "B")->u.num.i;
    size_t nu, nc, n1, n2;
    float *u = farr(json_get(o, "uncond"), &nu), *c = farr(json_get(o, "cond"), &nc);
    float *w0 = farr(json_get(o, "out_plain"), &n1), *w1 = farr(json_get(o, "out_rescaled"), &n2);
    float g = (float)json_get(o, "scale")->u.num.d, r = (float)json_get(o, "rescale")->u.num.d;
    float *out = malloc(nu * sizeof *out);
    char name[160];
    sdxl_cfg_combine(out, u, c, B, nu / (size_t)B, g, 0.0f);
    snprintf(name, sizeof name, "CFG %.1f equals diffusers' (worst %.3g of abs 1e-5)", g, worst(out, w0, nu, 1e-5, 0));
    CHECK(worst(out, w0, nu, 1e-5, 0) <= 1, name);
    sdxl_cfg_combine(out, u, c, B, nu / (size_t)B, g, r);
    snprintf(name, sizeof name, "CFG %.1f with rescale %.2f equals rescale_noise_cfg (worst %.3g of abs 1e-5)", g, r,
             worst(out, w1, nu, 1e-5, 0));
    CHECK(worst(out, w1, nu, 1e-5, 0) <= 1, name);
    /* in place over the conditional output, as the pipeline calls it */
    memcpy(out, c, nu * sizeof *out);
    sdxl_cfg_combine(out, u, out, B, nu / (size_t)B, g, r);
    CHECK(worst(out, w1, nu, 1e-5, 0) <= 1, "CFG in place (out == cond) gives the same");
    free(u), free(c), free(w0), free(w1), free(out);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static void check_config_reader(void)
{
    char err[512];
    sdxl_euler_config c, ref;
    sdxl_euler_config_sdxl(&ref);
    int rc = sdxl_euler_config_read(&c, FIX "scheduler_config.json", err, sizeof err);
    CHECK(rc == 0, "SDXL's scheduler_config.json reads");
    CHECK(rc == 0 && c.num_train_timesteps == 1000 && c.beta_start == 0.00085 && c.beta_end == 0.012 &&
              c.beta_schedule == SDXL_BETAS_SCALED_LINEAR && c.prediction_type == SDXL_PRED_EPSILON &&
              c.timestep_spacing == SDXL_SPACING_LEADING && c.steps_offset == 1,
          "it gives SDXL's settings");
    char dir[] = "/tmp/sf_test_euler_XXXXXX", path[128];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    static const struct { const char *json, *want, *name; } bad[] = {
        {"{\"use_karras_sigmas\": true}", "use_karras_sigmas", "Karras sigmas refused"},
        {"{\"interpolation_type\": \"log_linear\"}", "interpolation_type", "log_linear refused"},
        {"{\"prediction_type\": \"sample\"}", "prediction_type", "prediction_type sample refused"},
        {"{\"timestep_spacing\": \"odd\"}", "timestep_spacing", "unknown spacing refused"},
        {"{\"_class_name\": \"DDIMScheduler\"}", "_class_name", "another scheduler class refused"},
        {"{\"trained_betas\": [0.1, 0.2]}", "trained_betas", "trained betas refused"},
        {"{\"beta_start\": 0.02, \"beta_end\": 0.01}", "beta_start", "beta_start > beta_end refused"},
        {"{\"num_train_timesteps\": \"1000\"}", "num_train_timesteps", "a string for a number refused"},
        {"{\"steps_offset\": 1", "line", "truncated JSON refused"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].json);
        err[0] = 0;
        rc = sdxl_euler_config_read(&c, path, err, sizeof err);
        char name[1024];   /* room for the whole err[512] quoted */
        snprintf(name, sizeof name, "%s (\"%s\")", bad[i].name, err);
        CHECK(rc == -1 && strstr(err, path) && strstr(err, bad[i].want) && !strchr(err, '\n'), name);
    }
    write_file(path, "{}");
    rc = sdxl_euler_config_read(&c, path, err, sizeof err);
    CHECK(rc == 0 && c.beta_schedule == SDXL_BETAS_LINEAR && c.timestep_spacing == SDXL_SPACING_LINSPACE &&
              c.steps_offset == 0 && c.beta_start == 0.0001 && c.beta_end == 0.02,
          "absent fields take diffusers' EulerDiscreteScheduler defaults");
    rc = sdxl_euler_config_read(&c, "/nonexistent/scheduler_config.json", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "/nonexistent/scheduler_config.json"), "missing file named");
    unlink(path);
    rmdir(dir);
}

static void check_own(void)
{
    sdxl_euler_config c;
    sdxl_euler_config_sdxl(&c);
    sdxl_euler s;
    char err[256];
    CHECK(sdxl_euler_init(&s, &c, 100, err, sizeof err) == 0, "100 steps init");
    CHECK(s.timesteps[0] == 991.0f && s.timesteps[1] == 981.0f && s.timesteps[99] == 1.0f,
          "leading spacing, offset 1: 991, 981, ..., 1");
    int mono = 1;
    for (int i = 0; i < 100; i++) mono &= s.sigmas[i] > s.sigmas[i + 1];
    CHECK(mono, "sigmas strictly decreasing to 0");
    CHECK_CLOSE(s.init_noise_sigma, sqrt((double)s.sigmas[0] * s.sigmas[0] + 1), 0, 1e-6,
                "init noise sigma = sqrt(sigma_max^2 + 1)");
    sdxl_euler_free(&s);
    CHECK(sdxl_euler_init(&s, &c, 0, err, sizeof err) == -1, "0 steps refused");
    CHECK(sdxl_euler_init(&s, &c, 1001, err, sizeof err) == -1, "more steps than training steps refused");
    enum { N = 4096 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *d = malloc(N * sizeof *d);
    sdxl_latents_init(a, N, 42, 3, 2.0f);
    sdxl_latents_init(b, N, 42, 3, 2.0f);
    sdxl_latents_init(d, N, 42, 4, 2.0f);
    CHECK(memcmp(a, b, N * sizeof *a) == 0, "latents: same seed and image -> same latents");
    CHECK(memcmp(a, d, N * sizeof *a) != 0, "latents: another image of the seed -> other latents");
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) m += a[i] / 2.0;
    m /= N;
    for (int i = 0; i < N; i++) v += (a[i] / 2.0 - m) * (a[i] / 2.0 - m);
    v /= N - 1;
    CHECK(fabs(m) < 0.06 && fabs(v - 1) < 0.08, "latents / init sigma: mean ~0, variance ~1 (4,096 draws)");
    free(a), free(b), free(d);
}

int main(void)
{
    char err[512];
    json_doc *d = json_load(FIX "reference.json", err, sizeof err);
    if (!d) {
        test_report(0, "fixture", err);
        return test_finish();
    }
    check_schedules(json_root(d));
    check_steps(json_root(d), "step_epsilon", SDXL_PRED_EPSILON);
    check_steps(json_root(d), "step_v", SDXL_PRED_V);
    check_cfg(json_root(d));
    json_free(d);
    check_config_reader();
    check_own();
    return test_finish();
}
