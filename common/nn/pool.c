/* nn/pool: max pooling forward / backward, CPU + OpenMP over (image, channel) planes (see pool.h; for the
 * classifier of paper §5.1, Table 2). */
#include "pool.h"
#include "log.h"
#include <math.h>
#include <stddef.h>

#define POOL_PAR_MIN (1L << 15)

void nn_maxpool2d_geom_finish(nn_pool_geom *g)
{
    LOG_CHECK(g->C > 0 && g->H > 0 && g->W > 0 && g->KH > 0 && g->KW > 0 && g->SH > 0 && g->SW > 0 && g->PH >= 0 &&
                  g->PW >= 0 && 2 * g->PH <= g->KH && 2 * g->PW <= g->KW && g->H + 2 * g->PH >= g->KH &&
                  g->W + 2 * g->PW >= g->KW,
              "maxpool2d: bad geometry (C %d H %d W %d K %dx%d S %dx%d P %dx%d)", g->C, g->H, g->W, g->KH, g->KW,
              g->SH, g->SW, g->PH, g->PW);
    g->OH = (g->H + 2 * g->PH - g->KH) / g->SH + 1;
    g->OW = (g->W + 2 * g->PW - g->KW) / g->SW + 1;
}

nn_pool_geom nn_maxpool2d_geom(int C, int H, int W, int k, int stride, int pad)
{
    nn_pool_geom g = {C, H, W, k, k, stride, stride, pad, pad, 0, 0};
    nn_maxpool2d_geom_finish(&g);
    return g;
}

void nn_maxpool2d_forward(float *out, int32_t *idx, const float *in, int B, const nn_pool_geom *g)
{
    const int planes = B * g->C, OP = g->OH * g->OW;
    const size_t ip = (size_t)g->H * g->W;
#pragma omp parallel for schedule(static) if ((long)planes * OP * g->KH * g->KW >= POOL_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        const float *x = in + (size_t)pl * ip;
        float *o = out + (size_t)pl * OP;
        int32_t *ix = idx + (size_t)pl * OP;
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const int h0 = oh * g->SH - g->PH, w0 = ow * g->SW - g->PW;
                float best = -INFINITY;
                int32_t bi = -1;
                for (int i = 0; i < g->KH; i++) {
                    const int ih = h0 + i;
                    if (ih < 0 || ih >= g->H) continue;
                    for (int j = 0; j < g->KW; j++) {
                        const int iw = w0 + j;
                        if (iw < 0 || iw >= g->W) continue;
                        const float v = x[(size_t)ih * g->W + iw];
                        if (bi < 0 || v > best || isnan(v)) {
                            best = v;
                            bi = ih * g->W + iw;
                            if (isnan(v)) goto done;
                        }
                    }
                }
            done:
                o[oh * g->OW + ow] = best;
                ix[oh * g->OW + ow] = bi;
            }
    }
}

void nn_maxpool2d_backward(float *din, const float *dout, const int32_t *idx, int B, const nn_pool_geom *g)
{
    const int planes = B * g->C, OP = g->OH * g->OW;
    const size_t ip = (size_t)g->H * g->W;
#pragma omp parallel for schedule(static) if ((long)planes * OP >= POOL_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        float *dx = din + (size_t)pl * ip;
        const float *dy = dout + (size_t)pl * OP;
        const int32_t *ix = idx + (size_t)pl * OP;
        for (int p = 0; p < OP; p++)
            if (ix[p] >= 0) dx[ix[p]] += dy[p];
    }
}
