/* test_philox: the counter-based generator (common/philox.h): Random123's known-answer vectors for Philox4x32-7
 * and -10, the element <-> counter mapping, slices regenerated alone and thread-count independence (bit for bit),
 * the accuracy of the private float log / sincos over their whole input grid, and statistical sanity of the
 * uniform, Gaussian and Rademacher streams (mean, variance, Kolmogorov-Smirnov, cross-stream and lag
 * correlation). The statistical thresholds are 5 sigma / KS p ~ 1e-3 at a fixed seed: a correct generator
 * passes them, a broken mapping, a biased conversion or two aliased streams does not. */
#include "philox.h"
#include "philox_core.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Random123 tests/kat_vectors: counter[4], key[2] -> out[4] */
static const struct {
    int rounds;
    uint32_t ctr[4], key[2], out[4];
} KAT[] = {
    {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {7, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {7, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
    {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {10, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {10, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* sqrt(n) * sup |F_n - F| for sorted x[n] */
static double ks_stat(float *x, size_t n, double (*cdf)(double))
{
    qsort(x, n, sizeof *x, cmp_float);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double f = cdf(x[i]);
        const double lo = f - (double)i / n, hi = (double)(i + 1) / n - f;
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    return d * sqrt((double)n);
}

static double cdf_uniform(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }
static double cdf_normal(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void moments(const float *x, size_t n, double *mean, double *var)
{
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *var = ss / (n - 1);
}

static double corr(const float *x, const float *y, size_t n)
{
    double mx, vx, my, vy, c = 0.0;
    moments(x, n, &mx, &vx);
    moments(y, n, &my, &vy);
    for (size_t i = 0; i < n; i++) c += (x[i] - mx) * (y[i] - my);
    return c / (n - 1) / sqrt(vx * vy);
}

/* |got - ref| in units of the float ulp at ref (ref 0: got must be 0) */
static double ulps(float got, double ref)
{
    if (ref == 0.0) return got == 0.0f ? 0.0 : 1e30;
    int e;
    frexp(ref, &e);
    return fabs((double)got - ref) / ldexp(1.0, e - 24);
}

static void test_kat(void)
{
    for (size_t i = 0; i < sizeof KAT / sizeof KAT[0]; i++) {
        uint32_t o[4];
        philox4x32(KAT[i].ctr, KAT[i].key, KAT[i].rounds, o);
        char name[96], d[160];
        snprintf(name, sizeof name, "kat philox4x32-%d vector %zu", KAT[i].rounds, i % 3);
        snprintf(d, sizeof d, "got %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
        test_report(memcmp(o, KAT[i].out, sizeof o) == 0, name, d);
    }
}

static void test_mapping(void)
{
    /* element e of (seed, stream) = lane e & 3 of Philox4x32-10 at counter (e >> 2, stream), key seed */
    const uint64_t seed = 0x0123456789ABCDEFull, stream = philox_stream(PHILOX_TEST, 77);
    const uint64_t e = (5ull << 32) * 4 + 6;   /* block with a non-zero high word */
    const uint32_t ctr[4] = {(uint32_t)(e >> 2), (uint32_t)(e >> 34), (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t o[4];
    philox4x32(ctr, key, 10, o);
    CHECK(philox_uniform_at(seed, stream, e) == (float)(o[2] >> 8) * 0x1p-24f, "mapping: uniform element -> counter");
    float x[8];
    philox_uniform_fill(x, 8, seed, stream, e - 2);
    CHECK(x[2] == philox_uniform_at(seed, stream, e), "mapping: fill at a high offset");
    CHECK(philox_stream(PHILOX_DSM_TIME, 3) != philox_stream(PHILOX_DSM_NOISE, 3) &&
              philox_stream(PHILOX_DSM_NOISE, 3) >> 56 == PHILOX_DSM_NOISE,
          "stream ids: purpose in the top byte");
    CHECK(philox_sampler_index(2, 7) == (2ull << 32 | 7), "sampler index = repeat << 32 | step");
}

static void test_slices(void)
{
    enum { N = 1003 };
    const uint64_t seed = 42, st = philox_stream(PHILOX_TEST, 1);
    void (*fills[3])(float *, size_t, uint64_t, uint64_t, uint64_t) = {philox_uniform_fill, philox_gaussian_fill,
                                                                      philox_rademacher_fill};
    const char *names[3] = {"uniform", "gaussian", "rademacher"};
    for (int k = 0; k < 3; k++) {
        float full[N], part[N];
        fills[k](full, N, seed, st, 0);
        int ok = 1;
        const size_t offs[] = {0, 1, 2, 3, 5, 6, 7, 500, 998, 1002};
        for (size_t q = 0; q < sizeof offs / sizeof offs[0]; q++)
            for (size_t len = 1; offs[q] + len <= N; len = len * 3 + 1) {
                fills[k](part, len, seed, st, offs[q]);
                if (memcmp(part, full + offs[q], len * sizeof(float))) ok = 0;
            }
        int at = 1;
        for (size_t e = 0; e < N; e++) {
            const float v = k == 0 ? philox_uniform_at(seed, st, e) : k == 1 ? philox_gaussian_at(seed, st, e)
                                                                              : full[e];
            if (memcmp(&v, &full[e], sizeof v)) at = 0;
        }
        char name[96];
        snprintf(name, sizeof name, "%s: any slice regenerated alone equals the full fill (bits)", names[k]);
        CHECK(ok, name);
        snprintf(name, sizeof name, "%s: element function equals the fill (bits)", names[k]);
        CHECK(at, name);
    }
    /* thread-count independence on a parallel-sized fill */
    const size_t n = 1 << 18;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    philox_gaussian_fill(a, n, seed, st, 3);
    omp_set_num_threads(nth > 1 ? nth : 2);
    philox_gaussian_fill(b, n, seed, st, 3);
    omp_set_num_threads(nth);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "gaussian fill: 1 thread == several threads (bits)");
    free(a);
    free(b);
}

static void test_math(void)
{
    /* every u in the grids the generator uses: log over (0, 1] (u1 = k 2^-24), sincos over [0, 1) */
    double worst_log = 0.0, worst_sin = 0.0, worst_cos = 0.0;
    for (uint32_t k = 1; k <= (1u << 24); k++) {
        const float u = (float)k * 0x1p-24f;
        const double l = ulps(phx_logf(u), log((double)u));
        if (l > worst_log) worst_log = l;
    }
    for (uint32_t k = 0; k < (1u << 24); k++) {
        const float u = (float)k * 0x1p-24f;
        float s, c;
        phx_sincos2pi(u, &s, &c);
        /* reference in double with the same exact reduction: angle 2 pi (u - q/4) + q pi/2 */
        const int q = (int)(u * 4.0f + 0.5f);
        const double r = 2.0 * M_PI * ((double)u - q * 0.25);
        const double sr = sin(r), cr = cos(r);
        const double rs[4] = {sr, cr, -sr, -cr}, rc[4] = {cr, -sr, -cr, sr};
        const double es = ulps(s, rs[q & 3]), ec = ulps(c, rc[q & 3]);
        if (es > worst_sin) worst_sin = es;
        if (ec > worst_cos) worst_cos = ec;
    }
    printf("# private float math, worst error over the whole grid: log %.2f ulp, sin(2 pi u) %.2f ulp, "
           "cos(2 pi u) %.2f ulp\n", worst_log, worst_sin, worst_cos);
    CHECK(worst_log <= 2.0, "log: within 2 ulp of the double log over (0, 1] (2^24 points)");
    CHECK(worst_sin <= 2.0, "sin(2 pi u): within 2 ulp over [0, 1) (2^24 points)");
    CHECK(worst_cos <= 2.0, "cos(2 pi u): within 2 ulp over [0, 1) (2^24 points)");
}

static void test_statistics(void)
{
    const size_t n = 1000000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    const uint64_t seed = 20240607;
    double m, v;
    char name[128];

    philox_uniform_fill(x, n, seed, philox_stream(PHILOX_TEST, 10), 0);
    int range = 1;
    for (size_t i = 0; i < n; i++) range &= x[i] >= 0.0f && x[i] < 1.0f;
    CHECK(range, "uniform: every value in [0, 1)");
    moments(x, n, &m, &v);
    CHECK_CLOSE(m, 0.5, 5.0 * sqrt(1.0 / 12.0 / n), 0, "uniform: mean 1/2 (5 sigma)");
    CHECK_CLOSE(v, 1.0 / 12.0, 5.0 * sqrt(1.0 / 180.0 / n), 0, "uniform: variance 1/12 (5 sigma)");
    /* independence: the neighbouring stream, the neighbouring seed, lag 1 within a stream */
    philox_uniform_fill(y, n, seed, philox_stream(PHILOX_TEST, 11), 0);
    CHECK(fabs(corr(x, y, n)) < 5.0 / sqrt((double)n), "uniform: streams s and s+1 uncorrelated (5 sigma)");
    philox_uniform_fill(y, n, seed + 1, philox_stream(PHILOX_TEST, 10), 0);
    CHECK(fabs(corr(x, y, n)) < 5.0 / sqrt((double)n), "uniform: seeds k and k+1 uncorrelated (5 sigma)");
    CHECK(fabs(corr(x, x + 1, n - 1)) < 5.0 / sqrt((double)n), "uniform: lag-1 correlation (5 sigma)");
    double ks = ks_stat(x, n, cdf_uniform);
    snprintf(name, sizeof name, "uniform: KS sqrt(n) D = %.3f < 1.95 (p ~ 1e-3)", ks);
    CHECK(ks < 1.95, name);

    philox_gaussian_fill(x, n, seed, philox_stream(PHILOX_TEST, 20), 0);
    double amax = 0.0, m3 = 0.0, m4 = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double z = x[i];
        if (fabs(z) > amax) amax = fabs(z);
        m3 += z * z * z;
        m4 += z * z * z * z;
    }
    m3 /= n;
    m4 /= n;
    CHECK(amax <= 5.78, "gaussian: |z| <= sqrt(-2 ln 2^-24) = 5.77");
    moments(x, n, &m, &v);
    CHECK_CLOSE(m, 0.0, 5.0 / sqrt((double)n), 0, "gaussian: mean 0 (5 sigma)");
    CHECK_CLOSE(v, 1.0, 5.0 * sqrt(2.0 / n), 0, "gaussian: variance 1 (5 sigma)");
    CHECK_CLOSE(m3, 0.0, 5.0 * sqrt(15.0 / n), 0, "gaussian: third moment 0 (5 sigma)");
    CHECK_CLOSE(m4, 3.0, 5.0 * sqrt(96.0 / n), 0, "gaussian: fourth moment 3 (5 sigma)");
    /* the two halves of a Box-Muller pair (r cos, r sin) are uncorrelated; so are the pairs of a block */
    CHECK(fabs(corr(x, x + 1, n - 1)) < 5.0 / sqrt((double)n), "gaussian: lag-1 correlation (5 sigma)");
    CHECK(fabs(corr(x, x + 2, n - 2)) < 5.0 / sqrt((double)n), "gaussian: lag-2 correlation (5 sigma)");
    philox_gaussian_fill(y, n, seed, philox_stream(PHILOX_TEST, 21), 0);
    CHECK(fabs(corr(x, y, n)) < 5.0 / sqrt((double)n), "gaussian: streams s and s+1 uncorrelated (5 sigma)");
    ks = ks_stat(x, n, cdf_normal);
    snprintf(name, sizeof name, "gaussian: KS sqrt(n) D = %.3f < 1.95 (p ~ 1e-3)", ks);
    CHECK(ks < 1.95, name);

    philox_rademacher_fill(x, n, seed, philox_stream(PHILOX_TEST, 30), 0);
    int pm = 1;
    for (size_t i = 0; i < n; i++) pm &= x[i] == 1.0f || x[i] == -1.0f;
    moments(x, n, &m, &v);
    CHECK(pm, "rademacher: every value +-1");
    CHECK_CLOSE(m, 0.0, 5.0 / sqrt((double)n), 0, "rademacher: mean 0 (5 sigma)");
    free(x);
    free(y);
}

static void test_helpers(void)
{
    enum { B = 37, D = 5 };
    float t[B], z[B * D], z2[B * D];
    philox_dsm_draw(t, z, B, D, 1e-5, 1.0, 9, 12);
    int ok = 1;
    for (int i = 0; i < B; i++) {
        const double want = 1e-5 + (1.0 - 1e-5) * (double)philox_uniform_at(9, philox_stream(PHILOX_DSM_TIME, 12), i);
        ok &= t[i] == (float)want && t[i] >= 1e-5f && t[i] <= 1.0f;
    }
    CHECK(ok, "dsm_draw: t = t_lo + (t_hi - t_lo) U from (DSM_TIME, step)");
    philox_gaussian_fill(z2, B * D, 9, philox_stream(PHILOX_DSM_NOISE, 12), 0);
    CHECK(memcmp(z, z2, sizeof z) == 0, "dsm_draw: z from (DSM_NOISE, step)");
    philox_dsm_draw(t, z2, B, D, 1e-5, 1.0, 9, 13);
    CHECK(memcmp(z, z2, sizeof z) != 0, "dsm_draw: the next step draws new noise");
    philox_sampler_noise(z2, B * D, 9, 0, 12);
    CHECK(memcmp(z, z2, sizeof z) != 0, "sampler noise and DSM noise of the same step differ");
    float e[64];
    philox_probe(e, 64, 1, 9, 0);
    int pm = 1;
    for (int i = 0; i < 64; i++) pm &= e[i] == 1.0f || e[i] == -1.0f;
    CHECK(pm, "probe: rademacher values +-1");
}

int main(void)
{
    test_kat();
    test_mapping();
    test_slices();
    test_math();
    test_statistics();
    test_helpers();
    return test_finish();
}
