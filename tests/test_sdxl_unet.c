/* test_sdxl_unet: the SDXL UNet (common/models/sdxl/unet) against diffusers v0.25.1 on a tiny random model with
 * the SDXL structure (fixtures written by tests/reference/sdxl_unet_ref.py): the diffusers layout in fp32 and in
 * the fp16 variant, the single-file checkpoint through the original -> diffusers name map; the map itself on the
 * real SDXL config; the real SDXL config's numbers; and bad input (missing tensor, wrong shape, missing or
 * unsupported config key, missing folder, non-finite input), each a one-line error naming the file and the
 * tensor or key.
 *
 * Tolerances (error measured as max |ours - ref| / max |ref| over the whole output):
 *   fp32 weights vs diffusers fp32: 1e-5 (measured 1.3e-6; both sides round differently in every GEMM, conv and norm;
 *   the tiny model's output has max |ref| ~2);
 *   fp16 weights (diffusers variant and single file) vs diffusers run on the SAME fp16-rounded weights in fp32:
 *   1e-5 as well (measured 1.3e-6), since our widening is exact;
 *   and, for the record, fp16 weights vs fp32 weights: the rounding of the weights themselves, ~2e-3. */
#include "sdxl_unet_fixture.h"
#include "test.h"
#include "json.h"
#include "safetensors.h"
#include "sdxl_ops.h"
#include "unet.h"
#include "unet_names.h"
#include "weights.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/sdxl/unet"

static double run_unet(sdxl_unet *u, const io_data *io, float *out)
{
    size_t wsn = sdxl_unet_ws_floats(u, io->B, io->H, io->W, io->L);
    float *ws = malloc(wsn * sizeof(float));
    char err[512];
    int rc = sdxl_unet_forward(u, out, io->sample, io->t, io->ctx, io->L, io->text, io->ids, io->B, io->H, io->W, ws,
                               wsn, err, sizeof err);
    free(ws);
    if (rc) {
        printf("# forward failed: %s\n", err);
        return INFINITY;
    }
    return 0;
}

static int contains(const char *s, const char *a) { return strstr(s, a) != NULL; }

static void check_err(int failed, const char *err, const char *want1, const char *want2, const char *name)
{
    char d[700];
    snprintf(d, sizeof d, "error '%s' (want '%s' and '%s')", err, want1, want2 ? want2 : "");
    int ok = failed && contains(err, want1) && (!want2 || contains(err, want2)) && !strchr(err, '\n');
    test_report(ok, name, d);
    if (ok) printf("# %s: %s\n", name, err);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    s[n] = 0;
    fclose(f);
    return s;
}

/* the fixture config with one key's line replaced (or removed when repl is NULL) */
static void write_config_variant(const char *dst, const char *key_line_start, const char *repl)
{
    char *s = read_text(FIX "/unet/config.json");
    char *p = strstr(s, key_line_start);
    if (!p) {
        printf("# fixture config lacks %s\n", key_line_start);
        exit(1);
    }
    char *eol = strchr(p, '\n');
    /* a multi-line value (a list) ends at the line holding the closing bracket */
    if (strchr(p, '[') && strchr(p, '[') < eol) eol = strchr(strchr(p, ']'), '\n');
    size_t pre = (size_t)(p - s);
    FILE *f = fopen(dst, "w");
    fwrite(s, 1, pre, f);
    if (repl) fputs(repl, f);
    fputs(eol, f);
    fclose(f);
    free(s);
}

static void test_fixture_model(void)
{
    char err[1024];
    safetensors *st = safetensors_open(FIX "/io.safetensors", err, sizeof err);
    io_data io;
    if (!st || load_io(st, &io)) {
        test_report(0, "unet fixtures", st ? "io.safetensors lacks a tensor" : err);
        return;
    }
    const size_t n = (size_t)io.B * io.C * io.H * io.W;
    float *out = malloc(n * sizeof(float));

    /* diffusers layout, fp32 */
    sdxl_unet *u = sdxl_unet_load_diffusers(FIX "/unet", NULL, err, sizeof err);
    test_report(u != NULL, "load diffusers unet/ (fp32 file)", err);
    if (u) {
        const sdxl_unet_config *c = sdxl_unet_cfg(u);
        CHECK(c->nblocks == 3 && c->heads[0] == 1 && c->heads[2] == 4 && c->transformer_layers[2] == 2 &&
                  c->up_transformer_layers[0] == 2 && c->up_transformer_layers[2] == 1 && c->time_embed_dim == 32 &&
                  c->has_add_embed && c->use_linear_projection && c->flip_sin_to_cos && c->freq_shift == 0,
              "tiny config read (heads, depths reversed for the up path, text_time)");
        CHECK(sdxl_unet_param_count(u) == 197412, "every parameter bound (197,412, as diffusers counts)");
        double e = run_unet(u, &io, out);
        if (e == 0) e = test_rel_err(out, io.out32, n);
        printf("# fp32 weights vs diffusers fp32: max|diff|/max|ref| = %.3g\n", e);
        CHECK_CLOSE(e, 0, 1e-5, 0, "UNet fp32 diffusers layout == diffusers (rel 1e-5)");
        /* deterministic: a second call gives the same bits */
        float *out2 = malloc(n * sizeof(float));
        run_unet(u, &io, out2);
        CHECK(!memcmp(out, out2, n * sizeof(float)), "second call bit-identical");
        free(out2);
        sdxl_unet_free(u);
    }

    /* diffusers layout, fp16 variant */
    u = sdxl_unet_load_diffusers(FIX "/unet", "fp16", err, sizeof err);
    test_report(u != NULL, "load diffusers unet/ (fp16 variant file)", err);
    if (u) {
        double e = run_unet(u, &io, out);
        if (e == 0) e = test_rel_err(out, io.out16, n);
        printf("# fp16 weights vs diffusers on the same fp16 weights: %.3g\n", e);
        CHECK_CLOSE(e, 0, 1e-5, 0, "UNet fp16 variant == diffusers on the fp16 weights (rel 1e-5)");
        double e16 = test_rel_err(out, io.out32, n);
        printf("# fp16 weights vs fp32 weights (the weight rounding itself): %.3g\n", e16);
        CHECK(e16 > 1e-5 && e16 < 1e-2, "fp16 weights move the output by the rounding only (1e-5 < rel < 1e-2)");
        sdxl_unet_free(u);
    }

    /* bf16 weights (the fp32 fixture rounded to bf16 in memory): the bf16 GEMM path, activations rounded to bf16
     * at every GEMM input; checked against diffusers fp32 with the tolerance bf16 rounding allows */
    {
        nn_weights *w32 = nn_weights_alloc(), *w16 = nn_weights_alloc();
        sdxl_unet_config cfg;
        int ok = sdxl_unet_config_load(&cfg, FIX "/unet/config.json", err, sizeof err) == 0 &&
                 nn_weights_add_diffusers(w32, FIX "/unet", "diffusion_pytorch_model", NULL, NULL, NULL, err,
                                          sizeof err) == 0;
        size_t nt = ok ? nn_weights_count(w32) : 0, total = 0;
        for (size_t i = 0; i < nt; i++) total += nn_weights_tensor_at(w32, i)->numel;
        uint16_t *bf = malloc((total + 1) * sizeof(uint16_t)), *p = bf;
        for (size_t i = 0; i < nt && ok; i++) {
            const nn_tensor *t = nn_weights_tensor_at(w32, i);
            for (size_t j = 0; j < t->numel; j++) p[j] = nn_f32_to_bf16(((const float *)t->data)[j]);
            nn_tensor v = nn_tensor_view(p, NN_BF16, DEVICE_CPU, t->ndim, t->shape);
            ok = nn_weights_add_tensor(w16, nn_weights_name_at(w32, i), &v, "bf16 copy", err, sizeof err) == 0;
            p += t->numel;
        }
        u = ok ? sdxl_unet_create(&cfg, w16, NULL, err, sizeof err) : NULL;
        test_report(u != NULL, "bf16 weights (in memory) bind", err);
        if (u) {
            double e = run_unet(u, &io, out);
            if (e == 0) e = test_rel_err(out, io.out32, n);
            printf("# bf16 weights + bf16 GEMM inputs vs diffusers fp32: %.3g\n", e);
            CHECK_CLOSE(e, 0, 3e-2, 0, "UNet bf16 path == diffusers fp32 to bf16 rounding (rel 3e-2)");
            sdxl_unet_free(u);
        }
        free(bf);
        nn_weights_free(w16);
        nn_weights_free(w32);
    }

    /* single file, original names */
    u = sdxl_unet_load_single_file(FIX "/sd_xl_single_file.safetensors", FIX "/unet/config.json", err, sizeof err);
    test_report(u != NULL, "load single-file checkpoint through the name map", err);
    if (u) {
        double e = run_unet(u, &io, out);
        if (e == 0) e = test_rel_err(out, io.out16, n);
        printf("# single file (fp16) vs diffusers on the same weights: %.3g\n", e);
        CHECK_CLOSE(e, 0, 1e-5, 0, "UNet single file == diffusers (rel 1e-5)");
        sdxl_unet_free(u);
    }

    /* bad input: a non-finite sample, a latent side the model cannot halve, a short workspace */
    u = sdxl_unet_load_diffusers(FIX "/unet", NULL, err, sizeof err);
    if (u) {
        float *bad = malloc(n * sizeof(float));
        memcpy(bad, io.sample, n * sizeof(float));
        bad[5] = NAN;
        size_t wsn = sdxl_unet_ws_floats(u, io.B, io.H, io.W, io.L);
        float *ws = malloc(wsn * sizeof(float));
        int rc = sdxl_unet_forward(u, out, bad, io.t, io.ctx, io.L, io.text, io.ids, io.B, io.H, io.W, ws, wsn, err,
                                   sizeof err);
        check_err(rc != 0, err, "sample[5]", "not finite", "NaN in the sample -> error naming it");
        rc = sdxl_unet_forward(u, out, io.sample, io.t, io.ctx, io.L, io.text, io.ids, io.B, 6, 6, ws, wsn, err,
                               sizeof err);
        check_err(rc != 0, err, "6x6", "multiples of 4", "latent 6x6 -> error");
        rc = sdxl_unet_forward(u, out, io.sample, io.t, io.ctx, io.L, io.text, io.ids, io.B, io.H, io.W, ws, wsn / 2,
                               err, sizeof err);
        check_err(rc != 0, err, "workspace", NULL, "short workspace -> error");
        free(ws);
        free(bad);
        sdxl_unet_free(u);
    }
    free(out);
    safetensors_close(st);
}

static void test_bad_weights(void)
{
    char err[1024], dir[] = "/tmp/test_sdxl_unet_XXXXXX";
    if (!mkdtemp(dir)) {
        test_report(0, "mkdtemp", "failed");
        return;
    }
    char p[512], q[512];
    /* a copy of the fp32 weights without one tensor */
    safetensors *src = safetensors_open(FIX "/unet/diffusion_pytorch_model.safetensors", err, sizeof err);
    if (!src) {
        test_report(0, "open fp32 fixture", err);
        return;
    }
    const char *drop = "up_blocks.0.attentions.1.transformer_blocks.1.attn2.to_k.weight";
    safetensors_writer *w = safetensors_writer_alloc();
    for (size_t i = 0; i < safetensors_count(src); i++) {
        const safetensors_tensor *t = safetensors_at(src, i);
        if (strcmp(t->name, drop)) safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    CHECK(safetensors_writer_write(w, p, err, sizeof err) == 0, "write the copy without one tensor");
    safetensors_writer_free(w);
    snprintf(q, sizeof q, "%s/config.json", dir);
    char *cfg = read_text(FIX "/unet/config.json");
    write_text(q, cfg);
    free(cfg);
    sdxl_unet *u = sdxl_unet_load_diffusers(dir, NULL, err, sizeof err);
    check_err(u == NULL, err, p, drop, "missing tensor -> error naming the file and the tensor");
    sdxl_unet_free(u);

    /* wrong shape: the config says cross_attention_dim 24, the file has 16 */
    write_config_variant(q, "\"cross_attention_dim\"", "\"cross_attention_dim\": 24,");
    sdxl_unet_config c;
    CHECK(sdxl_unet_config_load(&c, q, err, sizeof err) == 0, "variant config loads");
    nn_weights *ws = nn_weights_alloc();
    nn_weights_add_diffusers(ws, FIX "/unet", "diffusion_pytorch_model", NULL, NULL, NULL, err, sizeof err);
    u = sdxl_unet_create(&c, ws, NULL, err, sizeof err);
    check_err(u == NULL, err, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
              "shape [16, 16], expected [16, 24]", "wrong shape -> error naming the file, tensor and both shapes");
    check_err(u == NULL, err, "diffusion_pytorch_model.safetensors", NULL, "wrong shape error names the file");
    sdxl_unet_free(u);
    nn_weights_free(ws);

    /* config: a missing required key, an unsupported option */
    write_config_variant(q, "\"block_out_channels\"", NULL);
    check_err(sdxl_unet_config_load(&c, q, err, sizeof err) != 0, err, q, "block_out_channels",
              "missing config key -> error naming the file and key");
    write_config_variant(q, "\"norm_num_groups\"", NULL);
    check_err(sdxl_unet_config_load(&c, q, err, sizeof err) != 0, err, q, "norm_num_groups",
              "missing norm_num_groups -> error naming the file and key");
    write_config_variant(q, "\"resnet_time_scale_shift\"", "\"resnet_time_scale_shift\": \"scale_shift\",");
    check_err(sdxl_unet_config_load(&c, q, err, sizeof err) != 0, err, q, "resnet_time_scale_shift",
              "unsupported option -> error naming the key");
    write_config_variant(q, "\"attention_head_dim\"", "\"attention_head_dim\": [1, 2],");
    check_err(sdxl_unet_config_load(&c, q, err, sizeof err) != 0, err, "attention_head_dim", "3 blocks",
              "per-block list of the wrong length -> error naming the key");
    u = sdxl_unet_load_diffusers("/nonexistent/unet", NULL, err, sizeof err);
    check_err(u == NULL, err, "/nonexistent/unet/config.json", NULL, "missing folder -> error naming config.json");
    u = sdxl_unet_load_diffusers(FIX "/unet", "bf16", err, sizeof err);
    check_err(u == NULL, err, "diffusion_pytorch_model.bf16.safetensors", "neither",
              "absent variant -> error naming the file looked for");
    unlink(p);
    unlink(q);
    rmdir(dir);
    safetensors_close(src);
}

/* The name map on the REAL SDXL config (tests/fixtures/sdxl/sdxl_base_unet_config.json) at the places where the
 * numbering is easy to get wrong; the complete map is checked against diffusers' converter by the fixture. */
static void test_name_map_sdxl(void)
{
    sdxl_unet_config c;
    char err[512], out[512];
    int ok = sdxl_unet_config_load(&c, "tests/fixtures/sdxl/sdxl_base_unet_config.json", err, sizeof err) == 0;
    test_report(ok, "SDXL base config loads", err);
    if (!ok) return;
    CHECK(c.nblocks == 3 && c.block_out_channels[2] == 1280 && c.heads[0] == 5 && c.heads[1] == 10 &&
              c.heads[2] == 20 && c.transformer_layers[2] == 10 && c.up_transformer_layers[0] == 10 &&
              c.cross_attention_dim[1] == 2048 && c.addition_time_embed_dim == 256 &&
              c.projection_class_embeddings_input_dim == 2816 && c.time_embed_dim == 1280 && c.norm_num_groups == 32 &&
              c.flip_sin_to_cos == 1 && c.freq_shift == 0 && c.use_linear_projection && !c.down_attn[0] &&
              c.down_attn[2] && c.up_attn[0] && !c.up_attn[2],
          "SDXL base config numbers (heads 5/10/20 of 64, depths 1/2/10, 2048 context, text_time 256 -> 2816)");
    static const char *const cases[][2] = {
        {"time_embed.0.weight", "time_embedding.linear_1.weight"},
        {"time_embed.2.bias", "time_embedding.linear_2.bias"},
        {"label_emb.0.0.weight", "add_embedding.linear_1.weight"},
        {"label_emb.0.2.bias", "add_embedding.linear_2.bias"},
        {"input_blocks.0.0.weight", "conv_in.weight"},
        {"input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"},
        {"input_blocks.2.0.emb_layers.1.bias", "down_blocks.0.resnets.1.time_emb_proj.bias"},
        {"input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
        {"input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"},
        {"input_blocks.4.1.proj_in.weight", "down_blocks.1.attentions.0.proj_in.weight"},
        {"input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight",
         "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight"},
        {"input_blocks.6.0.op.bias", "down_blocks.1.downsamplers.0.conv.bias"},
        {"input_blocks.8.1.transformer_blocks.9.ff.net.0.proj.weight",
         "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.0.proj.weight"},
        {"middle_block.0.out_layers.3.weight", "mid_block.resnets.0.conv2.weight"},
        {"middle_block.1.norm.bias", "mid_block.attentions.0.norm.bias"},
        {"middle_block.2.in_layers.2.bias", "mid_block.resnets.1.conv1.bias"},
        {"output_blocks.0.0.skip_connection.weight", "up_blocks.0.resnets.0.conv_shortcut.weight"},
        {"output_blocks.2.1.proj_out.weight", "up_blocks.0.attentions.2.proj_out.weight"},
        {"output_blocks.2.2.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
        {"output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"},
        {"output_blocks.6.0.out_layers.0.weight", "up_blocks.2.resnets.0.norm2.weight"},
        {"output_blocks.8.0.skip_connection.bias", "up_blocks.2.resnets.2.conv_shortcut.bias"},
        {"out.0.weight", "conv_norm_out.weight"},
        {"out.2.bias", "conv_out.bias"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (sdxl_unet_name_from_original(&c, cases[i][0], out, sizeof out) || strcmp(out, cases[i][1])) {
            printf("# map %s -> %s (want %s)\n", cases[i][0], out, cases[i][1]);
            bad++;
        }
    CHECK(bad == 0, "SDXL original -> diffusers names at every block boundary (24 cases)");
    static const char *const unknown[] = {"input_blocks.9.0.in_layers.0.weight", "output_blocks.9.0.in_layers.0.weight",
                                          "input_blocks.1.1.norm.weight", "output_blocks.8.1.conv.weight",
                                          "middle_block.3.in_layers.0.weight", "input_blocks.1.0.foo.weight",
                                          "output_blocks.8.2.conv.weight", "zzz.weight"};
    int caught = 0;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        caught += sdxl_unet_name_from_original(&c, unknown[i], out, sizeof out) != 0;
    CHECK(caught == (int)(sizeof unknown / sizeof unknown[0]),
          "names outside the SDXL structure are refused (no attention in block 0, no upsampler in the last)");
    CHECK(sdxl_unet_rename_original("first_stage_model.decoder.conv_in.weight", out, sizeof out, &c) == 0 &&
              sdxl_unet_rename_original("conditioner.embedders.1.model.ln_final.weight", out, sizeof out, &c) == 0 &&
              sdxl_unet_rename_original("model.diffusion_model.out.2.weight", out, sizeof out, &c) == 1 &&
              !strcmp(out, "conv_out.weight") &&
              sdxl_unet_rename_original("model.diffusion_model.bogus.weight", out, sizeof out, &c) == -1,
          "single-file rename: VAE / text tensors left out, UNet renamed, unknown UNet name rejected");
}

static void test_timestep_embedding(void)
{
    /* diffusers get_timestep_embedding(t=[0, 500], dim 8, flip_sin_to_cos True, shift 0): [cos, sin] of t f_i with
     * f_i = 10000^(-i/4): checked against the formula in double */
    float t[2] = {0.0f, 500.0f}, e[16];
    sdxl_ops_timestep_embedding(e, t, 2, 8, 1, 0.0f);
    double md = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++) {
            double a = t[b] * exp(-log(10000.0) * i / 4.0);
            md = fmax(md, fabs(e[b * 8 + i] - cos(a)));
            md = fmax(md, fabs(e[b * 8 + 4 + i] - sin(a)));
        }
    CHECK_CLOSE(md, 0, 1e-4, 0, "timestep embedding = [cos, sin](t 10000^(-i/half)) (flip_sin_to_cos)");
}

int main(void)
{
    test_timestep_embedding();
    test_name_map_sdxl();
    test_fixture_model();
    test_bad_weights();
    return test_finish();
}
