/* device: which compute backends this build and this machine offer (CPU always; CUDA when built with nvcc
 * AND a GPU answers). Binaries use it for `--device cpu|cuda|auto` and run_all.sh for picking the profile. */
#ifndef SF_DEVICE_H
#define SF_DEVICE_H
#include <stddef.h>

typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } device_kind;

int device_cuda_built(void);                      /* 1 if compiled with CUDA support */
/* Number of usable CUDA devices (0 when not built with CUDA or no GPU/driver); why[] says why when 0. */
int device_cuda_count(char *why, size_t whylen);
/* Resolve "cpu" | "cuda" | "auto" (auto: cuda when a device is present); dies with a one-line error when
 * "cuda" is asked for and none is usable. flag names the option in that message. */
device_kind device_select(const char *flag, const char *choice);
const char *device_name(device_kind d);
/* One-line description for .meta files: "cpu (2 OpenMP threads)" or "cuda:0 NVIDIA H100 ...". */
void device_describe(device_kind d, char *buf, size_t len);

#endif
