/* th_common.h: what the four theory programs (numerical checks of the paper's Thm 1, Thm 2 / Lemma 6,
 * Prop. 1 and Thm 4) share and nothing else needs: the common flags (--help, --out, --seed, --profile),
 * the .meta boiler-plate, Gaussian KL, quadrature helpers for moments and TV of 1-D densities given by a
 * log-density callback, and a least-squares log-log slope. Header-only (static functions), so that the
 * Makefile's "one binary per theory/theory_*.c" rule needs no change. */
#ifndef SF_THEORY_COMMON_H
#define SF_THEORY_COMMON_H
#include "cli.h"
#include "io.h"
#include "log.h"
#include <getopt.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { TH_SMOKE = 0, TH_CPU = 1, TH_PAPER = 2 } th_profile;
static const char *const th_profile_names[] = {"smoke", "cpu", "paper", NULL};

typedef struct {
    const char *out;        /* output directory */
    unsigned long seed;
    th_profile profile;
} th_opts;

/* Parse the common flags; extra (program-specific) long options are not used by the theory programs.
 * usage: the --help text (printed to stdout, exit 0). */
static inline void th_parse(int argc, char **argv, th_opts *o, const char *usage)
{
    static const struct option lo[] = {{"help", no_argument, 0, 'h'},
                                       {"out", required_argument, 0, 'o'},
                                       {"seed", required_argument, 0, 's'},
                                       {"profile", required_argument, 0, 'p'},
                                       {0, 0, 0, 0}};
    log_set_prog(argv[0]);
    o->out = "results/theory";
    o->seed = 1;
    o->profile = TH_PAPER;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); exit(0);
        case 'o': o->out = optarg; break;
        case 's': o->seed = (unsigned long)cli_long("--seed", optarg, 0, 2147483647L); break;
        case 'p': o->profile = (th_profile)cli_choice("--profile", optarg, th_profile_names); break;
        case ':': log_die("%s needs a value (see --help)", argv[optind - 1]);
        default: cli_bad_option(argv[optind - 1]);
        }
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    cli_output_dir("--out", o->out);
}

/* Standard usage tail shared by every program. */
#define TH_USAGE_FLAGS                                                                                   \
    "  --out DIR        output directory (default results/theory; created if missing)\n"                \
    "  --seed N         base seed of every random stream (default 1)\n"                                  \
    "  --profile P      smoke | cpu | paper (default paper; smoke takes seconds and is what tests use)\n"  \
    "  --help           this text\n"

static inline void th_meta(io_meta *m, int argc, char **argv, const th_opts *o)
{
    io_meta_init(m, argc, argv);
    io_meta_set(m, "seed", "%lu", o->seed);
    io_meta_set(m, "profile", "%s", th_profile_names[o->profile]);
    io_meta_set(m, "device", "cpu (theory checks run on the CPU only)");
}

/* "<out>/<name>" in a static buffer ring (enough for the few paths alive at once). */
static inline const char *th_path(const th_opts *o, const char *name)
{
    static char buf[8][4096];
    static int next = 0;
    char *b = buf[next];
    next = (next + 1) % 8;
    snprintf(b, sizeof buf[0], "%s/%s", o->out, name);
    return b;
}

/* KL(N(m1, v1) || N(m2, v2)) in 1-D. */
static inline double th_kl_gauss(double m1, double v1, double m2, double v2)
{
    return 0.5 * (log(v2 / v1) + (v1 + (m1 - m2) * (m1 - m2)) / v2 - 1.0);
}

/* A 1-D log-density callback. */
typedef double (*th_logpdf_fn)(void *ctx, double x);   /* same shape as barycenter.h's bary_logpdf_fn */

typedef struct {
    th_logpdf_fn f, g;
    void *fc, *gc;
    int power;          /* moment: integrand x^power exp(f) */
    double shift;       /* moment: (x - shift)^power */
} th_quad_ctx;

static double th_moment_integrand(double x, void *p)
{
    const th_quad_ctx *c = p;
    double lp = c->f(c->fc, x);
    if (!isfinite(lp)) return 0.0;
    return pow(x - c->shift, c->power) * exp(lp);
}

static double th_absdiff_integrand(double x, void *p)
{
    const th_quad_ctx *c = p;
    double a = c->f(c->fc, x), b = c->g(c->gc, x);
    double ea = isfinite(a) ? exp(a) : 0.0, eb = isfinite(b) ? exp(b) : 0.0;
    return fabs(ea - eb);
}

/* Integrate on [lo, hi] cut into TH_PANELS equal panels plus the given breakpoints, GSL QAGP
 * (epsabs 1e-13, epsrel 1e-11); the panels make sure narrow peaks in a wide interval are not missed. */
#define TH_PANELS 64
static inline double th_integrate(gsl_function *F, double lo, double hi, const double *bp, int nbp, double *abserr)
{
    double pts[TH_PANELS + 40];
    int n = 0;
    for (int i = 0; i <= TH_PANELS; i++) pts[n++] = lo + (hi - lo) * i / TH_PANELS;
    for (int i = 0; i < nbp && n < TH_PANELS + 40; i++)
        if (bp[i] > lo && bp[i] < hi) pts[n++] = bp[i];
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && pts[j - 1] > pts[j]; j--) {
            double t = pts[j];
            pts[j] = pts[j - 1];
            pts[j - 1] = t;
        }
    int u = 1; /* drop duplicates: QAGP needs strictly increasing points */
    for (int i = 1; i < n; i++)
        if (pts[i] > pts[u - 1]) pts[u++] = pts[i];
    n = u;
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(4000);
    double r = 0.0, e = 0.0;
    int st = gsl_integration_qagp(F, pts, (size_t)n, 1e-13, 1e-11, 4000, w, &r, &e);
    gsl_integration_workspace_free(w);
    if (st && st != GSL_EROUND) log_info("quadrature status %d (%s), abserr %.3g", st, gsl_strerror(st), e);
    if (abserr) *abserr = e;
    return r;
}

/* Mean and variance of the density exp(f) on [lo, hi] (f normalised). */
static inline void th_moments(th_logpdf_fn f, void *fc, double lo, double hi, const double *bp, int nbp, double *mean,
                              double *var)
{
    th_quad_ctx c = {f, NULL, fc, NULL, 1, 0.0};
    gsl_function F = {th_moment_integrand, &c};
    double m = th_integrate(&F, lo, hi, bp, nbp, NULL);
    c.power = 2;
    c.shift = m;
    double v = th_integrate(&F, lo, hi, bp, nbp, NULL);
    *mean = m;
    *var = v;
}

/* TV(exp f, exp g) = (1/2) int |exp f - exp g| on [lo, hi]. */
static inline double th_tv(th_logpdf_fn f, void *fc, th_logpdf_fn g, void *gc, double lo, double hi, const double *bp,
                           int nbp)
{
    th_quad_ctx c = {f, g, fc, gc, 0, 0.0};
    gsl_function F = {th_absdiff_integrand, &c};
    return 0.5 * th_integrate(&F, lo, hi, bp, nbp, NULL);
}

/* Least-squares slope of log(y) on log(x) over the points with y > 0; returns NAN when fewer than 2. */
static inline double th_loglog_slope(const double *x, const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!(y[i] > 0) || !(x[i] > 0)) continue;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
        m++;
    }
    if (m < 2) return NAN;
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

#endif
