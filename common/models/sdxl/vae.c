/* models/sdxl/vae: SDXL's AutoencoderKL decoder in fp32 (issue 9 item 5; paper App. H); see vae.h for the
 * structure, the single-file name map and the memory plan. Layer ops are the engine's CPU layers (nn_conv2d,
 * nn_groupnorm, nn_silu, nn_sgemm), called from the few helpers below only, so they move onto the backend table
 * as one piece. */
#include "vae.h"
#include "act.h"
#include "conv.h"
#include "gemm.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "norm.h"
#include "tensor.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f
#define ATTN_ROWS 256   /* query rows per attention block: scores are ATTN_ROWS x HW floats */

void sdxl_vae_config_sdxl(sdxl_vae_config *c)
{
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 3;
    c->latent_channels = 4;
    c->nblocks = 4;
    c->block_out[0] = 128;
    c->block_out[1] = 256;
    c->block_out[2] = c->block_out[3] = 512;
    c->layers_per_block = 2;
    c->norm_num_groups = 32;
    c->scaling_factor = 0.13025f;
}

int sdxl_vae_scale(const sdxl_vae_config *c) { return 1 << (c->nblocks - 1); }

int sdxl_vae_config_read(sdxl_vae_config *c, const char *path, char *err, size_t errlen)
{
    json_doc *d = json_load(path, err, errlen);
    if (!d) return -1;
    const json_value *o = json_root(d), *ub;
    int rc = -1;
    int64_t inc, outc, lat, lpb, groups, bo[SDXL_VAE_MAX_BLOCKS];
    size_t nb = 0;
    double sf;
    const char *cls, *act;
    memset(c, 0, sizeof *c);
    if (!o || o->type != JSON_OBJECT) {
        log_errf(err, errlen, path, "not a JSON object");
        goto done;
    }
    if (json_get_string_or(d, o, "_class_name", "AutoencoderKL", &cls, err, errlen) ||
        json_get_int_or(d, o, "in_channels", 1, 64, 3, &inc, err, errlen) ||
        json_get_int_or(d, o, "out_channels", 1, 64, 3, &outc, err, errlen) ||
        json_get_int_or(d, o, "latent_channels", 1, 1024, 4, &lat, err, errlen) ||
        json_get_int_or(d, o, "layers_per_block", 1, 64, 1, &lpb, err, errlen) ||
        json_get_int_or(d, o, "norm_num_groups", 1, 4096, 32, &groups, err, errlen) ||
        json_get_double_or(d, o, "scaling_factor", 0.18215, &sf, err, errlen) ||
        json_get_string_or(d, o, "act_fn", "silu", &act, err, errlen) ||
        json_get_int_array(d, o, "block_out_channels", 1, 1 << 16, bo, SDXL_VAE_MAX_BLOCKS, &nb, err, errlen))
        goto done;
    if (strcmp(cls, "AutoencoderKL") != 0) {
        log_errf(err, errlen, path, "_class_name: '%s' is not AutoencoderKL", cls);
        goto done;
    }
    if (strcmp(act, "silu") != 0) {
        log_errf(err, errlen, path, "act_fn: '%s' is not implemented (silu)", act);
        goto done;
    }
    if (!(sf > 0.0 && isfinite(sf))) {
        log_errf(err, errlen, path, "scaling_factor: %g is not positive", sf);
        goto done;
    }
    for (size_t i = 0; i < nb; i++)
        if (bo[i] % groups != 0) {
            log_errf(err, errlen, path, "block_out_channels[%zu] = %lld is not a multiple of norm_num_groups %lld", i,
                     (long long)bo[i], (long long)groups);
            goto done;
        }
    ub = json_get(o, "up_block_types");
    if (ub) {
        if (ub->type != JSON_ARRAY || json_len(ub) != nb) {
            log_errf(err, errlen, path, "up_block_types: need an array of %zu entries (one per block_out_channels)",
                     nb);
            goto done;
        }
        for (size_t i = 0; i < nb; i++) {
            const json_value *t = json_at(ub, i);
            if (t->type != JSON_STRING || strcmp(t->u.str.s, "UpDecoderBlock2D") != 0) {
                log_errf(err, errlen, path, "up_block_types[%zu]: only UpDecoderBlock2D is implemented", i);
                goto done;
            }
        }
    }
    c->in_channels = (int)inc;
    c->out_channels = (int)outc;
    c->latent_channels = (int)lat;
    c->layers_per_block = (int)lpb;
    c->norm_num_groups = (int)groups;
    c->scaling_factor = (float)sf;
    c->nblocks = (int)nb;
    for (size_t i = 0; i < nb; i++) c->block_out[i] = (int)bo[i];
    rc = 0;
done:
    json_free(d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------------------
 * Names. */

/* rewrite the resnet/attention leaf of an ldm name: conv_shortcut -> nin_shortcut, group_norm -> norm, to_q -> q,
 * to_k -> k, to_v -> v, to_out.0 -> proj_out */
static const char *leaf_ldm(const char *leaf)
{
    static const char *const map[][2] = {{"conv_shortcut.", "nin_shortcut."}, {"group_norm.", "norm."},
                                         {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."}, {"to_out.0.", "proj_out."}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i][0]);
        if (strncmp(leaf, map[i][0], n) == 0) {
            static __thread char buf[128];
            snprintf(buf, sizeof buf, "%s%s", map[i][1], leaf + n);
            return buf;
        }
    }
    return leaf;
}

int sdxl_vae_name_ldm(const char *name, int nblocks, char *out, size_t outlen)
{
    const char *part = NULL, *rest = NULL;
    int n;
    if (!strncmp(name, "encoder.", 8)) part = "encoder", rest = name + 8;
    else if (!strncmp(name, "decoder.", 8)) part = "decoder", rest = name + 8;
    if (!part) {
        if (!strcmp(name, "quant_conv.weight") || !strcmp(name, "quant_conv.bias") ||
            !strcmp(name, "post_quant_conv.weight") || !strcmp(name, "post_quant_conv.bias"))
            n = snprintf(out, outlen, "%s", name);
        else
            return -1;
        return n < 0 || (size_t)n >= outlen ? -1 : 0;
    }
    int i, j, k = 0;
    char leaf[128];
    if (sscanf(rest, "conv_norm_out.%127s", leaf) == 1)
        n = snprintf(out, outlen, "%s.norm_out.%s", part, leaf);
    else if (!strncmp(rest, "conv_in.", 8) || !strncmp(rest, "conv_out.", 9))
        n = snprintf(out, outlen, "%s.%s", part, rest);
    else if (sscanf(rest, "mid_block.resnets.%d.%n", &i, &k) == 1 && k > 0 && (i == 0 || i == 1))
        n = snprintf(out, outlen, "%s.mid.block_%d.%s", part, i + 1, leaf_ldm(rest + k));
    else if ((k = 0, sscanf(rest, "mid_block.attentions.0.%n", &k), k > 0))
        n = snprintf(out, outlen, "%s.mid.attn_1.%s", part, leaf_ldm(rest + k));
    else if (!strcmp(part, "encoder") && (k = 0, sscanf(rest, "down_blocks.%d.resnets.%d.%n", &i, &j, &k), k > 0))
        n = snprintf(out, outlen, "encoder.down.%d.block.%d.%s", i, j, leaf_ldm(rest + k));
    else if (!strcmp(part, "encoder") && (k = 0, sscanf(rest, "down_blocks.%d.downsamplers.0.conv.%n", &i, &k), k > 0))
        n = snprintf(out, outlen, "encoder.down.%d.downsample.conv.%s", i, rest + k);
    else if (!strcmp(part, "decoder") && (k = 0, sscanf(rest, "up_blocks.%d.resnets.%d.%n", &i, &j, &k), k > 0) &&
             i < nblocks)
        n = snprintf(out, outlen, "decoder.up.%d.block.%d.%s", nblocks - 1 - i, j, leaf_ldm(rest + k));
    else if (!strcmp(part, "decoder") && (k = 0, sscanf(rest, "up_blocks.%d.upsamplers.0.conv.%n", &i, &k), k > 0) &&
             i < nblocks)
        n = snprintf(out, outlen, "decoder.up.%d.upsample.conv.%s", nblocks - 1 - i, rest + k);
    else
        return -1;
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------------------------
 * Enumeration of every tensor (for the checkpoint tool and as the loader's plan). */

typedef void (*enum_fn)(const char *name, int ndim, const int64_t *shape, void *ctx);

static void emit(enum_fn fn, void *ctx, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static void emit(enum_fn fn, void *ctx, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {a, b, c, d};
    fn(name, ndim, shape, ctx);
}

static void enum_conv(enum_fn fn, void *ctx, const char *p, int oc, int ic, int k)
{
    emit(fn, ctx, 4, oc, ic, k, k, "%s.weight", p);
    emit(fn, ctx, 1, oc, 0, 0, 0, "%s.bias", p);
}

static void enum_norm(enum_fn fn, void *ctx, const char *p, int c)
{
    emit(fn, ctx, 1, c, 0, 0, 0, "%s.weight", p);
    emit(fn, ctx, 1, c, 0, 0, 0, "%s.bias", p);
}

static void enum_resnet(enum_fn fn, void *ctx, const char *p, int ic, int oc)
{
    char q[256];
    snprintf(q, sizeof q, "%s.norm1", p), enum_norm(fn, ctx, q, ic);
    snprintf(q, sizeof q, "%s.conv1", p), enum_conv(fn, ctx, q, oc, ic, 3);
    snprintf(q, sizeof q, "%s.norm2", p), enum_norm(fn, ctx, q, oc);
    snprintf(q, sizeof q, "%s.conv2", p), enum_conv(fn, ctx, q, oc, oc, 3);
    if (ic != oc) snprintf(q, sizeof q, "%s.conv_shortcut", p), enum_conv(fn, ctx, q, oc, ic, 1);
}

static void enum_mid(enum_fn fn, void *ctx, const char *part, int c)
{
    char q[256];
    snprintf(q, sizeof q, "%s.mid_block.resnets.0", part), enum_resnet(fn, ctx, q, c, c);
    snprintf(q, sizeof q, "%s.mid_block.attentions.0.group_norm", part), enum_norm(fn, ctx, q, c);
    static const char *const lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        emit(fn, ctx, 2, c, c, 0, 0, "%s.mid_block.attentions.0.%s.weight", part, lin[i]);
        emit(fn, ctx, 1, c, 0, 0, 0, "%s.mid_block.attentions.0.%s.bias", part, lin[i]);
    }
    snprintf(q, sizeof q, "%s.mid_block.resnets.1", part), enum_resnet(fn, ctx, q, c, c);
}

void sdxl_vae_enumerate(const sdxl_vae_config *c, enum_fn fn, void *ctx)
{
    char q[256];
    int n = c->nblocks, L = c->latent_channels, last = c->block_out[n - 1];
    enum_conv(fn, ctx, "encoder.conv_in", c->block_out[0], c->in_channels, 3);
    for (int i = 0, prev = c->block_out[0]; i < n; i++) {
        int oc = c->block_out[i];
        for (int j = 0; j < c->layers_per_block; j++) {
            snprintf(q, sizeof q, "encoder.down_blocks.%d.resnets.%d", i, j);
            enum_resnet(fn, ctx, q, j == 0 ? prev : oc, oc);
        }
        if (i < n - 1) snprintf(q, sizeof q, "encoder.down_blocks.%d.downsamplers.0.conv", i),
                       enum_conv(fn, ctx, q, oc, oc, 3);
        prev = oc;
    }
    enum_mid(fn, ctx, "encoder", last);
    enum_norm(fn, ctx, "encoder.conv_norm_out", last);
    enum_conv(fn, ctx, "encoder.conv_out", 2 * L, last, 3);
    enum_conv(fn, ctx, "decoder.conv_in", last, L, 3);
    enum_mid(fn, ctx, "decoder", last);
    for (int i = 0, prev = last; i < n; i++) {
        int oc = c->block_out[n - 1 - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            snprintf(q, sizeof q, "decoder.up_blocks.%d.resnets.%d", i, j);
            enum_resnet(fn, ctx, q, j == 0 ? prev : oc, oc);
        }
        if (i < n - 1) snprintf(q, sizeof q, "decoder.up_blocks.%d.upsamplers.0.conv", i),
                       enum_conv(fn, ctx, q, oc, oc, 3);
        prev = oc;
    }
    enum_norm(fn, ctx, "decoder.conv_norm_out", c->block_out[0]);
    enum_conv(fn, ctx, "decoder.conv_out", c->out_channels, c->block_out[0], 3);
    enum_conv(fn, ctx, "quant_conv", 2 * L, 2 * L, 1);
    enum_conv(fn, ctx, "post_quant_conv", L, L, 1);
}

/* ---------------------------------------------------------------------------------------------------------
 * Weights. */

typedef struct { float *w, *b; int oc, ic, k; } vconv;
typedef struct { float *g, *b; int c; } vnorm;
typedef struct { vnorm n1, n2; vconv c1, c2, sc; int ic, oc; } vresnet;
typedef struct { vnorm gn; float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo; int c; } vattn;
typedef struct { vresnet *res; int nres; vconv up; int has_up; } vupblock;

struct sdxl_vae {
    sdxl_vae_config cfg;
    vconv post_quant, conv_in, conv_out;
    vresnet mid1, mid2;
    vattn attn;
    vupblock up[SDXL_VAE_MAX_BLOCKS];
    vnorm norm_out;
    float **owned;   /* every widened tensor, for free */
    size_t nowned, capowned;
    float *ws;       /* conv workspace, grown as needed */
    size_t ws_n;
};

typedef struct {
    sdxl_vae *v;
    const safetensors *st;
    int single;
    const char *label;
    char *err;
    size_t errlen;
    int failed;
} loader;

/* The fp32 copy of tensor `name` with numel = prod(shape); a stored shape that differs only by trailing 1s
 * (1x1 conv vs linear) is accepted. NULL after the first failure (the message names the tensor). */
static float *load_t(loader *L, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    if (L->failed) return NULL;
    char key[320], ldm[256];
    if (L->single) {
        if (sdxl_vae_name_ldm(name, L->v->cfg.nblocks, ldm, sizeof ldm)) LOG_FATAL("vae: no ldm name for %s", name);
        snprintf(key, sizeof key, "first_stage_model.%s", ldm);
    } else {
        snprintf(key, sizeof key, "%s", name);
    }
    const safetensors_tensor *st = safetensors_find(L->st, key);
    if (!st) {
        log_errf(L->err, L->errlen, L->label, "tensor '%s': missing (VAE decoder)", key);
        L->failed = 1;
        return NULL;
    }
    int64_t want[4] = {a, b, c, d};
    int ok = 1;
    for (int i = 0, j = 0; i < 4 || j < st->ndim;) {
        int64_t x = i < ndim ? want[i] : 1, y = j < st->ndim ? st->shape[j] : 1;
        if (i >= ndim && j >= st->ndim) break;
        if (x != y) {
            ok = 0;
            break;
        }
        i++, j++;
    }
    nn_tensor t;
    char why[256];
    if (ok && nn_tensor_from_safetensors(&t, st, L->label, why, sizeof why)) {
        snprintf(L->err, L->errlen, "%s", why);
        L->failed = 1;
        return NULL;
    }
    if (!ok) {
        char s[96] = "";
        size_t o = 0;
        for (int i = 0; i < st->ndim && o < sizeof s - 24; i++)
            o += (size_t)snprintf(s + o, sizeof s - o, "%s%lld", i ? ", " : "", (long long)st->shape[i]);
        char w[96] = "";
        o = 0;
        for (int i = 0; i < ndim; i++) o += (size_t)snprintf(w + o, sizeof w - o, "%s%lld", i ? ", " : "", (long long)want[i]);
        log_errf(L->err, L->errlen, L->label, "tensor '%s': shape [%s], expected [%s]", key, s, w);
        L->failed = 1;
        return NULL;
    }
    size_t bad = nn_tensor_first_nonfinite(&t);
    if (bad != (size_t)-1) {
        log_errf(L->err, L->errlen, L->label, "tensor '%s': non-finite value at element %zu", key, bad);
        L->failed = 1;
        return NULL;
    }
    float *f = mem_alloc(t.numel * sizeof *f);
    nn_tensor_to_f32(f, &t);
    sdxl_vae *v = L->v;
    if (v->nowned == v->capowned) {
        v->capowned = v->capowned ? 2 * v->capowned : 64;
        v->owned = mem_realloc(v->owned, v->capowned * sizeof *v->owned);
    }
    v->owned[v->nowned++] = f;
    return f;
}

static void load_conv(loader *L, vconv *cv, const char *p, int oc, int ic, int k)
{
    char n[256];
    cv->oc = oc, cv->ic = ic, cv->k = k;
    snprintf(n, sizeof n, "%s.weight", p), cv->w = load_t(L, n, 4, oc, ic, k, k);
    snprintf(n, sizeof n, "%s.bias", p), cv->b = load_t(L, n, 1, oc, 0, 0, 0);
}

static void load_norm(loader *L, vnorm *nm, const char *p, int c)
{
    char n[256];
    nm->c = c;
    snprintf(n, sizeof n, "%s.weight", p), nm->g = load_t(L, n, 1, c, 0, 0, 0);
    snprintf(n, sizeof n, "%s.bias", p), nm->b = load_t(L, n, 1, c, 0, 0, 0);
}

static void load_resnet(loader *L, vresnet *r, const char *p, int ic, int oc)
{
    char q[256];
    r->ic = ic, r->oc = oc;
    snprintf(q, sizeof q, "%s.norm1", p), load_norm(L, &r->n1, q, ic);
    snprintf(q, sizeof q, "%s.conv1", p), load_conv(L, &r->c1, q, oc, ic, 3);
    snprintf(q, sizeof q, "%s.norm2", p), load_norm(L, &r->n2, q, oc);
    snprintf(q, sizeof q, "%s.conv2", p), load_conv(L, &r->c2, q, oc, oc, 3);
    if (ic != oc) snprintf(q, sizeof q, "%s.conv_shortcut", p), load_conv(L, &r->sc, q, oc, ic, 1);
}

static void load_lin(loader *L, float **w, float **b, const char *p, int c)
{
    char n[256];
    snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.weight", p), *w = load_t(L, n, 2, c, c, 0, 0);
    snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.bias", p), *b = load_t(L, n, 1, c, 0, 0, 0);
}

sdxl_vae *sdxl_vae_load(const sdxl_vae_config *c, const safetensors *st, int single_file, const char *label,
                        char *err, size_t errlen)
{
    sdxl_vae *v = mem_calloc(1, sizeof *v);
    v->cfg = *c;
    loader L = {v, st, single_file, label, err, errlen, 0};
    int n = c->nblocks, Lc = c->latent_channels, last = c->block_out[n - 1];
    char q[256];
    load_conv(&L, &v->post_quant, "post_quant_conv", Lc, Lc, 1);
    load_conv(&L, &v->conv_in, "decoder.conv_in", last, Lc, 3);
    load_resnet(&L, &v->mid1, "decoder.mid_block.resnets.0", last, last);
    load_norm(&L, &v->attn.gn, "decoder.mid_block.attentions.0.group_norm", last);
    v->attn.c = last;
    load_lin(&L, &v->attn.wq, &v->attn.bq, "to_q", last);
    load_lin(&L, &v->attn.wk, &v->attn.bk, "to_k", last);
    load_lin(&L, &v->attn.wv, &v->attn.bv, "to_v", last);
    load_lin(&L, &v->attn.wo, &v->attn.bo, "to_out.0", last);
    load_resnet(&L, &v->mid2, "decoder.mid_block.resnets.1", last, last);
    for (int i = 0, prev = last; i < n; i++) {
        int oc = c->block_out[n - 1 - i];
        vupblock *u = &v->up[i];
        u->nres = c->layers_per_block + 1;
        u->res = mem_calloc((size_t)u->nres, sizeof *u->res);
        for (int j = 0; j < u->nres; j++) {
            snprintf(q, sizeof q, "decoder.up_blocks.%d.resnets.%d", i, j);
            load_resnet(&L, &u->res[j], q, j == 0 ? prev : oc, oc);
        }
        u->has_up = i < n - 1;
        if (u->has_up) snprintf(q, sizeof q, "decoder.up_blocks.%d.upsamplers.0.conv", i),
                       load_conv(&L, &u->up, q, oc, oc, 3);
        prev = oc;
    }
    load_norm(&L, &v->norm_out, "decoder.conv_norm_out", c->block_out[0]);
    load_conv(&L, &v->conv_out, "decoder.conv_out", c->out_channels, c->block_out[0], 3);
    if (L.failed) {
        sdxl_vae_free(v);
        return NULL;
    }
    return v;
}

void sdxl_vae_free(sdxl_vae *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->nowned; i++) free(v->owned[i]);
    free(v->owned);
    for (int i = 0; i < SDXL_VAE_MAX_BLOCKS; i++) free(v->up[i].res);
    free(v->ws);
    free(v);
}

const sdxl_vae_config *sdxl_vae_cfg(const sdxl_vae *v) { return &v->cfg; }

/* ---------------------------------------------------------------------------------------------------------
 * Forward, one image. Every op call of the decoder is in these helpers. */

/* out[oc, H, W] = conv(in[ic, H, W]) (stride 1, same padding) */
static void op_conv(sdxl_vae *v, float *out, const float *in, const vconv *cv, int H, int W)
{
    nn_conv_geom g = nn_conv2d_geom(cv->ic, cv->oc, H, W, cv->k, cv->k, 1, cv->k / 2);
    size_t need = nn_conv2d_ws_floats(&g, 1);
    if (need > v->ws_n) {
        free(v->ws);
        v->ws = mem_alloc(need * sizeof *v->ws);
        v->ws_n = need;
    }
    nn_conv2d_forward(out, in, cv->w, cv->b, 1, &g, v->ws, v->ws_n);
}

/* out[c, HW] = GroupNorm(in) (then SiLU when silu) */
static void op_norm(const sdxl_vae *v, float *out, const float *in, const vnorm *nm, int HW, int silu)
{
    float mean[4096], rstd[4096];
    int G = v->cfg.norm_num_groups;
    LOG_CHECK(G <= 4096, "vae: %d groups", G);
    nn_groupnorm_forward(out, mean, rstd, in, nm->g, nm->b, 1, nm->c, HW, G, VAE_EPS);
    if (silu) nn_silu_forward(out, out, (size_t)nm->c * HW);
}

/* a[oc, HW] <- resnet(a[ic, HW]); t1, t2 scratch of the same capacity */
static void resnet_fwd(sdxl_vae *v, const vresnet *r, float *a, float *t1, float *t2, int H, int W)
{
    size_t n = (size_t)r->oc * H * W;
    op_norm(v, t1, a, &r->n1, H * W, 1);
    op_conv(v, t2, t1, &r->c1, H, W);
    op_norm(v, t1, t2, &r->n2, H * W, 1);
    op_conv(v, t2, t1, &r->c2, H, W);
    if (r->ic != r->oc) {
        op_conv(v, t1, a, &r->sc, H, W);
        for (size_t i = 0; i < n; i++) a[i] = t1[i] + t2[i];
    } else {
        for (size_t i = 0; i < n; i++) a[i] = a[i] + t2[i];
    }
}

/* a[C, N] += attention(GroupNorm(a)): single head over the N positions */
static void attn_fwd(sdxl_vae *v, const vattn *at, float *a, float *t1, int N)
{
    int C = at->c;
    op_norm(v, t1, a, &at->gn, N, 0);
    float *q = mem_alloc((size_t)N * C * sizeof *q), *k = mem_alloc((size_t)N * C * sizeof *k),
          *val = mem_alloc((size_t)N * C * sizeof *val), *o = mem_alloc((size_t)N * C * sizeof *o);
    int rows = N < ATTN_ROWS ? N : ATTN_ROWS;
    float *s = mem_alloc((size_t)rows * N * sizeof *s);
    /* tokens [N, C] = t1^T W^T + b */
    const float *W[3] = {at->wq, at->wk, at->wv}, *Bv[3] = {at->bq, at->bk, at->bv};
    float *dst[3] = {q, k, val};
    for (int m = 0; m < 3; m++) {
        nn_sgemm(1, 1, N, C, C, 1.0f, t1, N, W[m], C, 0.0f, dst[m], C);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) dst[m][(size_t)i * C + c] += Bv[m][c];
    }
    float scale = 1.0f / sqrtf((float)C);
    for (int r0 = 0; r0 < N; r0 += rows) {
        int nr = N - r0 < rows ? N - r0 : rows;
        nn_sgemm(0, 1, nr, N, C, scale, q + (size_t)r0 * C, C, k, C, 0.0f, s, N);
        for (int i = 0; i < nr; i++) {
            float *row = s + (size_t)i * N, mx = row[0];
            for (int j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
            double sum = 0.0;
            for (int j = 0; j < N; j++) {
                row[j] = expf(row[j] - mx);
                sum += row[j];
            }
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < N; j++) row[j] *= inv;
        }
        nn_sgemm(0, 0, nr, C, N, 1.0f, s, N, val, C, 0.0f, o + (size_t)r0 * C, C);
    }
    /* a[C, N] += Wo o^T + bo */
    nn_sgemm(0, 1, C, N, C, 1.0f, at->wo, C, o, C, 1.0f, a, N);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < N; i++) a[(size_t)c * N + i] += at->bo[c];
    free(q), free(k), free(val), free(o), free(s);
}

void sdxl_vae_decode(sdxl_vae *v, float *img, const float *latents, int B, int h, int w)
{
    const sdxl_vae_config *c = &v->cfg;
    int n = c->nblocks, Lc = c->latent_channels, S = sdxl_vae_scale(c);
    /* capacity: the largest C * H * W any buffer holds (an up block's input after upsampling included) */
    size_t cap = (size_t)Lc * h * w;
    for (int i = 0, H = h, W = w, prev = c->block_out[n - 1]; i < n; i++) {
        int oc = c->block_out[n - 1 - i];
        size_t m = (size_t)(prev > oc ? prev : oc) * H * W;
        cap = m > cap ? m : cap;
        if (i < n - 1) H *= 2, W *= 2, m = (size_t)oc * H * W, cap = m > cap ? m : cap;
        prev = oc;
    }
    float *a = mem_alloc(cap * sizeof *a), *t1 = mem_alloc(cap * sizeof *t1), *t2 = mem_alloc(cap * sizeof *t2);
    size_t lat_n = (size_t)Lc * h * w, img_n = (size_t)c->out_channels * (S * h) * (S * w);
    for (int b = 0; b < B; b++) {
        const float *z = latents + (size_t)b * lat_n;
        for (size_t i = 0; i < lat_n; i++) t1[i] = z[i] / c->scaling_factor;
        op_conv(v, t2, t1, &v->post_quant, h, w);
        op_conv(v, a, t2, &v->conv_in, h, w);
        resnet_fwd(v, &v->mid1, a, t1, t2, h, w);
        attn_fwd(v, &v->attn, a, t1, h * w);
        resnet_fwd(v, &v->mid2, a, t1, t2, h, w);
        int H = h, W = w;
        for (int i = 0; i < n; i++) {
            const vupblock *u = &v->up[i];
            for (int j = 0; j < u->nres; j++) resnet_fwd(v, &u->res[j], a, t1, t2, H, W);
            if (u->has_up) {
                int C = u->up.ic;
                for (int ch = 0; ch < C; ch++)   /* nearest 2x */
                    for (int y = 0; y < 2 * H; y++) {
                        const float *src = a + ((size_t)ch * H + y / 2) * W;
                        float *dst = t1 + ((size_t)ch * 2 * H + y) * 2 * W;
                        for (int x = 0; x < 2 * W; x++) dst[x] = src[x / 2];
                    }
                H *= 2, W *= 2;
                op_conv(v, a, t1, &u->up, H, W);
            }
        }
        op_norm(v, t1, a, &v->norm_out, H * W, 1);
        op_conv(v, img + (size_t)b * img_n, t1, &v->conv_out, H, W);
    }
    free(a), free(t1), free(t2);
}

void sdxl_vae_to_rgb8(uint8_t *rgb, const float *img, int H, int W)
{
    size_t hw = (size_t)H * W;
    for (int ch = 0; ch < 3; ch++)
        for (size_t p = 0; p < hw; p++) {
            float x = img[ch * hw + p] / 2.0f + 0.5f;
            x = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;   /* NaN stays NaN here, then becomes 0 below */
            float r = nearbyintf(x * 255.0f);
            rgb[p * 3 + ch] = r >= 0.0f && r <= 255.0f ? (uint8_t)r : 0;
        }
}
