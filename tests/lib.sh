# Shared helpers for the shell tests. Source it, call check/expect_error, end with summary.
PASS=0
FAIL=0
unset FALCON_PROGRESS   # the progress lines of the long steps (progress.h) stay off unless a test asks for them
ok()  { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# check DESC CMD...: passes when CMD exits 0.
check() {
    desc=$1; shift
    if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# expect_error DESC PATTERN CMD...: CMD must exit non-zero, print exactly one line on stderr,
# that line must match the extended regex PATTERN, and it must not be killed by a signal or a sanitizer.
expect_error() {
    desc=$1; pat=$2; shift 2
    err=$("$@" 2>&1 >/dev/null); rc=$?
    nl=$(printf '%s\n' "$err" | grep -c .)
    if [ $rc -eq 0 ]; then bad "$desc: exit 0, expected an error"
    elif [ $rc -ge 128 ]; then bad "$desc: killed by signal $((rc - 128))"
    elif [ "$nl" -ne 1 ]; then bad "$desc: expected one line on stderr, got $nl: $err"
    elif ! printf '%s\n' "$err" | grep -Eq -- "$pat"; then bad "$desc: '$err' does not match /$pat/"
    else ok "$desc ($err)"
    fi
}

summary() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
