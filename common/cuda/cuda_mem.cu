/* cuda/cuda_mem: the CUDA context of the nn engine's GPU twins (nn_cuda.h; DESIGN.md §4): one stream and one
 * cuBLAS handle created once per process and bound together, the checked memory helpers, the cudaEvent timer,
 * and the launch check every kernel launch goes through. The cuBLAS handle runs in CUBLAS_DEFAULT_MATH, which
 * for SGEMM means plain fp32 FFMA (TF32 tensor cores only with CUBLAS_TF32_TENSOR_OP_MATH, which we never set):
 * the GPU twins are compared with the CPU reference and with fp32 PyTorch run with TF32 off. */
#include "cuda_internal.cuh"
#include "mem.h"
#include <stdlib.h>
#include <string.h>

static struct {
    int ready;
    int sync_each;          /* SF_CUDA_SYNC=1: synchronise after every launch */
    cudaStream_t stream;
    cublasHandle_t blas;
    double *scratch;        /* nn_cuda_scratch_: grown once, kept until shutdown */
    size_t scratch_n;
    /* host -> device staging (nn_cuda_memcpy_h2d): a ring of pinned buffers, each with the event of its last
     * copy, so an upload never waits for the stream, only (rarely) for the copy made STAGE_SLOTS uploads ago */
    void *stage[8];
    size_t stage_cap[8];
    cudaEvent_t stage_ev[8];
    unsigned stage_next;
    /* nn_cuda_fetch_*: pinned doubles, each with the event of its last copy */
    double *fetch;
    cudaEvent_t fetch_ev[4];
} ctx;

#define STAGE_SLOTS 8
#define STAGE_MAX ((size_t)64 << 20)   /* larger uploads (weights, once) take the plain synchronous path */

const char *nn_cuda_blas_status_string(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
    default: return "unknown cuBLAS status";
    }
}

extern "C" void nn_cuda_init(void)
{
    if (ctx.ready) return;
    const char *s = getenv("SF_CUDA_SYNC");
    ctx.sync_each = s && strcmp(s, "0") != 0 && s[0] != '\0';
    CUDA_CHECK(cudaSetDevice(0));
    /* a blocking stream: it still orders against legacy default-stream work (plain cudaMemcpy elsewhere) */
    CUDA_CHECK(cudaStreamCreate(&ctx.stream));
    CUBLAS_CHECK(cublasCreate(&ctx.blas));
    CUBLAS_CHECK(cublasSetStream(ctx.blas, ctx.stream));
    /* fp32 FFMA SGEMM, no TF32 (see the file comment) */
    CUBLAS_CHECK(cublasSetMathMode(ctx.blas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(ctx.blas, CUBLAS_POINTER_MODE_HOST));
    ctx.ready = 1;
}

extern "C" void nn_cuda_shutdown(void)
{
    if (!ctx.ready) return;
    CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    if (ctx.scratch) CUDA_CHECK(cudaFree(ctx.scratch));
    for (int k = 0; k < STAGE_SLOTS; k++) {
        if (ctx.stage[k]) CUDA_CHECK(cudaFreeHost(ctx.stage[k]));
        if (ctx.stage_ev[k]) CUDA_CHECK(cudaEventDestroy(ctx.stage_ev[k]));
    }
    if (ctx.fetch) CUDA_CHECK(cudaFreeHost(ctx.fetch));
    for (int k = 0; k < 4; k++)
        if (ctx.fetch_ev[k]) CUDA_CHECK(cudaEventDestroy(ctx.fetch_ev[k]));
    CUBLAS_CHECK(cublasDestroy(ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(ctx.stream));
    memset(&ctx, 0, sizeof ctx);
}

cudaStream_t nn_cuda_stream_(void)
{
    nn_cuda_init();
    return ctx.stream;
}

cublasHandle_t nn_cuda_blas_(void)
{
    nn_cuda_init();
    return ctx.blas;
}

extern "C" void *nn_cuda_stream(void) { return (void *)nn_cuda_stream_(); }

extern "C" void nn_cuda_sync(void)
{
    CUDA_CHECK(cudaStreamSynchronize(nn_cuda_stream_()));
    CUDA_CHECK(cudaGetLastError());
}

void nn_cuda_after_launch(const char *file, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && ctx.sync_each) e = cudaStreamSynchronize(ctx.stream);
    if (e != cudaSuccess) log_fatal_at(file, line, "CUDA kernel launch: %s", cudaGetErrorString(e));
}

double *nn_cuda_scratch_(size_t n)
{
    nn_cuda_init();
    if (n > ctx.scratch_n) {
        if (ctx.scratch) {
            CUDA_CHECK(cudaStreamSynchronize(ctx.stream));   /* the old buffer may still be in use */
            CUDA_CHECK(cudaFree(ctx.scratch));
        }
        size_t want = n < 4096 ? 4096 : n;
        CUDA_CHECK(cudaMalloc((void **)&ctx.scratch, want * sizeof(double)));
        ctx.scratch_n = want;
    }
    return ctx.scratch;
}

/* ---------------------------------------------------------------- memory */

extern "C" void *nn_cuda_malloc(size_t bytes)
{
    nn_cuda_init();
    if (bytes == 0) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) LOG_FATAL("cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(e));
    return p;
}

extern "C" float *nn_cuda_malloc_floats(size_t n) { return (float *)nn_cuda_malloc(n * sizeof(float)); }

extern "C" float *nn_cuda_upload_floats(const float *h, size_t n)
{
    float *d = nn_cuda_malloc_floats(n ? n : 1);
    if (h) nn_cuda_memcpy_h2d(d, h, n * sizeof *h);
    else nn_cuda_memset(d, 0, (n ? n : 1) * sizeof *d);
    return d;
}

extern "C" float *nn_cuda_download_floats(const float *d, size_t n)
{
    float *h = (float *)mem_calloc(n ? n : 1, sizeof(float));
    nn_cuda_memcpy_d2h(h, d, n * sizeof *h);
    return h;
}

extern "C" void nn_cuda_free(void *p)
{
    if (p) CUDA_CHECK(cudaFree(p));
}

/* The caller may reuse src at once: src is copied into a pinned staging slot on the host, and the slot's DMA is
 * queued on the stream (ordered with the kernels around it, no stream synchronisation: the per-step uploads of
 * times, factors and inputs no longer stall the GPU pipeline). A slot is reused only after its previous copy is
 * done (its event), which throttles the host when it runs STAGE_SLOTS uploads ahead. */
extern "C" void nn_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes)
{
    if (bytes == 0) return;
    cudaStream_t s = nn_cuda_stream_();
    if (bytes > STAGE_MAX) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
        /* pageable host memory: wait, so the caller may reuse src at once whatever the driver did */
        CUDA_CHECK(cudaStreamSynchronize(s));
        return;
    }
    const unsigned k = ctx.stage_next++ % STAGE_SLOTS;
    if (!ctx.stage_ev[k]) CUDA_CHECK(cudaEventCreateWithFlags(&ctx.stage_ev[k], cudaEventDisableTiming));
    else CUDA_CHECK(cudaEventSynchronize(ctx.stage_ev[k]));
    if (ctx.stage_cap[k] < bytes) {
        if (ctx.stage[k]) CUDA_CHECK(cudaFreeHost(ctx.stage[k]));
        const size_t want = bytes < ((size_t)1 << 16) ? ((size_t)1 << 16) : bytes;
        CUDA_CHECK(cudaMallocHost(&ctx.stage[k], want));
        ctx.stage_cap[k] = want;
    }
    memcpy(ctx.stage[k], src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, ctx.stage[k], bytes, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaEventRecord(ctx.stage_ev[k], s));
}

extern "C" void nn_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes)
{
    if (bytes == 0) return;
    cudaStream_t s = nn_cuda_stream_();
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

extern "C" void nn_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes)
{
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nn_cuda_stream_()));
}

extern "C" void nn_cuda_memset(void *p, int byte, size_t bytes)
{
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, nn_cuda_stream_()));
}

/* A loss read one step late: the copy is queued behind the step's kernels into pinned memory (so it is a real
 * asynchronous DMA), and the host later waits for that copy's event alone, while the next step is already queued:
 * the stream never drains for it. */
extern "C" void nn_cuda_fetch_begin(int slot, const double *src)
{
    LOG_CHECK(slot >= 0 && slot < 4, "nn_cuda_fetch_begin: slot %d outside 0..3", slot);
    cudaStream_t s = nn_cuda_stream_();
    if (!ctx.fetch) CUDA_CHECK(cudaMallocHost((void **)&ctx.fetch, 4 * sizeof(double)));
    if (!ctx.fetch_ev[slot]) CUDA_CHECK(cudaEventCreateWithFlags(&ctx.fetch_ev[slot], cudaEventDisableTiming));
    CUDA_CHECK(cudaMemcpyAsync(ctx.fetch + slot, src, sizeof(double), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaEventRecord(ctx.fetch_ev[slot], s));
}

extern "C" double nn_cuda_fetch_end(int slot)
{
    LOG_CHECK(slot >= 0 && slot < 4 && ctx.fetch && ctx.fetch_ev[slot], "nn_cuda_fetch_end: slot %d was never begun",
              slot);
    CUDA_CHECK(cudaEventSynchronize(ctx.fetch_ev[slot]));
    return ctx.fetch[slot];
}

/* ---------------------------------------------------------------- timer */

struct nn_cuda_timer {
    cudaEvent_t start, stop;
};

extern "C" nn_cuda_timer *nn_cuda_timer_create(void)
{
    nn_cuda_init();
    nn_cuda_timer *t = (nn_cuda_timer *)malloc(sizeof *t);
    if (!t) LOG_FATAL("out of memory");
    CUDA_CHECK(cudaEventCreate(&t->start));
    CUDA_CHECK(cudaEventCreate(&t->stop));
    return t;
}

extern "C" void nn_cuda_timer_start(nn_cuda_timer *t) { CUDA_CHECK(cudaEventRecord(t->start, nn_cuda_stream_())); }

extern "C" double nn_cuda_timer_stop_ms(nn_cuda_timer *t)
{
    CUDA_CHECK(cudaEventRecord(t->stop, nn_cuda_stream_()));
    CUDA_CHECK(cudaEventSynchronize(t->stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, t->start, t->stop));
    return (double)ms;
}

extern "C" void nn_cuda_timer_free(nn_cuda_timer *t)
{
    if (!t) return;
    CUDA_CHECK(cudaEventDestroy(t->start));
    CUDA_CHECK(cudaEventDestroy(t->stop));
    free(t);
}
