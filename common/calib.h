/* calib: the ScoreFusion calibration loss (paper eq. 10, Algorithm 1) as a quadratic in lambda, its exact
 * minimiser on the simplex, and the paper code's softmax + SGD-with-momentum calibration (REFERENCE.md).
 *
 * With the paper code's weighting gamma(t) = std(t)^2 and x_t = alpha(t) x_0 + std(t) z, the per-sample loss is
 * || sum_j lambda_j s_j(t, x_t) std(t) + z ||^2 (dsm.h), so over a set of draws
 *     L(lambda) = lambda' G lambda - 2 b' lambda + c,
 *     G_ij = mean(std^2 <s_i, s_j>),  b_i = -mean(std <s_i, z>),  c = mean(||z||^2).
 * calib_quad keeps these MEANS and the sample count, so merging sets gives the mean over all samples. */
#ifndef SF_CALIB_H
#define SF_CALIB_H
#include "rng.h"
#include <stddef.h>

typedef struct {
    size_t k;
    double *G;       /* [k*k] row-major, symmetric */
    double *b;       /* [k] */
    double c;
    double count;    /* number of samples behind the means */
} calib_quad;

calib_quad *calib_quad_alloc(size_t k);
void calib_quad_free(calib_quad *q);
void calib_quad_reset(calib_quad *q);
/* s: k pointers, each [n*dim], the auxiliary scores at x_t; std [n]; z [n*dim]. Accumulates in double. */
void calib_quad_add(calib_quad *q, size_t n, size_t dim, const float *const *s, const float *std, const float *z);
void calib_quad_merge(calib_quad *dst, const calib_quad *src);
double calib_quad_loss(const calib_quad *q, const double *lambda);
/* grad[k] = 2 G lambda - 2 b */
void calib_quad_grad(const calib_quad *q, const double *lambda, double *grad);

/* Exact minimiser of lambda' G lambda - 2 b' lambda over the simplex (a convex QP; G is a Gram matrix, PSD,
 * possibly singular or ill-conditioned, e.g. two nearly collinear auxiliaries).
 * k <= CALIB_QP_ENUM_MAX: exhaustive active-set enumeration. For every support S the equality-constrained KKT
 * system [2G_SS 1; 1' 0][lambda_S; nu] = [2b_S; 1] is solved by SVD pseudo-inverse (singular values below
 * 1e-12 of the largest are dropped); feasible candidates (lambda_S >= -1e-12, clipped and renormalised) are
 * scored by the loss and the best is kept. This is exact: a minimiser of smallest support lies in the relative
 * interior of its face, where it is the unique KKT point of that face (else the KKT affine set would meet the
 * face's boundary, giving a minimiser of smaller support), and the pseudo-inverse returns it.
 * k > CALIB_QP_ENUM_MAX: accelerated projected gradient (FISTA with adaptive restart, step 1/L with
 * L = 2 min(trace G, Gershgorin bound)); every 500 iterations the KKT system is solved on the current support
 * (as above) and that point taken if feasible and no worse; stops when the gap is <= 1e-13 (1 + loss) or after
 * 100000 iterations.
 * Certificate: *gap_out = grad' lambda - min_i grad_i >= L(lambda) - L* (Frank-Wolfe duality gap, convexity).
 * Returns GSL_SUCCESS, or GSL_EMAXITER (FISTA not converged; lambda and gap still written). */
#define CALIB_QP_ENUM_MAX 12
int calib_qp_simplex(const calib_quad *q, double *lambda_out, double *gap_out);

/* The paper code's calibration: lambda = softmax(logits), logits ~ N(0,1) initially (drawn from r), SGD with
 * momentum in PyTorch semantics (v = mu v + g; p -= lr v; the paper: lr 0.1, mu 0.9). */
typedef struct {
    size_t k;
    double *logits, *velocity, *lambda;
    double lr, momentum;
    size_t steps;
} calib_sgd;

calib_sgd *calib_sgd_alloc(size_t k, double lr, double momentum, rng *r);
void calib_sgd_free(calib_sgd *s);
/* One step on a minibatch's quadratic: returns the batch loss at the current lambda (before the step), then
 * updates logits (gradient dL/dlogit_j = lambda_j (g_j - lambda'g), g = 2 G lambda - 2 b) and lambda. */
double calib_sgd_step(calib_sgd *s, const calib_quad *batch);

#endif
