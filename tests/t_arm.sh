#!/usr/bin/env bash
# The Arm build, under qemu-user: falcon.c's NEON kernels against their references, the model against the HF
# references, the tokenizer and data tests, and the synthetic corpora byte for byte against this machine's (the
# same seed must make the same corpus everywhere, or every number made from it moves). The binaries are built by
# the Makefile (build/arm/) where an aarch64 cross compiler and qemu-aarch64 are installed.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
A=build/arm
if [ ! -x $A/test_kernels ]; then
    echo "skipped: no Arm build (apt-get install gcc-aarch64-linux-gnu qemu-user, then make test; or this is an Arm machine)"
    summary
    exit $?
fi
run() { qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the four programs at once (qemu runs each on one core); each one's checks count as this script's: its FAIL lines
# and its closing counts
progs="test_kernels test_falcon test_tokenizer test_data"
for t in $progs; do
    (run $A/$t > "$tmp/$t.log" 2>&1; echo $? > "$tmp/$t.rc") &
done
wait
for t in $progs; do
    rc=$(cat "$tmp/$t.rc")
    grep -E '^(# vector kernels|FAIL)' "$tmp/$t.log" | sed "s/^/arm $t: /"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/$t.log" | tail -n 1)
    if [ -z "$line" ]; then bad "arm $t: exited with status $rc and printed no summary"; continue; fi
    p=${line%% passed*}
    f=${line#*passed, }; f=${f%% failed*}
    PASS=$((PASS + p)); FAIL=$((FAIL + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then bad "arm $t: exited with status $rc"; fi
done
grep -q '^# vector kernels: Arm NEON' "$tmp/test_kernels.log" && ok "the Arm build runs the NEON kernels" ||
    bad "the Arm build does not run the NEON kernels: $(head -n 1 "$tmp/test_kernels.log")"

for args in "--docs 400" "--edge 300" "--kind code --docs 100" "--kind second-language --docs 100" "--trees 60" \
            "--trees 30 --nested"; do
    ./data synth $args --seed 5 -o "$tmp/here.jsonl" 2>/dev/null
    run $A/data synth $args --seed 5 -o "$tmp/arm.jsonl" 2>/dev/null
    if [ -s "$tmp/here.jsonl" ] && cmp -s "$tmp/here.jsonl" "$tmp/arm.jsonl"; then
        ok "data synth $args: the same bytes on Arm ($(wc -c < "$tmp/here.jsonl") bytes)"
    else
        bad "data synth $args: Arm makes another corpus ($(cmp "$tmp/here.jsonl" "$tmp/arm.jsonl" 2>&1 | head -n 1))"
    fi
done
summary
