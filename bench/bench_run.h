// The training run that bench_train_cpu and ab_train time: a preset with random weights, trained on random tokens.
// One step is zero_grad, forward, backward, global gradient norm and one AdamW update, what `falcon train` does per
// micro-batch. Include after ../falcon.c and peak.h.
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

typedef struct {
    Falcon m;
    AdamW opt;
    int *in, *tg;  // (B, T) random inputs and targets
    size_t B, T, step;
} BenchRun;

// steps: the length of the learning-rate schedule (only its values depend on it). Returns -1 for an unknown preset.
static int bench_run_build(BenchRun *r, const char *preset, size_t B, size_t T, size_t steps) {
    const Config *c = preset_find(preset);
    if (!c) return -1;
    Config cfg = *c;
    if (T > cfg.maxT) cfg.maxT = T;
    falcon_build(&r->m, &cfg);
    falcon_init(&r->m, 1, 0.02f);
    r->opt = (AdamW){.lr = 1e-4f, .lr_floor = 0.1f, .warmup = 1, .steps = steps, .beta1 = 0.9f, .beta2 = 0.95f,
                     .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f};
    adamw_build(&r->opt, r->m.num_params);
    r->B = B, r->T = T, r->step = 0;
    r->in = xmalloc(B * T * sizeof(int));
    r->tg = xmalloc(B * T * sizeof(int));
    uint64_t rng = 7;
    for (size_t i = 0; i < B * T; i++) {
        r->in[i] = (int)(rng_next(&rng) % cfg.V);
        r->tg[i] = (int)(rng_next(&rng) % cfg.V);
    }
    return 0;
}

// One training step; returns its wall time in seconds.
static double bench_run_step(BenchRun *r) {
    double t0 = bench_now();
    falcon_zero_grad(&r->m);
    falcon_forward(&r->m, r->in, r->tg, NULL, NULL, r->B, r->T, FWD_BACKWARD);
    falcon_backward(&r->m, 1.0f);
    adamw_update(&r->opt, &r->m, adamw_lr(&r->opt, r->step++), falcon_grad_norm(&r->m));
    return bench_now() - t0;
}

static void bench_run_free(BenchRun *r) {
    free(r->in);
    free(r->tg);
    adamw_free(&r->opt);
    falcon_free(&r->m);
}
#endif
