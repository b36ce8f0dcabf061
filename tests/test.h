// Minimal test harness for the C tests: CHECK prints one "ok"/"FAIL" line per assertion,
// test_summary() prints the closing "N passed, N failed" line that tests/run.sh adds up.
#ifndef FALCON_TEST_H
#define FALCON_TEST_H
#include <math.h>
#include <stddef.h>
#include <stdio.h>

static int test_passed = 0;
static int test_failed = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        int ok_ = (cond);                                             \
        if (ok_) test_passed++; else test_failed++;                   \
        printf("%s - ", ok_ ? "ok" : "FAIL");                         \
        printf(__VA_ARGS__);                                          \
        printf("\n");                                                 \
        fflush(stdout);                                               \
    } while (0)

// Largest |a - b| relative to the largest |b| over n values (NaN counts as a difference): how the numerical tests
// compare a tensor with its reference.
static inline double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (x > d || x != x) d = x;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return d / s;
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
#endif
