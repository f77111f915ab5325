/* test_sdxl_text: the CLIP text encoders of SDXL (common/models/sdxl/clip_text.h) against open_clip v2.23.0
 * (float64 TextTransformer outputs of tests/reference/sdxl_text_ref.py, tests/fixtures/sdxl/text_ref.safetensors):
 *   - tiny CLIP-L (quick_gelu, HF names, diffusers text_encoder/): penultimate hidden states, final-LN states, pooled;
 *   - tiny bigG (gelu + projection, HF CLIPTextModelWithProjection names, text_encoder_2/): the same + text_embeds;
 *   - both towers from the single-file names (conditioner.embedders.0.transformer.*, conditioner.embedders.1.model.*,
 *     the latter straight from open_clip's state_dict: fused in_proj, untransposed text_projection);
 *   - the weights stored as f16 (committed), f32 and bf16 (converted here; the fixture weights are exact in all
 *     three, so every dtype must give the same outputs);
 *   - bad input: missing tensor, wrong shape, bad config, ids out of range -> one line naming file and tensor;
 *   - the conditioning (sdxl_text_encode): prompt + negative through both tokenizers and encoders -> the
 *     [2, 77, 16+24] context and [2, 20] pooled of the reference (rows: negative, prompt), from a diffusers-style
 *     model folder, and the zeroed negative of force_zeros_for_empty_prompt.
 * Tolerance (float32 vs float64 reference): |ours - ref| <= 1e-5 + 1e-4 |ref| elementwise. */
#include "clip_text.h"
#include "clip_tokenizer.h"
#include "sdxl_text.h"
#include "log.h"
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ATOL 1e-5
#define RTOL 1e-4

static const char *fixdir(void)
{
    const char *d = getenv("SF_SDXL_FIXTURES");
    return d && *d ? d : "tests/fixtures/sdxl";
}

static safetensors *ref;
static double worst_ratio;   /* max over all compared elements of |diff| / (atol + rtol |ref|) */

static float *ref_f32(const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(ref, name);
    if (!t) LOG_FATAL("text_ref.safetensors: no tensor %s", name);
    nn_tensor v;
    char err[256];
    if (nn_tensor_from_safetensors(&v, t, "text_ref", err, sizeof err)) LOG_FATAL("%s", err);
    float *out = malloc(v.numel * sizeof(float));
    nn_tensor_to_f32(out, &v);
    *n = v.numel;
    return out;
}

static int32_t *ref_ids(const char *name, int *B, int *T)
{
    const safetensors_tensor *t = safetensors_find(ref, name);
    if (!t || t->dtype != SAFETENSORS_I32 || t->ndim != 2) LOG_FATAL("text_ref.safetensors: bad %s", name);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    int32_t *ids = malloc(t->nbytes);
    memcpy(ids, t->data, t->nbytes);
    return ids;
}

static void compare(const char *tag, const float *got, const char *refname)
{
    size_t n;
    float *want = ref_f32(refname, &n);
    double maxd = 0, ratio = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double r = isfinite(got[i]) ? d / (ATOL + RTOL * fabs(want[i])) : INFINITY;
        if (d > maxd || !isfinite(got[i])) maxd = isfinite(got[i]) ? d : INFINITY;
        if (r > ratio) ratio = r;
    }
    if (ratio > worst_ratio) worst_ratio = ratio;
    char name[256], why[128];
    snprintf(name, sizeof name, "%s vs %s (%zu values, max |diff| %.2e)", tag, refname, n, maxd);
    snprintf(why, sizeof why, "worst |diff|/(atol+rtol|ref|) = %.3g > 1", ratio);
    test_report(ratio <= 1.0, name, why);
    free(want);
}

/* runs a tower on its fixture ids and compares every output it has */
static void check_tower(const char *tag, const clip_text *m, int big)
{
    int B, T;
    int32_t *ids = ref_ids(big ? "ids_g" : "ids_l", &B, &T);
    const clip_text_config *c = clip_text_cfg(m);
    size_t N = (size_t)B * T * c->hidden;
    float *hid = malloc(N * sizeof(float)), *last = malloc(N * sizeof(float));
    float *pool = malloc((size_t)B * c->hidden * sizeof(float));
    float *emb = c->proj_dim ? malloc((size_t)B * c->proj_dim * sizeof(float)) : NULL;
    char err[512] = "", t2[160];
    int rc = clip_text_forward(m, ids, B, T, c->layers - 1, hid, last, pool, emb, err, sizeof err);
    snprintf(t2, sizeof t2, "%s forward runs", tag);
    test_report(rc == 0, t2, err);
    if (rc == 0) {
        const char *p = big ? "g." : "l.";
        char nm[64];
        snprintf(nm, sizeof nm, "%spenultimate", p);
        snprintf(t2, sizeof t2, "%s penultimate", tag);
        compare(t2, hid, nm);
        snprintf(nm, sizeof nm, "%slast", p);
        snprintf(t2, sizeof t2, "%s final-LN states", tag);
        compare(t2, last, nm);
        snprintf(nm, sizeof nm, "%spooled", p);
        snprintf(t2, sizeof t2, "%s pooled", tag);
        compare(t2, pool, nm);
        if (emb) {
            snprintf(t2, sizeof t2, "%s text_embeds", tag);
            compare(t2, emb, "g.text_embeds");
        }
        /* the penultimate alone runs layers-1 layers and gives the same numbers */
        float *hid2 = malloc(N * sizeof(float));
        rc = clip_text_forward(m, ids, B, T, c->layers - 1, hid2, NULL, NULL, NULL, err, sizeof err);
        snprintf(t2, sizeof t2, "%s penultimate alone == within the full pass", tag);
        test_report(rc == 0 && memcmp(hid, hid2, N * sizeof(float)) == 0, t2, "differs");
        free(hid2);
    }
    free(ids), free(hid), free(last), free(pool), free(emb);
}

/* copy a safetensors file converting float tensors to dtype (and optionally dropping / reshaping one tensor) */
static void rewrite(const char *from, const char *to, int dtype, const char *drop, const char *reshape)
{
    char err[512];
    safetensors *st = safetensors_open(from, err, sizeof err);
    if (!st) LOG_FATAL("%s", err);
    safetensors_writer *w = safetensors_writer_alloc();
    void **bufs = calloc(safetensors_count(st), sizeof *bufs);
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        nn_tensor v;
        if (nn_tensor_from_safetensors(&v, t, from, err, sizeof err)) LOG_FATAL("%s", err);
        float *f = malloc(v.numel * sizeof(float) + 4);
        nn_tensor_to_f32(f, &v);
        void *data = f;
        safetensors_dtype sd = SAFETENSORS_F32;
        if (dtype == NN_BF16 || dtype == NN_F16) {
            data = malloc(v.numel * 2 + 2);
            nn_f32_convert_to(data, (nn_dtype)dtype, f, v.numel);
            free(f);
            sd = dtype == NN_BF16 ? SAFETENSORS_BF16 : SAFETENSORS_F16;
        }
        bufs[i] = data;
        int64_t shape[8];
        int nd = t->ndim;
        memcpy(shape, t->shape, sizeof(int64_t) * (size_t)nd);
        if (reshape && !strcmp(t->name, reshape) && nd == 2) {   /* same bytes, rows and columns swapped */
            int64_t a = shape[0];
            shape[0] = shape[1], shape[1] = a;
        }
        safetensors_writer_add(w, t->name, sd, nd, shape, data);
    }
    if (safetensors_writer_write(w, to, err, sizeof err)) LOG_FATAL("%s", err);
    for (size_t i = 0; i < safetensors_count(st); i++) free(bufs[i]);
    free(bufs);
    safetensors_writer_free(w);
    safetensors_close(st);
}

static void copy_text(const char *from, const char *to, const char *find, const char *repl)
{
    FILE *f = fopen(from, "rb");
    if (!f) LOG_FATAL("cannot read %s", from);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char out[9000];
    char *at = find ? strstr(buf, find) : NULL;
    if (at) {
        *at = 0;
        snprintf(out, sizeof out, "%s%s%s", buf, repl, at + strlen(find));
    } else {
        snprintf(out, sizeof out, "%s", buf);
    }
    f = fopen(to, "wb");
    fputs(out, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) LOG_FATAL("cannot copy %s -> %s", from, to);
    char buf[1 << 14];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

static void link_or_die(const char *target, const char *dir, const char *name)
{
    char p[1100], abs_target[1100];
    if (target[0] == '/') {
        snprintf(abs_target, sizeof abs_target, "%s", target);
    } else {
        char cwd[900];
        if (!getcwd(cwd, sizeof cwd)) LOG_FATAL("getcwd");
        snprintf(abs_target, sizeof abs_target, "%s/%s", cwd, target);
    }
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (symlink(abs_target, p)) LOG_FATAL("symlink %s", p);
}

/* a diffusers-style model folder of the fixtures, with tokenizer_2/ made the way SDXL's is ("!" pads, id 0) */
static void test_conditioning(void)
{
    char mdir[] = "/tmp/sf_test_sdxl_cond_XXXXXX", p[600], q[1400], err[512] = "";
    if (!mkdtemp(mdir)) LOG_FATAL("mkdtemp");
    char fx[1000];
    snprintf(fx, sizeof fx, "%s/tokenizer", fixdir());
    link_or_die(fx, mdir, "tokenizer");
    snprintf(fx, sizeof fx, "%s/text_encoder", fixdir());
    link_or_die(fx, mdir, "text_encoder");
    snprintf(fx, sizeof fx, "%s/text_encoder_2", fixdir());
    link_or_die(fx, mdir, "text_encoder_2");
    snprintf(p, sizeof p, "%s/tokenizer_2", mdir);
    if (mkdir(p, 0755)) LOG_FATAL("mkdir %s", p);
    const char *files[] = {"vocab.json", "merges.txt"};
    for (int k = 0; k < 2; k++) {
        snprintf(fx, sizeof fx, "%s/tokenizer/%s", fixdir(), files[k]);
        snprintf(q, sizeof q, "%s/%s", p, files[k]);
        copy_file(fx, q);
    }
    snprintf(q, sizeof q, "%s/special_tokens_map.json", p);
    FILE *f = fopen(q, "w");
    fputs("{\"bos_token\": \"<|startoftext|>\", \"eos_token\": \"<|endoftext|>\", \"pad_token\": \"!\","
          " \"unk_token\": \"<|endoftext|>\"}", f);
    fclose(f);
    sdxl_text *s = sdxl_text_load_dir(mdir, NULL, err, sizeof err);
    test_report(s != NULL, "sdxl_text_load_dir: tokenizer, tokenizer_2, text_encoder, text_encoder_2", err);
    if (s) {
        CHECK(sdxl_text_tokens(s) == 77 && sdxl_text_context_dim(s) == 40 && sdxl_text_pooled_dim(s) == 20,
              "conditioning sizes: 77 tokens, context 16+24, pooled 20");
        const char *prompt = safetensors_metadata_get(ref, "prompt"), *neg = safetensors_metadata_get(ref, "negative");
        float *ctx = malloc(2 * 77 * 40 * sizeof(float)), *pool = malloc(2 * 20 * sizeof(float));
        int rc = sdxl_text_encode(s, prompt, neg, 1, ctx, pool, err, sizeof err);
        test_report(rc == 0, "sdxl_text_encode(prompt, negative)", err);
        if (rc == 0) {
            size_t n;
            float *want_ctx = ref_f32("context", &n), *want_pool = ref_f32("g.text_embeds", &n);
            /* the reference rows are [prompt, negative]; diffusers' (and ours) [negative, prompt] */
            float *sw = malloc(2 * 77 * 40 * sizeof(float)), *swp = malloc(2 * 20 * sizeof(float));
            memcpy(sw, ctx + 77 * 40, 77 * 40 * sizeof(float));
            memcpy(sw + 77 * 40, ctx, 77 * 40 * sizeof(float));
            memcpy(swp, pool + 20, 20 * sizeof(float));
            memcpy(swp + 20, pool, 20 * sizeof(float));
            compare("conditioning context (tokenizers + both encoders)", sw, "context");
            compare("conditioning pooled", swp, "g.text_embeds");
            free(want_ctx), free(want_pool);
            float *ctx0 = malloc(2 * 77 * 40 * sizeof(float)), *pool0 = malloc(2 * 20 * sizeof(float));
            rc = sdxl_text_encode(s, prompt, NULL, 1, ctx0, pool0, err, sizeof err);
            int zeros = rc == 0;
            for (int i = 0; zeros && i < 77 * 40; i++) zeros = ctx0[i] == 0.0f;
            for (int i = 0; zeros && i < 20; i++) zeros = pool0[i] == 0.0f;
            CHECK(zeros && memcmp(ctx0 + 77 * 40, ctx + 77 * 40, 77 * 40 * sizeof(float)) == 0 &&
                      memcmp(pool0 + 20, pool + 20, 20 * sizeof(float)) == 0,
                  "negative NULL + force_zeros: zero negative rows, the same prompt rows");
            rc = sdxl_text_encode(s, prompt, NULL, 0, ctx0, pool0, err, sizeof err);
            int nonzero = 0;
            for (int i = 0; rc == 0 && i < 77 * 40; i++) nonzero |= ctx0[i] != 0.0f;
            CHECK(rc == 0 && nonzero, "negative NULL without force_zeros: the empty prompt is encoded");
            free(sw), free(swp), free(ctx0), free(pool0);
        }
        free(ctx), free(pool);
    }
    sdxl_text_free(s);
    snprintf(q, sizeof q, "%s/text_encoder_2", mdir);
    unlink(q);
    s = sdxl_text_load_dir(mdir, NULL, err, sizeof err);
    CHECK(!s && strstr(err, "text_encoder_2/config.json: cannot open"), "missing component folder named");
    const char *rm[] = {"tokenizer_2/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/special_tokens_map.json",
                        "tokenizer", "text_encoder"};
    for (int k = 0; k < 5; k++) {
        snprintf(q, sizeof q, "%s/%s", mdir, rm[k]);
        unlink(q);
    }
    rmdir(p);
    rmdir(mdir);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_set_prog(argv[0]);
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/text_ref.safetensors", fixdir());
    ref = safetensors_open(path, err, sizeof err);
    CHECK(ref != NULL, "text_ref.safetensors opens");
    if (!ref) {
        printf("  %s\n", err);
        return test_finish();
    }

    /* 1. diffusers folders (f16 as committed) */
    snprintf(path, sizeof path, "%s/text_encoder", fixdir());
    clip_text *l = clip_text_load_dir(path, NULL, err, sizeof err);
    test_report(l != NULL, "text_encoder/ loads (CLIPTextModel, f16)", err);
    if (l) {
        const clip_text_config *c = clip_text_cfg(l);
        CHECK(c->hidden == 16 && c->layers == 3 && c->heads == 4 && c->intermediate == 64 && c->proj_dim == 0 &&
                  c->act == CLIP_ACT_QUICK_GELU && c->max_pos == 77 && c->vocab_size == 770 &&
                  !strcmp(clip_text_dtype_name(l), "f16"),
              "text_encoder/ config read from config.json");
        check_tower("CLIP-L dir f16", l, 0);
    }
    snprintf(path, sizeof path, "%s/text_encoder_2", fixdir());
    clip_text *g = clip_text_load_dir(path, NULL, err, sizeof err);
    test_report(g != NULL, "text_encoder_2/ loads (CLIPTextModelWithProjection, f16)", err);
    if (g) {
        const clip_text_config *c = clip_text_cfg(g);
        CHECK(c->hidden == 24 && c->layers == 4 && c->heads == 3 && c->intermediate == 72 && c->proj_dim == 20 &&
                  c->act == CLIP_ACT_GELU,
              "text_encoder_2/ config read from config.json");
        check_tower("bigG dir f16", g, 1);
    }

    /* 2. single-file names */
    snprintf(path, sizeof path, "%s/text_single.safetensors", fixdir());
    safetensors *single = safetensors_open(path, err, sizeof err);
    test_report(single != NULL, "text_single.safetensors opens", err);
    if (single) {
        clip_text *sl = clip_text_load_single(single, path, 0, 4, err, sizeof err);
        test_report(sl != NULL, "single file: conditioner.embedders.0 (CLIP-L) loads", err);
        if (sl) {
            CHECK(clip_text_cfg(sl)->layers == 3 && clip_text_cfg(sl)->intermediate == 64 &&
                      clip_text_cfg(sl)->proj_dim == 0,
                  "single file CLIP-L: sizes inferred from the shapes");
            check_tower("CLIP-L single", sl, 0);
        }
        clip_text *sg = clip_text_load_single(single, path, 1, 3, err, sizeof err);
        test_report(sg != NULL, "single file: conditioner.embedders.1 (bigG, open_clip names) loads", err);
        if (sg) {
            CHECK(clip_text_cfg(sg)->layers == 4 && clip_text_cfg(sg)->proj_dim == 20 &&
                      clip_text_cfg(sg)->act == CLIP_ACT_GELU,
                  "single file bigG: sizes inferred, gelu, projection 20");
            check_tower("bigG single", sg, 1);
        }
        clip_text *sd = clip_text_load_single(single, path, 1, 0, err, sizeof err);
        CHECK(sd == NULL && strstr(err, "hidden size 24 of text encoder 1 is not a multiple of 64"),
              "default heads D/64 refused for D = 24 (one line)");
        clip_text_free(sl), clip_text_free(sg), clip_text_free(sd);
    }

    /* 3. the same weights stored as f32 and bf16 */
    char tdir[] = "/tmp/sf_test_sdxl_text_XXXXXX", from[1100], to[1100];
    if (!mkdtemp(tdir)) LOG_FATAL("mkdtemp");
    snprintf(from, sizeof from, "%s/text_encoder_2/config.json", fixdir());
    snprintf(to, sizeof to, "%s/config.json", tdir);
    copy_text(from, to, NULL, NULL);
    snprintf(from, sizeof from, "%s/text_encoder_2/model.safetensors", fixdir());
    const int dts[2] = {NN_F32, NN_BF16};
    for (int k = 0; k < 2; k++) {
        snprintf(to, sizeof to, "%s/model.safetensors", tdir);
        rewrite(from, to, dts[k], NULL, NULL);
        clip_text *m = clip_text_load_dir(tdir, NULL, err, sizeof err);
        char tag[64];
        snprintf(tag, sizeof tag, "bigG dir %s", nn_dtype_name((nn_dtype)dts[k]));
        test_report(m && !strcmp(clip_text_dtype_name(m), nn_dtype_name((nn_dtype)dts[k])), tag, err);
        if (m) check_tower(tag, m, 1);
        clip_text_free(m);
    }
    /* the fp16 variant name */
    snprintf(to, sizeof to, "%s/model.fp16.safetensors", tdir);
    rewrite(from, to, NN_F16, NULL, NULL);
    clip_text *m16 = clip_text_load_dir(tdir, "fp16", err, sizeof err);
    CHECK(m16 && !strcmp(clip_text_dtype_name(m16), "f16"), "variant fp16 loads model.fp16.safetensors");
    clip_text_free(m16);
    unlink(to);

    /* 4. bad input: one line naming the file and the tensor */
    snprintf(to, sizeof to, "%s/model.safetensors", tdir);
    rewrite(from, to, NN_F32, "text_model.encoder.layers.2.mlp.fc1.bias", NULL);
    clip_text *bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, to) && strstr(err, "tensor 'text_model.encoder.layers.2.mlp.fc1.bias' is missing") &&
              !strchr(err, '\n'),
          "missing tensor named with its file");
    printf("  (%s)\n", err);
    rewrite(from, to, NN_F32, NULL, "text_model.encoder.layers.1.mlp.fc2.weight");
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, to) &&
              strstr(err, "tensor 'text_model.encoder.layers.1.mlp.fc2.weight': shape [72, 24], expected [24, 72]"),
          "wrong shape named with file, tensor and both shapes");
    printf("  (%s)\n", err);
    rewrite(from, to, NN_F32, NULL, NULL);
    snprintf(from, sizeof from, "%s/text_encoder_2/config.json", fixdir());
    snprintf(path, sizeof path, "%s/config.json", tdir);
    copy_text(from, path, "\"gelu\"", "\"relu\"");
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, "config.json: key 'hidden_act': \"relu\" is not quick_gelu or gelu"), "bad hidden_act");
    copy_text(from, path, "\"num_attention_heads\": 3", "\"num_attention_heads\": 5");
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, "hidden size 24 is not a multiple of the 5 heads"), "heads not dividing hidden");
    copy_text(from, path, "\"hidden_size\": 24", "\"hidden_size\": 48");
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, "token_embedding.weight': shape [770, 24], expected [770, 48]"),
          "config and weights disagree -> shape error");
    copy_text(from, path, "\"vocab_size\": 770,", "");
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, "config.json: key 'vocab_size' is missing"), "missing config key");
    unlink(path);
    bad = clip_text_load_dir(tdir, NULL, err, sizeof err);
    CHECK(!bad && strstr(err, "config.json: cannot open"), "missing config.json");
    if (g) {
        int32_t ids[77] = {0};
        ids[3] = 770;
        float h[77 * 24];
        CHECK(clip_text_forward(g, ids, 1, 77, 3, h, NULL, NULL, NULL, err, sizeof err) == -1 &&
                  strstr(err, "token id 770 at position 3 is outside the vocabulary [0, 770)"),
              "token id out of range");
        CHECK(clip_text_forward(g, ids, 1, 78, 3, h, NULL, NULL, NULL, err, sizeof err) == -1 &&
                  strstr(err, "at most 77 positions"),
              "more tokens than positions");
        CHECK(clip_text_forward(l, ids, 1, 77, 1, NULL, NULL, NULL, h, err, sizeof err) == -1 &&
                  strstr(err, "no text projection"),
              "text embeddings of a model without projection");
    }
    unlink(to);
    rmdir(tdir);
    test_conditioning();
    clip_text_free(l), clip_text_free(g);
    safetensors_close(single);
    safetensors_close(ref);
    printf("worst |diff|/(%.0e + %.0e |ref|) over all compared outputs: %.3f\n", ATOL, RTOL, worst_ratio);
    return test_finish();
}
