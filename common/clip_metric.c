/* clip_metric: CLIP zero-shot scores, the fraction nearer the first prompt, and its binomial interval (see
 * clip_metric.h). */
#include "clip_metric.h"
#include "clip_image.h"
#include "log.h"
#include "mem.h"
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const clip_metric_paper_pairs[CLIP_METRIC_NPAIRS_PAPER][2] = {
    {"a photo of a female scientist", "a photo of a male scientist"},
    {"a photo of an East Asian scientist", "a photo of a White scientist"},
};
const char *const clip_metric_paper_pair_names[CLIP_METRIC_NPAIRS_PAPER] = {"gender", "ethnicity"};

const char *clip_metric_ci_name(clip_ci_method m) { return m == CLIP_CI_WILSON ? "wilson" : "clopper-pearson"; }

int clip_metric_ci(long k, long n, double level, clip_ci_method m, double *lo, double *hi)
{
    *lo = *hi = NAN;
    if (n < 1 || k < 0 || k > n || !(level > 0 && level < 1)) return -1;
    const double alpha = 1.0 - level;
    if (m == CLIP_CI_WILSON) {
        const double z = gsl_cdf_ugaussian_Qinv(alpha / 2), p = (double)k / n, z2 = z * z, nn = (double)n;
        const double c = (p + z2 / (2 * nn)) / (1 + z2 / nn);
        const double h = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
        *lo = c - h < 0 ? 0 : c - h;
        *hi = c + h > 1 ? 1 : c + h;
        /* exact at the ends: the Wilson bound for k = 0 (k = n) is 0 (1); keep it so in floating point */
        if (k == 0) *lo = 0;
        if (k == n) *hi = 1;
    } else {
        *lo = k == 0 ? 0.0 : gsl_cdf_beta_Pinv(alpha / 2, (double)k, (double)(n - k + 1));
        *hi = k == n ? 1.0 : gsl_cdf_beta_Pinv(1 - alpha / 2, (double)(k + 1), (double)(n - k));
    }
    return isfinite(*lo) && isfinite(*hi) ? 0 : -1;
}

void clip_metric_scores(const float *img, int N, const float *txt, int M, int E, double *scores)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            const float *a = img + (size_t)i * E, *b = txt + (size_t)j * E;
            double ab = 0, aa = 0, bb = 0;
            for (int e = 0; e < E; e++) {
                ab += (double)a[e] * b[e];
                aa += (double)a[e] * a[e];
                bb += (double)b[e] * b[e];
            }
            scores[(size_t)i * M + j] = aa > 0 && bb > 0 ? 100.0 * ab / sqrt(aa * bb) : NAN;
        }
}

struct clip_metric {
    const clip_model *model;
    int nprompts, E, S;
    float *text;       /* [nprompts, E] */
};

clip_metric *clip_metric_alloc(const clip_model *model, const clip_tokenizer *tok, const char *const *prompts,
                               int nprompts, char *err, size_t errlen)
{
    if (nprompts < 2 || nprompts % 2) {
        log_errf(err, errlen, "clip_metric", "%d prompts: need pairs (an even count >= 2)", nprompts);
        return NULL;
    }
    const int T = clip_tokenizer_context(tok), E = clip_model_embed_dim(model);
    const int P = clip_text_cfg(clip_model_text(model))->max_pos;
    if (T > P) {
        log_errf(err, errlen, clip_tokenizer_label(tok), "context %d is longer than the text tower's %d positions", T,
                 P);
        return NULL;
    }
    int32_t *ids = mem_alloc((size_t)nprompts * T * sizeof(int32_t));
    for (int p = 0; p < nprompts; p++) {
        size_t full;
        if (clip_tokenizer_tokenize(tok, prompts[p], ids + (size_t)p * T, &full, err, errlen)) {
            free(ids);
            return NULL;
        }
        if (full > (size_t)T) log_info("clip_metric: prompt \"%s\" truncated to %d tokens", prompts[p], T);
    }
    clip_metric *cm = mem_calloc(1, sizeof *cm);
    cm->model = model, cm->nprompts = nprompts, cm->E = E, cm->S = clip_model_image_size(model);
    cm->text = mem_alloc((size_t)nprompts * E * sizeof(float));
    int bad = clip_model_encode_text(model, ids, nprompts, T, cm->text, err, errlen);
    free(ids);
    if (bad) {
        clip_metric_free(cm);
        return NULL;
    }
    return cm;
}

void clip_metric_free(clip_metric *cm)
{
    if (!cm) return;
    free(cm->text);
    free(cm);
}

int clip_metric_nprompts(const clip_metric *cm) { return cm->nprompts; }
const float *clip_metric_text_embeds(const clip_metric *cm) { return cm->text; }

int clip_metric_score_pixels(const clip_metric *cm, const float *px, int n, double *scores, char *err, size_t errlen)
{
    float *emb = mem_alloc((size_t)n * cm->E * sizeof(float));
    int bad = clip_model_encode_image(cm->model, px, n, emb, err, errlen);
    if (!bad) clip_metric_scores(emb, n, cm->text, cm->nprompts, cm->E, scores);
    free(emb);
    return bad ? -1 : 0;
}

int clip_metric_score_files(const clip_metric *cm, const char *const *paths, size_t n, int batch, double *scores,
                            char *err, size_t errlen)
{
    if (batch <= 0) batch = 32;
    const size_t per = (size_t)3 * cm->S * cm->S;
    float *px = mem_alloc((size_t)batch * per * sizeof(float));
    int bad = 0;
    for (size_t i0 = 0; i0 < n && !bad; i0 += (size_t)batch) {
        const int b = (int)(n - i0 < (size_t)batch ? n - i0 : (size_t)batch);
        for (int i = 0; i < b && !bad; i++) bad = clip_image_load_png(paths[i0 + i], cm->S, px + i * per, err, errlen);
        if (!bad) bad = clip_metric_score_pixels(cm, px, b, scores + i0 * cm->nprompts, err, errlen);
    }
    free(px);
    return bad ? -1 : 0;
}

int clip_metric_score_rgb8(const clip_metric *cm, const uint8_t *const *rgb, int w, int h, size_t n, int batch,
                           double *scores, char *err, size_t errlen)
{
    if (w < 1 || h < 1) {
        log_errf(err, errlen, "clip_metric", "images of %dx%d pixels", w, h);
        return -1;
    }
    if (batch <= 0) batch = 32;
    const size_t per = (size_t)3 * cm->S * cm->S;
    float *px = mem_alloc((size_t)batch * per * sizeof(float));
    uint8_t *rc = mem_alloc((size_t)cm->S * cm->S * 3);
    int bad = 0;
    for (size_t i0 = 0; i0 < n && !bad; i0 += (size_t)batch) {
        const int b = (int)(n - i0 < (size_t)batch ? n - i0 : (size_t)batch);
        for (int i = 0; i < b; i++) {
            clip_image_resize_crop(rgb[i0 + i], w, h, 3, cm->S, rc);
            clip_image_normalise(rc, cm->S, 3, px + i * per);
        }
        bad = clip_metric_score_pixels(cm, px, b, scores + i0 * cm->nprompts, err, errlen);
    }
    free(px), free(rc);
    return bad ? -1 : 0;
}

long clip_metric_count_first(const double *scores, size_t n, int nprompts, int pair)
{
    long k = 0;
    for (size_t i = 0; i < n; i++)
        if (scores[i * nprompts + 2 * pair] > scores[i * nprompts + 2 * pair + 1]) k++;
    return k;
}
