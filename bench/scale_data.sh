#!/usr/bin/env bash
# The scale run (manual, not part of make test): about 1 GB of synthetic web documents through the whole pipeline
# (all stages, tokenisation, exact-substring dedup, train/val shards), with its wall time and peak memory.
#   bench/scale_data.sh                  # N=780000 documents (1.08 GB), DIR=/tmp/falcon_scale
#   N=100000 DIR=/tmp/s bench/scale_data.sh
# Needs `make data tokenizer`. Results are in docs/performance.md (## data).
set -eu
cd "$(dirname "$0")/.."
N=${N:-780000}
DIR=${DIR:-/tmp/falcon_scale}
mkdir -p "$DIR"
[ -s "$DIR/corpus.jsonl" ] || ./data synth --docs "$N" --seed 7 -o "$DIR/corpus.jsonl"
[ -s "$DIR/tok.json" ] || { ./data synth --docs 20000 --seed 8 -o "$DIR/sample.jsonl" &&
    ./tokenizer train --vocab-size 4096 --out "$DIR/tok.json" "$DIR/sample.jsonl" > /dev/null; }
ls -l "$DIR/corpus.jsonl"
rm -rf "$DIR/out"
/usr/bin/time -v ./data prepare --tokenizer "$DIR/tok.json" --out "$DIR/out" --mem-mb 1024 "$DIR/corpus.jsonl" \
    2> "$DIR/time.txt"
grep -E "Elapsed|Maximum resident|User time|System time" "$DIR/time.txt"
./data info "$DIR"/out/*.bin | tail -3
