/* test_clip_metric: the CLIP metric of the SDXL experiment (issue 10 item 2) against open_clip v2.23.0,
 * torchvision 0.14, Pillow 9.4 and scipy 1.10 (fixtures of tests/reference/clip_metric_ref.py in
 * tests/fixtures/clip, or SF_CLIP_FIXTURES):
 *   - PIL's bicubic resize and torchvision's Resize(224) + CenterCrop(224), bit for bit, on procedural images
 *     (down, up, one axis, non-square, the SDXL 1024^2 case), and gray;
 *   - open_clip's preprocessing of PNG files of several types: |ours - ref| <= 1e-6 per element;
 *   - the tiny model in transformers names (folder + config.json) and open_clip names (one file): image and text
 *     embeddings (|d| <= 1e-5 + 1e-4 |ref|, reference in float64), 100 cos (|d| <= 1e-3), every nearer-prompt
 *     decision equal; tokens of the paper's prompts equal open_clip's (reduced vocabulary; the real vocabulary's
 *     ids of the same prompts are test_clip_tokenizer's);
 *   - fractions per method (exact counts) and the Clopper-Pearson and Wilson intervals against scipy (|d| <= 1e-9);
 *   - bad input: missing tensor, wrong shape, missing config key, unreadable / corrupt / refused PNG -> one line
 *     naming the file (and tensor). */
#include "clip_image.h"
#include "clip_metric.h"
#include "clip_model.h"
#include "clip_tokenizer.h"
#include "imgrid.h"
#include "log.h"
#include "mem.h"
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fixdir(void)
{
    const char *d = getenv("SF_CLIP_FIXTURES");
    return d && *d ? d : "tests/fixtures/clip";
}

static char *fpath(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s", fixdir(), name);
    return p;
}

/* the procedural image of clip_metric_ref.py's pattern() */
static uint8_t *pattern(int w, int h)
{
    uint8_t *p = mem_alloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)((x * 255) / (w - 1));
            q[1] = (uint8_t)(((y * 255) / (h - 1) + ((x / 7 + y / 5) % 2) * 60) % 256);
            q[2] = (uint8_t)((((x / 16 + y / 16) % 2) * 200 + ((x * y) % 7) * 8) % 256);
        }
    return p;
}

/* compare n bytes exactly; detail names the count of differing bytes and the largest difference */
static void check_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *name)
{
    size_t bad = 0;
    int mx = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            bad++;
            int d = abs((int)got[i] - (int)want[i]);
            if (d > mx) mx = d;
        }
    char d[160];
    snprintf(d, sizeof d, "%zu of %zu bytes differ (max %d)", bad, n, mx);
    test_report(bad == 0, name, d);
}

static void test_resize(void)
{
    uint8_t *src = pattern(300, 217);
    const int sizes[][2] = {{101, 217}, {300, 90}, {433, 250}, {7, 5}};
    char name[256], err[512];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int w = sizes[k][0], h = sizes[k][1];
        snprintf(name, sizeof name, "pre/resize_300x217_to_%dx%d.png", w, h);
        imgrid_image ref;
        if (imgrid_read_png_any(fpath(name), &ref, err, sizeof err)) {
            test_report(0, name, err);
            continue;
        }
        uint8_t *out = mem_alloc((size_t)w * h * 3);
        clip_image_resize_bicubic(src, 300, 217, 3, out, w, h);
        snprintf(name, sizeof name, "PIL bicubic 300x217 -> %dx%d RGB bit-exact", w, h);
        check_bytes(out, ref.pixels, (size_t)w * h * 3, name);
        free(out), free(ref.pixels);
    }
    /* gray (PIL mode L): the G channel alone */
    {
        uint8_t *g = mem_alloc(300 * 217), *out = mem_alloc(64 * 47);
        for (size_t i = 0; i < 300 * 217; i++) g[i] = src[i * 3 + 1];
        clip_image_resize_bicubic(g, 300, 217, 1, out, 64, 47);
        imgrid_image ref;
        if (imgrid_read_png_any(fpath("pre/resize_gray_300x217_to_64x47.png"), &ref, err, sizeof err) == 0) {
            CHECK(ref.channels == 1, "gray reference PNG has one channel");
            check_bytes(out, ref.pixels, 64 * 47, "PIL bicubic 300x217 -> 64x47 gray (mode L) bit-exact");
            free(ref.pixels);
        } else {
            test_report(0, "gray resize reference", err);
        }
        free(g), free(out);
    }
    free(src);
    const int crops[][2] = {{300, 217}, {1024, 1024}, {57, 43}};
    for (size_t k = 0; k < sizeof crops / sizeof crops[0]; k++) {
        const int w = crops[k][0], h = crops[k][1];
        uint8_t *im = pattern(w, h), *out = mem_alloc(224 * 224 * 3);
        clip_image_resize_crop(im, w, h, 3, 224, out);
        snprintf(name, sizeof name, "pre/crop224_%dx%d.png", w, h);
        imgrid_image ref;
        if (imgrid_read_png_any(fpath(name), &ref, err, sizeof err) == 0) {
            snprintf(name, sizeof name, "torchvision Resize(224, BICUBIC) + CenterCrop(224) of %dx%d bit-exact", w, h);
            check_bytes(out, ref.pixels, 224 * 224 * 3, name);
            free(ref.pixels);
        } else {
            test_report(0, name, err);
        }
        free(im), free(out);
    }
    /* the size and crop rules, including Python's round-half-even */
    int ow, oh, l, t;
    clip_image_resize_size(75, 33, 32, &ow, &oh);
    CHECK(ow == 72 && oh == 32, "Resize(32) of 75x33 is 72x32 (int(32*75/33))");
    clip_image_resize_size(20, 27, 32, &ow, &oh);
    CHECK(ow == 32 && oh == 43, "Resize(32) of 20x27 is 32x43");
    clip_image_crop_offsets(41, 32, 32, &l, &t);
    CHECK(l == 4 && t == 0, "CenterCrop(32) of 41 wide: left round(4.5) = 4 (half to even)");
    clip_image_crop_offsets(32, 43, 32, &l, &t);
    CHECK(l == 0 && t == 6, "CenterCrop(32) of 43 high: top round(5.5) = 6 (half to even)");
}

/* a float tensor of a safetensors file, widened; NULL when absent */
static float *tensor_f32(const safetensors *st, const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t) return NULL;
    float *out = mem_alloc(t->numel * sizeof(float));
    if (t->dtype == SAFETENSORS_F64) {
        for (size_t i = 0; i < t->numel; i++) {
            double v;
            memcpy(&v, (const char *)t->data + i * 8, 8);
            out[i] = (float)v;
        }
    } else {
        nn_tensor v;
        char err[256];
        if (nn_tensor_from_safetensors(&v, t, "ref", err, sizeof err)) {
            free(out);
            return NULL;
        }
        nn_tensor_to_f32(out, &v);
    }
    if (n) *n = t->numel;
    return out;
}

/* max over i of |got - want| / (atol + rtol |want|): <= 1 passes */
static double worst_ratio(const float *got, const float *want, size_t n, double atol, double rtol, double *maxabs)
{
    double w = 0, m = 0;
    *maxabs = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!isfinite(d)) return INFINITY;
        if (d > m) m = d;
        double r = d / (atol + rtol * fabs((double)want[i]));
        if (r > w) w = r;
    }
    *maxabs = m;
    return w;
}

static void check_close(const float *got, const float *want, size_t n, double atol, double rtol, const char *name)
{
    double m, w = worst_ratio(got, want, n, atol, rtol, &m);
    char d[200];
    snprintf(d, sizeof d, "max |diff| %.3g, worst |diff|/(%.0e + %.0e|ref|) = %.3g", m, atol, rtol, w);
    test_report(w <= 1.0, name, d);
    printf("  %s: max |diff| %.3g (ratio to tolerance %.3g)\n", name, m, w);
}

typedef struct {
    safetensors *ref;
    int n;              /* images */
    char **files;       /* img/<name> relative to the fixtures */
    float *px, *te, *ie;
    double *scores;     /* [n, 4] */
    int32_t *ids;       /* [4, 77] */
} refdata;

static int load_ref(refdata *r)
{
    char err[512];
    memset(r, 0, sizeof *r);
    r->ref = safetensors_open(fpath("clip_ref.safetensors"), err, sizeof err);
    if (!r->ref) {
        test_report(0, "open clip_ref.safetensors", err);
        return -1;
    }
    const char *files = safetensors_metadata_get(r->ref, "files");
    /* the metadata is a JSON list of plain names: split at the quotes */
    r->files = mem_calloc(64, sizeof(char *));
    for (const char *p = files; p && (p = strchr(p, '"')) != NULL && r->n < 64;) {
        const char *e = strchr(p + 1, '"');
        if (!e) break;
        size_t len = (size_t)(e - p - 1);
        r->files[r->n] = mem_alloc(len + 8);
        snprintf(r->files[r->n], len + 8, "img/%.*s", (int)len, p + 1);
        r->n++;
        p = e + 1;
    }
    size_t n;
    r->px = tensor_f32(r->ref, "px", NULL);
    r->te = tensor_f32(r->ref, "text_embeds", NULL);
    r->ie = tensor_f32(r->ref, "image_embeds", NULL);
    const safetensors_tensor *s = safetensors_find(r->ref, "scores"), *ids = safetensors_find(r->ref, "ids");
    n = s ? s->numel : 0;
    r->scores = mem_alloc((n ? n : 1) * sizeof(double));
    if (s) memcpy(r->scores, s->data, n * sizeof(double));
    r->ids = mem_alloc(4 * 77 * sizeof(int32_t));
    if (ids && ids->numel == 4 * 77) memcpy(r->ids, ids->data, sizeof(int32_t) * 4 * 77);
    int ok = r->n == 10 && r->px && r->te && r->ie && s && n == (size_t)r->n * 4 && ids;
    test_report(ok, "reference fixtures complete (10 images, px, embeddings, scores, ids)", "missing pieces");
    return ok ? 0 : -1;
}

static void free_ref(refdata *r)
{
    for (int i = 0; i < r->n; i++) free(r->files[i]);
    free(r->files), free(r->px), free(r->te), free(r->ie), free(r->scores), free(r->ids);
    safetensors_close(r->ref);
}

static void test_pixels(const refdata *r)
{
    char err[512], name[256];
    const size_t per = 3 * 32 * 32;
    double worst = 0;
    float *px = mem_alloc(per * sizeof(float));
    for (int i = 0; i < r->n; i++) {
        snprintf(name, sizeof name, "open_clip preprocessing of %s (32 px)", r->files[i]);
        if (clip_image_load_png(fpath(r->files[i]), 32, px, err, sizeof err)) {
            test_report(0, name, err);
            continue;
        }
        double m, w = worst_ratio(px, r->px + i * per, per, 1e-6, 0, &m);
        char d[128];
        snprintf(d, sizeof d, "max |diff| %.3g > 1e-6", m);
        test_report(w <= 1, name, d);
        if (m > worst) worst = m;
    }
    printf("  preprocessing of %d PNG files: max |diff| to open_clip %.3g\n", r->n, worst);
    free(px);
}

static void test_model(const char *label, const char *path, const refdata *r, const clip_tokenizer *tok)
{
    char err[512], name[256];
    clip_model_opts o = {CLIP_ACT_QUICK_GELU, 3, 4};   /* tiny widths: 8-wide heads */
    clip_model *m = clip_model_load(path, &o, err, sizeof err);
    snprintf(name, sizeof name, "%s: load %s", label, path);
    test_report(m != NULL, name, err);
    if (!m) return;
    snprintf(name, sizeof name, "%s: embed dim 16, image 32, logit scale 100", label);
    CHECK_CLOSE(clip_model_embed_dim(m) * 1000.0 + clip_model_image_size(m), 16032.0, 0, 0, name);
    CHECK_CLOSE(clip_model_logit_scale(m), 100.0, 1e-4, 0, name);

    float *te = mem_alloc(4 * 16 * sizeof(float)), *ie = mem_alloc((size_t)r->n * 16 * sizeof(float));
    int bad = clip_model_encode_text(m, r->ids, 4, 77, te, err, sizeof err);
    snprintf(name, sizeof name, "%s: text embeddings of the 4 prompts vs open_clip encode_text", label);
    if (bad) test_report(0, name, err);
    else check_close(te, r->te, 4 * 16, 1e-5, 1e-4, name);
    bad = clip_model_encode_image(m, r->px, r->n, ie, err, sizeof err);
    snprintf(name, sizeof name, "%s: image embeddings of open_clip's pixels vs encode_image", label);
    if (bad) test_report(0, name, err);
    else check_close(ie, r->ie, (size_t)r->n * 16, 1e-5, 1e-4, name);

    /* the metric end to end from the PNG files and the prompts */
    const char *prompts[4] = {clip_metric_paper_pairs[0][0], clip_metric_paper_pairs[0][1],
                              clip_metric_paper_pairs[1][0], clip_metric_paper_pairs[1][1]};
    clip_metric *cm = clip_metric_alloc(m, tok, prompts, 4, err, sizeof err);
    snprintf(name, sizeof name, "%s: clip_metric_alloc (the paper's prompt pairs)", label);
    test_report(cm != NULL, name, err);
    if (cm) {
        const char **paths = mem_alloc((size_t)r->n * sizeof(char *));
        char **own = mem_alloc((size_t)r->n * sizeof(char *));
        for (int i = 0; i < r->n; i++) paths[i] = own[i] = mem_strdup(fpath(r->files[i]));
        double *sc = mem_alloc((size_t)r->n * 4 * sizeof(double));
        bad = clip_metric_score_files(cm, paths, (size_t)r->n, 5, sc, err, sizeof err);   /* batches of 5, 5, 2 */
        snprintf(name, sizeof name, "%s: scores of the PNG files", label);
        test_report(!bad, name, err);
        if (!bad) {
            double mx = 0, margin = INFINITY;
            int agree = 1;
            for (int i = 0; i < r->n; i++) {
                for (int j = 0; j < 4; j++) {
                    double d = fabs(sc[i * 4 + j] - r->scores[i * 4 + j]);
                    if (!(d <= mx)) mx = d;
                }
                for (int p = 0; p < 2; p++) {
                    const double *a = sc + i * 4 + 2 * p, *b = r->scores + i * 4 + 2 * p;
                    agree &= (a[0] > a[1]) == (b[0] > b[1]);
                    if (fabs(b[0] - b[1]) < margin) margin = fabs(b[0] - b[1]);
                }
            }
            char d[160];
            snprintf(d, sizeof d, "max |diff| %.3g > 1e-3", mx);
            snprintf(name, sizeof name, "%s: 100 cos vs open_clip (|diff| <= 1e-3)", label);
            test_report(mx <= 1e-3, name, d);
            printf("  %s: max |score diff| %.3g; smallest reference margin |s1 - s2| %.3g\n", label, mx, margin);
            snprintf(name, sizeof name, "%s: every nearer-prompt decision equals open_clip's", label);
            CHECK(agree, name);
        }
        /* the same RGB images from memory */
        {
            const int rgb_img[3] = {0, 4, 1};   /* rgb_40x56, rgb_64x64, rgb_75x33 */
            double a[4], b[4];
            int same = 1;
            for (int k = 0; k < 3; k++) {
                imgrid_image im;
                if (imgrid_read_png_any(paths[rgb_img[k]], &im, err, sizeof err) || im.channels != 3) {
                    same = 0;
                    continue;
                }
                const uint8_t *one[1] = {im.pixels};
                same &= clip_metric_score_rgb8(cm, one, (int)im.w, (int)im.h, 1, 0, a, err, sizeof err) == 0;
                same &= clip_metric_score_files(cm, paths + rgb_img[k], 1, 0, b, err, sizeof err) == 0;
                same &= memcmp(a, b, sizeof a) == 0;
                free(im.pixels);
            }
            snprintf(name, sizeof name, "%s: clip_metric_score_rgb8 (in memory) equals scoring the PNG files", label);
            CHECK(same, name);
        }
        free(sc);
        for (int i = 0; i < r->n; i++) free(own[i]);
        free(own), free(paths);
        clip_metric_free(cm);
    }
    free(te), free(ie);
    clip_model_free(m);
}

/* CSV of numbers after a header; fields as strings */
static int read_csv(const char *path, char rows[][12][64], int maxrows)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = -1;
    while (fgets(line, sizeof line, f) && n < maxrows) {
        if (n >= 0) {
            int c = 0;
            for (char *tok = strtok(line, ",\n"); tok && c < 12; tok = strtok(NULL, ",\n"))
                snprintf(rows[n][c++], 64, "%s", tok);
        }
        n++;
    }
    fclose(f);
    return n;
}

static void test_intervals(void)
{
    static char rows[32][12][64];
    int n = read_csv(fpath("intervals.csv"), rows, 32);
    CHECK(n == 12, "intervals.csv has 12 rows");
    double worst = 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        long k = atol(rows[i][0]), nn = atol(rows[i][1]);
        double level = atof(rows[i][2]), lo, hi, wl, wh;
        ok &= clip_metric_ci(k, nn, level, CLIP_CI_CLOPPER_PEARSON, &lo, &hi) == 0;
        ok &= clip_metric_ci(k, nn, level, CLIP_CI_WILSON, &wl, &wh) == 0;
        const double d[4] = {lo - atof(rows[i][3]), hi - atof(rows[i][4]), wl - atof(rows[i][5]),
                             wh - atof(rows[i][6])};
        for (int j = 0; j < 4; j++)
            if (!(fabs(d[j]) <= worst)) worst = fabs(d[j]);
    }
    char det[128];
    snprintf(det, sizeof det, "max |diff| %.3g > 1e-9", worst);
    test_report(ok && worst <= 1e-9, "Clopper-Pearson and Wilson intervals vs scipy (12 cases, |diff| <= 1e-9)", det);
    printf("  intervals: max |diff| to scipy %.3g\n", worst);
    double lo, hi;
    CHECK(clip_metric_ci(3, 2, 0.95, CLIP_CI_WILSON, &lo, &hi) == -1, "interval of k > n refused");
    CHECK(clip_metric_ci(1, 2, 1.0, CLIP_CI_CLOPPER_PEARSON, &lo, &hi) == -1, "interval at level 1 refused");
    CHECK(clip_metric_ci(0, 0, 0.95, CLIP_CI_CLOPPER_PEARSON, &lo, &hi) == -1, "interval of n = 0 refused");
}

static void test_fractions(const refdata *r)
{
    static char rows[32][12][64];
    int n = read_csv(fpath("fractions.csv"), rows, 32);
    CHECK(n == 4, "fractions.csv has 4 rows (2 methods x 2 pairs)");
    /* method A: even images, B: odd (images.csv); counts from the REFERENCE scores must be the reference's k,
     * and ours were checked decision by decision above */
    int ok = 1;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        int meth = rows[i][0][0] == 'B', pair = strcmp(rows[i][2], "ethnicity") == 0;
        double *sub = mem_alloc((size_t)r->n * 4 * sizeof(double));
        size_t m = 0;
        for (int j = meth; j < r->n; j += 2, m++) memcpy(sub + m * 4, r->scores + j * 4, 4 * sizeof(double));
        long k = clip_metric_count_first(sub, m, 4, pair);
        ok &= (long)m == atol(rows[i][3]) && k == atol(rows[i][4]);
        double lo, hi, wl, wh;
        clip_metric_ci(k, (long)m, 0.95, CLIP_CI_CLOPPER_PEARSON, &lo, &hi);
        clip_metric_ci(k, (long)m, 0.95, CLIP_CI_WILSON, &wl, &wh);
        const double d[5] = {(double)k / m - atof(rows[i][5]), lo - atof(rows[i][6]), hi - atof(rows[i][7]),
                             wl - atof(rows[i][8]), wh - atof(rows[i][9])};
        for (int j = 0; j < 5; j++)
            if (!(fabs(d[j]) <= worst)) worst = fabs(d[j]);
        free(sub);
    }
    char det[128];
    snprintf(det, sizeof det, "counts %s, max |diff| %.3g", ok ? "equal" : "DIFFER", worst);
    test_report(ok && worst <= 1e-9, "fractions and their intervals per method and pair vs the reference", det);
}

/* ---- bad input ---- */
static int contains(const char *s, const char *a, const char *b)
{
    return strstr(s, a) && (!b || strstr(s, b)) && !strchr(s, '\n');
}

/* a copy of the HF weights without tensor `drop`, or with `reshape` given a wrong shape */
static int write_variant(const char *src, const char *dst, const char *drop, const char *reshape)
{
    char err[512];
    safetensors *st = safetensors_open(src, err, sizeof err);
    if (!st) return -1;
    safetensors_writer *w = safetensors_writer_alloc();
    int64_t bad_shape[2] = {1, 0};
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        if (reshape && !strcmp(t->name, reshape)) {   /* same bytes, shape [1, numel] */
            bad_shape[1] = (int64_t)t->numel;
            safetensors_writer_add(w, t->name, t->dtype, 2, bad_shape, t->data);
        } else {
            safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
    }
    int rc = safetensors_writer_write(w, dst, err, sizeof err);
    safetensors_writer_free(w);
    safetensors_close(st);
    return rc;
}

static void test_bad_input(const clip_tokenizer *tok)
{
    char err[512], dir[] = "/tmp/test_clip_metric.XXXXXX";
    if (!mkdtemp(dir)) {
        test_report(0, "mkdtemp", "cannot create a temp folder");
        return;
    }
    char p[512], q[1024], cmd[2200];
    clip_model_opts o = {CLIP_ACT_QUICK_GELU, 3, 4};
    /* missing tensor (transformers folder) */
    snprintf(p, sizeof p, "%s/hf", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/", p, fpath("hf/config.json"), p);
    CHECK(system(cmd) == 0, "copy the fixture folder");
    snprintf(q, sizeof q, "%s/model.safetensors", p);
    write_variant(fpath("hf/model.safetensors"), q, "vision_model.encoder.layers.1.mlp.fc2.bias", NULL);
    clip_model *m = clip_model_load(p, &o, err, sizeof err);
    CHECK(!m && contains(err, q, "'vision_model.encoder.layers.1.mlp.fc2.bias' is missing"),
          "missing tensor: one line naming the file and the tensor");
    printf("  error: %s\n", err);
    clip_model_free(m);
    /* wrong shape */
    write_variant(fpath("hf/model.safetensors"), q, NULL, "vision_model.embeddings.position_embedding.weight");
    m = clip_model_load(p, &o, err, sizeof err);
    CHECK(!m && contains(err, q,
                         "'vision_model.embeddings.position_embedding.weight': shape [1, 544], expected [17, 32]"),
          "wrong shape: one line naming the file, the tensor and both shapes");
    printf("  error: %s\n", err);
    clip_model_free(m);
    /* open_clip file: missing and wrong */
    snprintf(q, sizeof q, "%s/oc.safetensors", dir);
    write_variant(fpath("openclip.safetensors"), q, "visual.ln_post.weight", NULL);
    m = clip_model_load(q, &o, err, sizeof err);
    CHECK(!m && contains(err, q, "'visual.ln_post.weight' is missing"), "open_clip file, missing tensor named");
    printf("  error: %s\n", err);
    clip_model_free(m);
    write_variant(fpath("openclip.safetensors"), q, NULL, "visual.proj");
    m = clip_model_load(q, &o, err, sizeof err);
    CHECK(!m && contains(err, q, "'visual.proj'"), "open_clip file, wrong projection shape named");
    printf("  error: %s\n", err);
    clip_model_free(m);
    write_variant(fpath("openclip.safetensors"), q, NULL, NULL);
    clip_model_opts o64 = {CLIP_ACT_QUICK_GELU, 0, 0};
    m = clip_model_load(q, &o64, err, sizeof err);
    CHECK(!m && contains(err, q, "width 24 is not a multiple of 64"), "head count not inferable: says so");
    clip_model_free(m);
    /* not a CLIP model: the SDXL text fixture */
    m = clip_model_load("tests/fixtures/sdxl/text_single.safetensors", &o, err, sizeof err);
    CHECK(!m && contains(err, "text_single.safetensors", "not a CLIP model"), "a file without an image tower");
    clip_model_free(m);
    /* config: wrong type */
    FILE *f;
    snprintf(q, sizeof q, "%s/config.json", p);
    if ((f = fopen(q, "w"))) {
        fputs("{\"projection_dim\": 16, \"text_config\": {\"hidden_size\": \"24\"}, \"vision_config\": {}}\n", f);
        fclose(f);
    }
    m = clip_model_load(p, &o, err, sizeof err);
    CHECK(!m && contains(err, q, "hidden_size"), "config with a bad value: file and key named");
    printf("  error: %s\n", err);
    clip_model_free(m);
    snprintf(q, sizeof q, "%s/nothere", dir);
    m = clip_model_load(q, &o, err, sizeof err);
    CHECK(!m && contains(err, q, NULL), "missing model path named");
    clip_model_free(m);

    /* images */
    float *px = mem_alloc(3 * 32 * 32 * sizeof(float));
    CHECK(clip_image_load_png(fpath("img/bad_palette.png"), 32, px, err, sizeof err) == -1 &&
              contains(err, "bad_palette.png", "palette"),
          "palette PNG refused, file named");
    printf("  error: %s\n", err);
    CHECK(clip_image_load_png(fpath("img/bad_transparent.png"), 32, px, err, sizeof err) == -1 &&
              contains(err, "bad_transparent.png", "transparent"),
          "transparent RGBA refused, file named");
    snprintf(q, sizeof q, "%s/none.png", dir);
    CHECK(clip_image_load_png(q, 32, px, err, sizeof err) == -1 && contains(err, q, "cannot open"),
          "missing PNG: file named");
    snprintf(q, sizeof q, "%s/trunc.png", dir);
    snprintf(cmd, sizeof cmd, "head -c 700 %s > %s", fpath("img/rgb_64x64.png"), q);
    CHECK(system(cmd) == 0, "write a truncated PNG");
    CHECK(clip_image_load_png(q, 32, px, err, sizeof err) == -1 && contains(err, q, "corrupt or truncated"),
          "truncated PNG: file named");
    printf("  error: %s\n", err);
    snprintf(q, sizeof q, "%s/text.png", dir);
    if ((f = fopen(q, "w"))) {
        fputs("not a png at all\n", f);
        fclose(f);
    }
    CHECK(clip_image_load_png(q, 32, px, err, sizeof err) == -1 && contains(err, q, "not a PNG"),
          "a text file named .png: file named");
    free(px);

    /* the metric names the failing file */
    m = clip_model_load(fpath("hf"), &o, err, sizeof err);
    if (m) {
        const char *prompts[2] = {"a", "b"};
        clip_metric *cm = clip_metric_alloc(m, tok, prompts, 2, err, sizeof err);
        const char *paths[3] = {fpath("img/rgb_40x56.png"), fpath("img/bad_palette.png"), fpath("img/rgb_64x64.png")};
        double sc[6];
        CHECK(cm && clip_metric_score_files(cm, paths, 3, 2, sc, err, sizeof err) == -1 &&
                  contains(err, "bad_palette.png", NULL),
              "clip_metric_score_files stops at the bad file and names it");
        CHECK(clip_metric_alloc(m, tok, prompts, 1, err, sizeof err) == NULL, "an odd number of prompts refused");
        clip_metric_free(cm);
        clip_model_free(m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

/* SF_CLIP_FULL=DIR (clip_metric_ref.py --full DIR): a random CLIP of the real ViT-B/32 shapes in both layouts,
 * head counts inferred (width / 64) and from transformers' defaults; the PNGs through our preprocessing; SF_CLIP_BPE
 * (open_clip's real vocabulary) for the tokens. Prints SKIP without it. */
static void test_full(void)
{
    const char *dir = getenv("SF_CLIP_FULL");
    if (!dir || !*dir) {
        printf("SKIP full-size ViT-B/32 check: set SF_CLIP_FULL (tests/reference/clip_metric_ref.py --full DIR)\n");
        return;
    }
    char path[1024], err[512], name[256];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    safetensors *ref = safetensors_open(path, err, sizeof err);
    if (!ref) {
        test_report(0, "full: reference", err);
        return;
    }
    float *px = tensor_f32(ref, "px", NULL), *ie = tensor_f32(ref, "image_embeds", NULL);
    float *te = tensor_f32(ref, "text_embeds", NULL);
    const safetensors_tensor *ids = safetensors_find(ref, "ids");
    const char *layouts[2] = {"hf", "openclip.safetensors"};
    for (int k = 0; k < 2 && px && ie && te && ids; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, layouts[k]);
        clip_model *m = clip_model_load(path, NULL, err, sizeof err);
        snprintf(name, sizeof name, "full ViT-B/32 (%s): load", layouts[k]);
        test_report(m && clip_model_embed_dim(m) == 512 && clip_model_image_size(m) == 224, name, m ? "sizes" : err);
        if (!m) continue;
        float *oe = mem_alloc(2 * 512 * sizeof(float)), *ot = mem_alloc(4 * 512 * sizeof(float));
        float *opx = mem_alloc(2 * 3 * 224 * 224 * sizeof(float));
        double t0 = log_now();
        int bad = clip_model_encode_image(m, px, 2, oe, err, sizeof err);
        double t1 = log_now();
        snprintf(name, sizeof name, "full ViT-B/32 (%s): image embeddings vs open_clip", layouts[k]);
        if (bad) test_report(0, name, err);
        else check_close(oe, ie, 2 * 512, 1e-5, 1e-3, name);
        printf("  full (%s): 2 images in %.2f s\n", layouts[k], t1 - t0);
        bad = clip_model_encode_text(m, (const int32_t *)ids->data, 4, 77, ot, err, sizeof err);
        snprintf(name, sizeof name, "full ViT-B/32 (%s): text embeddings vs open_clip", layouts[k]);
        if (bad) test_report(0, name, err);
        else check_close(ot, te, 4 * 512, 1e-5, 1e-3, name);
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/im%d.png", dir, i);
            if (clip_image_load_png(path, 224, opx + (size_t)i * 3 * 224 * 224, err, sizeof err))
                test_report(0, path, err);
        }
        double m_, w = worst_ratio(opx, px, 2 * 3 * 224 * 224, 1e-6, 0, &m_);
        snprintf(name, sizeof name, "full (%s): preprocessing of the 1024^2 and 300x217 PNGs", layouts[k]);
        CHECK(w <= 1, name);
        clip_model_free(m);
        free(oe), free(ot), free(opx);
    }
    const char *bpe = getenv("SF_CLIP_BPE");
    if (bpe && *bpe && ids) {
        clip_tokenizer *tok = clip_tokenizer_load_bpe(bpe, err, sizeof err);
        int same = tok != NULL;
        for (int p = 0; p < 4 && tok; p++) {
            int32_t t[77];
            same &= clip_tokenizer_tokenize(tok, clip_metric_paper_pairs[p / 2][p % 2], t, NULL, err, sizeof err) == 0;
            same &= memcmp(t, (const int32_t *)ids->data + p * 77, sizeof t) == 0;
        }
        CHECK(same, "full: the paper's prompts in the real vocabulary equal open_clip.tokenize");
        clip_tokenizer_free(tok);
    }
    free(px), free(ie), free(te);
    safetensors_close(ref);
}

int main(void)
{
    test_resize();
    refdata r;
    char err[512];
    clip_tokenizer *tok = clip_tokenizer_load_bpe("tests/fixtures/sdxl/clip_bpe_reduced.txt.gz", err, sizeof err);
    test_report(tok != NULL, "reduced CLIP vocabulary (tests/fixtures/sdxl)", err);
    if (load_ref(&r) == 0 && tok) {
        /* the tokens of the paper's prompts are open_clip's */
        int32_t ids[77];
        int same = 1;
        for (int p = 0; p < 4; p++) {
            same &= clip_tokenizer_tokenize(tok, clip_metric_paper_pairs[p / 2][p % 2], ids, NULL, err, sizeof err) ==
                    0;
            same &= memcmp(ids, r.ids + p * 77, sizeof ids) == 0;
        }
        CHECK(same, "token ids of the paper's 4 prompts equal open_clip's (reduced vocabulary)");
        test_pixels(&r);
        test_model("transformers folder", fpath("hf"), &r, tok);
        test_model("open_clip file", fpath("openclip.safetensors"), &r, tok);
        test_fractions(&r);
        free_ref(&r);
    }
    test_intervals();
    if (tok) test_bad_input(tok);
    test_full();
    clip_tokenizer_free(tok);
    return test_finish();
}
