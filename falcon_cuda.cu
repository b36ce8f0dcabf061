/*
falcon_cuda.cu: falcon.c on NVIDIA GPUs, for training at real scale. The same model, configurations, checkpoint
directories, training options, log format and data loader as falcon.c, with the layers rewritten as CUDA kernels:
bf16 weights and activations with fp32 master weights, gradients and AdamW moments; matrix products through
cuBLASLt; a flash-attention kernel of our own for multi-query and grouped K/V heads; data parallelism over NCCL
with the optimizer state sharded across ranks (ZeRO-1).

One file, two compilers. falcon.c is C11 and its helpers are `static`, so this file does not copy them: it is
compiled twice.
  - as C by cc (`cc -x c falcon_cuda.cu`): PART 1, the host side. It #includes falcon.c itself and so reuses its
    configuration parser, safetensors reader and writer, parameter names, checkpoint files, training options and
    the CPU reference model; it adds the launch environment (ranks), the ZeRO-1 shard arithmetic, a host
    reference of the flash-attention tiling, and the training loop that drives the GPU.
  - as CUDA C++ by nvcc: PART 2, the device side: kernels, cuBLASLt, NCCL and the GPU model, exported to PART 1
    through the small C interface declared just below (the `cuda_*` functions).
Build with `make falcon_cuda` (bf16) or `make build/falcon_cuda_fp32` (fp32 everywhere, for parity checks with
falcon.c).
docs/gpu.md is the chapter that goes with this file: memory layout, the attention kernel tile by tile, and the
multi-GPU data flow.
*/
#include <stddef.h>
#include <stdint.h>

// ----------------------------------------------------------------------------
// The interface between the two halves: plain C types only.

#define NUM_PARAMS_T 15           // falcon.c's NUM_PARAM_TENSORS (checked by a static assertion in PART 1)
#define NCCL_ID_BYTES 128         // sizeof(ncclUniqueId)
#define FA_BC 32                  // keys per attention tile: one warp lane per key (both halves use it)

typedef struct {
    size_t V, C, L, NH, NKV, HS, FF, maxT;
    int num_ln;
    float eps, rope_theta;
    size_t sizes[NUM_PARAMS_T];   // floats of each parameter tensor, falcon.c's order (param_sizes)
    int decays[NUM_PARAMS_T];     // param_decays: weight decay applies to the tensor
} GpuSpec;

typedef struct {
    float beta1, beta2, eps, weight_decay, grad_clip;
} GpuAdam;

// Where this process stands in a data-parallel job, and its ZeRO-1 shard of the flat parameter vector.
typedef struct {
    int rank, world;
    size_t shard;        // floats per rank (padded)
    size_t padded;       // world * shard >= the number of parameters
    size_t begin, end;   // the real parameters of this rank, begin <= end
    unsigned char nccl_id[NCCL_ID_BYTES];
} GpuDist;

typedef struct GpuFalcon GpuFalcon;

#ifdef __cplusplus
extern "C" {
#endif
int cuda_device_init(int local_rank, char *err, size_t errsize);
void cuda_nccl_id(unsigned char id[NCCL_ID_BYTES]);
GpuFalcon *cuda_falcon_build(const GpuSpec *s, const float *params, const GpuDist *d);
float cuda_falcon_forward(GpuFalcon *g, const int *inputs, const int *targets, const int *pos, const int *span_end,
                          size_t B, size_t T, float zloss, float *loss_z);
void cuda_falcon_logits(GpuFalcon *g, float *out);
void cuda_falcon_zero_grad(GpuFalcon *g);
void cuda_falcon_backward(GpuFalcon *g, float dloss);
float cuda_falcon_grad_norm(GpuFalcon *g);
void cuda_adamw_update(GpuFalcon *g, const GpuAdam *h, float lr, float norm, size_t t);
void cuda_falcon_gather(GpuFalcon *g, float *params, float *grads, float *adam_m, float *adam_v);
void cuda_adamw_set_state(GpuFalcon *g, const float *adam_m, const float *adam_v);
float cuda_mean_over_ranks(GpuFalcon *g, float x);
void cuda_attention_run(const GpuSpec *s, const float *qkv, const int *span_end, const float *dout, size_t B, size_t T,
                        float *out, float *lse, float *dqkv);
void cuda_attention_bench(const GpuSpec *s, size_t B, size_t T, size_t iters, double *fwd_s, double *bwd_s);
void cuda_falcon_free(GpuFalcon *g);
#ifdef __cplusplus
}
#endif

#ifndef __CUDACC__
/* ============================================================================================================
   PART 1: the host side, C11, compiled by cc.
   ============================================================================================================ */
#define FALCON_MAIN
#define main falcon_cpu_main  // falcon.c's command line stays reachable (cmd_info) without clashing with ours
#include "falcon.c"
#undef main
#ifdef FALCON_USE_MPI
#include <mpi.h>
#endif

_Static_assert(NUM_PARAMS_T == NUM_PARAM_TENSORS, "GpuSpec mirrors falcon.c's parameter list");

// ----------------------------------------------------------------------------
// The launch environment: which rank of how many this process is, and which GPU of its node it drives.
// Launchers announce it in environment variables, each its own; the first complete set found wins:
//   FALCON_RANK, FALCON_WORLD_SIZE, FALCON_LOCAL_RANK   by hand, or a script on a shared file system
//   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK           Open MPI's mpirun
//   PMI_RANK, PMI_SIZE, MPI_LOCALRANKID                 MPICH / Intel MPI (Hydra)
//   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID           srun
//   RANK, WORLD_SIZE, LOCAL_RANK                        torchrun-style launchers
// Nothing set: one process, rank 0 of 1.

typedef struct {
    int rank, world, local_rank;
    const char *source;   // the rank variable that was used, for the log
} Launch;

static const char *const LAUNCH_VARS[][3] = {
    {"FALCON_RANK", "FALCON_WORLD_SIZE", "FALCON_LOCAL_RANK"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

static int env_int(const char *name, long lo, long hi, long *out, Err *e) {
    const char *v = getenv(name);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return errorf(e, "environment: %s='%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
    *out = x;
    return 0;
}

static int launch_from_env(Launch *l, Err *e) {
    *l = (Launch){0, 1, 0, "none"};
    for (size_t i = 0; i < sizeof LAUNCH_VARS / sizeof LAUNCH_VARS[0]; i++) {
        const char *const *v = LAUNCH_VARS[i];
        if (!getenv(v[0])) continue;
        if (!getenv(v[1])) return errorf(e, "environment: %s is set but %s is not", v[0], v[1]);
        long world, rank, local = -1;
        if (env_int(v[1], 1, 1 << 20, &world, e) || env_int(v[0], 0, world - 1, &rank, e)) return -1;
        if (getenv(v[2]) && env_int(v[2], 0, world - 1, &local, e)) return -1;
        *l = (Launch){(int)rank, (int)world, local < 0 ? (int)rank : (int)local, v[0]};
        return 0;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// The NCCL rendezvous. Every rank needs the same 128-byte ncclUniqueId, made by rank 0. Under MPI it is
// broadcast; without MPI it travels through a file on a file system that all nodes share: rank 0 writes it
// under a temporary name and renames it into place (so a reader never sees half a file), the others poll.

static int nccl_id_publish(const char *path, const unsigned char *id, size_t n, Err *e) {
    char tmp[4200];
    path_of(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return errorf(e, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(id, 1, n, f) == n;
    if (fclose(f) || !ok || rename(tmp, path)) { remove(tmp); return errorf(e, "%s: cannot write", path); }
    return 0;
}

static int nccl_id_wait(const char *path, unsigned char *id, size_t n, double timeout_s, Err *e) {
    double t0 = now_seconds();
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(id, 1, n, f);
            int extra = fgetc(f) != EOF;
            fclose(f);
            if (got == n && !extra) return 0;
            return errorf(e, "%s: expected %zu bytes of NCCL id (a stale file from another run?)", path, n);
        }
        if (now_seconds() - t0 > timeout_s) return errorf(e, "%s: rank 0 did not publish the NCCL id within %.1f s", path, timeout_s);
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
}

// ----------------------------------------------------------------------------
// ZeRO-1 shards. The flat parameter vector (n floats, falcon.c's order) is padded to world equal shards, each a
// multiple of 128 floats so that every shard starts 512-byte aligned. Rank r owns [begin, end) of the real
// parameters: its fp32 master weights, AdamW moments and reduced gradients. NCCL's reduce-scatter and
// all-gather move exactly `shard` floats per rank, hence the padding.

static GpuDist zero_shard(size_t n, int world, int rank) {
    GpuDist s = {rank, world, 0, 0, 0, 0, {0}};
    size_t per = (n + (size_t)world - 1) / (size_t)world;
    s.shard = (per + 127) / 128 * 128;
    s.padded = s.shard * (size_t)world;
    s.begin = s.shard * (size_t)rank < n ? s.shard * (size_t)rank : n;
    s.end = s.begin + s.shard < n ? s.begin + s.shard : n;
    return s;
}

// ----------------------------------------------------------------------------
// The flash-attention algorithm on the host: the exact loops of the GPU kernels (tiles of FA_BC keys, online
// softmax, no T x T matrix), in fp32 C, so that make test checks the algorithm, its masks and its backward pass
// against falcon.c's attention on a machine without a GPU (tests/test_falcon_cuda.c).
//
// Masks: falcon.c's attn_visible. Key t2 is visible from query t when t2 <= t <= span_end[t2]: span_end (B, T)
// describes conversation trees packed in depth-first order, NULL means plain causal (span_end = T - 1 everywhere);
// documents packed back to back are the trees whose spans end at their document end.

// A batch of conversation trees packed depth first, for the tests: a root prompt of 3 to 6 tokens, then replies
// of 5 tokens: 3 in a chain, then two alternative 1-token continuations. A reply sees its prompt and its own
// chain, never a sibling reply; each continuation sees neither the other continuation nor later replies.
static REFERENCE void tree_spans(int *span_end, size_t B, size_t T) {
    for (size_t b = 0; b < B; b++) {
        int *se = span_end + b * T;
        for (size_t t = 0; t < T; t++) se[t] = (int)T - 1;  // the root prompt: its subtree is everything
        for (size_t s0 = 3 + b % 4; s0 < T; s0 += 5) {
            size_t s1 = s0 + 5 < T ? s0 + 5 : T;
            for (size_t t = s0; t < s1; t++) se[t] = t < s0 + 3 ? (int)s1 - 1 : (int)t;
        }
    }
}

// out (B, T, C), lse (B, NH, T) the log-sum-exp of each row's scaled scores. Br query rows per tile.
static REFERENCE void flash_attention_forward_ref(float *out, float *lse, const float *qkv, const int *span_end,
                                        const Config *c, size_t B, size_t T, size_t Br) {
    size_t QKV = qkv_dim(c), HS = c->HS, qpk = c->NH / c->NKV;
    float scale = 1.0f / sqrtf((float)HS);
    float *o = xmalloc(HS * sizeof(float)), s[FA_BC];
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < c->NH; h++)
            for (size_t q0 = 0; q0 < T; q0 += Br)
                for (size_t t = q0; t < q0 + Br && t < T; t++) {
                    const float *q = qkv + (b * T + t) * QKV + q_off(c, h);
                    const int *se = span_end ? span_end + b * T : NULL;
                    float m = -INFINITY, l = 0.0f;  // running max and running sum of exp(s - m)
                    memset(o, 0, HS * sizeof(float));
                    size_t last = (q0 + Br < T ? q0 + Br : T) - 1;  // the tile's last query: keys beyond are masked
                    for (size_t k0 = 0; k0 <= last; k0 += FA_BC) {
                        float mt = -INFINITY;
                        for (size_t j = 0; j < FA_BC; j++) {
                            size_t t2 = k0 + j;
                            s[j] = -INFINITY;
                            if (t2 >= T || !attn_visible(t, t2, se)) continue;
                            const float *k = qkv + (b * T + t2) * QKV + k_off(c, h / qpk);
                            float d = 0.0f;
                            for (size_t i = 0; i < HS; i++) d += q[i] * k[i];
                            s[j] = d * scale;
                            mt = fmaxf(mt, s[j]);
                        }
                        if (mt == -INFINITY) continue;  // nothing visible in this tile
                        float mn = fmaxf(m, mt), alpha = expf(m - mn);
                        l *= alpha;
                        for (size_t i = 0; i < HS; i++) o[i] *= alpha;
                        for (size_t j = 0; j < FA_BC; j++) {
                            if (s[j] == -INFINITY) continue;
                            float p = expf(s[j] - mn);
                            const float *v = qkv + (b * T + k0 + j) * QKV + v_off(c, h / qpk);
                            l += p;
                            for (size_t i = 0; i < HS; i++) o[i] += p * v[i];
                        }
                        m = mn;
                    }
                    float *y = out + (b * T + t) * c->C + h * HS;
                    for (size_t i = 0; i < HS; i++) y[i] = o[i] / l;
                    lse[(b * c->NH + h) * T + t] = m + logf(l);
                }
    free(o);
}

// The backward pass as FlashAttention-2 organises it: D_t = dout_t . out_t, then per tile of FA_BC keys of one
// K/V group, every query row of every head of the group: p = exp(s - lse), dv += p dout, dp = dout . v,
// ds = p (dp - D), dk += ds q scale, dq += ds k scale. dk and dv of a key tile have one owner (no races);
// dq gathers from every key tile (atomic adds on the GPU). dqkv is accumulated (+=) as falcon.c does.
static REFERENCE void flash_attention_backward_ref(float *dqkv, const float *dout, const float *out, const float *lse,
                                         const float *qkv, const int *span_end, const Config *c, size_t B, size_t T) {
    size_t QKV = qkv_dim(c), HS = c->HS, qpk = c->NH / c->NKV;
    float scale = 1.0f / sqrtf((float)HS);
    float *D = xmalloc(B * c->NH * T * sizeof(float));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < c->NH; h++)
            for (size_t t = 0; t < T; t++)
                D[(b * c->NH + h) * T + t] = dot(dout + (b * T + t) * c->C + h * HS, out + (b * T + t) * c->C + h * HS, HS);
    for (size_t b = 0; b < B; b++)
        for (size_t g = 0; g < c->NKV; g++)
            for (size_t k0 = 0; k0 < T; k0 += FA_BC)
                for (size_t h = g * qpk; h < (g + 1) * qpk; h++)
                    for (size_t t = k0; t < T; t++) {
                        const float *q = qkv + (b * T + t) * QKV + q_off(c, h), *go = dout + (b * T + t) * c->C + h * HS;
                        float *dq = dqkv + (b * T + t) * QKV + q_off(c, h);
                        float L = lse[(b * c->NH + h) * T + t], Dt = D[(b * c->NH + h) * T + t];
                        for (size_t t2 = k0; t2 < k0 + FA_BC && t2 < T; t2++) {
                            if (!attn_visible(t, t2, span_end ? span_end + b * T : NULL)) continue;
                            const float *k = qkv + (b * T + t2) * QKV + k_off(c, g), *v = k + HS;
                            float *dk = dqkv + (b * T + t2) * QKV + k_off(c, g), *dv = dk + HS;
                            float p = expf(dot(q, k, HS) * scale - L), dp = dot(go, v, HS), ds = p * (dp - Dt) * scale;
                            for (size_t i = 0; i < HS; i++) {
                                dv[i] += p * go[i];
                                dk[i] += ds * q[i];
                                dq[i] += ds * k[i];
                            }
                        }
                    }
    free(D);
}

// The largest |a - b| over the largest |b|: how parity is measured, here and in the tests.
static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        d = x > d || x != x ? x : d;
        s = fmax(s, fabs((double)b[i]));
    }
    return d / s;
}

// The switches of falcon.c that the GPU kernels do not implement: the first one c uses, or NULL.
static const char *gpu_unsupported(const Config *c) {
    return c->bias         ? "\"bias\": true"
           : c->sequential ? "\"parallel_attn\": false"
           : c->alibi      ? "\"alibi\": true"
           : c->swiglu     ? "\"mlp_type\": \"swiglu\""
           : !c->new_decoder && c->NKV != 1 ? "\"multi_query\": false"
                                            : NULL;
}

// The GPU's view of a configuration.
static GpuSpec gpu_spec(const Config *c) {
    if (gpu_unsupported(c)) die("%s is not implemented by the GPU kernels (falcon trains it on the CPU)", gpu_unsupported(c));
    GpuSpec s = {c->V, c->C, c->L, c->NH, c->NKV, c->HS, c->FF, c->maxT, c->num_ln, c->eps, c->rope_theta, {0}, {0}};
    param_sizes(c, s.sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) s.decays[i] = param_decays(i);
    return s;
}

#ifdef FALCON_CUDA_MAIN
// ----------------------------------------------------------------------------
// Ranks and GPUs: the launch environment, the device, the NCCL rendezvous.

typedef struct {
    Launch launch;
    unsigned char nccl_id[NCCL_ID_BYTES];
} Ranks;

static void ranks_start(Ranks *r, int *argc, char ***argv) {
    Err e = {{0}};
    char err[512];
#ifdef FALCON_USE_MPI
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_SINGLE, &provided);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (launch_from_env(&r->launch, &e)) die("%s", e.msg);
    r->launch.rank = rank;
    r->launch.world = world;
#else
    (void)argc;
    (void)argv;
    if (launch_from_env(&r->launch, &e)) die("%s", e.msg);
#endif
    if (cuda_device_init(r->launch.local_rank, err, sizeof err)) die("%s", err);
    if (r->launch.world == 1) return;
    if (r->launch.rank == 0) cuda_nccl_id(r->nccl_id);
    const char *path = getenv("FALCON_NCCL_ID_FILE");
    if (path) {
        if (r->launch.rank == 0 ? nccl_id_publish(path, r->nccl_id, NCCL_ID_BYTES, &e)
                                : nccl_id_wait(path, r->nccl_id, NCCL_ID_BYTES, 600.0, &e))
            die("%s", e.msg);
        return;
    }
#ifdef FALCON_USE_MPI
    MPI_Bcast(r->nccl_id, NCCL_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD);
#else
    die("%d ranks started without MPI: set FALCON_NCCL_ID_FILE to a path on a file system all nodes share", r->launch.world);
#endif
}

// The model on this rank's GPU, with its ZeRO-1 shard.
static GpuFalcon *gpu_build(const Falcon *m, const Ranks *r) {
    GpuSpec spec = gpu_spec(&m->config);
    GpuDist d = zero_shard(m->num_params, r->launch.world, r->launch.rank);
    memcpy(d.nccl_id, r->nccl_id, NCCL_ID_BYTES);
    return cuda_falcon_build(&spec, m->params_memory, &d);
}

static void ranks_end(void) {
#ifdef FALCON_USE_MPI
    MPI_Finalize();
#endif
}

// ----------------------------------------------------------------------------
// Training on the GPU: falcon.c's train_run with the model on the device. Every rank reads its own batches
// (the loader strides by rank); rank 0 alone prints, logs and writes checkpoints, for which all ranks first
// gather the fp32 weights and AdamW moments from their shards.

static void gpu_checkpoint(GpuFalcon *g, Falcon *m, const TrainOptions *o, TrainState *ts, AdamW *opt,
                           const TrainData *train, int rank) {
    Err e = {{0}};
    cuda_falcon_gather(g, m->params_memory, NULL, opt->m, opt->v);
    traindata_tell(train, ts);
    if (rank == 0 && run_checkpoint(o->out, m, o, ts, opt, &e)) die("%s", e.msg);
}

// Mean validation loss over (up to) `batches` batches of every rank: falcon.c's evaluate on the GPU.
static float gpu_evaluate(GpuFalcon *g, DataLoader *val, size_t batches, Batch *bt) {
    dataloader_rewind(val);
    double sum = 0.0;
    size_t n = 0;
    float lz;
    for (; n < batches && batch_next(bt, val); n++)
        sum += cuda_falcon_forward(g, bt->inputs, bt->targets, bt->pos, bt->span_end, bt->B, bt->T, 0.0f, &lz);
    return cuda_mean_over_ranks(g, n ? (float)(sum / (double)n) : NAN);
}

static int train_run_gpu(TrainOptions *o, const Ranks *r) {
    Err e = {{0}};
    Falcon m;
    TrainState ts = {0};
    AdamW opt = {0};
    int rank = r->launch.rank, world = r->launch.world;
    char resume_dir[4096] = "", derr[512];
    if (!o->data && !o->nsources) die("train: --data DIR (shards made by ./data prepare or ./data mix) is required");
    TrainData train;  // falcon.c's: one source or weighted sources, each rank reading its own rows
    if (traindata_open(&train, o, rank, world, &e)) die("%s", e.msg);
    size_t evaluated_at = SIZE_MAX;
    DataLoader *val = train.nval ? dataloader_open_val((const char *const *)train.val_files, train.nval, o->B, o->T, rank, world, derr, sizeof derr) : NULL;
    if (train.nval && !val) die("%s", derr);
    if (o->max_tokens) o->steps = steps_for_tokens(o, o->max_tokens, (size_t)world);
    if (o->resume) {
        resume_path(o->resume, resume_dir, sizeof resume_dir);
        if (falcon_load(&m, resume_dir, &e)) die("%s", e.msg);
        adamw_build(&opt, m.num_params);
        if (train_state_load(resume_dir, &ts, &opt, &e) || traindata_seek(&train, &ts, &e)) die("%s", e.msg);
    } else {
        train_model_build(&m, o, traindata_vocab_size(&train));  // falcon.c's: a preset, a config.json or a checkpoint
        adamw_build(&opt, m.num_params);
    }
    if (traindata_vocab_size(&train) > m.config.V)
        die("%s: the shards' vocabulary (%u) is larger than the model's (%zu)", train.src[0].files[0], traindata_vocab_size(&train), m.config.V);
    if (o->T > m.config.maxT) die("train: -T %zu exceeds max_position_embeddings %zu", o->T, m.config.maxT);
    if (!o->tokenizer) {
        static char tokpath[4200];
        path_of(tokpath, sizeof tokpath, "%s/tokenizer.json", resume_dir[0] ? resume_dir : train.dir);
        if (access(tokpath, F_OK) == 0) o->tokenizer = tokpath;
    }
    opt.lr = o->lr;
    opt.lr_floor = o->lr_floor;
    opt.warmup = o->warmup;
    opt.steps = o->steps;
    GpuAdam hyper = {o->beta1, o->beta2, o->eps, o->weight_decay, o->grad_clip};
    GpuFalcon *g = gpu_build(&m, r);
    if (o->resume) cuda_adamw_set_state(g, opt.m, opt.v);
    FILE *logf = NULL;
    char logpath[4200];
    path_of(logpath, sizeof logpath, "%s/log.jsonl", o->out);
    if (rank == 0) {
        if (mkdir_p(o->out, &e)) die("%s", e.msg);
        if (!(logf = fopen(logpath, o->resume ? "a" : "w"))) die("%s: cannot open: %s", logpath, strerror(errno));
    }
    size_t B = o->B, T = o->T;
    Batch bt;
    batch_build(&bt, B, T);
    double fpt = flops_per_token(&m, T, 1.0);
    if (rank == 0) {
        printf("model: %zu parameters (L=%zu C=%zu NH=%zu NKV=%zu V=%zu), %.1f MFLOP per token\n", m.num_params,
               m.config.L, m.config.C, m.config.NH, m.config.NKV, m.config.V, fpt / 1e6);
        size_t nfiles = 0;
        for (size_t s = 0; s < train.n; s++) nfiles += train.src[s].nfiles;
        printf("data: %s%s%zu train shards, %zu val shards; batch %zu x %zu x %zu accum x %d GPUs (%s); %zu steps\n",
               train.sources, train.sources[0] ? ": " : "", nfiles, train.nval, B, T, o->accum, world,
               r->launch.source, o->steps);
    }
    signal(SIGINT, on_sigint);
    double t_start = now_seconds();
    uint64_t tokens_start = ts.tokens;
    float loss = NAN, val_loss = NAN;
    size_t first_step = ts.step;
    int bad_steps = 0, rc = 0;
    while (ts.step < o->steps && !interrupted && !(o->stop_after && ts.step - first_step >= o->stop_after)) {
        double t0 = now_seconds();
        size_t accum = accum_at(o, ts.tokens);
        cuda_falcon_zero_grad(g);
        loss = 0.0f;
        double visible = 0.0;
        for (size_t k = 0; k < accum; k++) {
            traindata_next(&train, &bt);
            visible += attn_visible_share(bt.span_end, B, T) / (double)accum;
            float lz;
            loss += cuda_falcon_forward(g, bt.inputs, bt.targets, bt.pos, bt.span_end, B, T, o->zloss, &lz) / (float)accum;
            cuda_falcon_backward(g, 1.0f / (float)accum);
        }
        loss = cuda_mean_over_ranks(g, loss);
        float norm = cuda_falcon_grad_norm(g), lr = adamw_lr(&opt, ts.step);
        ts.tokens += accum * B * T * (size_t)world;
        if (!isfinite(loss) || !isfinite(norm)) {
            if (rank == 0) printf("step %zu: loss %g, gradient norm %g: not finite, step skipped\n", ts.step + 1, loss, norm);
            if (logf) fprintf(logf, "{\"step\": %zu, \"skipped\": true}\n", ts.step + 1);
            if (++bad_steps >= 5) {
                fprintf(stderr, "falcon_cuda: 5 steps in a row were not finite: stopping; the last checkpoint is intact\n");
                rc = 1;
                break;
            }
            ts.step++;
            continue;
        }
        bad_steps = 0;
        cuda_adamw_update(g, &hyper, lr, norm, ++opt.t);
        ts.step++;
        double dt = now_seconds() - t0, tps = (double)(accum * B * T * (size_t)world) / dt;
        double mfu = tps * flops_per_token(&m, T, visible) / (o->peak_gflops * 1e9 * world);
        double eta = (double)(o->steps - ts.step) * (now_seconds() - t_start) / (double)(ts.step - first_step);
        char eta_text[32];
        progress_time(eta_text, sizeof eta_text, eta);
        if (rank == 0 && !o->quiet)
            printf("step %5zu/%zu | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | MFU %.1f%% | ETA %s\n", ts.step,
                   o->steps, loss, lr, norm, tps, 100.0 * mfu, eta_text);
        if (logf)
            fprintf(logf, "{\"step\": %zu, \"tokens\": %llu, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                          "\"tok_per_s\": %.1f, \"mfu\": %.4f}\n",
                    ts.step, (unsigned long long)ts.tokens, loss, lr, norm, tps, mfu);
        if (val && o->eval_every && (ts.step % o->eval_every == 0 || ts.step == o->steps)) {
            val_loss = gpu_evaluate(g, val, o->eval_batches, &bt);
            evaluated_at = ts.step;
            if (rank == 0) printf("step %5zu: val loss %.4f\n", ts.step, val_loss);
            if (logf) fprintf(logf, "{\"step\": %zu, \"tokens\": %llu, \"val_loss\": %.6f}\n", ts.step, (unsigned long long)ts.tokens, val_loss);
        }
        if (logf) fflush(logf);
        if (o->save_every && ts.step % o->save_every == 0 && ts.step < o->steps) gpu_checkpoint(g, &m, o, &ts, &opt, &train, rank);
    }
    if (rc == 0) gpu_checkpoint(g, &m, o, &ts, &opt, &train, rank);
    if (val && evaluated_at != ts.step) val_loss = gpu_evaluate(g, val, o->eval_batches, &bt);
    double elapsed = now_seconds() - t_start;
    if (rank == 0) {
        // the summary falcon.c prints, and its loss plot of log.jsonl
        char plot[4200];
        fclose(logf);
        path_of(plot, sizeof plot, "%s/loss.svg", o->out);
        if (plot_write(o->out, plot, &e)) snprintf(plot, sizeof plot, "(none)");
        unsigned long long run_tokens = ts.tokens - tokens_start;
        printf("\n== summary ==\nsteps %zu/%zu, %llu tokens this run (%llu in all), %.1f s, %.0f tok/s on %d GPU(s)\n",
               ts.step, o->steps, run_tokens, (unsigned long long)ts.tokens, elapsed, (double)run_tokens / elapsed, world);
        printf("final train loss %.4f", loss);
        if (val) printf(", val loss %.4f (perplexity %.2f)", val_loss, exp(val_loss));
        printf("\ncheckpoint %s/latest\nlog        %s\nplot       %s\n", o->out, logpath, plot);
    }
    batch_free(&bt);
    traindata_close(&train);
    if (val) dataloader_close(val);
    cuda_falcon_free(g);
    adamw_free(&opt);
    falcon_free(&m);
    return rc;
}

// ----------------------------------------------------------------------------
// `falcon_cuda check DIR`: parity on one of the HF reference models of tests/ref (made by
// tests/make_reference.py): logits, loss and every gradient against HF and against falcon.c on the CPU, then the
// 10 AdamW steps of the reference; for the packed conversation trees (tests/ref/tree_mqa, tree_gqa) the logits,
// loss and gradients with their position ids and tree masks. Exit status 1 when a tolerance is exceeded.

#ifdef FALCON_FP32
#define TOL_GRAD 1e-4   // fp32: the same arithmetic in another order
#define TOL_LOSS 1e-5
#else
#define TOL_GRAD 5e-2   // bf16 (8 bits of mantissa, relative rounding 2^-9 = 2e-3 per operation, several in a row)
#define TOL_LOSS 2e-2
#endif

static void *ref_tensor(const SafeTensors *st, const char *name) {
    const STensor *t = safetensors_find(st, name);
    if (!t) die("%s: tensor %s missing", st->path, name);
    void *buf = xmalloc(t->end - t->begin);
    if (fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET) || fread(buf, 1, t->end - t->begin, st->f) != t->end - t->begin)
        die("%s: cannot read %s", st->path, name);
    return buf;
}

// The worst per-tensor relative difference of a full gradient or weight vector against the reference's tensors.
static double worst_tensor(const SafeTensors *ref, const Config *c, const char *prefix, const float *x, char *which) {
    size_t shape[NUM_PARAM_TENSORS][2], per_layer[NUM_PARAM_TENSORS], sizes[NUM_PARAM_TENSORS], base = 0;
    param_shapes(c, shape, per_layer);
    param_sizes(c, sizes);
    double worst = 0.0;
    char name[160], full[200];
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t layers = per_layer[i] ? c->L : 1, each = sizes[i] / layers;
        for (size_t l = 0; l < layers && each; l++) {
            param_name(c, i, l, name, sizeof name);
            snprintf(full, sizeof full, "%s%s", prefix, name);
            float *want = ref_tensor(ref, full);
            double d = max_rel(x + base + l * each, want, each);
            if (d > worst || d != d) { worst = d; snprintf(which, 160, "%s", name); }
            free(want);
        }
        base += sizes[i];
    }
    return worst;
}

static int report(const char *what, double got, double tol) {
    int ok = got <= tol;
    printf("%s %-58s %.3e (tolerance %.0e)\n", ok ? "ok  " : "FAIL", what, got, tol);
    return ok ? 0 : 1;
}

// The model directory of a reference: the reference itself, or for the packed conversation trees of tests/ref/tree_X
// (position ids and tree spans, no training steps) the model they were made with, tests/ref/X.
static const char *check_model_dir(const char *dir, char *out, size_t n) {
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    if (strncmp(base, "tree_", 5)) return dir;
    return path_of(out, n, "%.*s%s", (int)(base - dir), dir, base + 5);
}

// 10 AdamW steps with the reference script's hyper-parameters (tests/make_reference.py) from m's weights: losses
// and gradient norms against HF's, then the weights; m gets the GPU's final weights. Returns the failures.
static int check_training(Falcon *m, const SafeTensors *ref, const Ranks *r, size_t B, size_t T) {
    size_t N = B * T;
    char which[160];
    GpuFalcon *g = gpu_build(m, r);
    AdamW sched = {.lr = 1e-2f, .lr_floor = 0.1f, .warmup = 3, .steps = 10};
    GpuAdam hyper = {0.9f, 0.95f, 1e-8f, 0.1f, 0.5f};
    int32_t *tids = ref_tensor(ref, "train.input_ids"), *tlabels = ref_tensor(ref, "train.labels");
    float *wl = ref_tensor(ref, "train.losses"), *wn = ref_tensor(ref, "train.grad_norms"), lz;
    int *targets = xmalloc(N * sizeof(int)), bad = 0;
    double worst_loss = 0.0, worst_norm = 0.0;
    for (size_t s = 0; s < 10; s++) {
        for (size_t n = 0; n < N; n++) targets[n] = n % T + 1 < T ? tlabels[s * N + n + 1] : -100;
        float l = cuda_falcon_forward(g, tids + s * N, targets, NULL, NULL, B, T, 0.0f, &lz);
        cuda_falcon_zero_grad(g);
        cuda_falcon_backward(g, 1.0f);
        float norm = cuda_falcon_grad_norm(g);
        cuda_adamw_update(g, &hyper, adamw_lr(&sched, s), norm, s + 1);
        printf("     step %zu: loss %.6f (HF %.6f)  grad norm %.6f (HF %.6f)\n", s + 1, l, wl[s], norm, wn[s]);
        worst_loss = fmax(worst_loss, fabs(l - wl[s]));
        worst_norm = fmax(worst_norm, fabs(norm - wn[s]) / wn[s]);
    }
    bad += report("10 AdamW steps: losses vs HF (absolute)", worst_loss, 10 * TOL_LOSS);
    bad += report("10 AdamW steps: gradient norms vs HF (relative)", worst_norm, TOL_GRAD);
    cuda_falcon_gather(g, m->params_memory, NULL, NULL, NULL);
    bad += report("weights after 10 steps vs HF (worst tensor)", worst_tensor(ref, &m->config, "final.", m->params_memory, which), 10 * TOL_GRAD);
    free(tids); free(tlabels); free(wl); free(wn); free(targets);
    cuda_falcon_free(g);
    return bad;
}

static int cmd_check(const char *dir, const Ranks *r) {
    Err e = {{0}};
    Falcon m;
    SafeTensors ref;
    char path[4200], mdir[4200], which[160];
    const char *model = check_model_dir(dir, mdir, sizeof mdir);
    int tree = model != dir;
    if (falcon_load(&m, model, &e)) die("%s", e.msg);
    path_of(path, sizeof path, "%s/ref.safetensors", dir);
    if (safetensors_open(&ref, path, &e)) die("%s", e.msg);
    const STensor *ti = safetensors_find(&ref, "input_ids");
    if (!ti || ti->ndim != 2) die("%s: input_ids (B, T) missing", path);
    size_t B = ti->shape[0], T = ti->shape[1], N = B * T, V = m.config.V;
    int32_t *ids = ref_tensor(&ref, "input_ids"), *pos = NULL, *span = NULL, *targets;
    if (tree) {  // the trees' targets as they are, with their positions and spans
        targets = ref_tensor(&ref, "targets");
        pos = ref_tensor(&ref, "position_ids");
        span = ref_tensor(&ref, "span_end");
    } else {  // HF's labels: the targets shifted by one
        int32_t *labels = ref_tensor(&ref, "labels");
        targets = xmalloc(N * sizeof(int32_t));
        for (size_t n = 0; n < N; n++) targets[n] = n % T + 1 < T ? labels[n + 1] : -100;
        free(labels);
    }
    GpuFalcon *g = gpu_build(&m, r);
    float lz, *logits = xmalloc(N * V * sizeof(float)), *grads = xmalloc(m.num_params * sizeof(float));
    float loss = cuda_falcon_forward(g, ids, targets, pos, span, B, T, 0.0f, &lz);
    cuda_falcon_logits(g, logits);
    cuda_falcon_zero_grad(g);
    cuda_falcon_backward(g, 1.0f);
    cuda_falcon_grad_norm(g);
    cuda_falcon_gather(g, NULL, grads, NULL, NULL);
    cuda_falcon_free(g);
    float cpu_loss = falcon_forward(&m, ids, targets, pos, span, B, T, FWD_LOGITS | FWD_BACKWARD);
    falcon_zero_grad(&m);
    falcon_backward(&m, 1.0f);
    float *want_logits = ref_tensor(&ref, "logits"), *want_loss = ref_tensor(&ref, "loss");
    int bad = 0;
    printf("%s (%s%s): B=%zu T=%zu, loss GPU %.6f, falcon.c %.6f, HF %.6f\n", dir,
#ifdef FALCON_FP32
           "fp32",
#else
           "bf16",
#endif
           tree ? ", packed trees" : "", B, T, loss, cpu_loss, want_loss[0]);
    bad += report("logits vs HF (max |diff| / max |ref|)", max_rel(logits, want_logits, N * V), TOL_GRAD);
    bad += report("logits vs falcon.c", max_rel(logits, m.logits, N * V), TOL_GRAD);
    bad += report("loss vs HF (absolute)", fabs(loss - want_loss[0]), TOL_LOSS);
    double w = worst_tensor(&ref, &m.config, "grad.", grads, which);
    printf("     worst gradient tensor vs HF: %s\n", which);
    bad += report("gradients vs HF (worst tensor)", w, TOL_GRAD);
    bad += report("gradients vs falcon.c (whole vector)", max_rel(grads, m.grads_memory, m.num_params), TOL_GRAD);
    if (!tree) bad += check_training(&m, &ref, r, B, T);
    printf("%s: %s\n", dir, bad ? "FAILED" : "all checks passed");
    free(want_logits); free(want_loss); free(ids); free(targets); free(pos); free(span); free(logits); free(grads);
    safetensors_close(&ref);
    falcon_free(&m);
    return bad ? 1 : 0;
}

// ----------------------------------------------------------------------------
// `falcon_cuda check-attention`: the GPU's flash-attention kernels against their host reference (the same
// algorithm in C, itself tested against falcon.c by make test), on shapes the model checks do not reach: head
// sizes 64 and 128, Falcon-7B's 71 heads on one K/V head, partial tiles, and conversation-tree masks.

static int cmd_check_attention(void) {
    static const size_t shapes[][5] = {  // NH, NKV, HS, B, T
        {4, 1, 32, 2, 37}, {8, 2, 64, 2, 300}, {16, 4, 128, 1, 129}, {71, 1, 64, 1, 100}, {2, 2, 64, 2, 1}};
    int bad = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int masked = 0; masked < 2; masked++) {
            Config c = {0};
            c.NH = shapes[i][0];
            c.NKV = shapes[i][1];
            c.HS = shapes[i][2];
            c.C = c.NH * c.HS;
            c.new_decoder = c.NKV > 1;  // grouped K/V heads are the new decoder architecture's layout
            size_t B = shapes[i][3], T = shapes[i][4], QKV = qkv_dim(&c), N = B * T;
            float *qkv = xmalloc(N * QKV * sizeof(float)), *dout = xmalloc(N * c.C * sizeof(float));
            float *out = xmalloc(N * c.C * sizeof(float)), *lse = xmalloc(B * c.NH * T * sizeof(float));
            float *dqkv = xcalloc(N * QKV, sizeof(float)), *gout = xmalloc(N * c.C * sizeof(float));
            float *glse = xmalloc(B * c.NH * T * sizeof(float)), *gdqkv = xmalloc(N * QKV * sizeof(float));
            int *span = masked ? xmalloc(N * sizeof(int)) : NULL;
            uint64_t s = 5 + i;
            for (size_t k = 0; k < N * QKV; k++) qkv[k] = rng_normal(&s);
            for (size_t k = 0; k < N * c.C; k++) dout[k] = rng_normal(&s);
            if (span) tree_spans(span, B, T);
            flash_attention_forward_ref(out, lse, qkv, span, &c, B, T, 8);
            flash_attention_backward_ref(dqkv, dout, out, lse, qkv, span, &c, B, T);
            GpuSpec spec = gpu_spec(&c);
            cuda_attention_run(&spec, qkv, span, dout, B, T, gout, glse, gdqkv);
            char what[160];
            snprintf(what, sizeof what, "NH %zu NKV %zu HS %zu T %zu %s: out, lse, dqkv", c.NH, c.NKV, c.HS, T,
                     masked ? "tree mask" : "causal");
            double d = fmax(max_rel(gout, out, N * c.C), fmax(max_rel(glse, lse, B * c.NH * T), max_rel(gdqkv, dqkv, N * QKV)));
            bad += report(what, d, TOL_GRAD);
            free(qkv); free(dout); free(out); free(lse); free(dqkv); free(gout); free(glse); free(gdqkv); free(span);
        }
    printf("attention kernels: %s\n", bad ? "FAILED" : "all checks passed");
    return bad ? 1 : 0;
}

// ----------------------------------------------------------------------------
// `falcon_cuda bench PRESET|CONFIG.json|DIR -B N -T N --steps N`: training throughput on random tokens (no data
// needed), for bench/gpu_check.sh. Prints one line: the median step's tokens/s, MFU against --peak-gflops (H100 SXM
// dense bf16: 989000). A step is timed from its start to the next one's: each forward waits for the previous update.
// Medians here and for the attention kernels alone (whose per-run times cuda_attention_bench returns).

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(int argc, char **argv, const Ranks *r) {
    if (argc < 3) die("usage: falcon_cuda bench PRESET|CONFIG.json|DIR [-B N] [-T N] [--steps N] [--peak-gflops X] [--attention 1]");
    size_t B = 4, T = 2048, steps = 10, attention_only = 0;
    float peak = 989000.0f;
    for (int i = 3; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-B")) B = arg_size(a, v, 0);
        else if (!strcmp(a, "--attention")) attention_only = arg_size(a, v, 1);
        else if (!strcmp(a, "-T")) T = arg_size(a, v, 0);
        else if (!strcmp(a, "--steps")) steps = arg_size(a, v, 0);
        else if (!strcmp(a, "--peak-gflops")) peak = arg_float(a, v);
        else die("bench: unknown option '%s'", a);
    }
    Err e = {{0}};
    Config c;
    if (model_config(&c, argv[2], &e)) die("%s", e.msg);
    if (T > c.maxT) c.maxT = T;
    if (attention_only) {
        // the attention kernels alone; FLOPs as FlashAttention counts them: forward 4 B NH T^2 HS, halved by the
        // causal mask, backward 2.5 times the forward
        GpuSpec spec = gpu_spec(&c);
        double flops = 4.0 * (double)B * (double)c.NH * (double)T * (double)T * (double)c.HS / 2.0;
        double *ft = xmalloc(2 * steps * sizeof(double)), *bt = ft + steps;
        cuda_attention_bench(&spec, B, T, steps, ft, bt);
        qsort(ft, steps, sizeof(double), cmp_double);
        qsort(bt, steps, sizeof(double), cmp_double);
        double fwd = ft[steps / 2], bwd = bt[steps / 2];  // the medians
        free(ft);
        printf("attention %s: B=%zu T=%zu NH=%zu NKV=%zu HS=%zu causal: forward %.3f ms %.1f TFLOP/s, backward %.3f ms "
               "%.1f TFLOP/s, both %.1f TFLOP/s\n", argv[2], B, T, c.NH, c.NKV, c.HS, 1e3 * fwd, flops / fwd / 1e12,
               1e3 * bwd, 2.5 * flops / bwd / 1e12, 3.5 * flops / (fwd + bwd) / 1e12);
        return 0;
    }
    Falcon m;
    falcon_build(&m, &c);
    falcon_init(&m, 1, 0.02f);
    GpuFalcon *g = gpu_build(&m, r);
    int *in = xmalloc(B * T * sizeof(int)), *tg = xmalloc(B * T * sizeof(int));
    uint64_t s = 7;
    for (size_t i = 0; i < B * T; i++) in[i] = (int)(rng_next(&s) % c.V);
    for (size_t i = 0; i < B * T; i++) tg[i] = i + 1 < B * T ? in[i + 1] : in[0];  // the next token, as HF's labels
    GpuAdam hyper = {0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    double fpt = flops_per_token(&m, T, 1.0), *dt = xmalloc(steps * sizeof(double));
    float loss = 0.0f, lz;
    for (size_t k = 0; k < steps + 2; k++) {  // two warm-up steps
        double t0 = now_seconds();
        cuda_falcon_zero_grad(g);
        loss = cuda_falcon_forward(g, in, tg, NULL, NULL, B, T, 1e-4f, &lz);
        cuda_falcon_backward(g, 1.0f);
        cuda_adamw_update(g, &hyper, 1e-4f, cuda_falcon_grad_norm(g), k + 1);
        if (k >= 2) dt[k - 2] = now_seconds() - t0;
    }
    qsort(dt, steps, sizeof(double), cmp_double);
    double tps = (double)(B * T * (size_t)r->launch.world) / dt[steps / 2];  // the median step
    if (r->launch.rank == 0)
        printf("bench %s: %zu params, B=%zu T=%zu, %d GPU(s): %.0f tok/s, MFU %.1f%% (peak %.0f GFLOP/s), loss %.3f\n",
               argv[2], m.num_params, B, T, r->launch.world, tps, 100.0 * tps * fpt / (peak * 1e9 * r->launch.world),
               peak, loss);
    free(in); free(tg); free(dt);
    cuda_falcon_free(g);
    falcon_free(&m);
    return 0;
}

// Refuses, before any GPU is looked for, a model (preset, config.json or checkpoint directory) that the GPU cannot
// train; a model that does not load is left to the command to report.
static void gpu_refuse_unsupported(const char *model) {
    Config c;
    Err e = {{0}};
    if (model_config(&c, model, &e)) return;
    const char *what = gpu_unsupported(&c);
    if (what) die("%s: %s is not implemented by the GPU kernels (falcon trains it on the CPU)", model, what);
}

int main(int argc, char **argv) {
    const char *usage = "usage: falcon_cuda info|train|check|check-attention|bench ...   (falcon_cuda train --help for training options)";
    if (argc < 2) die("%s", usage);
    if (!strcmp(argv[1], "info")) return cmd_info(argc, argv);  // host only: no GPU needed
    if (strcmp(argv[1], "train") && strcmp(argv[1], "check") && strcmp(argv[1], "check-attention") && strcmp(argv[1], "bench"))
        die("unknown command '%s'; %s", argv[1], usage);
    TrainOptions o = train_defaults();
    if (!strcmp(argv[1], "train")) {
        o = train_options_from_args(argc, argv);  // bad options are reported before the GPU is looked for
        if (o.sample_every) die("train: --sample-every is not supported by falcon_cuda yet (./falcon sample reads its checkpoints)");
    }
    if (!strcmp(argv[1], "check") && argc != 3) die("usage: falcon_cuda check REFERENCE_DIR (tests/ref/mqa, tests/ref/tree_mqa, ...)");
    char mdir[4200];
    if (!strcmp(argv[1], "check")) gpu_refuse_unsupported(check_model_dir(argv[2], mdir, sizeof mdir));
    if (!strcmp(argv[1], "bench")) gpu_refuse_unsupported(argc > 2 ? argv[2] : "");
    if (!strcmp(argv[1], "train")) gpu_refuse_unsupported(o.resume ? o.resume : o.model);
    Ranks r = {{0}, {0}};
    ranks_start(&r, &argc, &argv);
    int rc = !strcmp(argv[1], "train")             ? train_run_gpu(&o, &r)
             : !strcmp(argv[1], "check")           ? cmd_check(argv[2], &r)
             : !strcmp(argv[1], "check-attention") ? cmd_check_attention()
                                                   : cmd_bench(argc, argv, &r);
    ranks_end();
    return rc;
}
#endif  // FALCON_CUDA_MAIN

#else  // __CUDACC__
/* ============================================================================================================
   PART 2: the device side, CUDA C++, compiled by nvcc.
   ============================================================================================================ */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <nccl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Precision. floatX is the type of weights and activations: bf16 (default) or fp32 (make build/falcon_cuda_fp32, for
// parity with falcon.c). Master weights, weight gradients, AdamW moments, LayerNorm statistics, the softmax's
// log-sum-exp and every accumulation are fp32 in both modes.
#ifdef FALCON_FP32
typedef float floatX;
#define CUDA_R_X CUDA_R_32F
#define NCCL_X ncclFloat
#else
typedef __nv_bfloat16 floatX;
#define CUDA_R_X CUDA_R_16BF
#define NCCL_X ncclBfloat16
#endif

static __device__ __forceinline__ float ld(floatX x) { return (float)x; }
static __device__ __forceinline__ floatX st(float x) { return (floatX)x; }

// ----------------------------------------------------------------------------
// Errors: one line and exit 1, as falcon.c's die.

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "falcon_cuda: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}
#define cudaCheck(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) die("%s:%d: CUDA: %s", __FILE__, __LINE__, cudaGetErrorString(e_)); } while (0)
#define cublasCheck(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) die("%s:%d: cuBLASLt status %d", __FILE__, __LINE__, (int)s_); } while (0)
#define ncclCheck(x) do { ncclResult_t r_ = (x); if (r_ != ncclSuccess) die("%s:%d: NCCL: %s", __FILE__, __LINE__, ncclGetErrorString(r_)); } while (0)

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

template <typename T> static T *dmalloc(size_t n) {
    T *p = NULL;
    cudaCheck(cudaMalloc((void **)&p, (n ? n : 1) * sizeof(T)));
    return p;
}

// Warp-wide sum and max: five butterfly shuffles leave the result in every lane.
static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// ----------------------------------------------------------------------------
// Parameters on the device. The same flat layout as falcon.c (param_carve), in three copies:
//   params   floatX (padded)   what the layers read; all-gathered after each update
//   grads    fp32   (padded)   weight gradients; cuBLASLt accumulates into them (bf16 inputs, fp32 output)
//   master   fp32   (shard)    this rank's slice of the weights, with AdamW's m and v beside it

// The biases are empty: the GPU trains only configurations without them (gpu_unsupported).
enum { P_WTE, P_LN1W, P_LN1B, P_LN2W, P_LN2B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB, P_FCW, P_FCB, P_FCPROJW,
       P_FCPROJB, P_LNFW, P_LNFB };

// ----------------------------------------------------------------------------
// Layers, in falcon.c's order, each forward followed by its backward.

// Matrix products through cuBLASLt, row-major as falcon.c writes them. A row-major (R, K) matrix is a
// column-major (K, R) one, so out (N, OC) = inp (N, IC) @ w^T is, column-major, out' (OC, N) = w'^T (OC, IC) x
// inp' (IC, N): cuBLASLt's A = w' transposed, B = inp'. D = alpha A B + beta C, where C may differ from D: that
// is the fused residual add (C = the block input x, D = the residual stream).
static cublasLtHandle_t lt_handle;
static void *lt_workspace;
static const size_t LT_WORKSPACE = 32 << 20;
static cudaStream_t stream;

static void matmul_lt(void *d, cudaDataType td, const void *a, int ta, const void *b, int tb, const void *c,
                      size_t m, size_t n, size_t k, float beta) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_X, ta ? k : m, ta ? m : k, ta ? k : m));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_X, tb ? n : k, tb ? k : n, tb ? n : k));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, td, m, n, m));
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &LT_WORKSPACE,
                                                     sizeof LT_WORKSPACE));
    // cuBLASLt assumes 256-byte aligned matrices unless told otherwise; per-layer slices of the parameter block
    // (and the tiny test models) can be less aligned, so the true alignment of each pointer is declared.
    const void *ptrs[4] = {a, b, c ? c : d, d};
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++) {
        uint32_t al = 256;
        while (al > 1 && (uintptr_t)ptrs[i] % al) al /= 2;
        cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al, sizeof al));
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasCheck(cublasLtMatmulAlgoGetHeuristic(lt_handle, desc, la, lb, lc, lc, pref, 1, &heur, &found));
    if (!found) die("cuBLASLt has no algorithm for a %zu x %zu x %zu product", m, n, k);
    float alpha = 1.0f;
    cublasCheck(cublasLtMatmul(lt_handle, desc, &alpha, a, la, b, lb, &beta, c ? c : d, lc, d, lc, &heur.algo,
                               lt_workspace, LT_WORKSPACE, stream));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
}

// out (N, OC) = inp (N, IC) @ w^T (+ resid (N, OC) when given: the residual add fused into the epilogue)
static void matmul_forward(floatX *out, const floatX *inp, const floatX *w, const floatX *resid, size_t N, size_t IC,
                           size_t OC) {
    matmul_lt(out, CUDA_R_X, w, 1, inp, 0, resid, OC, N, IC, resid ? 1.0f : 0.0f);
}

// dinp (N, IC) = dout @ w (+= when accumulate), dw (OC, IC) += dout^T @ inp in fp32
static void matmul_backward(floatX *dinp, float *dw, const floatX *dout, const floatX *inp, const floatX *w, size_t N,
                            size_t IC, size_t OC, int accumulate) {
    matmul_lt(dinp, CUDA_R_X, w, 0, dout, 0, NULL, IC, N, OC, accumulate ? 1.0f : 0.0f);
    matmul_lt(dw, CUDA_R_32F, inp, 0, dout, 1, NULL, IC, OC, N, 1.0f);
}

// LayerNorm, one warp per row, statistics in fp32. With two LayerNorms per block (40B/180B) both read the same x:
// one kernel computes both outputs from one read of x and one mean/rstd (identical for both, same eps).
__global__ void layernorm_forward_kernel(floatX *out, floatX *out2, float *mean, float *rstd, const floatX *inp,
                                         const floatX *w, const floatX *b, const floatX *w2, const floatX *b2,
                                         size_t N, size_t C, float eps) {
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatX *x = inp + row * C;
    float s = 0.0f;
    for (size_t i = lane; i < C; i += 32) s += ld(x[i]);
    float m = warp_sum(s) / (float)C, v = 0.0f;
    for (size_t i = lane; i < C; i += 32) v += (ld(x[i]) - m) * (ld(x[i]) - m);
    float r = rsqrtf(warp_sum(v) / (float)C + eps);
    for (size_t i = lane; i < C; i += 32) {
        float xh = (ld(x[i]) - m) * r;
        out[row * C + i] = st(xh * ld(w[i]) + ld(b[i]));
        if (out2) out2[row * C + i] = st(xh * ld(w2[i]) + ld(b2[i]));
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

static void layernorm_forward(floatX *out, floatX *out2, float *mean, float *rstd, const floatX *inp, const floatX *w,
                              const floatX *b, const floatX *w2, const floatX *b2, size_t N, size_t C, float eps) {
    layernorm_forward_kernel<<<ceil_div(N, 8), 256, 0, stream>>>(out, out2, mean, rstd, inp, w, b, w2, b2, N, C, eps);
    cudaCheck(cudaGetLastError());
}

// The backward of y = xhat w + b is linear in dout w, so two LayerNorms of the same x back-propagate as one with
// G = dout1 w1 + dout2 w2:  dx = dres + rstd (G - mean(G) - xhat mean(G xhat)), which also folds in the residual
// (dx starts as dres). dw, db: each block sums its rows in shared memory, then adds once into the fp32 gradients;
// when (4, C) floats do not fit in shared memory (Falcon-180B's C = 14848), it adds into them directly.
__global__ void layernorm_backward_kernel(floatX *dx, float *dw, float *db, float *dw2, float *db2, const floatX *dres,
                                          const floatX *dout, const floatX *dout2, const floatX *inp, const floatX *w,
                                          const floatX *w2, const float *mean, const float *rstd, size_t N, size_t C,
                                          int in_smem) {
    extern __shared__ float acc[];  // (4, C): dw, db, dw2, db2 of this block's rows
    int lane = threadIdx.x % 32, warps = blockDim.x / 32, nacc = dout2 ? 4 : 2;
    float *aw = in_smem ? acc : dw, *ab = in_smem ? acc + C : db;
    float *aw2 = in_smem ? acc + 2 * C : dw2, *ab2 = in_smem ? acc + 3 * C : db2;
    for (size_t i = threadIdx.x; in_smem && i < nacc * C; i += blockDim.x) acc[i] = 0.0f;
    __syncthreads();
    for (size_t row = (size_t)blockIdx.x * warps + threadIdx.x / 32; row < N; row += (size_t)gridDim.x * warps) {
        const floatX *x = inp + row * C, *g1 = dout + row * C, *g2 = dout2 ? dout2 + row * C : NULL;
        float m = mean[row], r = rstd[row], gm = 0.0f, gx = 0.0f;
        for (size_t i = lane; i < C; i += 32) {
            float xh = (ld(x[i]) - m) * r, G = ld(g1[i]) * ld(w[i]) + (g2 ? ld(g2[i]) * ld(w2[i]) : 0.0f);
            gm += G;
            gx += G * xh;
        }
        gm = warp_sum(gm) / (float)C;
        gx = warp_sum(gx) / (float)C;
        for (size_t i = lane; i < C; i += 32) {
            float xh = (ld(x[i]) - m) * r, G = ld(g1[i]) * ld(w[i]) + (g2 ? ld(g2[i]) * ld(w2[i]) : 0.0f);
            dx[row * C + i] = st(ld(dres[row * C + i]) + r * (G - gm - xh * gx));
            atomicAdd(&aw[i], ld(g1[i]) * xh);
            atomicAdd(&ab[i], ld(g1[i]));
            if (g2) { atomicAdd(&aw2[i], ld(g2[i]) * xh); atomicAdd(&ab2[i], ld(g2[i])); }
        }
    }
    __syncthreads();
    for (size_t i = threadIdx.x; in_smem && i < C; i += blockDim.x) {
        atomicAdd(&dw[i], acc[i]);
        atomicAdd(&db[i], acc[C + i]);
        if (dout2) { atomicAdd(&dw2[i], acc[2 * C + i]); atomicAdd(&db2[i], acc[3 * C + i]); }
    }
}

static int num_sms, max_smem;  // of the device: multiprocessors, shared memory a block may opt in to

static void layernorm_backward(floatX *dx, float *dw, float *db, float *dw2, float *db2, const floatX *dres,
                               const floatX *dout, const floatX *dout2, const floatX *inp, const floatX *w,
                               const floatX *w2, const float *mean, const float *rstd, size_t N, size_t C) {
    size_t smem = (dout2 ? 4 : 2) * C * sizeof(float);
    int in_smem = smem <= (size_t)max_smem;
    if (!in_smem) smem = 0;
    cudaCheck(cudaFuncSetAttribute(layernorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int blocks = (int)(ceil_div(N, 8) < (size_t)num_sms * 2 ? ceil_div(N, 8) : (size_t)num_sms * 2);
    layernorm_backward_kernel<<<blocks, 256, smem, stream>>>(dx, dw, db, dw2, db2, dres, dout, dout2, inp, w, w2, mean,
                                                             rstd, N, C, in_smem);
    cudaCheck(cudaGetLastError());
}

// Token embedding: out[n, :] = wte[inp[n], :]. The backward adds rows of dout into the fp32 dwte (atomics: two
// occurrences of one token in a batch write the same row).
__global__ void encoder_forward_kernel(floatX *out, const int *inp, const floatX *wte, size_t N, size_t C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N * C) out[i] = wte[(size_t)inp[i / C] * C + i % C];
}
static void encoder_forward(floatX *out, const int *inp, const floatX *wte, size_t N, size_t C) {
    encoder_forward_kernel<<<ceil_div(N * C, 256), 256, 0, stream>>>(out, inp, wte, N, C);
    cudaCheck(cudaGetLastError());
}

__global__ void encoder_backward_kernel(float *dwte, const floatX *dout, const int *inp, size_t N, size_t C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N * C) atomicAdd(&dwte[(size_t)inp[i / C] * C + i % C], ld(dout[i]));
}
static void encoder_backward(float *dwte, const floatX *dout, const int *inp, size_t N, size_t C) {
    encoder_backward_kernel<<<ceil_div(N * C, 256), 256, 0, stream>>>(dwte, dout, inp, N, C);
    cudaCheck(cudaGetLastError());
}

// RoPE, rotate-half, in place on the fused qkv rows: one thread per (token, rotated head, pair i < HS/2).
// The Q and K heads of group g sit at rows (g (qpk + 2) + j) HS, j < qpk + 1 (falcon.c's q_off, k_off); V is not
// rotated. sign = -1 applies the inverse rotation: the backward pass.
__global__ void rope_kernel(floatX *qkv, const int *pos, const float *cosb, const float *sinb, size_t N, size_t NKV,
                            size_t qpk, size_t HS, float sign) {
    size_t h2 = HS / 2, heads = NKV * (qpk + 1), i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * heads * h2) return;
    size_t n = i / (heads * h2), hh = i / h2 % heads, d = i % h2, g = hh / (qpk + 1), j = hh % (qpk + 1);
    floatX *x = qkv + n * NKV * (qpk + 2) * HS + (g * (qpk + 2) + j) * HS;
    float c = cosb[(size_t)pos[n] * h2 + d], s = sign * sinb[(size_t)pos[n] * h2 + d];
    float a = ld(x[d]), b = ld(x[d + h2]);
    x[d] = st(a * c - b * s);
    x[d + h2] = st(b * c + a * s);
}
static void rope_forward(floatX *qkv, const int *pos, const float *cosb, const float *sinb, const GpuSpec *c, size_t N,
                         float sign) {
    size_t qpk = c->NH / c->NKV, total = N * c->NKV * (qpk + 1) * (c->HS / 2);
    rope_kernel<<<ceil_div(total, 256), 256, 0, stream>>>(qkv, pos, cosb, sinb, N, c->NKV, qpk, c->HS, sign);
    cudaCheck(cudaGetLastError());
}
static void rope_backward(floatX *dqkv, const int *pos, const float *cosb, const float *sinb, const GpuSpec *c,
                          size_t N) {
    rope_forward(dqkv, pos, cosb, sinb, c, N, -1.0f);
}

// ----------------------------------------------------------------------------
// Flash attention. The T x T matrix of scores is never stored: keys and values stream through shared memory in
// tiles of FA_BC = 32 (one warp lane per key), and each query row keeps a running maximum m, a running sum l of
// exp(s - m) and an unnormalised output o, rescaled by exp(m_old - m_new) whenever a tile raises the maximum
// (the online softmax). The host reference flash_attention_forward_ref in PART 1 runs the same loops in C.
//
// Work split (forward). A block owns one K/V group g of one sequence b, a chunk of FA_HB query heads of that
// group and a tile of Br = FA_ROWS / FA_HB query positions: FA_ROWS (head, position) rows in all, 4 per warp.
// Every K/V tile it loads serves all of them: for multi-query attention (NKV = 1) up to 8 heads read the one
// K/V head from shared memory, which is where the memory traffic of grouped attention is saved.
// Inside a warp two layouts alternate: for scores, lane j owns key j of the tile (a dot product over HS read
// from shared memory); for the output, lane d owns dimensions d, d + 32, ... of o (at most HS / 32 = 4 values).
#define FA_WARPS 8
#define FA_ROWS 32          // (head, query) rows per block, FA_ROWS / FA_WARPS per warp
#define FA_MAXD 4           // HS <= 128: dimensions per lane
#define FA_PAD 1            // a K row of shared memory padded by one float: lane j reading row j hits bank (j + i) % 32

struct FaShape {
    size_t T, NH, NKV, HS, QKV, C, qpk, hb;  // hb = heads per block (a power of two dividing FA_ROWS)
    const int *span_end;                     // (B, T) or NULL: see attn_visible in falcon.c
};

static __device__ __forceinline__ bool fa_visible(size_t t, size_t t2, const int *se) {
    return t2 <= t && (!se || (int)t <= se[t2]);
}

// What the forward and the backward kernel both derive from their block's sequence b and K/V group g: the
// sequence's tree spans (NULL: causal), the thread's warp and lane, the scale 1/sqrt(HS) of the scores, the
// sequence's rows of qkv, and the columns of the group's key and value heads in a row (a group's qpk query heads
// come first, then its key head, then its value head). Each kernel unpacks it into locals of the same names.
struct FaBlock {
    const int *se;
    int warp, lane;
    float scale;
    const floatX *base;
    size_t kcol, vcol;
};

static __device__ __forceinline__ FaBlock fa_block(const FaShape &s, const floatX *qkv, size_t b, size_t g) {
    size_t kcol = (g * (s.qpk + 2) + s.qpk) * s.HS;
    return FaBlock{s.span_end ? s.span_end + b * s.T : NULL, (int)(threadIdx.x / 32), (int)(threadIdx.x % 32),
                   rsqrtf((float)s.HS), qkv + b * s.T * s.QKV, kcol, kcol + s.HS};
}

__global__ void __launch_bounds__(FA_WARPS * 32) flash_attention_forward_kernel(floatX *out, float *lse,
                                                                                const floatX *qkv, FaShape s) {
    extern __shared__ float sm[];
    size_t HS = s.HS, br = FA_ROWS / s.hb;
    float *qs = sm;                           // (FA_ROWS, HS)     the block's query rows, pre-scaled
    float *ks = qs + FA_ROWS * HS;            // (FA_BC, HS + 1)   key tile
    float *vs = ks + FA_BC * (HS + FA_PAD);   // (FA_BC, HS)       value tile
    size_t chunks = (s.qpk + s.hb - 1) / s.hb;
    size_t b = blockIdx.z, g = blockIdx.y / chunks, h0 = g * s.qpk + blockIdx.y % chunks * s.hb, q0 = blockIdx.x * br;
    auto [se, warp, lane, scale, base, kcol, vcol] = fa_block(s, qkv, b, g);
    // row r of the block: head h0 + r / br, position q0 + r % br. Missing heads/positions are marked invalid.
    for (size_t i = threadIdx.x; i < FA_ROWS * HS; i += blockDim.x) {
        size_t r = i / HS, h = h0 + r / br, t = q0 + r % br;
        bool ok = h < (g + 1) * s.qpk && t < s.T;
        qs[i] = ok ? ld(base[t * s.QKV + (g * (s.qpk + 2) + h - g * s.qpk) * HS + i % HS]) * scale : 0.0f;
    }
    const int R = FA_ROWS / FA_WARPS;
    float m[R], l[R], o[R][FA_MAXD];
    #pragma unroll
    for (int k = 0; k < R; k++) {
        m[k] = -INFINITY;
        l[k] = 0.0f;
        for (int d = 0; d < FA_MAXD; d++) o[k][d] = 0.0f;
    }
    size_t last = (q0 + br < s.T ? q0 + br : s.T) - 1;
    for (size_t k0 = 0; k0 <= last; k0 += FA_BC) {
        __syncthreads();  // the previous tile is no longer read
        for (size_t i = threadIdx.x; i < FA_BC * HS; i += blockDim.x) {
            size_t j = i / HS, d = i % HS, t2 = k0 + j;
            ks[j * (HS + FA_PAD) + d] = t2 < s.T ? ld(base[t2 * s.QKV + kcol + d]) : 0.0f;
            vs[j * HS + d] = t2 < s.T ? ld(base[t2 * s.QKV + vcol + d]) : 0.0f;
        }
        __syncthreads();
        #pragma unroll  // o[k][i] stays in registers only when k and i are compile-time constants
        for (int k = 0; k < R; k++) {
            size_t r = (size_t)warp * R + k, t = q0 + r % br, t2 = k0 + lane;
            // scores: lane j = key k0 + j
            const float *q = qs + r * HS, *kr = ks + lane * (HS + FA_PAD);
            float sc = 0.0f;
            for (size_t d = 0; d < HS; d++) sc += q[d] * kr[d];
            bool vis = t < s.T && t2 < s.T && fa_visible(t, t2, se);
            sc = vis ? sc : -INFINITY;
            float mt = warp_max(sc);
            if (mt == -INFINITY) continue;  // nothing visible in this tile for this row
            float mn = fmaxf(m[k], mt), alpha = __expf(m[k] - mn), p = vis ? __expf(sc - mn) : 0.0f;
            l[k] = l[k] * alpha + warp_sum(p);
            m[k] = mn;
            // output: lane d owns dimensions d + 32 i; the probabilities come from their lanes by shuffles
            #pragma unroll
            for (int i = 0; i < FA_MAXD; i++) o[k][i] *= alpha;
            for (int j = 0; j < FA_BC; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j);
                #pragma unroll
                for (int i = 0; i < FA_MAXD; i++)
                    if (lane + 32 * i < (int)HS) o[k][i] += pj * vs[j * HS + lane + 32 * i];
            }
        }
    }
    #pragma unroll
    for (int k = 0; k < R; k++) {
        size_t r = (size_t)warp * R + k, h = h0 + r / br, t = q0 + r % br;
        if (h >= (g + 1) * s.qpk || t >= s.T) continue;
        #pragma unroll
        for (int i = 0; i < FA_MAXD; i++)
            if (lane + 32 * i < (int)HS) out[(b * s.T + t) * s.C + h * HS + lane + 32 * i] = st(o[k][i] / l[k]);
        if (lane == 0) lse[(b * s.NH + h) * s.T + t] = m[k] + logf(l[k]);
    }
}

static FaShape fa_shape(const GpuSpec *c, size_t T, const int *span_end) {
    size_t qpk = c->NH / c->NKV, hb = 1;
    while (hb * 2 <= qpk && hb * 2 <= 8) hb *= 2;
    FaShape s = {T, c->NH, c->NKV, c->HS, (c->NH + 2 * c->NKV) * c->HS, c->C, qpk, hb, span_end};
    return s;
}

// Backward, step 1: D[b, h, t] = dout_t . out_t (one warp per row).
__global__ void attention_backward_dot_kernel(float *D, const floatX *dout, const floatX *out, FaShape s, size_t B) {
    size_t row = (size_t)blockIdx.x * 8 + threadIdx.x / 32;  // row = (b, h, t)
    if (row >= B * s.NH * s.T) return;
    size_t t = row % s.T, h = row / s.T % s.NH, b = row / (s.T * s.NH), off = (b * s.T + t) * s.C + h * s.HS;
    float x = 0.0f;
    for (size_t d = threadIdx.x % 32; d < s.HS; d += 32) x += ld(dout[off + d]) * ld(out[off + d]);
    x = warp_sum(x);
    if (threadIdx.x % 32 == 0) D[row] = x;
}

// Backward, step 2: a block owns one tile of FA_BC keys of one K/V group g of sequence b, and visits every query
// row of every head of the group at or after the tile (causality). Lane j owns key j: it recomputes the
// probability p = exp(q.k scale - lse), and adds p dout into dv_j and ds q into dk_j, both in shared memory;
// the block's warps take query rows in turn, so the additions to dk, dv are shared-memory atomics. dq of a row
// gathers ds k over the tile's 32 keys (lane d owns dimensions d + 32 i) and is added into the fp32 dq_acc with
// global atomics: dq is the only gradient that many blocks write. At the end the block writes its dk, dv rows:
// nobody else owns them.
__global__ void __launch_bounds__(FA_WARPS * 32) flash_attention_backward_kernel(floatX *dqkv, float *dq_acc,
                                                                                 const floatX *dout, const float *lse,
                                                                                 const float *D, const floatX *qkv,
                                                                                 FaShape s) {
    extern __shared__ float sm[];
    size_t HS = s.HS, HP = HS + FA_PAD;
    float *ks = sm, *vs = ks + FA_BC * HP, *dks = vs + FA_BC * HP, *dvs = dks + FA_BC * HP;  // (FA_BC, HS + 1) each
    size_t b = blockIdx.z, g = blockIdx.y, k0 = (size_t)blockIdx.x * FA_BC;
    auto [se, warp, lane, scale, base, kcol, vcol] = fa_block(s, qkv, b, g);
    for (size_t i = threadIdx.x; i < FA_BC * HS; i += blockDim.x) {
        size_t j = i / HS, d = i % HS, t2 = k0 + j;
        ks[j * HP + d] = t2 < s.T ? ld(base[t2 * s.QKV + kcol + d]) : 0.0f;
        vs[j * HP + d] = t2 < s.T ? ld(base[t2 * s.QKV + vcol + d]) : 0.0f;
        dks[j * HP + d] = dvs[j * HP + d] = 0.0f;
    }
    __syncthreads();
    size_t t2 = k0 + lane, rows = (s.T - k0) * s.qpk;
    for (size_t r = warp; r < rows; r += FA_WARPS) {
        size_t h = g * s.qpk + r / (s.T - k0), t = k0 + r % (s.T - k0);
        const floatX *q = base + t * s.QKV + (g * (s.qpk + 2) + h - g * s.qpk) * HS;
        const floatX *go = dout + (b * s.T + t) * s.C + h * HS;
        bool vis = t2 < s.T && fa_visible(t, t2, se);
        float sc = 0.0f, dp = 0.0f;
        for (size_t d = 0; d < HS; d++) {
            sc += ld(q[d]) * ks[lane * HP + d];
            dp += ld(go[d]) * vs[lane * HP + d];
        }
        size_t row = (b * s.NH + h) * s.T + t;
        float p = vis ? __expf(sc * scale - lse[row]) : 0.0f, ds = p * (dp - D[row]) * scale;
        for (size_t d = 0; d < HS; d++) {
            atomicAdd(&dvs[lane * HP + d], p * ld(go[d]));
            atomicAdd(&dks[lane * HP + d], ds * ld(q[d]));
        }
        for (int i = 0; i < FA_MAXD; i++) {
            size_t d = lane + 32 * i;
            float acc = 0.0f;
            for (int j = 0; j < FA_BC; j++) {
                float dsj = __shfl_sync(0xffffffffu, ds, j);
                if (d < HS) acc += dsj * ks[j * HP + d];
            }
            if (d < HS && acc != 0.0f) atomicAdd(&dq_acc[((b * s.T + t) * s.NH + h) * HS + d], acc);
        }
    }
    __syncthreads();
    for (size_t i = threadIdx.x; i < FA_BC * HS; i += blockDim.x) {
        size_t j = i / HS, d = i % HS;
        if (k0 + j >= s.T) continue;
        floatX *row = dqkv + (b * s.T + k0 + j) * s.QKV;
        row[kcol + d] = st(dks[j * HP + d]);
        row[vcol + d] = st(dvs[j * HP + d]);
    }
}

// Backward, last step: the fp32 accumulators into dqkv (N rows of QKV). dq_acc (N, NH, HS) holds the query rows;
// dk_part, dv_part (N, NH, HS), when given, the key and value gradients of every query head, summed here over the
// heads of each group (the tensor-core kernel leaves them per head so that no two blocks add into one row).
__global__ void attention_backward_finish_kernel(floatX *dqkv, const float *dq_acc, const float *dk_part,
                                                 const float *dv_part, FaShape s, size_t N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * s.QKV) return;
    size_t n = i / s.QKV, col = i % s.QKV, g = col / ((s.qpk + 2) * s.HS), j = col / s.HS % (s.qpk + 2), d = col % s.HS;
    const float *rows = dq_acc + n * s.NH * s.HS + d;  // row n, dimension d of every head
    if (j < s.qpk) { dqkv[i] = st(rows[(g * s.qpk + j) * s.HS]); return; }
    if (!dk_part) return;  // the scalar kernel wrote k and v itself
    const float *part = (j == s.qpk ? dk_part : dv_part) + (rows - dq_acc);
    float x = 0.0f;
    for (size_t h = g * s.qpk; h < (g + 1) * s.qpk; h++) x += part[h * s.HS];
    dqkv[i] = st(x);
}

// ----------------------------------------------------------------------------
// Flash attention on the tensor cores: the same algorithm as the two kernels above, with every product (q k^T,
// p v, and in the backward v dout^T, p^T dout, ds^T q, ds k) as warp-wide mma.sync m16n8k16 instructions: bf16
// operands, fp32 accumulators. They serve the bf16 build for head sizes 32 and 64 (every Falcon's is 64); the fp32
// build, whose parity with falcon.c needs fp32 products, and other head sizes keep the kernels above.
//
// One mma multiplies a 16 x 16 tile A by a 16 x 8 tile B. Lane l holds, with fr = l / 4 and fc = 2 (l % 4):
//   A: 4 registers of 2 bf16: (row fr, cols fc, fc+1), (fr + 8, fc..), (fr, fc + 8..), (fr + 8, fc + 8..)
//   B: 2 registers: (rows fc, fc+1 of column fr), (rows fc + 8, fc + 9 of column fr)
//   C: 4 floats:    (row fr, cols fc, fc+1), (row fr + 8, cols fc, fc+1)
// Two C tiles side by side (16 x 16) hold exactly A's layout, so scores computed as C become the A operand of the
// next product after rounding to bf16, without passing through shared memory. B's pairs run down a column: a B
// operand is read from a row-major copy when its k runs along the rows of memory (k^T, q^T, dout^T), and from a
// transposed copy in shared memory when k runs across them (v, dout, q, k as the right factor).
#ifndef FALCON_FP32
#define FM_TILE 64                 // query rows (forward) or keys (backward) per block: 16 per warp, 4 warps
#define FM_TP (FM_TILE + 8)        // row stride of a transposed tile: 8 bf16 of padding spread lanes over banks
#define FM_LOG2E 1.4426950408889634f  // scores times log2 e: e^x = 2^(x log2 e), one exp2f

static __device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // lo in the low half: the lower column of the pair
    return *reinterpret_cast<uint32_t *>(&v);
}
static __device__ __forceinline__ uint32_t ld_pair(const floatX *p) { return *reinterpret_cast<const uint32_t *>(p); }

// C tiles j = 2 kk, 2 kk + 1 of x (16 x 8 each) as the A operand for columns [16 kk, 16 kk + 16)
static __device__ __forceinline__ void c_to_a(uint32_t a[4], const float x[][4], int kk) {
    a[0] = pack_bf16(x[2 * kk][0], x[2 * kk][1]);
    a[1] = pack_bf16(x[2 * kk][2], x[2 * kk][3]);
    a[2] = pack_bf16(x[2 * kk + 1][0], x[2 * kk + 1][1]);
    a[3] = pack_bf16(x[2 * kk + 1][2], x[2 * kk + 1][3]);
}

// acc (16 x FM_TILE: C tiles j) += A (16 x HS, the HS / 16 operands a) times x^T, x a row-major tile (FM_TILE, HS + 8)
// in shared memory: the scores q k^T, and in the backward k q^T and v dout^T.
template <int HS>
static __device__ __forceinline__ void mma_times_rows(float acc[FM_TILE / 8][4], const uint32_t a[HS / 16][4],
                                                      const floatX *x, int fr, int fc) {
    #pragma unroll
    for (int j = 0; j < FM_TILE / 8; j++)
        #pragma unroll
        for (int kk = 0; kk < HS / 16; kk++) {
            const floatX *xr = x + (8 * j + fr) * (HS + 8) + 16 * kk + fc;
            mma_bf16(acc[j], a[kk], ld_pair(xr), ld_pair(xr + 8));
        }
}

// acc (16 x HS: C tiles nd) += A (16 x 16, the operand a) times rows [16 kk, 16 kk + 16) of y, y stored transposed
// in shared memory (HS, FM_TP): p v in the forward, p^T dout, ds^T q and ds k in the backward.
template <int HS>
static __device__ __forceinline__ void mma_times_cols(float acc[HS / 8][4], const uint32_t a[4], const floatX *yt,
                                                      int kk, int fr, int fc) {
    #pragma unroll
    for (int nd = 0; nd < HS / 8; nd++) {
        const floatX *yr = yt + (8 * nd + fr) * FM_TP + 16 * kk + fc;
        mma_bf16(acc[nd], a, ld_pair(yr), ld_pair(yr + 8));
    }
}

// A operands of 16 rows (t, t + 8: this lane's two rows) of one head, HS wide, straight from device memory;
// rows at or past T read as zeros.
template <int HS>
static __device__ __forceinline__ void load_a(uint32_t a[HS / 16][4], const floatX *base, size_t stride, size_t col,
                                              const size_t t[2], size_t T, int fc) {
    #pragma unroll
    for (int kk = 0; kk < HS / 16; kk++)
        #pragma unroll
        for (int r = 0; r < 4; r++)
            a[kk][r] = t[r & 1] < T ? ld_pair(base + t[r & 1] * stride + col + 16 * kk + fc + 8 * (r >> 1)) : 0u;
}

// Rows [t0, t0 + FM_TILE) of one head (columns [col, col + HS) of rows `stride` apart) into shared memory,
// row-major (rowm, row stride HS + 8) and/or transposed (trans: (HS, FM_TP)); rows at or past T read as zeros.
// 16-byte loads: 8 bf16 per thread and step.
template <int HS>
static __device__ void load_tile(floatX *rowm, floatX *trans, const floatX *base, size_t stride, size_t col,
                                 size_t t0, size_t T) {
    for (int i = threadIdx.x; i < FM_TILE * HS / 8; i += blockDim.x) {
        int j = i / (HS / 8), d = i % (HS / 8) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (t0 + j < T) v = *reinterpret_cast<const uint4 *>(base + (t0 + j) * stride + col + d);
        if (rowm) *reinterpret_cast<uint4 *>(rowm + j * (HS + 8) + d) = v;
        if (trans) {
            const floatX *e = reinterpret_cast<const floatX *>(&v);
            for (int k = 0; k < 8; k++) trans[(d + k) * FM_TP + j] = e[k];
        }
    }
}

// Forward: a block owns FM_TILE query rows of one head h of sequence b (warp w: rows 16 w .. 16 w + 15) and streams
// the keys and values of h's group through shared memory, FM_TILE at a time, up to its last row (causality). The
// scores are kept in base 2 (scaled by log2 e) so that the exponentials are exp2; lse is written in base e.
template <int HS>
__global__ void __launch_bounds__(128) flash_attention_forward_mma(floatX *out, float *lse, const floatX *qkv, FaShape s) {
    __shared__ __align__(16) floatX ks[FM_TILE * (HS + 8)];  // (FM_TILE, HS + 8)  the key tile
    __shared__ __align__(16) floatX vt[HS * FM_TP];          // (HS, FM_TP)        the value tile, transposed
    size_t b = blockIdx.z, h = blockIdx.y, g = h / s.qpk, q0 = (size_t)(gridDim.x - 1 - blockIdx.x) * FM_TILE;
    auto [se, warp, lane, scale, base, kcol, vcol] = fa_block(s, qkv, b, g);
    int fr = lane / 4, fc = 2 * (lane % 4);
    size_t qcol = (g * (s.qpk + 2) + h % s.qpk) * HS, t[2] = {q0 + 16 * warp + fr, q0 + 16 * warp + fr + 8};
    uint32_t qa[HS / 16][4];
    load_a<HS>(qa, base, s.QKV, qcol, t, s.T, fc);
    float o[HS / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, sl = scale * FM_LOG2E;
    size_t end = q0 + FM_TILE < s.T ? q0 + FM_TILE : s.T;  // keys [0, end) can be visible to the block's rows
    for (size_t k0 = 0; k0 < end; k0 += FM_TILE) {
        __syncthreads();  // the previous tile is no longer read
        load_tile<HS>(ks, NULL, base, s.QKV, kcol, k0, s.T);
        load_tile<HS>(NULL, vt, base, s.QKV, vcol, k0, s.T);
        __syncthreads();
        float sc[FM_TILE / 8][4] = {};  // scores: C tile j = keys k0 + 8 j ..
        mma_times_rows<HS>(sc, qa, ks, fr, fc);
        float mx[2] = {-INFINITY, -INFINITY};
        #pragma unroll
        for (int j = 0; j < FM_TILE / 8; j++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                size_t tq = t[e >> 1], t2 = k0 + 8 * j + fc + (e & 1);
                sc[j][e] = tq < s.T && fa_visible(tq, t2, se) ? sc[j][e] * sl : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], sc[j][e]);
            }
        float mu[2], alpha[2];  // the new maximum (0 while a row has seen nothing) and the rescaling of the old sums
        #pragma unroll
        for (int r = 0; r < 2; r++) {  // a row's 16 scores of this tile sit in 4 lanes: fr fixed, lane % 4 varying
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float mn = fmaxf(m[r], mx[r]);
            mu[r] = mn == -INFINITY ? 0.0f : mn;
            alpha[r] = exp2f(m[r] - mu[r]);
            m[r] = mn;
            l[r] *= alpha[r];
        }
        #pragma unroll
        for (int j = 0; j < FM_TILE / 8; j++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                sc[j][e] = exp2f(sc[j][e] - mu[e >> 1]);
                l[e >> 1] += sc[j][e];
            }
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd++)
            #pragma unroll
            for (int e = 0; e < 4; e++) o[nd][e] *= alpha[e >> 1];
        #pragma unroll
        for (int kk = 0; kk < FM_TILE / 16; kk++) {  // o += p v, 16 keys at a time
            uint32_t pa[4];
            c_to_a(pa, sc, kk);
            mma_times_cols<HS>(o, pa, vt, kk, fr, fc);
        }
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        if (t[r] >= s.T) continue;
        floatX *orow = out + (b * s.T + t[r]) * s.C + h * HS + fc;
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd++)
            *reinterpret_cast<uint32_t *>(orow + 8 * nd) = pack_bf16(o[nd][2 * r] / l[r], o[nd][2 * r + 1] / l[r]);
        if (fc == 0) lse[(b * s.NH + h) * s.T + t[r]] = (m[r] + log2f(l[r])) / FM_LOG2E;
    }
}

// Backward: a block owns FM_TILE keys of one query head h of sequence b (warp w: keys 16 w .. 16 w + 15) and visits
// the query tiles at and after them. With its keys as the rows, each warp computes p^T and dp^T = v dout^T, then
// ds^T = p^T (dp^T - D), and accumulates dv += p^T dout and dk += ds^T q in registers. dq = ds k needs every key of
// the tile for each query row: ds goes through shared memory, each warp takes 16 query rows and adds them into the
// fp32 dq_acc with atomics. dk and dv stay per head (dk_part, dv_part), summed over the group by the finish kernel.
template <int HS>
__global__ void __launch_bounds__(128) flash_attention_backward_mma(float *dq_acc, float *dk_part, float *dv_part,
                                                                    const floatX *dout, const float *lse,
                                                                    const float *D, const floatX *qkv, FaShape s) {
    extern __shared__ __align__(16) unsigned char fm_smem[];
    floatX *qs = reinterpret_cast<floatX *>(fm_smem);  // (FM_TILE, HS + 8)  the query tile
    floatX *qt = qs + FM_TILE * (HS + 8);              // (HS, FM_TP)        the query tile, transposed
    floatX *gs = qt + HS * FM_TP;                      // (FM_TILE, HS + 8)  dout of the query tile
    floatX *gt = gs + FM_TILE * (HS + 8);              // (HS, FM_TP)        dout, transposed
    floatX *kt = gt + HS * FM_TP;                      // (HS, FM_TP)        the block's keys, transposed
    floatX *dss = kt + HS * FM_TP;                     // (FM_TILE, FM_TP)   ds [query][key]
    float *ls = reinterpret_cast<float *>(dss + FM_TILE * FM_TP);  // (FM_TILE) lse of the query rows, base 2
    float *Ds = ls + FM_TILE;                                      // (FM_TILE) D of the query rows
    size_t b = blockIdx.z, h = blockIdx.y, g = h / s.qpk, k0 = (size_t)blockIdx.x * FM_TILE;
    auto [se, warp, lane, scale, base, kcol, vcol] = fa_block(s, qkv, b, g);
    int fr = lane / 4, fc = 2 * (lane % 4);
    size_t qcol = (g * (s.qpk + 2) + h % s.qpk) * HS, t2[2] = {k0 + 16 * warp + fr, k0 + 16 * warp + fr + 8};
    int last[2];  // the last query row that sees each of this lane's two keys (-1: a key past T)
    for (int r = 0; r < 2; r++) last[r] = t2[r] >= s.T ? -1 : se ? se[t2[r]] : (int)s.T - 1;
    uint32_t ka[HS / 16][4], va[HS / 16][4];
    load_a<HS>(ka, base, s.QKV, kcol, t2, s.T, fc);
    load_a<HS>(va, base, s.QKV, vcol, t2, s.T, fc);
    load_tile<HS>(NULL, kt, base, s.QKV, kcol, k0, s.T);
    float dk[HS / 8][4] = {}, dv[HS / 8][4] = {}, sl = scale * FM_LOG2E;
    const floatX *gbase = dout + b * s.T * s.C;
    for (size_t q0 = k0; q0 < s.T; q0 += FM_TILE) {  // query tiles before k0 see none of its keys
        __syncthreads();  // the previous tile is no longer read
        load_tile<HS>(qs, qt, base, s.QKV, qcol, q0, s.T);
        load_tile<HS>(gs, gt, gbase, s.C, h * HS, q0, s.T);
        for (int i = threadIdx.x; i < FM_TILE; i += blockDim.x) {
            size_t row = (b * s.NH + h) * s.T + q0 + i;
            ls[i] = q0 + i < s.T ? lse[row] * FM_LOG2E : INFINITY;
            Ds[i] = q0 + i < s.T ? D[row] : 0.0f;
        }
        __syncthreads();
        float p[FM_TILE / 8][4] = {}, ds[FM_TILE / 8][4] = {};  // C tile j = queries q0 + 8 j ..
        mma_times_rows<HS>(p, ka, qs, fr, fc);   // k q^T
        mma_times_rows<HS>(ds, va, gs, fr, fc);  // v dout^T, then ds below
        #pragma unroll
        for (int j = 0; j < FM_TILE / 8; j++)
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                int qi = 8 * j + fc + (e & 1);
                size_t tq = q0 + qi;
                bool vis = t2[e >> 1] <= tq && (long)tq <= last[e >> 1];
                p[j][e] = vis ? exp2f(p[j][e] * sl - ls[qi]) : 0.0f;
                ds[j][e] = p[j][e] * (ds[j][e] - Ds[qi]);
            }
        #pragma unroll
        for (int kk = 0; kk < FM_TILE / 16; kk++) {  // dv += p^T dout, dk += ds^T q: 16 queries at a time
            uint32_t pa[4], sa[4];
            c_to_a(pa, p, kk);
            c_to_a(sa, ds, kk);
            mma_times_cols<HS>(dv, pa, gt, kk, fr, fc);
            mma_times_cols<HS>(dk, sa, qt, kk, fr, fc);
        }
        #pragma unroll
        for (int j = 0; j < FM_TILE / 8; j++)
            #pragma unroll
            for (int e = 0; e < 4; e++) dss[(8 * j + fc + (e & 1)) * FM_TP + 16 * warp + fr + 8 * (e >> 1)] = st(ds[j][e]);
        __syncthreads();
        float dq[HS / 8][4] = {};  // warp w: query rows q0 + 16 w .., over all FM_TILE keys of the block
        #pragma unroll
        for (int kk = 0; kk < FM_TILE / 16; kk++) {
            uint32_t a[4];
            #pragma unroll
            for (int r = 0; r < 4; r++) a[r] = ld_pair(dss + (16 * warp + fr + 8 * (r & 1)) * FM_TP + 16 * kk + fc + 8 * (r >> 1));
            mma_times_cols<HS>(dq, a, kt, kk, fr, fc);
        }
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            size_t tq = q0 + 16 * warp + fr + 8 * r;
            if (tq >= s.T) continue;
            float *row = dq_acc + ((b * s.T + tq) * s.NH + h) * HS + fc;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++) {
                atomicAdd(row + 8 * nd, dq[nd][2 * r] * scale);
                atomicAdd(row + 8 * nd + 1, dq[nd][2 * r + 1] * scale);
            }
        }
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        if (t2[r] >= s.T) continue;
        size_t off = ((b * s.T + t2[r]) * s.NH + h) * HS + fc;
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd++) {
            *reinterpret_cast<float2 *>(dk_part + off + 8 * nd) = make_float2(dk[nd][2 * r] * scale, dk[nd][2 * r + 1] * scale);
            *reinterpret_cast<float2 *>(dv_part + off + 8 * nd) = make_float2(dv[nd][2 * r], dv[nd][2 * r + 1]);
        }
    }
}

template <int HS>
static void attention_forward_mma(floatX *out, float *lse, const floatX *qkv, FaShape s, size_t B) {
    dim3 grid((unsigned)ceil_div(s.T, FM_TILE), (unsigned)s.NH, (unsigned)B);
    flash_attention_forward_mma<HS><<<grid, 128, 0, stream>>>(out, lse, qkv, s);
}

template <int HS>
static void attention_backward_mma(float *dq_acc, float *dk_part, float *dv_part, const floatX *dout,
                                   const float *lse, const float *D, const floatX *qkv, FaShape s, size_t B) {
    size_t smem = (2 * FM_TILE * (HS + 8) + 3 * HS * FM_TP + FM_TILE * FM_TP) * sizeof(floatX) + 2 * FM_TILE * sizeof(float);
    cudaCheck(cudaFuncSetAttribute(flash_attention_backward_mma<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)ceil_div(s.T, FM_TILE), (unsigned)s.NH, (unsigned)B);
    flash_attention_backward_mma<HS><<<grid, 128, smem, stream>>>(dq_acc, dk_part, dv_part, dout, lse, D, qkv, s);
}
#endif

// The floats of scratch attention_backward needs: dq_acc, dk_part, dv_part (B T NH HS each) and D (B NH T).
static size_t attention_scratch_floats(const GpuSpec *c, size_t B, size_t T) {
    return 3 * B * T * c->NH * c->HS + B * c->NH * T;
}

// out (B, T, C), lse (B, NH, T) kept for the backward pass.
static void attention_forward(floatX *out, float *lse, const floatX *qkv, const int *span_end, const GpuSpec *c,
                              size_t B, size_t T) {
    FaShape s = fa_shape(c, T, span_end);
#ifndef FALCON_FP32
    if (c->HS == 32 || c->HS == 64) {
        if (c->HS == 32) attention_forward_mma<32>(out, lse, qkv, s, B);
        else attention_forward_mma<64>(out, lse, qkv, s, B);
        cudaCheck(cudaGetLastError());
        return;
    }
#endif
    size_t br = FA_ROWS / s.hb, smem = (FA_ROWS * c->HS + FA_BC * (2 * c->HS + FA_PAD)) * sizeof(float);
    cudaCheck(cudaFuncSetAttribute(flash_attention_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)ceil_div(T, br), (unsigned)(c->NKV * ceil_div(s.qpk, s.hb)), (unsigned)B);
    flash_attention_forward_kernel<<<grid, FA_WARPS * 32, smem, stream>>>(out, lse, qkv, s);
    cudaCheck(cudaGetLastError());
}

// dqkv is written (not accumulated): attention is the only consumer of qkv. scratch: attention_scratch_floats.
static void attention_backward(floatX *dqkv, float *scratch, const floatX *dout, const floatX *out, const float *lse,
                               const floatX *qkv, const int *span_end, const GpuSpec *c, size_t B, size_t T) {
    FaShape s = fa_shape(c, T, span_end);
    size_t N = B * T, nq = N * c->NH * c->HS;
    float *dq_acc = scratch, *dk_part = scratch + nq, *dv_part = dk_part + nq, *D = dv_part + nq;
    attention_backward_dot_kernel<<<ceil_div(B * c->NH * T, 8), 256, 0, stream>>>(D, dout, out, s, B);
    cudaCheck(cudaMemsetAsync(dq_acc, 0, nq * sizeof(float), stream));
#ifndef FALCON_FP32
    if (c->HS == 32 || c->HS == 64) {
        if (c->HS == 32) attention_backward_mma<32>(dq_acc, dk_part, dv_part, dout, lse, D, qkv, s, B);
        else attention_backward_mma<64>(dq_acc, dk_part, dv_part, dout, lse, D, qkv, s, B);
        attention_backward_finish_kernel<<<ceil_div(N * s.QKV, 256), 256, 0, stream>>>(dqkv, dq_acc, dk_part, dv_part, s, N);
        cudaCheck(cudaGetLastError());
        return;
    }
#endif
    size_t smem = 4 * FA_BC * (c->HS + FA_PAD) * sizeof(float);
    cudaCheck(cudaFuncSetAttribute(flash_attention_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)ceil_div(T, FA_BC), (unsigned)c->NKV, (unsigned)B);
    flash_attention_backward_kernel<<<grid, FA_WARPS * 32, smem, stream>>>(dqkv, dq_acc, dout, lse, D, qkv, s);
    attention_backward_finish_kernel<<<ceil_div(N * s.QKV, 256), 256, 0, stream>>>(dqkv, dq_acc, NULL, NULL, s, N);
    cudaCheck(cudaGetLastError());
}

// GELU, the exact erf form HF's "gelu" uses (cuBLASLt's GELU epilogue is the tanh approximation, which differs
// in the 4th decimal: that is why it is not fused into the matmul).
__global__ void gelu_forward_kernel(floatX *out, const floatX *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { float x = ld(inp[i]); out[i] = st(0.5f * x * (1.0f + erff(x * 0.70710678118654752f))); }
}
static void gelu_forward(floatX *out, const floatX *inp, size_t n) {
    gelu_forward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(out, inp, n);
    cudaCheck(cudaGetLastError());
}

// dinp = dout gelu'(x), gelu'(x) = Phi(x) + x phi(x); written in place over dout (it is not needed again).
__global__ void gelu_backward_kernel(floatX *d, const floatX *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = ld(inp[i]), cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    d[i] = st(ld(d[i]) * (cdf + x * __expf(-0.5f * x * x) * 0.3989422804014327f));
}
static void gelu_backward(floatX *d, const floatX *inp, size_t n) {
    gelu_backward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(d, inp, n);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------
// The classifier: logits = lnf @ wte^T, cross-entropy and z-loss, fused so that the (N, V) fp32 logits never
// exist. Rows go through in chunks of CLS_ROWS: cuBLASLt writes the chunk's logits in floatX, one block per row
// computes lse = logsumexp (fp32), the row's loss and, in the backward pass, overwrites its logits in place
// with dlogit_v = scale [softmax_v (1 + 2 zc lse) - [v == target]]; the chunk's two backward products follow
// before the buffer is reused. The backward recomputes the chunk's logits (2 N C V FLOPs more; see docs/gpu.md).
#define CLS_ROWS 1024

__global__ void crossentropy_kernel(floatX *logits, float *lse, float *losses, const int *targets, size_t V, float zc,
                                    float scale, int backward) {
    __shared__ float red[32];
    size_t n = blockIdx.x;
    floatX *l = logits + n * V;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    // block-wide max, then sum of exp: two reductions through shared memory
    float mx = -INFINITY;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, ld(l[v]));
    mx = warp_max(mx);
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = warp_max(lane < warps ? red[lane] : -INFINITY);
    __syncthreads();
    float s = 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) s += __expf(ld(l[v]) - mx);
    s = warp_sum(s);
    if (lane == 0) red[warp] = s;
    __syncthreads();
    s = warp_sum(lane < warps ? red[lane] : 0.0f);
    float L = mx + logf(s);
    int tg = targets[n];
    if (!backward) {
        if (threadIdx.x == 0) {
            lse[n] = L;
            losses[2 * n] = tg >= 0 ? L - ld(l[tg]) : 0.0f;
            losses[2 * n + 1] = tg >= 0 ? zc * L * L : 0.0f;
        }
        return;
    }
    float f = tg >= 0 ? scale * (1.0f + 2.0f * zc * L) : 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x)
        l[v] = st(f * __expf(ld(l[v]) - L) - (tg >= 0 && v == (size_t)tg ? scale : 0.0f));
}

// ----------------------------------------------------------------------------
// Collectives and the optimizer.

// sum of squares of x, added into *out (fp32 per thread, then one atomic per block)
__global__ void sumsq_kernel(float *out, const float *x, size_t n) {
    __shared__ float red[32];
    float s = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) s += x[i] * x[i];
    s = warp_sum(s);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = warp_sum(threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f);
        if (threadIdx.x == 0) atomicAdd(out, s);
    }
}

// AdamW on this rank's shard [begin, end) of the flat vector: fp32 master weights, moments and (reduced, summed
// over ranks) gradients; gscale = clip factor / world. The updated weight is also written, rounded to floatX,
// into the full parameter copy that the all-gather then completes. bounds: start of each parameter tensor.
struct AdamArgs {
    size_t bounds[NUM_PARAMS_T + 1];
    int decays[NUM_PARAMS_T];
    float lr, beta1, beta2, eps, wd, gscale, bc1, bc2_sqrt;
};

__global__ void adamw_kernel(floatX *params, float *master, float *m, float *v, const float *grads, size_t begin,
                             size_t n, AdamArgs a) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t gi = begin + i;
    int k = 0;
    while (k + 1 < NUM_PARAMS_T && gi >= a.bounds[k + 1]) k++;
    float g = grads[i] * a.gscale;
    float mi = m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    float vi = v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    float p = master[i] * (a.decays[k] ? 1.0f - a.lr * a.wd : 1.0f);
    p -= a.lr / a.bc1 * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
    master[i] = p;
    params[gi] = st(p);
}

__global__ void to_floatx_kernel(floatX *out, const float *in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = st(in[i]);
}
__global__ void to_float_kernel(float *out, const floatX *in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ld(in[i]);
}

// ----------------------------------------------------------------------------
// The model on the device.

enum { A_ENCODED, A_LN1, A_LN2, A_QKV, A_ATTY, A_FCH, A_FCH_GELU, A_RESIDUAL, A_LNF, NUM_ACTS_X };  // floatX
enum { A_LN_MEAN, A_LN_RSTD, A_LNF_MEAN, A_LNF_RSTD, A_LSE_ATT, A_LSE, A_LOSSES, NUM_ACTS_F };  // fp32
enum { G_DRES, G_DX, G_DLN1, G_DLN2, G_DQKV, G_DATTY, G_DFCH, G_LOGITS, NUM_GRAD_ACTS };       // floatX scratch

struct GpuFalcon {
    GpuSpec c;
    int rank, world;
    ncclComm_t comm;
    size_t num_params;
    size_t offsets[NUM_PARAMS_T + 1];   // start of each parameter tensor in the flat vector
    size_t shard, padded, begin, end;   // ZeRO-1: made by zero_shard in PART 1
    floatX *params;                     // (padded)
    float *grads;                       // (padded) fp32
    float *master, *adam_m, *adam_v;    // (shard) each, one allocation
    float *rope_cos, *rope_sin;         // (maxT, HS/2)
    size_t B, T;                        // activations are sized for this batch shape
    floatX *acts[NUM_ACTS_X];
    float *facts[NUM_ACTS_F];
    floatX *gacts[NUM_GRAD_ACTS];
    float *att_scratch;                 // attention backward scratch (attention_scratch_floats)
    int *inputs, *targets, *pos, *span_end;  // (B, T) on the device
    float *norm_buf;                    // one float
    float *host_losses;                 // (2 B T) pinned
    size_t counted;                     // targets >= 0 in the last forward pass
    float zloss;                        // its z-loss coefficient
    int masked;                         // it had a span_end mask
};

static floatX *P(GpuFalcon *g, int i) { return g->params + g->offsets[i]; }
static float *G(GpuFalcon *g, int i) { return g->grads + g->offsets[i]; }

static void rope_tables(float *cosb, float *sinb, size_t maxT, size_t HS, float theta) {
    float *hc = (float *)malloc(maxT * (HS / 2) * sizeof(float)), *hs = (float *)malloc(maxT * (HS / 2) * sizeof(float));
    if (!hc || !hs) die("out of memory");
    for (size_t i = 0; i < HS / 2; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)HS);  // fp32, as falcon.c and HF
        for (size_t p = 0; p < maxT; p++) {
            hc[p * (HS / 2) + i] = cosf((float)p * inv_freq);
            hs[p * (HS / 2) + i] = sinf((float)p * inv_freq);
        }
    }
    cudaCheck(cudaMemcpy(cosb, hc, maxT * (HS / 2) * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(sinb, hs, maxT * (HS / 2) * sizeof(float), cudaMemcpyHostToDevice));
    free(hc);
    free(hs);
}

// Loads full fp32 weights (falcon.c's flat layout) into the floatX copy and this rank's master shard.
static void falcon_set_params(GpuFalcon *g, const float *params) {
    float *tmp = dmalloc<float>(g->num_params);
    cudaCheck(cudaMemcpy(tmp, params, g->num_params * sizeof(float), cudaMemcpyHostToDevice));
    to_floatx_kernel<<<ceil_div(g->num_params, 256), 256>>>(g->params, tmp, g->num_params);
    cudaCheck(cudaMemcpy(g->master, tmp + g->begin, (g->end - g->begin) * sizeof(float), cudaMemcpyDeviceToDevice));
    cudaCheck(cudaFree(tmp));
}

static GpuFalcon *falcon_build(const GpuSpec *c, const float *params, const GpuDist *d) {
    GpuFalcon *g = (GpuFalcon *)calloc(1, sizeof(GpuFalcon));
    if (!g) die("out of memory");
    // the attention kernels' limit: a lane holds at most FA_MAXD dimensions of a head
    if (c->HS > 32 * FA_MAXD) die("head size %zu: the attention kernels support at most %d", c->HS, 32 * FA_MAXD);
    g->c = *c;
    g->rank = d->rank;
    g->world = d->world;
    for (int i = 0; i < NUM_PARAMS_T; i++) g->offsets[i + 1] = g->offsets[i] + c->sizes[i];
    g->num_params = g->offsets[NUM_PARAMS_T];
    g->shard = d->shard;
    g->padded = d->padded;
    g->begin = d->begin;
    g->end = d->end;
    if (g->world > 1) {
        ncclUniqueId uid;
        memcpy(&uid, d->nccl_id, sizeof uid);
        ncclCheck(ncclCommInitRank(&g->comm, g->world, uid, g->rank));
    }
    g->params = dmalloc<floatX>(g->padded);
    g->grads = dmalloc<float>(g->padded);
    g->master = dmalloc<float>(3 * g->shard);
    g->adam_m = g->master + g->shard;
    g->adam_v = g->adam_m + g->shard;
    cudaCheck(cudaMemset(g->params, 0, g->padded * sizeof(floatX)));
    cudaCheck(cudaMemset(g->master, 0, 3 * g->shard * sizeof(float)));
    cudaCheck(cudaMemset(g->grads, 0, g->padded * sizeof(float)));
    g->rope_cos = dmalloc<float>(c->maxT * c->HS / 2);
    g->rope_sin = dmalloc<float>(c->maxT * c->HS / 2);
    rope_tables(g->rope_cos, g->rope_sin, c->maxT, c->HS, c->rope_theta);
    g->norm_buf = dmalloc<float>(1);
    falcon_set_params(g, params);
    return g;
}

static void falcon_free_acts(GpuFalcon *g) {
    if (!g->B) return;
    cudaCheck(cudaFree(g->acts[0]));
    cudaCheck(cudaFree(g->facts[0]));
    cudaCheck(cudaFree(g->gacts[0]));
    cudaCheck(cudaFree(g->att_scratch));
    cudaCheck(cudaFree(g->inputs));
    cudaCheck(cudaFreeHost(g->host_losses));
    g->B = g->T = 0;
}

static void falcon_free(GpuFalcon *g) {
    falcon_free_acts(g);
    if (g->comm) ncclCommDestroy(g->comm);
    cudaCheck(cudaFree(g->params));
    cudaCheck(cudaFree(g->grads));
    cudaCheck(cudaFree(g->master));
    cudaCheck(cudaFree(g->rope_cos));
    cudaCheck(cudaFree(g->rope_sin));
    cudaCheck(cudaFree(g->norm_buf));
    free(g);
}

// Activations for one (B, T): per layer what the backward pass reads (LayerNorm outputs, qkv, attention output,
// MLP hidden before and after GELU, residual), as falcon.c keeps them, minus the (B, NH, T, T) attention matrix,
// which flash attention replaces by its (B, NH, T) log-sum-exp.
static void falcon_ensure_acts(GpuFalcon *g, size_t B, size_t T) {
    if (g->B == B && g->T == T) return;
    falcon_free_acts(g);
    const GpuSpec *c = &g->c;
    size_t L = c->L, C = c->C, N = B * T, QKV = (c->NH + 2 * c->NKV) * c->HS, ln2 = c->num_ln == 2;
    size_t rows = N < CLS_ROWS ? N : CLS_ROWS;
    size_t xs[NUM_ACTS_X] = {N * C, L * N * C, ln2 * L * N * C, L * N * QKV, L * N * C, L * N * c->FF, L * N * c->FF, L * N * C, N * C};
    size_t fs[NUM_ACTS_F] = {L * N, L * N, N, N, L * B * c->NH * T, N, 2 * N};
    size_t gs[NUM_GRAD_ACTS] = {N * C, N * C, N * C, N * C, N * QKV, N * C, N * c->FF, rows * c->V};
    size_t tx = 0, tf = 0, tg = 0;
    for (int i = 0; i < NUM_ACTS_X; i++) tx += xs[i];
    for (int i = 0; i < NUM_ACTS_F; i++) tf += fs[i];
    for (int i = 0; i < NUM_GRAD_ACTS; i++) tg += gs[i];
    floatX *px = dmalloc<floatX>(tx), *pg = dmalloc<floatX>(tg);
    float *pf = dmalloc<float>(tf);
    for (int i = 0; i < NUM_ACTS_X; i++) { g->acts[i] = px; px += xs[i]; }
    for (int i = 0; i < NUM_ACTS_F; i++) { g->facts[i] = pf; pf += fs[i]; }
    for (int i = 0; i < NUM_GRAD_ACTS; i++) { g->gacts[i] = pg; pg += gs[i]; }
    g->att_scratch = dmalloc<float>(attention_scratch_floats(c, B, T));
    g->inputs = dmalloc<int>(4 * N);
    g->targets = g->inputs + N;
    g->pos = g->targets + N;
    g->span_end = g->pos + N;
    cudaCheck(cudaMallocHost((void **)&g->host_losses, 2 * N * sizeof(float)));
    g->B = B;
    g->T = T;
}

// Runs the classifier over row chunks. backward = 0: logits, lse and per-row losses (and, with `logits_out`,
// a copy of the fp32 logits for checks). backward = 1: dlnf = dlogits @ wte, dwte += dlogits^T lnf.
static void classifier(GpuFalcon *g, int backward, float zc, float dloss, size_t count, float *logits_out) {
    const GpuSpec *c = &g->c;
    size_t N = g->B * g->T, C = c->C, V = c->V;
    floatX *chunk = g->gacts[G_LOGITS];
    for (size_t n0 = 0; n0 < N; n0 += CLS_ROWS) {
        size_t rows = N - n0 < CLS_ROWS ? N - n0 : CLS_ROWS;
        const floatX *lnf = g->acts[A_LNF] + n0 * C;
        matmul_forward(chunk, lnf, P(g, P_WTE), NULL, rows, C, V);
        float scale = count ? dloss / (float)count : 0.0f;
        crossentropy_kernel<<<rows, 512, 0, stream>>>(chunk, g->facts[A_LSE] + n0, g->facts[A_LOSSES] + 2 * n0,
                                                      g->targets + n0, V, zc, scale, backward);
        cudaCheck(cudaGetLastError());
        if (logits_out) {
            float *tmp = dmalloc<float>(rows * V);
            to_float_kernel<<<ceil_div(rows * V, 256), 256, 0, stream>>>(tmp, chunk, rows * V);
            cudaCheck(cudaMemcpy(logits_out + n0 * V, tmp, rows * V * sizeof(float), cudaMemcpyDeviceToHost));
            cudaCheck(cudaFree(tmp));
        }
        if (backward) matmul_backward(g->gacts[G_DLN1] + n0 * C, G(g, P_WTE), chunk, lnf, P(g, P_WTE), rows, C, V, 0);
    }
}

// The forward pass: falcon.c's falcon_forward, layer by layer, with the same activation names.
static float falcon_forward(GpuFalcon *g, const int *inputs, const int *targets, const int *pos, const int *span_end,
                            size_t B, size_t T, float zc, float *loss_z) {
    const GpuSpec *c = &g->c;
    size_t C = c->C, N = B * T, QKV = (c->NH + 2 * c->NKV) * c->HS, FF = c->FF;
    falcon_ensure_acts(g, B, T);
    int *hp = (int *)malloc(2 * N * sizeof(int));
    if (!hp) die("out of memory");
    size_t counted = 0;
    int masked = 0;  // as in falcon.c: spans that all end at T - 1 are plain causal attention
    for (size_t n = 0; n < N; n++) {
        if (inputs[n] < 0 || (size_t)inputs[n] >= c->V) die("token id %d at position %zu is outside [0, %zu)", inputs[n], n, c->V);
        hp[n] = pos ? pos[n] : (int)(n % T);
        if (hp[n] < 0 || (size_t)hp[n] >= c->maxT) die("position %d is outside [0, %zu)", hp[n], c->maxT);
        hp[N + n] = targets ? targets[n] : -100;
        if (hp[N + n] != -100 && (hp[N + n] < 0 || (size_t)hp[N + n] >= c->V))
            die("target id %d at position %zu is outside [0, %zu) and is not -100", hp[N + n], n, c->V);
        if (span_end && (span_end[n] < (int)(n % T) || span_end[n] >= (int)T))
            die("span_end %d at position %zu is outside [t, T) = [%zu, %zu)", span_end[n], n, n % T, T);
        masked |= span_end && span_end[n] != (int)T - 1;
        counted += hp[N + n] >= 0;
    }
    cudaCheck(cudaMemcpyAsync(g->inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaMemcpyAsync(g->pos, hp, N * sizeof(int), cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaMemcpyAsync(g->targets, hp + N, N * sizeof(int), cudaMemcpyHostToDevice, stream));
    if (masked) cudaCheck(cudaMemcpyAsync(g->span_end, span_end, N * sizeof(int), cudaMemcpyHostToDevice, stream));
    const int *se = masked ? g->span_end : NULL;
    floatX **a = g->acts;
    float **f = g->facts;
    encoder_forward(a[A_ENCODED], g->inputs, P(g, P_WTE), N, C);
    for (size_t l = 0; l < c->L; l++) {
        const floatX *x = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL] + (l - 1) * N * C;
        floatX *ln1 = a[A_LN1] + l * N * C, *qkv = a[A_QKV] + l * N * QKV, *atty = a[A_ATTY] + l * N * C;
        floatX *fch = a[A_FCH] + l * N * FF, *fchg = a[A_FCH_GELU] + l * N * FF, *res = a[A_RESIDUAL] + l * N * C;
        floatX *ln2 = c->num_ln == 2 ? a[A_LN2] + l * N * C : ln1;
        layernorm_forward(ln1, c->num_ln == 2 ? ln2 : NULL, f[A_LN_MEAN] + l * N, f[A_LN_RSTD] + l * N, x,
                          P(g, P_LN1W) + l * C, P(g, P_LN1B) + l * C, P(g, P_LN2W) + l * C, P(g, P_LN2B) + l * C, N, C,
                          c->eps);
        // attention branch; its projection adds x: res = x + atty @ Wdense^T
        matmul_forward(qkv, ln1, P(g, P_QKVW) + l * QKV * C, NULL, N, C, QKV);
        rope_forward(qkv, g->pos, g->rope_cos, g->rope_sin, c, N, 1.0f);
        attention_forward(atty, f[A_LSE_ATT] + l * B * c->NH * T, qkv, se, c, B, T);
        matmul_forward(res, atty, P(g, P_ATTPROJW) + l * C * C, x, N, C, C);
        // MLP branch, in parallel: res += gelu(ln2 @ Wfc^T) @ Wproj^T
        matmul_forward(fch, ln2, P(g, P_FCW) + l * FF * C, NULL, N, C, FF);
        gelu_forward(fchg, fch, N * FF);
        matmul_forward(res, fchg, P(g, P_FCPROJW) + l * C * FF, res, N, FF, C);
    }
    const floatX *xL = a[A_RESIDUAL] + (c->L - 1) * N * C;
    layernorm_forward(a[A_LNF], NULL, f[A_LNF_MEAN], f[A_LNF_RSTD], xL, P(g, P_LNFW), P(g, P_LNFB), NULL, NULL, N, C, c->eps);
    g->counted = counted;
    g->zloss = zc;
    g->masked = masked;
    classifier(g, 0, zc, 0.0f, counted, NULL);
    cudaCheck(cudaMemcpyAsync(g->host_losses, f[A_LOSSES], 2 * N * sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    double ce = 0.0, z = 0.0;
    for (size_t n = 0; n < N; n++) { ce += g->host_losses[2 * n]; z += g->host_losses[2 * n + 1]; }
    free(hp);
    *loss_z = counted ? (float)(z / (double)counted) : 0.0f;
    return counted ? (float)((ce + z) / (double)counted) : 0.0f;
}

// The backward pass, falcon.c's falcon_backward: the forward's calls in reverse, fp32 weight gradients added
// into g->grads (scaled by dloss), activation gradients in floatX scratch reused layer after layer.
static void falcon_backward(GpuFalcon *g, float dloss) {
    const GpuSpec *c = &g->c;
    size_t B = g->B, T = g->T, C = c->C, N = B * T, QKV = (c->NH + 2 * c->NKV) * c->HS, FF = c->FF;
    floatX **a = g->acts, **d = g->gacts;
    float **f = g->facts;
    classifier(g, 1, g->zloss, dloss, g->counted, NULL);  // d[G_DLN1] = gradient of lnf
    const floatX *xL = a[A_RESIDUAL] + (c->L - 1) * N * C;
    cudaCheck(cudaMemsetAsync(d[G_DRES], 0, N * C * sizeof(floatX), stream));
    layernorm_backward(d[G_DRES], G(g, P_LNFW), G(g, P_LNFB), NULL, NULL, d[G_DRES], d[G_DLN1], NULL, xL, P(g, P_LNFW),
                       NULL, f[A_LNF_MEAN], f[A_LNF_RSTD], N, C);
    for (size_t l = c->L; l-- > 0;) {
        const floatX *x = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL] + (l - 1) * N * C;
        const floatX *ln1 = a[A_LN1] + l * N * C, *qkv = a[A_QKV] + l * N * QKV, *atty = a[A_ATTY] + l * N * C;
        const floatX *fch = a[A_FCH] + l * N * FF, *fchg = a[A_FCH_GELU] + l * N * FF;
        const floatX *ln2 = c->num_ln == 2 ? a[A_LN2] + l * N * C : ln1;
        floatX *dres = d[G_DRES], *dln2 = c->num_ln == 2 ? d[G_DLN2] : d[G_DLN1];
        // MLP branch
        matmul_backward(d[G_DFCH], G(g, P_FCPROJW) + l * C * FF, dres, fchg, P(g, P_FCPROJW) + l * C * FF, N, FF, C, 0);
        gelu_backward(d[G_DFCH], fch, N * FF);
        matmul_backward(dln2, G(g, P_FCW) + l * FF * C, d[G_DFCH], ln2, P(g, P_FCW) + l * FF * C, N, C, FF, 0);
        // attention branch
        matmul_backward(d[G_DATTY], G(g, P_ATTPROJW) + l * C * C, dres, atty, P(g, P_ATTPROJW) + l * C * C, N, C, C, 0);
        attention_backward(d[G_DQKV], g->att_scratch, d[G_DATTY], atty, f[A_LSE_ATT] + l * B * c->NH * T, qkv,
                           g->masked ? g->span_end : NULL, c, B, T);
        rope_backward(d[G_DQKV], g->pos, g->rope_cos, g->rope_sin, c, N);
        matmul_backward(d[G_DLN1], G(g, P_QKVW) + l * QKV * C, d[G_DQKV], ln1, P(g, P_QKVW) + l * QKV * C, N, C, QKV,
                        c->num_ln == 1);
        // LayerNorms back into the block input, plus the residual: dx = dres + LN backward
        int two = c->num_ln == 2;
        layernorm_backward(d[G_DX], G(g, P_LN1W) + l * C, G(g, P_LN1B) + l * C, two ? G(g, P_LN2W) + l * C : NULL,
                           two ? G(g, P_LN2B) + l * C : NULL, dres, d[G_DLN1], two ? d[G_DLN2] : NULL, x,
                           P(g, P_LN1W) + l * C, two ? P(g, P_LN2W) + l * C : NULL, f[A_LN_MEAN] + l * N,
                           f[A_LN_RSTD] + l * N, N, C);
        floatX *t = d[G_DRES];
        d[G_DRES] = d[G_DX];
        d[G_DX] = t;
    }
    encoder_backward(G(g, P_WTE), d[G_DRES], g->inputs, N, C);
}

// Reduce-scatters the gradients (world > 1: rank r receives the sum over ranks of its shard, in place at its
// offset of g->grads) and returns the global L2 norm of the mean gradient.
static float falcon_grad_norm(GpuFalcon *g) {
    float *mine = g->grads + g->shard * (size_t)g->rank;
    if (g->world > 1)
        ncclCheck(ncclReduceScatter(g->grads, mine, g->shard, ncclFloat, ncclSum, g->comm, stream));
    cudaCheck(cudaMemsetAsync(g->norm_buf, 0, sizeof(float), stream));
    sumsq_kernel<<<num_sms * 2, 256, 0, stream>>>(g->norm_buf, mine, g->shard);
    cudaCheck(cudaGetLastError());
    if (g->world > 1) ncclCheck(ncclAllReduce(g->norm_buf, g->norm_buf, 1, ncclFloat, ncclSum, g->comm, stream));
    float s;
    cudaCheck(cudaMemcpyAsync(&s, g->norm_buf, sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    return sqrtf(s) / (float)g->world;
}

// AdamW step t on this rank's shard, then all-gather of the updated floatX weights.
static void adamw_update(GpuFalcon *g, const GpuAdam *h, float lr, float norm, size_t t) {
    AdamArgs a;
    for (int i = 0; i <= NUM_PARAMS_T; i++) a.bounds[i] = g->offsets[i];
    for (int i = 0; i < NUM_PARAMS_T; i++) a.decays[i] = g->c.decays[i];
    float clip = h->grad_clip > 0.0f && h->grad_clip / (norm + 1e-6f) < 1.0f ? h->grad_clip / (norm + 1e-6f) : 1.0f;
    a.lr = lr;
    a.beta1 = h->beta1;
    a.beta2 = h->beta2;
    a.eps = h->eps;
    a.wd = h->weight_decay;
    a.gscale = clip / (float)g->world;
    a.bc1 = 1.0f - powf(h->beta1, (float)t);
    a.bc2_sqrt = sqrtf(1.0f - powf(h->beta2, (float)t));
    size_t n = g->end - g->begin;
    if (n) {
        adamw_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(g->params, g->master, g->adam_m, g->adam_v,
                                                           g->grads + g->shard * (size_t)g->rank, g->begin, n, a);
        cudaCheck(cudaGetLastError());
    }
    if (g->world > 1)
        ncclCheck(ncclAllGather(g->params + g->shard * (size_t)g->rank, g->params, g->shard, NCCL_X, g->comm, stream));
}

// Copies the full fp32 vectors to the host: weights and moments are all-gathered from the shards (through the
// gradient buffer as scratch: call between steps), gradients are copied as they are (world 1 only).
static void gather_shards(GpuFalcon *g, const float *shard_src, float *host) {
    float *buf = g->grads;
    cudaCheck(cudaMemcpyAsync(buf + g->shard * (size_t)g->rank, shard_src, g->shard * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    if (g->world > 1) ncclCheck(ncclAllGather(buf + g->shard * (size_t)g->rank, buf, g->shard, ncclFloat, g->comm, stream));
    cudaCheck(cudaMemcpyAsync(host, buf, g->num_params * sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
}

// ----------------------------------------------------------------------------
// The C interface for PART 1.

extern "C" int cuda_device_init(int local_rank, char *err, size_t errsize) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(err, errsize, "no CUDA GPU available (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return -1;
    }
    cudaCheck(cudaSetDevice(local_rank % n));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, local_rank % n));
    num_sms = prop.multiProcessorCount;
    max_smem = (int)prop.sharedMemPerBlockOptin;
    cudaCheck(cudaStreamCreate(&stream));
    cublasCheck(cublasLtCreate(&lt_handle));
    cudaCheck(cudaMalloc(&lt_workspace, LT_WORKSPACE));
    return 0;
}

extern "C" void cuda_nccl_id(unsigned char id[NCCL_ID_BYTES]) {
    ncclUniqueId uid;
    static_assert(sizeof uid == NCCL_ID_BYTES, "NCCL id size");
    ncclCheck(ncclGetUniqueId(&uid));
    memcpy(id, &uid, sizeof uid);
}

extern "C" GpuFalcon *cuda_falcon_build(const GpuSpec *s, const float *params, const GpuDist *d) {
    return falcon_build(s, params, d);
}

extern "C" float cuda_falcon_forward(GpuFalcon *g, const int *inputs, const int *targets, const int *pos,
                                     const int *span_end, size_t B, size_t T, float zloss, float *loss_z) {
    return falcon_forward(g, inputs, targets, pos, span_end, B, T, zloss, loss_z);
}

extern "C" void cuda_falcon_logits(GpuFalcon *g, float *out) {
    classifier(g, 0, g->zloss, 0.0f, g->counted, out);
}

extern "C" void cuda_falcon_zero_grad(GpuFalcon *g) {
    cudaCheck(cudaMemsetAsync(g->grads, 0, g->padded * sizeof(float), stream));
}

extern "C" void cuda_falcon_backward(GpuFalcon *g, float dloss) { falcon_backward(g, dloss); }
extern "C" float cuda_falcon_grad_norm(GpuFalcon *g) { return falcon_grad_norm(g); }
extern "C" void cuda_adamw_update(GpuFalcon *g, const GpuAdam *h, float lr, float norm, size_t t) {
    adamw_update(g, h, lr, norm, t);
}

extern "C" void cuda_falcon_gather(GpuFalcon *g, float *params, float *grads, float *adam_m, float *adam_v) {
    if (grads) {
        cudaCheck(cudaMemcpy(grads, g->grads, g->num_params * sizeof(float), cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < g->num_params; i++) grads[i] /= (float)g->world;
    }
    if (params) gather_shards(g, g->master, params);
    if (adam_m) gather_shards(g, g->adam_m, adam_m);
    if (adam_v) gather_shards(g, g->adam_v, adam_v);
}

extern "C" void cuda_adamw_set_state(GpuFalcon *g, const float *adam_m, const float *adam_v) {
    size_t n = g->end - g->begin;
    cudaCheck(cudaMemcpy(g->adam_m, adam_m + g->begin, n * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(g->adam_v, adam_v + g->begin, n * sizeof(float), cudaMemcpyHostToDevice));
}

extern "C" float cuda_mean_over_ranks(GpuFalcon *g, float x) {
    if (g->world == 1) return x;
    cudaCheck(cudaMemcpy(g->norm_buf, &x, sizeof(float), cudaMemcpyHostToDevice));
    ncclCheck(ncclAllReduce(g->norm_buf, g->norm_buf, 1, ncclFloat, ncclSum, g->comm, stream));
    cudaCheck(cudaMemcpyAsync(&x, g->norm_buf, sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    return x / (float)g->world;
}

extern "C" void cuda_falcon_free(GpuFalcon *g) { falcon_free(g); }

// Runs attention_forward and attention_backward once on host data (fp32 in and out, floatX on the device).
extern "C" void cuda_attention_run(const GpuSpec *c, const float *qkv, const int *span_end, const float *dout, size_t B,
                                   size_t T, float *out, float *lse, float *dqkv) {
    size_t QKV = (c->NH + 2 * c->NKV) * c->HS, N = B * T, big = N * (QKV > c->C ? QKV : c->C);
    float *tmp = dmalloc<float>(big), *dlse = dmalloc<float>(B * c->NH * T);
    float *scratch = dmalloc<float>(attention_scratch_floats(c, B, T));
    floatX *xq = dmalloc<floatX>(N * QKV), *xdq = dmalloc<floatX>(N * QKV), *xout = dmalloc<floatX>(N * c->C),
           *xdout = dmalloc<floatX>(N * c->C);
    int *se = span_end ? dmalloc<int>(N) : NULL;
    if (se) cudaCheck(cudaMemcpy(se, span_end, N * sizeof(int), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(tmp, qkv, N * QKV * sizeof(float), cudaMemcpyHostToDevice));
    to_floatx_kernel<<<ceil_div(N * QKV, 256), 256, 0, stream>>>(xq, tmp, N * QKV);
    cudaCheck(cudaMemcpyAsync(tmp, dout, N * c->C * sizeof(float), cudaMemcpyHostToDevice, stream));
    to_floatx_kernel<<<ceil_div(N * c->C, 256), 256, 0, stream>>>(xdout, tmp, N * c->C);
    attention_forward(xout, dlse, xq, se, c, B, T);
    attention_backward(xdq, scratch, xdout, xout, dlse, xq, se, c, B, T);
    to_float_kernel<<<ceil_div(N * c->C, 256), 256, 0, stream>>>(tmp, xout, N * c->C);
    cudaCheck(cudaMemcpyAsync(out, tmp, N * c->C * sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaMemcpyAsync(lse, dlse, B * c->NH * T * sizeof(float), cudaMemcpyDeviceToHost, stream));
    to_float_kernel<<<ceil_div(N * QKV, 256), 256, 0, stream>>>(tmp, xdq, N * QKV);
    cudaCheck(cudaMemcpyAsync(dqkv, tmp, N * QKV * sizeof(float), cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    cudaCheck(cudaFree(tmp)); cudaCheck(cudaFree(dlse)); cudaCheck(cudaFree(scratch)); cudaCheck(cudaFree(xq));
    cudaCheck(cudaFree(xdq)); cudaCheck(cudaFree(xout)); cudaCheck(cudaFree(xdout));
    if (se) cudaCheck(cudaFree(se));
}

// Times attention_forward and attention_backward alone on random qkv: fwd_s, bwd_s (iters) get the seconds of
// each of `iters` runs after one warm-up.
extern "C" void cuda_attention_bench(const GpuSpec *c, size_t B, size_t T, size_t iters, double *fwd_s, double *bwd_s) {
    size_t QKV = (c->NH + 2 * c->NKV) * c->HS, N = B * T;
    float *tmp = dmalloc<float>(N * QKV), *lse = dmalloc<float>(B * c->NH * T);
    float *scratch = dmalloc<float>(attention_scratch_floats(c, B, T));
    floatX *qkv = dmalloc<floatX>(N * QKV), *dqkv = dmalloc<floatX>(N * QKV), *out = dmalloc<floatX>(N * c->C);
    float *h = (float *)malloc(N * QKV * sizeof(float));
    if (!h) die("out of memory");
    uint64_t s = 1;
    for (size_t i = 0; i < N * QKV; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (float)((s >> 40) & 0xFFFF) / 65536.0f - 0.5f;
    }
    cudaCheck(cudaMemcpy(tmp, h, N * QKV * sizeof(float), cudaMemcpyHostToDevice));
    to_floatx_kernel<<<ceil_div(N * QKV, 256), 256, 0, stream>>>(qkv, tmp, N * QKV);
    cudaEvent_t e0, e1, e2;
    cudaCheck(cudaEventCreate(&e0));
    cudaCheck(cudaEventCreate(&e1));
    cudaCheck(cudaEventCreate(&e2));
    for (size_t k = 0; k <= iters; k++) {
        cudaCheck(cudaEventRecord(e0, stream));
        attention_forward(out, lse, qkv, NULL, c, B, T);
        cudaCheck(cudaEventRecord(e1, stream));
        attention_backward(dqkv, scratch, out, out, lse, qkv, NULL, c, B, T);
        cudaCheck(cudaEventRecord(e2, stream));
        cudaCheck(cudaEventSynchronize(e2));
        float f, b;
        cudaCheck(cudaEventElapsedTime(&f, e0, e1));
        cudaCheck(cudaEventElapsedTime(&b, e1, e2));
        if (k > 0) fwd_s[k - 1] = 1e-3 * f, bwd_s[k - 1] = 1e-3 * b;
    }
    cudaCheck(cudaEventDestroy(e0)); cudaCheck(cudaEventDestroy(e1)); cudaCheck(cudaEventDestroy(e2));
    free(h);
    cudaCheck(cudaFree(tmp)); cudaCheck(cudaFree(lse)); cudaCheck(cudaFree(scratch));
    cudaCheck(cudaFree(qkv)); cudaCheck(cudaFree(dqkv)); cudaCheck(cudaFree(out));
}
#endif  // __CUDACC__
