/* test_core: rng, sde, mixture, score (barycenter score), sampler, dsm, io -- the core of common/. */
#include "dsm.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "mixture.h"
#include "rng.h"
#include "sampler.h"
#include "score.h"
#include "sde.h"
#include "test.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_rng(void)
{
    rng *a = rng_alloc(7, 3), *b = rng_alloc(7, 3), *c = rng_alloc(7, 4);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        double x = rng_gaussian(a), y = rng_gaussian(b), z = rng_gaussian(c);
        same &= (x == y);
        differ |= (x != z);
    }
    CHECK(same, "rng: same (seed, stream) reproduces the stream");
    CHECK(differ, "rng: different streams differ");
    /* moments of 200k normals: mean within 5 standard errors */
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_gaussian(a);
        s += x;
        s2 += x * x;
    }
    CHECK_CLOSE(s / n, 0.0, 5.0 / sqrt(n), 0, "rng: gaussian mean");
    CHECK_CLOSE(s2 / n, 1.0, 5.0 * sqrt(2.0 / n), 0, "rng: gaussian variance");
    size_t idx[10];
    for (size_t i = 0; i < 10; i++) idx[i] = i;
    rng_shuffle(a, idx, 10);
    int seen = 0;
    for (size_t i = 0; i < 10; i++) seen |= 1 << idx[i];
    CHECK(seen == 1023, "rng: shuffle is a permutation");

    /* a saved state round-trips, and a damaged one is refused with a reason, leaving the rng as it was
     * (issue 11: a position of -100000000 segfaulted in mt_get, -3 silently changed the draws) */
    size_t sz = rng_state_size(a);
    unsigned char *saved = malloc(sz), *bad = malloc(sz);
    memcpy(saved, rng_state_ptr(a), sz);
    double next = rng_uniform(a);
    char why[200] = "";
    CHECK(rng_state_set(b, saved, sz, why, sizeof why) == 0 && rng_uniform(b) == next,
          "rng: a saved state restores the stream exactly");
    static const int bad_pos[3] = {-100000000, -3, 625};
    for (int k = 0; k < 3; k++) {
        memcpy(bad, saved, sz);
        memcpy(bad + 624 * sizeof(unsigned long), &bad_pos[k], sizeof(int));
        memcpy(saved, rng_state_ptr(b), sz);
        char name[96];
        snprintf(name, sizeof name, "rng: state position %d refused, rng unchanged", bad_pos[k]);
        why[0] = 0;
        CHECK(rng_state_set(b, bad, sz, why, sizeof why) != 0 && strstr(why, "position") &&
                  memcmp(rng_state_ptr(b), saved, sz) == 0,
              name);
    }
    memcpy(bad, saved, sz);
    unsigned long big = 0x100000000ul;
    memcpy(bad + 17 * sizeof(unsigned long), &big, sizeof big);
    CHECK(rng_state_set(b, bad, sz, why, sizeof why) != 0 && strstr(why, "32 bits"), "rng: state word over 32 bits refused");
    memset(bad, 0, sz);
    CHECK(rng_state_check(bad, sz, why, sizeof why) != 0 && strstr(why, "all zero"), "rng: all-zero state refused");
    CHECK(rng_state_check(saved, sz - 1, why, sizeof why) != 0 && strstr(why, "bytes"), "rng: wrong-size state refused");
    free(saved);
    free(bad);
    rng_free(a);
    rng_free(b);
    rng_free(c);
}

static void test_sde(void)
{
    sde ve = sde_ve(25.0);
    /* REFERENCE.md: std(1) = sqrt((25^2 - 1)/(2 ln 25)) = 9.8451 */
    CHECK_CLOSE(sde_std(&ve, 1.0), sqrt(624.0 / (2.0 * log(25.0))), 1e-12, 0, "sde: VE std(1) formula");
    /* REFERENCE.md quotes 9.8451, truncated to 4 places (the value is 9.84521) */
    CHECK_CLOSE(sde_std(&ve, 1.0), 9.8451, 2e-4, 0, "sde: VE std(1) = 9.8451 (REFERENCE.md)");
    /* small t: std^2 ~ t (the VE variance rate at 0 is g(0)^2 = 1) */
    CHECK_CLOSE(sde_std(&ve, 1e-7) * sde_std(&ve, 1e-7), 1e-7, 0, 1e-6, "sde: VE std^2(t) ~ t at t = 1e-7");
    /* d std^2/dt = g^2 for VE, checked by a central difference */
    double t = 0.37, h = 1e-6;
    double dv = (pow(sde_std(&ve, t + h), 2) - pow(sde_std(&ve, t - h), 2)) / (2 * h);
    CHECK_CLOSE(dv, pow(sde_g(&ve, t), 2), 0, 1e-7, "sde: VE d(std^2)/dt = g^2");
    sde ou = sde_ou(0.5, 1.0, 8.0);
    /* OU: d var/dt = -2a var + s^2 for var(t) = std(t)^2 (from x0 = 0) */
    double v = pow(sde_std(&ou, t), 2);
    dv = (pow(sde_std(&ou, t + h), 2) - pow(sde_std(&ou, t - h), 2)) / (2 * h);
    CHECK_CLOSE(dv, -2 * 0.5 * v + 1.0, 0, 1e-7, "sde: OU variance ODE");
    CHECK_CLOSE(sde_prior_std(&ou), 1.0, 1e-15, 0, "sde: OU stationary std s/sqrt(2a)");
    CHECK_CLOSE(sde_alpha(&ou, 2.0), exp(-1.0), 1e-15, 0, "sde: OU mean coefficient");
}

static double pdf_fn(double x, void *p) { return mixture_pdf(p, x); }
static double xpdf_fn(double x, void *p) { return x * mixture_pdf(p, x); }

static void test_mixture(void)
{
    char err[256];
    mixture m;
    CHECK(mixture_parse("0.6:-6:0.8,0.4:6:0.8", &m, err, sizeof err) == 0 && m.k == 2, "mixture: parse paper target");
    CHECK(mixture_parse("0.6:-6:0.8,0.5:6:0.8", &m, err, sizeof err) != 0 && strstr(err, "sum"),
          "mixture: weights not summing to 1 rejected");
    CHECK(mixture_parse("0.6:-6:-0.8,0.4:6:0.8", &m, err, sizeof err) != 0 && strstr(err, "std"),
          "mixture: negative std rejected");
    CHECK(mixture_parse("0.6:-6,0.4:6:0.8", &m, err, sizeof err) != 0, "mixture: malformed component rejected");
    CHECK(mixture_parse("0.6:-6:0.8,", &m, err, sizeof err) != 0, "mixture: trailing comma rejected");
    CHECK(mixture_parse("", &m, err, sizeof err) != 0, "mixture: empty spec rejected");
    mixture_parse("0.6:-6:0.8,0.4:6:0.8", &m, err, sizeof err);

    gsl_set_error_handler_off();
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(1000);
    gsl_function F = {pdf_fn, &m};
    double r, e;
    gsl_integration_qagi(&F, 1e-12, 1e-12, 1000, ws, &r, &e);
    CHECK_CLOSE(r, 1.0, 1e-10, 0, "mixture: pdf integrates to 1");
    F.function = xpdf_fn;
    gsl_integration_qagi(&F, 1e-12, 1e-12, 1000, ws, &r, &e);
    CHECK_CLOSE(r, mixture_mean(&m), 1e-9, 0, "mixture: mean by quadrature");
    CHECK_CLOSE(mixture_sd(&m), sqrt(0.64 + 36.0 - 1.44), 1e-12, 0, "mixture: sd closed form");
    gsl_integration_workspace_free(ws);

    double maxe = 0;
    for (double x = -15; x <= 15; x += 0.37) {
        double h = 1e-5, fd = (mixture_logpdf(&m, x + h) - mixture_logpdf(&m, x - h)) / (2 * h);
        maxe = fmax(maxe, fabs(fd - mixture_score(&m, x)) / (1 + fabs(fd)));
    }
    CHECK(maxe < 1e-6, "mixture: score = d/dx logpdf (central differences)");
    CHECK(isfinite(mixture_score(&m, 200.0)) && isfinite(mixture_logpdf(&m, 200.0)), "mixture: finite far tails");
    double qe = 0;
    for (double u = 0.001; u < 1; u += 0.0123) qe = fmax(qe, fabs(mixture_cdf(&m, mixture_quantile(&m, u)) - u));
    CHECK(qe < 1e-12, "mixture: cdf(quantile(u)) = u");

    sde ve = sde_ve(25.0);
    mixture d = mixture_diffuse(&m, &ve, 0.5);
    CHECK_CLOSE(d.sd[0] * d.sd[0], 0.64 + pow(sde_std(&ve, 0.5), 2), 1e-12, 0, "mixture: diffused variance");
    mixture a = mixture_affine(&m, mixture_mean(&m), mixture_sd(&m));
    CHECK_CLOSE(mixture_mean(&a), 0.0, 1e-12, 0, "mixture: standardised mean 0");
    CHECK_CLOSE(mixture_sd(&a), 1.0, 1e-12, 0, "mixture: standardised sd 1");

    rng *r0 = rng_alloc(1, 1);
    size_t n = 200000;
    double *x = mem_new(double, n), s = 0;
    mixture_sample(&m, r0, x, n);
    for (size_t i = 0; i < n; i++) s += x[i];
    CHECK_CLOSE(s / n, mixture_mean(&m), 5 * mixture_sd(&m) / sqrt((double)n), 0, "mixture: sample mean");
    free(x);
    rng_free(r0);
}

static void test_bary_score_and_sampler(void)
{
    /* Two Gaussians with equal variance: the lambda-weighted exact score is the exact score of the
     * diffused barycenter N(sum lambda_i mu_i, 1), so EM sampling must land on that law. */
    char err[128];
    mixture g1, g2;
    mixture_parse("1:-2:1", &g1, err, sizeof err);
    mixture_parse("1:3:1", &g2, err, sizeof err);
    sde ve = sde_ve(25.0);
    mixture_oracle o1 = {g1, ve}, o2 = {g2, ve};
    score_model m1 = mixture_oracle_model(&o1, "g1"), m2 = mixture_oracle_model(&o2, "g2");
    const score_model *ms[2] = {&m1, &m2};
    double lam[2] = {0.3, 0.7};
    score_bary *b = score_bary_alloc(2, ms, lam);
    score_model sb = score_bary_model(b);
    float t[3] = {0.1f, 0.5f, 0.9f}, x[3] = {-1.0f, 0.5f, 2.0f}, out[3], o1v[3], o2v[3];
    score_eval(&sb, 3, t, 1, x, out);
    score_eval(&m1, 3, t, 1, x, o1v);
    score_eval(&m2, 3, t, 1, x, o2v);
    double e = 0;
    for (int i = 0; i < 3; i++) e = fmax(e, fabs(out[i] - (0.3f * o1v[i] + 0.7f * o2v[i])));
    CHECK(e < 1e-6, "score: barycenter score is the lambda-weighted sum");

    size_t n = 20000;
    float *xs = mem_new(float, n);
    rng *r = rng_alloc(11, 0);
    sampler_opts so = sampler_opts_paper();
    sampler_em(&ve, &sb, n, xs, &so, r);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += xs[i];
        s2 += (double)xs[i] * xs[i];
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* the EM discretisation with 1000 steps from sigma(1)=9.85 leaves a small variance bias; the
     * tolerance is 5 standard errors plus 3% for that bias */
    CHECK_CLOSE(mean, 0.3 * -2 + 0.7 * 3, 5.0 / sqrt((double)n), 0, "sampler: EM mean of equal-variance barycenter");
    CHECK_CLOSE(var, 1.0, 5.0 * sqrt(2.0 / n) + 0.03, 0, "sampler: EM variance of equal-variance barycenter");
    free(xs);
    rng_free(r);
    score_bary_free(b);
}

static void test_dsm(void)
{
    const size_t n = 5, dim = 2;
    float s[10], std[5], z[10], g[10];
    for (size_t i = 0; i < n; i++) std[i] = 0.1f + 0.3f * i;
    for (size_t j = 0; j < n * dim; j++) {
        s[j] = sinf((float)j);
        z[j] = cosf(1.7f * j);
    }
    double L = dsm_loss(n, dim, s, std, z, g), maxe = 0;
    for (size_t j = 0; j < n * dim; j++) {
        float keep = s[j], h = 1e-2f;
        s[j] = keep + h;
        double lp = dsm_loss(n, dim, s, std, z, NULL);
        s[j] = keep - h;
        double lm = dsm_loss(n, dim, s, std, z, NULL);
        s[j] = keep;
        maxe = fmax(maxe, fabs((lp - lm) / (2 * h) - g[j]));
    }
    CHECK(maxe < 1e-4 && L > 0, "dsm: gradient matches central differences");
    /* exact score gives the irreducible loss; for a point mass x0 the exact score -z/std gives 0 */
    sde ve = sde_ve(25.0);
    rng *r = rng_alloc(3, 3);
    float x0[4] = {1, 2, 3, 4}, t[4], sd[4], zz[4], xt[4], sc[4];
    dsm_perturb(&ve, r, 4, 1, x0, 1e-5, 1.0, t, sd, zz, xt);
    for (int i = 0; i < 4; i++) sc[i] = -(xt[i] - x0[i]) / (sd[i] * sd[i]);
    CHECK(dsm_loss(4, 1, sc, sd, zz, NULL) < 1e-8, "dsm: conditional score has zero loss");
    CHECK(t[0] >= 1e-5f && t[0] <= 1.0f, "dsm: t in range");
    rng_free(r);
}

static void test_io(void)
{
    char dir[] = "/tmp/sf_test_io_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "io: temp dir");
    char path[256], meta[300];
    snprintf(path, sizeof path, "%s/t.csv", dir);
    snprintf(meta, sizeof meta, "%s.meta", path);
    char *argv[] = {"prog", "--flag", "x"};
    io_meta m;
    io_meta_init(&m, 3, argv);
    io_meta_set(&m, "seed", "%d", 42);
    io_csv *c = io_csv_open(path, "a,b");
    io_csv_row(c, "%d,%d", 1, 2);
    struct stat st;
    CHECK(stat(path, &st) != 0, "io: nothing at the final path before commit");
    io_csv_commit(c, &m);
    FILE *f = fopen(path, "r");
    char line[64] = "";
    if (f) {
        fgets(line, sizeof line, f);
        fgets(line, sizeof line, f);
        fclose(f);
    }
    CHECK(strcmp(line, "1,2\n") == 0, "io: committed CSV content");
    f = fopen(meta, "r");
    char buf[2048] = "";
    if (f) {
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        buf[k] = 0;
        fclose(f);
    }
    CHECK(strstr(buf, "command: prog --flag x") && strstr(buf, "seed: 42") && strstr(buf, "git_commit:"),
          "io: meta has command, seed, commit");
    c = io_csv_open(path, "a,b");
    io_csv_row(c, "9,9");
    io_csv_abort(c);
    f = fopen(path, "r");
    if (f) {
        fgets(line, sizeof line, f);
        fgets(line, sizeof line, f);
        fclose(f);
    }
    CHECK(strcmp(line, "1,2\n") == 0, "io: aborted write leaves the old file intact");

    /* parts verify against the checksum in their .meta (issue 11: a truncated part dropped table rows) */
    char err[512] = "";
    CHECK(strstr(buf, "data_bytes: 8") && strstr(buf, "data_crc32: "), "io: meta records the data's size and CRC-32");
    CHECK(io_csv_verify(path, err, sizeof err) == 0, "io: a committed part verifies");
    f = fopen(path, "w");
    if (f) {
        fputs("a,b\n", f);   /* what `head -1 part > x && mv x part` leaves */
        fclose(f);
    }
    CHECK(io_csv_verify(path, err, sizeof err) != 0 && strstr(err, path) && strstr(err, "checksum") &&
              !strchr(err, '\n'),
          "io: a truncated part fails verification, naming the file");
    f = fopen(path, "w");
    if (f) {
        fputs("a,b\n1,3\n", f);   /* same size, one byte changed */
        fclose(f);
    }
    CHECK(io_csv_verify(path, err, sizeof err) != 0 && strstr(err, "checksum"), "io: a one-byte change is detected");
    unlink(meta);
    CHECK(io_csv_verify(path, err, sizeof err) != 0 && strstr(err, ".meta"), "io: a part without its .meta fails");
    f = fopen(meta, "w");
    if (f) {
        fputs("command: old\n", f);
        fclose(f);
    }
    CHECK(io_csv_verify(path, err, sizeof err) != 0 && strstr(err, "no checksum"), "io: a .meta without checksum fails");
    unlink(path);
    CHECK(io_csv_verify(path, err, sizeof err) != 0 && strstr(err, path), "io: a missing part fails, naming it");

    /* stale temp files: those of dead processes of this host go, live ones and other hosts' stay */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char *mine = io_tmp_path(path);   /* "<path>.tmp.<host>.<our pid>" */
    char dead[512], live[512], other[512], old_style[512], unrelated[512];
    snprintf(dead, sizeof dead, "%.*s.%ld", (int)(strrchr(mine, '.') - mine), mine, (long)child);
    snprintf(live, sizeof live, "%.*s.%ld", (int)(strrchr(mine, '.') - mine), mine, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp.some-other-host.%ld", path, (long)child);
    snprintf(old_style, sizeof old_style, "%s/u.partial.tmp.%ld", dir, (long)child);
    snprintf(unrelated, sizeof unrelated, "%s/notes.tmp.txt", dir);
    const char *files[6] = {mine, dead, live, other, old_style, unrelated};
    for (int k = 0; k < 6; k++) {
        f = fopen(files[k], "w");
        if (f) fclose(f);
    }
    size_t removed = io_remove_stale_tmp(dir);
    CHECK(removed == 2 && access(dead, F_OK) != 0 && access(old_style, F_OK) != 0,
          "io: stale temp files of dead processes removed (new and old names)");
    CHECK(access(mine, F_OK) == 0 && access(live, F_OK) == 0 && access(other, F_OK) == 0 && access(unrelated, F_OK) == 0,
          "io: temp files of live processes, other hosts and other names kept");
    for (int k = 0; k < 6; k++) unlink(files[k]);
    free(mine);
    io_meta_free(&m);
    unlink(meta);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    test_rng();
    test_sde();
    test_mixture();
    test_bary_score_and_sampler();
    test_dsm();
    test_io();
    return test_finish();
}
