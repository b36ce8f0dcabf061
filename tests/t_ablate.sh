#!/usr/bin/env bash
# The ablation runner (tools/ablate.sh) on a seconds-long grid: the table and the chart are well-formed, every
# number parses and agrees with the runs' own results, parameter budgets match, a rerun trains nothing, and a
# variant that falcon.c refuses is reported as skipped (with a stand-in falcon that refuses ALiBi, so that this
# test does not depend on which switches falcon.c has).
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

out=$(sh tools/ablate.sh --smoke --axes zloss --seeds 2 --jobs 2 --out "$T/a" 2>&1); rc=$?
check "the smoke grid runs (exit $rc)" test $rc -eq 0
[ $rc -eq 0 ] || printf '%s\n' "$out" | tail -n 5
md=$T/a/results.md svg=$T/a/results.svg
check "results.md and results.svg are written" test -s "$md" -a -s "$svg"

# the table: a header, a separator, one row per variant, every row with the header's number of cells
cols=$(head -n 1 "$md" | awk -F'|' '{ print NF }')
check "the table has 11 columns" test "$cols" -eq 13
check "every table row has as many cells as the header" \
    test "$(awk -F'|' -v c="$cols" '/^\|/ && NF != c' "$md" | wc -l)" -eq 0
check "one row for the default and one for no-zloss" \
    test "$(grep -c '^| - | \*\*default\*\*' "$md")" -eq 1 -a "$(grep -c '^| zloss | \*\*no-zloss\*\*' "$md")" -eq 1

# numbers: mean ± spread of the val loss is the mean and standard deviation of the runs' own results
row_loss() { grep "\*\*$1\*\*" "$md" | awk -F'|' '{ gsub(/ /, "", $6); print $6 }'; }
for v in default no-zloss; do
    cell=$(row_loss $v)
    want=$(cat "$T/a/runs/$v"/seed-*/result | awk '$1 == "val_loss" { x[++n] = $2; s += $2 }
        END { m = s / n; for (i = 1; i <= n; i++) q += (x[i] - m) ^ 2; printf "%.4f±%.4f", m, sqrt(q / (n - 1)) }')
    check "$v: the table's val loss '$cell' is the runs' mean ± sd '$want'" test "$cell" = "$want"
    check "$v: val loss is a number between 0 and 10" \
        awk -v c="$cell" 'BEGIN { split(c, a, "±"); exit !(a[1] + 0 > 0 && a[1] + 0 < 10 && a[1] ~ /^[0-9]+\.[0-9]+$/) }'
    check "$v: accuracy parses as a percentage" \
        sh -c "grep '\*\*$v\*\*' '$md' | awk -F'|' '{ split(\$8, a, \"±\"); exit !(a[1] ~ /^ *[0-9]+\.[0-9] *\$/ && a[1] + 0 <= 100) }'"
    check "$v: 2 seeds finished" test "$(ls "$T/a/runs/$v"/seed-*/result | wc -l)" -eq 2
done
check "every run's result has acc and acc_norm, read from falcon eval's output" \
    test "$(cat "$T"/a/runs/*/seed-*/result | awk '($1 == "acc" || $1 == "acc_norm") && $2 ~ /^[01]\.[0-9]+$/' | wc -l)" -eq 8
check "the two variants have the same parameter count" \
    test "$(awk '$1 == "params" { print $2 }' "$T"/a/runs/*/seed-1/result | sort -u | wc -l)" -eq 1
check "no-zloss has a delta against the default (signed, or an unsigned zero)" \
    sh -c "grep '\*\*no-zloss\*\*' '$md' | awk -F'|' '{ exit !(\$7 ~ /^ *([-+][0-9]+\.[0-9]+|0\.0+) *\$/) }'"

# a difference that rounds to zero is "0.0", never "-0.0": the report alone, on made-up results (accuracies 0.9049
# against the default's 0.9050, and 0.9056: -0.01 and +0.06 points; equal val losses)
printf 'default|-|the default|-|\nlower|zloss|a hair lower|-|\nhigher|zloss|a hair higher|-|\n' > "$T/v.txt"
printf '%s\t%s\t%s\t%s\t%s\t100\t5\n' default 1 1.5 0.905 0.9 default 2 1.6 0.905 0.9 lower 1 1.5 0.9049 0.9 \
    lower 2 1.6 0.9049 0.9 higher 1 1.55 0.9056 0.9 higher 2 1.55 0.9056 0.9 > "$T/r.tsv"
awk -F'\t' -v md="$T/zero.md" -v svg="$T/zero.svg" -v steps=1 -v B=1 -v T=1 -v model=m -v seeds=2 \
    -f tools/ablate_report.awk "$T/v.txt" "$T/r.tsv"
cells() { grep "\*\*$1\*\*" "$T/zero.md" | awk -F'|' '{ gsub(/ /, ""); print $7 "|" $9 }'; }
check "a delta that rounds to zero has no sign: '$(cells lower)'" test "$(cells lower)" = "0.0000|0.0"
check "other deltas keep theirs: '$(cells higher)'" test "$(cells higher)" = "0.0000|+0.1"
check "no cell of the report is -0" test "$(grep -c -- '| -0\.0* |' "$T/zero.md")" -eq 0

# the chart: well-formed XML (every element closed), one dot per variant and panel, coordinates are numbers
check "the chart starts with <svg and ends with </svg>" sh -c "head -c 4 '$svg' | grep -q '<svg' && tail -n 1 '$svg' | grep -q '^</svg>$'"
check "the chart has 4 dots (2 variants x 2 panels)" test "$(grep -c '<circle' "$svg")" -eq 4
check "every opened text/circle element is closed" \
    test "$(grep -o '<text\|<circle' "$svg" | wc -l)" -eq "$(grep -o '</text>\|</circle>' "$svg" | wc -l)"
check "every coordinate is a finite number" \
    test "$(grep -o ' c\?[xy][12]\?="[^"]*"' "$svg" | grep -vc '="-\?[0-9][0-9.]*"')" -eq 0
if command -v xmllint > /dev/null; then check "xmllint parses the chart" xmllint --noout "$svg"; fi

# --report writes the table again from the finished runs, trains nothing, and needs no lock
mkdir "$T/a/lock"
rm "$T/a/results.md"
check "--report rewrites the table while a runner holds the lock" sh tools/ablate.sh --smoke --axes zloss --seeds 2 --out "$T/a" --report
check "... with the same rows" test "$(grep -c "^| [a-z-]* | \*\*" "$T/a/results.md")" -eq 2
rmdir "$T/a/lock"
# a rerun reuses every finished run
out=$(sh tools/ablate.sh --smoke --axes zloss --seeds 2 --jobs 2 --out "$T/a" 2>&1)
check "a rerun has nothing to train" sh -c "printf '%s\n' \"\$1\" | grep -q ', 0 runs to do'" _ "$out"
expect_error "other settings into the same --out are refused" "holds runs made with other settings" \
    sh tools/ablate.sh --smoke --steps 3 --axes zloss --out "$T/a"
expect_error "an unknown axis is refused" "unknown axis 'colour'" sh tools/ablate.sh --smoke --axes colour --out "$T/b"
expect_error "a malformed --shape is refused" "--shape: expected" sh tools/ablate.sh --smoke --shape "C=64 L=two" --out "$T/b"
mkdir "$T/a/lock"
expect_error "a second runner in the same --out is refused" "lock exists: another tools/ablate.sh is running there" \
    sh tools/ablate.sh --smoke --axes zloss --seeds 2 --out "$T/a"
rmdir "$T/a/lock"

# a variant that falcon.c refuses is skipped, said so, and the table says it too
mkdir -p "$T/fake"
ln -s "$PWD/data" "$T/fake/data"; ln -s "$PWD/tokenizer" "$T/fake/tokenizer"
cat > "$T/fake/falcon" <<EOF
#!/bin/sh
if [ "\$1" = info ] && grep -q '"alibi": true' "\$2/config.json" 2>/dev/null; then
    echo "falcon: \$2/config.json: \"alibi\": true is not supported (falcon.c uses RoPE)" >&2; exit 1
fi
exec "$PWD/falcon" "\$@"
EOF
chmod +x "$T/fake/falcon"
out=$(sh tools/ablate.sh --smoke --axes position --seeds 1 --falcon "$T/fake/falcon" --out "$T/a" 2>&1); rc=$?
check "a refused variant does not fail the grid (exit $rc)" test $rc -eq 0
check "the runner says: skipped: falcon.c does not support ALiBi" \
    sh -c "printf '%s\n' \"\$1\" | grep -q 'alibi: skipped: falcon.c does not support ALiBi'" _ "$out"
check "the table's alibi row says skipped" grep -q '^| position | alibi | | 0 | skipped: falcon.c does not support ALiBi' "$T/a/results.md"
summary
