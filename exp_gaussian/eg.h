/* eg: shared declarations of the exp_gaussian program (paper App. I, Table 6, Figures 12-15).
 * Files: config.c (flags, profiles), coords.c (the two coordinate conventions = the two fusion families),
 * models.c (auxiliary and baseline networks), methods.c (calibration, vanilla fusion, sampling + W1),
 * report.c (CSV tables, comparison with the paper), main.c (stages). */
#ifndef EG_H
#define EG_H
#include "io.h"
#include "mixture.h"
#include "mlp1d.h"
#include "train.h"
#include "score.h"
#include "sde.h"
#include <stddef.h>
#include <stdint.h>

#define EG_MAX_AUX 8
#define EG_MAX_N 32

/* The two ways of putting auxiliaries and target into network coordinates (REFERENCE.md, 1-D quirks):
 *   EG_PAPER:     every dataset standardised by its OWN sample mean/std (the authors' code); the fused
 *                 model lives in the target's standardised coordinates. A different model family:
 *                 the barycenter of moment-aligned auxiliaries.
 *   EG_CORRECTED: one affine map for everyone (pooled auxiliary moments), so s_lambda is the score of
 *                 the KL barycenter of the auxiliaries themselves (paper Thm 1-2). */
typedef enum { EG_PAPER = 0, EG_CORRECTED = 1, EG_NMODES = 2 } eg_mode;
const char *eg_mode_name(eg_mode m);

typedef struct {
    size_t n_train, n_val, batch, epochs, patience;
    double lr, max_fraction;
} eg_train_params;

typedef struct {
    const char *profile;
    const char *out;              /* output directory */
    const char *stage;            /* all | aux | n | merge */
    uint64_t seed;
    mixture target;
    mixture aux[EG_MAX_AUX];
    size_t k;
    long n_list[EG_MAX_N];
    size_t n_count;
    int mode_on[EG_NMODES];
    eg_train_params aux_train, base_train;
    size_t calib_epochs;
    double calib_lr, calib_momentum, calib_t_lo, calib_t_hi;
    double train_t_lo;            /* DSM training t ~ U[train_t_lo, 1] */
    size_t repeats, n_samples;    /* W1: repeats x n_samples generated vs n_samples fresh target draws */
    int sampler_steps;
    double sampler_eps;
    mlp1d_config net;
    int threads;
    char device_desc[256];
    int quiet;
} eg_config;

void eg_config_parse(eg_config *c, int argc, char **argv);
void eg_meta_fill(const eg_config *c, io_meta *m);

/* Affine map y = (x - shift) / scale. */
typedef struct {
    double shift, scale;
} eg_affine;

/* Coordinates of one mode: one map per auxiliary and one for the target (+ its inverse for samples). */
typedef struct {
    eg_mode mode;
    eg_affine aux[EG_MAX_AUX];
    eg_affine target;
} eg_coords;

void eg_sample_moments(const double *x, size_t n, eg_affine *a);   /* mean, sd (n-1), as torch's std() */
eg_coords eg_coords_make(eg_mode mode, size_t k, double *const *aux_train, size_t n_aux, const double *target_train,
                         size_t n_target);
void eg_affine_apply(const eg_affine *a, const double *x, float *y, size_t n);    /* x -> y */
void eg_affine_invert(const eg_affine *a, const float *y, double *x, size_t n);   /* y -> x */

/* Stream ids (rng_stream_id(purpose, index)) so that every use of randomness is independent. */
enum {
    EG_RNG_AUX_DATA = 1, EG_RNG_TARGET_DATA, EG_RNG_TRAIN, EG_RNG_CALIB, EG_RNG_SAMPLE, EG_RNG_TEST, EG_RNG_INIT
};

/* models.c */
train_keep eg_keep_for(eg_mode mode, int is_aux);
/* Train a score network on standardised data a(train), validating on a(val); per-epoch losses to loss_csv. */
mlp1d *eg_train_net(const eg_config *c, const eg_train_params *p, train_keep keep, const double *train,
                    const double *val, const eg_affine *a, uint64_t stream, const char *name, const char *loss_csv,
                    const io_meta *meta);
void eg_aux_data(const eg_config *c, size_t i, double **train, double **val);
void eg_target_data(const eg_config *c, long n, double **train, double **val);
char *eg_path(const eg_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Load the cached auxiliary network for (mode, i), or train and cache it. */
mlp1d *eg_aux_net_load_or_train(const eg_config *c, eg_mode mode, size_t i, const eg_coords *co,
                                const io_meta *meta);

/* One result row of table6.csv. */
typedef struct {
    long n;
    const char *mode, *method, *calibration, *scores, *sampler;
    double lambda[EG_MAX_AUX];
    size_t k;                    /* 0: no lambda (baseline) */
    double w1_mean, w1_std, w1cdf_mean, w1cdf_std, kl, seconds;
} eg_row;

/* methods.c */
typedef struct {
    double lambda_sgd[EG_MAX_AUX], lambda_exact[EG_MAX_AUX], qp_gap, sgd_final_loss, exact_loss;
} eg_calib_result;

void eg_calibrate(const eg_config *c, const score_model *const *aux, const float *y_train, size_t n,
                  uint64_t stream, eg_calib_result *res);
/* The KL-barycenter family of the auxiliaries in network coordinates (integration interval: 12 sd). */
struct bary_family *eg_family(const eg_config *c, const mixture *aux_y);
/* Vanilla fusion (eq. 9) by Frank-Wolfe in network coordinates; logs iterations to fw_csv (may be NULL).
 * hbar: estimates of E_nu[log p_i]; negent: E_nu[log nu] (so the objective is KL(nu || p_lambda));
 * returns iterations; *gap: the certified duality gap of the returned lambda. */
#define EG_FW_TOL 1e-10      /* certified duality gap at which Frank-Wolfe stops */
#define EG_FW_MAX_ITER 500
int eg_vanilla_fw(const eg_config *c, const mixture *aux_y, const double *hbar, double negent, double *lambda_out,
                  double *gap, io_csv *fw_csv, long n, const char *mode);
/* Generate repeats x n_samples with the reverse SDE under score model m (network coordinates), map back to data
 * coordinates with the target map, and compute W1 against fresh target draws and against the exact CDF.
 * keep (may be NULL): receives the first repeat's samples (n_samples doubles). */
void eg_eval_sde(const eg_config *c, const score_model *m, const eg_affine *target_map, long n, uint64_t stream,
                 const char *label, eg_row *row, double *keep);
/* Same, sampling the distribution-level barycenter exactly by inverse CDF (quadrature table). */
void eg_eval_exact_bary(const eg_config *c, const mixture *aux_y, const double *lambda, const eg_affine *target_map,
                        long n, uint64_t stream, eg_row *row, double *keep);
/* KL(target || barycenter(lambda)) with the family in network coordinates (KL is invariant under the common map). */
double eg_kl_bary(const eg_config *c, const mixture *aux_y, const double *lambda, const eg_affine *target_map);

/* report.c */
void eg_row_write(io_csv *csv, const eg_row *r);
const char *eg_row_header(void);
void eg_hist_write(const eg_config *c, long n, double *const *samples, const char *const *names, size_t m,
                   const io_meta *meta);
void eg_merge(const eg_config *c, const io_meta *meta);

#endif
