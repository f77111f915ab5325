/* sde: the forward noising SDEs, behind one interface (paper §2.3; REFERENCE.md).
 *   VE  (the paper's code):   dX = sigma^t dW on [0, 1];  X_t | X_0 ~ N(X_0, std(t)^2),
 *                             std(t)^2 = (sigma^{2t} - 1) / (2 ln sigma), prior N(0, std(1)^2).
 *   OU  (the paper's theory): dX = -a X dt + s dW on [0, T];  X_t | X_0 ~ N(e^{-at} X_0, s^2 (1 - e^{-2at}) / (2a)),
 *                             prior N(0, s^2 / (2a)) (the stationary law pi of eq. 2).
 * Every SDE here is linear: f(t, x) = f_coef(t) * x, so the transition kernel is Gaussian with
 * mean alpha(t) * x_0 and standard deviation std(t). */
#ifndef SF_SDE_H
#define SF_SDE_H

typedef enum { SDE_VE = 0, SDE_OU = 1 } sde_kind;

typedef struct {
    sde_kind kind;
    double sigma;   /* VE: sigma of sigma^t; OU: the constant diffusion s */
    double a;       /* OU mean-reversion rate (unused for VE) */
    double T;       /* terminal time (VE: 1) */
} sde;

sde sde_ve(double sigma);
sde sde_ou(double a, double sigma, double T);

double sde_alpha(const sde *s, double t);      /* mean coefficient of the transition kernel */
double sde_std(const sde *s, double t);        /* standard deviation of the transition kernel */
double sde_g(const sde *s, double t);          /* diffusion coefficient g(t) */
double sde_f_coef(const sde *s, double t);     /* drift f(t, x) = f_coef(t) x */
double sde_prior_std(const sde *s);            /* std of the Gaussian the reverse process starts from */
const char *sde_name(const sde *s);            /* "VE(sigma=25)" etc., for .meta files */

#endif
