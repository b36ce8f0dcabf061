#!/usr/bin/env bash
# The GPU session's one prepared script (5.5 minutes on one H100): builds falcon_cuda, checks its parity with
# HF transformers and falcon.c, trains 10 steps beside falcon.c and loads the result in falcon.c and HF, then
# measures the attention kernel and training throughput next to HF's FalconForCausalLM (bf16, SDPA; eager and
# torch.compile) for Falcon-style models of about 125M, 350M and 1B parameters at T = 2048.
#     bash bench/gpu_check.sh            results in $OUT (the device tool's folder) or ./gpu_out
# Every part is time-boxed and prints as it goes; a part that fails or runs out of time does not stop the next.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
W=$(mktemp -d)
PY=${PYTHON:-python3}
part() { echo; echo "=== $1   ($(date -u +%H:%M:%S))"; }
tbox() { local s=$1; shift; timeout -k 5 "$s" "$@"; local rc=$?; [ $rc -eq 0 ] || echo "!!! exit $rc (124 = out of time): $*"; return $rc; }

part "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
nvcc --version | tail -n 1
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
date -u

part "build"
NCCL_ARG=
if [ ! -f "${CUDA_HOME:-/usr/local/cuda}/include/nccl.h" ]; then
    # NCCL from pip's nvidia-nccl wheel: it ships libnccl.so.2 only, so a libnccl.so link is made beside it
    d=$($PY -c "import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])" 2>/dev/null)
    mkdir -p "$W/nccl/lib" && ln -sf "$d/include" "$W/nccl/include" && ln -sf "$d"/lib/libnccl.so.* "$W/nccl/lib/" &&
        ln -sf "$(ls "$d"/lib/libnccl.so.* | head -n 1)" "$W/nccl/lib/libnccl.so" && NCCL_ARG="NCCL_HOME=$W/nccl"
    echo "NCCL from $d"
fi
tbox 300 make -j16 falcon tokenizer data falcon_cuda build/falcon_cuda_fp32 $NCCL_ARG || { echo "build failed: nothing else can run"; exit 1; }

part "parity: attention kernels against their host reference; the model against HF transformers and falcon.c (fp32, then bf16)"
tbox 45 ./build/falcon_cuda_fp32 check-attention
tbox 45 ./falcon_cuda check-attention
for layout in mqa gqa gqa1 mqa64 tree_mqa tree_gqa; do  # mqa64: head size 64, the tensor-core kernels in bf16
    tbox 45 ./build/falcon_cuda_fp32 check tests/ref/$layout
    tbox 45 ./falcon_cuda check tests/ref/$layout
done

part "10 training steps: falcon_cuda (fp32) beside falcon.c, then the GPU's checkpoint in falcon.c and HF"
D=$W/demo
mkdir -p "$D"
if tbox 120 sh -c "./data synth --docs 400 -o $D/corpus.jsonl && ./tokenizer train --vocab-size 512 --out $D/tok.json $D/corpus.jsonl >/dev/null &&
        ./data prepare --tokenizer $D/tok.json --val-frac 0.05 --out $D/data $D/corpus.jsonl >/dev/null && cp $D/tok.json $D/data/tokenizer.json"; then
    for model in nano small; do  # nano: head size 32, one K/V head; small: head size 64, 2 K/V groups, 2 LayerNorms
        ARGS="--data $D/data --model $model -B 4 -T 64 --steps 10 --warmup 3 --lr 3e-3 --eval-every 5 --save-every 10"
        tbox 60 ./falcon train $ARGS --out $D/cpu_$model | tail -n 4
        tbox 60 ./build/falcon_cuda_fp32 train $ARGS --out $D/gpu32_$model | tail -n 4
        tbox 60 ./falcon_cuda train $ARGS --out $D/gpu16_$model | tail -n 4
        for run in gpu32 gpu16; do
            paste <(grep -o '"loss": [0-9.]*' $D/cpu_$model/log.jsonl) <(grep -o '"loss": [0-9.]*' $D/${run}_$model/log.jsonl) |
                awk -v run=${run}_$model '{d = $2 - $4; if (d < 0) d = -d; if (d > m) m = d} END {printf "%s: largest |loss - falcon.c loss| over %d steps: %.2e\n", run, NR, m}'
        done
    done
    echo "1 5 9 13 17 21 25 29 33" > $D/ids.txt
    ./falcon score -m $D/gpu32_nano/latest --dump $D/gpu32_nano/latest/logits.safetensors < $D/ids.txt &&
        tbox 90 $PY tests/make_reference.py --check-c $D/gpu32_nano/latest
fi

part "configurations"
mkcfg() {  # name C L NH: Falcon-7B style (multi-query, one LayerNorm, parallel block), V = 65024
    mkdir -p "$W/$1"
    printf '{"model_type": "falcon", "vocab_size": 65024, "hidden_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d, "multi_query": true, "new_decoder_architecture": false, "parallel_attn": true, "bias": false, "alibi": false, "max_position_embeddings": 2048, "bos_token_id": 11, "eos_token_id": 11}\n' "$2" "$3" "$4" > "$W/$1/config.json"
    ./falcon info "$W/$1" | tail -n 1
}
mkcfg f125m 768 12 12
mkcfg f350m 1024 24 16
mkcfg f1b 2048 20 32

part "attention kernel alone (causal, B = 4, T = 2048)"
for c in f125m f350m f1b; do tbox 60 ./falcon_cuda bench "$W/$c" -B 4 -T 2048 --steps 10 --attention 1; done

part "training throughput: falcon_cuda (bf16), B = 4, T = 2048"
for c in f125m f350m f1b; do tbox 90 ./falcon_cuda bench "$W/$c" -B 4 -T 2048 --steps 10; done

part "training throughput: HF FalconForCausalLM, bf16, SDPA, eager then torch.compile (one process)"
PYTHONUNBUFFERED=1 tbox 240 $PY bench/gpu_torch_bench.py "$W/f125m" "$W/f350m" "$W/f1b" -B 4 -T 2048 --steps 10

part "done"
rm -rf "$W"
