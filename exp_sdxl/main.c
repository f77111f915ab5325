/* exp_sdxl: the SDXL 1.0 text-to-image command (issue 9 item 8; paper §5.2, App. H): a diffusers folder or a
 * single-file checkpoint, optional LoRAs merged at given weights, Euler sampling with classifier-free guidance,
 * the VAE in fp32, one PNG per image. Defaults are the paper's settings (REFERENCE.md "SDXL experiment"): its
 * prompt and negative prompt, CFG 5.0, no guidance rescale, 100 Euler steps, 1024 x 1024.
 * Image k of seed s starts from our own seeded Gaussian stream (s, k): the same seed always gives the same
 * initial latent, in any batch, whatever the LoRAs -- but it is NOT torch's generator, so a seed does not
 * reproduce a diffusers image; --noise feeds given latents for such comparisons.
 * main() only picks the command: the family (--family: sdxl, or digits for the digits experiment of digits.c)
 * and, for sdxl, --experiment (the barycenter-vs-merging runner of experiment.c); each command parses every
 * option itself. */
#include "exp_sdxl.h"
#include "cli.h"
#include "digits.h"
#include "imgrid.h"
#include "log.h"
#include "mem.h"
#include "safetensors.h"
#include "sdxl_pipe.h"
#include "tensor.h"
#include "vae.h"
#include <getopt.h>
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAPER_PROMPT "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus"
#define PAPER_NEGATIVE "cartoon, anime, 3d, painting, b&w, low quality"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: exp_sdxl --family sdxl --model DIR|FILE [options]\n"
            "       exp_sdxl --family sdxl --experiment --model DIR|FILE --lora A --lora B [options] (see\n"
            "       exp_sdxl --family sdxl --experiment --help: KL barycenter vs checkpoint merging)\n"
            "       exp_sdxl --family digits [--profile smoke|cpu] (see exp_sdxl --family digits --help: the same\n"
            "       comparison on ScoreNets and LoRAs trained here on MNIST 7/9)\n"
            "SDXL 1.0 text-to-image with optional LoRAs; writes OUT/sdxl_s<seed>_<k>.png.\n"
            "  --family sdxl              the model family (sdxl)\n"
            "  --model DIR|FILE           a diffusers folder (stable-diffusion-xl-base-1.0) or a single-file\n"
            "                             checkpoint (sd_xl_base_1.0.safetensors)\n"
            "  --config DIR               with a single file: a diffusers folder holding the configs and\n"
            "                             tokenizers (weights not needed)\n"
            "  --variant fp16|fp32        which weight files of a diffusers folder (default fp32, or fp16 where\n"
            "                             only those exist)\n"
            "  --lora FILE[:WEIGHT]       a LoRA (diffusers/PEFT or kohya keys) merged into the UNet at WEIGHT\n"
            "                             (default 1); repeat for several: W0 + sum_i w_i dW_i\n"
            "  --lora-mode merge|runtime  merge: new weights W0 + sum w dW for the adapted tensors (default);\n"
            "                             runtime: y = W0 x + sum s B A x on the unchanged base weights\n"
            "  --device cpu|cuda|auto     where the UNet runs (default cpu); cuda: fp16 weights and activations,\n"
            "                             fp32 accumulation (text encoders and VAE stay on the CPU, VAE in fp32)\n"
            "  --prompt TEXT              default: the paper's prompt\n"
            "  --negative-prompt TEXT     default: the paper's negative prompt\n"
            "  --no-negative-prompt       no negative prompt (zero embeddings, as diffusers with None)\n"
            "  --seed N                   seed of the initial latents (default 0)\n"
            "  --num-images K             images per seed, k = 0..K-1 (default 1)\n"
            "  --steps N                  Euler steps (default 100)\n"
            "  --cfg S                    classifier-free guidance scale; <= 1 disables it (default 5.0)\n"
            "  --guidance-rescale PHI     diffusers' guidance rescale in [0, 1] (default 0)\n"
            "  --width W, --height H      pixels (default 1024 x 1024)\n"
            "  --noise FILE               initial N(0,1) latents of image k from tensor 'noise.<k>' [4, H/8, W/8]\n"
            "                             of a safetensors file (the format --dump writes) instead of the seeded draw\n"
            "  --dump FILE                also write the initial noise, final latents, text embeddings and the\n"
            "                             float image of every image to a safetensors file (for comparisons)\n"
            "  --out DIR                  output folder (default results/sdxl)\n"
            "  --help                     this text\n");
}

typedef struct {
    safetensors_writer *w;
    float *bufs[64];
    char *names[64];
    int n;
} dumper;

static void dump_add(dumper *d, const char *name, int ndim, const int64_t *shape, float *data)
{
    LOG_CHECK(d->n < 64, "too many dump tensors");
    d->bufs[d->n] = data;
    d->names[d->n] = mem_strdup(name);
    safetensors_writer_add_f32(d->w, d->names[d->n], ndim, shape, data);
    d->n++;
}

static int generate_main(int argc, char **argv)
{
    sdxl_pipe_opts o;
    memset(&o, 0, sizeof o);
    sdxl_gen g = {PAPER_PROMPT, PAPER_NEGATIVE, 0, 0, 100, 5.0f, 0.0f, 1024, 1024};
    const char *family = NULL, *out = "results/sdxl", *noise_path = NULL, *dump_path = NULL;
    long nimg = 1;
    enum { O_FAMILY = 1000, O_MODEL, O_CONFIG, O_VARIANT, O_LORA, O_PROMPT, O_NEG, O_NONEG, O_SEED, O_NIMG, O_STEPS,
           O_CFG, O_RESCALE, O_W, O_H, O_NOISE, O_DUMP, O_OUT, O_HELP, O_LMODE, O_DEVICE };
    static const struct option opts[] = {
        {"family", required_argument, 0, O_FAMILY}, {"model", required_argument, 0, O_MODEL},
        {"config", required_argument, 0, O_CONFIG}, {"variant", required_argument, 0, O_VARIANT},
        {"lora", required_argument, 0, O_LORA}, {"prompt", required_argument, 0, O_PROMPT},
        {"negative-prompt", required_argument, 0, O_NEG}, {"no-negative-prompt", no_argument, 0, O_NONEG},
        {"seed", required_argument, 0, O_SEED}, {"num-images", required_argument, 0, O_NIMG},
        {"steps", required_argument, 0, O_STEPS}, {"cfg", required_argument, 0, O_CFG},
        {"guidance-rescale", required_argument, 0, O_RESCALE}, {"width", required_argument, 0, O_W},
        {"height", required_argument, 0, O_H}, {"noise", required_argument, 0, O_NOISE},
        {"dump", required_argument, 0, O_DUMP}, {"out", required_argument, 0, O_OUT},
        {"lora-mode", required_argument, 0, O_LMODE}, {"help", no_argument, 0, O_HELP},
        {"device", required_argument, 0, O_DEVICE}, {0, 0, 0, 0}};
    static const char *const families[] = {"sdxl", NULL}, *const variants[] = {"fp16", "fp32", NULL},
                             *const lmodes[] = {"merge", "runtime", NULL};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_FAMILY: cli_choice("--family", optarg, families), family = optarg; break;
        case O_MODEL: o.model = optarg; break;
        case O_CONFIG: o.config = optarg; break;
        case O_VARIANT: o.variant = cli_choice("--variant", optarg, variants) == 0 ? "fp16" : NULL; break;
        case O_LORA: {
            if (o.nlora == SDXL_PIPE_MAX_LORAS) log_die("--lora: at most %d LoRAs", SDXL_PIPE_MAX_LORAS);
            char *colon = strrchr(optarg, ':');
            o.lora_weight[o.nlora] = 1.0f;
            if (colon && colon[1] && !strchr(colon, '/')) {
                *colon = 0;
                o.lora_weight[o.nlora] = (float)cli_double("--lora (weight after ':')", colon + 1);
            }
            if (!optarg[0]) log_die("--lora: empty file name");
            o.lora_path[o.nlora++] = optarg;
            break;
        }
        case O_LMODE: o.lora_runtime = cli_choice("--lora-mode", optarg, lmodes); break;
        case O_DEVICE: o.device = device_select("--device", optarg); break;
        case O_PROMPT: g.prompt = optarg; break;
        case O_NEG: g.negative = optarg; break;
        case O_NONEG: g.negative = NULL; break;
        case O_SEED: g.seed = (uint64_t)cli_long("--seed", optarg, 0, 1L << 62); break;
        case O_NIMG: nimg = cli_long("--num-images", optarg, 1, 100000); break;
        case O_STEPS: g.steps = (int)cli_long("--steps", optarg, 1, 1000); break;
        case O_CFG: g.cfg = (float)cli_double_range("--cfg", optarg, 0.0, 1000.0); break;
        case O_RESCALE: g.rescale = (float)cli_double_range("--guidance-rescale", optarg, 0.0, 1.0); break;
        case O_W: g.width = (int)cli_long("--width", optarg, 8, 16384); break;
        case O_H: g.height = (int)cli_long("--height", optarg, 8, 16384); break;
        case O_NOISE: noise_path = optarg; break;
        case O_DUMP: dump_path = optarg; break;
        case O_OUT: out = optarg; break;
        case O_HELP: usage(stdout); return 0;
        default: cli_bad_option(argv[optind - 1]);
        }
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (!family) log_die("--family is required (sdxl; see --help)");
    if (!o.model) log_die("--model DIR|FILE is required (see --help)");
    char err[1024];
    double t0 = log_now();
    sdxl_pipe *p = sdxl_pipe_load(&o, err, sizeof err);
    if (!p) log_die("%s", err);
    int S = sdxl_pipe_vae_scale(p), step = sdxl_pipe_size_step(p), L = sdxl_pipe_latent_channels(p);
    if (g.width % step || g.height % step)
        log_die("--width/--height: %dx%d is not a multiple of %d (this model's step)", g.width, g.height, step);
    int h = g.height / S, w = g.width / S;
    size_t n = (size_t)L * h * w, hw = (size_t)g.width * g.height;
    safetensors *ns = NULL;
    if (noise_path && !(ns = safetensors_open(noise_path, err, sizeof err))) log_die("%s", err);
    float *noise_buf = noise_path ? mem_alloc(n * sizeof *noise_buf) : NULL;
    /* every image's noise is checked before the first image is made */
    for (long k = 0; ns && k < nimg; k++) {   /* the format --dump writes: noise.<k> [4, h, w] */
        char nm[64];
        snprintf(nm, sizeof nm, "noise.%ld", k);
        const safetensors_tensor *t = safetensors_find(ns, nm);
        if (!t || t->dtype != SAFETENSORS_F32 || t->ndim != 3 || t->shape[0] != L || t->shape[1] != h ||
            t->shape[2] != w)
            log_die("%s: tensor '%s': need F32 [%d, %d, %d] (as --dump writes)", noise_path, nm, L, h, w);
    }
    log_info("loaded %s in %.1f s", o.model, log_now() - t0);
    cli_output_dir("--out", out);
    dumper d = {0};
    if (dump_path) d.w = safetensors_writer_alloc();
    float *img = mem_alloc(3 * hw * sizeof *img);
    uint8_t *rgb = mem_alloc(3 * hw);
    int T = 77, Cd = sdxl_pipe_context_dim(p), P = sdxl_pipe_pooled_dim(p);
    for (long k = 0; k < nimg; k++) {
        g.image = (uint64_t)k;
        sdxl_trace tr = {0};
        if (dump_path) {
            tr.noise = mem_alloc(n * 4), tr.final_latents = mem_alloc(n * 4);
            tr.context = mem_alloc((size_t)2 * T * Cd * 4), tr.pooled = mem_alloc((size_t)2 * P * 4);
        }
        double t1 = log_now();
        if (ns) {
            char nm[64];
            snprintf(nm, sizeof nm, "noise.%ld", k);
            memcpy(noise_buf, safetensors_find(ns, nm)->data, n * sizeof *noise_buf);
        }
        if (sdxl_pipe_generate(p, &g, noise_buf, img, &tr, err, sizeof err))
            log_die("%s", err);
        sdxl_vae_to_rgb8(rgb, img, g.height, g.width);
        char path[4096];
        snprintf(path, sizeof path, "%s/sdxl_s%llu_%ld.png", out, (unsigned long long)g.seed, k);
        if (imgrid_write_png_rgb(path, (size_t)g.height, (size_t)g.width, rgb, err, sizeof err)) log_die("%s", err);
        printf("%s\n", path);
        log_info("image %ld of %ld: %d steps in %.1f s", k + 1, nimg, g.steps, log_now() - t1);
        if (dump_path) {
            char nm[64];
            int64_t sl[3] = {L, h, w}, sc[3] = {2, T, Cd}, sp[2] = {2, P}, si[3] = {3, g.height, g.width};
            float *imc = mem_alloc(3 * hw * 4);
            memcpy(imc, img, 3 * hw * 4);
            snprintf(nm, sizeof nm, "noise.%ld", k), dump_add(&d, nm, 3, sl, tr.noise);
            snprintf(nm, sizeof nm, "final_latents.%ld", k), dump_add(&d, nm, 3, sl, tr.final_latents);
            snprintf(nm, sizeof nm, "context.%ld", k), dump_add(&d, nm, 3, sc, tr.context);
            snprintf(nm, sizeof nm, "pooled.%ld", k), dump_add(&d, nm, 2, sp, tr.pooled);
            snprintf(nm, sizeof nm, "image.%ld", k), dump_add(&d, nm, 3, si, imc);
        }
    }
    if (dump_path) {
        if (safetensors_writer_write(d.w, dump_path, err, sizeof err)) log_die("%s", err);
        safetensors_writer_free(d.w);
        for (int i = 0; i < d.n; i++) free(d.bufs[i]), free(d.names[i]);
    }
    free(img), free(rgb), free(noise_buf);
    safetensors_close(ns);
    sdxl_pipe_free(p);
    return 0;
}

/* --family picks the command; sdxl with --experiment is the experiment runner. One line per family. */
static int sdxl_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--experiment")) return es_experiment_main(argc, argv);
    return generate_main(argc, argv);
}

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
} family_mains[] = {
    {"sdxl", sdxl_main},
    {"digits", exp_digits_main},   /* the digits version of the comparison (issue 10 item 3): digits.c */
};

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    gsl_set_error_handler_off();
    const char *family = cli_prescan(argc, argv, "--family", NULL);
    if (!family) return generate_main(argc, argv);   /* reports bad flags, then the missing --family */
    for (size_t i = 0; i < sizeof family_mains / sizeof family_mains[0]; i++)
        if (!strcmp(family, family_mains[i].name)) return family_mains[i].main(argc, argv);
    char names[256] = "";
    for (size_t i = 0; i < sizeof family_mains / sizeof family_mains[0]; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "|" : "", family_mains[i].name);
    log_die("--family: '%s' is not one of %s", family, names);
}
