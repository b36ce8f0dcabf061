// bench_tokenizer: single-thread encode speed of tokenizer.c, for bench/bench_tokenizer.py.
//
//     bench_tokenizer TOKENIZER.json TEXT RUNS [IDS_OUT]
//
// The text is cut into documents at the first newline after every 100,000 bytes (the Python side cuts
// the same way), every document is encoded, and the wall time of the whole pass is measured RUNS times.
// Prints one line: "MB/s median min max ids". IDS_OUT receives the ids (int32, native order) of one pass.
#include "../tokenizer.h"
#include "../json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: bench_tokenizer TOKENIZER.json TEXT RUNS [IDS_OUT]\n"); return 2; }
    char err[512];
    Tokenizer *t = tokenizer_load(argv[1], err, sizeof err);
    if (!t) { fprintf(stderr, "%s\n", err); return 1; }
    char *text;
    size_t len;
    if (read_file(argv[2], &text, &len, err, sizeof err)) { fprintf(stderr, "%s: %s\n", argv[2], err); return 1; }
    int runs = atoi(argv[3]);
    if (runs < 1) runs = 1;
    double *mbs = malloc(runs * sizeof *mbs);
    TokenIds ids = {0};
    for (int r = 0; r < runs; r++) {
        ids.len = 0;
        double t0 = now();
        for (size_t i = 0; i < len;) {
            size_t end = i + 100000 < len ? i + 100000 : len;
            while (end < len && text[end - 1] != '\n') end++;
            if (tokenizer_encode(t, text + i, end - i, &ids)) { fprintf(stderr, "out of memory\n"); return 1; }
            i = end;
        }
        mbs[r] = len / 1e6 / (now() - t0);
    }
    double best = mbs[0], worst = mbs[0];
    for (int r = 0; r < runs; r++) { if (mbs[r] > best) best = mbs[r]; if (mbs[r] < worst) worst = mbs[r]; }
    qsort(mbs, runs, sizeof *mbs, cmp_double);
    printf("%.2f %.2f %.2f %zu\n", mbs[runs / 2], worst, best, ids.len);
    if (argc > 4) {
        FILE *f = fopen(argv[4], "wb");
        if (!f || fwrite(ids.ids, sizeof(int32_t), ids.len, f) != ids.len || fclose(f)) { fprintf(stderr, "%s: cannot write\n", argv[4]); return 1; }
    }
    token_ids_free(&ids);
    free(mbs);
    free(text);
    tokenizer_free(t);
    return 0;
}
