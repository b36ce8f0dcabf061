#!/usr/bin/env bash
# The falcon_cuda command line. Without nvcc there is nothing to test (the binary is not built); without a GPU
# every command that needs one must fail with one clear line; with a GPU the parity checks run for real.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
B=./falcon_cuda
B32=./build/falcon_cuda_fp32
if [ ! -x $B ] || [ ! -x $B32 ]; then
    echo "skipped: falcon_cuda is not built (no nvcc)"
    summary
    exit $?
fi

# built with -Werror for cc and nvcc: being here means it compiled warning-free
check "falcon_cuda links cuBLASLt and NCCL" sh -c "ldd $B | grep -q libcublasLt && ldd $B | grep -q libnccl"
check "info needs no GPU and says what falcon.c says" sh -c "[ \"\$($B info falcon-40b)\" = \"\$(./falcon info falcon-40b)\" ]"
expect_error "no command" "usage: falcon_cuda" $B
expect_error "unknown command" "unknown command 'sample'" $B sample
expect_error "bad train option, before any GPU is looked for" "unknown option '--bogus'" $B train --bogus 1
expect_error "bad -B value" "option -B: 'x' is not a positive integer" $B train -B x
expect_error "check without a directory" "usage: falcon_cuda check" $B check
# the switches the GPU kernels do not implement: one line, before any GPU is looked for
expect_error "biases refused" 'tests/ref/bias: "bias": true is not implemented by the GPU kernels' $B check tests/ref/bias
expect_error "sequential blocks refused" '"parallel_attn": false is not implemented' $B32 check tests/ref/seq
expect_error "ALiBi refused" '"alibi": true is not implemented' $B check tests/ref/alibi
expect_error "a Falcon-RW preset refused" 'falcon-rw-1b: "bias": true is not implemented' $B bench falcon-rw-1b
# train --model takes a config.json file as falcon train does (the same code builds the model): one the kernels
# cannot run is refused before any GPU is looked for, like a preset or a directory
cfg=$(mktemp -d)
cp tests/ref/alibi/config.json "$cfg/alibi.json"
expect_error "train --model CONFIG.json: ALiBi refused" "$cfg/alibi.json: \"alibi\": true is not implemented" \
    $B train --model "$cfg/alibi.json" --data tests/ref
expect_error "bench CONFIG.json: ALiBi refused" "$cfg/alibi.json: \"alibi\": true is not implemented" $B bench "$cfg/alibi.json"
# a tree reference (tests/ref/tree_X) is checked with the model of tests/ref/X, so X's switches are refused too
mkdir -p "$cfg/alibi" "$cfg/tree_alibi"
cp tests/ref/alibi/config.json "$cfg/alibi/"
expect_error "check of a tree reference: its model's switches refused" "$cfg/alibi: \"alibi\": true is not implemented" \
    $B check "$cfg/tree_alibi"
rm -rf "$cfg"
expect_error "SwiGLU refused" '"mlp_type": "swiglu" is not implemented' $B train --model tests/ref/swiglu --data tests/ref
expect_error "rank outside the world" "FALCON_RANK='3' is not an integer in \[0, 1\]" \
    env FALCON_RANK=3 FALCON_WORLD_SIZE=2 $B check tests/ref/mqa
expect_error "rank without world size" "SLURM_PROCID is set but SLURM_NTASKS is not" \
    env -u SLURM_NTASKS SLURM_PROCID=0 $B check tests/ref/mqa

if command -v mpicc >/dev/null 2>&1; then
    # the MPI launch path (make falcon_cuda USE_MPI=1) compiles and links; its objects go to a temporary directory
    tmp=$(mktemp -d)
    check "USE_MPI build compiles and links" sh -c "cc -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd -Wall -Wextra \
        -x c -DFALCON_CUDA_MAIN -DFALCON_USE_MPI \$(mpicc --showme:compile) -c falcon_cuda.cu -o $tmp/host.o &&
        cc -o $tmp/falcon_cuda_mpi $tmp/host.o build/cuda/dev.o build/cuda/lib_*.o -L${CUDA_HOME:-/usr/local/cuda}/lib64 \
        -lcudart -lcublasLt -lnccl -lstdc++ -lm \$(mpicc --showme:link)"
    rm -rf "$tmp"
fi

if nvidia-smi -L >/dev/null 2>&1; then
    # a GPU: the parity checks against HF transformers and falcon.c (fp32 and bf16) on every reference layout
    check "fp32 attention kernels = their host reference (tree masks, 71 heads, HS 128)" $B32 check-attention
    check "bf16 attention kernels = their host reference" $B check-attention
    for layout in mqa gqa gqa1 mqa64 tree_mqa tree_gqa; do
        check "fp32 parity on $layout" $B32 check tests/ref/$layout
        check "bf16 parity on $layout" $B check tests/ref/$layout
    done
else
    expect_error "no GPU: one line, non-zero exit" "no CUDA GPU available" $B check tests/ref/mqa
    expect_error "no GPU (fp32 build)" "no CUDA GPU available" $B32 check tests/ref/gqa
    expect_error "no GPU: a tree reference" "no CUDA GPU available" $B32 check tests/ref/tree_mqa
    expect_error "no GPU: check-attention" "no CUDA GPU available" $B check-attention
    expect_error "no GPU: train reports it after its options are read" "no CUDA GPU available" \
        $B train --data tests/ref --steps 1
fi
summary
