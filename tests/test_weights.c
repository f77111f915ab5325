/* test_weights: the named weight store (common/nn/weights) on files written here: one file, a sharded diffusers
 * file (<base>.safetensors.index.json + shards), the fp16 variant name, dtypes kept as stored (views into the
 * mapping), prefix lookup, renaming maps, in-memory tensors, and every error path: missing tensor, wrong shape,
 * a tensor in two shards, an index naming the wrong shard or a tensor no shard has, a missing shard, a missing
 * folder, a rename map rejecting a name. Each error is one line naming the file and the tensor. */
#include "safetensors.h"
#include "tensor.h"
#include "test.h"
#include "weights.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/test_weights_XXXXXX";

static void path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_text(const char *name, const char *text)
{
    char p[256];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, -2, -3};
static uint16_t h[4] = {0x3c00, 0x4000, 0xc000, 0x0000};   /* f16 1, 2, -2, 0 */
static uint16_t bf[2] = {0x3f80, 0x4040};                  /* bf16 1, 3 */
static int64_t ids[1] = {7};   /* the writer references tensor data until it writes: no compound literal */

static void write_st(const char *name, int which)
{
    char p[256], err[256];
    path(p, sizeof p, name);
    safetensors_writer *w = safetensors_writer_alloc();
    if (which & 1) safetensors_writer_add(w, "layer.weight", SAFETENSORS_F32, 2, (int64_t[]){2, 3}, a);
    if (which & 2) safetensors_writer_add(w, "layer.bias", SAFETENSORS_F32, 1, (int64_t[]){3}, b);
    if (which & 4) safetensors_writer_add(w, "half.weight", SAFETENSORS_F16, 2, (int64_t[]){2, 2}, h);
    if (which & 8) safetensors_writer_add(w, "bf.weight", SAFETENSORS_BF16, 1, (int64_t[]){2}, bf);
    if (which & 16) safetensors_writer_add(w, "ids", SAFETENSORS_I64, 1, (int64_t[]){1}, ids);
    if (safetensors_writer_write(w, p, err, sizeof err)) printf("# %s\n", err);
    safetensors_writer_free(w);
}

static void check_err(int failed, const char *err, const char *w1, const char *w2, const char *name)
{
    char d[600];
    snprintf(d, sizeof d, "got '%s', want '%s' and '%s'", err, w1, w2 ? w2 : "");
    int ok = failed && strstr(err, w1) && (!w2 || strstr(err, w2)) && !strchr(err, '\n');
    test_report(ok, name, d);
    if (ok) printf("# %s\n", err);
}

static int strip_prefix(const char *name, char *out, size_t n, void *ctx)
{
    const char *pre = ctx;
    if (!strcmp(name, "bad.weight")) {
        snprintf(out, n, "no name for it");
        return -1;
    }
    if (strncmp(name, pre, strlen(pre))) return 0;
    snprintf(out, n, "renamed.%s", name + strlen(pre));
    return 1;
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    char err[512], p[256];
    /* one file, all dtypes */
    write_st("diffusion_pytorch_model.fp16.safetensors", 1 | 2 | 4 | 8 | 16);
    nn_weights *w = nn_weights_alloc();
    CHECK(nn_weights_add_diffusers(w, dir, "diffusion_pytorch_model", "fp16", NULL, NULL, err, sizeof err) == 0,
          "fp16 variant file name found");
    CHECK(nn_weights_count(w) == 4 && nn_weights_skipped(w) == 1, "4 float tensors kept, the I64 one left out");
    const nn_tensor *t = nn_weights_get(w, "layer.", "weight", 2, (int64_t[]){2, 3}, err, sizeof err);
    CHECK(t && t->dtype == NN_F32 && ((float *)t->data)[5] == 6.0f, "prefix lookup + shape check, f32 view");
    t = nn_weights_find(w, NULL, "half.weight");
    float f[4];
    if (t) nn_tensor_to_f32(f, t);
    CHECK(t && t->dtype == NN_F16 && f[0] == 1 && f[2] == -2, "f16 kept as stored (a view), widens exactly");
    t = nn_weights_find(w, "", "bf.weight");
    CHECK(t && t->dtype == NN_BF16 && t->numel == 2, "bf16 kept as stored");
    t = nn_weights_get(w, NULL, "layer.weight", 2, (int64_t[]){3, 2}, err, sizeof err);
    check_err(t == NULL, err, "diffusion_pytorch_model.fp16.safetensors: tensor 'layer.weight': shape [2, 3], "
              "expected [3, 2]", NULL, "wrong shape -> one line with the file, tensor and both shapes");
    t = nn_weights_get(w, "unet.", "conv_in.weight", 1, (int64_t[]){1}, err, sizeof err);
    check_err(t == NULL, err, "tensor 'unet.conv_in.weight': missing", "fp16.safetensors",
              "missing tensor -> one line with the file and the prefixed name");
    nn_tensor extra = nn_tensor_view(b, NN_F32, DEVICE_CPU, 1, (int64_t[]){3});
    CHECK(nn_weights_add_tensor(w, "merged.bias", &extra, "lora merge", err, sizeof err) == 0 &&
              nn_weights_find(w, NULL, "merged.bias") && nn_weights_find(w, NULL, "layer.bias"),
          "in-memory tensor added beside the file's");
    check_err(nn_weights_add_tensor(w, "layer.bias", &extra, "lora merge", err, sizeof err) != 0, err, "layer.bias",
              "present twice", "in-memory tensor with a name already present -> error");
    CHECK(!strcmp(nn_weights_file_of(w, NULL, "merged.bias"), "lora merge"), "messages name an in-memory source");
    nn_weights_free(w);

    /* sharded: two shards + index */
    write_st("model-00001-of-00002.safetensors", 1 | 4);
    write_st("model-00002-of-00002.safetensors", 2 | 8);
    write_text("diffusion_pytorch_model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 52}, \"weight_map\": {\"layer.weight\": "
               "\"model-00001-of-00002.safetensors\", \"half.weight\": \"model-00001-of-00002.safetensors\", "
               "\"layer.bias\": \"model-00002-of-00002.safetensors\", \"bf.weight\": "
               "\"model-00002-of-00002.safetensors\"}}");
    w = nn_weights_alloc();
    int rc = nn_weights_add_diffusers(w, dir, "diffusion_pytorch_model", NULL, NULL, NULL, err, sizeof err);
    test_report(rc == 0 && nn_weights_count(w) == 4, "sharded file through its index.json", err);
    path(p, sizeof p, "model-00002-of-00002.safetensors");
    CHECK(!strcmp(nn_weights_file_of(w, NULL, "layer.bias"), p), "each tensor remembers its shard");
    nn_weights_free(w);
    /* index naming the wrong shard, a tensor nobody has, a missing shard */
    write_text("wrong.safetensors.index.json",
               "{\"weight_map\": {\"layer.weight\": \"model-00002-of-00002.safetensors\", \"layer.bias\": "
               "\"model-00002-of-00002.safetensors\"}}");
    path(p, sizeof p, "wrong.safetensors.index.json");
    w = nn_weights_alloc();
    check_err(nn_weights_add_index(w, p, NULL, NULL, err, sizeof err) != 0, err, "wrong.safetensors.index.json",
              "tensor 'layer.weight': listed in the index but not found in shard model-00002",
              "index names the wrong shard -> error naming the index and the tensor");
    nn_weights_free(w);
    write_text("ghost.safetensors.index.json",
               "{\"weight_map\": {\"ghost.weight\": \"model-00001-of-00002.safetensors\"}}");
    path(p, sizeof p, "ghost.safetensors.index.json");
    w = nn_weights_alloc();
    check_err(nn_weights_add_index(w, p, NULL, NULL, err, sizeof err) != 0, err, "tensor 'ghost.weight'", "not found",
              "index names a tensor no shard has -> error");
    nn_weights_free(w);
    write_text("lost.safetensors.index.json", "{\"weight_map\": {\"x\": \"model-00003-of-00003.safetensors\"}}");
    path(p, sizeof p, "lost.safetensors.index.json");
    w = nn_weights_alloc();
    check_err(nn_weights_add_index(w, p, NULL, NULL, err, sizeof err) != 0, err, "model-00003-of-00003.safetensors",
              NULL, "missing shard file -> error naming it");
    nn_weights_free(w);
    write_text("bad.safetensors.index.json", "{\"weight_map\": {\"x\": \"../elsewhere.safetensors\"}}");
    path(p, sizeof p, "bad.safetensors.index.json");
    w = nn_weights_alloc();
    check_err(nn_weights_add_index(w, p, NULL, NULL, err, sizeof err) != 0, err, "weight_map['x']", "shard file name",
              "index pointing outside its folder -> error");
    nn_weights_free(w);
    /* two files with the same tensor */
    w = nn_weights_alloc();
    path(p, sizeof p, "model-00001-of-00002.safetensors");
    nn_weights_add_file(w, p, NULL, NULL, err, sizeof err);
    path(p, sizeof p, "diffusion_pytorch_model.fp16.safetensors");
    check_err(nn_weights_add_file(w, p, NULL, NULL, err, sizeof err) != 0, err, "present twice", "model-00001-of-00002",
              "same tensor in two files -> error naming both");
    nn_weights_free(w);
    /* rename maps: keep one prefix, leave the rest out, reject a name */
    w = nn_weights_alloc();
    rc = nn_weights_add_file(w, p, strip_prefix, "layer.", err, sizeof err);
    CHECK(rc == 0 && nn_weights_count(w) == 2 && nn_weights_find(w, NULL, "renamed.weight") &&
              !nn_weights_find(w, NULL, "half.weight"),
          "rename map: kept tensors renamed, others left out");
    nn_weights_free(w);
    {
        char q[256], e2[256];
        path(q, sizeof q, "bad_names.safetensors");
        safetensors_writer *sw = safetensors_writer_alloc();
        safetensors_writer_add(sw, "bad.weight", SAFETENSORS_F32, 1, (int64_t[]){3}, b);
        safetensors_writer_write(sw, q, e2, sizeof e2);
        safetensors_writer_free(sw);
        w = nn_weights_alloc();
        check_err(nn_weights_add_file(w, q, strip_prefix, "layer.", err, sizeof err) != 0, err, q,
                  "tensor 'bad.weight': no name for it", "rename map rejecting a name -> error naming file and tensor");
        nn_weights_free(w);
        unlink(q);
    }
    w = nn_weights_alloc();
    check_err(nn_weights_add_diffusers(w, "/nonexistent/dir", "diffusion_pytorch_model", NULL, NULL, NULL, err,
                                       sizeof err) != 0,
              err, "/nonexistent/dir", "no such folder", "missing folder -> error naming it");
    nn_weights_free(w);
    const char *files[] = {"diffusion_pytorch_model.fp16.safetensors", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                           "wrong.safetensors.index.json", "ghost.safetensors.index.json",
                           "lost.safetensors.index.json", "bad.safetensors.index.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path(p, sizeof p, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return test_finish();
}
