/* clip_image: CLIP's image preprocessing, as open_clip v2.23.0 (image_transform, eval) and OpenAI's clip package
 * do it on a PIL image, for the CLIP metric of the SDXL experiment (paper §5.2, App. H; issue 10 item 2):
 *   1. torchvision Resize(S, BICUBIC) on the PIL image: the shorter side becomes S, the longer
 *      int(S * long / short) (Python's true division, truncated); no resize when the size already matches;
 *      the resampling is PIL's Image.resize(..., BICUBIC) (torchvision hands PIL images to PIL);
 *   2. torchvision CenterCrop(S): top = round((H - S) / 2), left = round((W - S) / 2), Python's round (half to
 *      even);
 *   3. convert('RGB') (gray replicated), ToTensor (/255), Normalize with CLIP's mean and std (OpenAI's values).
 * Step 1 is PIL's bicubic exactly (Pillow 9.4 libImaging/Resample.c, which is the algorithm of every Pillow since
 * 4.3; checked bit for bit against Pillow 9.4 here): the cubic convolution kernel with a = -0.5, support 2 scaled
 * by the reduction factor when downsampling (so it antialiases, unlike torch's tensor bicubic, which uses
 * a = -0.75 and no antialias by default), weights normalised to sum 1 and rounded to 22-bit fixed point, the
 * horizontal pass first with its result rounded and clipped to 8 bits, then the vertical pass.
 *
 * What PIL would do differently for other inputs, and what we do: RGBA / gray+alpha images are resized by PIL with
 * premultiplied alpha; when every pixel is opaque that equals resizing the colour channels alone, so opaque
 * images are accepted and anything with alpha < 255 is refused. Palette and 1-bit images are resized by PIL with
 * NEAREST, not bicubic (open_clip converts to RGB only after resizing): refused, with a message. 16-bit gray opens
 * in PIL as a 32-bit integer image: refused. 16-bit RGB(A) keeps the high byte, as PIL does. */
#ifndef SF_CLIP_IMAGE_H
#define SF_CLIP_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/* OpenAI's CLIP normalisation (open_clip OPENAI_DATASET_MEAN / _STD) */
extern const float clip_image_mean[3], clip_image_std[3];

/* PIL's bicubic resample of an 8-bit image in[h][w][ch] (ch 1..4, each channel alone) to out[oh][ow][ch]. */
void clip_image_resize_bicubic(const uint8_t *in, int w, int h, int ch, uint8_t *out, int ow, int oh);
/* torchvision's shortest-side size: the output size of Resize(size) for a w x h image. */
void clip_image_resize_size(int w, int h, int size, int *ow, int *oh);
/* torchvision's CenterCrop offsets of an S x S crop from w x h (w, h >= S). */
void clip_image_crop_offsets(int w, int h, int size, int *left, int *top);

/* Steps 1-2 on in[h][w][ch] (ch 1 or 3): out[size][size][ch], 8-bit. */
void clip_image_resize_crop(const uint8_t *in, int w, int h, int ch, int size, uint8_t *out);
/* Step 3 on rc[size][size][ch] (ch 1 or 3): px[3][size][size] normalised. */
void clip_image_normalise(const uint8_t *rc, int size, int ch, float *px);

/* A PNG file through steps 1-3: px[3][size][size]. 0, or -1 with one line naming the file (unreadable, corrupt,
 * refused colour type, transparent pixels). */
int clip_image_load_png(const char *path, int size, float *px, char *err, size_t errlen);

#endif
