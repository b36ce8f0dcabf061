#!/usr/bin/env bash
# ./data synth --trees, ./data trees and ./data mix with trees: both input forms give the same shards, info shows
# the tree fields, bad input is skipped and counted (or refused with one line), on the optimised and the
# sanitizer builds. The packing itself is checked pair by pair in tests/test_data.c.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

./data synth --trees 150 --seed 4 -o "$T/flat.jsonl"
./data synth --trees 150 --seed 4 --nested -o "$T/nested.jsonl"
check "synth --trees writes 150 roots (message per line)" test "$(grep -c '"parent":null' "$T/flat.jsonl")" -eq 150
check "synth --trees --nested writes 150 lines" test "$(wc -l < "$T/nested.jsonl")" -eq 150

cat > "$T/bad.jsonl" <<'JSONL'
{"id": "a", "parent": null, "author": "ana", "text": "Do you like Paris?"}
{"id": "b", "parent": "a", "author": "ben", "text": "Yes! It's lovely!"}
{"id": "b", "parent": "a", "text": "a second b"}
{"id": "c", "parent": "zz", "text": "orphan"}
{"id": "d", "parent": "e", "text": "cycle"}
{"id": "e", "parent": "d", "text": "cycle"}
{"id": "f", "parent": "a"}
{"id": "g", "parent": "a", "text": "unterminated
[1, 2]
{"text": "a nested tree", "replies": [{"text": "fine"}, {"author": "x"}]}
JSONL
printf '{"text": "unterminated\n[]\n' > "$T/allbad.jsonl"

for bin in ./data build/san/data; do
    rm -rf "$T/a" "$T/b" "$T/c" "$T/u"
    out=$($bin trees --context 256 --out "$T/a" --unroll "$T/u" "$T/flat.jsonl" 2>&1); rc=$?
    check "$bin trees on the flat form exits 0" test $rc -eq 0
    $bin trees --context 256 --out "$T/b" "$T/nested.jsonl" > /dev/null 2>&1
    check "$bin: both input forms give the same shard" cmp -s "$T/a/train_000.bin" "$T/b/train_000.bin"
    check "$bin reports trees and windows" sh -c "printf '%s\n' \"\$1\" | grep -qE '^train: 150 trees in [0-9]+ pieces, [0-9]+ windows of 256'" _ "$out"
    packed=$(printf '%s\n' "$out" | sed -nE 's/.*windows of 256: ([0-9]+) tree tokens.*/\1/p')
    unrolled=$(printf '%s\n' "$out" | sed -nE 's/^unrolled: .* paths, ([0-9]+) tokens/\1/p')
    check "$bin: unrolled paths hold more tokens than the packed trees ($unrolled > $packed)" test "$unrolled" -gt "$packed"
    info=$($bin info "$T/a/train_000.bin")
    check "$bin info shows the tree fields" sh -c "printf '%s\n' \"\$1\" | grep -qE 'trees packed for context 256: [0-9]+ windows, [0-9]+ messages'" _ "$info"

    out=$($bin trees --context 64 --out "$T/c" "$T/bad.jsonl" 2>&1); rc=$?
    check "$bin survives cycles, duplicates, orphans, missing text, malformed lines" test $rc -eq 0
    check "$bin counts each kind, naming the first" sh -c "printf '%s\n' \"\$1\" | grep -q '^read: 2 trees, 4 messages; skipped 2 malformed lines, 2 bad messages, 1 duplicate ids, 1 orphans, 2 in cycles; first: .*bad.jsonl:7: message \"f\" dropped: no \"text\" string'" _ "$out"

    expect_error "$bin: no --context" "--context T is required" $bin trees --out "$T/o" "$T/flat.jsonl"
    expect_error "$bin: bad --context" "--context: not a number" $bin trees --context 1 --out "$T/o" "$T/flat.jsonl"
    expect_error "$bin: missing input" "nothere.jsonl: cannot open" $bin trees --context 64 --out "$T/o" "$T/nothere.jsonl"
    expect_error "$bin: unknown option" "unknown option: --frob" $bin trees --context 64 --out "$T/o" --frob "$T/flat.jsonl"
    expect_error "$bin: nothing but bad lines" "no trees read; first problem: .*allbad.jsonl:1: byte" $bin trees --context 64 --out "$T/o" "$T/allbad.jsonl"
    expect_error "$bin: bad --trees" "--trees: not a positive number" $bin synth --trees 0
done

# mixing: 6% conversations with web text, into a tree shard of whole windows
./data synth --docs 200 --seed 2 -o "$T/web.jsonl"
./data prepare --out "$T/web" --no-minhash --jsonl "$T/web.jsonl" > /dev/null 2>&1
./tokenizer train --vocab-size 400 --out "$T/tok.json" "$T/web.jsonl" "$T/flat.jsonl" > /dev/null 2>&1
./data prepare --tokenizer "$T/tok.json" --out "$T/webs" "$T/web.jsonl" > /dev/null 2>&1
./data trees --tokenizer "$T/tok.json" --context 128 --out "$T/conv" "$T/flat.jsonl" > /dev/null 2>&1
out=$(./data mix --out "$T/mix" web=0.94=$T/webs/train_000.bin conv=0.06=$T/conv 2>&1)
check "mix with trees writes a tree shard" sh -c "./data info '$T/mix/mix_000.bin' | grep -q 'trees packed for context 128'"
share=$(printf '%s\n' "$out" | awk '$1 == "conv" {print $6}')
check "mix gives conversations their 6% share ($share)" awk "BEGIN {exit !($share > 0.055 && $share < 0.065)}"
# train and val split by tree; ./falcon trains on the tree shards and refuses them at another T
out=$(./data trees --tokenizer "$T/tok.json" --context 128 --val-frac 0.3 --out "$T/tv" "$T/flat.jsonl")
tr=$(printf '%s\n' "$out" | sed -nE 's/^train: ([0-9]+) trees.*/\1/p'); va=$(printf '%s\n' "$out" | sed -nE 's/^val: ([0-9]+) trees.*/\1/p')
check "--val-frac 0.3 splits the 150 trees ($tr train + $va val)" test "$((tr + va))" -eq 150 -a "$va" -gt 20 -a "$va" -lt 70
check "falcon trains 2 steps on tree shards" sh -c "./falcon train --data '$T/tv' --tokenizer '$T/tok.json' --model nano -B 2 -T 128 \
    --steps 2 --warmup 1 --eval-every 2 --eval-batches 1 --out '$T/run' > /dev/null 2>&1"
expect_error "falcon refuses tree shards packed for another T" "trees packed for context 128, the loader asks for T = 64" \
    ./falcon train --data "$T/tv" --tokenizer "$T/tok.json" --model nano -B 2 -T 64 --steps 2 --out "$T/run2"
summary
