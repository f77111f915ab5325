/* nn/linear: fully connected layer with explicit forward/backward (DESIGN.md §4, llm.c style).
 * PyTorch layout: W[OC, IC] (row o holds the weights of output o), bias b[OC] (optional, NULL = none), so our
 * safetensors checkpoints carry the same tensors as a torch nn.Linear state_dict.
 *     forward:   out[B, OC] = in[B, IC] W^T + b
 *     backward:  din[B, IC] += dout[B, OC] W;  dW[OC, IC] += dout^T in;  db[OC] += sum_b dout[b, :]
 * Every gradient ACCUMULATES (+=), including din (so skip connections and shared inputs just add up);
 * callers zero their gradient buffers. din, dW, db may each be NULL (skipped).
 * CPU + OpenMP over the batch; results do not depend on the thread count (dW/db are partitioned over output
 * rows, not reduced across threads). Tuned for small widths (16..128) and large batches. */
#ifndef SF_NN_LINEAR_H
#define SF_NN_LINEAR_H

/* out[B, OC] = in[B, IC] W[OC, IC]^T + b[OC] (b may be NULL) */
void nn_linear_forward(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);

/* out[B, OC] += in[B, IC] W[OC, IC]^T + b[OC] (b may be NULL): adds a second branch onto an existing output,
 * e.g. the time-embedding projection Dense(temb) onto a hidden layer's pre-activation. */
void nn_linear_forward_add(float *out, const float *in, const float *W, const float *b, int B, int IC, int OC);

/* din[B, IC] += dout[B, OC] W[OC, IC];  dW[OC, IC] += dout^T in[B, IC];  db[OC] += colsum(dout).
 * din, dW, db may be NULL. */
void nn_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W, int B,
                        int IC, int OC);

#endif
