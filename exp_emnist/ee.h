/* ee: shared declarations of the exp_emnist program -- calibrating the 7-vs-9 digit distribution (paper §5.1,
 * App. G, Tables 1-4, Figures 4-6; REFERENCE.md "Image experiment").
 * Files: config.c (flags, profiles), data.c (the 7/9 pool and the five non-overlapping stratified sets),
 * models.c (auxiliary, Baseline 1, Baseline 2 training, cached and resumable), fusion.c (the three
 * calibrations of lambda), evaluate.c (samples, class proportions, PNG grids, NLL bits/dim), report.c (tables,
 * ours-vs-paper), main.c (the units of work and the time budget). */
#ifndef EE_H
#define EE_H
#include "digitnet.h"
#include "io.h"
#include "scorenet.h"
#include "scorenet_dev.h"
#include "sde.h"
#include <stddef.h>
#include <stdint.h>

#define EE_K 4              /* auxiliaries: P(7) = 10%, 30%, 70%, 90% */
#define EE_B2_AUX 2         /* Baseline 2 fine-tunes the 70:30 auxiliary (index 2) */
#define EE_MAX_N 16
#define EE_DIM SCORENET_DIM
#define EE_NORM_MEAN 0.1307 /* the paper's pixel normalisation (torchvision's MNIST constants) */
#define EE_NORM_STD 0.3081

/* Training recipe of one kind of score network (REFERENCE.md: Adam, EMA with warm-up, early stopping). */
typedef struct {
    int epochs;             /* max epochs */
    size_t batch;           /* minibatch (B1/B2: min(batch, n)) */
    double lr;
    int patience;
    double max_fraction;
    double max_images;      /* >0: cap epochs at ceil(max_images / n_train) (cpu/smoke profiles only) */
    /* learning-rate schedule over the optimiser steps of max_epochs (the paper: none, a constant lr). The
     * schedule is a function of the step count alone, so a resumed run continues it exactly. */
    int sched;              /* EE_SCHED_CONST | EE_SCHED_COSINE */
    double warmup;          /* images of linear warm-up from 0 (0: none) */
    double lr_end;          /* cosine: the final lr as a fraction of lr */
} ee_train_params;

enum { EE_SCHED_CONST = 0, EE_SCHED_COSINE = 1 };
/* How the auxiliaries start: from their own random initialisation (the paper), or fine-tuned from one network
 * trained on the four auxiliary sets together (a shared warm start: the cpu profile, issue 12). */
enum { EE_INIT_SCRATCH = 0, EE_INIT_POOL = 1 };

/* Which learning rate Baseline 1 uses: the notebook's single 2e-4, or the paper text's rule by n. */
typedef enum { EE_B1LR_NOTEBOOK = 0, EE_B1LR_TEXT = 1 } ee_b1lr;

typedef struct {
    const char *profile;
    const char *out;            /* results directory */
    const char *stage;          /* all | data | classifier | aux | n | eval | report */
    const char *data_dir;       /* IDX files */
    const char *dataset;        /* "mnist" | "emnist" (byclass; transposed on load) */
    uint64_t seed;
    double aux_p7[EE_K];        /* P(7) of each auxiliary */
    double target_p7;
    size_t aux_train, aux_val;  /* per auxiliary; 0 = the largest the data allow (train:val = 5:1) */
    size_t test_size;           /* target test set (paper 5,000) */
    long n_list[EE_MAX_N];
    size_t n_count;
    ee_train_params aux, b1, b2;
    int aux_init;               /* EE_INIT_SCRATCH | EE_INIT_POOL */
    double pool_images;         /* the pooled network's image budget (--pool-images) */
    ee_train_params pool;       /* the pooled network's recipe: aux's, capped at pool_images (set after parsing) */
    ee_b1lr b1_lr_rule;
    double train_t_lo;          /* DSM t ~ U[train_t_lo, 1] */
    /* calibration */
    int calib_epochs;
    size_t calib_batch;
    double calib_lr, calib_momentum;
    double calib_full_lo, calib_full_hi;   /* the code's full-range loss */
    double calib_text_lo, calib_text_hi;   /* the text's T~ << T */
    /* classifier */
    int clf_epochs;
    size_t clf_train_max;       /* 0: all training images */
    /* sampling and evaluation */
    size_t n_gen;               /* samples per model for the class proportions (paper 1,024) */
    int sampler_steps;
    double sampler_eps;
    size_t grid_n;              /* images in each PNG grid */
    int nll_passes, nll_batches;
    size_t nll_batch;
    double nll_rtol, nll_atol;
    int eval_text;              /* also sample / NLL the text-calibration barycenter */
    double budget;              /* seconds; 0 = none. After a unit that ends past it: exit EE_EXIT_BUDGET */
    double ckpt_every;          /* seconds between in-training checkpoints (0: every epoch) */
    size_t max_batch;           /* network workspace batch */
    int threads;
    int use_cuda;
    int gemm_bf16;              /* --gemm bf16: the ScoreNets' convolution GEMMs on bf16 operands (cpu) */
    char device_desc[256];
    int quiet;
    /* --probe: train only auxiliary probe_aux and measure its samples along the way (ee_probe_run) */
    int probe_aux;              /* -1: off */
    double probe_every;         /* images between measurements */
    long probe_steps[EE_MAX_N]; /* sampler steps tried at every measurement */
    size_t probe_steps_count;
    int probe_pool;             /* train on the four auxiliary sets together (a shared warm start) */
} ee_config;

#define EE_EXIT_BUDGET 75      /* EX_TEMPFAIL: time budget reached, run the same command again to continue */

void ee_config_parse(ee_config *c, int argc, char **argv);
void ee_meta_fill(const ee_config *c, io_meta *m);
char *ee_path(const ee_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long ee_val_size(long n);    /* the paper's validation size for target train size n */

/* ---- data.c */
typedef struct {
    size_t n;
    uint8_t *bytes;         /* [n, 784] pixels 0..255, row-major upright images */
    uint8_t *label;         /* [n] */
} ee_set;

typedef struct {
    ee_set aux_train[EE_K], aux_val[EE_K];
    ee_set target_train, target_val;   /* nested pools: the first n (val: first val(n)) form the set for n */
    ee_set target_test;
    ee_set clf_train, clf_test;        /* the dataset's train / test split, all ten classes (classifier) */
    size_t pool7, pool9;               /* 7s and 9s available in total */
} ee_data;

void ee_data_load(const ee_config *c, ee_data *d);
void ee_data_free(ee_data *d);
/* x[n, 784] = (bytes / 255 - 0.1307) / 0.3081 for the first n images of s */
float *ee_set_normalised(const ee_set *s, size_t n);
void ee_data_write_splits(const ee_config *c, const ee_data *d, const io_meta *meta);

/* ---- models.c */
/* EE_POOL: the shared warm start of the auxiliaries (--aux-init pool), one network on the union of the four
 * auxiliary sets (train and val), 50% sevens */
typedef enum { EE_AUX = 0, EE_B1 = 1, EE_B2 = 2, EE_POOL = 3 } ee_kind;
/* Checkpoint path of a trained score network; NULL-free; the file name carries a hash of its recipe. */
char *ee_model_path(const ee_config *c, ee_kind kind, size_t index_or_n);
int ee_model_done(const ee_config *c, ee_kind kind, size_t index_or_n);
/* Train (or do nothing if its checkpoint exists) the network of that kind; per-epoch losses to CSV. */
void ee_model_train(const ee_config *c, const ee_data *d, ee_kind kind, size_t index_or_n, const io_meta *meta);
scorenet *ee_model_load(const ee_config *c, ee_kind kind, size_t index_or_n);
/* A trained network on the configured device (--device): load with ee_net_open, release with ee_net_close. */
scorenet_dev *ee_net_open(const ee_config *c, ee_kind kind, size_t index_or_n);
/* m (not owned) on the configured device, with --gemm's convolution GEMMs */
scorenet_dev *ee_net_attach(const ee_config *c, scorenet *m);
/* What a result part is computed from, as a hash recorded under "inputs" in its .meta: model NULL is the
 * calibration part of n (the four auxiliaries and the calibration settings); otherwise the evaluation part of
 * model (aux1..4, b1, b2, sf_*) at n: its network(s), the classifier, the sampler and NLL settings, --gemm.
 * A part whose inputs differ from the current configuration's is not done: it is computed again, so a second
 * run with other networks in the same --out never reports the first run's numbers. */
unsigned long long ee_part_inputs(const ee_config *c, const char *model, long n);
int ee_part_inputs_check(const ee_config *c, const char *path, const char *model, long n, char *err, size_t errlen);
void ee_part_commit(const ee_config *c, io_csv *csv, const io_meta *meta, const char *model, long n);
void ee_net_close(scorenet_dev *d);
const char *ee_model_label(ee_kind kind, size_t index_or_n, char *buf, size_t len);

/* Probe (models.c, --probe): trains auxiliary c->probe_aux (or, with --probe-pool, one network on the union of
 * the four auxiliary sets) with the aux recipe; every --probe-every images it samples c->n_gen images with the
 * EMA and with the raw weights at the first of --probe-steps sampler steps, and at the end with the kept weights
 * at each of them, classifies them and rewrites OUT/probe_<recipe>.csv (one row each) and a PNG grid: the
 * measurement behind the cpu profile's numbers. The classifier is trained at the first
 * measurement if OUT holds none. Nothing else is written; the network is not saved. */
void ee_probe_run(const ee_config *c, const ee_data *d, const io_meta *meta);

/* classifier (models.c) */
char *ee_clf_path(const ee_config *c);
void ee_clf_train(const ee_config *c, const ee_data *d, const io_meta *meta);
digitnet *ee_clf_load(const ee_config *c);

/* ---- fusion.c: lambda per n by the three calibrations (Table 4) */
typedef enum { EE_CAL_CODE = 0, EE_CAL_TEXT = 1, EE_CAL_EXACT = 2, EE_NCAL = 3 } ee_cal;
const char *ee_cal_name(ee_cal m);
typedef struct {
    double lambda[EE_NCAL][EE_K];
    double loss[EE_NCAL];       /* calibration loss of each lambda on the full-range draws (text: its own) */
    double qp_gap;              /* certified optimality gap of the exact minimiser */
    double seconds;
} ee_fusion;
int ee_fusion_done(const ee_config *c, long n);
void ee_fusion_run(const ee_config *c, const ee_data *d, long n, scorenet_dev *const *aux, const io_meta *meta);
/* 0, or -1 with one line "<part>: <reason>" in err (missing, not verifying, or not three rows on the simplex) */
int ee_fusion_read(const ee_config *c, long n, ee_fusion *f, char *err, size_t errlen);

/* ---- evaluate.c: one evaluated model (a row of Tables 1-3) */
typedef struct {
    char model[32];             /* aux1..aux4, b1, b2, b2_frozen, sf_code, sf_text, sf_exact */
    long n;                     /* 0 when the model does not depend on n */
    double probs[10];           /* mean predicted class distribution of the generated samples (the code's) */
    long counts[10];            /* argmax counts (the text's) */
    size_t n_gen;
    int has_nll;
    double bpd_paper, bpd_paper_std, bpd_true, bpd_true_std, nfe;
    size_t nll_images;
    double seconds;
} ee_eval;
int ee_eval_done(const ee_config *c, const char *model, long n);
/* Sample, classify, draw the grid and (with_nll) take the NLL of the score model made of k networks with
 * weights lambda (k = 1: a single network). */
void ee_eval_run(const ee_config *c, const ee_data *d, digitnet *clf, const char *model, long n,
                 scorenet_dev *const *nets, const double *lambda, size_t k, int with_nll, const io_meta *meta);
/* 0, or -1 with one line "<part>: <reason>" in err when the part is missing, does not verify against its .meta
 * (io_csv_verify) or does not parse as this model's row. */
int ee_eval_read(const ee_config *c, const char *model, long n, ee_eval *e, char *err, size_t errlen);

/* ---- report.c */
void ee_report(const ee_config *c, const io_meta *meta);

/* rng stream purposes */
enum { EE_RNG_SPLIT = 1, EE_RNG_TRAIN, EE_RNG_INIT, EE_RNG_CALIB, EE_RNG_SAMPLE, EE_RNG_NLL, EE_RNG_CLF };

#endif
