/* bench_scorenet: CPU throughput of the paper's image ScoreNet (common/nn/scorenet.h; paper §5.1, App. G), and
 * the C side of the PyTorch cross-check (tests/reference/run_crosscheck.sh).
 *
 *   bench_scorenet [--train-batch 200] [--eval-batch 500] [--seconds 5] [--only train|forward|vjp] [--bf16]
 *                  [--gemm-time]
 *       train    one DSM training step (forward + backward + Adam + EMA), images/s
 *       forward  score evaluation (t_stride 1), images/s
 *       vjp      score + input gradient grad_x <s, e> (the NLL / Hutchinson cost unit), evaluations/s
 *     Each: one warm-up call, then repeats until --seconds have passed (at least 2 calls). Threads:
 *     OMP_NUM_THREADS (default all cores). --only runs one of the three (for perf). --bf16 repeats them with bf16
 *     convolution GEMMs (scorenet_set_gemm_bf16: operands rounded to bf16, fp32 accumulation) beside fp32. --gemm-time also reports
 *     the share of the threads' time spent inside the convolution GEMMs (an instrumented copy of the table): the
 *     floor no data-movement work can go below. Compare with tests/reference/torch_cpu_bench.py (PyTorch eager fp32).
 *   bench_scorenet --dump DIR
 *       writes DIR/ckpt.safetensors (a ScoreNet with randomised GroupNorm affines), DIR/inputs.safetensors
 *       (x0, t, z, e for 4 samples) and DIR/ours.safetensors (score at x_t, DSM loss, grad.<param>, gx).
 *   bench_scorenet --compare DIR
 *       reads DIR/ours.safetensors and DIR/torch.safetensors (tests/reference/scorenet_ref.py) and prints max
 *       abs / max rel errors of forward, loss, parameter gradients and input gradient against torch fp32 and
 *       torch fp64; exits 1 if ours vs fp64 exceeds 1e-4 relative to the largest reference value. */
#include "backend.h"
#include "gemm_bf16.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "scorenet.h"
#include "sde.h"
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D SCORENET_DIM
#define XB 4   /* cross-check batch */

/* ---------------------------------------------------------------- cross-check: dump */

static void die_err(int rc, const char *err)
{
    if (rc) log_die("%s", err);
}

static int do_dump(const char *dir)
{
    char path[1024], err[512];
    sde s = sde_ve(25.0);
    scorenet *m = scorenet_alloc(&s, XB, 1234);
    nn_params *p = scorenet_params(m);
    rng *r = rng_alloc(4321, 0);
    /* GroupNorm affines away from (1, 0) so they matter in the check */
    for (size_t i = 0; i < p->n; i++) {
        const char *nm = p->t[i].name;
        if (strstr(nm, "gnorm") && strstr(nm, ".weight"))
            for (size_t j = 0; j < p->t[i].numel; j++) p->data[p->t[i].offset + j] = (float)(1.0 + 0.2 * rng_gaussian(r));
        if (strstr(nm, "gnorm") && strstr(nm, ".bias"))
            for (size_t j = 0; j < p->t[i].numel; j++) p->data[p->t[i].offset + j] = (float)(0.2 * rng_gaussian(r));
    }
    memcpy(p->ema, p->data, p->total * sizeof(float));
    float *x0 = mem_new(float, XB * D), *z = mem_new(float, XB * D), *e = mem_new(float, XB * D);
    float t[XB] = {0.02f, 0.3f, 0.7f, 1.0f};
    /* x0: MNIST-normalised range (pixel 0 -> -0.4242, 1 -> 2.8215), a blob per image */
    for (int b = 0; b < XB; b++)
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++) {
                double di = i - 14 - 3 * b % 5, dj = j - 13 + b, v = exp(-(di * di + dj * dj) / 30.0);
                x0[b * D + i * 28 + j] = (float)((v - 0.1307) / 0.3081 + 0.05 * rng_gaussian(r));
            }
    for (size_t i = 0; i < XB * D; i++) {
        z[i] = (float)rng_gaussian(r);
        e[i] = (float)rng_gaussian(r);
    }
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    die_err(scorenet_save(m, path, err, sizeof err), err);

    int64_t shx[4] = {XB, 1, 28, 28}, sht[1] = {XB}, sh1[1] = {1};
    safetensors_writer *w = safetensors_writer_alloc();
    safetensors_writer_add_f32(w, "x0", 4, shx, x0);
    safetensors_writer_add_f32(w, "t", 1, sht, t);
    safetensors_writer_add_f32(w, "z", 4, shx, z);
    safetensors_writer_add_f32(w, "e", 4, shx, e);
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    die_err(safetensors_writer_write(w, path, err, sizeof err), err);
    safetensors_writer_free(w);

    /* our results: loss + parameter gradients, score at x_t, input gradient at x_t */
    nn_params_zero_grad(p);
    float loss = (float)scorenet_loss_at(m, 0, XB, x0, t, z, NULL, 1);
    float *xt = mem_new(float, XB * D), *score = mem_new(float, XB * D), *gx = mem_new(float, XB * D);
    for (int b = 0; b < XB; b++) {
        float sd = (float)sde_std(&s, (double)t[b]);
        for (int i = 0; i < D; i++) xt[b * D + i] = x0[b * D + i] + sd * z[b * D + i];
    }
    scorenet_vjp(m, 0, XB, t, 1, xt, e, score, gx);
    w = safetensors_writer_alloc();
    safetensors_writer_add_f32(w, "score", 4, shx, score);
    safetensors_writer_add_f32(w, "loss", 1, sh1, &loss);
    safetensors_writer_add_f32(w, "gx", 4, shx, gx);
    char (*names)[NN_PARAMS_NAME_MAX + 8] = mem_calloc(p->n, sizeof *names);
    for (size_t i = 0; i < p->n; i++) {
        if (!p->t[i].trainable) continue;
        snprintf(names[i], sizeof names[i], "grad.%s", p->t[i].name);
        safetensors_writer_add_f32(w, names[i], p->t[i].ndim, p->t[i].shape, p->grad + p->t[i].offset);
    }
    snprintf(path, sizeof path, "%s/ours.safetensors", dir);
    die_err(safetensors_writer_write(w, path, err, sizeof err), err);
    safetensors_writer_free(w);
    printf("bench_scorenet: wrote %s/{ckpt,inputs,ours}.safetensors (batch %d, loss %.9g)\n", dir, XB, loss);
    free(names); free(x0); free(z); free(e); free(xt); free(score); free(gx);
    rng_free(r);
    scorenet_free(m);
    return 0;
}

/* ---------------------------------------------------------------- cross-check: compare */

static double *read_d(const safetensors *st, const char *name, size_t *n, const char *path)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t) log_die("%s: tensor '%s' missing", path, name);
    double *out = mem_new(double, t->numel ? t->numel : 1);
    for (size_t i = 0; i < t->numel; i++) {
        if (t->dtype == SAFETENSORS_F32) {
            float f;
            memcpy(&f, (const char *)t->data + 4 * i, 4);
            out[i] = f;
        } else if (t->dtype == SAFETENSORS_F64) {
            memcpy(&out[i], (const char *)t->data + 8 * i, 8);
        } else {
            log_die("%s: tensor '%s' has dtype %s", path, name, safetensors_dtype_name(t->dtype));
        }
    }
    *n = t->numel;
    return out;
}

typedef struct { double max_abs, max_ref, max_rel_elem; } errs;

static void acc_err(errs *e, const double *got, const double *ref, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        if (!(d <= e->max_abs)) e->max_abs = d;   /* NaN propagates */
        e->max_ref = fmax(e->max_ref, fabs(ref[i]));
    }
}

/* element-wise relative error over entries with |ref| >= 1e-3 max |ref| (after acc_err has set max_ref) */
static void acc_rel(errs *e, const double *got, const double *ref, size_t n, double floor_abs)
{
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) >= floor_abs) e->max_rel_elem = fmax(e->max_rel_elem, fabs(got[i] - ref[i]) / fabs(ref[i]));
}

static int do_compare(const char *dir)
{
    char po[1024], pt[1024], err[512];
    snprintf(po, sizeof po, "%s/ours.safetensors", dir);
    snprintf(pt, sizeof pt, "%s/torch.safetensors", dir);
    safetensors *so = safetensors_open(po, err, sizeof err);
    if (!so) log_die("%s", err);
    safetensors *stt = safetensors_open(pt, err, sizeof err);
    if (!stt) log_die("%s", err);
    /* quantities: score, loss, all parameter gradients together, gx */
    const char *qname[4] = {"forward score", "DSM loss", "param grads", "input grad"};
    errs E[4][3];   /* [quantity][ours-vs-f32, ours-vs-f64, f32-vs-f64] */
    memset(E, 0, sizeof E);
    double worst_rel_tensor = 0, tens_abs[64], tens_ref[64];
    char tens_name[64][128];
    int ntens = 0, worst_i = -1;
    for (size_t k = 0; k < safetensors_count(so); k++) {
        const char *nm = safetensors_at(so, k)->name;
        int q = !strcmp(nm, "score") ? 0 : !strcmp(nm, "loss") ? 1 : !strncmp(nm, "grad.", 5) ? 2 : 3;
        char n32[160], n64[160];
        snprintf(n32, sizeof n32, "f32.%s", nm);
        snprintf(n64, sizeof n64, "f64.%s", nm);
        size_t a, b, c;
        double *o = read_d(so, nm, &a, po), *t32 = read_d(stt, n32, &b, pt), *t64 = read_d(stt, n64, &c, pt);
        if (a != b || a != c) log_die("%s: '%s' has %zu / %zu / %zu elements", dir, nm, a, b, c);
        if (q == 2 && ntens < 64) {
            errs one = {0, 0, 0};
            acc_err(&one, o, t64, a);
            tens_abs[ntens] = one.max_abs;
            tens_ref[ntens] = one.max_ref;
            snprintf(tens_name[ntens++], 128, "%s", nm);
        }
        acc_err(&E[q][0], o, t32, a);
        acc_err(&E[q][1], o, t64, a);
        acc_err(&E[q][2], t32, t64, a);
        free(o); free(t32); free(t64);
    }
    /* second pass for element-wise relative errors with a floor of 1e-3 * max |ref| of the quantity */
    for (size_t k = 0; k < safetensors_count(so); k++) {
        const char *nm = safetensors_at(so, k)->name;
        int q = !strcmp(nm, "score") ? 0 : !strcmp(nm, "loss") ? 1 : !strncmp(nm, "grad.", 5) ? 2 : 3;
        char n32[160], n64[160];
        snprintf(n32, sizeof n32, "f32.%s", nm);
        snprintf(n64, sizeof n64, "f64.%s", nm);
        size_t a, b, c;
        double *o = read_d(so, nm, &a, po), *t32 = read_d(stt, n32, &b, pt), *t64 = read_d(stt, n64, &c, pt);
        acc_rel(&E[q][0], o, t32, a, 1e-3 * E[q][0].max_ref);
        acc_rel(&E[q][1], o, t64, a, 1e-3 * E[q][1].max_ref);
        acc_rel(&E[q][2], t32, t64, a, 1e-3 * E[q][2].max_ref);
        free(o); free(t32); free(t64);
    }
    const char *pair[3] = {"ours vs torch-f32", "ours vs torch-f64", "torch-f32 vs torch-f64"};
    printf("%-14s %-24s %12s %12s %14s %14s\n", "quantity", "pair", "max|ref|", "max abs err", "abs/max|ref|",
           "max elem rel*");
    int fail = 0;
    for (int q = 0; q < 4; q++)
        for (int k = 0; k < 3; k++) {
            const errs *e = &E[q][k];
            double rel = e->max_ref > 0 ? e->max_abs / e->max_ref : e->max_abs;
            printf("%-14s %-24s %12.4g %12.3g %14.3g %14.3g\n", qname[q], pair[k], e->max_ref, e->max_abs, rel,
                   e->max_rel_elem);
            if (k == 1 && !(rel <= 1e-4)) fail = 1;
        }
    printf("* element-wise relative error over entries with |ref| >= 1e-3 max|ref| of the quantity\n");
    /* per tensor; tensors whose reference gradient is at rounding level of the largest gradient are "dead"
     * (dense7: a per-channel shift right before GroupNorm(32 groups, 32 channels) is normalised away) */
    for (int i = 0; i < ntens; i++) {
        if (tens_ref[i] < 1e-5 * E[2][1].max_ref) {
            printf("dead tensor (exact gradient 0): %s  max|ref| %.3g  max|ours| <= %.3g\n", tens_name[i], tens_ref[i],
                   tens_abs[i] + tens_ref[i]);
            continue;
        }
        if (tens_abs[i] / tens_ref[i] > worst_rel_tensor) {
            worst_rel_tensor = tens_abs[i] / tens_ref[i];
            worst_i = i;
        }
    }
    printf("worst parameter tensor (ours vs f64, abs/max|ref| within the tensor): %s %.3g\n",
           worst_i >= 0 ? tens_name[worst_i] : "-", worst_rel_tensor);
    printf("crosscheck: %s (criterion: ours vs torch-f64 abs/max|ref| <= 1e-4 for every quantity)\n",
           fail ? "FAIL" : "PASS");
    safetensors_close(so);
    safetensors_close(stt);
    return fail;
}

/* ---------------------------------------------------------------- throughput */

/* --gemm-time: the cpu (or cpu-bf16) table with its GEMM timed. Every convolution GEMM runs inside a batch slice
 * (one thread each), so the summed call times are thread-seconds, comparable with wall time x threads. */
static nn_backend timed_table;
static const nn_backend *timed_base;
static double gemm_thread_sec;
/* per GEMM shape: calls, thread-seconds, multiply-adds (printed by --gemm-time after each measurement) */
typedef struct {
    int tA, tB, M, N, K;
    long calls;
    double sec, fma;
} gemm_shape;
static gemm_shape shapes[96];
static int nshapes;

static void shape_add(int tA, int tB, int M, int N, int K, double dt)
{
#pragma omp critical(bench_shapes)
    {
        int i = 0;
        while (i < nshapes && !(shapes[i].tA == tA && shapes[i].tB == tB && shapes[i].M == M && shapes[i].N == N &&
                                shapes[i].K == K))
            i++;
        if (i < (int)(sizeof shapes / sizeof *shapes)) {
            if (i == nshapes) shapes[nshapes++] = (gemm_shape){tA, tB, M, N, K, 0, 0, 0};
            shapes[i].calls++;
            shapes[i].sec += dt;
            shapes[i].fma += (double)M * N * K;
        }
    }
}

static int by_time(const void *a, const void *b)
{
    const double x = ((const gemm_shape *)a)->sec, y = ((const gemm_shape *)b)->sec;
    return (x < y) - (x > y);
}

/* the shapes that took 90% of the GEMM time, with the rate each reached (GFLOP/s per thread) */
static void shapes_print(void)
{
    qsort(shapes, (size_t)nshapes, sizeof *shapes, by_time);
    double tot = 0, run = 0;
    for (int i = 0; i < nshapes; i++) tot += shapes[i].sec;
    for (int i = 0; i < nshapes && run < 0.9 * tot; i++) {
        const gemm_shape *g = &shapes[i];
        run += g->sec;
        printf("    gemm %c%c M %5d N %5d K %5d: %6ld calls, %5.1f%% of GEMM time, %6.1f GFLOP/s per thread\n",
               g->tA ? 'T' : 'N', g->tB ? 'T' : 'N', g->M, g->N, g->K, g->calls, 100 * g->sec / tot,
               2e-9 * g->fma / g->sec);
    }
    nshapes = 0;
}

static void timed_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc)
{
    const double t0 = omp_get_wtime();
    timed_base->gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const double dt = omp_get_wtime() - t0;
#pragma omp atomic
    gemm_thread_sec += dt;
    shape_add(tA, tB, M, N, K, dt);
}
static const nn_backend *timed_over(const nn_backend *base)
{
    timed_base = base;
    timed_table = *base;
    timed_table.name = "cpu-timed";
    timed_table.gemm = timed_gemm;
    return &timed_table;
}

static double timed_rate(double seconds, size_t per_call, void (*fn)(void *), void *ctx, long *calls)
{
    fn(ctx);   /* warm-up */
    gemm_thread_sec = 0.0;
    nshapes = 0;
    long n = 0;
    double t0 = log_now(), dt;
    do {
        fn(ctx);
        n++;
    } while ((dt = log_now() - t0) < seconds || n < 2);
    *calls = n;
    return (double)n * (double)per_call / dt;
}

/* ", GEMM x% of thread time (y ms per call)" for --gemm-time: the timed calls' GEMM thread-seconds against the
 * wall time of those calls times the threads */
static const char *gemm_share(int on, long calls, size_t per_call, double rate)
{
    static char buf[128];
    if (!on) return "";
    const double wall = (double)calls * (double)per_call / rate, th = omp_get_max_threads();
    if (getenv("SF_BENCH_SHAPES")) shapes_print();
    snprintf(buf, sizeof buf, ", GEMM %.0f%% of thread time, %.1f ms of %.1f per call", 100.0 * gemm_thread_sec / (wall * th),
             1e3 * gemm_thread_sec / th / calls, 1e3 * wall / calls);
    return buf;
}

typedef struct {
    scorenet *m;
    size_t n;
    float *x, *t, *e, *out, *gx;
    rng *r;
    double loss;
} bctx;

static void f_train(void *p)
{
    bctx *c = p;
    c->loss = scorenet_train_step(c->m, c->n, c->x, 1e-5, 1.0, 1e-4, c->r);
}
static void f_fwd(void *p)
{
    bctx *c = p;
    scorenet_forward(c->m, 0, c->n, c->t, 1, c->x, c->out);
}
static void f_vjp(void *p)
{
    bctx *c = p;
    scorenet_vjp(c->m, 0, c->n, c->t, 1, c->x, c->e, c->out, c->gx);
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    size_t tb = 200, eb = 500;
    double secs = 5.0;
    const char *dump = NULL, *cmp = NULL, *only = NULL;
    int bf16 = 0, gtime = 0;
    static const struct option opts[] = {{"train-batch", required_argument, 0, 'b'},
                                         {"eval-batch", required_argument, 0, 'e'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"dump", required_argument, 0, 'd'},
                                         {"compare", required_argument, 0, 'c'},
                                         {"only", required_argument, 0, 'o'},
                                         {"bf16", no_argument, 0, 'f'},
                                         {"gemm-time", no_argument, 0, 'g'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'b': tb = (size_t)strtoul(optarg, NULL, 10); break;
        case 'e': eb = (size_t)strtoul(optarg, NULL, 10); break;
        case 's': secs = strtod(optarg, NULL); break;
        case 'd': dump = optarg; break;
        case 'c': cmp = optarg; break;
        case 'o': only = optarg; break;
        case 'f': bf16 = 1; break;
        case 'g': gtime = 1; break;
        case 'h':
            printf("usage: %s [--train-batch 200] [--eval-batch 500] [--seconds 5] [--only train|forward|vjp] [--bf16] [--gemm-time]"
                   " | --dump DIR"
                   " | --compare DIR\n",
                   argv[0]);
            return 0;
        default: log_die("unknown option (see --help)");
        }
    }
    if (tb == 0 || eb == 0 || !(secs >= 0)) log_die("batches must be >= 1 and --seconds >= 0");
    if (only && strcmp(only, "train") && strcmp(only, "forward") && strcmp(only, "vjp"))
        log_die("--only: expected train, forward or vjp, got '%s'", only);
    if (dump) return do_dump(dump);
    if (cmp) return do_compare(cmp);

    sde s = sde_ve(25.0);
    size_t cap = tb > eb ? tb : eb;
    scorenet *m = scorenet_alloc(&s, cap, 1);
    rng *r = rng_alloc(2, 0);
    bctx c = {m, 0, mem_new(float, cap * D), mem_new(float, cap), mem_new(float, cap * D),
              mem_new(float, cap * D), mem_new(float, cap * D), r, 0};
    for (size_t i = 0; i < cap * D; i++) {
        c.x[i] = (float)(2.0 * rng_uniform(r) - 0.4);
        c.e[i] = (float)rng_gaussian(r);
    }
    for (size_t i = 0; i < cap; i++) c.t[i] = (float)(1e-5 + (1 - 1e-5) * rng_uniform(r));
    printf("bench_scorenet: ScoreNet %zu params, %d threads, workspace %.0f MB (batch %zu)\n",
           scorenet_num_params(m), omp_get_max_threads(), scorenet_activation_bytes(cap) / 1e6, cap);
    long calls;
    const int do_tr = !only || !strcmp(only, "train"), do_fw = !only || !strcmp(only, "forward"),
              do_vj = !only || !strcmp(only, "vjp");
    for (int pass = 0; pass <= bf16; pass++) {
        scorenet_set_gemm_bf16(m, pass);
        if (gtime) scorenet_set_host_table(m, timed_over(pass ? nn_backend_cpu_bf16() : nn_backend_cpu()));
        const char *tag = pass ? " bf16" : "";
        if (pass) printf("bf16 convolution GEMMs (%s kernel):\n", nn_gemm_bf16_kernel());
        c.n = tb;
        if (do_tr) {
            double tr = timed_rate(secs, tb, f_train, &c, &calls);
            printf("train%-5s batch %4zu: %9.1f images/s  (%.1f ms/step, %ld steps, loss %.4g)%s\n", tag, tb, tr,
                   1e3 * tb / tr, calls, c.loss, gemm_share(gtime, calls, tb, tr));
        }
        c.n = eb;
        if (do_fw) {
            double fw = timed_rate(secs, eb, f_fwd, &c, &calls);
            printf("forward%-3s batch %4zu: %9.1f images/s  (%ld calls)%s\n", tag, eb, fw, calls,
                   gemm_share(gtime, calls, eb, fw));
        }
        if (do_vj) {
            double vj = timed_rate(secs, eb, f_vjp, &c, &calls);
            printf("vjp%-7s batch %4zu: %9.1f evals/s   (score + grad_x <s,e>, %ld calls)%s\n", tag, eb, vj, calls,
                   gemm_share(gtime, calls, eb, vj));
        }
    }
    free(c.x); free(c.t); free(c.e); free(c.out); free(c.gx);
    rng_free(r);
    scorenet_free(m);
    return 0;
}
