/* nn/tensor_ops: broadcast channel add, channel concat, log-softmax / cross-entropy, dropout, CPU + OpenMP
 * (see tensor_ops.h; the ScoreNet glue of paper §5.1 / App. G and the classifier of Table 2). */
#include "tensor_ops.h"
#include "log.h"
#include "philox.h"
#include <math.h>
#include <string.h>

#define OPS_PAR_MIN (1L << 15)

void nn_chan_add_forward(float *x, const float *v, int B, int C, int HW, int v_bstride)
{
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= OPS_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const int b = bc / C, c = bc % C;
        const float a = v[(size_t)b * v_bstride + c];
        float *d = x + (size_t)bc * HW;
#pragma omp simd
        for (int p = 0; p < HW; p++) d[p] += a;
    }
}

void nn_chan_add_backward(float *dv, const float *dout, int B, int C, int HW, int v_bstride)
{
    if (!dv) return;
    if (v_bstride == 0) {
        /* shared over the batch: threads own channels, b summed in order */
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= OPS_PAR_MIN)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) {
                const float *d = dout + ((size_t)b * C + c) * HW;
                float a = 0.0f;
                for (int p = 0; p < HW; p++) a += d[p];
                s += a;
            }
            dv[c] += (float)s;
        }
        return;
    }
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= OPS_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const int b = bc / C, c = bc % C;
        const float *d = dout + (size_t)bc * HW;
        float a = 0.0f;
        for (int p = 0; p < HW; p++) a += d[p];
        dv[(size_t)b * v_bstride + c] += a;
    }
}

void nn_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2, int HW)
{
    const size_t na = (size_t)C1 * HW, nbb = (size_t)C2 * HW;
#pragma omp parallel for schedule(static) if ((long)B * (C1 + C2) * HW >= OPS_PAR_MIN)
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * (na + nbb);
        memcpy(o, a + (size_t)i * na, na * sizeof *o);
        memcpy(o + na, b + (size_t)i * nbb, nbb * sizeof *o);
    }
}

void nn_concat_split(float *da, float *db, const float *dout, int B, int C1, int C2, int HW)
{
    const size_t na = (size_t)C1 * HW, nbb = (size_t)C2 * HW;
#pragma omp parallel for schedule(static) if ((long)B * (C1 + C2) * HW >= OPS_PAR_MIN)
    for (int i = 0; i < B; i++) {
        const float *g = dout + (size_t)i * (na + nbb);
        if (da) memcpy(da + (size_t)i * na, g, na * sizeof *da);
        if (db) memcpy(db + (size_t)i * nbb, g + na, nbb * sizeof *db);
    }
}

void nn_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int HW)
{
    const size_t na = (size_t)C1 * HW, nbb = (size_t)C2 * HW;
#pragma omp parallel for schedule(static) if ((long)B * (C1 + C2) * HW >= OPS_PAR_MIN)
    for (int i = 0; i < B; i++) {
        const float *g = dout + (size_t)i * (na + nbb);
        if (da) {
            float *d = da + (size_t)i * na;
#pragma omp simd
            for (size_t k = 0; k < na; k++) d[k] += g[k];
        }
        if (db) {
            float *d = db + (size_t)i * nbb;
            const float *gb = g + na;
#pragma omp simd
            for (size_t k = 0; k < nbb; k++) d[k] += gb[k];
        }
    }
}

void nn_log_softmax_forward(float *out, const float *in, int B, int K)
{
#pragma omp parallel for schedule(static) if ((long)B * K >= OPS_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * K;
        float *o = out + (size_t)b * K;
        float mx = -INFINITY;
        for (int k = 0; k < K; k++) mx = x[k] > mx ? x[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
        const double lse = mx + log(s);
        for (int k = 0; k < K; k++) o[k] = (float)((double)x[k] - lse);
    }
}

void nn_log_softmax_backward(float *din, const float *dout, const float *out, int B, int K)
{
#pragma omp parallel for schedule(static) if ((long)B * K >= OPS_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * K, *o = out + (size_t)b * K;
        float *d = din + (size_t)b * K;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += g[k];
        for (int k = 0; k < K; k++) d[k] += (float)((double)g[k] - exp((double)o[k]) * s);
    }
}

double nn_cross_entropy_forward(float *logp, const float *logits, const int *labels, int B, int K)
{
    if (B <= 0) return 0.0;
    nn_log_softmax_forward(logp, logits, B, K);
    double s = 0.0;
    for (int b = 0; b < B; b++) {
        LOG_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label %d out of [0, %d)", labels[b], K);
        s -= logp[(size_t)b * K + labels[b]];
    }
    return s / B;
}

void nn_cross_entropy_backward(float *dlogits, float dloss, const float *logp, const int *labels, int B, int K)
{
    if (B <= 0) return;
    const double sc = (double)dloss / B;
#pragma omp parallel for schedule(static) if ((long)B * K >= OPS_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *lp = logp + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) d[k] += (float)(sc * (exp((double)lp[k]) - (k == labels[b] ? 1.0 : 0.0)));
    }
}

void nn_dropout_forward(float *out, float *mask, const float *in, size_t n_units, size_t inner, float p, int train,
                        uint64_t seed, uint64_t stream, uint64_t offset)
{
    const size_t n = n_units * inner;
    if (!train) {
        if (out != in) memmove(out, in, n * sizeof *out);
        return;
    }
    LOG_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = %g outside [0, 1]", (double)p);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    philox_uniform_fill(mask, n_units, seed, stream, offset);
    for (size_t u = 0; u < n_units; u++) mask[u] = (p > 0.0f && mask[u] < p) ? 0.0f : scale;
#pragma omp parallel for schedule(static) if ((long)n >= OPS_PAR_MIN)
    for (size_t u = 0; u < n_units; u++) {
        const float m = mask[u];
        const float *x = in + u * inner;
        float *o = out + u * inner;
        for (size_t k = 0; k < inner; k++) o[k] = x[k] * m;
    }
}

void nn_dropout_backward(float *din, const float *dout, const float *mask, size_t n_units, size_t inner, int train)
{
    if (!din) return;
    const size_t n = n_units * inner;
    if (!train) {
#pragma omp parallel for schedule(static) if ((long)n >= OPS_PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += dout[i];
        return;
    }
#pragma omp parallel for schedule(static) if ((long)n >= OPS_PAR_MIN)
    for (size_t u = 0; u < n_units; u++) {
        const float m = mask[u];
        const float *g = dout + u * inner;
        float *d = din + u * inner;
        for (size_t k = 0; k < inner; k++) d[k] += g[k] * m;
    }
}

void nn_rowdiv(float *dst, const float *v, const float *src, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float vi = v[i];
        for (int j = 0; j < d; j++) dst[(size_t)i * d + j] = src[(size_t)i * d + j] / vi;
    }
}

void nn_rowscale(float *dst, const float *v, const float *src, int n, int d, float beta)
{
    for (int i = 0; i < n; i++) {
        const float vi = v[i];
        float *o = dst + (size_t)i * d;
        const float *x = src + (size_t)i * d;
        if (beta == 0.0f)
            for (int j = 0; j < d; j++) o[j] = vi * x[j];
        else
            for (int j = 0; j < d; j++) o[j] = vi * x[j] + beta * o[j];
    }
}

void nn_scale(float *x, float a, size_t n)
{
    for (size_t j = 0; j < n; j++) x[j] *= a;
}
