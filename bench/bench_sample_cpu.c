// bench_sample_cpu: falcon.c's KV-cache decoding speed against the memory-bandwidth bound, for
// bench/bench_sample_cpu.sh (which measures the bandwidth with bench/peak.c in the same run).
//
//     bench_sample_cpu GBS [THREADS] [TOKENS] [RUNS]
//
// A model large enough that its weights cannot stay in any cache (C 1024, 16 layers, 16 query heads sharing one
// K/V head as in Falcon-7B, FF 4096, Falcon's 65,024-token vocabulary: 236M parameters, 0.94 GB in fp32) decodes
// TOKENS tokens one at a time after a prompt of as many. Every decoded token must read every weight once (the
// LM head reads the whole embedding matrix) and the cache of all earlier positions:
//     bytes per token = 4 (parameters + 2 L (pos + 1) NKV HS)
// so GBS (the machine's read bandwidth in GB/s with THREADS threads) bounds tokens/s at GBS / bytes per token.
// Prints the median of RUNS runs: tokens/s, the bound and the fraction of it reached.
#pragma GCC diagnostic ignored "-Wunused-function"  // falcon.c is included for its internals
#include "../falcon.c"
#include "peak.h"

int main(int argc, char **argv) {
    if (argc < 2) die("usage: bench_sample_cpu GBS [THREADS] [TOKENS] [RUNS]");
    double gbs = atof(argv[1]);
    int tokens = argc > 3 ? atoi(argv[3]) : 32, runs = argc > 4 ? atoi(argv[4]) : 3;
    if (gbs <= 0 || tokens < 1 || 2 * tokens > 2048 || runs < 1 || runs > 50) die("bad arguments");
#ifdef _OPENMP
    if (argc > 2) omp_set_num_threads(atoi(argv[2]));
#endif
    Config c = {65024, 1024, 16, 16, 1, 64, 4096, 2048, 0, 1, 1e-5f, 10000.f, 11, 11};
    Falcon m;
    falcon_build(&m, &c);
    for (size_t i = 0; i < m.num_params; i++)  // any values of a sensible size: speed does not depend on them
        m.params_memory[i] = 0.04f * ((float)((i * 2654435761u >> 12) & 1023) / 1024.0f - 0.5f);
    double kv_per_pos = 2.0 * (double)(c.L * c.NKV * c.HS), bytes = 0.0;
    for (int t = tokens; t < 2 * tokens; t++) bytes += 4.0 * ((double)m.num_params + kv_per_pos * (t + 1));
    bytes /= tokens;
    double *tps = xmalloc((size_t)runs * sizeof(double));
    for (int r = 0; r < runs; r++) {
        Decoder d;
        decoder_build(&d, &m);
        for (int t = 0; t < tokens; t++) decoder_step(&d, 11 + t, t);  // the prompt
        double t0 = bench_now();
        for (int t = tokens; t < 2 * tokens; t++) decoder_step(&d, 11 + t, t);
        tps[r] = tokens / (bench_now() - t0);
        decoder_free(&d);
    }
    qsort(tps, (size_t)runs, sizeof(double), cmp_double);
    double bound = gbs * 1e9 / bytes;
    printf("params %zu bytes_per_token %.0f tokens_per_s %.2f bound %.2f fraction %.2f\n", m.num_params, bytes,
           tps[runs / 2], bound, tps[runs / 2] / bound);
    free(tps);
    falcon_free(&m);
    return 0;
}
