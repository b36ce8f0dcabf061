#!/bin/sh
# KV-cache decoding against the memory-bandwidth bound, on 1 and 2 threads (bench/bench_sample_cpu.c explains
# the bound). The bandwidth is bench/peak.c's read bandwidth, measured in the same run just before.
#     bench/bench_sample_cpu.sh [TOKENS] [RUNS]
set -e
cd "$(dirname "$0")/.."
CC=${CC:-cc}
FLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd -fno-math-errno -O3 -march=native -fopenmp"
mkdir -p build
$CC $FLAGS -ffp-contract=fast -o build/peak bench/peak.c
$CC $FLAGS -o build/bench_sample_cpu bench/bench_sample_cpu.c data.c tokenizer.c json.c -lm
for threads in 1 2; do
    if [ "$threads" = 1 ]; then key=read_gbs_1thread; else key=read_gbs_${threads}threads; fi
    gbs=$(OMP_NUM_THREADS=$threads build/peak 3 | awk -v k="$key" '$1 == k { print $2 }')
    echo "threads $threads read_gbs $gbs $(build/bench_sample_cpu "$gbs" "$threads" "${1:-32}" "${2:-3}")"
done
