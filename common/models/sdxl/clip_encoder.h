/* clip_encoder: the pre-LN transformer layer shared by CLIP's text tower (clip_text) and image tower
 * (clip_vision), plus the few engine ops and the checked tensor binding both towers use.
 *
 * One layer (transformers' CLIPEncoderLayer / open_clip's ResidualAttentionBlock), on x[B*T, D]:
 *     x += out_proj(softmax(q k^T / sqrt(head_dim) [+ causal mask]) v),   q,k,v = proj(LN1(x))
 *     x += fc2(act(fc1(LN2(x))))          act: quick_gelu x*sigmoid(1.702x) | gelu (erf)
 * The text tower masks causally (position i sees 0..i), the image tower does not.
 *
 * Layer names (L = layer index, P = the caller's prefix, e.g. "text_model.encoder.layers." or
 * "vision_model.encoder.layers." (transformers), "transformer.resblocks." or "visual.transformer.resblocks."
 * (open_clip)):
 *   transformers: P L.self_attn.{q,k,v,out}_proj.{weight [D, D], bias [D]}   P L.layer_norm{1,2}.{weight, bias} [D]
 *                 P L.mlp.fc1.{weight [I, D], bias [I]}   P L.mlp.fc2.{weight [D, I], bias [D]}
 *   open_clip:    P L.attn.in_proj_weight [3D, D] (q;k;v rows)  P L.attn.in_proj_bias [3D]
 *                 P L.attn.out_proj.{weight, bias}   P L.ln_{1,2}.{weight, bias}
 *                 P L.mlp.c_fc.{weight [I, D], bias}   P L.mlp.c_proj.{weight [D, I], bias}
 * Weights are views in the stored dtype (f32/f16/bf16), widened into the workspace when the layer runs. */
#ifndef SF_CLIP_ENCODER_H
#define SF_CLIP_ENCODER_H
#include "safetensors.h"
#include "tensor.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { CLIP_ACT_QUICK_GELU = 0, CLIP_ACT_GELU } clip_act;

/* "quick_gelu" | "gelu" -> act: 0, or -1 */
int clip_encoder_act_parse(const char *s, clip_act *act);
const char *clip_encoder_act_name(clip_act act);

typedef struct {
    nn_tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} clip_encoder_layer;

/* The width numbers of a layer stack. */
typedef struct {
    int hidden, heads, intermediate;
    clip_act act;
    float ln_eps;
} clip_encoder_dims;

/* Binding named tensors with a checked shape; the first failure is kept in err and later calls do nothing. */
typedef struct {
    const safetensors *st;
    const char *label;     /* the file, in messages */
    const char *prefix;    /* prepended to every name */
    char *err;
    size_t errlen;
    int failed;
} clip_binder;

/* out = the tensor prefix+name with exactly shape[ndim] (ndim 0..4), or a one-line error naming file and tensor */
void clip_encoder_bind(clip_binder *bd, nn_tensor *out, const char *name, int ndim, const int64_t *shape);
/* The tensors of layer L under layer_prefix (see above), shapes from dims. */
void clip_encoder_bind_layer(clip_binder *bd, clip_encoder_layer *l, const char *layer_prefix, int L, int open_clip,
                             const clip_encoder_dims *dims);

/* Workspace for layers over up to N tokens of one dims. */
typedef struct clip_encoder_ws clip_encoder_ws;
clip_encoder_ws *clip_encoder_ws_alloc(const clip_encoder_dims *dims, size_t N);
void clip_encoder_ws_free(clip_encoder_ws *ws);

/* One layer in place on x[B*T, D] (T <= 1024). */
void clip_encoder_layer_forward(float *x, int B, int T, const clip_encoder_layer *l, const clip_encoder_dims *dims,
                                int causal, clip_encoder_ws *ws);

/* ---- the ops the towers call around the layers ---- */
/* n elements of t from element offset off, widened to f32 */
void clip_encoder_widen(float *dst, const nn_tensor *t, size_t off, size_t n);
/* out[N, OC] = in[N, IC] W[OC, IC]^T (+ b[OC] when b) */
void clip_encoder_linear(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC);
/* out[M, N] = A[M, K] B[K, N] */
void clip_encoder_matmul(float *out, const float *A, const float *Bm, int M, int K, int N);
/* out[N, D] = LayerNorm(in) w + b; stats[2N] scratch; out may equal in */
void clip_encoder_layernorm(float *out, const float *in, const float *w, const float *b, int N, int D, float eps,
                            float *stats);
/* a 1-D tensor [D] widened, then LayerNorm of in[N, D] with it (w_t, b_t stored-dtype views); scratch[2D + 2N] */
void clip_encoder_layernorm_t(float *out, const float *in, const nn_tensor *w_t, const nn_tensor *b_t, int N, int D,
                              float eps, float *scratch);

#endif
