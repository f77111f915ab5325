/* sde: VE and OU forward SDEs (see sde.h; paper eq. 1-2, REFERENCE.md "Forward SDE"). */
#include "sde.h"
#include <math.h>
#include <stdio.h>

sde sde_ve(double sigma) { return (sde){SDE_VE, sigma, 0.0, 1.0}; }
sde sde_ou(double a, double sigma, double T) { return (sde){SDE_OU, sigma, a, T}; }

double sde_alpha(const sde *s, double t) { return s->kind == SDE_VE ? 1.0 : exp(-s->a * t); }

double sde_std(const sde *s, double t)
{
    if (s->kind == SDE_VE) {
        /* expm1 keeps precision at the tiny t (1e-7) the calibration loss uses */
        return sqrt(expm1(2.0 * t * log(s->sigma)) / (2.0 * log(s->sigma)));
    }
    return s->sigma * sqrt(-expm1(-2.0 * s->a * t) / (2.0 * s->a));
}

double sde_g(const sde *s, double t) { return s->kind == SDE_VE ? pow(s->sigma, t) : s->sigma; }
double sde_f_coef(const sde *s, double t) { (void)t; return s->kind == SDE_VE ? 0.0 : -s->a; }

double sde_prior_std(const sde *s)
{
    return s->kind == SDE_VE ? sde_std(s, s->T) : s->sigma / sqrt(2.0 * s->a);
}

const char *sde_name(const sde *s)
{
    static _Thread_local char buf[96];
    if (s->kind == SDE_VE)
        snprintf(buf, sizeof buf, "VE(sigma=%g,T=%g)", s->sigma, s->T);
    else
        snprintf(buf, sizeof buf, "OU(a=%g,sigma=%g,T=%g)", s->a, s->sigma, s->T);
    return buf;
}
