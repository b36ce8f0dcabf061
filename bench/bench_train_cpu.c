// bench_train_cpu: falcon.c's training speed on the CPU, for bench/bench_train_cpu.py (which runs PyTorch beside it).
//
//     bench_train_cpu PRESET B T STEPS [THREADS]
//
// Builds the preset with random weights and trains on random tokens: each step is zero_grad, forward, backward,
// global gradient norm and one AdamW update, what `falcon train` does per micro-batch. The first step is a warm-up
// and not timed. Prints one line per timed step ("step SECONDS") and then
//     tokens_per_s MEDIAN flops_per_token F params P peak_rss_mb M
// with the FLOPs per token of falcon.c's flops_per_token: 6 per parameter plus causal attention, 6 L C T.
// falcon.c is included to reach its internals; the functions this program does not call are no warning here.
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../falcon.c"
#include "peak.h"
#include "bench_run.h"
#include <sys/resource.h>

int main(int argc, char **argv) {
    if (argc < 5) die("usage: bench_train_cpu PRESET B T STEPS [THREADS]");
    size_t B = (size_t)atol(argv[2]), T = (size_t)atol(argv[3]), steps = (size_t)atol(argv[4]);
    if (!B || !T || steps < 1 || steps > 1000) die("B, T must be positive and STEPS in [1, 1000]");
#ifdef _OPENMP
    if (argc > 5) omp_set_num_threads(atoi(argv[5]));
#endif
    BenchRun r;
    if (bench_run_build(&r, argv[1], B, T, steps + 1)) die("unknown preset '%s'", argv[1]);
    double *dt = xmalloc(steps * sizeof(double));
    for (size_t s = 0; s <= steps; s++) {
        double t = bench_run_step(&r);
        if (s > 0) {
            dt[s - 1] = t;
            printf("step %.4f\n", t);
        }
    }
    qsort(dt, steps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("tokens_per_s %.1f flops_per_token %.0f params %zu peak_rss_mb %.0f\n", (double)(B * T) / dt[steps / 2],
           flops_per_token(&r.m, T, 1.0), r.m.num_params, (double)ru.ru_maxrss / 1024.0);
    free(dt);
    bench_run_free(&r);
    return 0;
}
