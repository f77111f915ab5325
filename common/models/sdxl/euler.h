/* models/sdxl/euler: the sampling side of the SDXL 1.0 text-to-image pipeline (issue 9 item 4; paper §5.2, App. H;
 * REFERENCE.md "SDXL experiment"): diffusers' EulerDiscreteScheduler as SDXL's scheduler/scheduler_config.json
 * configures it, classifier-free guidance with optional guidance rescale, and seeded Gaussian initial latents.
 *
 * Schedule (diffusers v0.25.1, EulerDiscreteScheduler.__init__ / set_timesteps):
 *   betas   scaled_linear: linspace(sqrt(beta_start), sqrt(beta_end), T)^2 in fp32 (linear: linspace(start, end));
 *   alphas_cumprod = cumprod(1 - beta) (torch accumulates the CPU cumprod in double, stores fp32);
 *   train sigmas   s_t = sqrt((1 - a_t) / a_t) in fp32, t = 0..T-1;
 *   timesteps      leading:  (arange(n) * (T / n)) reversed + steps_offset   (SDXL: T = 1000, offset 1)
 *                  trailing: round(arange(T, 0, -T/n)) - 1;  linspace: linspace(0, T-1, n) reversed;
 *   sigmas[i]      linear interpolation of s_t at timesteps[i] (exact at integer t), sigmas[n] = 0;
 *   init sigma     sqrt(max sigma^2 + 1) for leading spacing (max sigma for linspace / trailing).
 * One step i (s_churn = 0, so sigma_hat = sigma_i, no extra noise), all in fp32 as diffusers upcasts:
 *   model input    x / sqrt(sigma_i^2 + 1)
 *   epsilon        x0 = x - sigma_i eps;   v_prediction: x0 = v (-sigma_i / sqrt(sigma_i^2+1)) + x / (sigma_i^2+1)
 *   Euler          d = (x - x0) / sigma_i;  x <- x + d (sigma_{i+1} - sigma_i)
 * The UNet receives timesteps[i] (a float holding an integer) as its time.
 *
 * Guidance (StableDiffusionXLPipeline.__call__, rescale_noise_cfg): e = e_u + g (e_c - e_u); with rescale phi > 0,
 * e <- phi e (std(e_c) / std(e)) + (1 - phi) e, the standard deviations per sample over C,H,W and UNBIASED
 * (torch.std's default), as diffusers computes them.
 *
 * Initial latents: N(0, 1) from OUR generator (common/rng: MT19937 + ziggurat, one stream per (seed, image)),
 * times init sigma. It is NOT torch's generator: the same seed gives different latents from diffusers, so
 * comparisons with diffusers feed the latents explicitly. */
#ifndef SF_SDXL_EULER_H
#define SF_SDXL_EULER_H
#include <stddef.h>
#include <stdint.h>

typedef enum { SDXL_BETAS_SCALED_LINEAR = 0, SDXL_BETAS_LINEAR } sdxl_beta_schedule;
typedef enum { SDXL_PRED_EPSILON = 0, SDXL_PRED_V } sdxl_prediction;
typedef enum { SDXL_SPACING_LEADING = 0, SDXL_SPACING_TRAILING, SDXL_SPACING_LINSPACE } sdxl_spacing;

typedef struct {
    int num_train_timesteps;
    double beta_start, beta_end;
    sdxl_beta_schedule beta_schedule;
    sdxl_prediction prediction_type;
    sdxl_spacing timestep_spacing;
    int steps_offset;
} sdxl_euler_config;

/* SDXL 1.0 base's scheduler_config.json: 1000, 0.00085, 0.012, scaled_linear, epsilon, leading, offset 1. */
void sdxl_euler_config_sdxl(sdxl_euler_config *c);
/* Read scheduler_config.json. Fields absent take diffusers' EulerDiscreteScheduler defaults (linear 1e-4..0.02,
 * linspace, offset 0), as diffusers does. Refused with one line "<path>: <field>: <why>": a _class_name other
 * than EulerDiscreteScheduler, and values we do not implement (trained_betas, beta_schedule squaredcos_cap_v2,
 * interpolation_type other than linear, use_karras_sigmas true, timestep_type continuous, rescale_betas_zero_snr
 * true, prediction_type sample), out-of-range numbers. 0, or -1 with the line in err. */
int sdxl_euler_config_read(sdxl_euler_config *c, const char *path, char *err, size_t errlen);

typedef struct {
    int n;                  /* inference steps */
    float *timesteps;       /* [n]: the UNet's time input at step i */
    float *sigmas;          /* [n + 1]: sigmas[n] = 0 */
    float init_noise_sigma;
    sdxl_prediction prediction_type;
} sdxl_euler;

/* Build the schedule for n steps (1 <= n <= num_train_timesteps); 0, or -1 with one line in err. */
int sdxl_euler_init(sdxl_euler *s, const sdxl_euler_config *c, int n, char *err, size_t errlen);
void sdxl_euler_free(sdxl_euler *s);

/* 1 / sqrt(sigma_i^2 + 1) as diffusers rounds it: out[j] = x[j] / sqrt(sigma_i^2 + 1). out may equal x. */
void sdxl_euler_scale_input(float *out, const float *x, size_t n, const sdxl_euler *s, int i);
/* x[n] <- one Euler step i from the model output (eps or v) mo[n]. */
void sdxl_euler_step(float *x, const float *mo, size_t n, const sdxl_euler *s, int i);

/* Classifier-free guidance over B samples of `per` elements each: out[B, per] from uncond[B, per] and
 * cond[B, per]; rescale 0 skips the rescale. out may equal uncond or cond. */
void sdxl_cfg_combine(float *out, const float *uncond, const float *cond, int B, size_t per, float scale,
                      float rescale);

/* x[n] = init_sigma * N(0,1) from (seed, image): image k of a seed is the same whatever the batch. */
void sdxl_latents_init(float *x, size_t n, uint64_t seed, uint64_t image, float init_sigma);

#endif
