#!/usr/bin/env bash
# tokenizer CLI: ids identical to HF tokenizers' on every committed text and tokenizer, the round trip
# on any bytes, training determinism and parity, and one-line errors on bad input (normal and ASan builds).
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=tests/tok

# 1. exactness: every text x every tokenizer, ids compared with the ones HF tokenizers produced
for tk in hf_trained c_trained hf_bytelevel; do
    n=0; bad_list=""
    for f in $R/texts/*.txt; do
        name=$(basename "$f" .txt)
        ./tokenizer encode -t $R/$tk.json < "$f" > "$T/ids" || bad_list="$bad_list $name(exit)"
        cmp -s "$T/ids" "$R/expected/$tk/$name.ids" || bad_list="$bad_list $name"
        n=$((n + 1))
    done
    if [ -z "$bad_list" ]; then ok "$tk: ids identical to HF tokenizers on $n texts"; else bad "$tk: ids differ from HF on:$bad_list"; fi
done
# the sanitizer build on a few of them
for name in specials numbers emoji whitespace long_word; do
    build/san/tokenizer encode -t $R/hf_trained.json < $R/texts/$name.txt > "$T/ids" 2> "$T/err"
    check "ASan build: $name ids identical to HF" cmp -s "$T/ids" $R/expected/hf_trained/$name.ids
done

# 2. decode(encode(x)) == x for every text, invalid UTF-8 and all 256 bytes included
for bin in ./tokenizer build/san/tokenizer; do
    fails=""
    for f in $R/texts/*.txt $R/texts_bytes/*.bin; do
        $bin encode -t $R/hf_trained.json < "$f" > "$T/ids" && $bin decode -t $R/hf_trained.json < "$T/ids" > "$T/back" &&
            cmp -s "$f" "$T/back" || fails="$fails $(basename "$f")"
    done
    if [ -z "$fails" ]; then ok "$bin: decode(encode(x)) == x on every text"; else bad "$bin: round trip fails on:$fails"; fi
done
printf '' > "$T/empty"
./tokenizer encode -t $R/hf_trained.json < "$T/empty" > "$T/ids"
check "empty input gives an empty line of ids" test "$(cat "$T/ids")" = ""

# 3. training: deterministic, byte-identical to the committed c_trained.json, and the ASan build agrees
./tokenizer train --vocab-size 2000 --out "$T/a.json" $R/corpus.txt
./tokenizer train --vocab-size 2000 --out "$T/b.json" $R/corpus.txt
check "training is deterministic" cmp -s "$T/a.json" "$T/b.json"
check "training reproduces tests/tok/c_trained.json" cmp -s "$T/a.json" $R/c_trained.json
head -c 60000 $R/corpus.txt > "$T/small.txt"
./tokenizer train --vocab-size 600 --out "$T/s1.json" "$T/small.txt"
build/san/tokenizer train --vocab-size 600 --out "$T/s2.json" "$T/small.txt"
check "ASan build trains the same tokenizer" cmp -s "$T/s1.json" "$T/s2.json"
printf '{"text": "hello world"}\n{"text": "hello there"}\n\n{"text": "world 123456"}\n' > "$T/c.jsonl"
./tokenizer train --vocab-size 280 --special-tokens none --out "$T/j.json" "$T/c.jsonl"
printf 'hello world' | ./tokenizer encode -t "$T/j.json" > "$T/ids"
check "JSONL training, no special tokens: 'hello world' -> 'hello' 'Ġworld' as 2 ids" test "$(wc -w < "$T/ids")" -eq 2

# 4. bad input: one line on stderr naming the file, the byte offset and the problem; no crash
mk() { printf '%s' "$2" > "$T/$1.json"; }
mk trunc '{"model": {"type": "BPE", "vocab": {"a": 0'
mk notobj '[1, 2]'
mk vocabtype '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}'
mk model '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "WordPiece", "vocab": {}}}'
mk pretok '{"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}'
mk seqpretok '{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel", "add_prefix_space": false}, {"type": "Metaspace"}]}, "model": {"type": "BPE", "vocab": {}, "merges": []}}'
mk merge '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a zz"]}}'
mk mergeout '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}'
mk normalizer '{"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {}, "merges": []}}'
mk addedid '{"added_tokens": [{"id": 1e80, "content": "x"}], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {}, "merges": []}}'
mk negid '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}}'
mk dupid '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}'
mk addedclash '{"added_tokens": [{"id": 1, "content": "<s>"}], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}'
for bin in ./tokenizer build/san/tokenizer; do
    expect_error "$bin two tokens with one id" "dupid.json: byte 1[0-9][0-9]: id 0 is given to two tokens" $bin encode -t "$T/dupid.json"
    expect_error "$bin added token clashing with the vocabulary" "addedclash.json: byte 18: added token id 1 belongs to another token" $bin encode -t "$T/addedclash.json"
    expect_error "$bin truncated file" "trunc.json: byte [0-9]+: .*" $bin encode -t "$T/trunc.json"
    expect_error "$bin not an object" "notobj.json: byte 0: .*must be a JSON object" $bin encode -t "$T/notobj.json"
    expect_error "$bin vocabulary value of the wrong type" "vocabtype.json: byte 1[0-9][0-9]: a vocabulary value must be an integer" $bin encode -t "$T/vocabtype.json"
    expect_error "$bin unknown model type" "model.json: byte [0-9]+: model type 'WordPiece' is not supported" $bin encode -t "$T/model.json"
    expect_error "$bin unknown pre-tokenizer" "pretok.json: byte [0-9]+: pre-tokenizer type 'Whitespace' is not supported" $bin encode -t "$T/pretok.json"
    expect_error "$bin unknown step in a Sequence" "seqpretok.json: byte [0-9]+: pre-tokenizer type 'Metaspace'" $bin encode -t "$T/seqpretok.json"
    expect_error "$bin merge naming an unknown token" "merge.json: byte [0-9]+: merge 1 names unknown token 'zz'" $bin encode -t "$T/merge.json"
    expect_error "$bin merge result not in the vocabulary" "mergeout.json: byte [0-9]+: merge 0: 'a' \+ 'b' is not in the vocabulary" $bin encode -t "$T/mergeout.json"
    expect_error "$bin normalizer" "normalizer.json: byte 15: normalizer type 'NFC' is not supported" $bin encode -t "$T/normalizer.json"
    expect_error "$bin added token id 1e80" "addedid.json: byte [0-9]+: added token \"id\" must be an integer" $bin encode -t "$T/addedid.json"
    expect_error "$bin negative vocabulary id" "negid.json: byte [0-9]+: a vocabulary value must be an integer" $bin encode -t "$T/negid.json"
    expect_error "$bin missing file" "nosuch.json: cannot open" $bin encode -t "$T/nosuch.json"
    expect_error "$bin decode of an unknown id" "stdin: byte 2: '99999' is not a token id" sh -c "echo '5 99999 7' | $bin decode -t $R/hf_trained.json"
    expect_error "$bin decode of a non-number" "stdin: byte 0: 'abc' is not a token id" sh -c "echo 'abc' | $bin decode -t $R/hf_trained.json"
done
# bytes the vocabulary lacks are dropped (no unk_token), as HF does; words that vanish are cached too
mk tinyvocab '{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}'
for bin in ./tokenizer build/san/tokenizer; do
    check "$bin: unknown bytes dropped, repeated vanishing words" test "$(printf 'zz ab zz zz abab' | $bin encode -t "$T/tinyvocab.json")" = "2 2 2"
done
# inputs the fuzzers found (tests/fuzz/regressions): one-line errors, no crash
for f in tests/fuzz/regressions/*.json; do
    expect_error "fuzz regression $(basename "$f")" "$(basename "$f"): byte [0-9]+: " build/san/tokenizer encode -t "$f"
done
# a failed training run leaves an existing output file untouched (atomic write)
echo keep > "$T/out.json"
printf '{"text": 1}\n' > "$T/bad.jsonl"
expect_error "training on a bad JSONL line" "bad.jsonl: line 1: byte 0: no \"text\" string" ./tokenizer train --vocab-size 300 --out "$T/out.json" "$T/bad.jsonl"
check "the existing output is untouched" test "$(cat "$T/out.json")" = keep
expect_error "training into a missing folder" "cannot write" ./tokenizer train --vocab-size 300 --out "$T/no/dir/x.json" "$T/small.txt"
summary
