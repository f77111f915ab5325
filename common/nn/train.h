/* nn/train: the paper's training loop for a score network (src/model_1D.py generic_train / exp_train),
 * generic over a small vtable so the 1-D MLP and the image U-Net share it.
 *
 * Per epoch: shuffle the training set, run minibatches of size `batch` (the last one may be smaller, as a
 * PyTorch DataLoader with drop_last=False gives), each = forward + backward + Adam + EMA update. Then take ONE
 * validation batch (val set shuffled, cycled batch by batch, reshuffled when exhausted) and evaluate the DSM
 * loss with the EMA weights (drives early stopping) and with the raw weights (logged, as the paper does).
 *
 * Early stopping (train_stopper, a pure state machine, src/training.py EarlyStopper): best = min EMA val loss;
 * an epoch listed in decay_points halves max_fraction first; improvement resets the bad-epoch counter; a bad
 * epoch is val > best (1 + max_fraction) and increments it; do_stop = counter >= patience after a bad epoch.
 * The first do_stop "triggers"; from the next epoch on, `countdown` (default 100) is decremented at the start of
 * every epoch and training ends after the epoch in which it reaches 0 (so `countdown` more epochs run).
 *
 * Which weights are the result (train_keep), all three documented from the authors' code:
 *   TRAIN_KEEP_PAPER     generic_train (used for the 1-D baselines, the HPC 1-D aux script and every EMNIST
 *                        model): after each epoch whose do_stop is false, the EMA weights are checkpointed;
 *                        the last such checkpoint is returned. This is NOT the best-val epoch in general: during
 *                        the countdown every epoch that is not a bad epoch overwrites it.
 *   TRAIN_KEEP_BEST_EMA  corrected: the EMA weights of the epoch with the minimum EMA val loss (any epoch).
 *   TRAIN_KEEP_PAPER_EXP exp_train (the notebook's 1-D auxiliaries): its in-loop "save EMA if better" is always
 *                        overwritten by an unconditional save of the RAW (non-EMA) weights at the end of every
 *                        epoch that does not break, so it returns the raw weights of the last completed epoch
 *                        before the break (or of the final epoch).
 * After train_run the model's params AND its EMA hold the kept weights. */
#ifndef SF_NN_TRAIN_H
#define SF_NN_TRAIN_H
#include "io.h"
#include "rng.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *ctx;
    size_t dim;                 /* floats per data row */
    /* one optimiser step on x0[n * dim]; returns the minibatch loss */
    double (*train_step)(void *ctx, size_t n, const float *x0, double t_lo, double t_hi, double lr, rng *r);
    /* loss on x0[n * dim] without updating; use_ema picks the EMA weights */
    double (*eval_loss)(void *ctx, int use_ema, size_t n, const float *x0, double t_lo, double t_hi, rng *r);
    void (*snapshot)(void *ctx, int from_ema);  /* remember the current EMA (1) or raw (0) weights */
    void (*restore)(void *ctx);                 /* copy the remembered weights into params and EMA */
    /* Optional, all or none (NULL: the loop gathers each minibatch on the host and calls train_step /
     * eval_loss): the data set resident where the model runs, and steps that do not wait for it.
     *   data_load    copies x_train and x_val there, once per train_run;
     *   data_order   a new shuffle order of the train (set 0) or val (set 1) rows, once after each shuffle;
     *   train_rows   queues one optimiser step on rows order[b0, b0 + n) of the train set, with exactly the
     *                draws from r that train_step makes, and returns without waiting for it;
     *   train_fetch  the loss of the OLDEST queued step, waiting for that step only. A non-finite loss means
     *                that step and every step queued after it made no update (as train_step's "no update"),
     *                nor does any step queued later, until the next data_load;
     *   eval_rows    eval_loss on rows order[v0, v0 + n) of the val set (returns the value: waits);
     *   data_unload  drops the data and any step still queued (a non-finite one among them counts as read).
     * train_run then keeps one step in flight: it queues step k + 1 before reading step k's loss, so the host
     * never drains the device inside an epoch; it waits at the epoch's end (the last loss, the two val losses),
     * and for snapshots / checkpoints, which run there. The losses, their order and every draw from r are those
     * of the gathered path, except after a non-finite loss: the loop learns of it one step late, so r has given
     * one more seed (the run ends there either way). */
    void (*data_load)(void *ctx, size_t n_train, const float *x_train, size_t n_val, const float *x_val);
    void (*data_order)(void *ctx, int set, const size_t *idx, size_t n);
    void (*train_rows)(void *ctx, size_t b0, size_t n, double t_lo, double t_hi, double lr, rng *r);
    double (*train_fetch)(void *ctx);
    double (*eval_rows)(void *ctx, int use_ema, size_t v0, size_t n, double t_lo, double t_hi, rng *r);
    void (*data_unload)(void *ctx);
} train_model;

typedef enum { TRAIN_KEEP_PAPER = 0, TRAIN_KEEP_BEST_EMA = 1, TRAIN_KEEP_PAPER_EXP = 2 } train_keep;
struct train_progress;
const char *train_keep_name(train_keep k);     /* "paper-generic", "best-ema", "paper-exp" */

typedef struct {
    int max_epochs;
    size_t batch, val_batch;
    double lr, t_lo, t_hi;
    int patience;
    double max_fraction;
    int countdown;
    const int *decay_points;    /* epochs at which max_fraction halves (paper: none) */
    int n_decay_points;
    train_keep keep;
    int progress;               /* progress bar on stderr (drawn only on a TTY) */
    const char *label;          /* progress label, e.g. the model's name */
    /* Resumable runs (optional). After an epoch that ends at least checkpoint_every seconds after the last call
     * (0: after every epoch), and never after the last epoch, train_run calls checkpoint(checkpoint_ctx, p)
     * with the loop's state; the callback saves it with the model's (see train_progress_write). resume: a
     * loaded state to continue from (NULL: a fresh run); the model must hold that checkpoint's weights. */
    void (*checkpoint)(void *ctx, const struct train_progress *p);
    void *checkpoint_ctx;
    double checkpoint_every;
    const struct train_progress *resume;
} train_config;

/* Paper defaults for the 1-D auxiliaries: 1024 epochs, batch 4096, val batch 4096, Adam lr 1e-4,
 * t ~ U[1e-5, 1], patience 50, max_fraction 0.5, countdown 100, keep TRAIN_KEEP_PAPER. */
train_config train_config_default(void);

/* ---- early stopping state machine */
typedef struct {
    int patience;
    double max_fraction, best;
    int counter, triggered, countdown;
    const int *decay_points;
    int n_decay_points;
} train_stopper;

typedef struct {
    int better;     /* strictly below the best so far (becomes the new best) */
    int do_stop;    /* EarlyStopper.early_stop's first return value */
    int finish;     /* training ends after this epoch */
} train_stop_event;

void train_stopper_init(train_stopper *s, int patience, double max_fraction, int countdown, const int *decay_points,
                        int n_decay_points);
/* Feed the EMA val loss of `epoch` (0-based, called once per epoch in order). */
train_stop_event train_stopper_epoch(train_stopper *s, int epoch, double val);

/* ---- the loop */
typedef enum { TRAIN_OK = 0, TRAIN_NONFINITE = 1 } train_status;

typedef struct {
    train_status status;
    int epochs_run;         /* epochs completed (the last one possibly cut short by a non-finite loss) */
    int best_epoch;         /* argmin of ema_val_loss (first occurrence); -1 if none */
    double best_val;
    int kept_epoch;         /* epoch whose weights were kept; -1 if none */
    int trigger_epoch;      /* epoch at which early stopping triggered; -1 if never */
    int bad_epoch;          /* for TRAIN_NONFINITE: the epoch, and `what` says which loss */
    char what[32];
    /* per-epoch records, [max_epochs] each, valid for the first epochs_run entries */
    double *train_loss;      /* mean minibatch loss of the epoch */
    double *train_loss_last; /* loss of the epoch's last minibatch (what the paper logs) */
    double *val_loss;        /* raw weights, on the epoch's val batch */
    double *ema_val_loss;    /* EMA weights, on the same val batch (drives early stopping) */
} train_result;

/* Trains m on x_train[n_train * dim], validating on x_val[n_val * dim] (n_val > 0). r drives shuffling and the
 * DSM noise. Fills res (free with train_result_free). Returns res->status. */
train_status train_run(const train_model *m, const train_config *c, size_t n_train, const float *x_train,
                       size_t n_val, const float *x_val, rng *r, train_result *res);
void train_result_free(train_result *res);
/* the per-epoch losses as a CSV (epoch,train_loss,train_loss_last,val_loss,ema_val_loss), committed with meta
 * through io.h's atomic writer: every experiment's loss_*.csv */
void train_result_write_csv(const train_result *res, const char *path, const io_meta *meta);

/* ---- the loop's state between two epochs: with the model's weights, Adam moments, EMA, remembered weights and
 * step counters it is everything needed to continue a run exactly as if it had not stopped (same rng draws). */
typedef struct train_progress {
    int epochs_done;            /* epochs completed; the next one to run */
    int max_epochs;
    train_stopper stopper;      /* decay_points come from the config, not the file */
    size_t n_train, n_val, vpos;
    int64_t *tidx, *vidx;       /* the shuffled orders, as the loop left them [n_train], [n_val] */
    int have_kept;
    train_result res;           /* per-epoch records [max_epochs] (first epochs_done valid) and the summary */
    unsigned char *rng_state;   /* the rng's bytes after the epoch */
    size_t rng_bytes;
} train_progress;

struct safetensors_writer;
struct safetensors;
/* Adds the state to a checkpoint being written: tensors "train.*" (orders, rng, per-epoch records) and
 * __metadata__ keys "train.*" (counters and the stopper, doubles as %.17g). p must stay valid until the write,
 * and only one such write may be in progress at a time (the metadata strings live in a static table). */
void train_progress_write(const train_progress *p, struct safetensors_writer *w);
/* Reads it back from a checkpoint for a run with config c on n_train / n_val rows; 0, or -1 + one line in err
 * (missing or inconsistent entries: another configuration or data size). Free with train_progress_free. */
int train_progress_read(train_progress *p, const struct safetensors *st, const train_config *c, size_t n_train,
                        size_t n_val, const char *path, char *err, size_t errlen);
void train_progress_free(train_progress *p);

#endif
