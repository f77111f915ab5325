/* mixture: exact 1-D Gaussian-mixture calculus (see mixture.h; paper App. I, REFERENCE.md 1-D section). */
#include "mixture.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double LOG_SQRT_2PI = 0.91893853320467274178;

int mixture_parse(const char *spec, mixture *out, char *err, size_t errlen)
{
    mixture m = {0};
    const char *p = spec;
    double wsum = 0.0;
    if (!spec || !*spec) {
        snprintf(err, errlen, "empty mixture (expected w:mean:std,...)");
        return -1;
    }
    while (*p) {
        if (m.k == MIXTURE_MAX) {
            snprintf(err, errlen, "more than %d components in '%s'", MIXTURE_MAX, spec);
            return -1;
        }
        double v[3];
        for (int f = 0; f < 3; f++) {
            char *end;
            v[f] = strtod(p, &end);
            if (end == p || !isfinite(v[f])) {
                snprintf(err, errlen, "component %d of '%s' is not w:mean:std", m.k + 1, spec);
                return -1;
            }
            p = end;
            char want = f < 2 ? ':' : ',';
            if (f < 2 && *p != want) {
                snprintf(err, errlen, "component %d of '%s' is not w:mean:std", m.k + 1, spec);
                return -1;
            }
            if (f < 2) p++;
        }
        if (*p == ',') {
            p++;
            if (!*p) {
                snprintf(err, errlen, "trailing comma in '%s'", spec);
                return -1;
            }
        } else if (*p) {
            snprintf(err, errlen, "component %d of '%s' is not w:mean:std", m.k + 1, spec);
            return -1;
        }
        if (v[0] <= 0.0) {
            snprintf(err, errlen, "weight %g of component %d is not positive", v[0], m.k + 1);
            return -1;
        }
        if (v[2] <= 0.0) {
            snprintf(err, errlen, "std %g of component %d is not positive", v[2], m.k + 1);
            return -1;
        }
        m.w[m.k] = v[0];
        m.mu[m.k] = v[1];
        m.sd[m.k] = v[2];
        wsum += v[0];
        m.k++;
    }
    if (fabs(wsum - 1.0) > 1e-6) {
        snprintf(err, errlen, "weights of '%s' sum to %.9g, not 1", spec, wsum);
        return -1;
    }
    *out = m;
    return 0;
}

void mixture_format(const mixture *m, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int j = 0; j < m->k && used < len; j++)
        used += (size_t)snprintf(buf + used, len - used, "%s%.17g:%.17g:%.17g", j ? "," : "", m->w[j], m->mu[j],
                                 m->sd[j]);
}

/* log(w_j N(x; mu_j, sd_j^2)) for every component; returns their max */
static double comp_logs(const mixture *m, double x, double *lj)
{
    double mx = -INFINITY;
    for (int j = 0; j < m->k; j++) {
        double z = (x - m->mu[j]) / m->sd[j];
        lj[j] = log(m->w[j]) - log(m->sd[j]) - LOG_SQRT_2PI - 0.5 * z * z;
        if (lj[j] > mx) mx = lj[j];
    }
    return mx;
}

double mixture_logpdf(const mixture *m, double x)
{
    double lj[MIXTURE_MAX];
    double mx = comp_logs(m, x, lj), s = 0.0;
    for (int j = 0; j < m->k; j++) s += exp(lj[j] - mx);
    return mx + log(s);
}

double mixture_pdf(const mixture *m, double x) { return exp(mixture_logpdf(m, x)); }

double mixture_score(const mixture *m, double x)
{
    /* posterior-weighted component scores; weights via log-sum-exp so the tails do not give 0/0 */
    double lj[MIXTURE_MAX];
    double mx = comp_logs(m, x, lj), num = 0.0, den = 0.0;
    for (int j = 0; j < m->k; j++) {
        double r = exp(lj[j] - mx);
        den += r;
        num += r * (m->mu[j] - x) / (m->sd[j] * m->sd[j]);
    }
    return num / den;
}

double mixture_cdf(const mixture *m, double x)
{
    double s = 0.0;
    for (int j = 0; j < m->k; j++) s += m->w[j] * 0.5 * erfc(-(x - m->mu[j]) / (m->sd[j] * M_SQRT2));
    return s;
}

double mixture_mean(const mixture *m)
{
    double s = 0.0;
    for (int j = 0; j < m->k; j++) s += m->w[j] * m->mu[j];
    return s;
}

double mixture_sd(const mixture *m)
{
    double mean = mixture_mean(m), v = 0.0;
    for (int j = 0; j < m->k; j++) {
        double d = m->mu[j] - mean;
        v += m->w[j] * (m->sd[j] * m->sd[j] + d * d);
    }
    return sqrt(v);
}

double mixture_quantile(const mixture *m, double u)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < m->k; j++) {
        lo = fmin(lo, m->mu[j] - 40.0 * m->sd[j]);
        hi = fmax(hi, m->mu[j] + 40.0 * m->sd[j]);
    }
    if (u <= 0.0) return lo;
    if (u >= 1.0) return hi;
    double x = 0.5 * (lo + hi);
    for (int it = 0; it < 200; it++) {
        double f = mixture_cdf(m, x) - u;
        if (fabs(f) < 1e-15) break;
        if (f > 0) hi = x; else lo = x;
        double d = mixture_pdf(m, x);
        double xn = d > 0 ? x - f / d : 0.5 * (lo + hi);
        x = (xn > lo && xn < hi) ? xn : 0.5 * (lo + hi);   /* safeguarded Newton */
        if (hi - lo < 1e-14 * (1.0 + fabs(x))) break;
    }
    return x;
}

void mixture_sample(const mixture *m, rng *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double u = rng_uniform(r), c = 0.0;
        int j = 0;
        for (; j < m->k - 1; j++) {
            c += m->w[j];
            if (u < c) break;
        }
        x[i] = m->mu[j] + m->sd[j] * rng_gaussian(r);
    }
}

mixture mixture_affine(const mixture *m, double shift, double scale)
{
    mixture o = *m;
    for (int j = 0; j < m->k; j++) {
        o.mu[j] = (m->mu[j] - shift) / scale;
        o.sd[j] = m->sd[j] / fabs(scale);
    }
    return o;
}

mixture mixture_diffuse(const mixture *m, const sde *s, double t)
{
    mixture o = *m;
    double a = sde_alpha(s, t), sd = sde_std(s, t);
    for (int j = 0; j < m->k; j++) {
        o.mu[j] = a * m->mu[j];
        o.sd[j] = sqrt(a * a * m->sd[j] * m->sd[j] + sd * sd);
    }
    return o;
}

static void oracle_eval(void *ctx, size_t n, const float *t, size_t t_stride, const float *x, float *out)
{
    const mixture_oracle *o = ctx;
    mixture mt = mixture_diffuse(&o->m, &o->s, t[0]);
#pragma omp parallel for firstprivate(mt) schedule(static) if (n > 4096)
    for (size_t i = 0; i < n; i++) {
        if (t_stride) mt = mixture_diffuse(&o->m, &o->s, t[i * t_stride]);
        out[i] = (float)mixture_score(&mt, x[i]);
    }
}

score_model mixture_oracle_model(mixture_oracle *o, const char *name)
{
    return (score_model){.dim = 1, .ctx = o, .eval = oracle_eval, .name = name};
}
