/* calib: ScoreFusion calibration loss (paper eq. 10, Algorithm 1) as a quadratic in lambda; exact simplex QP;
 * the paper code's softmax + SGD-momentum calibration. See calib.h. */
#include "calib.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

calib_quad *calib_quad_alloc(size_t k)
{
    LOG_CHECK(k >= 1, "calib_quad_alloc: k = 0");
    calib_quad *q = mem_calloc(1, sizeof *q);
    q->k = k;
    q->G = mem_new(double, k * k);
    q->b = mem_new(double, k);
    return q;
}

void calib_quad_free(calib_quad *q)
{
    if (!q) return;
    free(q->G);
    free(q->b);
    free(q);
}

void calib_quad_reset(calib_quad *q)
{
    memset(q->G, 0, q->k * q->k * sizeof *q->G);
    memset(q->b, 0, q->k * sizeof *q->b);
    q->c = 0.0;
    q->count = 0.0;
}

/* dst <- count-weighted mean of (dst, (G, b, c) with count n) */
static void merge_means(calib_quad *dst, const double *G, const double *b, double c, double n)
{
    size_t k = dst->k;
    double tot = dst->count + n;
    if (n <= 0.0) return;
    double wd = dst->count / tot, ws = n / tot;
    for (size_t i = 0; i < k * k; i++) dst->G[i] = wd * dst->G[i] + ws * G[i];
    for (size_t i = 0; i < k; i++) dst->b[i] = wd * dst->b[i] + ws * b[i];
    dst->c = wd * dst->c + ws * c;
    dst->count = tot;
}

void calib_quad_add(calib_quad *q, size_t n, size_t dim, const float *const *s, const float *std, const float *z)
{
    size_t k = q->k;
    if (n == 0) return;
    double *G = mem_new(double, k * k), *b = mem_new(double, k), c = 0.0;
    for (size_t m = 0; m < n; m++) {
        double sd = std[m];
        const float *zm = z + m * dim;
        for (size_t d = 0; d < dim; d++) c += (double)zm[d] * zm[d];
        for (size_t i = 0; i < k; i++) {
            const float *si = s[i] + m * dim;
            double sz = 0.0;
            for (size_t d = 0; d < dim; d++) sz += (double)si[d] * zm[d];
            b[i] -= sd * sz;
            for (size_t j = i; j < k; j++) {
                const float *sj = s[j] + m * dim;
                double ss = 0.0;
                for (size_t d = 0; d < dim; d++) ss += (double)si[d] * sj[d];
                G[i * k + j] += sd * sd * ss;
            }
        }
    }
    double inv = 1.0 / (double)n;
    for (size_t i = 0; i < k; i++) {
        b[i] *= inv;
        for (size_t j = i; j < k; j++) G[j * k + i] = G[i * k + j] = G[i * k + j] * inv;
    }
    merge_means(q, G, b, c * inv, (double)n);
    free(G);
    free(b);
}

void calib_quad_merge(calib_quad *dst, const calib_quad *src)
{
    LOG_CHECK(dst->k == src->k, "calib_quad_merge: k %zu != %zu", dst->k, src->k);
    merge_means(dst, src->G, src->b, src->c, src->count);
}

double calib_quad_loss(const calib_quad *q, const double *lambda)
{
    size_t k = q->k;
    double s = q->c;
    for (size_t i = 0; i < k; i++) {
        double gi = 0.0;
        for (size_t j = 0; j < k; j++) gi += q->G[i * k + j] * lambda[j];
        s += lambda[i] * (gi - 2.0 * q->b[i]);
    }
    return s;
}

void calib_quad_grad(const calib_quad *q, const double *lambda, double *grad)
{
    size_t k = q->k;
    for (size_t i = 0; i < k; i++) {
        double gi = 0.0;
        for (size_t j = 0; j < k; j++) gi += q->G[i * k + j] * lambda[j];
        grad[i] = 2.0 * gi - 2.0 * q->b[i];
    }
}

static double fw_gap(const calib_quad *q, const double *lambda, double *grad)
{
    calib_quad_grad(q, lambda, grad);
    double lg = 0.0, mn = INFINITY;
    for (size_t i = 0; i < q->k; i++) {
        lg += grad[i] * lambda[i];
        mn = fmin(mn, grad[i]);
    }
    return fmax(lg - mn, 0.0);
}

/* Euclidean projection onto the simplex (sort-based, Held et al. / Duchi et al.) */
static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static void project_simplex(size_t k, const double *v, double *out, double *work)
{
    memcpy(work, v, k * sizeof *v);
    qsort(work, k, sizeof *work, cmp_desc);
    double cum = 0.0, tau = 0.0;
    for (size_t i = 0; i < k; i++) {
        cum += work[i];
        double t = (cum - 1.0) / (double)(i + 1);
        if (work[i] - t > 0.0) tau = t;
    }
    for (size_t i = 0; i < k; i++) out[i] = fmax(v[i] - tau, 0.0);
}

/* KKT solve on the support idx[0..m): [2G_SS sc1; sc1' 0][lambda_S; nu/sc] = [2b_S; sc] by SVD pseudo-inverse
 * (singular values below 1e-12 of the largest dropped). Writes the candidate (clipped, renormalised) into cand
 * and returns 1 when it is feasible (lambda_S >= -1e-12), else 0. */
typedef struct {
    gsl_matrix *A, *V;
    gsl_vector *S, *work;
    double *x, *rhs;
    double sc;
} kkt_ws;

static void kkt_ws_init(kkt_ws *w, const calib_quad *q)
{
    size_t N = q->k + 1;
    w->A = gsl_matrix_alloc(N, N);
    w->V = gsl_matrix_alloc(N, N);
    w->S = gsl_vector_alloc(N);
    w->work = gsl_vector_alloc(N);
    if (!w->A || !w->V || !w->S || !w->work) LOG_FATAL("gsl alloc failed");
    w->x = mem_new(double, N);
    w->rhs = mem_new(double, N);
    double gmax = 0.0;
    for (size_t i = 0; i < q->k * q->k; i++) gmax = fmax(gmax, fabs(q->G[i]));
    w->sc = gmax > 0.0 ? 2.0 * gmax : 1.0;   /* scale of the constraint row */
}

static void kkt_ws_free(kkt_ws *w)
{
    gsl_matrix_free(w->A);
    gsl_matrix_free(w->V);
    gsl_vector_free(w->S);
    gsl_vector_free(w->work);
    free(w->x);
    free(w->rhs);
}

static int kkt_solve(kkt_ws *w, const calib_quad *q, const size_t *idx, size_t m, double *cand)
{
    size_t k = q->k;
    double *x = w->x, *rhs = w->rhs, sc = w->sc;
    gsl_matrix_view Av = gsl_matrix_submatrix(w->A, 0, 0, m + 1, m + 1);
    gsl_matrix_view Vv = gsl_matrix_submatrix(w->V, 0, 0, m + 1, m + 1);
    gsl_vector_view Sv = gsl_vector_subvector(w->S, 0, m + 1), Wv = gsl_vector_subvector(w->work, 0, m + 1);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < m; j++) gsl_matrix_set(&Av.matrix, i, j, 2.0 * q->G[idx[i] * k + idx[j]]);
        gsl_matrix_set(&Av.matrix, i, m, sc);
        gsl_matrix_set(&Av.matrix, m, i, sc);
        rhs[i] = 2.0 * q->b[idx[i]];
    }
    gsl_matrix_set(&Av.matrix, m, m, 0.0);
    rhs[m] = sc;
    if (gsl_linalg_SV_decomp(&Av.matrix, &Vv.matrix, &Sv.vector, &Wv.vector)) return 0;
    double smax = gsl_vector_get(&Sv.vector, 0);
    memset(x, 0, (m + 1) * sizeof *x);
    for (size_t c = 0; c <= m; c++) {
        double sv = gsl_vector_get(&Sv.vector, c);
        if (!(sv > 1e-12 * smax)) continue;
        double ut = 0.0;
        for (size_t r = 0; r <= m; r++) ut += gsl_matrix_get(&Av.matrix, r, c) * rhs[r];
        ut /= sv;
        for (size_t r = 0; r <= m; r++) x[r] += gsl_matrix_get(&Vv.matrix, r, c) * ut;
    }
    double sum = 0.0;
    for (size_t i = 0; i < m; i++) {
        if (!(x[i] >= -1e-12)) return 0;
        sum += fmax(x[i], 0.0);
    }
    if (!(sum > 0.0)) return 0;
    memset(cand, 0, k * sizeof *cand);
    for (size_t i = 0; i < m; i++) cand[idx[i]] = fmax(x[i], 0.0) / sum;
    return 1;
}

static int qp_enumerate(const calib_quad *q, double *best)
{
    size_t k = q->k;
    kkt_ws w;
    kkt_ws_init(&w, q);
    double *cand = mem_new(double, k);
    size_t *idx = mem_new(size_t, k);
    double best_loss = INFINITY;
    for (unsigned long mask = 1; mask < (1ul << k); mask++) {
        size_t m = 0;
        for (size_t i = 0; i < k; i++)
            if (mask & (1ul << i)) idx[m++] = i;
        if (!kkt_solve(&w, q, idx, m, cand)) continue;
        double L = calib_quad_loss(q, cand);
        if (L < best_loss) {
            best_loss = L;
            memcpy(best, cand, k * sizeof *cand);
        }
    }
    kkt_ws_free(&w);
    free(cand);
    free(idx);
    return isfinite(best_loss) ? GSL_SUCCESS : GSL_EFAILED;   /* vertices are always feasible */
}

/* FISTA (step 1/L, adaptive restart) in chunks of 500 iterations; after each chunk, polish: solve the KKT
 * system on the current support and keep that point if it is feasible and no worse. Stops when the FW gap is
 * <= 1e-13 (1 + |loss|). */
static int qp_fista(const calib_quad *q, double *lambda, double *grad)
{
    size_t k = q->k;
    double tr = 0.0, gb = 0.0;
    for (size_t i = 0; i < k; i++) {
        double r = 0.0;
        for (size_t j = 0; j < k; j++) r += fabs(q->G[i * k + j]);
        tr += q->G[i * k + i];
        gb = fmax(gb, r);
    }
    double L = 2.0 * fmax(fmin(tr, gb), 1e-300);   /* 2 lambda_max(G) <= 2 min(trace, Gershgorin) */
    double *y = mem_new(double, k), *xn = mem_new(double, k), *tmp = mem_new(double, k), *w = mem_new(double, k);
    double *cand = mem_new(double, k);
    size_t *idx = mem_new(size_t, k);
    kkt_ws ws;
    kkt_ws_init(&ws, q);
    for (size_t i = 0; i < k; i++) lambda[i] = y[i] = 1.0 / (double)k;
    double t = 1.0, fprev = calib_quad_loss(q, lambda);
    int status = GSL_EMAXITER;
    for (int it = 1; it <= 100000; it++) {
        if (it % 500 == 0) {   /* polish on the current support, then test the certificate */
            size_t m = 0;
            for (size_t i = 0; i < k; i++)
                if (lambda[i] > 0.0) idx[m++] = i;
            if (m && kkt_solve(&ws, q, idx, m, cand) && calib_quad_loss(q, cand) <= fprev) {
                memcpy(lambda, cand, k * sizeof *cand);
                memcpy(y, cand, k * sizeof *cand);
                fprev = calib_quad_loss(q, cand);
                t = 1.0;
            }
            if (fw_gap(q, lambda, grad) <= 1e-13 * (1.0 + fabs(fprev))) {
                status = GSL_SUCCESS;
                break;
            }
        }
        calib_quad_grad(q, y, grad);
        for (size_t i = 0; i < k; i++) tmp[i] = y[i] - grad[i] / L;
        project_simplex(k, tmp, xn, w);
        double fn = calib_quad_loss(q, xn);
        if (fn > fprev) {   /* adaptive restart (O'Donoghue-Candes) */
            t = 1.0;
            memcpy(y, lambda, k * sizeof *y);
            continue;
        }
        double tn = 0.5 * (1.0 + sqrt(1.0 + 4.0 * t * t));
        for (size_t i = 0; i < k; i++) y[i] = xn[i] + (t - 1.0) / tn * (xn[i] - lambda[i]);
        memcpy(lambda, xn, k * sizeof *xn);
        t = tn;
        fprev = fn;
    }
    kkt_ws_free(&ws);
    free(y);
    free(xn);
    free(tmp);
    free(w);
    free(cand);
    free(idx);
    return status;
}

int calib_qp_simplex(const calib_quad *q, double *lambda_out, double *gap_out)
{
    size_t k = q->k;
    double *grad = mem_new(double, k);
    int st = k <= CALIB_QP_ENUM_MAX ? qp_enumerate(q, lambda_out) : qp_fista(q, lambda_out, grad);
    double gap = fw_gap(q, lambda_out, grad);
    if (gap_out) *gap_out = gap;
    free(grad);
    return st;
}

/* ---- SGD on softmax logits (the paper code) ------------------------------------------------------------ */

static void softmax(size_t k, const double *z, double *p)
{
    double mx = -INFINITY, s = 0.0;
    for (size_t i = 0; i < k; i++) mx = fmax(mx, z[i]);
    for (size_t i = 0; i < k; i++) s += (p[i] = exp(z[i] - mx));
    for (size_t i = 0; i < k; i++) p[i] /= s;
}

calib_sgd *calib_sgd_alloc(size_t k, double lr, double momentum, rng *r)
{
    LOG_CHECK(k >= 1, "calib_sgd_alloc: k = 0");
    calib_sgd *s = mem_calloc(1, sizeof *s);
    s->k = k;
    s->logits = mem_new(double, k);
    s->velocity = mem_new(double, k);
    s->lambda = mem_new(double, k);
    s->lr = lr;
    s->momentum = momentum;
    for (size_t i = 0; i < k; i++) s->logits[i] = r ? rng_gaussian(r) : 0.0;
    softmax(k, s->logits, s->lambda);
    return s;
}

void calib_sgd_free(calib_sgd *s)
{
    if (!s) return;
    free(s->logits);
    free(s->velocity);
    free(s->lambda);
    free(s);
}

double calib_sgd_step(calib_sgd *s, const calib_quad *batch)
{
    size_t k = s->k;
    LOG_CHECK(batch->k == k, "calib_sgd_step: k %zu != %zu", batch->k, k);
    double loss = calib_quad_loss(batch, s->lambda);
    double g[64], *gp = k <= 64 ? g : mem_new(double, k);
    calib_quad_grad(batch, s->lambda, gp);
    double lg = 0.0;
    for (size_t i = 0; i < k; i++) lg += s->lambda[i] * gp[i];
    for (size_t i = 0; i < k; i++) {
        double dz = s->lambda[i] * (gp[i] - lg);          /* softmax Jacobian-vector product */
        s->velocity[i] = s->momentum * s->velocity[i] + dz;   /* PyTorch: buf = mu buf + g (buf_0 = g) */
        s->logits[i] -= s->lr * s->velocity[i];
    }
    softmax(k, s->logits, s->lambda);
    s->steps++;
    if (gp != g) free(gp);
    return loss;
}
