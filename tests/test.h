// Minimal test harness for the C tests: CHECK prints one "ok"/"FAIL" line per assertion,
// test_summary() prints the closing "N passed, N failed" line that tests/run.sh adds up.
#ifndef FALCON_TEST_H
#define FALCON_TEST_H
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

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
#endif
