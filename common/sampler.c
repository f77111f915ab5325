/* sampler: Euler-Maruyama reverse-SDE sampler (see sampler.h). */
#include "sampler.h"
#include "log.h"
#include "mem.h"
#include "philox.h"
#include <math.h>
#include <stdlib.h>

sampler_opts sampler_opts_paper(void) { return (sampler_opts){1000, 1e-3, 1, NULL}; }

void sampler_em(const sde *s, const score_model *m, size_t n, float *x, const sampler_opts *o, rng *r)
{
    size_t len = n * m->dim;
    const double p = sde_prior_std(s);
    /* Philox (philox.h): one seed per call from r */
    philox_gaussian_fill(x, len, rng_u64(r), philox_stream(PHILOX_SAMPLER_INIT, 0), 0);
    for (size_t i = 0; i < len; i++) x[i] = (float)(p * x[i]);
    sampler_em_from(s, m, n, x, o, r);
}

void sampler_em_from(const sde *s, const score_model *m, size_t n, float *x, const sampler_opts *o, rng *r)
{
    LOG_CHECK(o->steps >= 2, "sampler needs at least 2 steps");
    size_t len = n * m->dim;
    float *sc = mem_new(float, len), *z = mem_new(float, len);
    const double dt = (s->T - o->eps) / (o->steps - 1);
    const uint64_t seed = rng_u64(r);   /* step k's noise: Philox (PHILOX_SAMPLER_NOISE, k) under it */
    log_progress bar;
    if (o->progress) log_progress_begin(&bar, o->progress, (size_t)o->steps);
    for (int k = 0; k < o->steps; k++) {
        /* same grid as torch.linspace(T, eps, steps) */
        const double t = (k == o->steps - 1) ? o->eps : s->T - k * dt;
        const float tf = (float)t;
        const double g = sde_g(s, t), fc = sde_f_coef(s, t);
        const int last = (k == o->steps - 1) && o->final_mean;
        score_eval(m, n, &tf, 0, x, sc);
        if (!last) philox_sampler_noise(z, len, seed, 0, (uint32_t)k);
        const float a = (float)(g * g * dt), b = (float)(-fc * dt), c = (float)(sqrt(dt) * g);
        if (last) {
            for (size_t i = 0; i < len; i++) x[i] = x[i] + a * sc[i] + b * x[i];
        } else {
            for (size_t i = 0; i < len; i++) x[i] = x[i] + a * sc[i] + b * x[i] + c * z[i];
        }
        if (o->progress) log_progress_step(&bar, 1);
    }
    if (o->progress) log_progress_end(&bar);
    free(sc);
    free(z);
}
