#!/usr/bin/env bash
# falcon.c -> HF transformers: trains a few steps from a committed reference model with ./falcon, then loads the
# checkpoint falcon.c wrote with FalconForCausalLM.from_pretrained and compares its logits with falcon.c's own.
# Needs the Python environment (.venv with torch + transformers); not part of `make test`, which has no Python.
# Usage: tests/check_hf_roundtrip.sh        (from the repository root, after `make falcon`)
set -eu
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data"
# two shards of random tokens in data.h's format (64-byte header, uint16 ids)
"$py" - "$tmp/data" <<'PY'
import struct, sys, random
random.seed(0)
for name, n in (("train_000.bin", 3000), ("val_000.bin", 500)):
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        f.write(struct.pack("<IIIIQQI28x", 0x44534c46, 1, 2, 0, n, 1, 50))
        f.write(struct.pack(f"<{n}H", *[random.randrange(50) for _ in range(n)]))
PY
status=0
# every layout HF's FalconForCausalLM has (the SwiGLU one is falcon.c's own: HF cannot load it)
for layout in mqa gqa gqa1 bias seq mha alibi rw; do
    ./falcon train --model "tests/ref/$layout" --data "$tmp/data" --out "$tmp/run_$layout" -B 2 -T 16 --steps 3 \
        --warmup 1 --lr 1e-2 --eval-every 0 > /dev/null
    ckpt="$tmp/run_$layout/latest"
    tr ' ' '\n' < "tests/ref/$layout/score_ids.txt" | head -n 16 | ./falcon score -m "$ckpt" --dump "$ckpt/logits.safetensors" > /dev/null
    "$py" tests/make_reference.py --check-c "$ckpt" || status=1
done
exit $status
