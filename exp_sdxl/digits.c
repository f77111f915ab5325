/* digits: KL-barycenter sampling versus checkpoint merging on models trained here (paper §5.2 and App. H, in the
 * setting of its Figures 8-10 but with digits; issue 10 item 3). `exp_sdxl --family digits [--profile smoke|cpu]`.
 *
 *  1. Data: MNIST 7s and 9s. The base network trains on a 50:50 pool of the train split; fine-tune "7" on 7s and
 *     fine-tune "9" on 9s taken after the base pool; validation and the noised data of the score gap come from the
 *     test split (50:50). The digit classifier (models/digitnet, as exp_emnist uses it) trains on the train split.
 *  2. Base ScoreNet (the paper's, VE sigma = 25, DSM on t ~ U[1e-5, 1]) through nn/train.h, with Adam, EMA (0.999
 *     with warm-up) and a linear warm-up + cosine learning-rate schedule; then two rank-r LoRA fine-tunes
 *     (models/scorenet_lora.h) on the frozen base. Every network is a safetensors checkpoint whose name carries a
 *     hash of its recipe; a network in training also writes "<checkpoint>.partial" every --ckpt-every seconds and
 *     a killed run resumes inside it with the same draws (as exp_emnist).
 *  3. Sampling (Euler-Maruyama, common/sampler.h), every method from the SAME seeded stream (the same prior draw
 *     and the same noise at every step, so samples are paired seed by seed): the base, each fine-tune, the
 *     barycenter score lambda s_7 + (1 - lambda) s_9 at every step (common/score.h), and the merged network
 *     W0 + w dW_7 + (1 - w) dW_9, for lambda, w in {0, .2, .4, .5, .6, .8, 1}. Class fractions (7, 9, other) by
 *     the classifier's argmax with Wilson 95% intervals, its mean predictive entropy (nats), PNG grids.
 *  4. The Taylor claim: both adapters at LoRA scale s (dW_i -> s dW_i) over a log grid of s. Against ||dW|| =
 *     sqrt(||dW_7||_F^2 + ||dW_9||_F^2) (all adapted tensors): the score gap G = E||s_merge(x,t) - (s_7 + s_9)/2||^2
 *     at lambda = w = 1/2 on noised held-out data (fixed x0, t ~ U[eps, 1], z for every s), its std(t)^2-weighted
 *     form (the DSM weighting), the first-order shift E||(s_7 + s_9)/2 - s_base||^2 for reference, and the mean
 *     seed-paired RMS distance between merged and barycenter samples. Log-log slopes by least squares on the
 *     smaller half of the grid and on all of it, and between neighbours. The merge agrees with the barycenter to
 *     first order in dW, so the gap vector is O(||dW||^2): slope 4 for G, 2 for sqrt(G), 2 for the first-order
 *     shift, and (if the sampler does not amplify it) 2 for the sample distance.
 * Outputs (results/sdxl/, CSV + .meta, atomic): digits_classifier.csv, digits_loss_{base,lora7,lora9}.csv,
 * digits_samples.csv, digits_paired.csv, digits_identities.csv, digits_sweep.csv, digits_slopes.csv,
 * digits_timing.csv, digits_grid_{models,barycenter,merge}.png; digits_*.gp render the figures. */
#include "digits.h"
#include "cli.h"
#include "clip_metric.h"
#include "digitnet.h"
#include "idx.h"
#include "imgrid.h"
#include "io.h"
#include "log.h"
#include "lr_sched.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "sampler.h"
#include "score.h"
#include "scorenet.h"
#include "scorenet_lora.h"
#include "sde.h"
#include "train.h"
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DG_NGRID 7
#define DG_MAX_SCALES 16
#define DG_MEAN 0.1307
#define DG_STD 0.3081
static const double DG_GRID[DG_NGRID] = {0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0};

enum { DG_RNG_SPLIT = 1, DG_RNG_TRAIN, DG_RNG_INIT, DG_RNG_SAMPLE, DG_RNG_GAP, DG_RNG_CLF, DG_RNG_SWEEP };

typedef struct {
    size_t n_train;         /* images */
    int epochs;
    size_t batch;
    double lr;              /* peak; linear warm-up over 5% of the steps, cosine to lr/50 */
} dg_recipe;

typedef struct {
    const char *profile, *out, *data_dir;
    uint64_t seed;
    dg_recipe base, ft;
    size_t n_val;
    size_t rank;
    double alpha;
    double t_lo;
    int clf_epochs;
    size_t clf_train, clf_test;   /* classifier images: train split, test split */
    size_t n_samples;       /* seeds per method */
    int steps;
    double eps;
    size_t grid_cols;       /* seeds shown per grid row */
    size_t n_gap;           /* noised held-out images of the score gap */
    double scales[DG_MAX_SCALES];
    size_t n_scales;
    size_t sweep_samples;
    int sweep_steps;
    double ckpt_every;
    size_t max_batch;
    int threads, quiet;
} dg_config;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: exp_sdxl --family digits [options]\n"
            "KL-barycenter sampling vs checkpoint merging of two LoRA fine-tunes (7s, 9s) of a ScoreNet trained on\n"
            "MNIST 7/9 (paper Sec. 5.2 / App. H on digits), and the Taylor claim measured. Cached and resumable:\n"
            "run the same command again after an interruption.\n"
            "  --family digits       this experiment\n"
            "  --profile P           cpu | smoke (default cpu: about 15 minutes on 2 cores; smoke: seconds)\n"
            "  --out DIR             output directory (default results/sdxl)\n"
            "  --data DIR            MNIST IDX files, raw or .gz (default data/mnist; `make data` fetches them)\n"
            "  --seed S              base seed (default 0)\n"
            "  --samples N           seeds per method (default: profile)\n"
            "  --steps K             Euler-Maruyama steps (default: profile)\n"
            "  --rank R              LoRA rank (default 4; alpha = rank)\n"
            "  --ckpt-every SEC      a network in training saves a resumable checkpoint this often (default 60)\n"
            "  --threads T           OpenMP threads (default: all)\n"
            "  --quiet               no progress output\n"
            "  --help                this text\n");
}

static void profile_apply(dg_config *c)
{
    c->data_dir = "data/mnist";
    c->rank = 4;
    c->t_lo = 1e-5;
    c->eps = 1e-3;
    c->ckpt_every = 60;
    c->max_batch = 64;
    c->grid_cols = 16;
    if (strcmp(c->profile, "smoke") == 0) {
        /* two epochs each, so that a partial checkpoint exists between them (the resume test kills there) */
        c->base = (dg_recipe){128, 2, 32, 2e-3};
        c->ft = (dg_recipe){64, 2, 32, 2e-3};
        c->n_val = 32;
        c->clf_epochs = 1;
        c->clf_train = 1000;
        c->clf_test = 1000;
        c->n_samples = 4;
        c->steps = 10;
        c->grid_cols = 4;
        c->n_gap = 16;
        static const double s[] = {0.0625, 0.25, 1.0};
        memcpy(c->scales, s, sizeof s);
        c->n_scales = 3;
        c->sweep_samples = 2;
        c->sweep_steps = 10;
        c->ckpt_every = 0;
        c->max_batch = 32;
    } else {
        /* sized for about 15 minutes on a 2-core machine (README: measured stage times). The base sees 238,000
         * images (1,870 Adam steps): at 60,000 it drew a classifiable 7 or 9 in 36% of samples. The base and
         * the two fine-tune sets are disjoint and use every 9 of the train split that this allows. */
        c->base = (dg_recipe){7000, 34, 128, 2e-3};
        c->ft = (dg_recipe){2400, 10, 64, 5e-3};
        c->n_val = 256;
        c->clf_epochs = 2;
        c->clf_train = 20000;
        c->clf_test = 10000;
        c->n_samples = 64;
        /* 250 Euler-Maruyama steps: with 60 the same networks drew 55% digits (speckled strokes), with 250 81%
         * (exp_emnist's probe found 100 steps short and nothing gained above 250 either) */
        c->steps = 250;
        c->n_gap = 128;
        /* 1/64 .. 16: the trained strength is s = 1; above it, where the expansion should break */
        for (int i = 0; i < 11; i++) c->scales[i] = ldexp(1.0, i - 6);
        c->n_scales = 11;
        c->sweep_samples = 12;
        c->sweep_steps = 60;   /* the sweep compares two samplers on the same noise: its distances need no more */
    }
    c->alpha = (double)c->rank;
}

static void config_parse(dg_config *c, int argc, char **argv)
{
    enum { O_FAMILY = 256, O_PROFILE, O_OUT, O_DATA, O_SEED, O_SAMPLES, O_STEPS, O_RANK, O_CKPT, O_THREADS, O_QUIET,
           O_HELP };
    static const struct option opts[] = {
        {"family", 1, 0, O_FAMILY},   {"profile", 1, 0, O_PROFILE}, {"out", 1, 0, O_OUT},
        {"data", 1, 0, O_DATA},       {"seed", 1, 0, O_SEED},       {"samples", 1, 0, O_SAMPLES},
        {"steps", 1, 0, O_STEPS},     {"rank", 1, 0, O_RANK},       {"ckpt-every", 1, 0, O_CKPT},
        {"threads", 1, 0, O_THREADS}, {"quiet", 0, 0, O_QUIET},     {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    static const char *const profiles[] = {"cpu", "smoke", NULL};
    static const char *const families[] = {"digits", NULL};
    memset(c, 0, sizeof *c);
    c->out = "results/sdxl";
    c->profile = cli_prescan(argc, argv, "--profile", "cpu");
    c->profile = profiles[cli_choice("--profile", c->profile, profiles)];
    profile_apply(c);
    long rank = -1;
    opterr = 0;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_FAMILY: cli_choice("--family", optarg, families); break;
        case O_PROFILE: break;
        case O_OUT: c->out = optarg; break;
        case O_DATA: c->data_dir = optarg; break;
        case O_SEED: c->seed = (uint64_t)cli_long("--seed", optarg, 0, 0x7fffffffL); break;
        case O_SAMPLES: c->n_samples = (size_t)cli_long("--samples", optarg, 1, 100000); break;
        case O_STEPS: c->steps = (int)cli_long("--steps", optarg, 2, 100000); break;
        case O_RANK: rank = cli_long("--rank", optarg, 1, 256); break;
        case O_CKPT: c->ckpt_every = cli_double_range("--ckpt-every", optarg, 0, 1e9); break;
        case O_THREADS: c->threads = (int)cli_long("--threads", optarg, 1, 1024); break;
        case O_QUIET: c->quiet = 1; break;
        case O_HELP: usage(stdout); exit(0);
        default: cli_bad_option(argv[optind - 1]);
        }
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (rank > 0) c->rank = (size_t)rank, c->alpha = (double)rank;
    if (c->grid_cols > c->n_samples) c->grid_cols = c->n_samples;
    if (c->threads > 0) omp_set_num_threads(c->threads);
    log_set_quiet(c->quiet);
    cli_output_dir("--out", c->out);
}

/* ---------------------------------------------------------------- data */

typedef struct {
    size_t n;
    float *x;          /* [n, 784] normalised */
    uint8_t *y;
} dg_set;

typedef struct {
    dg_set base, ft7, ft9, val, gap, clf_train, clf_test;
} dg_data;

static void set_from(dg_set *s, const idx_images *img, const idx_labels *lab, const size_t *idx, size_t n)
{
    s->n = n;
    s->x = mem_new(float, n * SCORENET_DIM);
    s->y = mem_new(uint8_t, n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = img->pixels + idx[i] * SCORENET_DIM;
        for (size_t d = 0; d < SCORENET_DIM; d++)
            s->x[i * SCORENET_DIM + d] = (float)(((double)p[d] / 255.0 - DG_MEAN) / DG_STD);
        s->y[i] = lab->labels[idx[i]];
    }
}

static void set_free(dg_set *s)
{
    free(s->x);
    free(s->y);
}

/* indices of class c in lab, shuffled by r */
static size_t *class_list(const idx_labels *lab, int cls, size_t *n, rng *r)
{
    size_t *idx = mem_new(size_t, lab->n > 0 ? lab->n : 1), k = 0;
    for (size_t i = 0; i < lab->n; i++)
        if (lab->labels[i] == cls) idx[k++] = i;
    rng_shuffle(r, idx, k);
    *n = k;
    return idx;
}

/* n images alternating 7, 9, 7, ... from the two lists starting at *o7, *o9 */
static size_t *interleave(const size_t *l7, size_t *o7, const size_t *l9, size_t *o9, size_t n)
{
    size_t *idx = mem_new(size_t, n);
    for (size_t i = 0; i < n; i++) idx[i] = i % 2 == 0 ? l7[(*o7)++] : l9[(*o9)++];
    return idx;
}

static void data_load(const dg_config *c, dg_data *d)
{
    char err[1024];
    idx_images tr, te;
    idx_labels trl, tel;
    if (idx_load_split(c->data_dir, "mnist", 1, &tr, &trl, err, sizeof err) ||
        idx_load_split(c->data_dir, "mnist", 0, &te, &tel, err, sizeof err))
        log_die("%s (run `make data` to fetch MNIST, or pass --data DIR)", err);
    if (tr.rows != 28 || tr.cols != 28 || te.rows != 28 || te.cols != 28)
        log_die("%s: images are not 28x28", c->data_dir);
    rng *r = rng_alloc(c->seed, rng_stream_id(DG_RNG_SPLIT, 0));
    size_t n7, n9, m7, m9, o7 = 0, o9 = 0, p7 = 0, p9 = 0;
    size_t *l7 = class_list(&trl, 7, &n7, r), *l9 = class_list(&trl, 9, &n9, r);
    size_t *t7 = class_list(&tel, 7, &m7, r), *t9 = class_list(&tel, 9, &m9, r);
    size_t need7 = (c->base.n_train + 1) / 2 + c->ft.n_train, need9 = c->base.n_train / 2 + c->ft.n_train;
    if (need7 > n7 || need9 > n9)
        log_die("%s: the base pool and fine-tunes need %zu 7s and %zu 9s, the train split holds %zu and %zu",
                c->data_dir, need7, need9, n7, n9);
    if ((c->n_val + c->n_gap + 1) / 2 > (m7 < m9 ? m7 : m9))
        log_die("%s: the test split holds too few 7s/9s for %zu val + %zu gap images", c->data_dir, c->n_val,
                c->n_gap);
    size_t *ib = interleave(l7, &o7, l9, &o9, c->base.n_train);
    set_from(&d->base, &tr, &trl, ib, c->base.n_train);
    set_from(&d->ft7, &tr, &trl, l7 + o7, c->ft.n_train);
    set_from(&d->ft9, &tr, &trl, l9 + o9, c->ft.n_train);
    size_t *iv = interleave(t7, &p7, t9, &p9, c->n_val), *ig = interleave(t7, &p7, t9, &p9, c->n_gap);
    set_from(&d->val, &te, &tel, iv, c->n_val);
    set_from(&d->gap, &te, &tel, ig, c->n_gap);
    /* the classifier: the train split's first clf_train images (all ten classes) and the whole test split */
    size_t nc = c->clf_train < tr.n ? c->clf_train : tr.n;
    size_t *ic = mem_new(size_t, tr.n > te.n ? tr.n : te.n);
    for (size_t i = 0; i < (tr.n > te.n ? tr.n : te.n); i++) ic[i] = i;
    set_from(&d->clf_train, &tr, &trl, ic, nc);
    set_from(&d->clf_test, &te, &tel, ic, c->clf_test < te.n ? c->clf_test : te.n);
    free(ic);
    free(ib);
    free(iv);
    free(ig);
    free(l7);
    free(l9);
    free(t7);
    free(t9);
    rng_free(r);
    idx_images_free(&tr);
    idx_images_free(&te);
    idx_labels_free(&trl);
    idx_labels_free(&tel);
}

static void data_free(dg_data *d)
{
    set_free(&d->base);
    set_free(&d->ft7);
    set_free(&d->ft9);
    set_free(&d->val);
    set_free(&d->gap);
    set_free(&d->clf_train);
    set_free(&d->clf_test);
}

/* ---------------------------------------------------------------- checkpoints and training */

static char *dg_path(const dg_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *dg_path(const dg_config *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = io_vpath(c->out, fmt, ap);
    va_end(ap);
    return p;
}

static void recipe_string(const dg_config *c, const char *what, char *buf, size_t len)
{
    snprintf(buf, len,
             "digits %s data=%s seed=%llu base=%zu/%d/%zu/%.9g ft=%zu/%d/%zu/%.9g val=%zu rank=%zu alpha=%.9g "
             "tlo=%.9g",
             what, c->data_dir, (unsigned long long)c->seed, c->base.n_train, c->base.epochs, c->base.batch,
             c->base.lr, c->ft.n_train, c->ft.epochs, c->ft.batch, c->ft.lr, c->n_val, c->rank, c->alpha, c->t_lo);
}

static char *model_path(const dg_config *c, const char *what)
{
    char recipe[1024];
    recipe_string(c, what, recipe, sizeof recipe);
    return dg_path(c, "ckpt/digits_%s_%016llx.safetensors", what, io_hash64(recipe));
}

typedef struct {
    scorenet *net;          /* the base in training, or NULL */
    scorenet_lora *lora;    /* a fine-tune in training, or NULL */
    const char *path;
} partial_ctx;

static void save_partial(void *ctx, const train_progress *p)
{
    partial_ctx *k = ctx;
    char err[1024];
    int rc = k->net ? scorenet_save_training(k->net, p, k->path, err, sizeof err)
                    : scorenet_lora_save(k->lora, p, k->path, err, sizeof err);
    if (rc) log_die("%s", err);
    /* test hook (tests/test_exp_digits.sh): die like a SIGKILL right after the first in-training checkpoint */
    if (getenv("DG_TEST_DIE_AFTER_CHECKPOINT")) _exit(137);
}

static void write_loss_csv(const dg_config *c, const char *label, const train_result *res, const io_meta *meta)
{
    char *path = dg_path(c, "digits_loss_%s.csv", label);
    train_result_write_csv(res, path, meta);
    free(path);
}

/* Runs train.h's loop on model tm with recipe p; st_resume: an open partial checkpoint to continue from. */
static void run_training(const dg_config *c, train_model tm, partial_ctx *pc, const dg_recipe *p, const dg_set *tr,
                         const dg_set *va, uint64_t stream, const char *label, const safetensors *st_resume,
                         const io_meta *meta)
{
    train_config tc = train_config_default();
    tc.max_epochs = p->epochs;
    tc.batch = p->batch < tr->n ? p->batch : tr->n;
    tc.val_batch = tc.batch < va->n ? tc.batch : va->n;
    tc.lr = p->lr;
    tc.t_lo = c->t_lo;
    tc.t_hi = 1.0;
    tc.patience = 1 << 30;   /* a fixed budget of epochs: no early stopping, the last epoch's EMA is kept */
    tc.keep = TRAIN_KEEP_PAPER;
    tc.progress = !c->quiet;
    tc.label = label;
    tc.checkpoint = save_partial;
    tc.checkpoint_ctx = pc;
    tc.checkpoint_every = c->ckpt_every;
    long per_epoch = (long)((tr->n + tc.batch - 1) / tc.batch);
    /* linear warm-up over the first 5% of the steps from lr/10, then cosine from lr to lr/50 at the last step */
    const long total = per_epoch * p->epochs;
    nn_lr_sched_model sc = {tm, {total / 20 > 1 ? total / 20 : 1, 0.1, 1, 0.02, total}, 0};
    train_model wrapped = nn_lr_sched_wrap(&sc);
    train_progress resume;
    char err[1024];
    if (st_resume) {
        if (train_progress_read(&resume, st_resume, &tc, tr->n, va->n, pc->path, err, sizeof err) != 0)
            log_die("%s (delete it to restart this network)", err);
        tc.resume = &resume;
        sc.step = (long)resume.epochs_done * per_epoch;
        log_info("%s: resuming from %s after epoch %d", label, pc->path, resume.epochs_done);
    }
    rng *r = rng_alloc(c->seed, stream);
    train_result res;
    double t0 = log_now();
    if (train_run(&wrapped, &tc, tr->n, tr->x, va->n, va->x, r, &res) != TRAIN_OK)
        log_die("%s: non-finite %s loss at epoch %d (try a smaller learning rate)", label, res.what, res.bad_epoch);
    log_info("%s: %d epochs, %ld steps in %.1f s, last EMA val loss %.2f", label, res.epochs_run, sc.step,
             log_now() - t0, res.ema_val_loss[res.epochs_run - 1]);
    write_loss_csv(c, label, &res, meta);
    train_result_free(&res);
    if (st_resume) train_progress_free(&resume);
    rng_free(r);
}

static char *partial_of(const char *path)
{
    size_t n = strlen(path) + sizeof ".partial";
    char *p = mem_alloc(n);
    snprintf(p, n, "%s.partial", path);
    return p;
}

static void train_base(const dg_config *c, const dg_data *d, const io_meta *meta)
{
    char *path = model_path(c, "base"), *partial = partial_of(path), err[1024];
    sde ve = sde_ve(25.0);
    if (access(path, F_OK) != 0) {
        scorenet *m;
        safetensors *st = NULL;
        if (access(partial, F_OK) == 0) {
            m = scorenet_load_training(partial, &ve, c->max_batch, &st);
        } else {
            m = scorenet_alloc(&ve, c->max_batch, c->seed ^ rng_stream_id(DG_RNG_INIT, 0));
        }
        partial_ctx pc = {m, NULL, partial};
        run_training(c, scorenet_train_model(m), &pc, &c->base, &d->base, &d->val, rng_stream_id(DG_RNG_TRAIN, 0),
                     "base", st, meta);
        if (st) safetensors_close(st);
        if (scorenet_save(m, path, err, sizeof err) != 0) log_die("%s", err);
        unlink(partial);
        scorenet_free(m);
    }
    free(path);
    free(partial);
}

static scorenet *load_base(const dg_config *c, size_t max_batch)
{
    char *path = model_path(c, "base"), err[1024];
    sde ve = sde_ve(25.0);
    scorenet *m = scorenet_load_weights(path, &ve, max_batch, 0, err, sizeof err);
    if (!m) log_die("%s (delete it to train it again)", err);
    free(path);
    return m;
}

/* the fine-tune on digit `cls`: trained if its checkpoint is missing; returned loaded */
static scorenet_lora *lora_get(const dg_config *c, const dg_data *d, const scorenet *base, int cls,
                               const io_meta *meta)
{
    char what[16], err[1024];
    snprintf(what, sizeof what, "lora%d", cls);
    char *path = model_path(c, what), *partial = partial_of(path);
    scorenet_lora *l = scorenet_lora_alloc(base, c->rank, c->alpha, c->max_batch,
                                           c->seed ^ rng_stream_id(DG_RNG_INIT, (uint64_t)cls));
    if (access(path, F_OK) == 0) {
        safetensors *st = safetensors_open(path, err, sizeof err);
        if (!st || scorenet_lora_read(l, st, path, 0, err, sizeof err))
            log_die("%s (delete it to train it again)", err);
        safetensors_close(st);
    } else {
        safetensors *st = NULL;
        if (access(partial, F_OK) == 0) {
            st = safetensors_open(partial, err, sizeof err);
            if (!st || scorenet_lora_read(l, st, partial, 1, err, sizeof err))
                log_die("%s (delete it to restart this network)", err);
        }
        partial_ctx pc = {NULL, l, partial};
        run_training(c, scorenet_lora_train_model(l), &pc, &c->ft, cls == 7 ? &d->ft7 : &d->ft9, &d->val,
                     rng_stream_id(DG_RNG_TRAIN, (uint64_t)cls), what, st, meta);
        if (st) safetensors_close(st);
        if (scorenet_lora_save(l, NULL, path, err, sizeof err) != 0) log_die("%s", err);
        unlink(partial);
    }
    free(path);
    free(partial);
    return l;
}

static digitnet *classifier_get(const dg_config *c, const dg_data *d, const io_meta *meta)
{
    char recipe[512], err[1024];
    snprintf(recipe, sizeof recipe, "digits clf data=%s seed=%llu epochs=%d n=%zu", c->data_dir,
             (unsigned long long)c->seed, c->clf_epochs, c->clf_train);
    char *path = dg_path(c, "ckpt/digits_classifier_%016llx.safetensors", io_hash64(recipe));
    digitnet *net;
    if (access(path, F_OK) == 0) {
        net = digitnet_load(path, c->max_batch, err, sizeof err);
        if (!net) log_die("%s (delete it to train it again)", err);
    } else {
        net = digitnet_alloc(c->max_batch, c->seed ^ rng_stream_id(DG_RNG_CLF, 0));
        digitnet_train_opts o = digitnet_train_opts_default();
        o.epochs = c->clf_epochs;
        o.progress = !c->quiet;
        rng *r = rng_alloc(c->seed, rng_stream_id(DG_RNG_CLF, 1));
        double t0 = log_now();
        double *loss = mem_new(double, (size_t)o.epochs);
        digitnet_train(net, d->clf_train.n, d->clf_train.x, d->clf_train.y, &o, r, loss);
        double secs = log_now() - t0;
        double acc = digitnet_accuracy(net, d->clf_test.n, d->clf_test.x, d->clf_test.y);
        log_info("classifier: %d epochs on %zu images in %.1f s, test accuracy %.2f%%", o.epochs, d->clf_train.n,
                 secs, 100 * acc);
        if (digitnet_save(net, path, err, sizeof err) != 0) log_die("%s", err);
        char *csv_path = dg_path(c, "digits_classifier.csv");
        io_csv *csv = io_csv_open(csv_path, "train_images,test_images,epochs,final_train_loss,test_accuracy,seconds");
        io_csv_row(csv, "%zu,%zu,%d,%.6g,%.6f,%.1f", d->clf_train.n, d->clf_test.n, o.epochs, loss[o.epochs - 1], acc,
                   secs);
        io_csv_commit(csv, meta);
        free(csv_path);
        free(loss);
        rng_free(r);
    }
    free(path);
    return net;
}

/* ---------------------------------------------------------------- sampling */

/* Samples x[n, 784] of the score sum_i w_i s_i (k networks; k = 1 and w = 1: plain sampling), from the one
 * seeded stream every method shares. */
static void sample_with(const dg_config *c, scorenet *const *nets, const double *w, size_t k, size_t n, int steps,
                        uint64_t stream, float *x, const char *label)
{
    score_model sm[2];
    const score_model *ms[2];
    for (size_t i = 0; i < k; i++) sm[i] = scorenet_score_model(nets[i], 0), ms[i] = &sm[i];
    score_bary *b = score_bary_alloc(k, ms, w);
    score_model s = score_bary_model(b);
    sampler_opts o = sampler_opts_paper();
    o.steps = steps;
    o.eps = c->eps;
    o.progress = c->quiet ? NULL : label;
    rng *r = rng_alloc(c->seed, stream);
    sampler_em(scorenet_sde(nets[0]), &s, n, x, &o, r);
    rng_free(r);
    score_bary_free(b);
}

typedef struct {
    long k7, k9, kother;
    double entropy;
} dg_classes;

static dg_classes classify(digitnet *clf, size_t n, const float *x)
{
    float *p = mem_new(float, n * DIGITNET_CLASSES);
    digitnet_probs(clf, n, x, p);
    dg_classes r = {0, 0, 0, 0.0};
    for (size_t i = 0; i < n; i++) {
        const float *q = p + i * DIGITNET_CLASSES;
        int am = 0;
        double h = 0.0;
        for (int j = 0; j < DIGITNET_CLASSES; j++) {
            if (q[j] > q[am]) am = j;
            if (q[j] > 0) h -= (double)q[j] * log((double)q[j]);
        }
        if (am == 7) r.k7++;
        else if (am == 9) r.k9++;
        else r.kother++;
        r.entropy += h / (double)n;
    }
    free(p);
    return r;
}

static void ci(long k, long n, double *lo, double *hi)
{
    if (clip_metric_ci(k, n, 0.95, CLIP_CI_WILSON, lo, hi)) *lo = *hi = NAN;
}

static void samples_row(io_csv *csv, const char *method, double param, size_t n, dg_classes cl, double secs)
{
    double l7, h7, l9, h9, lo, ho;
    ci(cl.k7, (long)n, &l7, &h7);
    ci(cl.k9, (long)n, &l9, &h9);
    ci(cl.kother, (long)n, &lo, &ho);
    io_csv_row(csv, "%s,%.2f,%zu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f", method, param, n,
               (double)cl.k7 / n, l7, h7, (double)cl.k9 / n, l9, h9, (double)cl.kother / n, lo, ho, cl.entropy, secs);
    log_info("%-10s %.1f: 7 %.3f  9 %.3f  other %.3f  entropy %.3f (%.1f s)", method, param, (double)cl.k7 / n,
             (double)cl.k9 / n, (double)cl.kother / n, cl.entropy, secs);
}

/* mean over the n pairs of the RMS pixel difference (normalised units), and the largest |difference| */
static double paired_dist(size_t n, const float *a, const float *b, double *maxabs)
{
    double s = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double q = 0.0;
        for (size_t d = 0; d < SCORENET_DIM; d++) {
            double e = (double)a[i * SCORENET_DIM + d] - b[i * SCORENET_DIM + d];
            q += e * e;
            if (fabs(e) > m) m = fabs(e);
        }
        s += sqrt(q / SCORENET_DIM);
    }
    if (maxabs) *maxabs = m;
    return s / (double)n;
}

static void write_grid(const dg_config *c, const char *name, size_t rows, float *const *sets)
{
    size_t g = c->grid_cols;
    float *img = mem_new(float, rows * g * SCORENET_DIM);
    for (size_t r = 0; r < rows; r++) memcpy(img + r * g * SCORENET_DIM, sets[r], g * SCORENET_DIM * sizeof(float));
    char *path = dg_path(c, "%s", name), err[1024];
    if (imgrid_write_png(path, rows * g, g, 28, 28, img, (float)(-DG_MEAN / DG_STD), (float)((1 - DG_MEAN) / DG_STD),
                         1, err, sizeof err))
        log_die("%s", err);
    free(path);
    free(img);
}

/* ---------------------------------------------------------------- the Taylor sweep */

/* least-squares slope of log y on log x over points [i0, i1) with finite positive values; NAN if < 2 */
static double loglog_slope(const double *x, const double *y, size_t i0, size_t i1, double *icpt)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t n = 0;
    for (size_t i = i0; i < i1; i++) {
        if (!(x[i] > 0 && y[i] > 0 && isfinite(y[i]))) continue;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly, n++;
    }
    if (n < 2) return *icpt = NAN, NAN;
    double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *icpt = (sy - b * sx) / n;
    return b;
}

int exp_digits_main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    double g0 = log_now();
    dg_config c;
    config_parse(&c, argc, argv);
    io_meta meta;
    io_meta_init(&meta, argc, argv);
    io_meta_set(&meta, "experiment", "digits: KL-barycenter sampling vs checkpoint merging (paper 5.2 / App. H)");
    io_meta_set(&meta, "profile", "%s", c.profile);
    io_meta_set(&meta, "seed", "%llu", (unsigned long long)c.seed);
    io_meta_set(&meta, "device", "cpu (%d threads)", omp_get_max_threads());
    io_meta_set(&meta, "data", "%s (MNIST 7/9)", c.data_dir);
    io_meta_set(&meta, "sde", "VE(sigma=25)");
    io_meta_set(&meta, "base_training", "n=%zu (50:50 7/9) epochs=%d batch=%zu lr=%g warm-up+cosine EMA 0.999",
                c.base.n_train, c.base.epochs, c.base.batch, c.base.lr);
    io_meta_set(&meta, "lora", "rank=%zu alpha=%g on every Linear/conv weight; n=%zu per digit epochs=%d batch=%zu "
                "lr=%g", c.rank, c.alpha, c.ft.n_train, c.ft.epochs, c.ft.batch, c.ft.lr);
    io_meta_set(&meta, "sampler", "Euler-Maruyama steps=%d eps=%g final mean; %zu seeds per method, the same noise "
                "for every method", c.steps, c.eps, c.n_samples);
    char *ckpt = dg_path(&c, "ckpt");
    cli_output_dir("--out", ckpt);
    io_remove_stale_tmp(c.out);
    io_remove_stale_tmp(ckpt);
    free(ckpt);

    double tl[8];
    int nt = 0;
    double t = log_now();
    dg_data d;
    memset(&d, 0, sizeof d);
    data_load(&c, &d);
    digitnet *clf = classifier_get(&c, &d, &meta);
    tl[nt++] = log_now() - t, t = log_now();
    train_base(&c, &d, &meta);
    tl[nt++] = log_now() - t, t = log_now();
    scorenet *base = load_base(&c, c.max_batch);
    scorenet_lora *l7 = lora_get(&c, &d, base, 7, &meta);
    tl[nt++] = log_now() - t, t = log_now();
    scorenet_lora *l9 = lora_get(&c, &d, base, 9, &meta);
    tl[nt++] = log_now() - t, t = log_now();

    /* ---- the comparison at LoRA scale 1 */
    sde ve = sde_ve(25.0);
    const size_t T = scorenet_lora_adapter(l7)->base_total, N = c.n_samples, D = N * SCORENET_DIM;
    const float *W0 = scorenet_lora_base_weights(l7);
    float *d7 = mem_new(float, T), *d9 = mem_new(float, T);
    scorenet_lora_delta(l7, 0, 1.0, d7);
    scorenet_lora_delta(l9, 0, 1.0, d9);
    const float *dd[2] = {d7, d9};
    scorenet *n7 = scorenet_alloc(&ve, c.max_batch, 1), *n9 = scorenet_alloc(&ve, c.max_batch, 1),
             *nm = scorenet_alloc(&ve, c.max_batch, 1);
    double one = 1.0;
    scorenet_lora_set_weights(n7, W0, 1, dd, &one);
    scorenet_lora_set_weights(n9, W0, 1, dd + 1, &one);
    const uint64_t stream = rng_stream_id(DG_RNG_SAMPLE, 0);
    float *x_base = mem_new(float, D), *x7 = mem_new(float, D), *x9 = mem_new(float, D);
    float *xb[DG_NGRID], *xm[DG_NGRID];
    char *spath = dg_path(&c, "digits_samples.csv");
    io_csv *scsv = io_csv_open(spath, "method,param,n,frac7,frac7_lo,frac7_hi,frac9,frac9_lo,frac9_hi,frac_other,"
                                      "frac_other_lo,frac_other_hi,mean_entropy,seconds");
    double t1 = log_now();
    sample_with(&c, &base, &one, 1, N, c.steps, stream, x_base, "base");
    samples_row(scsv, "base", 1.0, N, classify(clf, N, x_base), log_now() - t1);
    t1 = log_now();
    sample_with(&c, &n7, &one, 1, N, c.steps, stream, x7, "finetune7");
    samples_row(scsv, "finetune7", 1.0, N, classify(clf, N, x7), log_now() - t1);
    t1 = log_now();
    sample_with(&c, &n9, &one, 1, N, c.steps, stream, x9, "finetune9");
    samples_row(scsv, "finetune9", 1.0, N, classify(clf, N, x9), log_now() - t1);
    scorenet *pair[2] = {n7, n9};
    for (int g = 0; g < DG_NGRID; g++) {
        double lam[2] = {DG_GRID[g], 1.0 - DG_GRID[g]};
        char label[32];
        snprintf(label, sizeof label, "barycenter %.1f", lam[0]);
        xb[g] = mem_new(float, D);
        t1 = log_now();
        sample_with(&c, pair, lam, 2, N, c.steps, stream, xb[g], label);
        samples_row(scsv, "barycenter", lam[0], N, classify(clf, N, xb[g]), log_now() - t1);
        snprintf(label, sizeof label, "merge %.1f", lam[0]);
        scorenet_lora_set_weights(nm, W0, 2, dd, lam);
        xm[g] = mem_new(float, D);
        t1 = log_now();
        sample_with(&c, &nm, &one, 1, N, c.steps, stream, xm[g], label);
        samples_row(scsv, "merge", lam[0], N, classify(clf, N, xm[g]), log_now() - t1);
    }
    io_csv_commit(scsv, &meta);
    free(spath);

    /* paired distances and the exact identities the tests assert */
    char *ppath = dg_path(&c, "digits_paired.csv");
    io_csv *pcsv = io_csv_open(ppath, "lambda,dist_bary_merge,dist_bary_base,dist_merge_base,dist_bary_ft7,dist_bary_ft9");
    for (int g = 0; g < DG_NGRID; g++)
        io_csv_row(pcsv, "%.2f,%.6g,%.6g,%.6g,%.6g,%.6g", DG_GRID[g], paired_dist(N, xb[g], xm[g], NULL),
                   paired_dist(N, xb[g], x_base, NULL), paired_dist(N, xm[g], x_base, NULL),
                   paired_dist(N, xb[g], x7, NULL), paired_dist(N, xb[g], x9, NULL));
    io_csv_commit(pcsv, &meta);
    free(ppath);
    char *ipath = dg_path(&c, "digits_identities.csv");
    io_csv *icsv = io_csv_open(ipath, "check,max_abs_diff");
    double mx;
    paired_dist(N, xb[DG_NGRID - 1], x7, &mx);
    io_csv_row(icsv, "barycenter_lambda1_vs_finetune7,%.9g", mx);
    paired_dist(N, xm[DG_NGRID - 1], x7, &mx);
    io_csv_row(icsv, "merge_w1_vs_finetune7,%.9g", mx);
    paired_dist(N, xb[0], x9, &mx);
    io_csv_row(icsv, "barycenter_lambda0_vs_finetune9,%.9g", mx);
    paired_dist(N, xm[0], x9, &mx);
    io_csv_row(icsv, "merge_w0_vs_finetune9,%.9g", mx);
    paired_dist(N, xb[3], xm[3], &mx);
    io_csv_row(icsv, "barycenter_vs_merge_half (not zero),%.9g", mx);
    io_csv_commit(icsv, &meta);
    free(ipath);
    {
        float *rows3[3] = {x_base, x7, x9};
        write_grid(&c, "digits_grid_models.png", 3, rows3);
        write_grid(&c, "digits_grid_barycenter.png", DG_NGRID, xb);
        write_grid(&c, "digits_grid_merge.png", DG_NGRID, xm);
    }
    tl[nt++] = log_now() - t, t = log_now();

    /* ---- the Taylor sweep over the LoRA scale */
    const size_t G = d.gap.n, NS = c.sweep_samples;
    float *tg = mem_new(float, G), *zg = mem_new(float, G * SCORENET_DIM), *xg = mem_new(float, G * SCORENET_DIM);
    {
        rng *r = rng_alloc(c.seed, rng_stream_id(DG_RNG_GAP, 0));
        for (size_t i = 0; i < G; i++) tg[i] = (float)(c.eps + (1.0 - c.eps) * rng_uniform(r));
        rng_gaussian_fill(r, zg, G * SCORENET_DIM);
        rng_free(r);
        for (size_t i = 0; i < G; i++) {
            float sd = (float)sde_std(&ve, tg[i]);
            for (size_t k = 0; k < SCORENET_DIM; k++)
                xg[i * SCORENET_DIM + k] = d.gap.x[i * SCORENET_DIM + k] + sd * zg[i * SCORENET_DIM + k];
        }
    }
    float *s_base = mem_new(float, G * SCORENET_DIM), *s7 = mem_new(float, G * SCORENET_DIM),
          *s9 = mem_new(float, G * SCORENET_DIM), *sm = mem_new(float, G * SCORENET_DIM);
    scorenet_forward(base, 0, G, tg, 1, xg, s_base);
    float *e7 = mem_new(float, T), *e9 = mem_new(float, T);
    float *ys_b = mem_new(float, NS * SCORENET_DIM), *ys_m = mem_new(float, NS * SCORENET_DIM),
          *ys_0 = mem_new(float, NS * SCORENET_DIM);
    sample_with(&c, &base, &one, 1, NS, c.sweep_steps, rng_stream_id(DG_RNG_SWEEP, 0), ys_0, "sweep base");
    double nrm[DG_MAX_SCALES], diffn[DG_MAX_SCALES], gap[DG_MAX_SCALES], gapw[DG_MAX_SCALES], shift[DG_MAX_SCALES],
        sdist[DG_MAX_SCALES], sshift[DG_MAX_SCALES], rgap[DG_MAX_SCALES];
    for (size_t k = 0; k < c.n_scales; k++) {
        double s = c.scales[k], half[2] = {0.5, 0.5};
        scorenet_lora_delta(l7, 0, s, e7);
        scorenet_lora_delta(l9, 0, s, e9);
        double a = lora_adapter_delta_norm(T, e7), b = lora_adapter_delta_norm(T, e9), q = 0.0;
        for (size_t j = 0; j < T; j++) q += ((double)e7[j] - e9[j]) * ((double)e7[j] - e9[j]);
        nrm[k] = sqrt(a * a + b * b);
        diffn[k] = sqrt(q);
        const float *ee[2] = {e7, e9};
        scorenet_lora_set_weights(n7, W0, 1, ee, &one);
        scorenet_lora_set_weights(n9, W0, 1, ee + 1, &one);
        scorenet_lora_set_weights(nm, W0, 2, ee, half);
        scorenet_forward(n7, 0, G, tg, 1, xg, s7);
        scorenet_forward(n9, 0, G, tg, 1, xg, s9);
        scorenet_forward(nm, 0, G, tg, 1, xg, sm);
        double g1 = 0, gw = 0, sh = 0;
        for (size_t i = 0; i < G; i++) {
            double sd = sde_std(&ve, tg[i]), gi = 0, si = 0;
            for (size_t j = 0; j < SCORENET_DIM; j++) {
                size_t o = i * SCORENET_DIM + j;
                double bary = 0.5 * s7[o] + 0.5 * s9[o];
                gi += (sm[o] - bary) * (sm[o] - bary);
                si += (bary - s_base[o]) * (bary - s_base[o]);
            }
            g1 += gi / G, gw += sd * sd * gi / G, sh += si / G;
        }
        gap[k] = g1, gapw[k] = gw, shift[k] = sh;
        rgap[k] = sqrt(g1);
        char label[48];
        snprintf(label, sizeof label, "sweep s=%g", s);
        sample_with(&c, pair, half, 2, NS, c.sweep_steps, rng_stream_id(DG_RNG_SWEEP, 0), ys_b, label);
        sample_with(&c, &nm, &one, 1, NS, c.sweep_steps, rng_stream_id(DG_RNG_SWEEP, 0), ys_m, label);
        sdist[k] = paired_dist(NS, ys_b, ys_m, NULL);
        sshift[k] = paired_dist(NS, ys_b, ys_0, NULL);
        log_info("scale %-8g ||dW|| %.4g  gap %.4g  weighted %.4g  shift %.4g  sample dist %.4g (bary-base %.4g)", s,
                 nrm[k], gap[k], gapw[k], shift[k], sdist[k], sshift[k]);
    }
    char *wpath = dg_path(&c, "digits_sweep.csv");
    io_csv *wcsv = io_csv_open(wpath, "scale,dw_norm,dw_diff_norm,score_gap_sq,score_gap_rms,score_gap_sq_weighted,"
                                      "first_order_shift_sq,sample_dist_merge_bary,sample_dist_bary_base,"
                                      "local_slope_gap_sq,local_slope_sample_dist");
    for (size_t k = 0; k < c.n_scales; k++) {
        double ls_g = NAN, ls_s = NAN, ic;
        if (k > 0) {
            ls_g = loglog_slope(nrm, gap, k - 1, k + 1, &ic);
            ls_s = loglog_slope(nrm, sdist, k - 1, k + 1, &ic);
        }
        io_csv_row(wcsv, "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.4f,%.4f", c.scales[k], nrm[k], diffn[k],
                   gap[k], rgap[k], gapw[k], shift[k], sdist[k], sshift[k], ls_g, ls_s);
    }
    io_csv_commit(wcsv, &meta);
    free(wpath);
    /* slopes on the smaller half of the grid (where the expansion should hold) and on all of it */
    char *lpath = dg_path(&c, "digits_slopes.csv");
    io_csv *lcsv = io_csv_open(lpath, "quantity,range,scale_lo,scale_hi,points,slope,intercept,first_order_prediction");
    struct {
        const char *name;
        const double *y;
        double pred;
    } qs[] = {{"score_gap_sq", gap, 4}, {"score_gap_rms", rgap, 2}, {"score_gap_sq_weighted", gapw, 4},
              {"first_order_shift_sq", shift, 2}, {"sample_dist_merge_bary", sdist, 2},
              {"sample_dist_bary_base", sshift, 1}};
    size_t halfn = (c.n_scales + 1) / 2;
    for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++)
        for (int rg = 0; rg < 2; rg++) {
            size_t i1 = rg == 0 ? halfn : c.n_scales;
            double ic, sl = loglog_slope(nrm, qs[q].y, 0, i1, &ic);
            io_csv_row(lcsv, "%s,%s,%.9g,%.9g,%zu,%.4f,%.4f,%g", qs[q].name, rg == 0 ? "small" : "all", c.scales[0],
                       c.scales[i1 - 1], i1, sl, ic, qs[q].pred);
            if (rg == 0 || q == 0 || q == 4)
                log_info("slope %-24s (%s, s <= %g): %.3f (first order: %g)", qs[q].name, rg == 0 ? "small" : "all",
                         c.scales[i1 - 1], sl, qs[q].pred);
        }
    io_csv_commit(lcsv, &meta);
    free(lpath);
    tl[nt++] = log_now() - t;

    char *tpath = dg_path(&c, "digits_timing.csv");
    io_csv *tcsv = io_csv_open(tpath, "stage,seconds");
    static const char *const stages[] = {"data+classifier", "base", "lora7", "lora9", "sampling", "sweep"};
    for (int i = 0; i < nt; i++) io_csv_row(tcsv, "%s,%.1f", stages[i], tl[i]);
    io_csv_row(tcsv, "total,%.1f", log_now() - g0);
    io_csv_commit(tcsv, &meta);
    free(tpath);
    log_info("digits: done in %.1f s (outputs in %s)", log_now() - g0, c.out);

    for (int g = 0; g < DG_NGRID; g++) free(xb[g]), free(xm[g]);
    free(x_base), free(x7), free(x9), free(d7), free(d9), free(e7), free(e9);
    free(tg), free(zg), free(xg), free(s_base), free(s7), free(s9), free(sm), free(ys_b), free(ys_m), free(ys_0);
    scorenet_free(n7), scorenet_free(n9), scorenet_free(nm), scorenet_free(base);
    scorenet_lora_free(l7), scorenet_lora_free(l9);
    digitnet_free(clf);
    data_free(&d);
    io_meta_free(&meta);
    return 0;
}
