/* models/scorenet_lora: LoRA fine-tuning of the paper's ScoreNet (nn/lora_adapter.h on models/scorenet.h), for
 * the digits version of the SDXL comparison (paper §5.2, App. H; issue 10 item 3): a frozen base network, a rank-r
 * adapter on every Linear and convolution weight (embed.1, dense1-7, conv1-4, tconv4-1), trained with the DSM
 * loss through the common training loop (nn/train.h), and the weight sets the experiment samples from:
 *   fine-tune i           W0 + dW_i
 *   checkpoint merging    W0 + w dW_1 + (1 - w) dW_2      (lora_adapter_merge)
 * where dW_i = (scale alpha / r) B_i A_i. The barycenter of two fine-tunes is two such networks behind
 * score_bary (common/score.h).
 *
 * Training step (no backward kernel of its own): materialise W = W0 + c B A into a working ScoreNet, take the DSM
 * loss and its weight gradient dL/dW with scorenet_loss_at, map it to dL/dA, dL/dB (lora_adapter_full_grad), one
 * Adam step (torch defaults) and one EMA update (decay 0.999 with the paper code's warm-up) on A and B only.
 * Evaluation with the EMA adapter materialises from the EMA copy of A and B.
 *
 * Checkpoints (safetensors, atomic): "<name>.lora_A" / "<name>.lora_B" and "ema.*" (params.h), __metadata__
 * format "scorefusion-scorenet-lora", rank, alpha, Adam / EMA counters, git commit; a training checkpoint adds the
 * optimiser moments and the loop's state (train_progress), so a killed fine-tune resumes exactly. CPU only. */
#ifndef SF_MODELS_SCORENET_LORA_H
#define SF_MODELS_SCORENET_LORA_H
#include "lora_adapter.h"
#include "scorenet.h"
#include "train.h"
#include <stddef.h>
#include <stdint.h>

typedef struct scorenet_lora scorenet_lora;

/* A LoRA of rank `rank`, alpha `alpha`, LoRA scale 1 during training, on a copy of base's weights (base may be
 * freed afterwards); A drawn from seed, B = 0; a working network with a workspace for max_batch samples. */
scorenet_lora *scorenet_lora_alloc(const scorenet *base, size_t rank, double alpha, size_t max_batch,
                                   uint64_t seed);
void scorenet_lora_free(scorenet_lora *l);
lora_adapter *scorenet_lora_adapter(scorenet_lora *l);
const float *scorenet_lora_base_weights(const scorenet_lora *l);   /* W0 [scorenet_params total] */
/* The train.h vtable (dim 784): train_step / eval_loss / snapshot / restore act on the adapter only. */
train_model scorenet_lora_train_model(scorenet_lora *l);
/* Full delta dW[total] = c B A of the trained adapter (its EMA weights if use_ema and trainer state exists),
 * at LoRA scale `scale` (c = scale alpha / r). */
void scorenet_lora_delta(const scorenet_lora *l, int use_ema, double scale, float *delta);

/* dst's weights (use_ema 0 in its forward) = W0 + sum_i w[i] deltas[i]; dst is any ScoreNet (e.g. scorenet_alloc
 * of the same SDE). */
void scorenet_lora_set_weights(scorenet *dst, const float *W0, size_t k, const float *const *deltas,
                               const double *w);

/* Checkpoint of the adapter (p != NULL: a training checkpoint with the optimiser and loop state). 0, or -1 +
 * one line in err. */
int scorenet_lora_save(const scorenet_lora *l, const train_progress *p, const char *path, char *err, size_t errlen);
/* Reads an adapter written by scorenet_lora_save into l (same rank and layout). with_optim: also the Adam moments
 * and counters (to resume; the caller reads the loop state with train_progress_read on st). 0, or -1 + one line
 * "<path>: <reason>" (missing or corrupt file, other format, rank or alpha, missing tensor, wrong shape). */
struct safetensors;
int scorenet_lora_read(scorenet_lora *l, const struct safetensors *st, const char *path, int with_optim, char *err,
                       size_t errlen);

#endif
