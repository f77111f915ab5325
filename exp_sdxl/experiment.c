/* exp_sdxl --family sdxl --experiment: the paper's SDXL comparison (§5.2, App. H, Figures 1-3 and 8-10; issue
 * 10 item 1; REFERENCE.md "SDXL experiment") of KL-barycenter sampling with checkpoint merging, for two LoRA
 * fine-tunes of one SDXL base:
 *   aux_<A>, aux_<B>   each fine-tune alone (the barycenter at lambda = 1 and 0: one UNet per step)
 *   barycenter lambda  both LoRA'd UNets at run time on ONE shared copy of the base; at every step
 *                      eps = lambda eps_A + (1 - lambda) eps_B before CFG (sdxl_pipe_generate_mix)
 *   merged w           ONE UNet with W0 + w dW_A + (1 - w) dW_B (the LoRA deltas merged, new tensors only for
 *                      the adapted weights), sampled as a plain model
 * lambda and w weigh the FIRST LoRA. The method names are those of results/paper/sdxl_clip.csv and
 * exp_sdxl/clip_fraction --compare: the paper's "aux AF" (Asian-female fine-tune, female fraction 0.996) is the
 * first LoRA with the default --names AF,WM, and its barycenter / merged rows at 0.5 are symmetric in the order.
 * Every image of seed s, whatever the method, starts from the same latent: our seeded Gaussian stream (s, 0).
 * Outputs under --out: images/<method>[_l<lambda>|_w<w>]_s<seed>.png, parts/images_s<seed>.csv (+ .meta: the rows
 * of one seed, rewritten atomically after every image, so a killed run loses at most the image in progress and
 * array jobs over seeds never write the same file), then images.csv (+ .meta; method,lambda,seed,file, ...: the
 * input of clip_fraction) and the PNG grids (rows seeds, columns lambda or w). Resumable per image: an image is
 * skipped when its part verifies (io_csv_verify), its row was made with the same settings (a hash of the model,
 * LoRA files, prompts, steps, CFG, size) and the PNG's CRC-32 is the row's. */
#include "cli.h"
#include "exp_sdxl.h"
#include "imgrid.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "sdxl_pipe.h"
#include "vae.h"
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define PAPER_PROMPT "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus"
#define PAPER_NEGATIVE "cartoon, anime, 3d, painting, b&w, low quality"
#define MAX_GRID 64
#define PART_HEADER "method,lambda,seed,file,weight_first,steps,cfg,width,height,seconds,png_crc32,settings"

enum { K_AUX_A, K_AUX_B, K_BARY, K_MERGED };

typedef struct {
    int kind;
    double v;            /* lambda or w: the first LoRA's weight */
    char method[48], lambda[32], name[96];
} planned;

typedef struct {
    int valid;
    double seconds;
    unsigned long crc;
    char settings[17];
} done_row;

typedef struct {
    const char *out, *names[2], *stage;
    sdxl_pipe_opts o;
    sdxl_gen g;
    double lambdas[MAX_GRID], weights[MAX_GRID];
    size_t nl, nw, nseeds, np;
    long *seeds;
    int endpoints, grid_rows, grid_cell;
    planned *plan;
    done_row *done;      /* [nseeds][np] */
    char settings[17];
    sdxl_pipe *p;
    sdxl_pipe_model *rt[2];
    io_meta meta;
} runner;

static const char *usage_text =
    "usage: exp_sdxl --family sdxl --experiment --model DIR|FILE --lora A.safetensors --lora B.safetensors [options]\n"
    "KL-barycenter sampling vs checkpoint merging of two LoRA fine-tunes (paper §5.2, App. H; Figures 1-3, 8-10).\n"
    "Methods (lambda and w weigh the FIRST LoRA; names as results/paper/sdxl_clip.csv and clip_fraction --compare):\n"
    "  aux_<A>, aux_<B>  each fine-tune alone (= the barycenter at lambda 1 and 0)\n"
    "  barycenter        both LoRA'd UNets at run time on one shared base, eps = lambda eps_A + (1-lambda) eps_B\n"
    "                    at every step before CFG\n"
    "  merged            one UNet with W0 + w dW_A + (1-w) dW_B\n"
    "Every image of seed s starts from the same seeded latent (our stream (s, 0), not torch's generator).\n"
    "  --model DIR|FILE      SDXL base: a diffusers folder or a single file (with --config DIR)\n"
    "  --config DIR          with a single file: a diffusers folder holding the configs and tokenizers\n"
    "  --variant fp16|fp32   weight files of a diffusers folder (default fp32, or fp16 where only those exist)\n"
    "  --lora FILE           twice: the first (A, lambda's) and the second (B) fine-tune; diffusers/PEFT or kohya\n"
    "                        keys, UNet and text encoders\n"
    "  --names A,B           the fine-tunes' names in the method column (default AF,WM: the paper's aux_AF first)\n"
    "  --lambdas LIST        barycenter weights in [0, 1] (default 0,0.2,0.4,0.5,0.6,0.8,1; 1 and 0 are aux_A\n"
    "                        and aux_B)\n"
    "  --weights LIST        merging weights w in [0, 1] (default 0,0.2,0.4,0.5,0.6,0.8,1)\n"
    "  --seeds LIST          seeds and ranges, e.g. 0-511 or 0,5,7-9 (default 0-511: the paper's 512 images)\n"
    "  --part I/N            only the I-th of N near-equal consecutive slices of --seeds (0 <= I < N): one task\n"
    "                        of an array job (run_all.sh --slurm)\n"
    "  --bary-endpoints      also sample the barycenter at lambda 1 and 0 with both UNets run (a check: the images\n"
    "                        equal aux_A and aux_B bit for bit)\n"
    "  --prompt TEXT         default: the paper's prompt\n"
    "  --negative-prompt TEXT  default: the paper's negative prompt\n"
    "  --steps N             Euler steps (default 100)\n"
    "  --cfg S               classifier-free guidance scale (default 5.0)\n"
    "  --width W, --height H pixels (default 1024 x 1024)\n"
    "  --stage all|images|report  images: make the missing images of --seeds; report: images.csv and the grids\n"
    "                        from the parts (every image must exist); all: both (default)\n"
    "  --grid-rows N         seeds (rows) in each grid (default 12: the images of one of the paper's 6x2 grids)\n"
    "  --grid-cell PX        cell width in the grids: images shrunk by an integer factor (default 256)\n"
    "  --device cpu|cuda|auto  where the UNets run (default cpu); cuda: fp16, each model a merged copy\n"
    "  --out DIR             output folder (default results/sdxl)\n"
    "  --help                this text\n"
    "Writes DIR/images/*.png, DIR/parts/images_s<seed>.csv, DIR/images.csv (method,lambda,seed,file,...; with\n"
    ".meta) and DIR/grid_barycenter.png, grid_merged.png, grid_aux.png, grid_bary_vs_merged.png (lambda = w = 0.5).\n";

/* ---- the plan: every image of one seed ---- */

static void plan_add(runner *r, int kind, double v)
{
    planned *p = &r->plan[r->np++];
    memset(p, 0, sizeof *p);
    p->kind = kind, p->v = v;
    if (kind == K_AUX_A || kind == K_AUX_B) {
        snprintf(p->method, sizeof p->method, "aux_%s", r->names[kind == K_AUX_A ? 0 : 1]);
        snprintf(p->name, sizeof p->name, "%s", p->method);
    } else {
        snprintf(p->method, sizeof p->method, "%s", kind == K_BARY ? "barycenter" : "merged");
        snprintf(p->lambda, sizeof p->lambda, "%g", v);
        snprintf(p->name, sizeof p->name, "%s_%c%s", p->method, kind == K_BARY ? 'l' : 'w', p->lambda);
    }
}

static void make_plan(runner *r)
{
    r->plan = mem_calloc(2 + r->nl + r->nw, sizeof *r->plan);
    plan_add(r, K_AUX_A, 1.0);
    plan_add(r, K_AUX_B, 0.0);
    for (size_t i = 0; i < r->nl; i++)
        if (r->endpoints || (r->lambdas[i] != 0.0 && r->lambdas[i] != 1.0)) plan_add(r, K_BARY, r->lambdas[i]);
    for (size_t i = 0; i < r->nw; i++) plan_add(r, K_MERGED, r->weights[i]);
}

static char *image_rel(const planned *p, long seed)
{
    size_t n = strlen(p->name) + 48;
    char *s = mem_alloc(n);
    snprintf(s, n, "images/%s_s%ld.png", p->name, seed);
    return s;
}

/* ---- settings: what determines an image (a row made with other settings is not reused) ---- */

static void file_id(char *buf, size_t len, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) snprintf(buf, len, "%s:%lld:%lld", path, (long long)st.st_size, (long long)st.st_mtime);
    else snprintf(buf, len, "%s", path);
}

static void make_settings(runner *r)
{
    size_t cap = 16384;
    char *s = mem_alloc(cap), a[4200], b[4200], m[4200];
    file_id(a, sizeof a, r->o.lora_path[0]), file_id(b, sizeof b, r->o.lora_path[1]);
    file_id(m, sizeof m, r->o.model);
    snprintf(s, cap, "model=%s|config=%s|variant=%s|lora1=%s|lora2=%s|prompt=%s|negative=%s|steps=%d|cfg=%.9g|%dx%d",
             m, r->o.config ? r->o.config : "", r->o.variant ? r->o.variant : "", a, b, r->g.prompt,
             r->g.negative ? r->g.negative : "", r->g.steps, (double)r->g.cfg, r->g.width, r->g.height);
    /* the GPU's fp16 images differ from the CPU's in rounding: a device change remakes the images */
    if (r->o.device != DEVICE_CPU) {
        size_t l = strlen(s);
        snprintf(s + l, cap - l, "|device=%s", device_name(r->o.device));
    }
    snprintf(r->settings, sizeof r->settings, "%016llx", io_hash64(s));
    free(s);
}

static int png_crc(const char *path, unsigned long *crc)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uLong c = crc32(0L, Z_NULL, 0);
    unsigned char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) c = crc32(c, buf, (uInt)k);
    int bad = ferror(f);
    fclose(f);
    *crc = c;
    return bad ? -1 : 0;
}

/* ---- parts: the rows of one seed ---- */

static char *part_path(const runner *r, long seed) { return io_path(r->out, "parts/images_s%ld.csv", seed); }

/* the rows of seed index si that still hold: part verified, same settings, PNG with the row's CRC */
static void load_part(runner *r, size_t si)
{
    done_row *d = r->done + si * r->np;
    char *path = part_path(r, r->seeds[si]), err[1024];
    struct stat st;
    if (stat(path, &st) != 0) {
        free(path);
        return;
    }
    if (io_csv_verify(path, err, sizeof err)) {
        log_info("%s: not used, its images will be made again (%s)", path, err);
        free(path);
        return;
    }
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (f && getline(&line, &cap, f) != -1) {
        if (lineno++ == 0) continue;
        char *fld[16], *save = NULL;
        int k = 0;
        line[strcspn(line, "\r\n")] = 0;
        for (char *t = strtok_r(line, ",", &save); t && k < 16; t = strtok_r(NULL, ",", &save)) fld[k++] = t;
        /* method,lambda,seed,file,...: an aux row has an empty lambda, which strtok skips */
        int aux = k == 11;
        if (k != 12 && !aux) continue;
        const char *method = fld[0], *lambda = aux ? "" : fld[1];
        char **rest = aux ? fld + 1 : fld + 2;   /* seed, file, weight_first, steps, cfg, w, h, seconds, crc, settings */
        for (size_t i = 0; i < r->np; i++) {
            const planned *p = &r->plan[i];
            if (strcmp(p->method, method) || strcmp(p->lambda, lambda)) continue;
            char *rel = image_rel(p, r->seeds[si]), *png = io_path(r->out, "%s", rel);
            unsigned long want = strtoul(rest[8], NULL, 16), got = 0;
            if (!strcmp(rest[1], rel) && !strcmp(rest[9], r->settings) && png_crc(png, &got) == 0 && got == want) {
                d[i].valid = 1, d[i].crc = want, d[i].seconds = atof(rest[7]);
                snprintf(d[i].settings, sizeof d[i].settings, "%s", rest[9]);
            }
            free(rel), free(png);
        }
    }
    free(line);
    if (f) fclose(f);
    free(path);
}

static void write_part(runner *r, size_t si)
{
    const done_row *d = r->done + si * r->np;
    char *path = part_path(r, r->seeds[si]);
    io_csv *c = io_csv_open(path, PART_HEADER);
    for (size_t i = 0; i < r->np; i++) {
        if (!d[i].valid) continue;
        const planned *p = &r->plan[i];
        char *rel = image_rel(p, r->seeds[si]);
        io_csv_row(c, "%s,%s,%ld,%s,%g,%d,%g,%d,%d,%.2f,%08lx,%s", p->method, p->lambda, r->seeds[si], rel, p->v,
                   r->g.steps, (double)r->g.cfg, r->g.width, r->g.height, d[i].seconds, d[i].crc, d[i].settings);
        free(rel);
    }
    io_meta_set(&r->meta, "seed", "%ld", r->seeds[si]);
    io_csv_commit(c, &r->meta);
    free(path);
}

/* ---- images ---- */

static void load_pipe(runner *r)
{
    if (r->p) return;
    char err[1024];
    double t0 = log_now();
    if (!(r->p = sdxl_pipe_load(&r->o, err, sizeof err))) log_die("%s", err);
    int step = sdxl_pipe_size_step(r->p);
    if (r->g.width % step || r->g.height % step)
        log_die("--width/--height: %dx%d is not a multiple of %d (this model's step)", r->g.width, r->g.height, step);
    log_info("loaded %s and the LoRAs %s, %s in %.1f s", r->o.model, r->o.lora_path[0], r->o.lora_path[1],
             log_now() - t0);
}

static sdxl_pipe_model *runtime_model(runner *r, int which)
{
    if (!r->rt[which]) {
        char err[1024];
        float w[2] = {which == 0 ? 1.0f : 0.0f, which == 0 ? 0.0f : 1.0f};
        if (!(r->rt[which] = sdxl_pipe_model_create(r->p, w, 1, err, sizeof err))) log_die("%s", err);
    }
    return r->rt[which];
}

static void make_image(runner *r, size_t si, size_t pi, sdxl_pipe_model *merged, float *img, uint8_t *rgb)
{
    const planned *p = &r->plan[pi];
    sdxl_gen g = r->g;
    g.seed = (uint64_t)r->seeds[si], g.image = 0;   /* the same initial latent for every method */
    char err[1024];
    double t0 = log_now();
    int rc;
    if (p->kind == K_AUX_A || p->kind == K_AUX_B) {
        sdxl_pipe_model *m = runtime_model(r, p->kind == K_AUX_A ? 0 : 1);
        const float one = 1.0f;
        rc = sdxl_pipe_generate_mix(r->p, &m, &one, 1, &g, NULL, img, NULL, err, sizeof err);
    } else if (p->kind == K_BARY) {
        sdxl_pipe_model *m[2] = {runtime_model(r, 0), runtime_model(r, 1)};
        const float lam[2] = {(float)p->v, (float)(1.0 - p->v)};
        rc = sdxl_pipe_generate_mix(r->p, m, lam, 2, &g, NULL, img, NULL, err, sizeof err);
    } else {
        const float one = 1.0f;
        rc = sdxl_pipe_generate_mix(r->p, &merged, &one, 1, &g, NULL, img, NULL, err, sizeof err);
    }
    if (rc) log_die("%s (%s, seed %ld)", err, p->name, r->seeds[si]);
    sdxl_vae_to_rgb8(rgb, img, g.height, g.width);
    char *rel = image_rel(p, r->seeds[si]), *png = io_path(r->out, "%s", rel);
    if (imgrid_write_png_rgb(png, (size_t)g.height, (size_t)g.width, rgb, err, sizeof err)) log_die("%s", err);
    done_row *d = &r->done[si * r->np + pi];
    if (png_crc(png, &d->crc)) log_die("%s: cannot read back the image just written", png);
    d->valid = 1, d->seconds = log_now() - t0;
    snprintf(d->settings, sizeof d->settings, "%s", r->settings);
    write_part(r, si);
    log_info("%s (%.1f s)", png, d->seconds);
    free(rel), free(png);
}

static void run_images(runner *r)
{
    size_t todo = 0;
    for (size_t i = 0; i < r->nseeds * r->np; i++) todo += !r->done[i].valid;
    if (todo) load_pipe(r);   /* first: a bad model or LoRA file is the only line printed */
    log_info("%zu of %zu images to make (%zu seeds x %zu images; the rest verified and kept)", todo,
             r->nseeds * r->np, r->nseeds, r->np);
    if (!todo) return;
    size_t hw = (size_t)r->g.width * r->g.height;
    float *img = mem_alloc(3 * hw * sizeof *img);
    uint8_t *rgb = mem_alloc(3 * hw);
    /* the run-time models (aux, barycenter) first, every seed; then one merged UNet per w at a time */
    for (size_t si = 0; si < r->nseeds; si++)
        for (size_t pi = 0; pi < r->np; pi++)
            if (r->plan[pi].kind != K_MERGED && !r->done[si * r->np + pi].valid) make_image(r, si, pi, NULL, img, rgb);
    for (int k = 0; k < 2; k++) sdxl_pipe_model_free(r->rt[k]), r->rt[k] = NULL;
    for (size_t pi = 0; pi < r->np; pi++) {
        if (r->plan[pi].kind != K_MERGED) continue;
        sdxl_pipe_model *mm = NULL;
        for (size_t si = 0; si < r->nseeds; si++) {
            if (r->done[si * r->np + pi].valid) continue;
            if (!mm) {
                char err[1024];
                const float w[2] = {(float)r->plan[pi].v, (float)(1.0 - r->plan[pi].v)};
                if (!(mm = sdxl_pipe_model_create(r->p, w, 0, err, sizeof err))) log_die("%s", err);
            }
            make_image(r, si, pi, mm, img, rgb);
        }
        sdxl_pipe_model_free(mm);
    }
    free(img), free(rgb);
}

/* ---- report: images.csv and the grids ---- */

static long find_plan(const runner *r, int kind, double v)
{
    for (size_t i = 0; i < r->np; i++)
        if (r->plan[i].kind == kind && (kind == K_AUX_A || kind == K_AUX_B || r->plan[i].v == v)) return (long)i;
    return -1;
}

/* columns col[ncol] (plan indices) x the first rows seeds, each image shrunk by an integer factor to about the
 * cell width, 4 px white gaps */
static void write_grid(const runner *r, const char *name, const long *col, size_t ncol)
{
    size_t rows = r->nseeds < (size_t)r->grid_rows ? r->nseeds : (size_t)r->grid_rows;
    if (!ncol || !rows) return;
    const size_t W = (size_t)r->g.width, H = (size_t)r->g.height, f = W / (size_t)r->grid_cell ? W / (size_t)r->grid_cell : 1;
    const size_t cw = W / f, ch = H / f, gap = 4, GW = ncol * cw + (ncol + 1) * gap, GH = rows * ch + (rows + 1) * gap;
    uint8_t *g = mem_alloc(GW * GH * 3);
    memset(g, 255, GW * GH * 3);
    char err[1024];
    for (size_t y = 0; y < rows; y++)
        for (size_t x = 0; x < ncol; x++) {
            char *rel = image_rel(&r->plan[col[x]], r->seeds[y]), *png = io_path(r->out, "%s", rel);
            size_t h, w;
            uint8_t *px;
            if (imgrid_read_png_rgb(png, &h, &w, &px, err, sizeof err)) log_die("%s", err);
            if (h != H || w != W) log_die("%s: %zux%zu, the run's size is %zux%zu", png, w, h, W, H);
            for (size_t i = 0; i < ch; i++)
                for (size_t j = 0; j < cw; j++)
                    for (int c = 0; c < 3; c++) {
                        unsigned sum = 0;
                        for (size_t a = 0; a < f; a++)
                            for (size_t b = 0; b < f; b++) sum += px[((i * f + a) * W + j * f + b) * 3 + c];
                        g[((gap + y * (ch + gap) + i) * GW + gap + x * (cw + gap) + j) * 3 + c] =
                            (uint8_t)((sum + f * f / 2) / (f * f));
                    }
            free(px), free(rel), free(png);
        }
    char *path = io_path(r->out, "%s", name);
    if (imgrid_write_png_rgb(path, GH, GW, g, err, sizeof err)) log_die("%s", err);
    log_info("wrote %s (%zu seeds x %zu columns)", path, rows, ncol);
    free(path), free(g);
}

static void run_report(runner *r)
{
    size_t missing = 0;
    long first_missing = -1;
    for (size_t si = 0; si < r->nseeds; si++)
        for (size_t pi = 0; pi < r->np; pi++)
            if (!r->done[si * r->np + pi].valid) {
                missing++;
                if (first_missing < 0) first_missing = r->seeds[si];
            }
    if (missing)
        log_die("--stage report: %zu of %zu images are missing or stale (first: seed %ld); run --stage images for "
                "those seeds first", missing, r->nseeds * r->np, first_missing);
    char *path = io_path(r->out, "images.csv");
    io_csv *c = io_csv_open(path, PART_HEADER);
    for (size_t pi = 0; pi < r->np; pi++)
        for (size_t si = 0; si < r->nseeds; si++) {
            const planned *p = &r->plan[pi];
            const done_row *d = &r->done[si * r->np + pi];
            char *rel = image_rel(p, r->seeds[si]);
            io_csv_row(c, "%s,%s,%ld,%s,%g,%d,%g,%d,%d,%.2f,%08lx,%s", p->method, p->lambda, r->seeds[si], rel,
                       p->v, r->g.steps, (double)r->g.cfg, r->g.width, r->g.height, d->seconds, d->crc, d->settings);
            free(rel);
        }
    io_meta_set(&r->meta, "seed", "%zu seeds (see seeds)", r->nseeds);
    io_csv_commit(c, &r->meta);
    log_info("wrote %s (%zu images)", path, r->nseeds * r->np);
    free(path);
    long col[MAX_GRID + 2];
    size_t n = 0;
    for (size_t i = 0; i < r->nl; i++) {   /* lambda 1 / 0: the fine-tunes (or the endpoint check's images) */
        long k = find_plan(r, K_BARY, r->lambdas[i]);
        col[n++] = k >= 0 ? k : find_plan(r, r->lambdas[i] == 1.0 ? K_AUX_A : K_AUX_B, 0);
    }
    write_grid(r, "grid_barycenter.png", col, n);
    n = 0;
    for (size_t i = 0; i < r->nw; i++) col[n++] = find_plan(r, K_MERGED, r->weights[i]);
    write_grid(r, "grid_merged.png", col, n);
    col[0] = find_plan(r, K_AUX_A, 0), col[1] = find_plan(r, K_AUX_B, 0);
    write_grid(r, "grid_aux.png", col, 2);
    col[0] = find_plan(r, K_BARY, 0.5), col[1] = find_plan(r, K_MERGED, 0.5);
    if (col[0] >= 0 && col[1] >= 0) write_grid(r, "grid_bary_vs_merged.png", col, 2);
}

/* ---- options ---- */

static size_t weight_list(const char *flag, const char *s, double *out)
{
    size_t n = cli_double_list(flag, s, out, MAX_GRID);
    for (size_t i = 0; i < n; i++) {
        if (!(out[i] >= 0.0 && out[i] <= 1.0)) log_die("%s: %g is outside [0, 1]", flag, out[i]);
        for (size_t j = 0; j < i; j++)
            if (out[j] == out[i]) log_die("%s: %g given twice", flag, out[i]);
    }
    return n;
}

int es_experiment_main(int argc, char **argv)
{
    runner r;
    memset(&r, 0, sizeof r);
    r.out = "results/sdxl", r.stage = "all", r.names[0] = "AF", r.names[1] = "WM";
    r.grid_rows = 12, r.grid_cell = 256;
    sdxl_gen g0 = {PAPER_PROMPT, PAPER_NEGATIVE, 0, 0, 100, 5.0f, 0.0f, 1024, 1024};
    r.g = g0;
    r.o.lora_defer = 1;
    const char *seeds = "0-511", *names = NULL;
    long part_i = 0, part_n = 1;
    r.nl = weight_list("--lambdas", "0,0.2,0.4,0.5,0.6,0.8,1", r.lambdas);
    r.nw = weight_list("--weights", "0,0.2,0.4,0.5,0.6,0.8,1", r.weights);
    enum { O_FAMILY = 1000, O_EXP, O_MODEL, O_CONFIG, O_VARIANT, O_LORA, O_NAMES, O_LAMBDAS, O_WEIGHTS, O_SEEDS,
           O_ENDPOINTS, O_PROMPT, O_NEG, O_STEPS, O_CFG, O_W, O_H, O_STAGE, O_GROWS, O_GCELL, O_OUT, O_HELP,
           O_PART, O_DEVICE };
    static const struct option opts[] = {
        {"family", required_argument, 0, O_FAMILY}, {"experiment", no_argument, 0, O_EXP},
        {"model", required_argument, 0, O_MODEL}, {"config", required_argument, 0, O_CONFIG},
        {"variant", required_argument, 0, O_VARIANT}, {"lora", required_argument, 0, O_LORA},
        {"names", required_argument, 0, O_NAMES}, {"lambdas", required_argument, 0, O_LAMBDAS},
        {"weights", required_argument, 0, O_WEIGHTS}, {"seeds", required_argument, 0, O_SEEDS},
        {"bary-endpoints", no_argument, 0, O_ENDPOINTS}, {"prompt", required_argument, 0, O_PROMPT},
        {"negative-prompt", required_argument, 0, O_NEG}, {"steps", required_argument, 0, O_STEPS},
        {"cfg", required_argument, 0, O_CFG}, {"width", required_argument, 0, O_W},
        {"height", required_argument, 0, O_H}, {"stage", required_argument, 0, O_STAGE},
        {"grid-rows", required_argument, 0, O_GROWS}, {"grid-cell", required_argument, 0, O_GCELL},
        {"out", required_argument, 0, O_OUT}, {"help", no_argument, 0, O_HELP},
        {"part", required_argument, 0, O_PART}, {"device", required_argument, 0, O_DEVICE}, {0, 0, 0, 0}};
    static const char *const families[] = {"sdxl", NULL}, *const variants[] = {"fp16", "fp32", NULL},
                             *const stages[] = {"all", "images", "report", NULL};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_FAMILY: cli_choice("--family", optarg, families); break;
        case O_EXP: break;
        case O_MODEL: r.o.model = optarg; break;
        case O_CONFIG: r.o.config = optarg; break;
        case O_VARIANT: r.o.variant = cli_choice("--variant", optarg, variants) == 0 ? "fp16" : NULL; break;
        case O_LORA:
            if (r.o.nlora == 2) log_die("--lora: give exactly two LoRA files (A, then B)");
            if (!optarg[0]) log_die("--lora: empty file name");
            r.o.lora_path[r.o.nlora++] = optarg;
            break;
        case O_NAMES: names = optarg; break;
        case O_LAMBDAS: r.nl = weight_list("--lambdas", optarg, r.lambdas); break;
        case O_WEIGHTS: r.nw = weight_list("--weights", optarg, r.weights); break;
        case O_SEEDS: seeds = optarg; break;
        case O_PART: {
            char *slash = strchr(optarg, '/');
            if (!slash) log_die("--part: '%s' is not I/N", optarg);
            *slash = 0;
            part_n = cli_long("--part (N)", slash + 1, 1, 1000000);
            part_i = cli_long("--part (I)", optarg, 0, part_n - 1);
            break;
        }
        case O_ENDPOINTS: r.endpoints = 1; break;
        case O_PROMPT: r.g.prompt = optarg; break;
        case O_NEG: r.g.negative = optarg; break;
        case O_STEPS: r.g.steps = (int)cli_long("--steps", optarg, 1, 1000); break;
        case O_CFG: r.g.cfg = (float)cli_double_range("--cfg", optarg, 0.0, 1000.0); break;
        case O_W: r.g.width = (int)cli_long("--width", optarg, 8, 16384); break;
        case O_H: r.g.height = (int)cli_long("--height", optarg, 8, 16384); break;
        case O_STAGE: r.stage = stages[cli_choice("--stage", optarg, stages)]; break;
        case O_GROWS: r.grid_rows = (int)cli_long("--grid-rows", optarg, 1, 1000); break;
        case O_GCELL: r.grid_cell = (int)cli_long("--grid-cell", optarg, 8, 16384); break;
        case O_OUT: r.out = optarg; break;
        case O_DEVICE: r.o.device = device_select("--device", optarg); break;
        case O_HELP: fputs(usage_text, stdout); return 0;
        default: cli_bad_option(argv[optind - 1]);
        }
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (!r.o.model) log_die("--model DIR|FILE is required (see --help)");
    if (r.o.nlora != 2) log_die("--lora: give exactly two LoRA files (A, then B; %d given)", r.o.nlora);
    static char namebuf[2][32];
    if (names) {
        const char *comma = strchr(names, ',');
        size_t la = comma ? (size_t)(comma - names) : 0, lb = comma ? strlen(comma + 1) : 0;
        int ok = comma && la && lb && la < 32 && lb < 32 && !strchr(comma + 1, ',');
        for (const char *q = names; ok && *q; q++)
            ok = *q == ',' || *q == '_' || *q == '-' || (*q >= '0' && *q <= '9') || (*q >= 'A' && *q <= 'Z') ||
                 (*q >= 'a' && *q <= 'z');
        if (!ok) log_die("--names: '%s' is not A,B (two names of letters, digits, '_' or '-')", names);
        snprintf(namebuf[0], 32, "%.*s", (int)la, names), snprintf(namebuf[1], 32, "%s", comma + 1);
        if (!strcmp(namebuf[0], namebuf[1])) log_die("--names: the two names are the same");
        r.names[0] = namebuf[0], r.names[1] = namebuf[1];
    }
    r.nseeds = cli_long_ranges("--seeds", seeds, &r.seeds, 1000000, 0, 1L << 62);
    if (part_n > 1) {   /* slice I of N: seeds [I n / N, (I + 1) n / N) */
        size_t a = (size_t)part_i * r.nseeds / (size_t)part_n, b = (size_t)(part_i + 1) * r.nseeds / (size_t)part_n;
        memmove(r.seeds, r.seeds + a, (b - a) * sizeof *r.seeds);
        r.nseeds = b - a;
        if (!r.nseeds) {
            log_info("--part %ld/%ld: no seeds in this slice", part_i, part_n);
            free(r.seeds);
            return 0;
        }
    }
    for (int i = 0; i < 2; i++) {   /* before minutes of loading: a missing LoRA is named at once */
        struct stat st;
        if (stat(r.o.lora_path[i], &st) != 0 || !S_ISREG(st.st_mode))
            log_die("%s: no such LoRA file (--lora)", r.o.lora_path[i]);
    }
    make_plan(&r);
    make_settings(&r);
    r.done = mem_calloc(r.nseeds * r.np, sizeof *r.done);
    cli_output_dir("--out", r.out);
    char *dir = io_path(r.out, "images");
    cli_output_dir("--out", dir);
    free(dir);
    dir = io_path(r.out, "parts");
    cli_output_dir("--out", dir);
    io_remove_stale_tmp(dir);
    free(dir);
    dir = io_path(r.out, "images");
    io_remove_stale_tmp(dir);
    free(dir);

    io_meta_init(&r.meta, argc, argv);
    io_meta_set(&r.meta, "device", "cpu");
    io_meta_set(&r.meta, "model", "%s%s%s", r.o.model, r.o.config ? " with configs of " : "",
                r.o.config ? r.o.config : "");
    io_meta_set(&r.meta, "lora_first", "%s (aux_%s; lambda and w weigh it)", r.o.lora_path[0], r.names[0]);
    io_meta_set(&r.meta, "lora_second", "%s (aux_%s)", r.o.lora_path[1], r.names[1]);
    io_meta_set(&r.meta, "prompt", "%s", r.g.prompt);
    io_meta_set(&r.meta, "negative_prompt", "%s", r.g.negative);
    io_meta_set(&r.meta, "sampler", "Euler, %d steps, CFG %g (no rescale), %dx%d", r.g.steps, (double)r.g.cfg,
                r.g.width, r.g.height);
    io_meta_set(&r.meta, "seeds", "%s (%zu; image of seed s: latent stream (s, 0), the same for every method)",
                seeds, r.nseeds);
    io_meta_set(&r.meta, "barycenter", "eps = lambda eps_A + (1 - lambda) eps_B before CFG, both LoRAs at run time "
                                       "on one base; text encoders adapted per model");
    io_meta_set(&r.meta, "merged", "one UNet with W0 + w dW_A + (1 - w) dW_B (merged copies in the base dtype)");
    io_meta_set(&r.meta, "settings_hash", "%s", r.settings);

    for (size_t si = 0; si < r.nseeds; si++) load_part(&r, si);
    double t0 = log_now();
    if (strcmp(r.stage, "report")) run_images(&r);
    if (strcmp(r.stage, "images")) {
        io_meta_set(&r.meta, "wall_seconds_images", "%.1f (this call)", log_now() - t0);
        run_report(&r);
    }
    for (int k = 0; k < 2; k++) sdxl_pipe_model_free(r.rt[k]);
    sdxl_pipe_free(r.p);
    io_meta_free(&r.meta);
    free(r.plan), free(r.done), free(r.seeds);
    return 0;
}
