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
#include <sys/resource.h>

int main(int argc, char **argv) {
    if (argc < 5) die("usage: bench_train_cpu PRESET B T STEPS [THREADS]");
    const Config *c = preset_find(argv[1]);
    if (!c) die("unknown preset '%s'", argv[1]);
    size_t B = (size_t)atol(argv[2]), T = (size_t)atol(argv[3]), steps = (size_t)atol(argv[4]);
    if (!B || !T || steps < 1 || steps > 1000) die("B, T must be positive and STEPS in [1, 1000]");
#ifdef _OPENMP
    if (argc > 5) omp_set_num_threads(atoi(argv[5]));
#endif
    Config cfg = *c;
    if (T > cfg.maxT) cfg.maxT = T;
    Falcon m;
    falcon_build(&m, &cfg);
    falcon_init(&m, 1, 0.02f);
    AdamW opt = {.lr = 1e-4f, .lr_floor = 0.1f, .warmup = 1, .steps = steps + 1, .beta1 = 0.9f, .beta2 = 0.95f,
                 .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f};
    adamw_build(&opt, m.num_params);
    int *in = xmalloc(B * T * sizeof(int)), *tg = xmalloc(B * T * sizeof(int));
    uint64_t rng = 7;
    for (size_t i = 0; i < B * T; i++) {
        in[i] = (int)(rng_next(&rng) % cfg.V);
        tg[i] = (int)(rng_next(&rng) % cfg.V);
    }
    double *dt = xmalloc(steps * sizeof(double));
    for (size_t s = 0; s <= steps; s++) {
        double t0 = bench_now();
        falcon_zero_grad(&m);
        falcon_forward(&m, in, tg, NULL, NULL, B, T, FWD_BACKWARD);
        falcon_backward(&m, 1.0f);
        adamw_update(&opt, &m, adamw_lr(&opt, s), falcon_grad_norm(&m));
        if (s > 0) {
            dt[s - 1] = bench_now() - t0;
            printf("step %.4f\n", dt[s - 1]);
        }
    }
    qsort(dt, steps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("tokens_per_s %.1f flops_per_token %.0f params %zu peak_rss_mb %.0f\n", (double)(B * T) / dt[steps / 2],
           flops_per_token(&m, T, 1.0), m.num_params, (double)ru.ru_maxrss / 1024.0);
    free(dt); free(in); free(tg);
    adamw_free(&opt);
    falcon_free(&m);
    return 0;
}
