/* models/sdxl/unet: the SDXL UNet forward pass (see unet.h): config.json reader, weight binding with shape checks,
 * workspace planning and the forward pass. Every layer call goes through sdxl_ops. */
#include "unet.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "sdxl_ops.h"
#include "unet_names.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXL 16                 /* resnets per block (layers_per_block + 1) */
#define TRANSFORMER_GN_EPS 1e-6f
#define LAYERNORM_EPS 1e-5f
#define FF_MULT 4               /* diffusers FeedForward default: inner = 4 dim */

/* ------------------------------------------------------------------------------------------------ config */

/* key holding an int or a list of nblocks ints, broadcast to out[nblocks] */
static int cfg_int_or_list(const json_doc *d, const json_value *root, const char *key, int nblocks, int lo, int hi,
                           int *out, char *err, size_t errlen)
{
    const json_value *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) {
        snprintf(err, errlen, "%s: key '%s': missing", json_label(d), key);
        return -1;
    }
    if (v->type == JSON_NUMBER) {
        int64_t x;
        if (json_value_int(d, v, key, lo, hi, &x, err, errlen)) return -1;
        for (int i = 0; i < nblocks; i++) out[i] = (int)x;
        return 0;
    }
    int64_t a[SDXL_UNET_MAX_BLOCKS];
    size_t n;
    if (json_get_int_array(d, root, key, lo, hi, a, SDXL_UNET_MAX_BLOCKS, &n, err, errlen)) return -1;
    if ((int)n != nblocks) {
        snprintf(err, errlen, "%s: key '%s': %zu values for %d blocks", json_label(d), key, n, nblocks);
        return -1;
    }
    for (int i = 0; i < nblocks; i++) out[i] = (int)a[i];
    return 0;
}

/* a key that must be absent, null, or equal to the one value we implement */
static int cfg_want_str(const json_doc *d, const json_value *root, const char *key, const char *want, char *err,
                        size_t errlen)
{
    const char *s;
    if (json_get_string_or(d, root, key, want, &s, err, errlen)) return -1;
    if (want ? strcmp(s ? s : "", want) : s != NULL) {
        snprintf(err, errlen, "%s: key '%s': \"%s\" is not supported (only %s%s%s)", json_label(d), key, s,
                 want ? "\"" : "", want ? want : "null", want ? "\"" : "");
        return -1;
    }
    return 0;
}

static int cfg_want_null(const json_doc *d, const json_value *root, const char *key, char *err, size_t errlen)
{
    const json_value *v = json_get(root, key);
    if (v && v->type != JSON_NULL) {
        snprintf(err, errlen, "%s: key '%s': only null is supported", json_label(d), key);
        return -1;
    }
    return 0;
}

static int cfg_want_bool(const json_doc *d, const json_value *root, const char *key, int want, char *err,
                         size_t errlen)
{
    const json_value *v = json_get(root, key);
    if (v && v->type == JSON_ARRAY) {   /* only_cross_attention may be per block */
        for (size_t i = 0; i < json_len(v); i++) {
            const json_value *x = json_at(v, i);
            if (x->type != JSON_BOOL || x->u.boolean != want) {
                snprintf(err, errlen, "%s: key '%s'[%zu]: only %s is supported", json_label(d), key, i,
                         want ? "true" : "false");
                return -1;
            }
        }
        return 0;
    }
    int b;
    if (json_get_bool_or(d, root, key, want, &b, err, errlen)) return -1;
    if (b != want) {
        snprintf(err, errlen, "%s: key '%s': only %s is supported", json_label(d), key, want ? "true" : "false");
        return -1;
    }
    return 0;
}

static int cfg_block_types(const json_doc *d, const json_value *root, const char *key, const char *plain,
                           const char *attn, int *out, int *n, char *err, size_t errlen)
{
    const json_value *v = json_get(root, key);
    if (!v || v->type != JSON_ARRAY || json_len(v) == 0 || json_len(v) > SDXL_UNET_MAX_BLOCKS) {
        snprintf(err, errlen, "%s: key '%s': %s", json_label(d), key,
                 !v ? "missing" : "want a list of 1..8 block types");
        return -1;
    }
    *n = (int)json_len(v);
    for (int i = 0; i < *n; i++) {
        const json_value *s = json_at(v, i);
        if (s->type == JSON_STRING && !strcmp(s->u.str.s, plain)) out[i] = 0;
        else if (s->type == JSON_STRING && !strcmp(s->u.str.s, attn)) out[i] = 1;
        else {
            snprintf(err, errlen, "%s: key '%s'[%d]: want \"%s\" or \"%s\"", json_label(d), key, i, plain, attn);
            return -1;
        }
    }
    return 0;
}

static int cfg_load_doc(sdxl_unet_config *c, const json_doc *d, char *err, size_t errlen)
{
    const json_value *r = json_root(d);
    const char *L = json_label(d);
    if (r->type != JSON_OBJECT) {
        snprintf(err, errlen, "%s: not a JSON object", L);
        return -1;
    }
    memset(c, 0, sizeof *c);
    int64_t x;
    if (json_get_int(d, r, "in_channels", 1, 1 << 16, &x, err, errlen)) return -1;
    c->in_channels = (int)x;
    if (json_get_int(d, r, "out_channels", 1, 1 << 16, &x, err, errlen)) return -1;
    c->out_channels = (int)x;
    if (json_get_int_or(d, r, "sample_size", 1, 1 << 16, 0, &x, err, errlen)) return -1;
    c->sample_size = (int)x;
    int64_t boc[SDXL_UNET_MAX_BLOCKS];
    size_t nb;
    if (json_get_int_array(d, r, "block_out_channels", 1, 1 << 16, boc, SDXL_UNET_MAX_BLOCKS, &nb, err, errlen))
        return -1;
    c->nblocks = (int)nb;
    for (size_t i = 0; i < nb; i++) c->block_out_channels[i] = (int)boc[i];
    int n;
    if (cfg_block_types(d, r, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D", c->down_attn, &n, err, errlen))
        return -1;
    if (n != c->nblocks) {
        snprintf(err, errlen, "%s: key 'down_block_types': %d blocks, block_out_channels has %d", L, n, c->nblocks);
        return -1;
    }
    if (cfg_block_types(d, r, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D", c->up_attn, &n, err, errlen))
        return -1;
    if (n != c->nblocks) {
        snprintf(err, errlen, "%s: key 'up_block_types': %d blocks, block_out_channels has %d", L, n, c->nblocks);
        return -1;
    }
    if (cfg_int_or_list(d, r, "layers_per_block", c->nblocks, 1, MAXL - 1, c->layers_per_block, err, errlen))
        return -1;
    const json_value *tl = json_get(r, "transformer_layers_per_block");
    if (!tl || tl->type == JSON_NULL) for (int i = 0; i < c->nblocks; i++) c->transformer_layers[i] = 1;
    else if (tl->type == JSON_ARRAY && json_len(tl) && json_at(tl, 0)->type == JSON_ARRAY) {
        snprintf(err, errlen, "%s: key 'transformer_layers_per_block': per-layer lists are not supported", L);
        return -1;
    } else if (cfg_int_or_list(d, r, "transformer_layers_per_block", c->nblocks, 1, 1024, c->transformer_layers, err,
                               errlen))
        return -1;
    const json_value *rtl = json_get(r, "reverse_transformer_layers_per_block");
    if (rtl && rtl->type != JSON_NULL) {
        if (rtl->type == JSON_ARRAY && json_len(rtl) && json_at(rtl, 0)->type == JSON_ARRAY) {
            snprintf(err, errlen, "%s: key 'reverse_transformer_layers_per_block': per-layer lists are not supported",
                     L);
            return -1;
        }
        if (cfg_int_or_list(d, r, "reverse_transformer_layers_per_block", c->nblocks, 1, 1024,
                            c->up_transformer_layers, err, errlen))
            return -1;
    } else
        for (int i = 0; i < c->nblocks; i++) c->up_transformer_layers[i] = c->transformer_layers[c->nblocks - 1 - i];
    c->mid_transformer_layers = c->transformer_layers[c->nblocks - 1];
    /* diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the latter is the head COUNT) */
    const json_value *nh = json_get(r, "num_attention_heads");
    if (nh && nh->type != JSON_NULL) {
        if (cfg_int_or_list(d, r, "num_attention_heads", c->nblocks, 1, 1 << 16, c->heads, err, errlen)) return -1;
    } else if (cfg_int_or_list(d, r, "attention_head_dim", c->nblocks, 1, 1 << 16, c->heads, err, errlen))
        return -1;
    if (cfg_int_or_list(d, r, "cross_attention_dim", c->nblocks, 1, 1 << 20, c->cross_attention_dim, err, errlen))
        return -1;
    if (json_get_int(d, r, "norm_num_groups", 1, 1 << 16, &x, err, errlen)) return -1;
    c->norm_num_groups = (int)x;
    double eps;
    if (json_get_double_or(d, r, "norm_eps", 1e-5, &eps, err, errlen)) return -1;
    if (!(eps > 0 && eps < 1)) {
        snprintf(err, errlen, "%s: key 'norm_eps': %g outside (0, 1)", L, eps);
        return -1;
    }
    c->norm_eps = (float)eps;
    if (json_get_bool_or(d, r, "flip_sin_to_cos", 1, &c->flip_sin_to_cos, err, errlen)) return -1;
    double fs;
    if (json_get_double_or(d, r, "freq_shift", 0.0, &fs, err, errlen)) return -1;
    c->freq_shift = (int)fs;
    if ((double)c->freq_shift != fs) {
        snprintf(err, errlen, "%s: key 'freq_shift': %g is not an integer", L, fs);
        return -1;
    }
    if (json_get_bool_or(d, r, "use_linear_projection", 0, &c->use_linear_projection, err, errlen)) return -1;
    const char *aet;
    if (json_get_string_or(d, r, "addition_embed_type", NULL, &aet, err, errlen)) return -1;
    if (aet && strcmp(aet, "text_time")) {
        snprintf(err, errlen, "%s: key 'addition_embed_type': \"%s\" is not supported (only \"text_time\" or null)", L,
                 aet);
        return -1;
    }
    c->has_add_embed = aet != NULL;
    if (c->has_add_embed) {
        if (json_get_int(d, r, "addition_time_embed_dim", 2, 1 << 16, &x, err, errlen)) return -1;
        c->addition_time_embed_dim = (int)x;
        if (json_get_int(d, r, "projection_class_embeddings_input_dim", 1, 1 << 20, &x, err, errlen)) return -1;
        c->projection_class_embeddings_input_dim = (int)x;
        if (c->projection_class_embeddings_input_dim <= 6 * c->addition_time_embed_dim) {
            snprintf(err, errlen, "%s: key 'projection_class_embeddings_input_dim': %d leaves no room for the pooled "
                     "text embedding beside 6 x %d time features", L, c->projection_class_embeddings_input_dim,
                     c->addition_time_embed_dim);
            return -1;
        }
    }
    if (json_get_int_or(d, r, "time_embedding_dim", 1, 1 << 20, 4 * (int64_t)c->block_out_channels[0], &x, err,
                        errlen))
        return -1;
    c->time_embed_dim = (int)x;
    /* options this implementation does not carry: refuse rather than compute something else */
    if (cfg_want_str(d, r, "mid_block_type", "UNetMidBlock2DCrossAttn", err, errlen) ||
        cfg_want_str(d, r, "act_fn", "silu", err, errlen) ||
        cfg_want_str(d, r, "resnet_time_scale_shift", "default", err, errlen) ||
        cfg_want_str(d, r, "time_embedding_type", "positional", err, errlen) ||
        cfg_want_str(d, r, "attention_type", "default", err, errlen) ||
        cfg_want_null(d, r, "class_embed_type", err, errlen) || cfg_want_null(d, r, "num_class_embeds", err, errlen) ||
        cfg_want_null(d, r, "encoder_hid_dim", err, errlen) || cfg_want_null(d, r, "time_cond_proj_dim", err, errlen) ||
        cfg_want_null(d, r, "time_embedding_act_fn", err, errlen) ||
        cfg_want_null(d, r, "timestep_post_act", err, errlen) ||
        cfg_want_bool(d, r, "upcast_attention", 0, err, errlen) ||
        cfg_want_bool(d, r, "dual_cross_attention", 0, err, errlen) ||
        cfg_want_bool(d, r, "only_cross_attention", 0, err, errlen) ||
        cfg_want_bool(d, r, "center_input_sample", 0, err, errlen) ||
        cfg_want_bool(d, r, "resnet_skip_time_act", 0, err, errlen) ||
        cfg_want_bool(d, r, "class_embeddings_concat", 0, err, errlen))
        return -1;
    const char *ints1[] = {"conv_in_kernel", "conv_out_kernel"};
    for (int i = 0; i < 2; i++) {
        if (json_get_int_or(d, r, ints1[i], 1, 99, 3, &x, err, errlen)) return -1;
        if (x != 3) {
            snprintf(err, errlen, "%s: key '%s': only 3 is supported", L, ints1[i]);
            return -1;
        }
    }
    const char *ones[] = {"mid_block_scale_factor", "resnet_out_scale_factor"};
    for (int i = 0; i < 2; i++) {
        double v;
        if (json_get_double_or(d, r, ones[i], 1.0, &v, err, errlen)) return -1;
        if (v != 1.0) {
            snprintf(err, errlen, "%s: key '%s': only 1.0 is supported", L, ones[i]);
            return -1;
        }
    }
    /* structural consistency */
    for (int i = 0; i < c->nblocks; i++) {
        const int C = c->block_out_channels[i];
        if (C % c->norm_num_groups) {
            snprintf(err, errlen, "%s: key 'block_out_channels'[%d]: %d not divisible by norm_num_groups %d", L, i, C,
                     c->norm_num_groups);
            return -1;
        }
        if ((c->down_attn[i] || c->up_attn[c->nblocks - 1 - i]) && C % c->heads[i]) {
            snprintf(err, errlen, "%s: key 'attention_head_dim'[%d]: %d heads do not divide %d channels", L, i,
                     c->heads[i], C);
            return -1;
        }
    }
    return 0;
}

int sdxl_unet_config_load(sdxl_unet_config *cfg, const char *path, char *err, size_t errlen)
{
    json_doc *d = json_load(path, err, errlen);
    if (!d) return -1;
    int rc = cfg_load_doc(cfg, d, err, errlen);
    json_free(d);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ model */

typedef struct { const nn_tensor *w, *b; } ulin;
typedef struct { const nn_tensor *w, *b; int ic, oc, stride; } uconv;
typedef struct { const nn_tensor *g, *b; } unorm;
typedef struct {
    unorm n1, n2;
    uconv c1, c2, sc;     /* sc.w NULL: identity shortcut */
    ulin temb;
    int ic, oc;
} uresnet;
typedef struct {
    unorm ln1, ln2, ln3;
    ulin q1, k1, v1, o1, q2, k2, v2, o2, ff1, ff2;
} utblock;
typedef struct {
    unorm norm;
    ulin pin, pout;
    int C, heads, dh, ctx_dim, nlayers;
    utblock *tb;
} utrans;
typedef struct {
    int nres, has_attn, has_sampler;
    uresnet res[MAXL];
    utrans attn[MAXL];
    uconv sampler;
} ublock;

struct sdxl_unet {
    sdxl_unet_config cfg;
    nn_weights *owned;
    ulin t1, t2, a1, a2;
    uconv conv_in, conv_out;
    unorm norm_out;
    ublock down[SDXL_UNET_MAX_BLOCKS], up[SDXL_UNET_MAX_BLOCKS];
    uresnet mid_res[2];
    utrans mid_attn;
    size_t nparams, max_widen;
    sdxl_ops ops;
};

/* Binding: each call looks one tensor up with its expected shape; the first failure is kept and later calls are
 * no-ops, so the binding code reads as a plain list. */
typedef struct {
    sdxl_unet *u;
    const nn_weights *w;
    const char *prefix;
    char *err;
    size_t errlen;
    int failed;
    sdxl_unet_tensor_fn list;   /* listing mode: report each tensor, bind a placeholder */
    void *list_ctx;
    nn_tensor placeholder;
} binder;

static const nn_tensor *bget(binder *bd, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (bd->failed) return NULL;
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (bd->list) {
        bd->list(name, ndim, shape, bd->list_ctx);
        bd->placeholder = nn_tensor_view(NULL, NN_F32, DEVICE_CPU, ndim, shape);
        return &bd->placeholder;
    }
    const nn_tensor *t = nn_weights_get(bd->w, bd->prefix, name, ndim, shape, bd->err, bd->errlen);
    if (!t) {
        bd->failed = 1;
        return NULL;
    }
    bd->u->nparams += t->numel;
    /* what sdxl_ops widens into its big scratch slot: f16 weights (bf16 go to the bf16 GEMM as stored) */
    if ((t->dtype == NN_F16 || (t->dtype == NN_F32 && ((uintptr_t)t->data & 3u))) && t->numel > bd->u->max_widen)
        bd->u->max_widen = t->numel;
    return t;
}

static ulin bind_linear(binder *bd, int in, int out, int bias, const char *name)
{
    ulin l = {0};
    l.w = bget(bd, 2, (int64_t[]){out, in}, "%s.weight", name);
    if (bias) l.b = bget(bd, 1, (int64_t[]){out}, "%s.bias", name);
    return l;
}

/* proj_in / proj_out: a linear layer, or (use_linear_projection false) the equivalent 1x1 convolution */
static ulin bind_proj(binder *bd, int in, int out, int linear, const char *name)
{
    if (linear) return bind_linear(bd, in, out, 1, name);
    ulin l = {0};
    l.w = bget(bd, 4, (int64_t[]){out, in, 1, 1}, "%s.weight", name);
    l.b = bget(bd, 1, (int64_t[]){out}, "%s.bias", name);
    return l;
}

static uconv bind_conv(binder *bd, int ic, int oc, int k, int stride, const char *name)
{
    uconv c = {.ic = ic, .oc = oc, .stride = stride};
    c.w = bget(bd, 4, (int64_t[]){oc, ic, k, k}, "%s.weight", name);
    c.b = bget(bd, 1, (int64_t[]){oc}, "%s.bias", name);
    return c;
}

static unorm bind_norm(binder *bd, int C, const char *name)
{
    unorm n;
    n.g = bget(bd, 1, (int64_t[]){C}, "%s.weight", name);
    n.b = bget(bd, 1, (int64_t[]){C}, "%s.bias", name);
    return n;
}

static uresnet bind_resnet(binder *bd, int ic, int oc, const char *name)
{
    const int ted = bd->u->cfg.time_embed_dim;
    char s[512];
    uresnet r = {.ic = ic, .oc = oc};
    snprintf(s, sizeof s, "%s.norm1", name);
    r.n1 = bind_norm(bd, ic, s);
    snprintf(s, sizeof s, "%s.conv1", name);
    r.c1 = bind_conv(bd, ic, oc, 3, 1, s);
    snprintf(s, sizeof s, "%s.time_emb_proj", name);
    r.temb = bind_linear(bd, ted, oc, 1, s);
    snprintf(s, sizeof s, "%s.norm2", name);
    r.n2 = bind_norm(bd, oc, s);
    snprintf(s, sizeof s, "%s.conv2", name);
    r.c2 = bind_conv(bd, oc, oc, 3, 1, s);
    if (ic != oc) {
        snprintf(s, sizeof s, "%s.conv_shortcut", name);
        r.sc = bind_conv(bd, ic, oc, 1, 1, s);
    }
    return r;
}

static utrans bind_transformer(binder *bd, int C, int heads, int ctx_dim, int nlayers, const char *name)
{
    const int lin = bd->u->cfg.use_linear_projection, ffi = FF_MULT * C;
    char s[600];
    utrans t = {.C = C, .heads = heads, .dh = C / heads, .ctx_dim = ctx_dim, .nlayers = nlayers};
    t.tb = mem_new(utblock, (size_t)nlayers);
    snprintf(s, sizeof s, "%s.norm", name);
    t.norm = bind_norm(bd, C, s);
    snprintf(s, sizeof s, "%s.proj_in", name);
    t.pin = bind_proj(bd, C, C, lin, s);
    for (int j = 0; j < nlayers; j++) {
        utblock *b = &t.tb[j];
#define TB(field, fn, ...)                                                          \
    do {                                                                            \
        snprintf(s, sizeof s, "%s.transformer_blocks.%d.%s", name, j, field);       \
        fn(__VA_ARGS__);                                                            \
    } while (0)
        TB("norm1", b->ln1 = bind_norm, bd, C, s);
        TB("attn1.to_q", b->q1 = bind_linear, bd, C, C, 0, s);
        /* bf16 weights: the bf16 path throughout, attention included (sdxl_ops.attn_bf16) */
        if (b->q1.w && b->q1.w->dtype == NN_BF16) bd->u->ops.attn_bf16 = 1;
        TB("attn1.to_k", b->k1 = bind_linear, bd, C, C, 0, s);
        TB("attn1.to_v", b->v1 = bind_linear, bd, C, C, 0, s);
        TB("attn1.to_out.0", b->o1 = bind_linear, bd, C, C, 1, s);
        TB("norm2", b->ln2 = bind_norm, bd, C, s);
        TB("attn2.to_q", b->q2 = bind_linear, bd, C, C, 0, s);
        TB("attn2.to_k", b->k2 = bind_linear, bd, ctx_dim, C, 0, s);
        TB("attn2.to_v", b->v2 = bind_linear, bd, ctx_dim, C, 0, s);
        TB("attn2.to_out.0", b->o2 = bind_linear, bd, C, C, 1, s);
        TB("norm3", b->ln3 = bind_norm, bd, C, s);
        TB("ff.net.0.proj", b->ff1 = bind_linear, bd, C, 2 * ffi, 1, s);
        TB("ff.net.2", b->ff2 = bind_linear, bd, ffi, C, 1, s);
#undef TB
    }
    snprintf(s, sizeof s, "%s.proj_out", name);
    t.pout = bind_proj(bd, C, C, lin, s);
    return t;
}

static void free_trans(utrans *t)
{
    free(t->tb);
    t->tb = NULL;
}

void sdxl_unet_free(sdxl_unet *u)
{
    if (!u) return;
    for (int i = 0; i < SDXL_UNET_MAX_BLOCKS; i++)
        for (int j = 0; j < MAXL; j++) {
            free_trans(&u->down[i].attn[j]);
            free_trans(&u->up[i].attn[j]);
        }
    free_trans(&u->mid_attn);
    sdxl_ops_free(&u->ops);
    nn_weights_free(u->owned);
    free(u);
}

static sdxl_unet *unet_bind(const sdxl_unet_config *cfg, const nn_weights *w, const char *prefix,
                            sdxl_unet_tensor_fn list, void *list_ctx, char *err, size_t errlen)
{
    sdxl_unet *u = mem_new(sdxl_unet, 1);
    u->cfg = *cfg;
    sdxl_ops_init(&u->ops);
    const sdxl_unet_config *c = &u->cfg;
    binder bd = {.u = u, .w = w, .prefix = prefix, .err = err, .errlen = errlen, .list = list, .list_ctx = list_ctx};
    const int C0 = c->block_out_channels[0], ted = c->time_embed_dim, nb = c->nblocks;
    u->t1 = bind_linear(&bd, C0, ted, 1, "time_embedding.linear_1");
    u->t2 = bind_linear(&bd, ted, ted, 1, "time_embedding.linear_2");
    if (c->has_add_embed) {
        u->a1 = bind_linear(&bd, c->projection_class_embeddings_input_dim, ted, 1, "add_embedding.linear_1");
        u->a2 = bind_linear(&bd, ted, ted, 1, "add_embedding.linear_2");
    }
    u->conv_in = bind_conv(&bd, c->in_channels, C0, 3, 1, "conv_in");
    char s[256];
    /* down path; skip channels recorded in order for the up path */
    int skipc[SDXL_UNET_MAX_BLOCKS * (MAXL + 1) + 1], nskip = 0;
    skipc[nskip++] = C0;
    int ch = C0;
    for (int i = 0; i < nb; i++) {
        ublock *b = &u->down[i];
        const int oc = c->block_out_channels[i];
        b->nres = c->layers_per_block[i];
        b->has_attn = c->down_attn[i];
        for (int j = 0; j < b->nres; j++) {
            snprintf(s, sizeof s, "down_blocks.%d.resnets.%d", i, j);
            b->res[j] = bind_resnet(&bd, ch, oc, s);
            ch = oc;
            if (b->has_attn) {
                snprintf(s, sizeof s, "down_blocks.%d.attentions.%d", i, j);
                b->attn[j] = bind_transformer(&bd, oc, c->heads[i], c->cross_attention_dim[i], c->transformer_layers[i],
                                              s);
            }
            skipc[nskip++] = ch;
        }
        b->has_sampler = i < nb - 1;
        if (b->has_sampler) {
            snprintf(s, sizeof s, "down_blocks.%d.downsamplers.0.conv", i);
            b->sampler = bind_conv(&bd, ch, ch, 3, 2, s);
            skipc[nskip++] = ch;
        }
    }
    const int last = nb - 1;
    u->mid_res[0] = bind_resnet(&bd, ch, ch, "mid_block.resnets.0");
    u->mid_attn = bind_transformer(&bd, ch, c->heads[last], c->cross_attention_dim[last], c->mid_transformer_layers,
                                   "mid_block.attentions.0");
    u->mid_res[1] = bind_resnet(&bd, ch, ch, "mid_block.resnets.1");
    for (int i = 0; i < nb; i++) {
        ublock *b = &u->up[i];
        const int r = nb - 1 - i, oc = c->block_out_channels[r];   /* diffusers' reversed lists */
        b->nres = c->layers_per_block[r] + 1;
        b->has_attn = c->up_attn[i];
        for (int j = 0; j < b->nres; j++) {
            const int sk = skipc[--nskip];
            snprintf(s, sizeof s, "up_blocks.%d.resnets.%d", i, j);
            b->res[j] = bind_resnet(&bd, ch + sk, oc, s);
            ch = oc;
            if (b->has_attn) {
                snprintf(s, sizeof s, "up_blocks.%d.attentions.%d", i, j);
                b->attn[j] = bind_transformer(&bd, oc, c->heads[r], c->cross_attention_dim[r],
                                              c->up_transformer_layers[i], s);
            }
        }
        b->has_sampler = i < nb - 1;
        if (b->has_sampler) {
            snprintf(s, sizeof s, "up_blocks.%d.upsamplers.0.conv", i);
            b->sampler = bind_conv(&bd, ch, ch, 3, 1, s);
        }
    }
    if (!bd.failed && nskip != 0)
        LOG_FATAL("sdxl_unet_create: %d skip connections left over (the down and up paths disagree)", nskip);
    u->norm_out = bind_norm(&bd, ch, "conv_norm_out");
    u->conv_out = bind_conv(&bd, ch, c->out_channels, 3, 1, "conv_out");
    if (bd.failed) {
        sdxl_unet_free(u);
        return NULL;
    }
    if (!list) sdxl_ops_reserve(&u->ops, u->max_widen);
    return u;
}

sdxl_unet *sdxl_unet_create(const sdxl_unet_config *cfg, const nn_weights *w, const char *prefix, char *err,
                            size_t errlen)
{
    return unet_bind(cfg, w, prefix, NULL, NULL, err, errlen);
}

void sdxl_unet_list_tensors(const sdxl_unet_config *cfg, sdxl_unet_tensor_fn fn, void *ctx)
{
    char err[16];
    sdxl_unet_free(unet_bind(cfg, NULL, NULL, fn, ctx, err, sizeof err));
}

const sdxl_unet_config *sdxl_unet_cfg(const sdxl_unet *u) { return &u->cfg; }
size_t sdxl_unet_param_count(const sdxl_unet *u) { return u->nparams; }
void sdxl_unet_set_lora(sdxl_unet *u, const sdxl_lora_runtime *rt) { u->ops.lora = rt; }
const double *sdxl_unet_op_seconds(const sdxl_unet *u) { return u->ops.seconds; }

sdxl_unet *sdxl_unet_load_diffusers(const char *unet_dir, const char *variant, char *err, size_t errlen)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/config.json", unet_dir);
    sdxl_unet_config cfg;
    if (sdxl_unet_config_load(&cfg, p, err, errlen)) return NULL;
    nn_weights *w = nn_weights_alloc();
    if (nn_weights_add_diffusers(w, unet_dir, "diffusion_pytorch_model", variant, NULL, NULL, err, errlen)) {
        nn_weights_free(w);
        return NULL;
    }
    sdxl_unet *u = sdxl_unet_create(&cfg, w, NULL, err, errlen);
    if (!u) {
        nn_weights_free(w);
        return NULL;
    }
    u->owned = w;
    return u;
}

sdxl_unet *sdxl_unet_load_single_file(const char *ckpt_path, const char *config_path, char *err, size_t errlen)
{
    sdxl_unet_config cfg;
    if (sdxl_unet_config_load(&cfg, config_path, err, errlen)) return NULL;
    nn_weights *w = nn_weights_alloc();
    if (nn_weights_add_file(w, ckpt_path, sdxl_unet_rename_original, &cfg, err, errlen)) {
        nn_weights_free(w);
        return NULL;
    }
    sdxl_unet *u = sdxl_unet_create(&cfg, w, NULL, err, errlen);
    if (!u) {
        nn_weights_free(w);
        return NULL;
    }
    u->owned = w;
    return u;
}

/* ------------------------------------------------------------------------------------------------ workspace */

/* Workspace plan for one call: region sizes in floats. */
typedef struct {
    size_t act;      /* one activation buffer: B * max C*HW over every point of the network */
    size_t skips;    /* every skip tensor of the down path */
    size_t tok;      /* B * max C*HW over transformer levels (token matrices) */
    size_t kv;       /* B * max C * max(HW, ctx_len) over transformer levels */
    size_t conv;     /* largest conv im2col workspace */
    size_t emb;      /* time / add embeddings */
    size_t tp;       /* a ResNet's time projection [B, oc] */
} ws_plan;

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static void plan_conv(ws_plan *p, const sdxl_ops *o, const uconv *c, int B, int H, int W)
{
    nn_conv_geom g = nn_conv2d_geom(c->ic, c->oc, H, W, (int)c->w->shape[2], (int)c->w->shape[3], c->stride,
                                    (int)c->w->shape[2] / 2);
    p->conv = zmax(p->conv, sdxl_ops_conv_ws_floats(o, &g, B));
}

static void plan_resnet(ws_plan *p, const sdxl_ops *o, const uresnet *r, int B, int H, int W)
{
    p->act = zmax(p->act, (size_t)B * zmax(r->ic, r->oc) * H * W);
    p->tp = zmax(p->tp, (size_t)B * r->oc);
    plan_conv(p, o, &r->c1, B, H, W);
    plan_conv(p, o, &r->c2, B, H, W);
    if (r->sc.w) plan_conv(p, o, &r->sc, B, H, W);
}

static void plan_trans(ws_plan *p, const utrans *t, int B, int HW, int L)
{
    p->tok = zmax(p->tok, (size_t)B * t->C * HW);
    p->kv = zmax(p->kv, (size_t)B * t->C * (size_t)(HW > L ? HW : L));
}

static ws_plan make_plan(const sdxl_unet *u, int B, int H, int W, int L)
{
    ws_plan p = {0};
    const sdxl_unet_config *c = &u->cfg;
    const sdxl_ops *o = &u->ops;
    p.emb = (size_t)B * (c->block_out_channels[0] + 4 * (size_t)c->time_embed_dim +
                         (c->has_add_embed ? c->projection_class_embeddings_input_dim : 0));
    int h = H, w = W;
    plan_conv(&p, o, &u->conv_in, B, h, w);
    p.act = zmax(p.act, (size_t)B * c->block_out_channels[0] * h * w);
    p.skips += (size_t)B * c->block_out_channels[0] * h * w;
    for (int i = 0; i < c->nblocks; i++) {
        const ublock *b = &u->down[i];
        for (int j = 0; j < b->nres; j++) {
            plan_resnet(&p, o, &b->res[j], B, h, w);
            if (b->has_attn) plan_trans(&p, &b->attn[j], B, h * w, L);
            p.skips += (size_t)B * b->res[j].oc * h * w;
        }
        if (b->has_sampler) {
            plan_conv(&p, o, &b->sampler, B, h, w);
            h /= 2;
            w /= 2;
            p.skips += (size_t)B * b->sampler.oc * h * w;
        }
    }
    plan_resnet(&p, o, &u->mid_res[0], B, h, w);
    plan_trans(&p, &u->mid_attn, B, h * w, L);
    plan_resnet(&p, o, &u->mid_res[1], B, h, w);
    for (int i = 0; i < c->nblocks; i++) {
        const ublock *b = &u->up[i];
        for (int j = 0; j < b->nres; j++) {
            plan_resnet(&p, o, &b->res[j], B, h, w);
            if (b->has_attn) plan_trans(&p, &b->attn[j], B, h * w, L);
        }
        if (b->has_sampler) {
            h *= 2;
            w *= 2;
            p.act = zmax(p.act, (size_t)B * b->sampler.oc * h * w);
            plan_conv(&p, o, &b->sampler, B, h, w);
        }
    }
    plan_conv(&p, o, &u->conv_out, B, h, w);
    p.act = zmax(p.act, (size_t)B * c->out_channels * h * w);
    return p;
}

/* the transformer region: h, n, q, a (tok each), k, v (kv each), ff (2 FF_MULT tok), g (FF_MULT tok) */
static size_t trans_floats(const ws_plan *p) { return p->tok * (4 + 3 * FF_MULT) + 2 * p->kv; }

#define ALIGN16(n) (((n) + 15) / 16 * 16)

/* the regions of one call, in float slots: emb, tp, X, Y, T1, T2, skips, trans, conv, and on CUDA also the
 * device copies of the sample, the context and the output */
static size_t dev_floats(const sdxl_unet *u, const ws_plan *p, int B, int H, int W, int L)
{
    const sdxl_unet_config *c = &u->cfg;
    size_t n = ALIGN16(p->emb) + ALIGN16(p->tp) + 4 * ALIGN16(p->act) + ALIGN16(p->skips) +
               ALIGN16(trans_floats(p)) + ALIGN16(p->conv) + 64;
    if (u->ops.dev != DEVICE_CPU)
        n += ALIGN16((size_t)B * c->in_channels * H * W) + ALIGN16((size_t)B * L * c->cross_attention_dim[0]) +
             ALIGN16((size_t)B * c->out_channels * H * W);
    return n;
}

size_t sdxl_unet_ws_floats(const sdxl_unet *u, int B, int H, int W, int ctx_len)
{
    ws_plan p = make_plan(u, B, H, W, ctx_len);
    /* on CUDA the caller's (host) workspace only stages the embeddings; the rest is the context's device memory */
    if (u->ops.dev != DEVICE_CPU) return ALIGN16(p.emb) + 64;
    return dev_floats(u, &p, B, H, W, ctx_len);
}

int sdxl_unet_set_device(sdxl_unet *u, device_kind d, char *err, size_t errlen)
{
    return sdxl_ops_set_device(&u->ops, d, err, errlen);
}

device_kind sdxl_unet_device(const sdxl_unet *u) { return u->ops.dev; }
size_t sdxl_unet_device_weight_bytes(const sdxl_unet *u) { return sdxl_ops_device_weight_bytes(&u->ops); }

/* ------------------------------------------------------------------------------------------------ forward */

typedef struct {
    sdxl_unet *u;
    int B, L;
    const float *ctx;      /* [B, L, cross_attention_dim] */
    const float *semb;     /* SiLU(temb) [B, time_embed_dim] */
    float *tp;             /* [B, max oc] */
    float *tmp1, *tmp2;    /* act-sized scratch */
    float *trans;          /* transformer region */
    size_t tok, kv;
    float *conv_ws;
    size_t conv_n;
} fwd;

static void run_conv(fwd *f, float *out, const float *in, const uconv *c, int H, int W)
{
    nn_conv_geom g = nn_conv2d_geom(c->ic, c->oc, H, W, (int)c->w->shape[2], (int)c->w->shape[3], c->stride,
                                    (int)c->w->shape[2] / 2);
    sdxl_ops_conv2d(&f->u->ops, out, in, f->B, &g, c->w, c->b, f->conv_ws, f->conv_n);
}

/* out[B, oc, HW] = resnet(in[B, ic, HW]); out must differ from in */
static void run_resnet(fwd *f, float *out, const float *in, const uresnet *r, int H, int W)
{
    sdxl_unet *u = f->u;
    const int B = f->B, HW = H * W, G = u->cfg.norm_num_groups;
    const float eps = u->cfg.norm_eps;
    float *t1 = f->tmp1, *t2 = f->tmp2;
    sdxl_ops_groupnorm(&u->ops, t1, in, B, r->ic, HW, G, eps, r->n1.g, r->n1.b, 1);
    run_conv(f, t2, t1, &r->c1, H, W);
    /* + time_emb_proj(SiLU(temb)) per channel */
    sdxl_ops_linear(&u->ops, f->tp, f->semb, B, r->temb.w, r->temb.b, 0);
    sdxl_ops_chan_add(&u->ops, t2, f->tp, B, r->oc, HW);
    sdxl_ops_groupnorm(&u->ops, t2, t2, B, r->oc, HW, G, eps, r->n2.g, r->n2.b, 1);
    run_conv(f, t1, t2, &r->c2, H, W);
    if (r->sc.w) {
        run_conv(f, out, in, &r->sc, H, W);
        sdxl_ops_add(&u->ops, out, out, t1, (size_t)B * r->oc * HW);
    } else
        sdxl_ops_add(&u->ops, out, in, t1, (size_t)B * r->oc * HW);
}

/* out[B, C, HW] = transformer(in[B, C, HW]) (out may equal in) */
static void run_trans(fwd *f, float *out, const float *in, const utrans *t, int HW)
{
    sdxl_unet *u = f->u;
    sdxl_ops *o = &u->ops;
    const int B = f->B, C = t->C, T = B * HW, L = f->L, ffi = FF_MULT * C;
    float *h = f->trans, *n = h + f->tok, *q = n + f->tok, *a = q + f->tok, *k = a + f->tok, *v = k + f->kv;
    float *ff = v + f->kv, *g = ff + 2 * FF_MULT * f->tok;
    sdxl_ops_groupnorm(o, f->tmp1, in, B, C, HW, u->cfg.norm_num_groups, TRANSFORMER_GN_EPS, t->norm.g, t->norm.b, 0);
    sdxl_ops_to_tokens(o, n, f->tmp1, B, C, HW);
    sdxl_ops_linear(o, h, n, T, t->pin.w, t->pin.b, 0);
    for (int j = 0; j < t->nlayers; j++) {
        const utblock *b = &t->tb[j];
        /* self-attention */
        sdxl_ops_layernorm(o, n, h, T, C, LAYERNORM_EPS, b->ln1.g, b->ln1.b);
        sdxl_ops_linear_multi(o, (float *const[]){q, k, v}, n, T,
                              (const nn_tensor *const[]){b->q1.w, b->k1.w, b->v1.w}, 3);
        sdxl_ops_attention(o, a, q, k, v, B, t->heads, HW, HW, t->dh);
        sdxl_ops_linear(o, h, a, T, b->o1.w, b->o1.b, 1);
        /* cross-attention on the text */
        sdxl_ops_layernorm(o, n, h, T, C, LAYERNORM_EPS, b->ln2.g, b->ln2.b);
        sdxl_ops_linear(o, q, n, T, b->q2.w, NULL, 0);
        sdxl_ops_linear_multi(o, (float *const[]){k, v}, f->ctx, B * L, (const nn_tensor *const[]){b->k2.w, b->v2.w},
                              2);
        sdxl_ops_attention(o, a, q, k, v, B, t->heads, HW, L, t->dh);
        sdxl_ops_linear(o, h, a, T, b->o2.w, b->o2.b, 1);
        /* GEGLU feed-forward */
        sdxl_ops_layernorm(o, n, h, T, C, LAYERNORM_EPS, b->ln3.g, b->ln3.b);
        sdxl_ops_linear(o, ff, n, T, b->ff1.w, b->ff1.b, 0);
        sdxl_ops_geglu(o, g, ff, T, ffi);
        sdxl_ops_linear(o, h, g, T, b->ff2.w, b->ff2.b, 1);
    }
    sdxl_ops_linear(o, n, h, T, t->pout.w, t->pout.b, 0);
    sdxl_ops_from_tokens_add(o, out, n, in, B, C, HW);
}

static int check_finite(const float *x, size_t n, const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            snprintf(err, errlen, "sdxl_unet_forward: %s[%zu] is not finite (%g)", what, i, (double)x[i]);
            return -1;
        }
    return 0;
}

int sdxl_unet_forward(sdxl_unet *u, float *eps, const float *x, const float *t, const float *ctx, int ctx_len,
                      const float *text_embeds, const float *time_ids, int B, int H, int W, float *ws, size_t ws_n,
                      char *err, size_t errlen)
{
    const sdxl_unet_config *c = &u->cfg;
    const int down = 1 << (c->nblocks - 1);
    if (B < 1 || H < 1 || W < 1 || H % down || W % down || ctx_len < 1) {
        snprintf(err, errlen, "sdxl_unet_forward: batch %d, latent %dx%d, context length %d: the latent sides must be "
                 "positive multiples of %d", B, H, W, ctx_len, down);
        return -1;
    }
    const size_t need = sdxl_unet_ws_floats(u, B, H, W, ctx_len);
    if (ws_n < need) {
        snprintf(err, errlen, "sdxl_unet_forward: workspace %zu floats < %zu", ws_n, need);
        return -1;
    }
    const int ptext = c->has_add_embed ? c->projection_class_embeddings_input_dim - 6 * c->addition_time_embed_dim : 0;
    if (check_finite(x, (size_t)B * c->in_channels * H * W, "sample", err, errlen) ||
        check_finite(t, (size_t)B, "timestep", err, errlen) ||
        check_finite(ctx, (size_t)B * ctx_len * c->cross_attention_dim[0], "encoder_hidden_states", err, errlen))
        return -1;
    if (c->has_add_embed) {
        if (!text_embeds || !time_ids) {
            snprintf(err, errlen, "sdxl_unet_forward: the text_time embedding needs text_embeds and time_ids");
            return -1;
        }
        if (check_finite(text_embeds, (size_t)B * ptext, "text_embeds", err, errlen) ||
            check_finite(time_ids, (size_t)B * 6, "time_ids", err, errlen))
            return -1;
    }
    for (int i = 1; i < c->nblocks; i++)
        if (c->cross_attention_dim[i] != c->cross_attention_dim[0]) {
            snprintf(err, errlen, "sdxl_unet_forward: per-block cross_attention_dim differ; one context cannot feed "
                     "them");
            return -1;
        }
    ws_plan p = make_plan(u, B, H, W, ctx_len);
    sdxl_ops *o = &u->ops;
    const int cuda = o->dev != DEVICE_CPU;
    /* CPU: every region in the caller's workspace. CUDA: every region in the context's device workspace; the
     * caller's workspace stages the host-computed embeddings (same offsets as the device emb region). */
    float *host = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *base = cuda ? sdxl_ops_workspace(o, dev_floats(u, &p, B, H, W, ctx_len)) : host;
    float *emb = base, *tp = emb + ALIGN16(p.emb), *X = tp + ALIGN16(p.tp), *Y = X + ALIGN16(p.act);
    float *T1 = Y + ALIGN16(p.act), *T2 = T1 + ALIGN16(p.act), *skips = T2 + ALIGN16(p.act);
    float *trans = skips + ALIGN16(p.skips), *conv_ws = trans + ALIGN16(trans_floats(&p));
    float *xin = (float *)x, *ctxd = (float *)ctx, *out = eps;
    if (cuda) {
        xin = conv_ws + ALIGN16(p.conv);
        ctxd = xin + ALIGN16((size_t)B * c->in_channels * H * W);
        out = ctxd + ALIGN16((size_t)B * ctx_len * c->cross_attention_dim[0]);
        sdxl_ops_upload(o, xin, x, (size_t)B * c->in_channels * H * W);
        sdxl_ops_upload(o, ctxd, ctx, (size_t)B * ctx_len * c->cross_attention_dim[0]);
    }
    fwd f = {.u = u, .B = B, .L = ctx_len, .ctx = ctxd, .tp = tp, .tmp1 = T1, .tmp2 = T2, .trans = trans,
             .tok = p.tok, .kv = p.kv, .conv_ws = conv_ws, .conv_n = p.conv};

    /* time embedding (+ text_time), then SiLU once: every ResNet applies SiLU to temb before its projection */
    const int C0 = c->block_out_channels[0], ted = c->time_embed_dim;
    float *sin_t = emb, *h1 = sin_t + (size_t)B * C0, *temb = h1 + (size_t)B * ted, *semb = temb + (size_t)B * ted;
    float *addin = semb + (size_t)B * ted;
    float *h2 = addin + (size_t)B * (c->has_add_embed ? c->projection_class_embeddings_input_dim : 0);
    /* the sinusoids and the text_time input are computed on the host (into the device's own region on the CPU) */
    float *hsin = cuda ? host + (sin_t - emb) : sin_t, *haddin = cuda ? host + (addin - emb) : addin;
    sdxl_ops_timestep_embedding(hsin, t, B, C0, c->flip_sin_to_cos, (float)c->freq_shift);
    sdxl_ops_upload(o, sin_t, hsin, (size_t)B * C0);
    sdxl_ops_linear(o, h1, sin_t, B, u->t1.w, u->t1.b, 0);
    sdxl_ops_silu(o, h1, h1, (size_t)B * ted);
    sdxl_ops_linear(o, temb, h1, B, u->t2.w, u->t2.b, 0);
    if (c->has_add_embed) {
        const int P = c->projection_class_embeddings_input_dim, ad = c->addition_time_embed_dim;
        for (int b = 0; b < B; b++) {
            memcpy(haddin + (size_t)b * P, text_embeds + (size_t)b * ptext, (size_t)ptext * sizeof(float));
            sdxl_ops_timestep_embedding(haddin + (size_t)b * P + ptext, time_ids + (size_t)b * 6, 6, ad,
                                        c->flip_sin_to_cos, (float)c->freq_shift);
        }
        sdxl_ops_upload(o, addin, haddin, (size_t)B * P);
        sdxl_ops_linear(o, h1, addin, B, u->a1.w, u->a1.b, 0);
        sdxl_ops_silu(o, h1, h1, (size_t)B * ted);
        sdxl_ops_linear(o, h2, h1, B, u->a2.w, u->a2.b, 0);
        sdxl_ops_add(o, temb, temb, h2, (size_t)B * ted);
    }
    sdxl_ops_silu(o, semb, temb, (size_t)B * ted);
    f.semb = semb;

    /* down path: every block output is pushed on the skip stack */
    int h = H, w = W, ch = C0;
    float *sp = skips;
    float *skip_at[SDXL_UNET_MAX_BLOCKS * (MAXL + 1) + 1];
    int skip_ch[SDXL_UNET_MAX_BLOCKS * (MAXL + 1) + 1], nskip = 0;
#define PUSH(src)                                                              \
    do {                                                                       \
        size_t n_ = (size_t)B * ch * h * w;                                    \
        sdxl_ops_copy(o, sp, (src), n_);                                       \
        skip_at[nskip] = sp;                                                   \
        skip_ch[nskip++] = ch;                                                 \
        sp += n_;                                                              \
    } while (0)
    run_conv(&f, X, xin, &u->conv_in, h, w);
    PUSH(X);
    for (int i = 0; i < c->nblocks; i++) {
        const ublock *b = &u->down[i];
        for (int j = 0; j < b->nres; j++) {
            run_resnet(&f, Y, X, &b->res[j], h, w);
            ch = b->res[j].oc;
            if (b->has_attn) run_trans(&f, Y, Y, &b->attn[j], h * w);
            float *s = X;
            X = Y;
            Y = s;
            PUSH(X);
        }
        if (b->has_sampler) {
            run_conv(&f, Y, X, &b->sampler, h, w);
            h /= 2;
            w /= 2;
            float *s = X;
            X = Y;
            Y = s;
            PUSH(X);
        }
    }
    run_resnet(&f, Y, X, &u->mid_res[0], h, w);
    run_trans(&f, Y, Y, &u->mid_attn, h * w);
    run_resnet(&f, X, Y, &u->mid_res[1], h, w);
    for (int i = 0; i < c->nblocks; i++) {
        const ublock *b = &u->up[i];
        for (int j = 0; j < b->nres; j++) {
            const int sk = skip_ch[--nskip];
            sdxl_ops_concat(o, Y, X, ch, skip_at[nskip], sk, B, h * w);
            run_resnet(&f, X, Y, &b->res[j], h, w);
            ch = b->res[j].oc;
            if (b->has_attn) run_trans(&f, X, X, &b->attn[j], h * w);
        }
        if (b->has_sampler) {
            sdxl_ops_upsample2x(o, Y, X, B, ch, h, w);
            h *= 2;
            w *= 2;
            run_conv(&f, X, Y, &b->sampler, h, w);
        }
    }
#undef PUSH
    sdxl_ops_groupnorm(o, Y, X, B, ch, h * w, c->norm_num_groups, c->norm_eps, u->norm_out.g, u->norm_out.b, 1);
    run_conv(&f, out, Y, &u->conv_out, h, w);
    if (cuda) sdxl_ops_download(o, eps, out, (size_t)B * c->out_channels * H * W);
    return 0;
}
