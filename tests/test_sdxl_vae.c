/* test_sdxl_vae: SDXL's VAE decoder (common/models/sdxl/vae.h) against diffusers v0.25.1's AutoencoderKL on a
 * tiny random config (3 blocks [8, 16, 16], 2 layers per block, 4 groups; fixture tests/fixtures/sdxl/vae/ from
 * tests/reference/sdxl_pipe_ref.py):
 *   - decode of 2 non-square latents (6x8 -> 24x32) from the diffusers-layout fp32 weights: |ours - diffusers| <=
 *     2e-5 + 2e-5 |diffusers| (fp32, different summation order);
 *   - the same from the single-file layout (first_stage_model.* ldm names, fp16 weights, attention as 1x1
 *     convs), against diffusers run on the same fp16-rounded weights: same tolerance;
 *   - the uint8 postprocessing: equal to diffusers' except where the fp32 difference crosses a rounding boundary
 *     (at most 1 level, on at most 1% of the values), and the RGB PNG round trip;
 *   - the name map and the enumeration: every tensor of the fixture's diffusers file is enumerated with its shape,
 *     and nothing else; selected ldm names by hand;
 *   - bad input: missing tensor, wrong shape, NaN weight, bad config; each a one-line error naming file and tensor. */
#include "imgrid.h"
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include "vae.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/sdxl/vae/"

static float *get_f32(const safetensors *st, const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(st, name);
    if (!t) return NULL;
    nn_tensor v;
    char err[256];
    if (nn_tensor_from_safetensors(&v, t, "io", err, sizeof err)) return NULL;
    float *f = malloc(v.numel * sizeof *f);
    nn_tensor_to_f32(f, &v);
    *n = v.numel;
    return f;
}

static double worst(const float *got, const float *want, size_t n, double atol, double rtol, double *maxabs)
{
    double w = 0;
    *maxabs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), e = d / (atol + rtol * fabs(want[i]));
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
        if (d > *maxabs) *maxabs = d;
    }
    return w;
}

typedef struct { const safetensors *st; int n, missing, badshape; } enum_ctx;

static void on_tensor(const char *name, int ndim, const int64_t *shape, void *p)
{
    enum_ctx *c = p;
    c->n++;
    const safetensors_tensor *t = safetensors_find(c->st, name);
    if (!t) {
        if (c->missing++ < 3) printf("  enumerated but absent: %s\n", name);
        return;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok && c->badshape++ < 3) printf("  shape differs: %s\n", name);
}

static void check_decode(const sdxl_vae_config *cfg, const char *wfile, int single, const char *want_key,
                         const char *what)
{
    char err[512], name[256];
    safetensors *w = safetensors_open(wfile, err, sizeof err), *io = safetensors_open(FIX "io.safetensors", err, sizeof err);
    if (!w || !io) {
        test_report(0, "open fixture", err);
        return;
    }
    sdxl_vae *v = sdxl_vae_load(cfg, w, single, wfile, err, sizeof err);
    snprintf(name, sizeof name, "%s: loads", what);
    test_report(v != NULL, name, err);
    if (!v) return;
    size_t nl, ni, nr;
    float *lat = get_f32(io, "latents", &nl), *want = get_f32(io, want_key, &ni), *rgbw = get_f32(io, "rgb", &nr);
    int B = 2, h = 6, wd = 8, S = sdxl_vae_scale(cfg);
    CHECK(S == 4 && nl == (size_t)B * 4 * h * wd && ni == (size_t)B * 3 * S * h * S * wd, "fixture sizes");
    float *img = malloc(ni * sizeof *img);
    sdxl_vae_decode(v, img, lat, B, h, wd);
    double mx, wr = worst(img, want, ni, 2e-5, 2e-5, &mx);
    snprintf(name, sizeof name, "%s: decode equals diffusers' within 2e-5 + 2e-5 rel (max |diff| %.3g)", what, mx);
    CHECK(wr <= 1, name);
    if (!single) {
        size_t hw = (size_t)S * h * S * wd, off = 0, big = 0;
        uint8_t *rgb = malloc(hw * 3);
        for (int b = 0; b < B; b++) {
            sdxl_vae_to_rgb8(rgb, img + (size_t)b * 3 * hw, S * h, S * wd);
            for (size_t i = 0; i < hw * 3; i++) {
                float d = fabsf((float)rgb[i] - rgbw[(size_t)b * hw * 3 + i]);
                off += d != 0.0f;
                big += d > 1.0f;
            }
        }
        snprintf(name, sizeof name, "uint8 images equal diffusers' but for rounding ties: %zu of %zu differ by 1, %zu "
                 "by more", off, (size_t)B * hw * 3, big);
        CHECK(big == 0 && off * 100 <= (size_t)B * hw * 3, name);
        /* PNG round trip of image 0 */
        sdxl_vae_to_rgb8(rgb, img, S * h, S * wd);
        char path[] = "/tmp/sf_test_vae_XXXXXX.png";
        int fd = mkstemps(path, 4);
        close(fd);
        size_t rh, rw;
        uint8_t *back = NULL;
        int ok = imgrid_write_png_rgb(path, (size_t)S * h, (size_t)S * wd, rgb, err, sizeof err) == 0 &&
                 imgrid_read_png_rgb(path, &rh, &rw, &back, err, sizeof err) == 0 && rh == (size_t)S * h &&
                 rw == (size_t)S * wd && memcmp(back, rgb, hw * 3) == 0;
        test_report(ok, "RGB PNG written and read back bit for bit", err);
        uint8_t *g8 = NULL;
        CHECK(imgrid_read_png_gray(path, &rh, &rw, &g8, err, sizeof err) == -1 && strstr(err, "RGB"),
              "the gray reader refuses the RGB file");
        unlink(path);
        free(back);
        free(rgb);
    }
    free(lat), free(want), free(rgbw), free(img);
    sdxl_vae_free(v);
    safetensors_close(w);
    safetensors_close(io);
}

/* a copy of the diffusers weights with one tensor dropped / reshaped / poisoned; load must fail naming it */
static void check_bad(const sdxl_vae_config *cfg)
{
    char err[512];
    safetensors *st = safetensors_open(FIX "diffusion_pytorch_model.safetensors", err, sizeof err);
    if (!st) return;
    const char *victim = "decoder.up_blocks.1.resnets.0.conv2.weight";
    char path[] = "/tmp/sf_test_vae_bad_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    for (int mode = 0; mode < 3; mode++) {
        safetensors_writer *w = safetensors_writer_alloc();
        float *poison = NULL;
        for (size_t i = 0; i < safetensors_count(st); i++) {
            const safetensors_tensor *t = safetensors_at(st, i);
            if (!strcmp(t->name, victim)) {
                if (mode == 0) continue;
                if (mode == 1) {
                    int64_t s[2] = {t->shape[0], (int64_t)(t->numel / (size_t)t->shape[0])};
                    safetensors_writer_add(w, t->name, t->dtype, 2, s, t->data);
                    continue;
                }
                poison = malloc(t->nbytes);
                memcpy(poison, t->data, t->nbytes);
                poison[7] = NAN;
                safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, poison);
                continue;
            }
            safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        safetensors_writer_write(w, path, err, sizeof err);
        safetensors_writer_free(w);
        free(poison);
        safetensors *b = safetensors_open(path, err, sizeof err);
        sdxl_vae *v = b ? sdxl_vae_load(cfg, b, 0, path, err, sizeof err) : NULL;
        static const char *const what[] = {"missing", "shape [", "non-finite"};
        char name[640];
        snprintf(name, sizeof name, "bad weights refused naming file and tensor (\"%s\")", err);
        CHECK(!v && strstr(err, path) && strstr(err, victim) && strstr(err, what[mode]) && !strchr(err, '\n'), name);
        sdxl_vae_free(v);
        safetensors_close(b);
    }
    unlink(path);
    safetensors_close(st);
}

static void check_names(const sdxl_vae_config *cfg)
{
    static const char *const pairs[][2] = {
        {"decoder.up_blocks.0.resnets.2.norm1.weight", "decoder.up.2.block.2.norm1.weight"},
        {"decoder.up_blocks.2.resnets.0.conv_shortcut.bias", "decoder.up.0.block.0.nin_shortcut.bias"},
        {"decoder.up_blocks.1.upsamplers.0.conv.weight", "decoder.up.1.upsample.conv.weight"},
        {"decoder.up_blocks.0.upsamplers.0.conv.bias", "decoder.up.2.upsample.conv.bias"},
        {"decoder.mid_block.attentions.0.to_out.0.weight", "decoder.mid.attn_1.proj_out.weight"},
        {"decoder.mid_block.attentions.0.group_norm.bias", "decoder.mid.attn_1.norm.bias"},
        {"encoder.mid_block.resnets.1.conv2.weight", "encoder.mid.block_2.conv2.weight"},
        {"encoder.down_blocks.1.downsamplers.0.conv.weight", "encoder.down.1.downsample.conv.weight"},
        {"decoder.conv_norm_out.weight", "decoder.norm_out.weight"},
        {"post_quant_conv.bias", "post_quant_conv.bias"},
    };
    int ok = 1;
    char out[256];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (sdxl_vae_name_ldm(pairs[i][0], 3, out, sizeof out) || strcmp(out, pairs[i][1])) {
            printf("  %s -> %s (want %s)\n", pairs[i][0], out, pairs[i][1]);
            ok = 0;
        }
    }
    CHECK(ok, "diffusers -> ldm names as convert_ldm_vae_checkpoint maps them (up blocks reversed)");
    CHECK(sdxl_vae_name_ldm("decoder.foo.weight", 3, out, sizeof out) == -1 &&
              sdxl_vae_name_ldm("unet.conv_in.weight", 3, out, sizeof out) == -1,
          "names outside the VAE have no ldm name");
    char err[256];
    safetensors *st = safetensors_open(FIX "diffusion_pytorch_model.safetensors", err, sizeof err);
    if (!st) return;
    enum_ctx c = {st, 0, 0, 0};
    sdxl_vae_enumerate(cfg, on_tensor, &c);
    char name[160];
    snprintf(name, sizeof name, "enumeration = diffusers' AutoencoderKL state_dict: %d of %zu, %d missing, %d shapes",
             c.n, safetensors_count(st), c.missing, c.badshape);
    CHECK(c.n == (int)safetensors_count(st) && !c.missing && !c.badshape, name);
    safetensors_close(st);
}

static void check_config(void)
{
    sdxl_vae_config c, s;
    char err[512];
    int rc = sdxl_vae_config_read(&c, FIX "config.json", err, sizeof err);
    test_report(rc == 0, "tiny vae/config.json reads", err);
    CHECK(rc == 0 && c.nblocks == 3 && c.block_out[0] == 8 && c.block_out[2] == 16 && c.layers_per_block == 2 &&
              c.norm_num_groups == 4 && c.latent_channels == 4 && fabsf(c.scaling_factor - 0.13025f) < 1e-7f,
          "its values");
    sdxl_vae_config_sdxl(&s);
    CHECK(sdxl_vae_scale(&s) == 8 && s.block_out[3] == 512 && s.scaling_factor == 0.13025f, "SDXL's defaults");
    char dir[] = "/tmp/sf_test_vaecfg_XXXXXX", path[128];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/config.json", dir);
    static const struct { const char *json, *key; } bad[] = {
        {"{\"block_out_channels\": [8, 12], \"norm_num_groups\": 8}", "block_out_channels"},
        {"{\"norm_num_groups\": 4, \"block_out_channels\": [8], \"act_fn\": \"gelu\"}", "act_fn"},
        {"{\"norm_num_groups\": 4, \"block_out_channels\": [8], \"up_block_types\": [\"AttnUpDecoderBlock2D\"]}", "up_block_types"},
        {"{\"norm_num_groups\": 4, \"block_out_channels\": [8, 16], \"up_block_types\": [\"UpDecoderBlock2D\"]}", "up_block_types"},
        {"{\"norm_num_groups\": 8}", "block_out_channels"},
        {"{\"norm_num_groups\": 4, \"block_out_channels\": [8], \"scaling_factor\": -1}", "scaling_factor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i].json, f);
        fclose(f);
        err[0] = 0;
        rc = sdxl_vae_config_read(&c, path, err, sizeof err);
        char name[640];
        snprintf(name, sizeof name, "bad config refused (\"%s\")", err);
        CHECK(rc == -1 && strstr(err, path) && strstr(err, bad[i].key), name);
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    sdxl_vae_config cfg;
    char err[512];
    if (sdxl_vae_config_read(&cfg, FIX "config.json", err, sizeof err)) {
        test_report(0, "config", err);
        return test_finish();
    }
    check_config();
    check_names(&cfg);
    check_decode(&cfg, FIX "diffusion_pytorch_model.safetensors", 0, "image", "diffusers layout, fp32");
    check_decode(&cfg, FIX "single_file_fp16.safetensors", 1, "image_fp16_weights", "single file, fp16");
    check_bad(&cfg);
    return test_finish();
}
