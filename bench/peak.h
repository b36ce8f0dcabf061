// Timing helpers shared by bench/peak.c and the CPU benchmarks of falcon.c (bench_train_cpu, bench_sample_cpu).
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H
#include <time.h>

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// qsort order for doubles, for medians.
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
#endif
