/* models/sdxl/euler: EulerDiscreteScheduler as SDXL configures it, classifier-free guidance with rescale, seeded
 * initial latents (issue 9 item 4; paper §5.2, App. H). The arithmetic follows diffusers v0.25.1 operation by
 * operation in fp32 (see euler.h), so sigmas and time steps agree with diffusers to the last bit or two. */
#include "euler.h"
#include "json.h"
#include "mem.h"
#include "rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void sdxl_euler_config_sdxl(sdxl_euler_config *c)
{
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->beta_schedule = SDXL_BETAS_SCALED_LINEAR;
    c->prediction_type = SDXL_PRED_EPSILON;
    c->timestep_spacing = SDXL_SPACING_LEADING;
    c->steps_offset = 1;
}

/* torch.linspace(start, end, steps, dtype=float32) as the CPU kernel computes it: fp32 step, the first half
 * counted up from start and the second half down from end. */
static void linspace_f32(float *out, double start, double end, int steps)
{
    float a = (float)start, b = (float)end;
    if (steps == 1) {
        out[0] = a;
        return;
    }
    float step = (b - a) / (float)(steps - 1);
    int half = steps / 2;
    for (int i = 0; i < steps; i++) out[i] = i < half ? a + step * (float)i : b - step * (float)(steps - i - 1);
}

int sdxl_euler_init(sdxl_euler *s, const sdxl_euler_config *c, int n, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    int T = c->num_train_timesteps;
    if (T < 2 || n < 1 || n > T) {
        log_errf(err, errlen, "scheduler", "%d inference steps for %d training steps (need 1 <= steps <= %d)", n, T,
                 T);
        return -1;
    }
    float *beta = mem_alloc((size_t)T * sizeof *beta), *train_sigma = mem_alloc((size_t)T * sizeof *train_sigma);
    if (c->beta_schedule == SDXL_BETAS_SCALED_LINEAR) {
        linspace_f32(beta, sqrt(c->beta_start), sqrt(c->beta_end), T);
        for (int t = 0; t < T; t++) beta[t] = beta[t] * beta[t];
    } else {
        linspace_f32(beta, c->beta_start, c->beta_end, T);
    }
    double acc = 1.0;   /* torch's CPU cumprod accumulates in double */
    for (int t = 0; t < T; t++) {
        acc *= (double)(1.0f - beta[t]);
        float ac = (float)acc;
        train_sigma[t] = sqrtf((1.0f - ac) / ac);
    }
    free(beta);

    double *ts = mem_alloc((size_t)n * sizeof *ts);
    for (int i = 0; i < n; i++) {
        if (c->timestep_spacing == SDXL_SPACING_LEADING) {
            int ratio = T / n;
            ts[i] = (double)(float)((double)(n - 1 - i) * ratio) + c->steps_offset;
        } else if (c->timestep_spacing == SDXL_SPACING_TRAILING) {
            double ratio = (double)T / n;
            ts[i] = (double)(float)nearbyint(T - i * ratio) - 1.0;
        } else {
            double step = n > 1 ? (double)(T - 1) / (n - 1) : 0.0;
            ts[n - 1 - i] = (double)(float)(i == n - 1 && n > 1 ? (double)(T - 1) : i * step);
        }
    }
    s->n = n;
    s->prediction_type = c->prediction_type;
    s->timesteps = mem_alloc((size_t)n * sizeof *s->timesteps);
    s->sigmas = mem_alloc((size_t)(n + 1) * sizeof *s->sigmas);
    float smax = 0.0f;
    for (int i = 0; i < n; i++) {
        double t = ts[i];
        if (!(t >= 0.0 && t <= T - 1)) {
            log_errf(err, errlen, "scheduler", "time step %g outside [0, %d] (steps_offset %d with %d steps)", t, T - 1,
                     c->steps_offset, n);
            free(ts);
            free(train_sigma);
            sdxl_euler_free(s);
            return -1;
        }
        /* np.interp in double on the fp32 table, then fp32 */
        int j = (int)floor(t);
        double v = j >= T - 1 ? train_sigma[T - 1]
                              : ((double)train_sigma[j + 1] - train_sigma[j]) * (t - j) + train_sigma[j];
        s->timesteps[i] = (float)t;
        s->sigmas[i] = (float)v;
        if (s->sigmas[i] > smax) smax = s->sigmas[i];
    }
    s->sigmas[n] = 0.0f;
    s->init_noise_sigma = c->timestep_spacing == SDXL_SPACING_LEADING ? sqrtf(smax * smax + 1.0f) : smax;
    free(ts);
    free(train_sigma);
    return 0;
}

void sdxl_euler_free(sdxl_euler *s)
{
    free(s->timesteps);
    free(s->sigmas);
    memset(s, 0, sizeof *s);
}

void sdxl_euler_scale_input(float *out, const float *x, size_t n, const sdxl_euler *s, int i)
{
    LOG_CHECK(i >= 0 && i < s->n, "euler: step %d of %d", i, s->n);
    float sg = s->sigmas[i], d = sqrtf(sg * sg + 1.0f);
    for (size_t j = 0; j < n; j++) out[j] = x[j] / d;
}

void sdxl_euler_step(float *x, const float *mo, size_t n, const sdxl_euler *s, int i)
{
    LOG_CHECK(i >= 0 && i < s->n, "euler: step %d of %d", i, s->n);
    float sg = s->sigmas[i], dt = s->sigmas[i + 1] - sg;
    if (s->prediction_type == SDXL_PRED_EPSILON) {
        for (size_t j = 0; j < n; j++) {
            float x0 = x[j] - sg * mo[j];
            float d = (x[j] - x0) / sg;
            x[j] = x[j] + d * dt;
        }
    } else {
        float q = sg * sg + 1.0f, cout = -sg / sqrtf(q);
        for (size_t j = 0; j < n; j++) {
            float x0 = mo[j] * cout + x[j] / q;
            float d = (x[j] - x0) / sg;
            x[j] = x[j] + d * dt;
        }
    }
}

/* unbiased standard deviation of v[n], in double */
static double std_unbiased(const float *v, size_t n)
{
    double m = 0.0, ss = 0.0;
    for (size_t j = 0; j < n; j++) m += v[j];
    m /= (double)n;
    for (size_t j = 0; j < n; j++) ss += ((double)v[j] - m) * ((double)v[j] - m);
    return n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

void sdxl_cfg_combine(float *out, const float *uncond, const float *cond, int B, size_t per, float scale,
                      float rescale)
{
    for (int b = 0; b < B; b++) {
        const float *u = uncond + (size_t)b * per, *c = cond + (size_t)b * per;
        float *o = out + (size_t)b * per;
        /* std of the conditional output before o (which may alias it) is written */
        double sc = rescale > 0.0f ? std_unbiased(c, per) : 0.0;
        for (size_t j = 0; j < per; j++) o[j] = u[j] + scale * (c[j] - u[j]);
        if (rescale <= 0.0f) continue;
        float ratio = (float)(sc / std_unbiased(o, per));
        for (size_t j = 0; j < per; j++) o[j] = rescale * (o[j] * ratio) + (1.0f - rescale) * o[j];
    }
}

#define SDXL_RNG_LATENTS 0x73646c74u /* "sdlt" */

void sdxl_latents_init(float *x, size_t n, uint64_t seed, uint64_t image, float init_sigma)
{
    rng *r = rng_alloc(seed, rng_stream_id(SDXL_RNG_LATENTS, image));
    rng_gaussian_fill(r, x, n);
    rng_free(r);
    for (size_t j = 0; j < n; j++) x[j] *= init_sigma;
}

/* -1 with "<path>: <key>: <why>" */
static int cfg_refuse(char *err, size_t errlen, const char *path, const char *key, const char *val, const char *why)
{
    log_errf(err, errlen, path, "%s: '%s' %s", key, val, why);
    return -1;
}

int sdxl_euler_config_read(sdxl_euler_config *c, const char *path, char *err, size_t errlen)
{
    json_doc *d = json_load(path, err, errlen);
    if (!d) return -1;
    const json_value *o = json_root(d);
    int rc = -1;
    int64_t T = 0, off = 0;
    double b0 = 0, b1 = 0;
    const char *cls, *sched, *pred, *spacing, *interp, *ttype;
    int karras = 0, zsnr = 0;
    if (!o || o->type != JSON_OBJECT) {
        log_errf(err, errlen, path, "not a JSON object");
        goto done;
    }
    if (json_get_string_or(d, o, "_class_name", "EulerDiscreteScheduler", &cls, err, errlen) ||
        json_get_int_or(d, o, "num_train_timesteps", 2, 1000000, 1000, &T, err, errlen) ||
        json_get_double_or(d, o, "beta_start", 0.0001, &b0, err, errlen) ||
        json_get_double_or(d, o, "beta_end", 0.02, &b1, err, errlen) ||
        json_get_string_or(d, o, "beta_schedule", "linear", &sched, err, errlen) ||
        json_get_string_or(d, o, "prediction_type", "epsilon", &pred, err, errlen) ||
        json_get_string_or(d, o, "timestep_spacing", "linspace", &spacing, err, errlen) ||
        json_get_string_or(d, o, "interpolation_type", "linear", &interp, err, errlen) ||
        json_get_string_or(d, o, "timestep_type", "discrete", &ttype, err, errlen) ||
        json_get_int_or(d, o, "steps_offset", 0, 1000000, 0, &off, err, errlen) ||
        json_get_bool_or(d, o, "use_karras_sigmas", 0, &karras, err, errlen) ||
        json_get_bool_or(d, o, "rescale_betas_zero_snr", 0, &zsnr, err, errlen))
        goto done;
    const json_value *tb = json_get(o, "trained_betas");
    if (strcmp(cls, "EulerDiscreteScheduler") != 0) {
        cfg_refuse(err, errlen, path, "_class_name", cls, "is not EulerDiscreteScheduler");
        goto done;
    }
    if (tb && tb->type != JSON_NULL) {
        log_errf(err, errlen, path, "trained_betas: explicit betas are not implemented");
        goto done;
    }
    if (!(b0 > 0.0 && b0 < b1 && b1 < 1.0)) {
        log_errf(err, errlen, path, "beta_start %g, beta_end %g: need 0 < beta_start < beta_end < 1", b0, b1);
        goto done;
    }
    c->num_train_timesteps = (int)T;
    c->beta_start = b0;
    c->beta_end = b1;
    c->steps_offset = (int)off;
    if (!strcmp(sched, "scaled_linear"))
        c->beta_schedule = SDXL_BETAS_SCALED_LINEAR;
    else if (!strcmp(sched, "linear"))
        c->beta_schedule = SDXL_BETAS_LINEAR;
    else {
        cfg_refuse(err, errlen, path, "beta_schedule", sched, "is not implemented (scaled_linear, linear)");
        goto done;
    }
    if (!strcmp(pred, "epsilon"))
        c->prediction_type = SDXL_PRED_EPSILON;
    else if (!strcmp(pred, "v_prediction"))
        c->prediction_type = SDXL_PRED_V;
    else {
        cfg_refuse(err, errlen, path, "prediction_type", pred, "is not implemented (epsilon, v_prediction)");
        goto done;
    }
    if (!strcmp(spacing, "leading"))
        c->timestep_spacing = SDXL_SPACING_LEADING;
    else if (!strcmp(spacing, "trailing"))
        c->timestep_spacing = SDXL_SPACING_TRAILING;
    else if (!strcmp(spacing, "linspace"))
        c->timestep_spacing = SDXL_SPACING_LINSPACE;
    else {
        cfg_refuse(err, errlen, path, "timestep_spacing", spacing, "is not one of leading, trailing, linspace");
        goto done;
    }
    if (strcmp(interp, "linear") != 0) {
        cfg_refuse(err, errlen, path, "interpolation_type", interp, "is not implemented (linear)");
        goto done;
    }
    if (strcmp(ttype, "discrete") != 0) {
        cfg_refuse(err, errlen, path, "timestep_type", ttype, "is not implemented (discrete)");
        goto done;
    }
    if (karras) {
        log_errf(err, errlen, path, "use_karras_sigmas: Karras sigmas are not implemented");
        goto done;
    }
    if (zsnr) {
        log_errf(err, errlen, path, "rescale_betas_zero_snr: not implemented");
        goto done;
    }
    rc = 0;
done:
    json_free(d);
    return rc;
}
