/* bench_sdxl_unet: seconds per call of the SDXL 1.0 base UNet (common/models/sdxl/unet) on the CPU, the REAL
 * architecture (tests/fixtures/sdxl/sdxl_base_unet_config.json, the public unet/config.json of
 * stabilityai/stable-diffusion-xl-base-1.0) with random weights of the real shapes, in the dtype asked for
 * (f32: sgemm; bf16: the bf16 GEMM on weights as stored; f16: widened per layer), at a resolution and batch
 * (batch 2 = the guidance pair). Issue 9 "Speed": run it beside ../shared/anchors/sdxl_unet_cpu_bench.py (diffusers,
 * same shapes) in the same session, same threads.
 *
 *   bench/bin/bench_sdxl_unet [--res 512] [--batch 2] [--dtype f32|bf16|f16] [--reps 2] [--config PATH]
 *                             [--device cpu|cuda]
 *
 * --device cuda (issue 9 item 7; `make gpu-check` runs --device cuda --res 1024 --batch 2 --dtype f16 beside
 * tests/reference/sdxl_unet_gpu_bench.py): the same UNet on the GPU, fp16 weights and activations with fp32
 * accumulation; the weights are uploaded during the warm-up call, the timed calls include the host -> device copy
 * of the inputs and the device -> host copy of the output (as the pipeline uses it); prints the device memory in
 * use after the calls (every allocation of ours is made in the warm-up call and kept, so that is the peak) split
 * into the CUDA context, the fp16 weights and the workspace. Without a usable GPU it prints one SKIP line and
 * exits 0 (make gpu-check counts that as a failure). SF_SDXL_ATTN=mma picks the tensor-core attention kernel
 * (nn/nn_cuda_sdxl.h); gpu-check times both.
 *
 * Prints parameters, GFLOP per call (the multiply-adds of convolutions, linear layers and attention, x2), the
 * median seconds of --reps calls after one warm-up, GFLOP/s, and the time per kind of op. Weights cost 4 (f32) or
 * 2 (bf16/f16) bytes per parameter: 10.3 GB or 5.1 GB for SDXL. */
#include "device.h"
#include "sdxl_ops.h"
#include "unet.h"
#include "weights.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef SF_HAVE_CUDA
#include "nn_cuda_sdxl.h"
#endif

typedef struct {
    char **names;
    int64_t (*shapes)[4];
    int *ndims;
    size_t n, cap, total;
} tlist;

static void collect(const char *name, int ndim, const int64_t *shape, void *ctx)
{
    tlist *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->names = realloc(l->names, l->cap * sizeof *l->names);
        l->shapes = realloc(l->shapes, l->cap * sizeof *l->shapes);
        l->ndims = realloc(l->ndims, l->cap * sizeof *l->ndims);
    }
    l->names[l->n] = strdup(name);
    l->ndims[l->n] = ndim;
    size_t numel = 1;
    for (int i = 0; i < 4; i++) l->shapes[l->n][i] = i < ndim ? shape[i] : 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    l->total += numel;
    l->n++;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-a, a) with variance 1/fan_in for matrices and kernels (so activations keep their scale through
 * the network, as a trained model's do), 1 + small for norm scales, small biases. Values come from one pool of
 * 2^20 uniforms read at a per-tensor offset: 2.6 billion fresh random numbers would cost a minute, and speed does
 * not depend on them. */
#define POOL (1 << 20)
static float pool[POOL];

static void fill(void *data, nn_dtype dt, size_t n, int ndim, const int64_t *shape, const char *name, uint64_t seed)
{
    double fan_in = 1;
    for (int i = 1; i < ndim; i++) fan_in *= (double)shape[i];
    const int is_norm = strstr(name, "norm") && !strcmp(name + strlen(name) - 6, "weight");
    const float a = ndim >= 2 ? (float)sqrt(3.0 / fan_in) : 0.1f, off = is_norm ? 1.0f : 0.0f;
    const size_t start = (size_t)(splitmix(&seed) % POOL);
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) {
        const float v = off + a * pool[(start + i) & (POOL - 1)];
        if (dt == NN_F32) ((float *)data)[i] = v;
        else if (dt == NN_BF16) ((uint16_t *)data)[i] = nn_f32_to_bf16(v);
        else ((uint16_t *)data)[i] = nn_f32_to_f16(v);
    }
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* multiply-adds of one call, by walking the same tensors: convs (weights x output positions), linear layers
 * (weights x tokens), attention (2 Tq Tk C per attention) -- computed from the config */
static double flops_per_call(const sdxl_unet_config *c, const tlist *l, int B, int H, int W, int L)
{
    double macs = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *nm = l->names[i];
        if (l->ndims[i] < 2 || !strstr(nm, "weight")) continue;
        double wn = 1;
        for (int d = 0; d < l->ndims[i]; d++) wn *= (double)l->shapes[i][d];
        /* resolution level: down_blocks.i / up_blocks.(nb-1-i) / mid at nb-1; conv_in/out at 0 */
        int level = 0;
        const char *p;
        if ((p = strstr(nm, "down_blocks."))) {
            level = atoi(p + 12);
            if (strstr(nm, "downsamplers")) level++;   /* stride 2: positions of the next level */
        } else if ((p = strstr(nm, "up_blocks."))) {
            level = c->nblocks - 1 - atoi(p + 10);
            if (strstr(nm, "upsamplers")) level--;     /* after the 2x upsampling */
        } else if (strstr(nm, "mid_block."))
            level = c->nblocks - 1;
        else if (strstr(nm, "time_embedding") || strstr(nm, "add_embedding") || strstr(nm, "time_emb_proj")) {
            macs += wn * B;
            continue;
        }
        const double pos = (double)B * (H >> level) * (W >> level);
        if (strstr(nm, "attn2.to_k") || strstr(nm, "attn2.to_v")) macs += wn * B * L;
        else macs += wn * pos;
        if (strstr(nm, "attn1.to_q.weight")) macs += 2.0 * pos * (H >> level) * (W >> level) * l->shapes[i][0];
        if (strstr(nm, "attn2.to_q.weight")) macs += 2.0 * pos * L * l->shapes[i][0];
    }
    return 2 * macs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *cfg_path = "tests/fixtures/sdxl/sdxl_base_unet_config.json", *dts = "f32";
    int res = 512, B = 2, reps = 2, L = 77, cuda = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--res") && i + 1 < argc) res = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dts = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && (!strcmp(argv[i + 1], "cpu") ||
                                                                  !strcmp(argv[i + 1], "cuda")))
            cuda = !strcmp(argv[++i], "cuda");
        else {
            fprintf(stderr, "usage: %s [--res 512] [--batch 2] [--dtype f32|bf16|f16] [--reps 2] [--config PATH] "
                            "[--device cpu|cuda]\n"
                            "bench_sdxl_unet: unknown or incomplete flag '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    nn_dtype dt;
    if (nn_dtype_parse(dts, &dt)) {
        fprintf(stderr, "bench_sdxl_unet: --dtype '%s': want f32, bf16 or f16\n", dts);
        return 2;
    }
    if (res < 64 || res % 64 || B < 1 || reps < 1) {
        fprintf(stderr, "bench_sdxl_unet: --res must be a positive multiple of 64, --batch and --reps >= 1\n");
        return 2;
    }
    char err[1024];
    if (cuda) {
        char why[256] = "";
        if (device_cuda_count(why, sizeof why) == 0) {
            printf("SKIP bench_sdxl_unet --device cuda: %s\n", why);
            return 0;
        }
    }
    sdxl_unet_config cfg;
    if (sdxl_unet_config_load(&cfg, cfg_path, err, sizeof err)) {
        fprintf(stderr, "bench_sdxl_unet: %s\n", err);
        return 1;
    }
    double t0 = omp_get_wtime();
    uint64_t ps = 7;
    for (int i = 0; i < POOL; i++) pool[i] = (float)((double)(splitmix(&ps) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    tlist l = {0};
    sdxl_unet_list_tensors(&cfg, collect, &l);
    const size_t esz = nn_dtype_size(dt);
    size_t bytes = 0;
    for (size_t i = 0; i < l.n; i++) {
        size_t n = 1;
        for (int d = 0; d < l.ndims[i]; d++) n *= (size_t)l.shapes[i][d];
        bytes += (n * esz + 63) / 64 * 64;
    }
    char *arena = aligned_alloc(64, bytes);
    if (!arena) {
        fprintf(stderr, "bench_sdxl_unet: cannot allocate %.2f GB of weights\n", bytes / 1e9);
        return 1;
    }
    nn_weights *w = nn_weights_alloc();
    size_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        nn_tensor t = nn_tensor_view(arena + off, dt, DEVICE_CPU, l.ndims[i], l.shapes[i]);
        fill(t.data, dt, t.numel, l.ndims[i], l.shapes[i], l.names[i], i + 1);
        if (nn_weights_add_tensor(w, l.names[i], &t, "random", err, sizeof err)) {
            fprintf(stderr, "bench_sdxl_unet: %s\n", err);
            return 1;
        }
        off += (t.numel * esz + 63) / 64 * 64;
    }
    sdxl_unet *u = sdxl_unet_create(&cfg, w, NULL, err, sizeof err);
    if (!u) {
        fprintf(stderr, "bench_sdxl_unet: %s\n", err);
        return 1;
    }
    const int h = res / 8;
    printf("sdxl unet: %zu parameters (%zu tensors, %s, %.2f GB), built in %.1f s, %d threads\n",
           sdxl_unet_param_count(u), l.n, nn_dtype_name(dt), bytes / 1e9, omp_get_wtime() - t0, omp_get_max_threads());
#ifdef SF_HAVE_CUDA
    size_t mem_free = 0, mem_total = 0, mem_base = 0;
#endif
    if (cuda) {
        if (sdxl_unet_set_device(u, DEVICE_CUDA, err, sizeof err)) {
            fprintf(stderr, "bench_sdxl_unet: %s\n", err);
            return 1;
        }
#ifdef SF_HAVE_CUDA
        nn_h_mem_info(&mem_free, &mem_total);
        mem_base = mem_total - mem_free;   /* the context, cuBLAS, and whatever else runs on the GPU */
#endif
        char desc[300];
        device_describe(DEVICE_CUDA, desc, sizeof desc);
        const char *ak = getenv("SF_SDXL_ATTN");
        printf("device: %s; fp16 weights and activations, fp32 accumulation; attention kernel: %s\n", desc,
               ak && !strcmp(ak, "mma") ? "tensor-core (SF_SDXL_ATTN=mma)" : "CUDA-core (default)");
    }
    const double gflop = flops_per_call(&cfg, &l, B, h, h, L) / 1e9;

    /* inputs as the pipeline gives them: N(0,1)-ish latents and context, t = 500, SDXL micro-conditioning */
    const size_t nx = (size_t)B * cfg.in_channels * h * h, nctx = (size_t)B * L * cfg.cross_attention_dim[0];
    const int ptext = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim;
    float *x = malloc(nx * sizeof(float)), *ctx = malloc(nctx * sizeof(float)), *out = malloc(nx * sizeof(float));
    float *text = malloc((size_t)B * ptext * sizeof(float)), ids[6 * 64], t[64];
    uint64_t s = 42;
    for (size_t i = 0; i < nx; i++) x[i] = (float)((double)(splitmix(&s) >> 11) * 0x1.0p-53 * 3.4 - 1.7);
    for (size_t i = 0; i < nctx; i++) ctx[i] = (float)((double)(splitmix(&s) >> 11) * 0x1.0p-53 * 3.4 - 1.7);
    for (int i = 0; i < B * ptext; i++) text[i] = (float)((double)(splitmix(&s) >> 11) * 0x1.0p-53 * 3.4 - 1.7);
    for (int b = 0; b < B && b < 64; b++) {
        t[b] = 500.0f;
        const float r = (float)res, v[6] = {r, r, 0, 0, r, r};
        memcpy(ids + 6 * b, v, sizeof v);
    }
    const size_t wsn = sdxl_unet_ws_floats(u, B, h, h, L);
    float *ws = malloc(wsn * sizeof(float));
    double times[64], cpu_total = 0;
    int n = reps < 63 ? reps : 63;
    double before[SDXL_OPS_NKIND];
    for (int i = 0; i <= n; i++) {
        if (i == 1) memcpy(before, sdxl_unet_op_seconds(u), sizeof before);
        double s0 = omp_get_wtime(), c0 = cpu_seconds();
        if (sdxl_unet_forward(u, out, x, t, ctx, L, text, ids, B, h, h, ws, wsn, err, sizeof err)) {
            fprintf(stderr, "bench_sdxl_unet: %s\n", err);
            return 1;
        }
        if (i) {
            times[i - 1] = omp_get_wtime() - s0;
            cpu_total += cpu_seconds() - c0;
        }
    }
    double sum_abs = 0;
    for (size_t i = 0; i < nx; i++) sum_abs += fabs(out[i]);
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    double med = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]), tot = 0;
    for (int i = 0; i < n; i++) tot += times[i];
    printf("res %d (%dx%d latent) batch %d %s: %.2f s per UNet call (min %.2f, max %.2f, %d calls), %.0f GFLOP per "
           "call, %.0f GFLOP/s; mean |eps| %.3g\n", res, h, h, B, nn_dtype_name(dt), med, times[0], times[n - 1], n,
           gflop, gflop / med, sum_abs / nx);
    printf("  CPU time %.2f s per call on %d threads (%.0f%% of wall x threads: below 100%% means the cores were "
           "shared with other processes)\n", cpu_total / n, omp_get_max_threads(),
           100.0 * cpu_total / (tot * omp_get_max_threads()));
#ifdef SF_HAVE_CUDA
    if (cuda) {
        nn_h_mem_info(&mem_free, &mem_total);
        const double gib = 1024.0 * 1024 * 1024, used = (double)(mem_total - mem_free);
        const double wb = (double)sdxl_unet_device_weight_bytes(u);
        printf("  device memory in use after the calls (= peak: nothing of ours is freed between calls): %.2f GiB of "
               "%.1f GiB; before the first call %.2f GiB (context, cuBLAS); fp16 weights %.2f GiB; workspace and "
               "cuBLAS scratch %.2f GiB\n", used / gib, mem_total / gib, mem_base / gib, wb / gib,
               (used - (double)mem_base - wb) / gib);
        printf("  ms per call: %.1f (median of %d)\n", 1e3 * med, n);
    }
#endif
    const double *sec = sdxl_unet_op_seconds(u);
    double timed = 0;
    if (cuda) printf("  (no per-kind times on cuda: the work is queued asynchronously)\n");
    else printf("  per call:");
    for (int k = 0; k < SDXL_OPS_NKIND && !cuda; k++) {
        if (k == SDXL_OPS_OTHER) continue;
        const double v = (sec[k] - before[k]) / n;
        timed += v;
        printf(" %s %.2f s,", sdxl_ops_kind_name(k), v);
    }
    if (!cuda) printf(" other (transposes, adds, SiLU, GEGLU, copies) %.2f s\n", tot / n - timed);
    free(ws);
    free(x);
    free(ctx);
    free(out);
    free(text);
    sdxl_unet_free(u);
    nn_weights_free(w);
    free(arena);
    for (size_t i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names);
    free(l.shapes);
    free(l.ndims);
    return 0;
}
