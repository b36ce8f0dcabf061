#!/bin/sh
# Which of two versions of falcon.c trains faster, measured step for step in one process (bench/ab_train.c).
#     bench/ab_train.sh REV_A REV_B [PRESET B T PAIRS THREADS]
# REV is a git revision, or "." for the working tree. Defaults: small 4 512 6 1.
set -e
[ $# -ge 2 ] || { echo "usage: bench/ab_train.sh REV_A REV_B [PRESET B T PAIRS THREADS]" >&2; exit 1; }
cd "$(dirname "$0")/.."
CC=${CC:-cc}
FLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd -fno-math-errno -O3 -march=native -fopenmp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
i=0
for rev in "$1" "$2"; do
    i=$((i + 1))
    src=$work/src$i
    mkdir -p "$src"
    if [ "$rev" = . ]; then
        cp ./*.c ./*.h "$src"/ && mkdir -p "$src/bench" && cp bench/*.c bench/*.h "$src/bench"/
    else
        git archive "$rev" | tar -x -C "$src"
    fi
    cp bench/ab_train.c bench/bench_run.h "$src/bench/"  # the same harness for both, whatever the revision holds
    (cd "$src" && $CC $FLAGS -fPIC -shared -fvisibility=hidden -DAB_LIB -o "$work/lib$i.so" bench/ab_train.c \
        data.c tokenizer.c json.c -lm)
done
$CC $FLAGS -o "$work/ab_train" bench/ab_train.c -ldl
echo "A = $1, B = $2"
"$work/ab_train" "$work/lib1.so" "$work/lib2.so" "${3:-small}" "${4:-4}" "${5:-512}" "${6:-6}" "${7:-1}"
