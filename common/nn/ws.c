/* nn/ws: aligned host workspace allocation (see ws.h). */
#include "ws.h"
#include "log.h"
#include <stdlib.h>
#include <string.h>

float *nn_ws_falloc(size_t n)
{
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *b = aligned_alloc(64, bytes);
    LOG_CHECK(b, "out of memory (%zu bytes)", bytes);
    memset(b, 0, bytes);
    return b;
}
