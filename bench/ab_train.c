// ab_train: two versions of falcon.c trained side by side in one process, step for step, to tell which is faster
// on a machine whose speed wanders (a shared virtual machine here swings by 1.5x from one minute to the next, so
// two programs timed one after the other measure mostly the machine). Each version is built into its own shared
// library from this file with -DAB_LIB; the driver (no -DAB_LIB) loads both and alternates single training steps
// between them in the order A B B A, so that both see the same slow and fast moments, then prints the median step
// of each and their ratio.
//
//     bench/ab_train.sh REV_A REV_B [PRESET B T PAIRS THREADS]    (builds both libraries and runs this)
//     ab_train LIB_A LIB_B PRESET B T PAIRS THREADS
//
// A step is bench/bench_run.h's, the one bench_train_cpu times. Both versions start from the same seed.
#ifdef AB_LIB
// The library: falcon.c and three calls, the only symbols it exports (-fvisibility=hidden hides the rest, so two
// copies never resolve to each other's functions).
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../falcon.c"
#include "peak.h"
#include "bench_run.h"

__attribute__((visibility("default"))) void *ab_build(const char *preset, size_t B, size_t T) {
    BenchRun *r = xcalloc(1, sizeof *r);
    if (bench_run_build(r, preset, B, T, 1000000)) {
        free(r);
        return NULL;
    }
    return r;
}

// One training step; returns its wall time in seconds.
__attribute__((visibility("default"))) double ab_step(void *r) { return bench_run_step(r); }

__attribute__((visibility("default"))) double ab_flops_per_token(void *p) {
    BenchRun *r = p;
    return flops_per_token(&r->m, r->T, 1.0);
}
#else
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "peak.h"
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    void *(*build)(const char *, size_t, size_t);
    double (*step)(void *);
    double (*flops_per_token)(void *);
    void *run;
} AbLib;

static void ab_load(AbLib *l, const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "ab_train: %s\n", dlerror());
        exit(1);
    }
    *(void **)&l->build = dlsym(h, "ab_build");
    *(void **)&l->step = dlsym(h, "ab_step");
    *(void **)&l->flops_per_token = dlsym(h, "ab_flops_per_token");
    if (!l->build || !l->step || !l->flops_per_token) {
        fprintf(stderr, "ab_train: %s: not an ab_train library (built with -DAB_LIB)\n", path);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: ab_train LIB_A LIB_B PRESET B T PAIRS THREADS\n");
        return 1;
    }
    size_t B = (size_t)atol(argv[4]), T = (size_t)atol(argv[5]), pairs = (size_t)atol(argv[6]);
    if (!B || !T || pairs < 1 || pairs > 1000) {
        fprintf(stderr, "ab_train: B and T must be positive and PAIRS in [1, 1000]\n");
        return 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(atoi(argv[7]));
#endif
    AbLib lib[2];
    for (int v = 0; v < 2; v++) {
        ab_load(&lib[v], argv[1 + v]);
        lib[v].run = lib[v].build(argv[3], B, T);
        if (!lib[v].run) {
            fprintf(stderr, "ab_train: %s: unknown preset '%s'\n", argv[1 + v], argv[3]);
            return 1;
        }
        lib[v].step(lib[v].run);  // warm-up, not timed
    }
    double *t[2] = {malloc(pairs * sizeof(double)), malloc(pairs * sizeof(double))}, start = bench_now();
    for (size_t i = 0; i < 2 * pairs; i++) {
        int v = (int)((i ^ (i >> 1)) & 1);  // A B B A A B B A ...
        t[v][i / 2] = lib[v].step(lib[v].run);
    }
    double med[2];
    for (int v = 0; v < 2; v++) {
        qsort(t[v], pairs, sizeof(double), cmp_double);
        med[v] = t[v][pairs / 2];
        printf("%c: median step %.4f s, %.1f tok/s, %.1f GFLOP/s\n", 'A' + v, med[v],
               (double)(B * T) / med[v], lib[v].flops_per_token(lib[v].run) * (double)(B * T) / med[v] / 1e9);
    }
    printf("%s B=%zu T=%zu threads %s, %zu steps each (%.0f s): B is %.3fx as fast as A\n", argv[3], B, T, argv[7],
           pairs, bench_now() - start, med[0] / med[1]);
    free(t[0]);
    free(t[1]);
    return 0;
}
#endif
