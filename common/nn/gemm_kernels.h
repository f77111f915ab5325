/* nn/gemm_kernels: the seam between the portable GEMM code and the AVX-512 objects (gemm_avx512.c,
 * gemm_bf16_avx512.c: the only files the Makefile builds with AVX-512 flags, AVX512_OBJ). Internal to
 * common/nn/gemm*.c; callers use gemm.h / gemm_bf16.h, which dispatch at run time. */
#ifndef SF_NN_GEMM_KERNELS_H
#define SF_NN_GEMM_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* 1 when nn_sgemm / nn_gemm_bf16 should run the AVX-512 kernels (CPU check + SF_GEMM_KERNEL; resolved once) */
int nn_gemm_use_avx512_(void);

/* The calling thread's packing buffer of >= nfloat floats, 64-byte aligned, grown once, freed at thread exit
 * (gemm.c; shared by the fp32 and bf16 drivers: they never nest) */
float *nn_gemm_buffer_(size_t nfloat);

/* nn_sgemm's AVX-512 variant (gemm.c compiled by gemm_avx512.c); same arguments and bits as nn_sgemm */
void nn_sgemm_avx512_(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);

/* nn_gemm_bf16's AVX-512 BF16 driver (gemm_bf16_avx512.c); a_bf16 / b_bf16: operand stored as bf16 (uint16_t)
 * rather than fp32 (rounded to bf16 while packing) */
void nn_gemm_bf16_avx512_(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16,
                          int lda, const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);

/* the AMX-BF16 driver (gemm_bf16_avx512.c; same arguments), and whether this CPU and kernel can run it (CPUID
 * AMX-BF16 + AMX-TILE, and Linux granting the process the tile state; call once) */
void nn_gemm_bf16_amx_(int transA, int transB, int M, int N, int K, float alpha, const void *A, int a_bf16,
                       int lda, const void *B, int b_bf16, int ldb, float beta, float *C, int ldc);
int nn_gemm_amx_available_(void);

/* the same AMX driver with op(B) already packed for the whole K (gemm_amx.h's layout; nn_amx_gemm):
 * C = A[M, K] (bf16, row-major, lda) B + beta C, K % 32 == 0; trans_c: C is [N, M] (element (i, j) at
 * C[j * ldc + i]). And its packer of op(B) = X^T for a token matrix X[N, K] (fp32, row stride ldx). */
void nn_gemm_bf16_amx_packed_(int M, int N, int K, const uint16_t *A, int lda, const void *Bpacked, float beta,
                              float *C, int ldc, int trans_c);
void nn_gemm_bf16_amx_pack_rows_(void *packed, const float *X, int ldx, int N, int K);
/* this thread's tile registers as every AMX kernel here uses them (palette 1, eight 16 x 64-byte tiles):
 * the GEMM driver and the AMX attention (attention_amx.c) */
void nn_amx_tiles_on_(void);

#endif
