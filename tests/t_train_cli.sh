#!/usr/bin/env bash
# End to end: the README's main command with its smallest settings (ending with its generated multiple-choice
# task), then the training command line on its data: Ctrl-C and an exact resume, the run's length in tokens, shard
# files, ./data mix directories and weighted sources resumed exactly, a planted NaN skipped, repeated NaNs stopping
# the run with the checkpoint intact, deterministic sampling, evaluation with its progress line, the plot, and bad
# input to the other commands.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
losses() { grep -o '"loss": [0-9.]*' "$1/log.jsonl" | cut -d' ' -f2 | tr '\n' ' '; }

# 1. the main command, small: it must learn far more than word frequencies
make --no-print-directory train DEMO="$tmp/demo" DEMO_DOCS=300 DEMO_STEPS=120 DEMO_ITEMS=60 > "$tmp/demo.log" 2>&1
check "make train (small settings) finishes" test $? -eq 0
summary_line=$(grep "^final train loss" "$tmp/demo.log")
val=$(sed -E 's/.*val loss ([0-9.]+).*/\1/' <<< "$summary_line")
uni=$(sed -E 's/.*unigram entropy of the val data ([0-9.]+).*/\1/' <<< "$summary_line")
check "make train: val loss $val is below 60% of the unigram entropy $uni" awk -v v="$val" -v u="$uni" 'BEGIN { exit !(v > 0 && v < 0.6 * u) }'
check "make train: a sample was printed" grep -q "tokens in" "$tmp/demo.log"
check "make train: the summary names the plot" test -s "$tmp/demo/run/loss.svg"
check "make train names its matrix kernel and threads ($(grep '^kernels:' "$tmp/demo.log"))" \
    grep -Eq '^kernels: (AVX-512|AVX2 \+ FMA|Arm NEON|plain C) \([0-9]+ x [0-9]+ tile\), [0-9]+ threads?$' "$tmp/demo.log"
check "make train: step lines end with the ETA as M:SS" test "$(grep -c '^step .* | ETA [0-9]*:[0-5][0-9]$' "$tmp/demo.log")" -eq 120
# the generated multiple-choice task: made deterministically, and the demo model beats chance (0.25) on it
task_line=$(grep "task.jsonl: " "$tmp/demo.log")
acc=$(sed -E 's/.* acc ([0-9.]+),.*/\1/' <<< "$task_line")
acc_norm=$(sed -E 's/.* acc_norm ([0-9.]+) .*/\1/' <<< "$task_line")
check "make train ends with acc and acc_norm on its 60-item task ($task_line)" grep -Eq "^.*/task.jsonl: 60 items, acc [0-9.]+, acc_norm [0-9.]+ \(chance 0.2500\)$" <<< "$(tail -1 "$tmp/demo.log")"
check "make train: acc $acc and acc_norm $acc_norm are above 0.4" awk -v a="$acc" -v n="$acc_norm" 'BEGIN { exit !(a > 0.4 && n > 0.4) }'
./falcon make-task --from "$tmp/demo/heldout.jsonl" -o "$tmp/task2.jsonl" --items 60
check "make-task is deterministic: the same task again" cmp -s "$tmp/demo/task.jsonl" "$tmp/task2.jsonl"
./falcon make-task --from "$tmp/demo/heldout.jsonl" -o "$tmp/task3.jsonl" --items 60 --seed 2
check "make-task: another seed, another task" test "$(cmp -s "$tmp/task2.jsonl" "$tmp/task3.jsonl"; echo $?)" -eq 1
data="$tmp/demo/data"
opts=(--data "$data" --model nano -B 4 -T 64 --steps 24 --warmup 5 --lr 3e-3 --eval-every 8 --save-every 8)

# 2. Ctrl-C, then --resume: the losses of the straight run, exactly
./falcon train "${opts[@]}" --out "$tmp/a" > "$tmp/a.log" 2>&1
check "straight run of 24 steps" test $? -eq 0
./falcon train "${opts[@]}" --out "$tmp/b" > "$tmp/b.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    n=$(grep -c '"loss"' "$tmp/b/log.jsonl" 2>/dev/null)
    [ "${n:-0}" -ge 3 ] && break
    sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
check "Ctrl-C: exits cleanly (status $rc) and says so" grep -q "^interrupted: checkpoint of step" "$tmp/b.log"
stopped=$(grep -c '"loss"' "$tmp/b/log.jsonl")
check "Ctrl-C: stopped early, after $stopped of 24 steps" test "$stopped" -lt 24
./falcon train --resume "$tmp/b" --data "$data" --out "$tmp/b" > "$tmp/b2.log" 2>&1
check "--resume finishes the run" test $? -eq 0
check "resume after Ctrl-C: the 24 losses equal the straight run's" test "$(losses "$tmp/a")" = "$(losses "$tmp/b")"
expect_error "--resume refuses a changed batch size" "-B cannot change when resuming" ./falcon train --resume "$tmp/b" --data "$data" -B 4

# the run's length in tokens: 3000 tokens of 4 x 64 with a ramp-up of 1024 tokens to 2 micro-batches are 4
# steps of one micro-batch and 4 of two (1024 + 4 x 512 = 3072 tokens)
./falcon train --data "$data" --model nano -B 4 -T 64 --accum 2 --ramp-tokens 1024 --tokens 3000 --eval-every 100 --eval-batches 2 \
    --out "$tmp/tk" > "$tmp/tk.log" 2>&1
check "--tokens 3000 with a ramp-up: 8 steps, 3072 tokens" grep -q "^steps 8/8, 3072 tokens this run" "$tmp/tk.log"
expect_error "--steps and --tokens together" "--steps or --tokens, not both" ./falcon train --data "$data" --steps 5 --tokens 100

# data: a directory made by ./data mix, shard files, weighted sources (--data or --source), each resumed exactly
./data mix --out "$tmp/mix" --tokens 60000 web=1="$data/train_000.bin" > /dev/null 2>&1
short=(--model nano -B 4 -T 64 --warmup 2 --eval-every 100 --eval-batches 2)
./falcon train --data "$tmp/mix" --val "$data" "${short[@]}" --steps 2 --out "$tmp/m" > "$tmp/m.log" 2>&1
check "a ./data mix directory trains (its mix_*.bin; --val names the validation shards)" grep -q "^data: 1 train shards, 1 val shards" "$tmp/m.log"
./falcon train --data "$data/train_000.bin,$tmp/mix/mix_000.bin" "${short[@]}" --steps 2 --out "$tmp/f" > "$tmp/f.log" 2>&1
check "shard files, comma-separated: one source, no validation" grep -q "^data: 2 train shards, 0 val shards" "$tmp/f.log"
wopts=("${short[@]}" --steps 6 --save-every 3)
./falcon train --data "web=3=$data,mix=1=$tmp/mix" "${wopts[@]}" --out "$tmp/w1" > "$tmp/w1.log" 2>&1
check "weighted sources: their shares are announced" grep -q "^data: source web 0.75 (1 shards), mix 0.25 (1 shards), 1 val shards" "$tmp/w1.log"
./falcon train --source "web=3=$data" --source "mix=1=$tmp/mix" "${wopts[@]}" --stop-after 3 --out "$tmp/w2" > /dev/null 2>&1
./falcon train --resume "$tmp/w2" --data "web=3=$data,mix=1=$tmp/mix" --out "$tmp/w2" > "$tmp/w2.log" 2>&1
check "weighted sources: --source, stopped and resumed, gives the 6 losses of --data straight" test "$(losses "$tmp/w1")" = "$(losses "$tmp/w2")" -a -n "$(losses "$tmp/w1")"
expect_error "resume with other weights" "data sources \(web=1,mix=1\) are not the run's \(web=3,mix=1\)" ./falcon train --resume "$tmp/w2" --data "web=1=$data,mix=1=$tmp/mix" --steps 12
expect_error "weighted and plain paths together" "give every source a weight" ./falcon train --data "web=3=$data,$tmp/mix"
expect_error "a bad --source" "--source 'web=0=x' is not NAME=WEIGHT=PATH" ./falcon train --source web=0=x
expect_error "a source name too long" "a source name has 63 bytes at most" ./falcon train --data "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss=1=$data" --steps 1
expect_error "a directory without shards" "no train\*.bin or mix_\*.bin shards" ./falcon train --data "$tmp/a"
expect_error "a missing source" "nowhere: cannot open" ./falcon train --data "web=1=$tmp/nowhere"

# a config.json trains from random weights
sed 's/"vocab_size": 67/"vocab_size": 8192/' tests/ref/gqa/config.json > "$tmp/config.json"
./falcon train --data "$data" --model "$tmp/config.json" -B 2 -T 32 --steps 2 --out "$tmp/c" > "$tmp/c.log" 2>&1
check "train from a config.json (grouped K/V layout)" grep -q "NKV=2 V=8192" "$tmp/c.log"

# 3. NaN guard
./falcon train "${opts[@]}" --steps 6 --poison 3 --out "$tmp/n" > "$tmp/n.log" 2>&1
check "a planted NaN: run succeeds" test $? -eq 0
check "a planted NaN: step 3 is reported and skipped" grep -q "^step 3: .*not finite, step skipped" "$tmp/n.log"
check "a planted NaN: training goes on to step 6" grep -q "step     6/6" "$tmp/n.log"
./falcon train "${opts[@]}" --steps 20 --save-every 2 --poison 3-20 --out "$tmp/p" > "$tmp/p.log" 2> "$tmp/p.err"
rc=$?
check "repeated NaNs stop the run with an error (status $rc)" test $rc -eq 1 -a "$(wc -l < "$tmp/p.err")" -eq 1
check "repeated NaNs: the last good checkpoint (step 2) is intact" test "$(readlink "$tmp/p/latest")" = ckpt-00000002
got=$(echo "1 2 3 4 5 6" | ./falcon score -m "$tmp/p/latest")
check "repeated NaNs: that checkpoint scores a finite loss ($got)" awk -v x="$got" 'BEGIN { exit !(x > 0 && x < 100) }'

# 4. sampling is deterministic for a seed
s1=$(./falcon sample -m "$tmp/a/latest" -n 30 --seed 3 2>/dev/null)
s2=$(./falcon sample -m "$tmp/a/latest" -n 30 --seed 3 2>/dev/null)
s3=$(./falcon sample -m "$tmp/a/latest" -n 30 --seed 4 2>/dev/null)
check "sample: same seed, same text" test "$s1" = "$s2"
check "sample: another seed, other text" test "$s1" != "$s3"
g1=$(./falcon sample -m "$tmp/a/latest" -n 30 --temperature 0 --prompt "The" 2>/dev/null)
g2=$(./falcon sample -m "$tmp/a/latest" -n 30 --temperature 0 --seed 9 --prompt "The" 2>/dev/null)
check "sample: temperature 0 ignores the seed" test "$g1" = "$g2"

# 5. evaluation of the demo model
out=$(./falcon eval -m "$tmp/demo/run/latest" --data "$data" -T 128 --batches 5 2> "$tmp/eval.err")
check "eval: validation loss and perplexity ($out)" grep -Eq "^val loss [0-9.]+  perplexity [0-9.]+" <<< "$out"
check "eval: no progress line when stderr is not a terminal" test ! -s "$tmp/eval.err"
FALCON_PROGRESS=all ./falcon eval -m "$tmp/demo/run/latest" --data "$data" -T 128 --batches 3 2> "$tmp/eval.err" > /dev/null
bar=$(tr '\r' '\n' < "$tmp/eval.err" | grep .)
check "eval --data: a progress line per batch and a last one, in tokens" test "$(grep -Ec '^eval  [0-9.]+/3.07 k tokens  [0-9]+%' <<< "$bar")" -eq 4
check "eval --data: it ends at 100% with rate and ETA ($(tail -1 <<< "$bar"))" grep -Eq '^eval  3.07/3.07 k tokens  100%  [0-9.]+ k tokens/s  [0-9]+:[0-9]{2} elapsed  ETA 0:00 *$' <<< "$(tail -1 <<< "$bar")"
# --task scores the choices of several items in one forward pass; one choice at a time gives the same scores
one=$(./falcon eval -m "$tmp/demo/run/latest" --task "$tmp/demo/task.jsonl" --task-tokens 1 2> "$tmp/eval.err")
check "eval --task: one choice at a time, the same acc and acc_norm as make train's batched passes ($one)" test "$one" = "$task_line"
check "eval --task: no progress line when stderr is not a terminal" test ! -s "$tmp/eval.err"
FALCON_PROGRESS=all ./falcon eval -m "$tmp/demo/run/latest" --task "$tmp/demo/task.jsonl" --task-tokens 1 2> "$tmp/eval.err" > /dev/null
bar=$(tr '\r' '\n' < "$tmp/eval.err" | grep .)
check "eval --task: a progress line per forward pass (of one choice here) and a last one, in choices" \
    test "$(grep -Ec '^eval  [0-9.]+/240 choices  [0-9]+%' <<< "$bar")" -eq 241
check "eval --task: it ends at 100% ($(tail -1 <<< "$bar"))" grep -Eq '^eval  240/240 choices  100%  [0-9.]+ choices/s  [0-9]+:[0-9]{2} elapsed  ETA 0:00 *$' <<< "$(tail -1 <<< "$bar")"

# 6. the plot
./falcon plot "$tmp/a" -o "$tmp/a.svg" > /dev/null
check "plot: an SVG with both curves" grep -q "<polyline.*#d62728" "$tmp/a.svg"

# 7. bad input
expect_error "sample: no checkpoint" "nowhere/config.json: cannot open" ./falcon sample -m "$tmp/nowhere"
expect_error "eval: no task file" "missing.jsonl: cannot open" ./falcon eval -m "$tmp/a/latest" --task "$tmp/missing.jsonl"
expect_error "eval: nothing to do" "usage: falcon eval" ./falcon eval -m "$tmp/a/latest"
expect_error "plot: no log" "log.jsonl: cannot open" ./falcon plot "$tmp/nowhere"
expect_error "make-task: bad --choices" "between 2 and 16" ./falcon make-task --from x -o y --choices 40
expect_error "train: unknown option" "unknown option '--frobnicate'" ./falcon train --frobnicate 1

# 8. conversation trees: ./data synth --trees, ./data trees packs them for T = 64, falcon trains on the packed rows
./data synth --trees 80 --seed 3 -o "$tmp/trees.jsonl" > /dev/null 2>&1
./data trees --out "$tmp/trees" --context 64 --val-frac 0.1 --tokenizer "$tmp/demo/tokenizer.json" "$tmp/trees.jsonl" > /dev/null
./falcon train --data "$tmp/trees" --model nano -B 2 -T 64 --steps 10 --warmup 2 --lr 3e-3 --eval-every 10 \
    --out "$tmp/t" > "$tmp/t.log" 2>&1
check "trees: training on packed tree shards finishes" test $? -eq 0
check "trees: the run says its attention is masked" grep -q "conversation trees: masked attention" "$tmp/t.log"
read -r first _ <<< "$(losses "$tmp/t")"
last=$(losses "$tmp/t" | awk '{print $NF}')
check "trees: the loss falls ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }'
check "trees: a validation loss is logged" grep -q '"val_loss"' "$tmp/t/log.jsonl"
summary
