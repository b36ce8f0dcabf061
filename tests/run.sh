#!/usr/bin/env bash
# Runs every test program and script given as arguments, and adds up their closing
# "N passed, N failed" lines. A test that crashes or prints no such line counts as one failure.
set -u
passed=0
failed=0
for t in "$@"; do
    echo "=== $t"
    out=$(mktemp)
    case "$t" in
        *.sh) bash "$t" 2>&1 | tee "$out" ;;
        *)    "$t" 2>&1 | tee "$out" ;;
    esac
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "FAIL - $t exited with status $rc and printed no summary"
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL - $t exited with status $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
