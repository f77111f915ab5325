/* device: backend discovery (see device.h). The CUDA queries live in common/cuda/device_cuda.cu. */
#include "device.h"
#include "log.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>

#ifdef SF_HAVE_CUDA
int device_cuda_query(int *count, char *name, size_t namelen, char *why, size_t whylen);
#endif

int device_cuda_built(void)
{
#ifdef SF_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

int device_cuda_count(char *why, size_t whylen)
{
#ifdef SF_HAVE_CUDA
    int count = 0;
    char name[256];
    device_cuda_query(&count, name, sizeof name, why, whylen);
    return count;
#else
    snprintf(why, whylen, "built without CUDA (no nvcc at build time)");
    return 0;
#endif
}

device_kind device_select(const char *flag, const char *choice)
{
    char why[256] = "";
    if (strcmp(choice, "cpu") == 0) return DEVICE_CPU;
    if (strcmp(choice, "auto") == 0) return device_cuda_count(why, sizeof why) > 0 ? DEVICE_CUDA : DEVICE_CPU;
    if (strcmp(choice, "cuda") == 0) {
        if (device_cuda_count(why, sizeof why) == 0) log_die("%s cuda: no usable CUDA device (%s)", flag, why);
        return DEVICE_CUDA;
    }
    log_die("%s: '%s' is not one of cpu|cuda|auto", flag, choice);
}

const char *device_name(device_kind d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }

void device_describe(device_kind d, char *buf, size_t len)
{
    if (d == DEVICE_CPU) {
        snprintf(buf, len, "cpu (%d OpenMP threads)", omp_get_max_threads());
        return;
    }
#ifdef SF_HAVE_CUDA
    int count = 0;
    char name[256] = "", why[256] = "";
    device_cuda_query(&count, name, sizeof name, why, sizeof why);
    snprintf(buf, len, "cuda:0 %s", count ? name : why);
#else
    snprintf(buf, len, "cuda (not built)");
#endif
}
