/* models/sdxl/lora: LoRA files (diffusers/PEFT and kohya keys) resolved against the model's own weight names,
 * merged into new weights or applied at run time on a shared base (issue 9 item 6; paper §5.2, App. H). See
 * lora.h for the formats and the algebra. */
#include "lora.h"
#include "gemm.h"
#include "log.h"
#include "mem.h"
#include "safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------
 * Index. */

typedef struct {
    sdxl_lora_comp comp;
    char *module, *alias;      /* alias may be NULL */
    char *u_module, *u_alias;  /* '.' -> '_' forms, for kohya paths */
    int ndim;
    int64_t shape[4];
} ientry;

struct sdxl_lora_index {
    ientry *e;
    size_t n, cap;
};

sdxl_lora_index *sdxl_lora_index_alloc(void) { return mem_calloc(1, sizeof(sdxl_lora_index)); }

void sdxl_lora_index_free(sdxl_lora_index *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->n; i++) free(x->e[i].module), free(x->e[i].alias), free(x->e[i].u_module),
                                       free(x->e[i].u_alias);
    free(x->e);
    free(x);
}

static char *underscored(const char *s)
{
    char *u = mem_alloc(strlen(s) + 1);
    for (size_t i = 0;; i++) {
        u[i] = s[i] == '.' ? '_' : s[i];
        if (!s[i]) break;
    }
    return u;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(n);
    memcpy(d, s, n);
    return d;
}

void sdxl_lora_index_add(sdxl_lora_index *x, sdxl_lora_comp comp, const char *module, const char *alias, int ndim,
                         const int64_t *shape)
{
    if (ndim != 2 && ndim != 4) return;
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 256;
        x->e = mem_realloc(x->e, x->cap * sizeof *x->e);
    }
    ientry *e = &x->e[x->n++];
    memset(e, 0, sizeof *e);
    e->comp = comp;
    e->module = dupstr(module);
    e->u_module = underscored(module);
    if (alias) e->alias = dupstr(alias), e->u_alias = underscored(alias);
    e->ndim = ndim;
    for (int i = 0; i < 4; i++) e->shape[i] = i < ndim ? shape[i] : 1;
}

void sdxl_lora_index_add_names(sdxl_lora_index *x, sdxl_lora_comp comp, size_t n, const char *const *names,
                               const int *ndims, const int64_t (*shapes)[4],
                               int (*alias_fn)(const char *module, char *buf, size_t len))
{
    char mod[512], al[512];
    for (size_t i = 0; i < n; i++) {
        size_t L = strlen(names[i]);
        if (L < 8 || L >= sizeof mod || strcmp(names[i] + L - 7, ".weight") != 0) continue;
        memcpy(mod, names[i], L - 7);
        mod[L - 7] = 0;
        int has_alias = alias_fn && alias_fn(mod, al, sizeof al) == 0;
        sdxl_lora_index_add(x, comp, mod, has_alias ? al : NULL, ndims[i], shapes[i]);
    }
}

size_t sdxl_lora_index_count(const sdxl_lora_index *x) { return x->n; }

/* entry of comp named `m` (module or alias; underscore forms when kohya): index, -1 none, -2 ambiguous */
static long index_find(const sdxl_lora_index *x, sdxl_lora_comp comp, const char *m, int kohya)
{
    long hit = -1;
    for (size_t i = 0; i < x->n; i++) {
        const ientry *e = &x->e[i];
        if (e->comp != comp) continue;
        const char *a = kohya ? e->u_module : e->module, *b = kohya ? e->u_alias : e->alias;
        if (!strcmp(a, m) || (b && !strcmp(b, m))) {
            if (hit >= 0) return -2;
            hit = (long)i;
        }
    }
    return hit;
}

/* ---------------------------------------------------------------------------------------------------------
 * Keys. */

enum { ROLE_DOWN, ROLE_UP, ROLE_ALPHA };

static const char *comp_name(sdxl_lora_comp c)
{
    return c == SDXL_LORA_UNET ? "unet" : c == SDXL_LORA_TE1 ? "text encoder 1" : "text encoder 2";
}

static int ends_with(const char *s, const char *suf, size_t *stem)
{
    size_t a = strlen(s), b = strlen(suf);
    if (a <= b || strcmp(s + a - b, suf) != 0) return 0;
    *stem = a - b;
    return 1;
}

/* Split a key into component, module path (kohya: underscored) and role; 0, or -1 if the key is of no known
 * form. */
static int parse_key(const char *key, sdxl_lora_comp *comp, char *mod, size_t modlen, int *role, int *kohya)
{
    static const struct { const char *p; sdxl_lora_comp c; } kp[] = {
        {"lora_unet_", SDXL_LORA_UNET}, {"lora_te1_", SDXL_LORA_TE1}, {"lora_te2_", SDXL_LORA_TE2},
        {"lora_te_", SDXL_LORA_TE1}};
    static const struct { const char *s; int r; } ks[] = {
        {".lora_down.weight", ROLE_DOWN}, {".lora_up.weight", ROLE_UP}, {".alpha", ROLE_ALPHA}};
    static const struct { const char *p; sdxl_lora_comp c; } dp[] = {
        {"unet.", SDXL_LORA_UNET}, {"text_encoder_2.", SDXL_LORA_TE2}, {"text_encoder.", SDXL_LORA_TE1}};
    static const struct { const char *s; int r; } ds[] = {
        {".lora_A.weight", ROLE_DOWN}, {".lora_B.weight", ROLE_UP}, {".lora.down.weight", ROLE_DOWN},
        {".lora.up.weight", ROLE_UP}, {".lora_linear_layer.down.weight", ROLE_DOWN},
        {".lora_linear_layer.up.weight", ROLE_UP}, {".alpha", ROLE_ALPHA}};
    size_t stem;
    for (size_t i = 0; i < sizeof kp / sizeof kp[0]; i++) {
        size_t pl = strlen(kp[i].p);
        if (strncmp(key, kp[i].p, pl) != 0) continue;
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            if (ends_with(key, ks[j].s, &stem) && stem > pl && stem - pl < modlen) {
                memcpy(mod, key + pl, stem - pl);
                mod[stem - pl] = 0;
                *comp = kp[i].c, *role = ks[j].r, *kohya = 1;
                return 0;
            }
        return -1;
    }
    *kohya = 0;
    *comp = SDXL_LORA_UNET;
    const char *k = key;
    for (size_t i = 0; i < sizeof dp / sizeof dp[0]; i++)
        if (!strncmp(key, dp[i].p, strlen(dp[i].p))) {
            *comp = dp[i].c;
            k = key + strlen(dp[i].p);
            break;
        }
    /* the attention-processor form: <attn>.processor.<proj>_lora.{down,up}.weight */
    const char *pr = strstr(k, ".processor.");
    if (pr) {
        static const char *const proj[][2] = {{"to_q", "to_q"}, {"to_k", "to_k"}, {"to_v", "to_v"},
                                              {"to_out", "to_out.0"}};
        const char *t = pr + 11;
        for (size_t i = 0; i < 4; i++) {
            size_t L = strlen(proj[i][0]);
            if (strncmp(t, proj[i][0], L) != 0) continue;
            int r = !strcmp(t + L, "_lora.down.weight") ? ROLE_DOWN : !strcmp(t + L, "_lora.up.weight") ? ROLE_UP : -1;
            if (r < 0) return -1;
            int n = snprintf(mod, modlen, "%.*s.%s", (int)(pr - k), k, proj[i][1]);
            if (n < 0 || (size_t)n >= modlen) return -1;
            *role = r;
            return 0;
        }
        return -1;
    }
    /* the text encoders' old form: <...>.self_attn.<proj>_lora.{down,up}.weight (diffusers' TEXT_ENCODER keys
     * before lora_linear_layer, and what its kohya converter produces) */
    const char *sa = *comp != SDXL_LORA_UNET ? strstr(k, ".self_attn.") : NULL;
    if (sa) {
        static const char *const proj[][2] = {{"to_q", "q_proj"}, {"to_k", "k_proj"}, {"to_v", "v_proj"},
                                              {"to_out", "out_proj"}};
        const char *t = sa + 11;
        for (size_t i = 0; i < 4; i++) {
            size_t L = strlen(proj[i][0]);
            if (strncmp(t, proj[i][0], L) != 0 || strncmp(t + L, "_lora.", 6) != 0) continue;
            int r = !strcmp(t + L, "_lora.down.weight") ? ROLE_DOWN : !strcmp(t + L, "_lora.up.weight") ? ROLE_UP : -1;
            if (r < 0) return -1;
            int n = snprintf(mod, modlen, "%.*s.self_attn.%s", (int)(sa - k), k, proj[i][1]);
            if (n < 0 || (size_t)n >= modlen) return -1;
            *role = r;
            return 0;
        }
    }
    for (size_t j = 0; j < sizeof ds / sizeof ds[0]; j++)
        if (ends_with(k, ds[j].s, &stem) && stem < modlen) {
            memcpy(mod, k, stem);
            mod[stem] = 0;
            *role = ds[j].r;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------------------------------------------------
 * Open. */

typedef struct {
    long entry;
    const safetensors_tensor *down, *up, *alpha;
    const char *kdown, *kup;
} pending;

static int widen(float **out, const safetensors_tensor *t, const char *path, char *err, size_t errlen)
{
    nn_tensor v;
    char why[512];
    if (nn_tensor_from_safetensors(&v, t, path, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    size_t bad = nn_tensor_first_nonfinite(&v);
    if (bad != (size_t)-1) {
        log_errf(err, errlen, path, "tensor '%s': non-finite value at element %zu", t->name, bad);
        return -1;
    }
    *out = mem_alloc((v.numel ? v.numel : 1) * sizeof **out);
    nn_tensor_to_f32(*out, &v);
    return 0;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *s)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++) o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

sdxl_lora *sdxl_lora_open(const char *path, const sdxl_lora_index *idx, char *err, size_t errlen)
{
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return NULL;
    size_t nt = safetensors_count(st), np = 0;
    pending *pd = mem_calloc(nt ? nt : 1, sizeof *pd);
    sdxl_lora *l = mem_calloc(1, sizeof *l);
    l->path = dupstr(path);
    int failed = 0;
    char mod[1024];
    for (size_t i = 0; i < nt && !failed; i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        sdxl_lora_comp comp;
        int role, kohya;
        if (parse_key(t->name, &comp, mod, sizeof mod, &role, &kohya)) {
            log_errf(err, errlen, path, "unknown LoRA key '%s' (not a diffusers/PEFT or kohya LoRA tensor)", t->name);
            failed = 1;
            break;
        }
        long e = index_find(idx, comp, mod, kohya);
        int comp_known = 0;
        for (size_t j = 0; j < idx->n && !comp_known; j++) comp_known = idx->e[j].comp == comp;
        if (e == -1 && !comp_known) {
            log_errf(err, errlen, path, "key '%s': %s LoRA weights are not applied here (no %s weights were given to "
                     "adapt)", t->name, comp_name(comp), comp_name(comp));
            failed = 1;
            break;
        }
        if (e == -1) {
            log_errf(err, errlen, path, "key '%s': the %s has no adaptable weight '%s%s'", t->name, comp_name(comp),
                     mod, kohya ? "' (kohya path, '.' written '_')" : ".weight'");
            failed = 1;
            break;
        }
        if (e == -2) {
            log_errf(err, errlen, path, "key '%s': kohya path '%s' names several %s weights (ambiguous)", t->name, mod,
                     comp_name(comp));
            failed = 1;
            break;
        }
        size_t k;
        for (k = 0; k < np && pd[k].entry != e; k++) {}
        if (k == np) pd[np++].entry = e;
        const safetensors_tensor **slot = role == ROLE_DOWN ? &pd[k].down : role == ROLE_UP ? &pd[k].up : &pd[k].alpha;
        if (*slot) {
            log_errf(err, errlen, path, "key '%s': a second %s for module '%s' (already from '%s')", t->name,
                     role == ROLE_DOWN ? "down (A)" : role == ROLE_UP ? "up (B)" : "alpha", idx->e[e].module,
                     (*slot)->name);
            failed = 1;
            break;
        }
        *slot = t;
    }
    if (!failed) {
        l->pairs = mem_calloc(np ? np : 1, sizeof *l->pairs);
        for (size_t k = 0; k < np && !failed; k++) {
            const ientry *e = &idx->e[pd[k].entry];
            const safetensors_tensor *A = pd[k].down, *B = pd[k].up;
            if (!A || !B) {
                log_errf(err, errlen, path, "key '%s': its %s is missing", (A ? A : B ? B : pd[k].alpha)->name,
                         A ? "up (B) half" : B ? "down (A) half" : "down and up halves");
                failed = 1;
                break;
            }
            sdxl_lora_pair *p = &l->pairs[l->n];
            p->comp = e->comp;
            p->wndim = e->ndim;
            memcpy(p->wshape, e->shape, sizeof p->wshape);
            int64_t O = e->shape[0], kh = e->ndim == 4 ? e->shape[2] : 1, kw = e->ndim == 4 ? e->shape[3] : 1;
            int64_t I = e->shape[1];
            int64_t r = B->ndim >= 2 ? B->shape[1] : -1;
            int okB = (B->ndim == 2 || (B->ndim == 4 && B->shape[2] == 1 && B->shape[3] == 1)) && B->shape[0] == O &&
                      r >= 1;
            int okA = A->ndim >= 2 && A->shape[0] == r && A->shape[1] == I &&
                      ((A->ndim == 2 && kh == 1 && kw == 1) || (A->ndim == 4 && A->shape[2] == kh && A->shape[3] == kw));
            if (!okB || !okA) {
                char sa[96], sb[96], sw[96];
                shape_str(sa, sizeof sa, A->ndim, A->shape);
                shape_str(sb, sizeof sb, B->ndim, B->shape);
                shape_str(sw, sizeof sw, e->ndim, e->shape);
                log_errf(err, errlen, path, "key '%s': down %s / up %s do not fit the weight '%s.weight' %s",
                         okB ? A->name : B->name, sa, sb, e->module, sw);
                failed = 1;
                break;
            }
            p->rank = (int)r;
            p->kind = e->ndim == 4;
            p->A_kh = kh, p->A_kw = kw;
            p->alpha = (float)r;
            if (pd[k].alpha) {
                float *a = NULL;
                if (pd[k].alpha->numel != 1) {
                    log_errf(err, errlen, path, "key '%s': alpha must be one number (%zu values)", pd[k].alpha->name,
                             pd[k].alpha->numel);
                    failed = 1;
                    break;
                }
                if (widen(&a, pd[k].alpha, path, err, errlen)) {
                    failed = 1;
                    break;
                }
                p->alpha = a[0];
                free(a);
            }
            p->module = dupstr(e->module);
            l->n++;   /* counted before widening, so free releases whatever was widened */
            if (widen(&p->A, A, path, err, errlen) || widen(&p->B, B, path, err, errlen)) {
                failed = 1;
                break;
            }
        }
    }
    free(pd);
    safetensors_close(st);   /* A, B, alpha and the module names are copied: the file and index may go */
    if (failed) {
        sdxl_lora_free(l);
        return NULL;
    }
    return l;
}

void sdxl_lora_free(sdxl_lora *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->pairs[i].A), free(l->pairs[i].B), free((char *)l->pairs[i].module);
    free(l->pairs);
    free(l->path);
    free(l);
}

const sdxl_lora_pair *sdxl_lora_find(const sdxl_lora *l, sdxl_lora_comp comp, const char *module)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->pairs[i].comp == comp && !strcmp(l->pairs[i].module, module)) return &l->pairs[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------------
 * Merge and runtime. */

int sdxl_lora_merge(nn_tensor *out, const nn_tensor *base, sdxl_lora_comp comp, const char *module,
                    const sdxl_lora *const *loras, const float *w, size_t nl)
{
    LOG_CHECK(base->device == DEVICE_CPU, "lora merge: base '%s' is not on the CPU", module);
    size_t n = base->numel;
    float *W = mem_alloc((n ? n : 1) * sizeof *W);
    nn_tensor_to_f32(W, base);
    int applied = 0;
    for (size_t i = 0; i < nl; i++) {
        const sdxl_lora_pair *p = sdxl_lora_find(loras[i], comp, module);
        if (!p) continue;
        int64_t O = p->wshape[0];
        size_t K = n / (size_t)O, r = (size_t)p->rank;
        LOG_CHECK(base->shape[0] == O && K * (size_t)O == n && K == (size_t)(p->wshape[1] * p->A_kh * p->A_kw),
                  "lora merge: base of '%s' does not have the indexed shape", module);
        /* as diffusers fuses: B scaled by alpha / r first, then B A, then the weight */
        float *Bs = mem_alloc((size_t)O * r * sizeof *Bs), s = p->alpha / (float)p->rank;
        for (size_t j = 0; j < (size_t)O * r; j++) Bs[j] = p->B[j] * s;
        nn_sgemm(0, 0, (int)O, (int)K, (int)r, w[i], Bs, (int)r, p->A, (int)K, 1.0f, W, (int)K);
        free(Bs);
        applied++;
    }
    *out = nn_tensor_alloc_cpu(base->dtype, base->ndim, base->shape);
    nn_f32_convert_to(out->data, base->dtype, W, n);
    free(W);
    return applied;
}

size_t sdxl_lora_adapters(sdxl_lora_adapter *out, size_t max, sdxl_lora_comp comp, const char *module,
                          const sdxl_lora *const *loras, const float *w, size_t nl)
{
    size_t n = 0;
    for (size_t i = 0; i < nl; i++) {
        const sdxl_lora_pair *p = sdxl_lora_find(loras[i], comp, module);
        if (!p) continue;
        LOG_CHECK(n < max, "lora: more than %zu adapters on '%s'", max, module);
        out[n].p = p;
        out[n].scale = w[i] * (p->alpha / (float)p->rank);
        n++;
    }
    return n;
}

size_t sdxl_lora_linear_ws(const sdxl_lora_adapter *ad, size_t n, int N)
{
    size_t r = 0;
    for (size_t k = 0; k < n; k++) r = (size_t)ad[k].p->rank > r ? (size_t)ad[k].p->rank : r;
    return (size_t)N * r;
}

void sdxl_lora_linear_add(float *out, const float *in, int N, int I, int O, const sdxl_lora_adapter *ad, size_t n,
                          float *ws)
{
    for (size_t k = 0; k < n; k++) {
        const sdxl_lora_pair *p = ad[k].p;
        LOG_CHECK(p->wshape[0] == O && p->wshape[1] * p->A_kh * p->A_kw == I, "lora: linear %dx%d vs '%s'", O, I,
                  p->module);
        nn_sgemm(0, 1, N, p->rank, I, 1.0f, in, I, p->A, I, 0.0f, ws, p->rank);
        nn_sgemm(0, 1, N, O, p->rank, ad[k].scale, ws, p->rank, p->B, p->rank, 1.0f, out, O);
    }
}

static nn_conv_geom lora_geom(const nn_conv_geom *g, int r)
{
    nn_conv_geom a = *g;
    a.OC = r;
    nn_conv2d_geom_finish(&a);
    return a;
}

size_t sdxl_lora_conv_ws(const sdxl_lora_adapter *ad, size_t n, int B, const nn_conv_geom *g)
{
    size_t need = 0;
    for (size_t k = 0; k < n; k++) {
        nn_conv_geom a = lora_geom(g, ad[k].p->rank);
        size_t s = (size_t)B * a.OC * a.OH * a.OW + nn_conv2d_ws_floats(&a, B);
        need = s > need ? s : need;
    }
    return need;
}

void sdxl_lora_conv_add(float *out, const float *in, int B, const nn_conv_geom *g, const sdxl_lora_adapter *ad,
                        size_t n, float *ws)
{
    for (size_t k = 0; k < n; k++) {
        const sdxl_lora_pair *p = ad[k].p;
        LOG_CHECK(p->wshape[0] == g->OC && p->wshape[1] == g->IC && p->A_kh == g->KH && p->A_kw == g->KW,
                  "lora: conv geometry does not match '%s'", p->module);
        nn_conv_geom a = lora_geom(g, p->rank);
        size_t P = (size_t)a.OH * a.OW, tn = (size_t)B * p->rank * P;
        nn_conv2d_forward(ws, in, p->A, NULL, B, &a, ws + tn, nn_conv2d_ws_floats(&a, B));
        for (int b = 0; b < B; b++)
            nn_sgemm(0, 0, g->OC, (int)P, p->rank, ad[k].scale, p->B, p->rank, ws + (size_t)b * p->rank * P, (int)P,
                     1.0f, out + (size_t)b * g->OC * P, (int)P);
    }
}

/* ---------------------------------------------------------------------------------------------------------
 * Runtime table. */

typedef struct {
    const nn_tensor *w;
    sdxl_lora_adapter *ad;
    size_t n;
} rt_entry;

struct sdxl_lora_runtime {
    rt_entry *e;
    size_t n;
};

static int rt_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const rt_entry *)a)->w, y = (uintptr_t)((const rt_entry *)b)->w;
    return x < y ? -1 : x > y;
}

sdxl_lora_runtime *sdxl_lora_runtime_build(const nn_weights *w, const char *prefix, sdxl_lora_comp comp,
                                           const sdxl_lora *const *loras, const float *wts, size_t nl, char *err,
                                           size_t errlen)
{
    sdxl_lora_runtime *rt = mem_calloc(1, sizeof *rt);
    size_t cap = 0;
    for (size_t i = 0; i < nl; i++) cap += loras[i]->n;
    rt->e = mem_calloc(cap ? cap : 1, sizeof *rt->e);
    for (size_t i = 0; i < nl; i++)
        for (size_t k = 0; k < loras[i]->n; k++) {
            const sdxl_lora_pair *p = &loras[i]->pairs[k];
            if (p->comp != comp) continue;
            char name[600];
            snprintf(name, sizeof name, "%s.weight", p->module);
            const nn_tensor *t = nn_weights_find(w, prefix, name);
            if (!t) {
                log_errf(err, errlen, loras[i]->path, "module '%s': no weight '%s%s' in the model", p->module,
                         prefix ? prefix : "", name);
                sdxl_lora_runtime_free(rt);
                return NULL;
            }
            size_t j;
            for (j = 0; j < rt->n && rt->e[j].w != t; j++) {}
            if (j < rt->n) continue;   /* this module was collected with every LoRA's adapter already */
            rt_entry *e = &rt->e[rt->n++];
            e->w = t;
            e->ad = mem_calloc(nl, sizeof *e->ad);
            e->n = sdxl_lora_adapters(e->ad, nl, comp, p->module, loras, wts, nl);
        }
    qsort(rt->e, rt->n, sizeof *rt->e, rt_cmp);
    return rt;
}

void sdxl_lora_runtime_free(sdxl_lora_runtime *rt)
{
    if (!rt) return;
    for (size_t i = 0; i < rt->n; i++) free(rt->e[i].ad);
    free(rt->e);
    free(rt);
}

size_t sdxl_lora_runtime_count(const sdxl_lora_runtime *rt) { return rt ? rt->n : 0; }

size_t sdxl_lora_runtime_find(const sdxl_lora_runtime *rt, const nn_tensor *W, const sdxl_lora_adapter **ad)
{
    if (!rt || !rt->n) return 0;
    rt_entry key = {W, NULL, 0};
    const rt_entry *e = bsearch(&key, rt->e, rt->n, sizeof *rt->e, rt_cmp);
    if (!e) return 0;
    *ad = e->ad;
    return e->n;
}
