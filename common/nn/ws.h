/* nn/ws: workspace carving shared by every network (common/models/): one allocation per model, cut into
 * 64-byte aligned arrays. A model writes its carve function once over nn_ws_take and calls it twice: with a NULL
 * base to count the floats, then with the allocated base to set its pointers. The base may be device memory
 * (nothing here dereferences it). */
#ifndef SF_NN_WS_H
#define SF_NN_WS_H
#include <stddef.h>

/* n rounded up to a multiple of 16 floats (64 bytes) */
static inline size_t nn_ws_pad16(size_t n) { return (n + 15) / 16 * 16; }

/* the next n floats of base at *off (NULL while counting); *off advances by nn_ws_pad16(n) */
static inline float *nn_ws_take(float *base, size_t *off, size_t n)
{
    float *q = base ? base + *off : NULL;
    *off += nn_ws_pad16(n);
    return q;
}

/* n zeroed host floats, 64-byte aligned (at least one); release with free(). Dies when out of memory. */
float *nn_ws_falloc(size_t n);

#endif
