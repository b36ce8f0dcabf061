#!/bin/sh
# tools/ablate.sh: settle design questions on small models, the way the Falcon paper does (section 4 of "The
# Falcon Series of Open Language Models", 2023): train a grid of small models, one axis at a time around the
# Falcon default, with the same parameter budget, the same token budget and several seeds; judge them by
# validation loss on one common validation set and by zero-shot multiple-choice accuracy; write a Markdown table
# (mean ± spread per variant, delta against the default) and an SVG chart. docs/ablation.md explains it all.
#
#   tools/ablate.sh --quick                 the quick grid (about 30 minutes on 2 quiet cores)
#   tools/ablate.sh                         the full grid (see docs/ablation.md for its run time)
#   tools/ablate.sh --axes position,mlp --seeds 2 --out runs/mine
#
# POSIX shell and awk only. Finished runs are kept: a rerun with the same settings reuses them and trains only
# what is missing (a variant whose switch falcon.c has gained since, a seed added with --seeds).
set -eu

usage() {
    cat <<'EOF'
usage: tools/ablate.sh [options]
  --quick           the quick grid: a 0.5M-parameter model, 200 steps, 3 seeds (about 30 min on 2 cores)
  --smoke           a seconds-long grid for the test suite (tiny corpus, tiny model, a few steps)
  --report          only write the table and the chart from the runs finished so far
  --seeds N         seeds per variant [quick 3, full 5]
  --steps N         optimizer steps per run [quick 200, full 2000]
  --tokens N        token budget per run instead of --steps (steps = N / (batch x sequence))
  --out DIR         where everything goes [runs/ablate-quick or runs/ablate]
  --data DIR        given shards (train*.bin, val*.bin, tokenizer.json) instead of the synthetic corpus;
                    the data axes are then skipped
  --task FILE       zero-shot task (JSONL, see docs/training.md) [made from held-out synthetic documents]
  --axes LIST       comma-separated subset of: attention,position,mlp,block,bias,zloss,data,code,language [all]
  --jobs N          runs at once [number of cores]
  --falcon PATH     the falcon binary [./falcon]; ./data and ./tokenizer are taken from beside it
  --trainer PATH    the binary that trains (e.g. ./falcon_cuda on a GPU node) [the --falcon binary]
  --shape "C=.. L=.. NH=.. FF=.."   model width, layers, heads, MLP size [quick: C=96 L=3 NH=4 FF=384;
                    full: C=128 L=4 NH=4 FF=512, the nano preset]
  --batch N --seq N --lr X --docs N   batch, sequence length, peak learning rate, synthetic web documents
EOF
}

die() { echo "ablate: $*" >&2; exit 1; }
say() { echo "ablate: $*"; }

SELF=$0

# ------------------------------------------------------------------------------------------------------------
# One run (called through xargs, several at once): trains variant $1 with seed $2, evaluates it and writes
# runs/NAME/seed-S/result atomically. Reads the settings that the main invocation wrote.
if [ "${1:-}" = "--one" ]; then
    OUT=$2 name=$3 seed=$4
    . "$OUT/settings"
    TRAINER=${TRAINER:-$FALCON}
    v="$OUT/variants/$name"
    r="$OUT/runs/$name/seed-$seed"
    [ -f "$r/result" ] && exit 0
    rm -rf "$r" && mkdir -p "$r"
    . "$v/plan"
    # eval has no --threads: OpenMP threads that outnumber the cores spin against each other
    OMP_NUM_THREADS=$THREADS; export OMP_NUM_THREADS
    t0=$(date +%s)
    if ! "$TRAINER" train --data "$plan_data" --model "$v/config.json" --tokenizer "$TOK" --out "$r/run" \
        -B "$B" -T "$T" --steps "$STEPS" --warmup "$WARMUP" --lr "$LR" --zloss "$plan_zloss" --seed "$seed" \
        --eval-every "$STEPS" --eval-batches 2 --save-every "$STEPS" --keep 1 --threads "$THREADS" \
        > "$r/train.log" 2>&1; then
        echo "ablate: $name seed $seed: training failed, see $r/train.log" >&2
        tail -n 3 "$r/train.log" >&2
        exit 1
    fi
    t1=$(date +%s)
    evalargs="--data $VAL -T $T --batches 100000"
    [ -n "$TASK" ] && evalargs="$evalargs --task $TASK"
    # shellcheck disable=SC2086  # evalargs holds paths made by this script (no spaces: checked at the start)
    if ! "$FALCON" eval -m "$r/run/latest" --tokenizer "$TOK" $evalargs > "$r/eval.log" 2>&1; then
        echo "ablate: $name seed $seed: evaluation failed, see $r/eval.log" >&2
        exit 1
    fi
    awk -v params="$plan_params" -v secs=$((t1 - t0)) '
        /^val loss / { loss = $3 }
        / items, acc / { for (i = 1; i <= NF; i++) { if ($i == "acc") acc = $(i + 1); if ($i == "acc_norm") an = $(i + 1) }
                        sub(/,$/, "", acc) }
        END { if (loss == "") exit 1
              printf "val_loss %s\nacc %s\nacc_norm %s\nparams %s\nseconds %s\n", loss, acc == "" ? "-" : acc,
                     an == "" ? "-" : an, params, secs }' "$r/eval.log" > "$r/result.tmp" ||
        { echo "ablate: $name seed $seed: no val loss in $r/eval.log" >&2; exit 1; }
    mv "$r/result.tmp" "$r/result"
    echo "ablate: $name seed $seed: $(tr '\n' ' ' < "$r/result")"
    exit 0
fi

# ------------------------------------------------------------------------------------------------------------
# Options and settings.
QUICK=0 SMOKE=0 REPORT=0 SEEDS='' STEPS='' TOKENS='' OUT='' GIVEN='' TASK='' AXES=all JOBS='' FALCON=./falcon
TRAINER='' O_SHAPE='' O_B='' O_T='' O_LR='' O_DOCS=''
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --smoke) SMOKE=1 ;;
    --report) REPORT=1 ;;
    --seeds|--steps|--tokens|--out|--data|--task|--axes|--jobs|--falcon|--trainer|--shape|--batch|--seq|--lr|--docs)
        [ $# -ge 2 ] || die "option $1 needs a value"
        case $1 in
        --seeds) SEEDS=$2 ;; --steps) STEPS=$2 ;; --tokens) TOKENS=$2 ;; --out) OUT=$2 ;; --data) GIVEN=$2 ;;
        --task) TASK=$2 ;; --axes) AXES=$2 ;; --jobs) JOBS=$2 ;; --falcon) FALCON=$2 ;;
        --trainer) TRAINER=$2 ;; --shape) O_SHAPE=$2 ;; --batch) O_B=$2 ;; --seq) O_T=$2 ;; --lr) O_LR=$2 ;; --docs) O_DOCS=$2 ;;
        esac
        shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (tools/ablate.sh --help lists them)" ;;
    esac
    shift
done
for n in "$SEEDS" "$STEPS" "$TOKENS" "$JOBS" "$O_B" "$O_T" "$O_DOCS"; do
    case $n in ''|*[!0-9]*) [ -z "$n" ] || die "'$n' is not a positive integer" ;; 0) die "'$n' is not a positive integer" ;; esac
done
BIN=$(dirname "$FALCON")
DATABIN=$BIN/data TOKBIN=$BIN/tokenizer
for b in "$FALCON" "$DATABIN" "$TOKBIN"; do [ -x "$b" ] || die "$b: not found (run make first)"; done

# The grid's shape. The model is the nano preset's family (Falcon-7B layout: parallel attention and MLP, one
# LayerNorm, multi-query attention, RoPE, GELU, no biases), smaller for --quick.
if [ $SMOKE = 1 ]; then
    MODEL="C=32 L=1 NH=2 FF=128" B=4 T=32 DEF_STEPS=6 DEF_SEEDS=1 WARMUP=2 LR=3e-3
    DOCS=240 SIDE_DOCS=40 HELD=80 ITEMS=20 VOCAB=512 DEF_OUT=runs/ablate-smoke
elif [ $QUICK = 1 ]; then
    MODEL="C=96 L=3 NH=4 FF=384" B=16 T=128 DEF_STEPS=200 DEF_SEEDS=3 WARMUP=20 LR=3e-3
    DOCS=3000 SIDE_DOCS=400 HELD=400 ITEMS=300 VOCAB=4096 DEF_OUT=runs/ablate-quick
else
    MODEL="C=128 L=4 NH=4 FF=512" B=16 T=256 DEF_STEPS=2000 DEF_SEEDS=5 WARMUP=50 LR=3e-3
    DOCS=40000 SIDE_DOCS=5000 HELD=2000 ITEMS=1000 VOCAB=8192 DEF_OUT=runs/ablate
fi
if [ -n "$O_SHAPE" ]; then
    echo "$O_SHAPE" | grep -Eqx 'C=[1-9][0-9]* L=[1-9][0-9]* NH=[1-9][0-9]* FF=[1-9][0-9]*' ||
        die "--shape: expected \"C=.. L=.. NH=.. FF=..\" (positive integers, in that order): $O_SHAPE"
    MODEL=$O_SHAPE
fi
B=${O_B:-$B} T=${O_T:-$T} LR=${O_LR:-$LR} DOCS=${O_DOCS:-$DOCS}
echo "$LR" | grep -Eqx '[0-9]+(\.[0-9]*)?([eE]-?[0-9]+)?' || die "--lr: not a number: $LR"
eval "$MODEL"
SEEDS=${SEEDS:-$DEF_SEEDS}
if [ -n "$TOKENS" ]; then STEPS=$(( (TOKENS + B * T - 1) / (B * T) )); fi
STEPS=${STEPS:-$DEF_STEPS}
OUT=${OUT:-$DEF_OUT}
JOBS=${JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
CORES=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
THREADS=$(( CORES / JOBS )); [ $THREADS -ge 1 ] || THREADS=1
TRAINER=${TRAINER:-$FALCON}
[ -x "$TRAINER" ] || die "$TRAINER: not found"
case "$OUT$GIVEN$TASK$FALCON$TRAINER" in *[[:space:]]*) die "paths with spaces are not supported" ;; esac
[ "$AXES" = all ] && AXES=attention,position,mlp,block,bias,zloss,data,code,language
for a in $(echo "$AXES" | tr ',' ' '); do
    case $a in attention|position|mlp|block|bias|zloss|data|code|language) ;;
    *) die "--axes: unknown axis '$a' (attention, position, mlp, block, bias, zloss, data, code, language)" ;; esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# one invocation at a time per directory: two would train the same runs and overwrite each other's files
if [ $REPORT = 0 ]; then
    mkdir "$OUT/lock" 2>/dev/null ||
        die "$OUT/lock exists: another tools/ablate.sh is running there (if none is, remove that directory)"
    trap 'rmdir "$OUT/lock"' EXIT
    trap 'exit 130' INT TERM
fi
D=$OUT/data

# The settings a finished run depends on. A rerun into the same --out must agree, or its results would mix.
key="model $MODEL B=$B T=$T steps=$STEPS warmup=$WARMUP lr=$LR docs=$DOCS side=$SIDE_DOCS held=$HELD data=${GIVEN:-synthetic} task=${TASK:-made}"
if [ -f "$OUT/key" ] && [ "$(cat "$OUT/key")" != "$key" ]; then
    die "$OUT holds runs made with other settings ($(cat "$OUT/key")); use another --out or remove it"
fi
echo "$key" > "$OUT/key"

planned='' skipnames='' failed=0
if [ $REPORT = 1 ]; then
    # only the table and the chart, from the runs finished so far (also while another runner is training)
    [ -f "$OUT/variants.txt" ] || die "$OUT: nothing planned yet"
    while IFS='|' read -r name axis _ _ _; do
        case ",$AXES," in *",$axis,"*) ;; *) [ "$axis" = - ] || continue ;; esac
        if [ -f "$OUT/variants/$name/plan" ]; then planned="$planned $name"
        elif [ -f "$OUT/variants/$name/skipped" ]; then skipnames="$skipnames $name"; fi
    done < "$OUT/variants.txt"
else

# ------------------------------------------------------------------------------------------------------------
# Data, made once: a synthetic web corpus and its refinements (raw / refined / refined+deduplicated), code-like
# and second-language documents mixed in at 5 and 10%, one held-out validation set (refined, from another seed)
# and one zero-shot task made from held-out documents. A step whose output exists is skipped.
step() { # step NAME CMD...: runs CMD unless NAME is done; its output goes to data/NAME.log
    s=$1; shift
    [ -f "$D/$s.done" ] && return 0
    say "data: $s"
    "$@" > "$D/$s.log" 2>&1 || { tail -n 5 "$D/$s.log" >&2; die "data step $s failed (log: $D/$s.log)"; }
    touch "$D/$s.done"
}
ALLSTAGES="--no-url_filter --no-repetition --no-quality --no-linewise --no-minhash --no-url_dedup --no-exact_substring"
prepare() { # prepare NAME INPUT FLAGS...: shards in data/NAME, with the shared tokenizer
    n=$1 in=$2; shift 2
    rm -rf "${D:?}/$n"
    "$DATABIN" prepare --tokenizer "$TOK" --out "$D/$n" "$@" "$in"
}
mix() { # mix NAME OTHER PERCENT: the refined+deduplicated web with PERCENT% of OTHER's documents
    n=$1 other=$2 pct=$3
    rm -rf "${D:?}/$n"
    web_tokens=$("$DATABIN" info "$D"/dedup/train_*.bin | awk '{ s += $2 } END { print s }')
    "$DATABIN" mix --out "$D/$n" --tokens "$web_tokens" --seed 1 \
        "web=$((100 - pct))=$D/dedup" "$other=$pct=$D/$other"
    for f in "$D/$n"/mix_*.bin; do mv "$f" "$D/$n/train_${f##*/mix_}"; done
}
mkdir -p "$D"
if [ -n "$GIVEN" ]; then
    [ -d "$GIVEN" ] || die "--data $GIVEN: not a directory"
    GIVEN=$(cd "$GIVEN" && pwd)
    TOK=$GIVEN/tokenizer.json VAL=$GIVEN
    [ -f "$TOK" ] || die "--data $GIVEN: no tokenizer.json"
    ls "$GIVEN"/val*.bin > /dev/null 2>&1 || die "--data $GIVEN: no val*.bin shards (the common validation set)"
else
    TOK=$D/tokenizer.json VAL=$D/val
    step synth-web "$DATABIN" synth --docs "$DOCS" --seed 1 -o "$D/web.jsonl"
    step synth-code "$DATABIN" synth --kind code --docs "$SIDE_DOCS" --seed 1 -o "$D/code.jsonl"
    step synth-language "$DATABIN" synth --kind second-language --docs "$SIDE_DOCS" --seed 1 -o "$D/language.jsonl"
    step synth-heldout "$DATABIN" synth --docs "$HELD" --seed 2 -o "$D/heldout.jsonl"
    # one vocabulary for every variant, learned on everything any variant trains on
    step tokenizer "$TOKBIN" train --vocab-size "$VOCAB" --out "$TOK" "$D/web.jsonl" "$D/code.jsonl" "$D/language.jsonl"
    step prepare-dedup prepare dedup "$D/web.jsonl" --val-frac 0
    step prepare-refined prepare refined "$D/web.jsonl" --val-frac 0 --no-minhash --no-url_dedup --no-exact_substring
    # shellcheck disable=SC2086
    step prepare-raw prepare raw "$D/web.jsonl" --val-frac 0 $ALLSTAGES
    # the other kinds are not web pages: the web filters would drop them (the Spanish pages lack English stop
    # words), so, as in the paper's mixtures, they are mixed in after refinement, not run through it
    # shellcheck disable=SC2086
    step prepare-code prepare code "$D/code.jsonl" --val-frac 0 $ALLSTAGES
    # shellcheck disable=SC2086
    step prepare-language prepare language "$D/language.jsonl" --val-frac 0 $ALLSTAGES
    step prepare-val prepare val "$D/heldout.jsonl" --val-frac 1 --jsonl
    step mix-code5 mix code5 code 5
    step mix-code10 mix code10 code 10
    step mix-language5 mix language5 language 5
    step mix-language10 mix language10 language 10
    if [ -z "$TASK" ]; then
        TASK=$D/task.jsonl
        step task "$FALCON" make-task --from "$D/val/kept.jsonl" --items "$ITEMS" -o "$TASK"
    fi
fi
[ -z "$TASK" ] || [ -f "$TASK" ] || die "--task $TASK: no such file"
[ -z "$TASK" ] || TASK=$(cd "$(dirname "$TASK")" && pwd)/$(basename "$TASK")
V=$("$DATABIN" info "$VAL"/val*.bin | awk '{ for (i = 1; i < NF; i++) if ($i == "vocab") v = $(i + 1); sub(/,/, "", v) } END { print v }')
EOT=$("$DATABIN" info "$VAL"/val*.bin | awk '{ print $NF; exit }')

# ------------------------------------------------------------------------------------------------------------
# The variants: one axis at a time around the default. Fields: name, axis, what changes, the paper's direction
# (section 4 as docs/ablation.md reads it), then the changes: KV heads, multi_query, new_decoder_architecture,
# parallel_attn, bias, alibi, mlp_type, z-loss, data.
VARIANTS='default|-|Falcon default: MQA, RoPE, GELU, parallel, no bias, z-loss, refined+dedup|-|1 true false true false false gelu 1e-4 dedup
gqa|attention|multigroup (GQA), 2 K/V heads|about equal|2 true true true false false gelu 1e-4 dedup
mha|attention|full multi-head attention|about equal (MQA costs little)|NH false false true false false gelu 1e-4 dedup
alibi|position|ALiBi instead of RoPE|slightly worse (RoPE has a small edge)|1 true false true false true gelu 1e-4 dedup
swiglu|mlp|SwiGLU instead of GELU|no clear gain; GELU kept|1 true false true false false swiglu 1e-4 dedup
sequential|block|sequential attention then MLP|about equal (parallel is faster)|1 true false false false false gelu 1e-4 dedup
bias|bias|biases in every linear layer|about equal (removed for stability)|1 true false true true false gelu 1e-4 dedup
no-zloss|zloss|no z-loss|about equal (z-loss is for stability)|1 true false true false false gelu 0 dedup
raw|data|raw web: no refinement|worse|1 true false true false false gelu 1e-4 raw
refined|data|refined web, not deduplicated|worse (deduplication helps)|1 true false true false false gelu 1e-4 refined
code5|code|5% code-like documents|about equal|1 true false true false false gelu 1e-4 code5
code10|code|10% code-like documents|about equal|1 true false true false false gelu 1e-4 code10
language5|language|5% second-language documents|slightly worse on English|1 true false true false false gelu 1e-4 language5
language10|language|10% second-language documents|slightly worse on English|1 true false true false false gelu 1e-4 language10'

# What falcon.c must support for each axis, for the message when it does not.
needs() {
    case $1 in
    attention) echo "full multi-head or grouped attention (multi_query / num_kv_heads)" ;;
    position) echo "ALiBi (\"alibi\": true)" ;; mlp) echo "SwiGLU (\"mlp_type\": \"swiglu\")" ;;
    block) echo "sequential blocks (\"parallel_attn\": false)" ;; bias) echo "biases (\"bias\": true)" ;;
    *) echo "this variant" ;;
    esac
}

write_config() { # write_config DIR KV MQ NDA PAR BIAS ALIBI MLP FF
    nln=""; [ "$4" = true ] && nln=", \"num_ln_in_parallel_attn\": 1"
    mlp=""; [ "$8" = swiglu ] && mlp=", \"mlp_type\": \"swiglu\""
    cat > "$1/config.json" <<EOF
{"model_type": "falcon", "vocab_size": $V, "hidden_size": $C, "num_hidden_layers": $L,
 "num_attention_heads": $NH, "num_kv_heads": $2, "multi_query": $3, "new_decoder_architecture": $4$nln,
 "parallel_attn": $5, "bias": $6, "alibi": $7$mlp, "ffn_hidden_size": $9,
 "max_position_embeddings": $T, "bos_token_id": $EOT, "eos_token_id": $EOT}
EOF
}
params_of() { "$FALCON" info "$1" 2>&1 | awk '/parameters:/ { print $2 }'; }

# Plans every variant of the chosen axes: its config.json, with ffn_hidden_size adjusted so that its parameter
# count matches the default's (full MHA's extra K/V weights, SwiGLU's third matrix), or a skip note.
mkdir -p "$OUT/variants" "$OUT/runs"
P0=''
planned='' skipnames=''
echo "$VARIANTS" > "$OUT/variants.txt"
while IFS='|' read -r name axis _ _ change; do
    case ",$AXES," in *",$axis,"*) ;; *) [ "$axis" = - ] || continue ;; esac
    v=$OUT/variants/$name
    rm -rf "$v" && mkdir -p "$v"
    # shellcheck disable=SC2086  # the changes are words
    set -- $change
    kv=$1; [ "$kv" = NH ] && kv=$NH
    zloss=$8 data=$9
    if [ -n "$GIVEN" ]; then
        case $axis in data|code|language)
            echo "skipped: the data axes need the synthetic corpus (--data was given)" > "$v/skipped"; skipnames="$skipnames $name"; continue ;; esac
        data=$GIVEN
    else
        data=$D/$data
    fi
    ff=$FF
    write_config "$v" "$kv" "$2" "$3" "$4" "$5" "$6" "$7" "$ff"
    if ! err=$("$FALCON" info "$v" 2>&1 >/dev/null); then
        echo "skipped: falcon.c does not support $(needs "$axis"): ${err#*config.json: }" > "$v/skipped"
        say "$name: $(cat "$v/skipped")"
        skipnames="$skipnames $name"
        continue
    fi
    p=$(params_of "$v")
    if [ -z "$P0" ]; then P0=$p; fi
    # K/V heads, a gated MLP and biases all add weights: an unchanged count means the key was ignored
    case $axis in attention|mlp|bias)
        if [ "$p" = "$P0" ]; then
            echo "skipped: falcon.c does not support $(needs "$axis"): it read the config but ignored the key" > "$v/skipped"
            say "$name: $(cat "$v/skipped")"
            skipnames="$skipnames $name"
            continue
        fi ;;
    esac
    # the count is linear in ffn_hidden_size: two points give the size that matches the default
    if [ "$(awk -v p="$p" -v q="$P0" 'BEGIN { d = p - q; print ((d < 0 ? -d : d) > 0.002 * q) }')" = 1 ]; then
        write_config "$v" "$kv" "$2" "$3" "$4" "$5" "$6" "$7" $((ff + 64))
        p2=$(params_of "$v")
        ff=$(awk -v p="$p" -v p2="$p2" -v q="$P0" -v f="$ff" 'BEGIN { x = f + (q - p) * 64 / (p2 - p); x = int(x / 4 + 0.5) * 4; print x < 4 ? 4 : x }')
        write_config "$v" "$kv" "$2" "$3" "$4" "$5" "$6" "$7" "$ff"
        p=$(params_of "$v")
    fi
    off=$(awk -v p="$p" -v q="$P0" 'BEGIN { printf "%.2f", 100 * (p - q) / q }')
    if [ "$(awk -v o="$off" 'BEGIN { print ((o < -2 || o > 2) ? 1 : 0) }')" = 1 ]; then
        die "$name: $p parameters, $off% from the default's $P0 (more than 2%)"
    fi
    printf 'plan_data=%s\nplan_zloss=%s\nplan_params=%s\nplan_ff=%s\n' "$data" "$zloss" "$p" "$ff" > "$v/plan"
    say "$name: $p parameters ($off% against the default), ffn_hidden_size $ff"
    planned="$planned $name"
done <<EOF
$VARIANTS
EOF

cat > "$OUT/settings" <<EOF
FALCON=$(cd "$BIN" && pwd)/$(basename "$FALCON")
TRAINER=$(cd "$(dirname "$TRAINER")" && pwd)/$(basename "$TRAINER")
TOK=$TOK
VAL=$VAL
TASK=$TASK
B=$B
T=$T
STEPS=$STEPS
WARMUP=$WARMUP
LR=$LR
THREADS=$THREADS
EOF

# ------------------------------------------------------------------------------------------------------------
# Training and evaluation: every (variant, seed) not finished yet, $JOBS at a time.
: > "$OUT/jobs"
todo=0
for s in $(seq 1 "$SEEDS"); do
    for name in $planned; do
        if [ ! -f "$OUT/runs/$name/seed-$s/result" ]; then echo "$OUT $name $s" >> "$OUT/jobs"; todo=$((todo + 1)); fi
    done
done
say "$(echo "$planned" | wc -w) variants x $SEEDS seeds, $todo runs to do, $JOBS at a time ($THREADS threads each);" \
    "$STEPS steps of $B x $T tokens each"
failed=0
if [ $todo -gt 0 ]; then
    xargs -n 3 -P "$JOBS" sh "$SELF" --one < "$OUT/jobs" || failed=1
fi

fi

# ------------------------------------------------------------------------------------------------------------
# Results: a table (results.md) and a chart (results.svg) from every finished run.
: > "$OUT/results.tsv"
for name in $planned; do
    for s in $(seq 1 "$SEEDS"); do
        f=$OUT/runs/$name/seed-$s/result
        if [ -f "$f" ]; then awk -v n="$name" -v s="$s" '{ x[$1] = $2 } END { print n "\t" s "\t" x["val_loss"] "\t" x["acc"] "\t" x["acc_norm"] "\t" x["params"] "\t" x["seconds"] }' "$f" >> "$OUT/results.tsv"; fi
    done
done
for v in $skipnames; do printf "%s\tskipped\t%s\n" "$v" "$(cat "$OUT/variants/$v/skipped")"; done >> "$OUT/results.tsv"
awk -F'\t' -v md="$OUT/results.md.tmp" -v svg="$OUT/results.svg.tmp" -v steps="$STEPS" -v B="$B" -v T="$T" \
    -v model="$MODEL" -v seeds="$SEEDS" -f "$(dirname "$SELF")/ablate_report.awk" "$OUT/variants.txt" "$OUT/results.tsv"
mv "$OUT/results.md.tmp" "$OUT/results.md"
mv "$OUT/results.svg.tmp" "$OUT/results.svg"
say "table $OUT/results.md"
say "chart $OUT/results.svg"
[ $failed = 0 ] || die "some runs failed (their logs are under $OUT/runs); rerun to retry them"
