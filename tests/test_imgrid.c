/* test_imgrid: the PNG grid writer and gray reader (common/imgrid.h). A grid is written and read back and
 * checked pixel by pixel: tile placement, the value map (rounding, clipping, NaN, infinities), separators and
 * unused tiles, pad 0; failed writes (missing directory, target is a directory, bad arguments) leave nothing
 * behind; the reader refuses non-PNG, truncated, RGB and 16-bit files and reads interlaced gray ones. */
#include "imgrid.h"
#include "log.h"
#include "test.h"
#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/sf_test_imgrid_XXXXXX";

static int count_entries(const char *d)
{
    DIR *dp = opendir(d);
    if (!dp) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dp);
    return n;
}

static int one_line_naming(const char *err, const char *path)
{
    return strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':' && !strchr(err, '\n');
}

/* Write a PNG with libpng directly (any colour type / depth / interlace), to feed the reader. */
static void write_png_raw(const char *path, int w, int h, int depth, int ct, int interlace, const uint8_t *rows_data,
                          int bytes_per_row)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !info || setjmp(png_jmpbuf(png))) LOG_FATAL("cannot write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ct, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int r = 0; r < h; r++) rows[r] = (png_bytep)(rows_data + (size_t)r * bytes_per_row);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

/* 5 tiles of 2x3 in 3 columns with pad 1: 11 x 5 pixels, the 6th tile unused. */
static void test_layout(void)
{
    enum { NI = 5, GC = 3, TH = 2, TW = 3, PAD = 1 };
    float imgs[NI * TH * TW];
    /* pixel (k, r, c) holds byte value 40k + 3r + c + 1, encoded so that lo=0, hi=1 maps it back exactly */
    for (int k = 0; k < NI; k++)
        for (int r = 0; r < TH; r++)
            for (int c = 0; c < TW; c++) imgs[(k * TH + r) * TW + c] = (float)(40 * k + 3 * r + c + 1) / 255.0f;
    char p[256], err[512] = "";
    snprintf(p, sizeof p, "%s/grid.png", dir);
    int rc = imgrid_write_png(p, NI, GC, TH, TW, imgs, 0.0f, 1.0f, PAD, err, sizeof err);
    CHECK(rc == 0, "write a 5-tile grid");
    if (rc) printf("# %s\n", err);
    size_t h, w;
    uint8_t *px;
    rc = imgrid_read_png_gray(p, &h, &w, &px, err, sizeof err);
    CHECK(rc == 0 && h == 2 * TH + PAD && w == GC * TW + (GC - 1) * PAD,
          "size: width 3*3 + 2*1 = 11, height ceil(5/3)*2 + 1 = 5");
    if (rc) return;
    int tiles_ok = 1, sep_ok = 1, unused_ok = 1;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            uint8_t v = px[y * w + x];
            int on_sep = (x % (TW + PAD)) == TW || (y % (TH + PAD)) == TH;
            if (on_sep) {
                sep_ok &= v == IMGRID_GREY;
                continue;
            }
            size_t k = (y / (TH + PAD)) * GC + x / (TW + PAD), r = y % (TH + PAD), c = x % (TW + PAD);
            if (k >= NI) unused_ok &= v == IMGRID_GREY;
            else tiles_ok &= v == 40 * k + 3 * r + c + 1;
        }
    CHECK(tiles_ok, "every tile pixel lands at (row k/3, col k%3) with its exact byte value");
    CHECK(sep_ok, "1-pixel separators between tiles are mid-grey 128");
    CHECK(unused_ok, "the unused sixth tile is mid-grey");
    free(px);

    /* pad 0, fewer images than columns: still grid_cols tiles wide, tiles adjacent */
    rc = imgrid_write_png(p, 2, 4, TH, TW, imgs, 0.0f, 1.0f, 0, err, sizeof err);
    rc = rc || imgrid_read_png_gray(p, &h, &w, &px, err, sizeof err);
    CHECK(rc == 0 && h == TH && w == 4 * TW && px[TW - 1] == 3 && px[TW] == 41 && px[2 * TW] == IMGRID_GREY &&
              px[w + 2 * TW - 1] == 40 + 3 + 2 + 1,
          "pad 0 and n < grid_cols: 4 tiles wide, adjacent, rest grey (and the file was replaced)");
    if (!rc) free(px);
    CHECK(count_entries(dir) == 1, "successful writes leave only grid.png (no temp files)");
}

static void test_mapping(void)
{
    /* lo = -1, hi = 1: byte = round(127.5 (v + 1)) clipped */
    float v[] = {-1.0f, 1.0f, 0.0f, 0.5f, -2.0f, 3.0f, NAN, INFINITY, -INFINITY, -0.999f, 0.999f};
    uint8_t want[] = {0, 255, 128, 191, 0, 255, 0, 255, 0, 0, 255};
    size_t nv = sizeof v / sizeof v[0];
    char p[256], err[512] = "", nm[128];
    snprintf(p, sizeof p, "%s/map.png", dir);
    int rc = imgrid_write_png(p, 1, 1, 1, nv, v, -1.0f, 1.0f, 3, err, sizeof err);
    size_t h, w;
    uint8_t *px = NULL;
    rc = rc || imgrid_read_png_gray(p, &h, &w, &px, err, sizeof err);
    CHECK(rc == 0 && h == 1 && w == nv, "single-tile grid has exactly the tile's size (pad only between tiles)");
    if (rc) return;
    const char *what[] = {"lo -> 0", "hi -> 255", "midpoint 127.5 rounds to 128", "0.5 -> round(191.25) = 191",
                          "below lo clips to 0", "above hi clips to 255", "NaN -> 0", "+inf -> 255", "-inf -> 0",
                          "-0.999 -> round(0.1275) = 0", "0.999 -> round(254.87) = 255"};
    for (size_t i = 0; i < nv; i++) {
        snprintf(nm, sizeof nm, "value map: %s (got %u)", what[i], px[i]);
        CHECK(px[i] == want[i], nm);
    }
    free(px);
    remove(p);
}

static void test_write_errors(void)
{
    float img[4] = {0, 1, 2, 3};
    char p[300], err[512];
    int before = count_entries(dir);

    snprintf(p, sizeof p, "%s/no-such-dir/x.png", dir);
    err[0] = 0;
    int rc = imgrid_write_png(p, 1, 1, 2, 2, img, 0, 3, 0, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, p) && strstr(err, "No such file or directory"),
          "write into a missing directory fails, message names the file");

    /* target is an existing directory: the temp file is made, the rename fails, the temp must go */
    snprintf(p, sizeof p, "%s/adir", dir);
    if (mkdir(p, 0755)) LOG_FATAL("mkdir %s", p);
    rc = imgrid_write_png(p, 1, 1, 2, 2, img, 0, 3, 0, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, p) && strstr(err, "cannot rename"),
          "write onto a directory fails at the rename");
    CHECK(count_entries(dir) == before + 1, "failed writes leave no file or temp file behind");
    rmdir(p);

    snprintf(p, sizeof p, "%s/bad.png", dir);
    rc = imgrid_write_png(p, 1, 1, 2, 2, img, 1, 1, 0, err, sizeof err);
    CHECK(rc == -1 && one_line_naming(err, p) && strstr(err, "bad value range [1, 1]"), "lo == hi refused");
    rc = imgrid_write_png(p, 1, 1, 2, 2, img, 0, NAN, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "bad value range"), "NaN hi refused");
    rc = imgrid_write_png(p, 0, 1, 2, 2, img, 0, 1, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "empty grid: n=0"), "n = 0 refused");
    rc = imgrid_write_png(p, 1, 0, 2, 2, img, 0, 1, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "grid_cols=0"), "grid_cols = 0 refused");
    rc = imgrid_write_png(p, 1, 1000, 2, 2000, img, 0, 1, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "exceeds 1000000 pixels a side"), "absurdly wide grid refused before allocating");
    CHECK(count_entries(dir) == before && access(p, F_OK) != 0, "refused writes create nothing");
}

static void expect_read_reject(const char *tag, const char *path, const char *needle)
{
    char err[512] = "", nm[700];
    size_t h = 9, w = 9;
    uint8_t *px = (uint8_t *)&h;
    int rc = imgrid_read_png_gray(path, &h, &w, &px, err, sizeof err);
    snprintf(nm, sizeof nm, "read rejects %s (\"%s\")", tag, err);
    test_report(rc == -1 && one_line_naming(err, path) && strstr(err, needle) && h == 0 && w == 0 && px == NULL, nm,
                needle);
}

static void test_read(void)
{
    char p[256], err[512] = "";
    uint8_t data[6 * 5 * 6];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37);

    snprintf(p, sizeof p, "%s/interlaced.png", dir);
    write_png_raw(p, 6, 5, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, data, 6);
    size_t h, w;
    uint8_t *px = NULL;
    int rc = imgrid_read_png_gray(p, &h, &w, &px, err, sizeof err);
    CHECK(rc == 0 && h == 5 && w == 6 && memcmp(px, data, 30) == 0, "reads an Adam7-interlaced 8-bit gray PNG");
    free(px);

    snprintf(p, sizeof p, "%s/rgb.png", dir);
    write_png_raw(p, 6, 5, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, data, 18);
    expect_read_reject("RGB", p, "not an 8-bit grayscale PNG (colour type RGB, bit depth 8)");
    snprintf(p, sizeof p, "%s/gray16.png", dir);
    write_png_raw(p, 6, 5, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, data, 12);
    expect_read_reject("16-bit gray", p, "colour type grayscale, bit depth 16");

    /* truncated: the first half of a valid grid */
    float img[64];
    for (int i = 0; i < 64; i++) img[i] = (float)((i * 7919) % 64);
    snprintf(p, sizeof p, "%s/full.png", dir);
    if (imgrid_write_png(p, 4, 2, 4, 4, img, 0, 63, 1, err, sizeof err)) LOG_FATAL("%s", err);
    FILE *f = fopen(p, "rb");
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/cut.png", dir);
    f = fopen(p, "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    expect_read_reject("truncated PNG", p, "libpng: ");
    /* a corrupted byte in IHDR: CRC error in a critical chunk */
    buf[20] ^= 0x40;
    snprintf(p, sizeof p, "%s/crc.png", dir);
    f = fopen(p, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    expect_read_reject("IHDR CRC error", p, "CRC");

    snprintf(p, sizeof p, "%s/text.png", dir);
    f = fopen(p, "wb");
    fputs("P5 not a png at all\n", f);
    fclose(f);
    expect_read_reject("non-PNG file", p, "not a PNG file (bad signature)");
    snprintf(p, sizeof p, "%s/tiny.png", dir);
    f = fopen(p, "wb");
    fputs("\x89PN", f);
    fclose(f);
    expect_read_reject("3-byte file", p, "shorter than the 8-byte signature");
    snprintf(p, sizeof p, "%s/missing.png", dir);
    expect_read_reject("missing file", p, "cannot open: No such file or directory");
}

/* imgrid_read_png_any: every colour type and depth to 8 bits as PIL reads them; and the RGB writer / reader. */
static void test_read_any(void)
{
    char p[256], err[512] = "";
    uint8_t src[8 * 6 * 8];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 37 + 11);
    imgrid_image im;
    /* RGB round trip through the RGB writer, then both readers */
    snprintf(p, sizeof p, "%s/rgb8.png", dir);
    int ok = imgrid_write_png_rgb(p, 6, 8, src, err, sizeof err) == 0;
    size_t h = 0, w = 0;
    uint8_t *px = NULL;
    ok = ok && imgrid_read_png_rgb(p, &h, &w, &px, err, sizeof err) == 0 && h == 6 && w == 8 &&
         memcmp(px, src, 6 * 8 * 3) == 0;
    free(px);
    ok = ok && imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 3 && im.bit_depth == 8 &&
         !im.palette && memcmp(im.pixels, src, 6 * 8 * 3) == 0;
    free(im.pixels);
    CHECK(ok, "RGB: imgrid_write_png_rgb, imgrid_read_png_rgb and imgrid_read_png_any agree");
    /* gray 8 bit, interlaced */
    snprintf(p, sizeof p, "%s/g8i.png", dir);
    write_png_raw(p, 8, 6, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, src, 8);
    ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 1 && im.h == 6 && im.w == 8 &&
         memcmp(im.pixels, src, 48) == 0;
    free(im.pixels);
    CHECK(ok, "any: 8-bit gray, interlaced");
    /* gray at 1, 2, 4 bits: v * 255 / (2^d - 1) */
    for (int d = 1; d <= 4; d *= 2) {
        uint8_t packed[6 * 8], want[6 * 8];
        memset(packed, 0, sizeof packed);
        const int per = 8 / d, rowbytes = (8 + per - 1) / per;
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++) {
                const int v = src[y * 8 + x] & ((1 << d) - 1);
                packed[y * rowbytes + x / per] |= (uint8_t)(v << (8 - d - (x % per) * d));
                want[y * 8 + x] = (uint8_t)(v * 255 / ((1 << d) - 1));
            }
        snprintf(p, sizeof p, "%s/g%d.png", dir, d);
        write_png_raw(p, 8, 6, d, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, packed, rowbytes);
        ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 1 && im.bit_depth == d &&
             memcmp(im.pixels, want, 48) == 0;
        free(im.pixels);
        char nm[96];
        snprintf(nm, sizeof nm, "any: %d-bit gray scaled to 8 bits (v * 255 / %d)", d, (1 << d) - 1);
        CHECK(ok, nm);
    }
    /* 16 bits: the high byte (gray and RGB) */
    snprintf(p, sizeof p, "%s/g16.png", dir);
    write_png_raw(p, 8, 6, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, src, 16);
    ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 1 && im.bit_depth == 16;
    for (int i = 0; ok && i < 48; i++) ok = im.pixels[i] == src[2 * i];
    free(im.pixels);
    CHECK(ok, "any: 16-bit gray keeps the high byte");
    snprintf(p, sizeof p, "%s/rgb16.png", dir);
    write_png_raw(p, 4, 2, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, src, 24);
    ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 3 && im.bit_depth == 16;
    for (int i = 0; ok && i < 24; i++) ok = im.pixels[i] == src[2 * i];
    free(im.pixels);
    CHECK(ok, "any: 16-bit RGB keeps the high bytes");
    /* alpha channels kept */
    snprintf(p, sizeof p, "%s/ga.png", dir);
    write_png_raw(p, 8, 6, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, src, 16);
    ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 2 && memcmp(im.pixels, src, 96) == 0;
    free(im.pixels);
    snprintf(p, sizeof p, "%s/rgba.png", dir);
    write_png_raw(p, 8, 6, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, src, 32);
    ok = ok && imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == 4 &&
         memcmp(im.pixels, src, 192) == 0;
    free(im.pixels);
    CHECK(ok, "any: gray+alpha and RGBA keep their alpha");
    /* palette, without and with tRNS; tRNS on RGB adds no channel */
    for (int trns = 0; trns < 3; trns++) {
        snprintf(p, sizeof p, "%s/pal%d.png", dir, trns);
        FILE *f = fopen(p, "wb");
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        if (!f || !info || setjmp(png_jmpbuf(png))) LOG_FATAL("cannot write %s", p);
        png_init_io(png, f);
        const int ct = trns == 2 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_PALETTE;
        png_set_IHDR(png, info, 4, 2, 8, ct, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_color pal[4] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {200, 210, 220}};
        png_byte alpha[4] = {255, 128, 0, 255};
        png_color_16 key = {0, 10, 20, 30, 0};
        if (ct == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, pal, 4);
        if (trns == 1) png_set_tRNS(png, info, alpha, 4, NULL);
        if (trns == 2) png_set_tRNS(png, info, NULL, 0, &key);
        png_write_info(png, info);
        uint8_t idx[8] = {0, 1, 2, 3, 3, 2, 1, 0}, rgbrow[24];
        for (int r = 0; r < 2; r++) {
            if (ct == PNG_COLOR_TYPE_PALETTE) {
                png_write_row(png, idx + 4 * r);
            } else {
                for (int x = 0; x < 4; x++)
                    rgbrow[3 * x] = pal[idx[4 * r + x]].red, rgbrow[3 * x + 1] = pal[idx[4 * r + x]].green,
                    rgbrow[3 * x + 2] = pal[idx[4 * r + x]].blue;
                png_write_row(png, rgbrow);
            }
        }
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        const int ch = trns == 1 ? 4 : 3;
        ok = imgrid_read_png_any(p, &im, err, sizeof err) == 0 && im.channels == ch && im.palette == (trns < 2);
        for (int i = 0; ok && i < 8; i++) {
            const uint8_t *q = im.pixels + i * ch;
            ok = q[0] == pal[idx[i]].red && q[1] == pal[idx[i]].green && q[2] == pal[idx[i]].blue &&
                 (ch == 3 || q[3] == alpha[idx[i]]);
        }
        free(im.pixels);
        CHECK(ok, trns == 0 ? "any: palette -> its RGB colours" : trns == 1 ? "any: palette + tRNS -> RGBA"
                                                                           : "any: RGB + tRNS stays RGB");
    }
    snprintf(p, sizeof p, "%s/missing.png", dir);
    ok = imgrid_read_png_any(p, &im, err, sizeof err) == -1 && one_line_naming(err, p) && !im.pixels;
    CHECK(ok, "any: a missing file, named");
}

int main(void)
{
    if (!mkdtemp(dir)) LOG_FATAL("mkdtemp failed");
    test_layout();
    test_mapping();
    test_write_errors();
    test_read();
    test_read_any();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return test_finish();
}
