#!/usr/bin/env bash
# The progress lines of the long steps (progress.h) as the command lines print them: with FALCON_PROGRESS=all
# every bar of `tokenizer train`, `data synth`, `data prepare` and `data mix` is there, parses, never goes back
# and ends at 100% with ETA 0:00; without a terminal nothing extra reaches stderr; on a terminal (a pty from
# `script`) the line is drawn unasked, and FALCON_PROGRESS=0 silences it.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# bars FILE LABEL...: each LABEL's lines in FILE (split at '\r' and '\n', padding cut) must all parse as
#   LABEL  DONE/TOTAL UNIT  PCT%  RATE UNIT/s  M:SS elapsed  ETA M:SS
# with a rate above 0 and the same total; percent and done never fall; the last line is at 100% with
# DONE == TOTAL and ETA 0:00. Checks, too, that no line is left that belongs to no LABEL.
bars() {
    file=$1; shift
    tr '\r' '\n' < "$file" | sed -E 's/ +$//' | grep -v '^$' > "$T/lines"   # a shorter redraw is padded with spaces
    for label in "$@"; do
        grep -E "^$label  [0-9]" "$T/lines" > "$T/bar"
        problem=$(sed -E "s#^$label  ([0-9.]+)/([0-9.]+) ([A-Za-z ]+)  ([0-9]+)%  ([0-9.]+) ([A-Za-z ]+)/s  [0-9]+:[0-5][0-9] elapsed  ETA ([0-9]+:[0-5][0-9])\$#OK \1 \2 \4 \5 \7 \3|\6#" "$T/bar" |
            awk '$1 != "OK" { print "unparsed line: " $0; exit }
                 { split($0, u, "|"); sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ /, "", u[1]) }
                 u[1] != u[2] { print "units differ: " $0; exit }
                 NR > 1 && ($2 + 0 < done || $4 + 0 < pct) { print "went back: " $0; exit }
                 NR > 1 && $3 != total { print "total changed: " $0; exit }
                 $5 + 0 <= 0 { print "rate not above 0: " $0; exit }
                 { done = $2 + 0; total = $3; pct = $4 + 0; last = $0; n = NR }
                 END { if (!n) print "no line";
                       else if (pct != 100 || done != total + 0 || $6 != "0:00") print "does not end at 100% with ETA 0:00: " last }')
        n=$(wc -l < "$T/bar")
        if [ -z "$problem" ]; then ok "$label: $n lines, parse, never go back, end at 100% ($(tail -n 1 "$T/bar"))"
        else bad "$label: $problem"; fi
    done
    pattern=$(printf '^(%s)  [0-9]|' "$@")
    stray=$(grep -Ev "${pattern%|}" "$T/lines" | head -n 1)
    if [ -z "$stray" ]; then ok "no other lines on stderr"; else bad "a line that is no progress line: $stray"; fi
}

# 1. the bars of each long command, forced on
FALCON_PROGRESS=all ./data synth --docs 300 -o "$T/corpus.jsonl" 2> "$T/synth.err"
bars "$T/synth.err" synth
FALCON_PROGRESS=all ./tokenizer train --vocab-size 600 --out "$T/tok.json" "$T/corpus.jsonl" 2> "$T/train.err"
bars "$T/train.err" reading merging
FALCON_PROGRESS=all ./data prepare --tokenizer "$T/tok.json" --val-frac 0.1 --out "$T/data" "$T/corpus.jsonl" \
    > /dev/null 2> "$T/prepare.err"
bars "$T/prepare.err" reading url_filter repetition quality linewise "minhash signatures" "minhash bands" url_dedup \
    tokenise "suffix array" shards
FALCON_PROGRESS=all ./data mix --out "$T/mix" --tokens 20000 a=1=$T/data/train_000.bin b=1=$T/data/val_000.bin \
    > /dev/null 2> "$T/mix.err"
bars "$T/mix.err" mix

# the number of lines a bar draws depends on FALCON_PROGRESS=all drawing at each clock read: many, not one
n=$(tr '\r' '\n' < "$T/train.err" | grep -c '^merging')
check "merging drew a line per merge ($n for 600 - 268 tokens)" test "$n" -ge 300

# 2. not a terminal, nothing asked: stderr stays empty (the one-line errors of the other tests rely on it)
for cmd in "./data synth --docs 300 -o $T/c2.jsonl" "./tokenizer train --vocab-size 600 --out $T/t2.json $T/corpus.jsonl" \
           "./data prepare --tokenizer $T/tok.json --val-frac 0.1 --out $T/d2 $T/corpus.jsonl" \
           "./data mix --out $T/m2 --tokens 20000 a=1=$T/data/train_000.bin"; do
    env -u FALCON_PROGRESS $cmd > /dev/null 2> "$T/quiet.err"
    check "stderr empty without a terminal: ${cmd%% --*}" test ! -s "$T/quiet.err"
done
cmp -s "$T/c2.jsonl" "$T/corpus.jsonl" && cmp -s "$T/t2.json" "$T/tok.json" && cmp -s "$T/d2/train_000.bin" "$T/data/train_000.bin"
check "the progress line changes no output (corpus, tokenizer.json, shards identical)" test $? -eq 0

# 3. on a terminal: drawn without asking, silenced by FALCON_PROGRESS=0
if command -v script > /dev/null; then
    env -u FALCON_PROGRESS script -qec "./tokenizer train --vocab-size 600 --out $T/t3.json $T/corpus.jsonl" /dev/null > "$T/tty.out"
    check "on a terminal the bars are drawn unasked" grep -q 'merging  .*100%' "$T/tty.out"
    FALCON_PROGRESS=0 script -qec "./tokenizer train --vocab-size 600 --out $T/t4.json $T/corpus.jsonl" /dev/null > "$T/tty0.out"
    check "FALCON_PROGRESS=0 silences them on a terminal" test ! -s "$T/tty0.out"
else
    ok "no 'script' here to make a terminal: terminal checks skipped"
fi
summary
