// Tests of falcon_cuda.cu's host half, which needs no GPU: the launch environment, the ZeRO-1 shards, the NCCL
// rendezvous file, the flash-attention algorithm (the GPU kernels' tile loops, run in C) against falcon.c's
// attention and against a direct masked attention for conversation trees, and the trainer's model from --model.
#include "test.h"
#include "../falcon_cuda.cu"

static char tmpdir[256];

static void clear_launch_env(void) {
    for (size_t i = 0; i < sizeof LAUNCH_VARS / sizeof LAUNCH_VARS[0]; i++)
        for (int k = 0; k < 3; k++) unsetenv(LAUNCH_VARS[i][k]);
}

static void test_launch(void) {
    Launch l;
    Err e = {{0}};
    clear_launch_env();
    CHECK(launch_from_env(&l, &e) == 0 && l.rank == 0 && l.world == 1 && l.local_rank == 0,
          "no launcher: rank 0 of 1 (got %d of %d)", l.rank, l.world);
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_NTASKS", "8", 1);
    setenv("SLURM_LOCALID", "1", 1);
    CHECK(launch_from_env(&l, &e) == 0 && l.rank == 5 && l.world == 8 && l.local_rank == 1 && !strcmp(l.source, "SLURM_PROCID"),
          "srun: rank 5 of 8, local 1 (got %d of %d, local %d)", l.rank, l.world, l.local_rank);
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    CHECK(launch_from_env(&l, &e) == 0 && l.rank == 3 && l.world == 4 && l.local_rank == 3,
          "mpirun wins over srun; no local rank given: local = rank (got %d of %d, local %d)", l.rank, l.world, l.local_rank);
    setenv("FALCON_RANK", "0", 1);
    setenv("FALCON_WORLD_SIZE", "2", 1);
    CHECK(launch_from_env(&l, &e) == 0 && l.rank == 0 && l.world == 2, "FALCON_RANK wins over every launcher");
    setenv("FALCON_RANK", "2", 1);
    CHECK(launch_from_env(&l, &e) != 0 && strstr(e.msg, "FALCON_RANK='2'") && strstr(e.msg, "[0, 1]"),
          "rank >= world is refused: %s", e.msg);
    e.msg[0] = 0;
    setenv("FALCON_RANK", "1x", 1);
    CHECK(launch_from_env(&l, &e) != 0 && strstr(e.msg, "FALCON_RANK='1x'"), "a non-integer rank is refused: %s", e.msg);
    e.msg[0] = 0;
    unsetenv("FALCON_WORLD_SIZE");
    CHECK(launch_from_env(&l, &e) != 0 && strstr(e.msg, "FALCON_WORLD_SIZE is not"), "a rank without a world size is refused: %s", e.msg);
    clear_launch_env();
}

static void test_shards(void) {
    size_t ns[] = {1, 127, 128, 1000, 1213696, 6921720704ULL};
    int worlds[] = {1, 2, 3, 8, 64};
    int ok = 1;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof worlds / sizeof worlds[0]; j++) {
            size_t n = ns[i], next = 0;
            int w = worlds[j];
            for (int r = 0; r < w; r++) {
                GpuDist s = zero_shard(n, w, r);
                // consecutive, disjoint, covering [0, n); equal padded shards, 512-byte aligned
                ok &= s.begin == next && s.end >= s.begin && s.end - s.begin <= s.shard && s.shard % 128 == 0;
                ok &= s.padded == s.shard * (size_t)w && s.padded >= n && s.padded - n < (size_t)w * 128 + s.shard;
                ok &= s.begin == n || s.begin == s.shard * (size_t)r;
                ok &= s.rank == r && s.world == w;
                next = s.end;
            }
            ok &= next == n;
        }
    CHECK(ok, "ZeRO-1 shards partition every parameter vector exactly, in aligned equal pieces");
    GpuDist a = zero_shard(1000, 8, 7), b = zero_shard(6921720704ULL, 8, 3);
    CHECK(a.shard == 128 && a.begin == 896 && a.end == 1000 && b.shard == 865215104 && b.begin == 3 * b.shard,
          "shard arithmetic: 1000 over 8 -> 128 each, the last has [896, 1000); Falcon-7B over 8 -> %zu", b.shard);
}

static void test_nccl_file(void) {
    unsigned char id[NCCL_ID_BYTES], got[NCCL_ID_BYTES];
    for (int i = 0; i < NCCL_ID_BYTES; i++) id[i] = (unsigned char)(i * 37 + 11);
    char path[300];
    snprintf(path, sizeof path, "%s/nccl.id", tmpdir);
    Err e = {{0}};
    CHECK(nccl_id_publish(path, id, sizeof id, &e) == 0 && nccl_id_wait(path, got, sizeof got, 1.0, &e) == 0 &&
              !memcmp(id, got, sizeof id),
          "the NCCL id travels through the shared file intact");
    snprintf(path, sizeof path, "%s/missing.id", tmpdir);
    CHECK(nccl_id_wait(path, got, sizeof got, 0.3, &e) != 0 && strstr(e.msg, "did not publish"), "a missing id times out: %s", e.msg);
    e.msg[0] = 0;
    snprintf(path, sizeof path, "%s/short.id", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(id, 1, 100, f);
    fclose(f);
    CHECK(nccl_id_wait(path, got, sizeof got, 1.0, &e) != 0 && strstr(e.msg, "expected 128 bytes"), "a short id file is refused: %s", e.msg);
}

static void fill(float *x, size_t n, uint64_t *s, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(s);
}

static void test_flash_attention(const char *name, size_t NH, size_t NKV, size_t HS) {
    Config c = {0};
    c.NH = NH;
    c.NKV = NKV;
    c.HS = HS;
    c.C = NH * HS;
    size_t B = 2, T = 37, QKV = qkv_dim(&c), C = c.C;  // T = 37: a partial last tile of keys and of queries
    uint64_t s = 99;
    float *qkv = xmalloc(B * T * QKV * sizeof(float)), *dout = xmalloc(B * T * C * sizeof(float));
    fill(qkv, B * T * QKV, &s, 1.0f);
    fill(dout, B * T * C, &s, 1.0f);
    float *out_ref = xmalloc(B * T * C * sizeof(float)), *att = xmalloc(B * NH * T * T * sizeof(float));
    float *out = xmalloc(B * T * C * sizeof(float)), *lse = xmalloc(B * NH * T * sizeof(float));
    float *dqkv = xcalloc(B * T * QKV, sizeof(float));
    float *dqkv_ref = xcalloc(B * T * QKV, sizeof(float)), *lse_cpu = xmalloc(B * NH * T * sizeof(float));
    attention_forward_ref(out_ref, att, qkv, NULL, NULL, &c, B, T);
    attention_backward_ref(dqkv_ref, dout, qkv, att, &c, B, T);
    attention_forward(out, lse_cpu, qkv, NULL, NULL, &c, B, T);  // falcon.c's own (CPU) flash attention, for its lse
    double worst = 0.0;
    size_t brs[] = {1, 4, 8, 32};
    for (size_t i = 0; i < 4; i++) {
        flash_attention_forward_ref(out, lse, qkv, NULL, &c, B, T, brs[i]);
        worst = fmax(worst, max_rel(out, out_ref, B * T * C));
    }
    CHECK(worst < 1e-5, "%s: tiled online-softmax attention = falcon.c's attention_forward_ref, query tiles 1..32 (%.1e)", name, worst);
    double dl = max_rel(lse, lse_cpu, B * NH * T);
    CHECK(dl < 1e-5, "%s: its log-sum-exp (B, NH, T) = falcon.c's flash attention's (%.1e)", name, dl);
    // lse: for the last query row every key is visible, so its probabilities are exp(s - lse) and sum to 1
    double lse_err = 0.0;
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            const float *a = att + ((b * NH + h) * T + T - 1) * T, *q = qkv + (b * T + T - 1) * QKV + q_off(&c, h);
            const float *k = qkv + (b * T + 5) * QKV + k_off(&c, h / (NH / NKV));
            float p5 = expf(dot(q, k, HS) / sqrtf((float)HS) - lse[(b * NH + h) * T + T - 1]);
            lse_err = fmax(lse_err, fabs(p5 - a[5]));
        }
    CHECK(lse_err < 1e-6, "%s: the kept log-sum-exp reproduces falcon.c's probabilities (%.1e)", name, lse_err);
    flash_attention_backward_ref(dqkv, dout, out, lse, qkv, NULL, &c, B, T);
    double db = max_rel(dqkv, dqkv_ref, B * T * QKV);
    CHECK(db < 1e-5, "%s: FlashAttention-2 backward (per key tile, per group) = falcon.c's attention_backward_ref (%.1e)", name, db);

    // conversation-tree mask: against falcon.c's reference attention with the same mask
    int *span = xmalloc(B * T * sizeof(int));
    tree_spans(span, B, T);
    float *out_n = xmalloc(B * T * C * sizeof(float)), *dqkv_n = xcalloc(B * T * QKV, sizeof(float));
    memset(dqkv, 0, B * T * QKV * sizeof(float));
    attention_forward_ref(out_n, att, qkv, span, NULL, &c, B, T);
    attention_backward_ref(dqkv_n, dout, qkv, att, &c, B, T);
    flash_attention_forward_ref(out, lse, qkv, span, &c, B, T, 8);
    flash_attention_backward_ref(dqkv, dout, out, lse, qkv, span, &c, B, T);
    double fm = max_rel(out, out_n, B * T * C), bm = max_rel(dqkv, dqkv_n, B * T * QKV);
    CHECK(fm < 1e-5 && bm < 1e-5, "%s: tree mask: forward %.1e, backward %.1e against falcon.c's masked reference attention", name, fm, bm);
    CHECK(max_rel(out, out_ref, B * T * C) > 1e-2, "%s: the tree mask changes the output (it is not ignored)", name);
    free(span); free(out_n); free(dqkv_n);
    free(qkv); free(dout); free(out_ref); free(att); free(dqkv_ref); free(out); free(lse); free(dqkv); free(lse_cpu);
}

static void test_spec(void) {
    Config c = *preset_find("falcon-40b");
    GpuSpec s = gpu_spec(&c);
    size_t n = 0;
    int decays = 0;
    for (int i = 0; i < NUM_PARAMS_T; i++) { n += s.sizes[i]; decays += s.decays[i]; }
    CHECK(n == param_count(&c) && n == 41303293952ULL && decays == 5 && s.NKV == 8 && s.num_ln == 2,
          "the GPU's view of falcon-40b: %zu parameters, 5 decayed tensors, 8 K/V heads, 2 LayerNorms", n);
}

// The switches the GPU kernels do not implement are refused by name; Falcon's own layouts are not.
static void test_unsupported(void) {
    const char *layouts[][2] = {{"mqa", ""}, {"gqa", ""}, {"gqa1", ""}, {"bias", "\"bias\""},
                                {"seq", "\"parallel_attn\""}, {"mha", "\"multi_query\""}, {"alibi", "\"alibi\""},
                                {"rw", "\"bias\""}, {"swiglu", "\"mlp_type\""}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        char dir[100];
        snprintf(dir, sizeof dir, "tests/ref/%s", layouts[i][0]);
        Config c;
        Err e = {{0}};
        if (config_load(&c, dir, &e)) { CHECK(0, "%s", e.msg); continue; }
        const char *why = gpu_unsupported(&c);
        CHECK(layouts[i][1][0] ? why && strstr(why, layouts[i][1]) : !why, "GPU support of %s: %s", layouts[i][0],
              why ? why : "supported");
    }
}

// The trainer's model from --model, built by falcon.c's train_model_build as falcon train builds it: a config.json
// file gives its configuration with random weights, a checkpoint directory its weights, a preset the shards'
// vocabulary and at least -T positions.
static void test_train_model(void) {
    Err e = {{0}};
    Falcon ck, fromjson, fromdir, preset;
    if (falcon_load(&ck, "tests/ref/mqa", &e)) { CHECK(0, "%s", e.msg); return; }
    TrainOptions o = train_defaults();
    o.model = "tests/ref/mqa/config.json";
    train_model_build(&fromjson, &o, 1000);
    o.model = "tests/ref/mqa";
    train_model_build(&fromdir, &o, 1000);
    o.model = "nano";
    o.T = 300;
    train_model_build(&preset, &o, 1000);
    const Config *a = &fromjson.config, *b = &ck.config;
    CHECK(a->V == b->V && a->C == b->C && a->L == b->L && a->NH == b->NH && a->NKV == b->NKV && a->maxT == b->maxT &&
              fromjson.num_params == ck.num_params &&
              memcmp(fromjson.params_memory, ck.params_memory, ck.num_params * sizeof(float)),
          "--model CONFIG.json: the file's configuration (V %zu, C %zu, L %zu), random weights", a->V, a->C, a->L);
    CHECK(fromdir.num_params == ck.num_params && !memcmp(fromdir.params_memory, ck.params_memory, ck.num_params * sizeof(float)),
          "--model DIR: the checkpoint's weights");
    CHECK(preset.config.V == 1000 && preset.config.maxT == 300 && preset.config.C == preset_find("nano")->C,
          "--model nano: the shards' vocabulary (%zu) and -T positions (%zu)", preset.config.V, preset.config.maxT);
    falcon_free(&ck);
    falcon_free(&fromjson);
    falcon_free(&fromdir);
    falcon_free(&preset);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_falcon_cuda.XXXXXX");
    if (!mkdtemp(tmpdir)) die("cannot create a temporary directory");
    test_launch();
    test_shards();
    test_nccl_file();
    test_flash_attention("multi-query (NH 4, NKV 1, HS 32)", 4, 1, 32);
    test_flash_attention("grouped (NH 6, NKV 2, HS 16)", 6, 2, 16);
    test_flash_attention("one K/V per head (NH 3, NKV 3, HS 8)", 3, 3, 8);
    test_spec();
    test_unsupported();
    test_train_model();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) printf("warning: could not remove %s\n", tmpdir);
    return test_summary();
}
