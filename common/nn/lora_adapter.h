/* nn/lora_adapter: low-rank adapters (LoRA, Hu et al. 2021) on the weight tensors of any network laid out in an
 * nn_params, for the digits version of the paper's checkpoint-merging comparison (§5.2, App. H; issue 10 item 3).
 * An adapted weight W0 of shape [d0, d1, ...] is viewed as a matrix [rows = d0, cols = d1 * d2 * ...] (a Linear
 * [out, in], a Conv2d [out, in, kh, kw], a ConvTranspose2d [in, out, kh, kw]: always the first dimension against
 * the rest), and
 *     W = W0 + c B A,   A [rank, cols], B [rows, rank],   c = scale * alpha / rank,
 * with only A and B trainable. Training needs no backward kernel of its own: the network's backward gives dL/dW
 * (for W = W0 + c B A it is the same tensor) and the chain rule gives
 *     dL/dA = c B^T dL/dW,   dL/dB = c dL/dW A^T.
 * Merging k adapters at weights w_i is the plain sum W = W0 + sum_i w_i dW_i with dW_i = c_i B_i A_i.
 *
 * A lora_adapter holds the adapters of one network: which tensors of the base layout it adapts, and A / B for
 * each in its own nn_params ("<name>.lora_A", "<name>.lora_B"), so Adam, EMA, kept weights and checkpoints
 * (params.h) work on the adapter exactly as on a network. Initialisation as PEFT's default: A ~ U(-1/sqrt(cols),
 * 1/sqrt(cols)) (kaiming_uniform, a = sqrt 5), B = 0, so a fresh adapter leaves the network unchanged.
 * Arithmetic in float with double accumulation of the inner products; every function is deterministic and
 * independent of the thread count. */
#ifndef SF_NN_LORA_ADAPTER_H
#define SF_NN_LORA_ADAPTER_H
#include "params.h"
#include <stddef.h>
#include <stdint.h>

/* ---- one matrix */
/* delta[rows, cols] = c B A */
void lora_adapter_delta(size_t rows, size_t cols, size_t rank, const float *A, const float *B, double c,
                        float *delta);
/* dA[rank, cols] += c B^T dW,  dB[rows, rank] += c dW A^T  (dW [rows, cols]; either output may be NULL) */
void lora_adapter_grad(size_t rows, size_t cols, size_t rank, const float *A, const float *B, const float *dW,
                       double c, float *dA, float *dB);
/* W[n] = W0[n] + sum_i w[i] dW[i][n], accumulated in float in the order i = 0..k-1 (so a weight of exactly 0
 * adds exactly nothing, and weights (1, 0) give W0 + dW_0 bit for bit). W may alias W0. */
void lora_adapter_merge(size_t n, const float *W0, size_t k, const float *const *dW, const double *w, float *W);

/* ---- the adapters of one network */
typedef struct {
    size_t n;                /* adapted tensors */
    size_t *base_index;      /* [n] index into the base layout */
    size_t *base_offset;     /* [n] its offset (floats) in every buffer of the base layout */
    size_t *rows, *cols;     /* [n] matrix view of each adapted tensor */
    size_t *a_index, *b_index; /* [n] index of A_i, B_i in p */
    size_t rank;
    double alpha;
    size_t base_total;       /* floats of the base layout (the size of a full delta buffer) */
    nn_params *p;            /* A and B of every adapted tensor */
} lora_adapter;

/* Adapters of rank `rank` (>= 1) on every trainable tensor of base with at least two dimensions (weights of
 * Linear and convolution layers; biases and norm parameters stay frozen), A drawn from seed. */
lora_adapter *lora_adapter_alloc(const nn_params *base, size_t rank, double alpha, uint64_t seed);
void lora_adapter_free(lora_adapter *a);
size_t lora_adapter_num_params(const lora_adapter *a);   /* trainable scalars of A and B */
/* c = scale * alpha / rank */
double lora_adapter_coef(const lora_adapter *a, double scale);
/* delta[base_total] = c B A on every adapted tensor (from the adapter weights ab: a->p->data or its EMA), zero
 * elsewhere. */
void lora_adapter_full_delta(const lora_adapter *a, const float *ab, double scale, float *delta);
/* dab[a->p->total] += chain rule of the base-layout gradient dW[base_total] (see above), ab as above. */
void lora_adapter_full_grad(const lora_adapter *a, const float *ab, double scale, const float *dW, float *dab);
/* Frobenius norm of the full delta (double) */
double lora_adapter_delta_norm(size_t n, const float *delta);

#endif
