// Tests of falcon.c against HF transformers' FalconForCausalLM (reference files made by tests/make_reference.py)
// and against invariants: finite differences, gradient accumulation, checkpoint round trips, exact resume.
#include "../falcon.c"
#include "test.h"

#define REF "tests/ref"

// Tolerances. The references are fp32 computations in PyTorch; falcon.c sums in a different order, so the
// results differ by rounding only: ~1e-7 relative per operation, amplified by depth and softmax. We compare
// each tensor's largest absolute difference to its largest magnitude (scale): 1e-5 for logits and gradients,
// 1e-5 absolute for losses. A real bug (a swapped row, a wrong sign) moves them by 1e-2 or more.
#define TOL_REL 1e-5
#define TOL_LOSS 1e-5
#define TOL_TRAIN 2e-5   // after 10 AdamW steps rounding differences have compounded slightly
// Weights after 10 AdamW steps: Adam's update m / (sqrt(v) + eps) amplifies rounding wherever a gradient
// cancels to the size of eps. In the mqa reference one element of layer 1's dense weight has a step-0 gradient
// of -9.4e-9 (after clipping), so last-bit differences in that sum change its update by ~4e-5. A real optimizer
// bug (decay on the wrong tensors, a missing bias correction) moves weights by about lr = 1e-2.
#define TOL_WEIGHTS 1e-4

// Largest |a - b| relative to max(|b|) over n values.
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (x > d || x != x) d = x;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return d / s;
}

// Reads an I32 or F32 tensor of the reference file as it is.
static void *ref_raw(const SafeTensors *st, const char *name, size_t *numel) {
    const STensor *t = safetensors_find(st, name);
    if (!t) die("%s: reference tensor %s missing", st->path, name);
    void *buf = xmalloc(t->end - t->begin);
    if (fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET) || fread(buf, 1, t->end - t->begin, st->f) != t->end - t->begin)
        die("%s: cannot read %s", st->path, name);
    if (numel) *numel = t->numel;
    return buf;
}

// HF labels (B, T) -> falcon.c targets: targets[b, t] = labels[b, t + 1], the last position counts nothing.
static void labels_to_targets(int *targets, const int32_t *labels, size_t B, size_t T) {
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? labels[b * T + t + 1] : -100;
}

typedef struct {
    const SafeTensors *ref;
    const char *prefix;
    const float *base;
    double worst;
    char worst_name[160];
} CmpCtx;

static void cmp_one(void *ctx, const char *name, const size_t *shape, int ndim, size_t offset) {
    CmpCtx *cc = ctx;
    char full[200];
    snprintf(full, sizeof full, "%s%s", cc->prefix, name);
    size_t n;
    float *want = ref_raw(cc->ref, full, &n);
    (void)shape;
    (void)ndim;
    double d = rel_diff(cc->base + offset, want, n);
    if (d > cc->worst || d != d) {
        cc->worst = d;
        snprintf(cc->worst_name, sizeof cc->worst_name, "%s", name);
    }
    free(want);
}

static void test_parity(const char *layout) {
    char dir[256], path[300];
    Err e = {{0}};
    snprintf(dir, sizeof dir, REF "/%s", layout);
    Falcon m;
    if (falcon_load(&m, dir, &e)) { CHECK(0, "%s: load: %s", layout, e.msg); return; }
    SafeTensors ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (safetensors_open(&ref, path, &e)) die("%s", e.msg);
    const STensor *ti = safetensors_find(&ref, "input_ids");
    size_t B = ti->shape[0], T = ti->shape[1], V = m.config.V, n;
    int32_t *ids = ref_raw(&ref, "input_ids", NULL), *labels = ref_raw(&ref, "labels", NULL);
    int *targets = xmalloc(B * T * sizeof(int));
    labels_to_targets(targets, labels, B, T);
    float loss = falcon_forward(&m, ids, targets, NULL, B, T);
    float *want_logits = ref_raw(&ref, "logits", &n), *want_loss = ref_raw(&ref, "loss", NULL);
    CHECK(n == B * T * V, "%s: logits shape", layout);
    double dl = rel_diff(m.acts[A_LOGITS], want_logits, B * T * V);
    CHECK(dl < TOL_REL, "%s: logits match HF (max rel diff %.2e)", layout, dl);
    CHECK(fabs(loss - want_loss[0]) < TOL_LOSS, "%s: loss %.7f matches HF %.7f", layout, loss, want_loss[0]);
    falcon_zero_grad(&m);
    falcon_backward(&m, 1.0f);
    CmpCtx cc = {&ref, "grad.", m.grads_memory, 0.0, ""};
    param_foreach(&m.config, cmp_one, &cc);
    CHECK(cc.worst < TOL_REL, "%s: every parameter gradient matches HF (worst %.2e in %s)", layout, cc.worst, cc.worst_name);
    free(want_logits);
    free(want_loss);

    // 10 AdamW steps with the reference script's hyper-parameters
    falcon_free(&m);
    falcon_load(&m, dir, &e);
    AdamW opt = {.lr = 1e-2f, .lr_floor = 0.1f, .warmup = 3, .steps = 10, .beta1 = 0.9f, .beta2 = 0.95f,
                 .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 0.5f};
    adamw_build(&opt, m.num_params);
    int32_t *tids = ref_raw(&ref, "train.input_ids", NULL), *tlabels = ref_raw(&ref, "train.labels", NULL);
    float *wl = ref_raw(&ref, "train.losses", NULL), *wlr = ref_raw(&ref, "train.lrs", NULL);
    float *wn = ref_raw(&ref, "train.grad_norms", NULL);
    double worst_loss = 0.0, worst_lr = 0.0, worst_norm = 0.0;
    for (size_t s = 0; s < 10; s++) {
        labels_to_targets(targets, tlabels + s * B * T, B, T);
        float l = falcon_forward(&m, tids + s * B * T, targets, NULL, B, T);
        falcon_zero_grad(&m);
        falcon_backward(&m, 1.0f);
        float lr = adamw_lr(&opt, s);
        float norm = adamw_update(&opt, &m, lr);
        worst_loss = fmax(worst_loss, fabs(l - wl[s]));
        worst_lr = fmax(worst_lr, fabs(lr - wlr[s]) / wlr[s]);
        worst_norm = fmax(worst_norm, fabs(norm - wn[s]) / wn[s]);
    }
    CHECK(worst_lr < 1e-6, "%s: learning-rate schedule matches (worst rel diff %.2e)", layout, worst_lr);
    CHECK(worst_norm < TOL_TRAIN, "%s: gradient norms of 10 steps match (worst rel diff %.2e)", layout, worst_norm);
    CHECK(worst_loss < TOL_TRAIN, "%s: losses of 10 AdamW steps match (worst diff %.2e)", layout, worst_loss);
    CmpCtx fc = {&ref, "final.", m.params_memory, 0.0, ""};
    param_foreach(&m.config, cmp_one, &fc);
    CHECK(fc.worst < TOL_WEIGHTS, "%s: weights after 10 steps match (worst rel diff %.2e in %s)", layout, fc.worst, fc.worst_name);
    adamw_free(&opt);
    free(tids); free(tlabels); free(wl); free(wlr); free(wn);
    free(ids); free(labels); free(targets);
    safetensors_close(&ref);
    falcon_free(&m);
}

int main(void) {
    const char *layouts[] = {"mqa", "gqa", "gqa1"};
    for (int i = 0; i < 3; i++) test_parity(layouts[i]);
    return test_summary();
}
