#!/usr/bin/env bash
# The falcon command line: presets, scoring against HF's loss, and bad input of every kind, each refused with one
# line naming the file and the problem, never a crash. Runs the normal and the sanitizer build.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 8-byte little-endian integer
le64() { for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $((($1 >> (8 * i)) & 255)))"; done; }
# mkst FILE HEADER DATA_BYTES: a safetensors file with the given header JSON and that many zero data bytes
mkst() { { le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"; }
# a checkpoint directory: a copy of the committed mqa reference whose files the cases then break
fresh() { rm -rf "$tmp/ck"; mkdir -p "$tmp/ck"; cp tests/ref/mqa/config.json tests/ref/mqa/model.safetensors "$tmp/ck/"; }
close_to() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

for bin in ./falcon build/san/falcon; do
    # presets: the exact parameter counts of the released models
    out=$($bin info falcon-7b)
    check "$bin info falcon-7b: 6921720704 parameters" grep -q "parameters: 6921720704 (6.92B)" <<< "$out"
    out=$($bin info falcon-40b)
    check "$bin info falcon-40b: 41303293952 parameters" grep -q "parameters: 41303293952 (41.30B)" <<< "$out"
    out=$($bin info falcon-180b)
    check "$bin info falcon-180b: 178557088768 parameters" grep -q "parameters: 178557088768 (178.56B)" <<< "$out"
    # the configuration files of the first releases: RW model types and n_head / n_layer / n_head_kv keys
    mkdir -p "$tmp/rw7" "$tmp/rw40"
    printf '{"model_type": "RefinedWebModel", "hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": true, "parallel_attn": true, "bias": false, "alibi": false, "vocab_size": 65024}' > "$tmp/rw7/config.json"
    printf '{"model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60, "parallel_attn": true, "bias": false, "alibi": false, "vocab_size": 65024}' > "$tmp/rw40/config.json"
    out=$($bin info "$tmp/rw7")
    check "$bin info: an original Falcon-7B config.json (RefinedWebModel) is 6.92B" grep -q "parameters: 6921720704" <<< "$out"
    out=$($bin info "$tmp/rw40")
    check "$bin info: an original Falcon-40B config.json (RefinedWeb) is 41.30B" grep -q "parameters: 41303293952" <<< "$out"
    # the RefinedWeb paper's models: presets, and an original Falcon-RW-1B config.json (RefinedWebModel, n_head ...)
    out=$($bin info --model falcon-rw-1b)
    check "$bin info --model falcon-rw-1b: 1311625216 parameters" grep -q "parameters: 1311625216 (1.31B)" <<< "$out"
    out=$($bin info falcon-rw-7b)
    check "$bin info falcon-rw-7b: 7516020736 parameters" grep -q "parameters: 7516020736 (7.52B)" <<< "$out"
    check "$bin info falcon-rw-7b: sequential blocks, ALiBi, biases" grep -q "sequential blocks, ALiBi, GELU MLP, biases" <<< "$out"
    mkdir -p "$tmp/rw1"
    printf '{"model_type": "RefinedWebModel", "hidden_size": 2048, "n_head": 32, "n_layer": 24, "multi_query": false, "parallel_attn": false, "bias": true, "alibi": true, "vocab_size": 50304, "bos_token_id": 1, "eos_token_id": 2}' > "$tmp/rw1/config.json"
    out=$($bin info "$tmp/rw1")
    check "$bin info: an original Falcon-RW-1B config.json is 1.31B" grep -q "parameters: 1311625216" <<< "$out"
    out=$($bin info tests/ref/gqa)
    check "$bin info DIR reads the checkpoint's config" grep -q "kv heads NKV=2" <<< "$out"

    # score: HF's loss for labels = input_ids, within 3e-6: both sides are printed to 6 decimals (1e-6 between two
    # roundings), and fp32 sums in another order differ by a few 1e-7 of a loss near 5 (mqa64, 128 wide: 2e-6)
    for layout in mqa gqa gqa1 bias seq mha alibi rw swiglu mqa64; do
        got=$($bin score -m tests/ref/$layout < tests/ref/$layout/score_ids.txt)
        want=$(cat tests/ref/$layout/score_loss.txt)
        check "$bin score $layout: $got vs HF $want" close_to "$got" "$want" 3e-6
    done

    # missing things
    expect_error "$bin: missing checkpoint directory" "nowhere/config.json: cannot open" $bin score -m "$tmp/nowhere"
    fresh; rm "$tmp/ck/model.safetensors"
    expect_error "$bin: missing weights" "no model.safetensors" $bin score -m "$tmp/ck"

    # config.json problems
    fresh; sed -i '/"hidden_size"/d' "$tmp/ck/config.json"
    expect_error "$bin: config without hidden_size" 'config.json: missing required key "hidden_size"' $bin info "$tmp/ck"
    fresh; sed -i 's/"num_attention_heads": 4/"num_attention_heads": 0/' "$tmp/ck/config.json"
    expect_error "$bin: zero heads" 'config.json: byte [0-9]+: "num_attention_heads" = 0 is out of range' $bin info "$tmp/ck"
    fresh; sed -i 's/"hidden_size": 32/"hidden_size": 33/' "$tmp/ck/config.json"
    expect_error "$bin: hidden size not divisible by heads" "hidden_size 33 is not divisible" $bin info "$tmp/ck"
    fresh; sed -i 's/"vocab_size": 61/"vocab_size": "many"/' "$tmp/ck/config.json"
    expect_error "$bin: vocab_size of the wrong type" '"vocab_size" must be an integer' $bin info "$tmp/ck"
    fresh; sed -i 's/"vocab_size": 61/"vocab_size": 1e40/' "$tmp/ck/config.json"
    expect_error "$bin: absurd vocab_size" '"vocab_size" = 1e?0*40.* out of range|out of range' $bin info "$tmp/ck"
    fresh; sed -i 's/"alibi": false/"alibi": "yes"/' "$tmp/ck/config.json"
    expect_error "$bin: alibi not a boolean" 'config.json: byte [0-9]+: "alibi" must be true or false' $bin info "$tmp/ck"
    fresh; sed -i 's/"bias": false/"bias": true/' "$tmp/ck/config.json"
    expect_error "$bin: bias switched on, weights without biases" 'model.safetensors: tensor "transformer.h.0.self_attention.query_key_value.bias" is missing' $bin score -m "$tmp/ck"
    fresh; sed -i 's/"parallel_attn": true/"parallel_attn": false/; s/"new_decoder_architecture": false/"new_decoder_architecture": true/' "$tmp/ck/config.json"
    expect_error "$bin: sequential blocks with the new decoder architecture" 'config.json: byte [0-9]+: "parallel_attn": false contradicts "new_decoder_architecture": true' $bin info "$tmp/ck"
    fresh; sed -i 's/"multi_query": true/"multi_query": false/; s/"num_kv_heads": 4/"num_kv_heads": 2/' "$tmp/ck/config.json"
    expect_error "$bin: full multi-head with fewer K/V heads" 'config.json: byte [0-9]+: "num_kv_heads" 2 must equal num_attention_heads 4 with "multi_query": false' $bin info "$tmp/ck"
    fresh; sed -i 's/"activation": "gelu"/"mlp_type": "geglu"/' "$tmp/ck/config.json"
    expect_error "$bin: unknown mlp_type" 'config.json: byte [0-9]+: "mlp_type" must be "gelu" or "swiglu"' $bin info "$tmp/ck"
    fresh; sed -i 's/"activation": "gelu"/"mlp_type": "swiglu"/' "$tmp/ck/config.json"
    expect_error "$bin: SwiGLU switched on, GELU weights" 'dense_h_to_4h.weight" has shape \[128, 32\], expected \[256, 32\]' $bin score -m "$tmp/ck"
    fresh; sed -i 's/"layer_norm_epsilon": 1e-05/"layer_norm_epsilon": -1/' "$tmp/ck/config.json"
    expect_error "$bin: negative epsilon" '"layer_norm_epsilon" = -1 is out of range' $bin info "$tmp/ck"
    fresh; head -c 100 tests/ref/mqa/config.json > "$tmp/ck/config.json"
    expect_error "$bin: truncated config.json" "config.json: byte [0-9]+:" $bin info "$tmp/ck"

    # inputs the fuzzer (tests/fuzz/fuzz_falcon_load.c) once crashed or misreported on
    for f in tests/fuzz/regressions_falcon/*; do
        fresh; cp "$f" "$tmp/ck/config.json"
        expect_error "$bin: fuzz regression $(basename "$f") as config.json" "config.json: byte [0-9]+:" $bin info "$tmp/ck"
    done

    # safetensors problems
    fresh; sz=$(stat -c %s "$tmp/ck/model.safetensors"); head -c $((sz / 2)) tests/ref/mqa/model.safetensors > "$tmp/ck/model.safetensors"
    expect_error "$bin: truncated safetensors" "model.safetensors: byte [0-9]+: tensor .* point outside" $bin score -m "$tmp/ck"
    fresh; head -c 5 tests/ref/mqa/model.safetensors > "$tmp/ck/model.safetensors"
    expect_error "$bin: file shorter than the header length" "model.safetensors: byte 0: file too short" $bin score -m "$tmp/ck"
    fresh; { le64 1000000000; head -c 100 /dev/zero; } > "$tmp/ck/model.safetensors"
    expect_error "$bin: header length beyond the file" "model.safetensors: byte 0: header length 1000000000 exceeds" $bin score -m "$tmp/ck"
    fresh; printf 'garbage!' | dd of="$tmp/ck/model.safetensors" bs=1 seek=20 conv=notrunc 2>/dev/null
    expect_error "$bin: garbled header" "model.safetensors: byte [0-9]+: bad header JSON" $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"F32","shape":[61,32],"data_offsets":[0,7808]}}' 100
    expect_error "$bin: offsets beyond the data" "data_offsets \[0, 7808\] point outside the 100 data bytes" $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"F32","shape":[61,32],"data_offsets":[0,16]}}' 100
    expect_error "$bin: offsets disagree with the shape" "has 16 bytes of data, its shape and dtype need 7808" $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"I64","shape":[61,32],"data_offsets":[0,15616]}}' 15616
    expect_error "$bin: wrong dtype" "has dtype I64, expected F32, BF16 or F16" $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"Q4","shape":[61,32],"data_offsets":[0,15616]}}' 15616
    expect_error "$bin: unknown dtype" 'unsupported dtype "Q4"' $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"F32","shape":[61,31],"data_offsets":[0,7564]}}' 7564
    expect_error "$bin: wrong shape" 'has shape \[61, 31\], expected \[61, 32\]' $bin score -m "$tmp/ck"
    fresh; mkst "$tmp/ck/model.safetensors" '{"transformer.word_embeddings.weight":{"dtype":"F32","shape":[-61,32],"data_offsets":[0,7808]}}' 7808
    expect_error "$bin: negative dimension" "invalid shape" $bin score -m "$tmp/ck"
    fresh; sed -i 's/"vocab_size": 61/"vocab_size": 62/' "$tmp/ck/config.json"
    expect_error "$bin: config and weights disagree" 'word_embeddings.weight" has shape \[61, 32\], expected \[62, 32\]' $bin score -m "$tmp/ck"
    fresh; cp tests/ref/gqa/model.safetensors "$tmp/ck/"
    expect_error "$bin: weights of another model" "model.safetensors: tensor .* (missing|has shape)" $bin score -m "$tmp/ck"

    # bad token input to score
    expect_error "$bin: a word among the ids" "stdin: byte 4: 'x' is not a token id" $bin score -m tests/ref/mqa <<< "1 2 x 4"
    expect_error "$bin: an id outside the vocabulary" "stdin: token 1: id 99 is outside the vocabulary" $bin score -m tests/ref/mqa <<< "1 99 3"
    expect_error "$bin: too few ids" "need at least 2 token ids" $bin score -m tests/ref/mqa <<< "1"
    expect_error "$bin: more ids than positions" "exceed max_position_embeddings 64" $bin score -m tests/ref/mqa <<< "$(seq 1 70 | tr '\n' ' ')"

    # command line: help for every command, each option of each with its default
    all=$($bin --help); rc=$?
    check "$bin --help: exit 0 and the usage of all 7 commands" test $rc -eq 0 -a "$(grep -c '^usage: falcon ' <<< "$all")" -eq 7
    check "$bin -h and $bin help: the same text" test "$($bin -h)" = "$all" -a "$($bin help)" = "$all"
    for cmd in train sample eval make-task plot info score; do
        one=$($bin $cmd --help); rc=$?
        check "$bin $cmd --help: exit 0, its usage first" test $rc -eq 0 -a "$(head -1 <<< "$one" | cut -d' ' -f1-3)" = "usage: falcon $cmd"
        check "$bin help $cmd: the same as $cmd --help and $cmd -h" test "$($bin help $cmd)" = "$one" -a "$($bin $cmd -h)" = "$one"
        check "$bin --help holds $cmd --help" grep -qF -- "$(sed -n 2p <<< "$one")" <<< "$all"
    done
    # every option a command parses, each with its default in [brackets] (or marked as required)
    documented() {  # documented CMD OPTION...: each OPTION starts a line of CMD --help, and that line or the
        local cmd=$1 o; shift  # indented ones below it give a default in [brackets] or say it is required
        for o in "$@"; do
            $bin $cmd --help | awk -v o="$o" 'index($0, "  " o " ") == 1 { on = 1; text = $0; next }
                on && /^                    / { text = text $0; next } { on = 0 }
                END { exit !(text ~ /\[.*\]|required/) }' || { echo "$cmd --help: $o undocumented"; return 1; }
        done
    }
    check "$bin train --help: every option and default" documented train --data --source --val --model --resume --out \
        --tokenizer -B -T --accum --ramp-tokens --steps --tokens --warmup --lr --lr-floor --weight-decay --zloss --clip \
        --eval-every --eval-batches --save-every --keep --stop-after --sample-every --poison --seed --peak-gflops --threads
    check "$bin sample --help: every option and default" documented sample -m --tokenizer --prompt -n --temperature --top-k --top-p --seed
    check "$bin eval --help: every option and default" documented eval -m --data -B -T --batches --task --task-tokens --tokenizer
    check "$bin make-task --help: every option and default" documented make-task --from -o --items --choices --seed
    check "$bin score --help: every option and default" documented score -m --dump
    check "$bin plot --help: every option and default" documented plot -o
    check "$bin info --help: presets listed" grep -q "nano tiny small" <<< "$($bin info --help)"
    expect_error "$bin: help for an unknown command" "help: unknown command 'fly'" $bin help fly
    expect_error "$bin: sample, unknown option" "sample: unknown option '--frobnicate' \(see falcon sample --help\)" $bin sample --frobnicate 1
    expect_error "$bin: eval, unknown option" "eval: unknown option '--frobnicate'" $bin eval --frobnicate 1
    expect_error "$bin: make-task, option without value" "make-task: option --items needs a value" $bin make-task --items
    expect_error "$bin: score, unknown argument" "score: unknown argument '--frobnicate'" $bin score --frobnicate
    # no command: the whole help on stdout (nothing on stderr) and status 1, as git does
    none=$($bin 2> "$tmp/none.err"); rc=$?
    check "$bin alone: the help of falcon --help on stdout, status 1 (got $rc), nothing on stderr" \
        test "$none" = "$all" -a $rc -eq 1 -a ! -s "$tmp/none.err"
    expect_error "$bin: unknown command" "unknown command 'fly'" $bin fly
    expect_error "$bin: train without data" "--data DIR" $bin train --steps 1
    expect_error "$bin: bad batch size" "option -B: 'zero' is not a positive integer" $bin train -B zero
    expect_error "$bin: data directory without shards" "no train\*.bin or mix_\*.bin shards" $bin train --data "$tmp"
done
summary
