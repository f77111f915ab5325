/* test.h: the tiny check harness every test program uses (DESIGN.md §5).
 * Each check prints "PASS name" or "FAIL name: detail"; test_finish() prints the program's tally as
 * "RESULT passed=P failed=F" (tests/run.sh sums them into the final "N passed, N failed" line). */
#ifndef SF_TEST_H
#define SF_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_;

static inline void test_report(int ok, const char *name, const char *detail)
{
    if (ok) {
        test_passed_++;
        printf("PASS %s\n", name);
    } else {
        test_failed_++;
        printf("FAIL %s: %s\n", name, detail);
    }
    fflush(stdout);
}

#define CHECK(cond, name) test_report(!!(cond), (name), #cond)

/* |got - want| <= atol + rtol |want| */
#define CHECK_CLOSE(got, want, atol, rtol, name)                                                          \
    do {                                                                                                  \
        double g_ = (double)(got), w_ = (double)(want);                                                   \
        char d_[256];                                                                                     \
        snprintf(d_, sizeof d_, "got %.10g want %.10g (|diff| %.3g > %.3g)", g_, w_, fabs(g_ - w_),       \
                 (double)(atol) + (double)(rtol) * fabs(w_));                                             \
        test_report(isfinite(g_) && fabs(g_ - w_) <= (double)(atol) + (double)(rtol) * fabs(w_), (name), d_); \
    } while (0)

/* max |got - want| / max |want| over n values (1 as the scale when want is all 0); INFINITY if got holds a
 * non-finite value: the relative error every comparison against a reference output states */
static inline double test_rel_err(const float *got, const float *want, size_t n)
{
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        m = fmax(m, fabs((double)want[i]));
        d = fmax(d, fabs((double)got[i] - want[i]));
    }
    return d / (m > 0 ? m : 1);
}

/* A GPU test that finds no usable GPU (or a CPU-only build): prints "SKIP prog: why", or, when the environment
 * has SF_REQUIRE_CUDA=1 (make gpu-check), records one FAIL, so a GPU run can never pass by skipping. */
static inline void test_cuda_unavailable(const char *prog, const char *why)
{
    const char *req = getenv("SF_REQUIRE_CUDA");
    if (req && strcmp(req, "1") == 0) {
        char d[400];
        snprintf(d, sizeof d, "SF_REQUIRE_CUDA=1 and no usable GPU: %s", why);
        test_report(0, prog, d);
    } else {
        printf("SKIP %s: %s\n", prog, why);
    }
}

static inline int test_finish(void)
{
    printf("RESULT passed=%d failed=%d\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

#endif
