# falcon.c: build, test and train.
#   make          build the command-line tools
#   make train    the main job: make data, train a small Falcon, sample from it
#   make test     every test, also under AddressSanitizer + UndefinedBehaviorSanitizer

CC      ?= cc
OPT     ?= -O3 -march=native
WARN     = -Wall -Wextra
# The language and code-generation flags every build shares, the Arm one included. -fno-math-errno: sqrtf may not
# vectorise while it must set errno (AdamW's update stayed scalar, 2% of a tiny training step); nothing here reads
# errno after a math function. A pragma cannot say it, so the flag must.
LANGFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd -fno-math-errno
CFLAGS  += $(LANGFLAGS) $(WARN)
LDLIBS   = -lm
# OpenMP is optional: used when the compiler supports it, `make NO_OMP=1` turns it off.
ifndef NO_OMP
OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
endif
SAN      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
B        = build

BINS  = falcon tokenizer data
TESTS =

.PHONY: all test clean train
all: $(BINS)

$(B) $(B)/san:
	mkdir -p $@

# ---------------------------------------------------------------- shared: JSON
JSON = json.c json.h

# ---------------------------------------------------------------- falcon.c: the model
# falcon links tokenizer.c (sampling from text) and data.c (the shard loader) as libraries.
FALCON_SRC = falcon.c data.c data.h tokenizer.c tokenizer.h unicode_tables.h progress.h $(JSON)
FALCON_LINK = data.c tokenizer.c json.c
falcon: $(FALCON_SRC)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -DFALCON_MAIN -o $@ falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/falcon: $(FALCON_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -DFALCON_MAIN -o $@ falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/test_falcon: tests/test_falcon.c tests/test.h $(FALCON_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -o $@ tests/test_falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/test_falcon: tests/test_falcon.c tests/test.h $(FALCON_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -o $@ tests/test_falcon.c $(FALCON_LINK) $(LDLIBS)
TESTS += $(B)/test_falcon $(B)/san/test_falcon tests/t_falcon_cli.sh tests/t_train_cli.sh
# the fast kernels against their references: this machine's widest kernels, the compiler's default target's
# (plain C or baseline SIMD), and under the sanitizers
$(B)/test_kernels: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
$(B)/test_kernels_portable: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)
	$(CC) $(CFLAGS) -O2 $(OMP) -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/test_kernels: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
TESTS += $(B)/test_kernels $(B)/test_kernels_portable $(B)/san/test_kernels
TEST_DEPS += falcon $(B)/san/falcon

# ---------------------------------------------------------------- tokenizer.c
TOK_SRC = tokenizer.c tokenizer.h unicode_tables.h progress.h $(JSON)
tokenizer: $(TOK_SRC)
	$(CC) $(CFLAGS) $(OPT) -DTOKENIZER_MAIN -o $@ tokenizer.c json.c $(LDLIBS)
$(B)/san/tokenizer: $(TOK_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -DTOKENIZER_MAIN -o $@ tokenizer.c json.c $(LDLIBS)
$(B)/test_tokenizer: tests/test_tokenizer.c tests/test.h $(TOK_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) -o $@ tests/test_tokenizer.c json.c $(LDLIBS)
$(B)/san/test_tokenizer: tests/test_tokenizer.c tests/test.h $(TOK_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -o $@ tests/test_tokenizer.c json.c $(LDLIBS)
TESTS += $(B)/test_tokenizer $(B)/san/test_tokenizer tests/t_tokenizer.sh
TEST_DEPS += tokenizer $(B)/san/tokenizer

# ---------------------------------------------------------------- data.c
DATA_SRC = data.c data.h tokenizer.c tokenizer.h unicode_tables.h progress.h $(JSON)
data: $(DATA_SRC)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -DDATA_MAIN -o $@ data.c tokenizer.c json.c $(LDLIBS)
$(B)/san/data: $(DATA_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -DDATA_MAIN -o $@ data.c tokenizer.c json.c $(LDLIBS)
$(B)/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
$(B)/san/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
TESTS += $(B)/test_data $(B)/san/test_data tests/t_data_cli.sh tests/t_trees.sh
TEST_DEPS += data tokenizer $(B)/san/data

# ---------------------------------------------------------------- progress.h: the progress line of the long steps
# a header of static functions, included by tokenizer.c and data.c: nothing to add to their link lines
$(B)/test_progress: tests/test_progress.c tests/test.h progress.h | $(B)
	$(CC) $(CFLAGS) $(OPT) -o $@ tests/test_progress.c $(LDLIBS)
$(B)/san/test_progress: tests/test_progress.c tests/test.h progress.h | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -o $@ tests/test_progress.c $(LDLIBS)
TESTS += $(B)/test_progress $(B)/san/test_progress tests/t_progress.sh
TEST_DEPS += tokenizer data

# ---------------------------------------------------------------- falcon_cuda.cu: the GPU trainer
# falcon_cuda.cu is compiled twice: as C by $(CC) (its host half, which includes falcon.c) and as CUDA C++ by
# nvcc (its kernels). Built by make test when nvcc exists; building and its tests need no GPU.
#   make falcon_cuda                 bf16 (build/falcon_cuda_fp32: fp32, for parity checks with falcon.c)
#   make falcon_cuda USE_MPI=1       ranks started by mpirun/srun exchange the NCCL id over MPI (rm -r build/cuda
#                                    when switching: the objects do not know how they were built)
#   NVCC_ARCH="-gencode arch=compute_80,code=sm_80 ..."   other GPUs (default: H100, sm_90)
NVCC      ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90
NVFLAGS    = -O3 -std=c++17 $(NVCC_ARCH) --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror
CUDA_CC    = $(CC) $(CFLAGS) -O2 -x c -DFALCON_CUDA_MAIN
CUDA_LIBS  = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lnccl -lstdc++ $(LDLIBS)
ifdef NCCL_HOME  # NCCL outside the CUDA toolkit (e.g. pip's nvidia-nccl): NCCL_HOME/include, NCCL_HOME/lib
NVFLAGS   += -I$(NCCL_HOME)/include
CUDA_LIBS += -L$(NCCL_HOME)/lib -Wl,-rpath,$(NCCL_HOME)/lib
endif
ifdef USE_MPI
CUDA_CC   += -DFALCON_USE_MPI $(shell mpicc --showme:compile)
CUDA_LIBS += $(shell mpicc --showme:link)
endif
CUDA_SRC   = falcon_cuda.cu $(FALCON_SRC)
NVCC_OR_ERROR = $(if $(NVCC),$(NVCC),$(error nvcc not found: install the CUDA toolkit or run make NVCC=/path/to/nvcc))
$(B)/cuda $(B)/cuda32:
	mkdir -p $@
CUDA_LIBOBJ = $(B)/cuda/lib_data.o $(B)/cuda/lib_tokenizer.o $(B)/cuda/lib_json.o
$(B)/cuda/lib_%.o: %.c $(FALCON_SRC) | $(B)/cuda
	$(CC) $(CFLAGS) $(OPT) -c $< -o $@
$(B)/cuda/%.o: $(CUDA_SRC) | $(B)/cuda
	$(if $(filter dev,$*),$(NVCC_OR_ERROR) $(NVFLAGS) -c falcon_cuda.cu -o $@,$(CUDA_CC) -c falcon_cuda.cu -o $@)
$(B)/cuda32/%.o: $(CUDA_SRC) | $(B)/cuda32
	$(if $(filter dev,$*),$(NVCC_OR_ERROR) $(NVFLAGS) -DFALCON_FP32 -c falcon_cuda.cu -o $@,$(CUDA_CC) -DFALCON_FP32 -c falcon_cuda.cu -o $@)
falcon_cuda: $(B)/cuda/host.o $(B)/cuda/dev.o $(CUDA_LIBOBJ)
	$(CC) -o $@ $^ $(CUDA_LIBS)
$(B)/falcon_cuda_fp32: $(B)/cuda32/host.o $(B)/cuda32/dev.o $(CUDA_LIBOBJ)
	$(CC) -o $@ $^ $(CUDA_LIBS)
# the host half's tests (launch environment, ZeRO-1 shards, flash-attention tiling and masks): C only
$(B)/test_falcon_cuda: tests/test_falcon_cuda.c tests/test.h $(CUDA_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) -o $@ tests/test_falcon_cuda.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/test_falcon_cuda: tests/test_falcon_cuda.c tests/test.h $(CUDA_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -o $@ tests/test_falcon_cuda.c $(FALCON_LINK) $(LDLIBS)
TESTS += $(B)/test_falcon_cuda $(B)/san/test_falcon_cuda tests/t_falcon_cuda.sh
# the tensor-core attention kernels run on the CPU, mma.sync emulated (tests/test_tensor_cores.cpp): C++20, no nvcc.
# Their source is cut from falcon_cuda.cu (from the flash-attention section to the tensor-core launchers), less
# mma_bf16's inline PTX, which the test supplies.
$(B)/fa_kernels.inc: falcon_cuda.cu | $(B)
	{ grep -E '^#define (NUM_PARAMS_T|FA_BC) ' falcon_cuda.cu && \
	  sed -n '/^typedef struct {$$/,/^} GpuSpec;/{p;/^} GpuSpec;/q;}' falcon_cuda.cu && \
	  sed -n '/^\/\/ Flash attention\. The T x T matrix/,/^static void attention_forward_mma/p' falcon_cuda.cu | head -n -2 | \
	  sed -e '/void mma_bf16(/,/^}/d' -e 's/extern __shared__/extern/' -e '/^#ifndef FALCON_FP32/d'; } > $@.tmp && mv $@.tmp $@
$(B)/test_tensor_cores: tests/test_tensor_cores.cpp $(B)/fa_kernels.inc
	$(CXX) -std=c++20 -O1 -Wall -Wextra -Wno-unknown-pragmas -pthread -I$(B) -o $@ tests/test_tensor_cores.cpp
# run where a C++20 compiler with std::barrier exists (g++ 11 or later, clang with a recent libc++)
HAVE_CXX20 := $(shell printf '\043include <barrier>\n' | $(CXX) -std=c++20 -x c++ -fsyntax-only - 2>/dev/null && echo yes)
ifeq ($(HAVE_CXX20),yes)
TESTS += $(B)/test_tensor_cores
endif
ifneq ($(NVCC),)
TEST_DEPS += falcon_cuda $(B)/falcon_cuda_fp32
endif

# ---------------------------------------------------------------- the vector paths of other machines
# AVX2 + FMA (x86 without AVX-512): built with -mavx2 -mfma and run where this CPU has them.
ifeq ($(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo yes),yes)
$(B)/test_kernels_avx2: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)
	$(CC) $(CFLAGS) -O3 -mavx2 -mfma $(OMP) -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
TESTS += $(B)/test_kernels_avx2
endif
# Arm NEON: the kernel, model, tokenizer and data tests cross-compiled for aarch64 and run under qemu-user
# (tests/t_arm.sh), where Debian's gcc-aarch64-linux-gnu and qemu-user are installed (.ci/run installs them) and
# this machine is not itself an Arm one. Besides the NEON kernels, this runs the C on a second ABI: char is
# unsigned there, and gcc evaluates a call's arguments in the other order.
ARM_CC ?= aarch64-linux-gnu-gcc
ARM_CFLAGS = $(LANGFLAGS) $(WARN) -fopenmp
ifneq ($(shell uname -m),aarch64)
ifeq ($(shell command -v $(ARM_CC) >/dev/null && command -v qemu-aarch64 >/dev/null && echo yes),yes)
$(B)/arm:
	mkdir -p $@
$(B)/arm/test_kernels: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)/arm
	$(ARM_CC) $(ARM_CFLAGS) -O3 -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
$(B)/arm/test_falcon: tests/test_falcon.c tests/test.h $(FALCON_SRC) | $(B)/arm
	$(ARM_CC) $(ARM_CFLAGS) -O3 -o $@ tests/test_falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/arm/test_tokenizer: tests/test_tokenizer.c tests/test.h $(TOK_SRC) | $(B)/arm
	$(ARM_CC) $(ARM_CFLAGS) -O2 -o $@ tests/test_tokenizer.c json.c $(LDLIBS)
$(B)/arm/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)/arm
	$(ARM_CC) $(ARM_CFLAGS) -O2 -DTEST_SMALL=1 -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
$(B)/arm/data: $(DATA_SRC) | $(B)/arm
	$(ARM_CC) $(ARM_CFLAGS) -O2 -DDATA_MAIN -o $@ data.c tokenizer.c json.c $(LDLIBS)
TEST_DEPS += $(addprefix $(B)/arm/,test_kernels test_falcon test_tokenizer test_data data)
endif
endif
TESTS += tests/t_arm.sh

# The other compiler: clang where it is installed and is not already $(CC). It vectorises differently, takes its
# own path through max_of, and evaluates a call's arguments first to last; built with -Werror, so that make test
# also checks that the code is warning-free under clang.
CLANG_TEST := $(shell command -v clang >/dev/null && ! $(CC) --version 2>/dev/null | grep -q clang && echo yes)
ifeq ($(CLANG_TEST),yes)
CLANG_OMP := $(shell echo 'int main(void){return 0;}' | clang -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
$(B)/clang:
	mkdir -p $@
$(B)/clang/test_kernels: tests/test_kernels.c tests/test.h $(FALCON_SRC) | $(B)/clang
	clang $(CFLAGS) -Werror $(OPT) $(CLANG_OMP) -o $@ tests/test_kernels.c $(FALCON_LINK) $(LDLIBS)
$(B)/clang/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)/clang
	clang $(CFLAGS) -Werror -O2 $(CLANG_OMP) -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
TESTS += $(B)/clang/test_kernels $(B)/clang/test_data
endif

# ---------------------------------------------------------------- the main job
# Everything from nothing: a synthetic web corpus, a BPE vocabulary learned on it, the refinement pipeline and
# shards, a few minutes of training of the nano preset, a sample, and zero-shot multiple choice on a task made
# (deterministically) from documents the model never saw. Smaller: make train DEMO_STEPS=100
DEMO        = runs/demo
DEMO_DOCS  ?= 2000
DEMO_VOCAB ?= 4096
DEMO_STEPS ?= 400
DEMO_ITEMS ?= 200
train: $(BINS)
	mkdir -p $(DEMO)
	./data synth --docs $(DEMO_DOCS) -o $(DEMO)/corpus.jsonl
	./tokenizer train --vocab-size $(DEMO_VOCAB) --out $(DEMO)/tokenizer.json $(DEMO)/corpus.jsonl
	./data prepare --tokenizer $(DEMO)/tokenizer.json --val-frac 0.05 --out $(DEMO)/data $(DEMO)/corpus.jsonl
	cp $(DEMO)/tokenizer.json $(DEMO)/data/tokenizer.json
	./falcon train --data $(DEMO)/data --model nano --out $(DEMO)/run -B 8 -T 128 --steps $(DEMO_STEPS) \
		--warmup 20 --lr 3e-3 --eval-every 50 --save-every 200
	./falcon sample -m $(DEMO)/run/latest --prompt "The old teacher" -n 60 --seed 1
	./data synth --docs 100 --seed 99 -o $(DEMO)/heldout.jsonl
	./falcon make-task --from $(DEMO)/heldout.jsonl -o $(DEMO)/task.jsonl --items $(DEMO_ITEMS)
	./falcon eval -m $(DEMO)/run/latest --task $(DEMO)/task.jsonl

# ---------------------------------------------------------------- ablations (docs/ablation.md)
# The Falcon paper's method: small models, one design axis at a time, several seeds, judged by zero-shot accuracy.
#   make ablate-quick      about 10 minutes on 2 quiet cores: runs/ablate-quick/results.md and results.svg
#   make ablate            the full grid (hours: see docs/ablation.md); ABLATE_ARGS="--axes mlp --seeds 3" etc.
.PHONY: ablate ablate-quick
ablate: $(BINS)
	tools/ablate.sh $(ABLATE_ARGS)
ablate-quick: $(BINS)
	tools/ablate.sh --quick $(ABLATE_ARGS)
TESTS += tests/t_ablate.sh

# ---------------------------------------------------------------- tests
test: $(BINS) $(TEST_DEPS) $(filter $(B)/%,$(TESTS))
	tests/run.sh $(TESTS)

clean:
	rm -rf $(B) $(BINS)
