#!/usr/bin/env bash
# The ./data command line: the pipeline end to end, bad input (skipped with counts, or refused with one line),
# shards from a trained tokenizer. Runs against the optimised and the sanitizer builds.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

./data synth --docs 400 --seed 3 -o "$T/synth.jsonl"
check "synth writes 400 labelled documents" test "$(grep -c '"label":' "$T/synth.jsonl")" -eq 400
./data synth --docs 400 --seed 3 > "$T/synth2.jsonl"
check "synth is deterministic (file and stdout agree)" cmp -s "$T/synth.jsonl" "$T/synth2.jsonl"

# a JSONL file with every kind of bad line, and a document of 3 MB on one line
{
    echo '{"text": "A fine first document.", "url": "https://example.org/a", "lang": "en"}'
    echo '{"text": "unterminated'
    echo '{"no_text": 1}'
    echo '[1, 2, 3]'
    printf '{"text": "bad \xff\xfe utf-8"}\n'
    echo '{"text": ""}'
    printf '{"text": "%s"}\n' "$(head -c 3000000 /dev/zero | tr '\0' 'a')"
    echo '{"text": "\u00e9t\u00e9 \ud83d\ude00 fine"}'
} > "$T/bad.jsonl"
printf 'plain text file\n' > "$T/plain.txt"
: > "$T/empty.txt"

for bin in ./data build/san/data; do
    rm -rf "$T/out" "$T/rm"
    out=$($bin prepare --out "$T/out" --jsonl --removed "$T/rm" "$T/synth.jsonl" 2>&1); rc=$?
    check "$bin prepare on synth exits 0" test $rc -eq 0
    check "$bin prints a row per stage" test "$(printf '%s\n' "$out" | grep -cE '^(url_filter|repetition|quality|linewise|minhash|url_dedup|exact_substring) ')" -eq 7
    kept=$(wc -l < "$T/out/kept.jsonl")
    check "$bin keeps fewer documents than it reads ($kept of 400)" test "$kept" -gt 200 -a "$kept" -lt 400
    check "$bin writes removed documents with the reason" grep -q '"removed_by":"near duplicate"' "$T/rm/minhash.jsonl"
    check "$bin carries extra fields through" grep -q '"label":"good"' "$T/out/kept.jsonl"
    check "$bin leaves no temporary files" test -z "$(ls "$T/out" | grep tmp)"
    out=$($bin prepare --out "$T/out2" --no-minhash --no-exact_substring "$T/synth.jsonl" 2>&1)
    check "$bin --no-minhash switches the stage off" sh -c "printf '%s\n' \"\$1\" | grep -q '^minhash *(off)'" _ "$out"

    out=$($bin prepare --out "$T/out3" --jsonl "$T/bad.jsonl" "$T/plain.txt" "$T/empty.txt" 2>&1); rc=$?
    check "$bin survives bad lines, bad UTF-8, empty and 3 MB documents" test $rc -eq 0
    check "$bin counts what it skipped, with one example" sh -c "printf '%s\n' \"\$1\" | grep -q 'skipped 3 malformed lines, 1 invalid UTF-8, 2 empty; first: .*bad.jsonl:2: byte'" _ "$out"
    check "$bin reads 4 documents (3 JSONL + 1 text file)" sh -c "printf '%s\n' \"\$1\" | grep -q '^read: 4 documents'" _ "$out"

    expect_error "$bin: missing input" "nothere.jsonl: cannot open" $bin prepare --out "$T/o" "$T/nothere.jsonl"
    expect_error "$bin: unknown option" "unknown option: --frobnicate" $bin prepare --out "$T/o" --frobnicate "$T/synth.jsonl"
    expect_error "$bin: no --out" "--out DIR is required" $bin prepare "$T/synth.jsonl"
    expect_error "$bin: bad --val-frac" "--val-frac: not a fraction" $bin prepare --out "$T/o" --val-frac 2 "$T/synth.jsonl"
    expect_error "$bin: bad tokenizer" "nothere.json" $bin prepare --out "$T/o" --tokenizer "$T/nothere.json" "$T/synth.jsonl"
    expect_error "$bin: bad synth --kind" "--kind: expected web, code or second-language: poetry" $bin synth --kind poetry --docs 3
    expect_error "$bin: unknown command" "unknown command: frob" $bin frob
    expect_error "$bin: info on a text file" "plain.txt: byte 0: not a data shard" $bin info "$T/plain.txt"
    expect_error "$bin: bad --docs" "--docs: not a positive number" $bin synth --docs -3
done

# the whole path: tokenizer trained on the corpus, then shards
./tokenizer train --vocab-size 600 --out "$T/tok.json" "$T/synth.jsonl" > /dev/null 2>&1
check "tokenizer trains on the synthetic corpus" test -s "$T/tok.json"
out=$(./data prepare --tokenizer "$T/tok.json" --out "$T/sh" --val-frac 0.1 "$T/synth.jsonl" 2>&1)
check "prepare writes train and val shards" test -s "$T/sh/train_000.bin" -a -s "$T/sh/val_000.bin"
info=$(./data info "$T/sh/train_000.bin" "$T/sh/val_000.bin")
check "shards hold 2-byte ids of vocab 600" sh -c "printf '%s\n' \"\$1\" | grep -c '2-byte ids, vocab 600' | grep -qx 2" _ "$info"
kept=$(printf '%s\n' "$out" | sed -nE 's/.* ([0-9]+) tokens kept/\1/p')
docs=$(printf '%s\n' "$info" | sed -nE 's/.*tokens, ([0-9]+) documents.*/\1/p' | awk "{s+=\$1} END {print s}")
toks=$(printf '%s\n' "$info" | sed -nE 's/.*: ([0-9]+) tokens,.*/\1/p' | awk "{s+=\$1} END {print s}")
check "shard tokens = kept tokens + one EOT per document ($toks = $kept + $docs)" test "$toks" -eq $((kept + docs))
head -c 1000 "$T/sh/train_000.bin" > "$T/trunc.bin"
for bin in ./data build/san/data; do
    expect_error "$bin: truncated shard" "trunc.bin: byte 1000: truncated" $bin info "$T/trunc.bin"
done
summary
