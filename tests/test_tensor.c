/* test_tensor: nn/tensor -- views and owned tensors, safetensors views in the dtype stored, and the f16 / bf16
 * conversions: exhaustive round trips over all 65,536 half patterns, round-to-nearest-even at exact ties, NaN,
 * Inf, subnormals and overflow, checked against double-precision arithmetic (not against our own code). */
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* f16 value of a bit pattern from its definition (independent of nn_f16_to_f32) */
static double f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* nearest f16 to x by brute force over all finite patterns, ties to even mantissa; overflow per IEEE */
static uint16_t f16_nearest(double x)
{
    if (isnan(x)) return 0x7e00;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (a >= 65520.0) return sign | 0x7c00;
    uint16_t best = 0;
    double bd = INFINITY;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs(f16_value((uint16_t)h) - a);
        if (d < bd || (d == bd && !(h & 1))) {
            bd = d;
            best = (uint16_t)h;
        }
    }
    return sign | best;
}

static void test_f16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = f16_value((uint16_t)h);
        float got = nn_f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) : (double)got != want || !signbit(got) != !signbit(want)) bad++;
        if (!isnan(want) && nn_f32_to_f16(got) != h) bad++;   /* exact values round-trip */
    }
    CHECK(bad == 0, "f16 -> f32 -> f16 exact for all 65,536 patterns");

    /* midpoints between neighbours (exactly representable in f32) must go to the even one; points just off the
     * midpoint must go to the nearer one */
    int badt = 0, n = 0;
    for (uint32_t h = 0; h < 0x7bff; h += 37) {
        double lo = f16_value((uint16_t)h), hi = f16_value((uint16_t)(h + 1)), mid = 0.5 * (lo + hi);
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (nn_f32_to_f16((float)mid) != want) badt++;
        if (nn_f32_to_f16(nextafterf((float)mid, (float)hi)) != h + 1) badt++;
        if (nn_f32_to_f16(nextafterf((float)mid, (float)lo)) != h) badt++;
        n++;
    }
    CHECK(badt == 0 && n > 800, "f32 -> f16 ties to even, off-tie to nearest (normal and subnormal)");

    int badr = 0;
    srand(7);
    for (int i = 0; i < 2000; i++) {
        double x = ldexp((double)rand() / RAND_MAX, -30 + rand() % 48) * (rand() & 1 ? -1 : 1);
        float xf = (float)x;
        if (nn_f32_to_f16(xf) != f16_nearest(xf)) badr++;
    }
    CHECK(badr == 0, "f32 -> f16 equals brute-force nearest on 2,000 random magnitudes 2^-30..2^18");
    CHECK(nn_f32_to_f16(65519.0f) == 0x7bff && nn_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow threshold 65520");
    CHECK(nn_f32_to_f16(INFINITY) == 0x7c00 && nn_f32_to_f16(-INFINITY) == 0xfc00, "f16 keeps infinities");
    CHECK((nn_f32_to_f16(NAN) & 0x7fff) > 0x7c00, "f16 keeps NaN");
    CHECK(nn_f32_to_f16(ldexpf(1, -25)) == 0 && nn_f32_to_f16(nextafterf(ldexpf(1, -25), 1)) == 1,
          "f16 smallest subnormal: 2^-25 ties to 0, just above rounds to 2^-24");
}

static void test_bf16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nn_bf16_to_f32((uint16_t)h);
        uint32_t u;
        memcpy(&u, &f, 4);
        if (u != h << 16) bad++;
        if (!isnan(f) && nn_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "bf16 -> f32 -> bf16 exact for all 65,536 patterns");
    /* 1 + 2^-8 is the midpoint of 1 and 1 + 2^-7: ties to even (1); 1 + 3 * 2^-8 ties up to 1 + 2^-6 */
    CHECK(nn_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(nn_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(nn_f32_to_bf16(nextafterf(1.0f + ldexpf(1, -8), 2)) == 0x3f81, "bf16 just above a tie rounds up");
    CHECK((nn_f32_to_bf16(NAN) & 0x7fff) > 0x7f80, "bf16 keeps NaN (not rounded to Inf)");
    CHECK(nn_f32_to_bf16(3.4028235e38f) == 0x7f80, "bf16 FLT_MAX rounds to Inf");
}

static void test_views(void)
{
    int64_t shape[3] = {2, 3, 4};
    nn_tensor t = nn_tensor_alloc_cpu(NN_BF16, 3, shape);
    CHECK(t.numel == 24 && nn_tensor_nbytes(&t) == 48 && t.owned && ((uintptr_t)t.data & 63) == 0,
          "alloc_cpu: numel, bytes, owned, 64-byte aligned");
    CHECK(nn_tensor_shape_is(&t, 3, shape), "shape_is");
    char buf[64];
    CHECK(!strcmp(nn_tensor_shape_str(&t, buf, sizeof buf), "[2, 3, 4]"), "shape_str");
    float src[24], back[24];
    for (int i = 0; i < 24; i++) src[i] = (float)(i - 12) * 0.37f;
    nn_f32_convert_to(t.data, NN_BF16, src, 24);
    nn_tensor_to_f32(back, &t);
    int ok = 1;
    for (int i = 0; i < 24; i++) ok &= fabsf(back[i] - src[i]) <= fabsf(src[i]) * 0x1p-8f;
    CHECK(ok, "bf16 convert/widen within half an ulp (2^-8 relative)");
    CHECK(nn_tensor_first_nonfinite(&t) == (size_t)-1, "finite tensor: no non-finite index");
    ((uint16_t *)t.data)[17] = nn_f32_to_bf16(NAN);
    CHECK(nn_tensor_first_nonfinite(&t) == 17, "first_nonfinite finds the NaN at 17");
    nn_tensor_free(&t);
    CHECK(t.data == NULL && t.numel == 0, "free clears the tensor");
    nn_dtype d;
    CHECK(!nn_dtype_parse("bfloat16", &d) && d == NN_BF16 && !nn_dtype_parse("fp16", &d) && d == NN_F16 &&
              nn_dtype_parse("f64", &d) == -1,
          "dtype_parse");
}

static void test_safetensors_view(void)
{
    uint16_t h[6];
    float f[6] = {1, -2, 0.5f, 3, 65504, -0.25f};
    nn_f32_convert_to(h, NN_F16, f, 6);
    int32_t ints[2] = {1, 2};
    int64_t sh[2] = {2, 3}, sh1[1] = {2};
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_add(w, "w.f16", SAFETENSORS_F16, 2, sh, h);
    safetensors_writer_add(w, "idx", SAFETENSORS_I32, 1, sh1, ints);
    char path[] = "/tmp/test_tensor_XXXXXX", err[256];
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    if (fd < 0) return;
    close(fd);
    CHECK(safetensors_writer_write(w, path, err, sizeof err) == 0, "write a small F16 file");
    safetensors_writer_free(w);
    safetensors *st = safetensors_open(path, err, sizeof err);
    CHECK(st != NULL, "open it");
    if (!st) return;
    nn_tensor t;
    CHECK(nn_tensor_from_safetensors(&t, safetensors_find(st, "w.f16"), path, err, sizeof err) == 0 &&
              t.dtype == NN_F16 && t.ndim == 2 && t.shape[1] == 3 && !t.owned,
          "F16 tensor viewed in its stored dtype, not owned");
    float back[6];
    nn_tensor_to_f32(back, &t);
    CHECK(!memcmp(back, f, sizeof f), "values exact (all representable in f16)");
    int rc = nn_tensor_from_safetensors(&t, safetensors_find(st, "idx"), path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "'idx'") && strstr(err, "I32"), "I32 tensor refused, error names tensor and dtype");
    safetensors_close(st);
    unlink(path);
}

int main(void)
{
    test_f16();
    test_bf16();
    test_views();
    test_safetensors_view();
    return test_finish();
}
