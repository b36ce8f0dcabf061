// peak: what this machine can do at most, the yardstick for bench/bench_train_cpu.py and bench_sample_cpu.
//
//     cc -O3 -march=native -fopenmp -o build/peak bench/peak.c && build/peak [RUNS]
//
// FMA peak: each thread runs ACC independent chains of vector fused multiply-adds (acc = acc * m + a), enough
// chains to cover the FMA latency on every FMA port, so the loop runs at the FMA throughput bound. A vector FMA
// of W floats is 2 W FLOPs. Measured on one thread and on all threads.
// Memory bandwidth: all threads sum a 1 GiB array (read only, as the decoder reads weights and cache), and one
// thread alone. The median of RUNS runs of each is printed.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "peak.h"
#ifdef _OPENMP
#include <omp.h>
#endif

// ACC independent chains per thread: FMA latency 4 x 2 ports needs 8, more leave margin, but the chains and the two
// constants must fit the vector registers (32 with AVX-512, 16 with AVX/AVX2), or the compiler spills accumulators
// to the stack and the loop measures loads and stores instead (16 chains under AVX2 read 50 GFLOP/s here, 12 read 72).
#if defined(__AVX512F__)
#define W 16
#define ACC 16
#elif defined(__AVX__)
#define W 8
#define ACC 12
#else
#define W 4
#define ACC 12
#endif
typedef float vec __attribute__((vector_size(W * sizeof(float))));

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// iters x ACC vector FMAs on one thread; returns a value that depends on every result so nothing is optimised out.
static float fma_chains(long iters, float seed) {
    vec acc[ACC], m, a;
    for (int j = 0; j < ACC; j++) acc[j] = (vec){0} + seed * (float)j;
    m = (vec){0} + 0.999999f;
    a = (vec){0} + 1e-7f;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < ACC; j++) acc[j] = acc[j] * m + a;
    float s = 0.0f;
    for (int j = 0; j < ACC; j++)
        for (int k = 0; k < W; k++) s += acc[j][k];
    return s;
}

// GFLOP/s of `threads` threads each running the FMA loop.
static double fma_gflops(int threads) {
    long iters = 20000000;
    volatile float sink = 0.0f;
    double t0 = bench_now();
    #pragma omp parallel for num_threads(threads) reduction(+ : sink)
    for (int t = 0; t < threads; t++) sink += fma_chains(iters, 1.0f + (float)t);
    double dt = bench_now() - t0;
    return 2.0 * W * ACC * (double)iters * threads / dt / 1e9;
}

// GB/s of `threads` threads reading n floats.
static double read_gbs(const float *x, size_t n, int threads) {
    double t0 = bench_now();
    float s = 0.0f;
    #pragma omp parallel for simd num_threads(threads) reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += x[i];
    double dt = bench_now() - t0;
    volatile float sink = s;
    (void)sink;
    return (double)n * sizeof(float) / dt / 1e9;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5, nt = max_threads();
    if (runs < 1 || runs > 100) { fprintf(stderr, "peak: RUNS must be in [1, 100]\n"); return 2; }
    size_t n = (size_t)1 << 28;  // 1 GiB of floats
    float *x = malloc(n * sizeof(float));
    if (!x) { fprintf(stderr, "peak: out of memory\n"); return 1; }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = (float)(i & 1023);
    double f1[100], fa[100], b1[100], ba[100];
    for (int r = 0; r < runs; r++) {
        f1[r] = fma_gflops(1);
        fa[r] = fma_gflops(nt);
        b1[r] = read_gbs(x, n, 1);
        ba[r] = read_gbs(x, n, nt);
    }
    qsort(f1, runs, sizeof(double), cmp_double);
    qsort(fa, runs, sizeof(double), cmp_double);
    qsort(b1, runs, sizeof(double), cmp_double);
    qsort(ba, runs, sizeof(double), cmp_double);
    printf("vector width %d floats, %d threads, median of %d runs\n", W, nt, runs);
    printf("fma_gflops_1thread %.1f\n", f1[runs / 2]);
    printf("fma_gflops_%dthreads %.1f\n", nt, fa[runs / 2]);
    printf("read_gbs_1thread %.1f\n", b1[runs / 2]);
    printf("read_gbs_%dthreads %.1f\n", nt, ba[runs / 2]);
    free(x);
    return 0;
}
