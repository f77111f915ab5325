/* bench_sdxl_vae: CPU time of SDXL's VAE decoder at the real architecture (common/models/sdxl/vae.h; paper App. H:
 * the decode after the 100 Euler steps, in fp32), random weights of the real shapes (83.65 M parameters, fp16 as
 * the fp16 variant stores them; widened to fp32 at load).
 *   bench_sdxl_vae [--latent N]    decode one N x N latent (default 32: a 256 x 256 image; 128 = 1024 x 1024)
 * Threads: OMP_NUM_THREADS (default all cores). Prints seconds per image. */
#include "log.h"
#include "mem.h"
#include "rng.h"
#include "safetensors.h"
#include "tensor.h"
#include "vae.h"
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    safetensors_writer *w;
    rng *r;
    void **bufs;
    char **names;
    size_t n, cap;
} gen;

static void add(const char *name, int ndim, const int64_t *shape, void *ctx)
{
    gen *g = ctx;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *f = mem_alloc(n * sizeof *f);
    size_t fan = n / (size_t)shape[0];
    rng_gaussian_fill(g->r, f, n);
    for (size_t i = 0; i < n; i++) f[i] = ndim == 1 ? 1.0f + 0.1f * f[i] : f[i] / (float)sqrt((double)fan);
    uint16_t *h = mem_alloc(n * 2);
    nn_f32_convert_to(h, NN_F16, f, n);
    free(f);
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->bufs = mem_realloc(g->bufs, g->cap * sizeof *g->bufs);
        g->names = mem_realloc(g->names, g->cap * sizeof *g->names);
    }
    g->bufs[g->n] = h;
    g->names[g->n] = mem_strdup(name);
    safetensors_writer_add(g->w, g->names[g->n], SAFETENSORS_F16, ndim, shape, h);
    g->n++;
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    int N = 32;
    static const struct option opts[] = {{"latent", required_argument, 0, 'l'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l') N = atoi(optarg);
        else return 2;
    }
    if (N < 1 || N > 256) log_die("--latent: 1..256");
    sdxl_vae_config cfg;
    sdxl_vae_config_sdxl(&cfg);
    gen g = {safetensors_writer_alloc(), rng_alloc(1, 2), NULL, NULL, 0, 0};
    sdxl_vae_enumerate(&cfg, add, &g);
    char path[] = "/tmp/bench_sdxl_vae_XXXXXX", err[512];
    int fd = mkstemp(path);
    close(fd);
    if (safetensors_writer_write(g.w, path, err, sizeof err)) log_die("%s", err);
    safetensors_writer_free(g.w);
    for (size_t i = 0; i < g.n; i++) free(g.bufs[i]), free(g.names[i]);
    free(g.bufs), free(g.names);
    safetensors *st = safetensors_open(path, err, sizeof err);
    double t0 = log_now();
    sdxl_vae *v = sdxl_vae_load(&cfg, st, 0, path, err, sizeof err);
    if (!v) log_die("%s", err);
    double tl = log_now() - t0;
    int S = sdxl_vae_scale(&cfg);
    float *lat = mem_alloc((size_t)4 * N * N * sizeof *lat), *img = mem_alloc((size_t)3 * S * N * S * N * sizeof *img);
    rng_gaussian_fill(g.r, lat, (size_t)4 * N * N);
    t0 = log_now();
    sdxl_vae_decode(v, img, lat, 1, N, N);
    double td = log_now() - t0;
    printf("bench_sdxl_vae: SDXL VAE decoder (83.65 M parameters with the encoder; fp16 file widened to fp32 in %.2f s): "
           "%dx%d latent -> %dx%d image in %.2f s\n", tl, N, N, S * N, S * N, td);
    sdxl_vae_free(v);
    safetensors_close(st);
    unlink(path);
    rng_free(g.r);
    free(lat), free(img);
    return 0;
}
