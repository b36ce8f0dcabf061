#!/bin/sh
# Conversation trees packed (one sequence per tree, tree mask) against unrolled (every root-to-leaf path as its
# own document), on a generated Reddit-like set: tokens processed at several contexts, and the training time per
# conversation with ./falcon train (nano model; both sides run at the same B and T, alternating, RUNS times each).
#     bench/bench_trees.sh [TREES (300)] [T for training (256)] [RUNS (3)] [STEPS per run (8)]
# Training time per conversation = (windows of the set x T tokens) / (median tokens per second) / TREES: one
# epoch's time, from the median step speed of short runs (a full epoch would take minutes per side here).
set -e
cd "$(dirname "$0")/.."
N=${1:-300}; TT=${2:-256}; RUNS=${3:-3}; STEPS=${4:-8}; B=4
make -s data tokenizer falcon
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
./data synth --trees "$N" --seed 1 -o "$D/trees.jsonl" 2>/dev/null
./tokenizer train --vocab-size 1024 --out "$D/tok.json" "$D/trees.jsonl" > /dev/null 2>&1
echo "set: $N Reddit-like trees, $(wc -l < "$D/trees.jsonl") messages, BPE vocabulary 1024"
printf '%-8s %10s %10s %8s %10s %10s %8s %8s\n' T tree_tok path_tok ratio packed_win unroll_win ratio split
for T in 256 512 1024 2048; do
    rm -rf "$D/p" "$D/u"
    out=$(./data trees --tokenizer "$D/tok.json" --context $T --out "$D/p" --unroll "$D/u" "$D/trees.jsonl")
    tt=$(printf '%s\n' "$out" | sed -nE 's/.* ([0-9]+) tree tokens.*/\1/p')
    pw=$(printf '%s\n' "$out" | sed -nE 's/.* ([0-9]+) windows of.*/\1/p')
    sp=$(printf '%s\n' "$out" | sed -nE 's/.* ([0-9]+) trees split.*/\1/p')
    ut=$(printf '%s\n' "$out" | sed -nE 's/^unrolled: .* ([0-9]+) tokens/\1/p')
    uw=$(( (ut - 1) / T ))
    awk -v T=$T -v tt=$tt -v ut=$ut -v pw=$pw -v uw=$uw -v sp=$sp 'BEGIN { printf "%-8d %10d %10d %8.2f %10d %10d %8.2f %8d\n", T, tt, ut, ut / tt, pw, uw, uw / pw, sp }'
done
rm -rf "$D/p" "$D/u"
./data trees --tokenizer "$D/tok.json" --context "$TT" --out "$D/p" --unroll "$D/u" "$D/trees.jsonl" > /dev/null
cp "$D/tok.json" "$D/p/tokenizer.json"; cp "$D/tok.json" "$D/u/tokenizer.json"
pw=$(./data info "$D/p/train_000.bin" | sed -nE 's/.*: ([0-9]+) windows.*/\1/p')
ut=$(./data info "$D/u/train_000.bin" | sed -nE 's/.*: ([0-9]+) tokens.*/\1/p'); uw=$(( (ut - 1) / TT ))
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for r in $(seq "$RUNS"); do
    for side in p u; do
        rm -rf "$D/run"
        ./falcon train --data "$D/$side" --model nano --out "$D/run" -B $B -T "$TT" --steps "$STEPS" --warmup 2 \
            --eval-every 100000 --save-every 100000 --seed "$r" > /dev/null 2>&1
        # the median step speed of this run, first step (warm-up) left out
        sed -nE 's/.*"step": ([0-9]+),.*"tok_per_s": ([0-9.]+).*/\1 \2/p' "$D/run/log.jsonl" | awk '$1 > 1 { print $2 }' | median >> "$D/tps_$side"
    done
done
tp=$(median < "$D/tps_p"); tu=$(median < "$D/tps_u")
echo "training at T=$TT, B=$B, nano, $RUNS runs of $STEPS steps per side: tokens/s packed $(tr '\n' ' ' < "$D/tps_p")(median $tp), unrolled $(tr '\n' ' ' < "$D/tps_u")(median $tu)"
awk -v N=$N -v T=$TT -v pw=$pw -v uw=$uw -v tp=$tp -v tu=$tu 'BEGIN {
    a = pw * T / tp / N * 1000; b = uw * T / tu / N * 1000
    printf "time per conversation (one epoch / trees): packed %.1f ms (%d windows), unrolled %.1f ms (%d windows), unrolled / packed %.2f\n", a, pw, b, uw, b / a }'
