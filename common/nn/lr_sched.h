/* nn/lr_sched: a learning-rate schedule over optimiser steps, and a train.h model that applies it. train_run
 * passes one constant rate to every step; short CPU recipes (exp_emnist's cpu profiles, the digits experiment)
 * want a warm-up and a cosine decay, so a wrapper replaces the loop's rate by the schedule's value at the
 * current step. The rate depends on the step count only, so a run resumed at step k continues exactly. */
#ifndef SF_NN_LR_SCHED_H
#define SF_NN_LR_SCHED_H
#include "train.h"

typedef struct {
    long warm;          /* warm-up steps (0: none): linear from warm_from * lr towards lr, lr reached at step warm-1 */
    double warm_from;   /* the warm-up's starting fraction of lr (0: from zero) */
    int cosine;         /* 0: constant lr after the warm-up; 1: cosine from lr down to end * lr at step total */
    double end;
    long total;         /* steps of the whole run (the cosine's length is total - warm) */
} nn_lr_sched;

/* the rate at optimiser step `step` (0-based) for peak rate lr */
double nn_lr_sched_at(const nn_lr_sched *s, double lr, long step);

typedef struct {
    train_model inner;
    nn_lr_sched sched;
    long step;          /* optimiser steps taken; set it to epochs_done * steps_per_epoch when resuming */
} nn_lr_sched_model;

/* a train_model over w (which must outlive it): its train_step runs the inner step at the schedule's rate for
 * the loop's lr, then counts the step; eval, snapshot and restore are the inner model's */
train_model nn_lr_sched_wrap(nn_lr_sched_model *w);

#endif
