/* device_cuda: CUDA runtime queries behind device.h (compiled only when nvcc is present). */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int device_cuda_query(int *count, char *name, size_t namelen, char *why, size_t whylen)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        snprintf(why, whylen, "%s", cudaGetErrorString(e));
        *count = 0;
        cudaGetLastError(); /* clear the sticky error so later probes start clean */
        return 0;
    }
    if (*count == 0) {
        snprintf(why, whylen, "no CUDA device present");
        return 0;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
        snprintf(name, namelen, "%s (sm_%d%d, %.0f GiB)", p.name, p.major, p.minor,
                 (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return *count;
}
