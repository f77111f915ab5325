/* sdxl_unet_fixture: the inputs and diffusers outputs of the tiny SDXL UNet fixture (tests/fixtures/sdxl/unet/io,
 * written by tests/reference/sdxl_unet_ref.py), read by the CPU and the CUDA UNet tests alike. */
#ifndef SF_TESTS_SDXL_UNET_FIXTURE_H
#define SF_TESTS_SDXL_UNET_FIXTURE_H
#include "safetensors.h"

typedef struct {
    const float *sample, *t, *ctx, *text, *ids, *out32, *out16;   /* views into the open file */
    int B, C, H, W, L, D, P;   /* batch, latent channels and size, context tokens and width, pooled width */
} io_data;

/* 0, or -1 when a tensor is missing or not F32 */
static inline int load_io(safetensors *st, io_data *io)
{
    const char *names[] = {"sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids", "out_fp32",
                           "out_fp16w"};
    const float **dst[] = {&io->sample, &io->t, &io->ctx, &io->text, &io->ids, &io->out32, &io->out16};
    for (int i = 0; i < 7; i++) {
        const safetensors_tensor *t = safetensors_find(st, names[i]);
        if (!t || t->dtype != SAFETENSORS_F32) return -1;
        *dst[i] = t->data;
    }
    const safetensors_tensor *s = safetensors_find(st, "sample"), *c = safetensors_find(st, "encoder_hidden_states"),
                             *te = safetensors_find(st, "text_embeds");
    io->B = (int)s->shape[0];
    io->C = (int)s->shape[1];
    io->H = (int)s->shape[2];
    io->W = (int)s->shape[3];
    io->L = (int)c->shape[1];
    io->D = (int)c->shape[2];
    io->P = (int)te->shape[1];
    return 0;
}

#endif
