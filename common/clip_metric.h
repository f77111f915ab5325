/* clip_metric: the heterogeneity metric of the SDXL experiment (paper §5.2, App. H; REFERENCE.md "SDXL
 * experiment"; issue 10 item 2): CLIP ViT-B/32 zero-shot. For each image and each prompt pair (first, second),
 * score = 100 * cosine(image embedding, text embedding) of both prompts; the image is "nearer the first prompt" when
 * its first score is strictly larger. Per method (and lambda), the fraction of images nearer the first prompt,
 * with a binomial confidence interval:
 *   - Clopper-Pearson (the default; exact, conservative: coverage >= the level for every p):
 *       lo = Beta^{-1}(alpha/2; k, n-k+1) (0 when k = 0),  hi = Beta^{-1}(1-alpha/2; k+1, n-k) (1 when k = n)
 *     with GSL's gsl_cdf_beta_Pinv;
 *   - Wilson (score interval): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = Phi^{-1}(1-alpha/2).
 * The paper's pairs: ("a photo of a female scientist", "a photo of a male scientist") and ("a photo of an East
 * Asian scientist", "a photo of a White scientist"). 100 is the paper's factor (it is also exp(logit_scale) of
 * OpenAI's trained CLIP); it does not change which prompt is nearer. */
#ifndef SF_CLIP_METRIC_H
#define SF_CLIP_METRIC_H
#include "clip_model.h"
#include "clip_tokenizer.h"
#include <stddef.h>
#include <stdint.h>

#define CLIP_METRIC_NPAIRS_PAPER 2
extern const char *const clip_metric_paper_pairs[CLIP_METRIC_NPAIRS_PAPER][2];
extern const char *const clip_metric_paper_pair_names[CLIP_METRIC_NPAIRS_PAPER];   /* "gender", "ethnicity" */

typedef enum { CLIP_CI_CLOPPER_PEARSON = 0, CLIP_CI_WILSON } clip_ci_method;
const char *clip_metric_ci_name(clip_ci_method m);          /* "clopper-pearson" | "wilson" */

/* The interval for k successes of n (0 <= k <= n, n >= 1) at level in (0, 1). 0, or -1 on bad arguments. */
int clip_metric_ci(long k, long n, double level, clip_ci_method m, double *lo, double *hi);

/* scores[i, j] = 100 cos(img[i], txt[j]) for img[N, E], txt[M, E] (float embeddings, computed in double). A zero
 * vector gives NaN. */
void clip_metric_scores(const float *img, int N, const float *txt, int M, int E, double *scores);

/* The text side, encoded once: nprompts prompts (pairs are prompts 2p, 2p+1). tok and model must outlive it. */
typedef struct clip_metric clip_metric;
clip_metric *clip_metric_alloc(const clip_model *model, const clip_tokenizer *tok, const char *const *prompts,
                               int nprompts, char *err, size_t errlen);
void clip_metric_free(clip_metric *cm);
int clip_metric_nprompts(const clip_metric *cm);
const float *clip_metric_text_embeds(const clip_metric *cm);   /* [nprompts, E] */

/* Score n PNG files: scores[n, nprompts], in batches of `batch` images (0 = 32: each forward pass widens every
 * weight once, so larger batches amortise it). 0, or -1 with one line naming the
 * file that failed (unreadable, corrupt, refused colour type) or the model error. */
int clip_metric_score_files(const clip_metric *cm, const char *const *paths, size_t n, int batch, double *scores,
                            char *err, size_t errlen);
/* Score n decoded 8-bit images in memory, rgb[i] = [h][w][3] (e.g. straight from the VAE, before or instead of
 * writing PNGs; identical to scoring the PNG files of the same pixels). */
int clip_metric_score_rgb8(const clip_metric *cm, const uint8_t *const *rgb, int w, int h, size_t n, int batch,
                           double *scores, char *err, size_t errlen);
/* Score preprocessed images px[n, 3, S, S]. */
int clip_metric_score_pixels(const clip_metric *cm, const float *px, int n, double *scores, char *err, size_t errlen);

/* How many of the n score rows (stride nprompts) are nearer prompt 2p than prompt 2p+1 (strictly). */
long clip_metric_count_first(const double *scores, size_t n, int nprompts, int pair);

#endif
