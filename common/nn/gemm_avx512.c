/* nn/gemm_avx512: the AVX-512 variant of the packed SGEMM: gemm.c compiled a second time with
 * GEMM_VARIANT_AVX512, as the one object (with gemm_bf16_avx512.o) that the Makefile builds with AVX-512 flags
 * (AVX512_FLAGS), so the rest of the library runs on any x86-64-v3 CPU and nn_sgemm reaches this code only
 * after checking the CPU at run time (issue 8 item 8). */
#define GEMM_VARIANT_AVX512 1
#include "gemm.c"
