// Tests of falcon.c against HF transformers' FalconForCausalLM (reference files made by tests/make_reference.py)
// and against invariants: finite differences, gradient accumulation, checkpoint round trips, exact resume.
#include "../falcon.c"
#include "test.h"
#include "trees.h"

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
    const Config *skip_key_bias;  // non-NULL: leave out the key rows of the QKV biases (see test_parity)
    double worst;
    char worst_name[160];
} CmpCtx;

static void cmp_one(void *ctx, const char *name, const size_t *shape, int ndim, size_t offset) {
    CmpCtx *cc = ctx;
    char full[200];
    snprintf(full, sizeof full, "%s%s", cc->prefix, name);
    size_t n;
    float *want = ref_raw(cc->ref, full, &n), *got = xmalloc(n * sizeof(float));
    memcpy(got, cc->base + offset, n * sizeof(float));
    (void)shape;
    (void)ndim;
    const Config *c = cc->skip_key_bias;
    if (c && strstr(name, "query_key_value.bias"))
        for (size_t g = 0; g < c->NKV; g++)
            for (size_t i = 0; i < c->HS; i++) got[k_off(c, g) + i] = want[k_off(c, g) + i] = 0.0f;
    double d = rel_diff(got, want, n);
    free(got);
    if (d > cc->worst || d != d) {
        cc->worst = d;
        snprintf(cc->worst_name, sizeof cc->worst_name, "%s", name);
    }
    free(want);
}

// One forward and backward of the model on a batch against the reference's logits, loss and every gradient.
static void check_against_ref(Falcon *m, const SafeTensors *ref, const char *what, const int *ids, const int *targets,
                              const int *pos, const int *span_end, size_t B, size_t T) {
    size_t V = m->config.V, n;
    float loss = falcon_forward(m, ids, targets, pos, span_end, B, T, FWD_LOGITS | FWD_BACKWARD);
    float *want_logits = ref_raw(ref, "logits", &n), *want_loss = ref_raw(ref, "loss", NULL);
    CHECK(n == B * T * V, "%s: logits shape", what);
    double dl = rel_diff(m->logits, want_logits, B * T * V);
    CHECK(dl < TOL_REL, "%s: logits match HF (max rel diff %.2e)", what, dl);
    CHECK(fabs(loss - want_loss[0]) < TOL_LOSS, "%s: loss %.7f matches HF %.7f", what, loss, want_loss[0]);
    falcon_zero_grad(m);
    falcon_backward(m, 1.0f);
    CmpCtx cc = {ref, "grad.", m->grads_memory, NULL, 0.0, ""};
    param_foreach(&m->config, cmp_one, &cc);
    CHECK(cc.worst < TOL_REL, "%s: every parameter gradient matches HF (worst %.2e in %s)", what, cc.worst, cc.worst_name);
    free(want_logits);
    free(want_loss);
}

// 10 AdamW steps from the reference model (reloaded into m) with the reference script's hyper-parameters: losses,
// learning rates, gradient norms and the final weights against HF's.
static void train_against_ref(Falcon *m, const char *dir, const SafeTensors *ref, const char *layout, int *targets,
                              size_t B, size_t T) {
    Err e = {{0}};
    falcon_free(m);
    falcon_load(m, dir, &e);
    AdamW opt = {.lr = 1e-2f, .lr_floor = 0.1f, .warmup = 3, .steps = 10, .beta1 = 0.9f, .beta2 = 0.95f,
                 .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 0.5f};
    adamw_build(&opt, m->num_params);
    int32_t *tids = ref_raw(ref, "train.input_ids", NULL), *tlabels = ref_raw(ref, "train.labels", NULL);
    float *wl = ref_raw(ref, "train.losses", NULL), *wlr = ref_raw(ref, "train.lrs", NULL);
    float *wn = ref_raw(ref, "train.grad_norms", NULL);
    double worst_loss = 0.0, worst_lr = 0.0, worst_norm = 0.0;
    for (size_t s = 0; s < 10; s++) {
        labels_to_targets(targets, tlabels + s * B * T, B, T);
        float l = falcon_forward(m, tids + s * B * T, targets, NULL, NULL, B, T, FWD_BACKWARD);
        falcon_zero_grad(m);
        falcon_backward(m, 1.0f);
        float lr = adamw_lr(&opt, s);
        float norm = falcon_grad_norm(m);
        adamw_update(&opt, m, lr, norm);
        worst_loss = fmax(worst_loss, fabs(l - wl[s]));
        worst_lr = fmax(worst_lr, fabs(lr - wlr[s]) / wlr[s]);
        worst_norm = fmax(worst_norm, fabs(norm - wn[s]) / wn[s]);
    }
    CHECK(worst_lr < 1e-6, "%s: learning-rate schedule matches (worst rel diff %.2e)", layout, worst_lr);
    CHECK(worst_norm < TOL_TRAIN, "%s: gradient norms of 10 steps match (worst rel diff %.2e)", layout, worst_norm);
    CHECK(worst_loss < TOL_TRAIN, "%s: losses of 10 AdamW steps match (worst diff %.2e)", layout, worst_loss);
    // With ALiBi a key's bias adds q . b_k to every score of a row, which the softmax ignores: its gradient is zero
    // but for rounding (~1e-9, checked above against HF's), and AdamW turns such noise into steps of about lr
    // whatever its size, in directions that differ between any two implementations. Those weights are left out.
    CmpCtx fc = {ref, "final.", m->params_memory, m->config.alibi && m->config.bias ? &m->config : NULL, 0.0, ""};
    param_foreach(&m->config, cmp_one, &fc);
    CHECK(fc.worst < TOL_WEIGHTS, "%s: weights after 10 steps match (worst rel diff %.2e in %s)", layout, fc.worst, fc.worst_name);
    adamw_free(&opt);
    free(tids); free(tlabels); free(wl); free(wlr); free(wn);
}

// Parity with HF on the reference batch; train: also the 10 AdamW steps.
static void test_parity(const char *layout, int train) {
    char dir[256], path[300];
    Err e = {{0}};
    snprintf(dir, sizeof dir, REF "/%s", layout);
    Falcon m;
    if (falcon_load(&m, dir, &e)) { CHECK(0, "%s: load: %s", layout, e.msg); return; }
    SafeTensors ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (safetensors_open(&ref, path, &e)) die("%s", e.msg);
    const STensor *ti = safetensors_find(&ref, "input_ids");
    size_t B = ti->shape[0], T = ti->shape[1];
    int32_t *ids = ref_raw(&ref, "input_ids", NULL), *labels = ref_raw(&ref, "labels", NULL);
    int *targets = xmalloc(B * T * sizeof(int));
    labels_to_targets(targets, labels, B, T);
    check_against_ref(&m, &ref, layout, ids, targets, NULL, NULL, B, T);
    if (m.config.alibi) {
        // ALiBi's score biases, every head at every position, are HF's to the bit: the same slopes, the same three
        // bf16 roundings, the same division by sqrt(HS)
        size_t n, NH = m.config.NH, maxT = m.config.maxT, bad = 0;
        float *want = ref_raw(&ref, "alibi", &n);
        for (size_t h = 0; h < NH && n == NH * maxT; h++)
            for (size_t j = 0; j < maxT; j++) bad += m.alibi[j * NH + h] != want[h * maxT + j];
        CHECK(n == NH * maxT && bad == 0, "%s: ALiBi table (%zu heads x %zu positions) equals HF's bit for bit (%zu differ)",
              layout, NH, maxT, bad);
        free(want);
    }

    if (train) train_against_ref(&m, dir, &ref, layout, targets, B, T);
    free(ids); free(labels); free(targets);
    safetensors_close(&ref);
    falcon_free(&m);
}


// Conversation trees packed into rows (tests/make_reference.py's pack_trees: two or three trees of different shapes
// per row, then padding), against HF run with the equivalent 4D mask and position ids.
static void test_tree_parity(const char *layout) {
    char dir[256], path[300];
    Err e = {{0}};
    snprintf(dir, sizeof dir, REF "/%s", layout);
    snprintf(path, sizeof path, REF "/tree_%s/ref.safetensors", layout);
    Falcon m;
    SafeTensors ref;
    if (falcon_load(&m, dir, &e) || safetensors_open(&ref, path, &e)) { CHECK(0, "%s trees: %s", layout, e.msg); return; }
    const STensor *ti = safetensors_find(&ref, "input_ids");
    size_t B = ti->shape[0], T = ti->shape[1];
    int32_t *ids = ref_raw(&ref, "input_ids", NULL), *targets = ref_raw(&ref, "targets", NULL);
    int32_t *pos = ref_raw(&ref, "position_ids", NULL), *span = ref_raw(&ref, "span_end", NULL);
    char what[64];
    snprintf(what, sizeof what, "%s, packed trees", layout);
    check_against_ref(&m, &ref, what, ids, targets, pos, span, B, T);
    free(ids); free(targets); free(pos); free(span);
    safetensors_close(&ref);
    falcon_free(&m);
}

// The z-loss has no HF counterpart: its gradient is checked by central finite differences on the logits.
static void test_zloss_gradient(void) {
    size_t N = 3, V = 7;
    float logits[21], d[21], lse[3], z;
    int targets[3] = {2, -100, 6};
    uint64_t rng = 7;
    for (size_t i = 0; i < N * V; i++) logits[i] = 3.0f * rng_normal(&rng);
    float zc = 0.1f;  // far above the paper's 1e-4, so that a wrong z-loss gradient cannot hide in the cross-entropy's
    crossentropy_forward_ref(lse, &z, logits, targets, N, V, zc);
    crossentropy_backward_ref(d, logits, lse, targets, N, V, zc, 1.0f);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < N * V; i++) {
        float keep = logits[i], h = 1e-2f, zp, zm;
        logits[i] = keep + h;
        float lp = crossentropy_forward_ref(lse, &zp, logits, targets, N, V, zc) + zp;
        logits[i] = keep - h;
        float lm = crossentropy_forward_ref(lse, &zm, logits, targets, N, V, zc) + zm;
        logits[i] = keep;
        double fd = ((double)lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(fd - d[i]));
        scale = fmax(scale, fabs(fd));
    }
    CHECK(worst / scale < 2e-3, "z-loss: gradient matches finite differences (rel %.2e)", worst / scale);
    crossentropy_forward_ref(lse, &z, logits, targets, N, V, zc);
    CHECK(z > 0.0f && fabsf(z - zc * (lse[0] * lse[0] + lse[2] * lse[2]) / 2.0f) < 1e-5f * z,
          "z-loss: value is coef x mean(lse^2) over counted tokens (%g)", z);
}

// SwiGLU is not HF's: besides the PyTorch reference (the "swiglu" layout), its gradient is checked by central finite
// differences of L = sum w . swiglu(x) for fixed random weights w, over gates and values of both signs.
static void test_swiglu_gradient(void) {
    size_t N = 3, FF = 5;
    float x[30], w[15], y[15], d[30] = {0};
    uint64_t rng = 17;
    for (size_t i = 0; i < 2 * N * FF; i++) x[i] = 2.0f * rng_normal(&rng);
    for (size_t i = 0; i < N * FF; i++) w[i] = rng_normal(&rng);
    swiglu_backward(d, x, w, N, FF);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < 2 * N * FF; i++) {
        double l[2];
        float keep = x[i], h = 1e-2f;
        for (int k = 0; k < 2; k++) {
            x[i] = keep + (k ? -h : h);
            swiglu_forward(y, x, N, FF);
            l[k] = 0.0;
            for (size_t j = 0; j < N * FF; j++) l[k] += (double)w[j] * y[j];
        }
        x[i] = keep;
        double fd = (l[0] - l[1]) / (2.0 * h);
        worst = fmax(worst, fabs(fd - d[i]));
        scale = fmax(scale, fabs(fd));
    }
    CHECK(worst / scale < 1e-3, "SwiGLU: gradient matches finite differences (rel %.2e)", worst / scale);
    swiglu_forward(y, x, N, FF);
    float g = x[2 * FF + 1], u = x[3 * FF + 1];  // row 1 (2 FF inputs), unit 1: the gate, then the value FF further
    CHECK(fabsf(y[FF + 1] - g / (1.0f + expf(-g)) * u) < 1e-6f, "SwiGLU: the gate is the first half of each row");
}

// The switches' configuration keys: defaults, the SwiGLU hidden size that matches the GELU MLP's parameter count,
// names of the LayerNorms and biases, and a config.json round trip.
static void test_switch_configs(void) {
    const char *json = "{\"vocab_size\": 100, \"hidden_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 6, "
                       "\"mlp_type\": \"swiglu\", \"parallel_attn\": false, \"bias\": true, \"multi_query\": false}";
    Config c, g;
    Err e = {{0}};
    int rc = config_parse(&c, json, strlen(json), "test.json", &e);
    CHECK(rc == 0 && c.swiglu && c.FF == 128 && c.sequential && c.bias && c.NKV == 6 && c.num_ln == 2,
          "switch keys parse; SwiGLU's default hidden size is round(2/3 x 4 x 48) = %zu (%s)", c.FF, e.msg);
    Config s = c;  // the matrices alone: the biases of the first MLP layer are FC = 2 FF long, not FF
    s.bias = 0;
    g = s;
    g.swiglu = 0;
    g.FF = 4 * 48;
    size_t pc = param_count(&s), pg = param_count(&g);
    CHECK(pc == pg, "SwiGLU with 128 hidden units has the GELU MLP's parameter count (%zu vs %zu)", pc, pg);
    char name[160];
    param_name(&c, P_LN2W, 1, name, sizeof name);
    CHECK(!strcmp(name, "transformer.h.1.post_attention_layernorm.weight"), "sequential: LN2 is %s", name);
    param_name(&c, P_FCPROJB, 0, name, sizeof name);
    CHECK(!strcmp(name, "transformer.h.0.mlp.dense_4h_to_h.bias"), "bias: %s", name);
    char path[300];
    snprintf(path, sizeof path, "/tmp/falcon-switch-config-%d.json", (int)getpid());
    Config back;
    char *text;
    size_t len;
    char jerr[200];
    rc = config_save(&c, path) || read_file(path, &text, &len, jerr, sizeof jerr);
    if (!rc) {
        rc = config_parse(&back, text, len, path, &e);
        free(text);
    }
    remove(path);
    CHECK(rc == 0 && memcmp(&back, &c, sizeof c) == 0, "config.json round trip keeps every switch (%s)", e.msg);
}

// Two micro-batches of one row, each backward scaled by 1/2, give the gradient of the batch of two rows.
static void test_accumulation(void) {
    Falcon m;
    Err e = {{0}};
    falcon_load(&m, REF "/gqa", &e);
    size_t B = 2, T = 9, V = m.config.V, np = m.num_params;
    int in[18], tg[18];
    uint64_t rng = 3;
    for (size_t i = 0; i < B * T; i++) { in[i] = (int)(rng_next(&rng) % V); tg[i] = (int)(rng_next(&rng) % V); }
    m.zloss_coef = 1e-4f;
    falcon_forward(&m, in, tg, NULL, NULL, B, T, FWD_BACKWARD);
    falcon_zero_grad(&m);
    falcon_backward(&m, 1.0f);
    float *full = xmalloc(np * sizeof(float));
    memcpy(full, m.grads_memory, np * sizeof(float));
    falcon_zero_grad(&m);
    for (size_t b = 0; b < B; b++) {
        falcon_forward(&m, in + b * T, tg + b * T, NULL, NULL, 1, T, FWD_BACKWARD);
        falcon_backward(&m, 0.5f);
    }
    double d = rel_diff(m.grads_memory, full, np);
    CHECK(d < 1e-5, "gradient accumulation: 2 micro-batches x 1/2 == one batch of 2 (rel %.2e)", d);
    free(full);
    falcon_free(&m);
}

// Decoding with the KV cache, token by token, gives the logits of the full forward pass.
static void test_decoder(const char *layout) {
    char dir[256];
    snprintf(dir, sizeof dir, REF "/%s", layout);
    Falcon m;
    Err e = {{0}};
    falcon_load(&m, dir, &e);
    size_t T = 12, V = m.config.V;
    int in[12];
    uint64_t rng = 11;
    for (size_t t = 0; t < T; t++) in[t] = (int)(rng_next(&rng) % V);
    falcon_forward(&m, in, NULL, NULL, NULL, 1, T, FWD_LOGITS);
    Decoder d;
    decoder_build(&d, &m);
    double worst = 0.0;
    for (size_t t = 0; t < T; t++) worst = fmax(worst, rel_diff(decoder_step(&d, in[t], (int)t), m.logits + t * V, V));
    CHECK(worst < 1e-5, "%s: KV-cache decoding matches the full forward pass (rel %.2e)", layout, worst);
    decoder_free(&d);
    falcon_free(&m);
}

// Explicit position ids. RoPE makes attention depend on relative positions only: a gap in the positions changes
// the result, a constant shift of all of them does not.
static void test_positions(void) {
    Falcon m;
    Err e = {{0}};
    falcon_load(&m, REF "/mqa", &e);
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, pos[8], tg[8];
    for (int i = 0; i < 8; i++) { pos[i] = i < 4 ? i : i + 6; tg[i] = (i * 7) % 61; }
    float a = falcon_forward(&m, in, tg, pos, NULL, 1, 8, FWD_LOSS);
    float b = falcon_forward(&m, in, tg, NULL, NULL, 1, 8, FWD_LOSS);
    CHECK(fabsf(a - b) > 1e-4f, "position ids with a gap change the loss (%.6f vs %.6f at 0..7)", a, b);
    for (int i = 0; i < 8; i++) pos[i] = 10 + i;
    float *keep = xmalloc(8 * m.config.V * sizeof(float));
    falcon_forward(&m, in, tg, pos, NULL, 1, 8, FWD_LOGITS);
    memcpy(keep, m.logits, 8 * m.config.V * sizeof(float));
    falcon_forward(&m, in, tg, NULL, NULL, 1, 8, FWD_LOGITS);
    double d = rel_diff(m.logits, keep, 8 * m.config.V);
    CHECK(d < 1e-4, "RoPE: a constant shift of all positions leaves the logits unchanged (rel %.2e)", d);
    free(keep);
    falcon_free(&m);
}

// The invariant that defines the tree mask: for every root-to-leaf path of a packed row, the logits of the path's
// tokens inside the packed row equal those of the path run alone as a plain sequence (positions 0..len-1, causal).
// Rows of every shape (tests/trees.h): one deep chain, one prompt with a fan of replies, single-message trees back
// to back, and several mixed trees. Then the gradients: the loss of one path's tokens, backpropagated through the
// packed batch, gives the parameter gradients of that path alone.
static void test_tree_invariant(const char *layout) {
    char dir[256];
    snprintf(dir, sizeof dir, REF "/%s", layout);
    Falcon m;
    Err e = {{0}};
    if (falcon_load(&m, dir, &e)) { CHECK(0, "%s: load: %s", layout, e.msg); return; }
    enum { B = TREE_SHAPES, T = 57 };
    size_t V = m.config.V, np = m.num_params, rows[T], paths = 0;
    int in[B * T], pos[B * T], span[B * T], tg[B * T], alone_in[T], alone_tg[T];
    TreeRow tr[B];
    uint64_t rng = 17;
    for (size_t b = 0; b < B; b++) tree_row_make(&tr[b], pos + b * T, span + b * T, T, (TreeShape)b, 6, &rng);
    for (size_t i = 0; i < B * T; i++) in[i] = (int)(rng_next(&rng) % V);
    falcon_forward(&m, in, NULL, pos, span, B, T, FWD_LOGITS);
    float *packed = xmalloc(B * T * V * sizeof(float));
    memcpy(packed, m.logits, B * T * V * sizeof(float));
    double worst = 0.0;
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < tr[b].nmsg; k++) {
            if (!tree_is_leaf(&tr[b], k)) continue;
            size_t n = tree_path(&tr[b], k, rows);
            for (size_t i = 0; i < n; i++) alone_in[i] = in[b * T + rows[i]];
            falcon_forward(&m, alone_in, NULL, NULL, NULL, 1, n, FWD_LOGITS);
            for (size_t i = 0; i < n; i++)
                worst = fmax(worst, rel_diff(packed + (b * T + rows[i]) * V, m.logits + i * V, V));
            paths++;
        }
    CHECK(worst < TOL_REL, "%s: trees: the logits of each of %zu root-to-leaf paths in the packed rows are those of "
          "the path alone (max rel diff %.2e)", layout, paths, worst);
    // gradients: the longest path of the mixed row, its tokens predicting the path's next tokens
    size_t bm = TREE_MIXED, best = 0, n = 0;
    for (size_t k = 0; k < tr[bm].nmsg; k++)
        if (tree_is_leaf(&tr[bm], k) && tree_path(&tr[bm], k, rows) > n) { best = k; n = tree_path(&tr[bm], k, rows); }
    tree_path(&tr[bm], best, rows);
    for (size_t i = 0; i < B * T; i++) tg[i] = -100;
    for (size_t i = 0; i < n; i++) {
        alone_in[i] = in[bm * T + rows[i]];
        alone_tg[i] = i + 1 < n ? in[bm * T + rows[i + 1]] : 0;
        tg[bm * T + rows[i]] = alone_tg[i];
    }
    m.zloss_coef = 1e-2f;  // the z-loss flows through the same paths
    float lp = falcon_forward(&m, in, tg, pos, span, B, T, FWD_BACKWARD);
    falcon_zero_grad(&m);
    falcon_backward(&m, 1.0f);
    float *gp = xmalloc(np * sizeof(float));
    memcpy(gp, m.grads_memory, np * sizeof(float));
    float la = falcon_forward(&m, alone_in, alone_tg, NULL, NULL, 1, n, FWD_BACKWARD);
    falcon_zero_grad(&m);
    falcon_backward(&m, 1.0f);
    double dg = rel_diff(gp, m.grads_memory, np);
    CHECK(fabsf(lp - la) < TOL_LOSS && dg < TOL_REL, "%s: trees: a path's loss through the packed batch (%.6f) and "
          "alone (%.6f), and its gradients (rel diff %.2e), agree (path of %zu tokens)", layout, lp, la, dg, n);
    free(packed);
    free(gp);
    falcon_free(&m);
}

// bf16 and fp16 checkpoints load as the fp32 weights rounded to those types.
static void test_half_loading(const char *layout, const char *suffix, double tol) {
    char dir[256], hdir[256];
    snprintf(dir, sizeof dir, REF "/%s", layout);
    snprintf(hdir, sizeof hdir, REF "/%s%s", layout, suffix);
    Falcon a, b;
    Err e = {{0}};
    falcon_load(&a, dir, &e);
    if (falcon_load(&b, hdir, &e)) { CHECK(0, "%s: %s", hdir, e.msg); falcon_free(&a); return; }
    double worst = 0.0;
    for (size_t i = 0; i < a.num_params; i++) {  // a plain max: gcc 12 for aarch64 crashes vectorising fmax here
        double d = fabs((double)b.params_memory[i] - a.params_memory[i]) / (fabs(a.params_memory[i]) + 1e-4);
        if (d > worst) worst = d;
    }
    CHECK(worst < tol && worst > 0.0, "%s loads: weights within rounding of fp32 (rel %.2e < %.1e)", hdir, worst, tol);
    falcon_free(&a);
    falcon_free(&b);
}

static char tmpdir_root[256];

static void make_tmpdir(void) {
    snprintf(tmpdir_root, sizeof tmpdir_root, "/tmp/falcon-test-XXXXXX");
    if (!mkdtemp(tmpdir_root)) die("mkdtemp failed");
}

// Save then load: identical weights and configuration, and no temporary files left behind.
static void test_save_load(void) {
    Falcon a, b;
    Err e = {{0}};
    falcon_load(&a, REF "/gqa", &e);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/saved", tmpdir_root);
    CHECK(falcon_save(&a, dir, &e) == 0, "save a checkpoint directory (%s)", e.msg);
    CHECK(falcon_load(&b, dir, &e) == 0, "load it back (%s)", e.msg);
    CHECK(memcmp(a.params_memory, b.params_memory, a.num_params * sizeof(float)) == 0 &&
              memcmp(&a.config, &b.config, sizeof(Config)) == 0,
          "round trip keeps every weight bit and the configuration");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/model.safetensors.tmp", dir);
    CHECK(access(tmp, F_OK) != 0, "no temporary file is left after an atomic save");
    falcon_free(&a);
    falcon_free(&b);
}

// A shard in data.h's format with random tokens.
static void write_shard(const char *path, size_t n, uint32_t vocab, uint64_t seed) {
    FILE *f = fopen(path, "wb");
    uint32_t h32[4] = {DATA_SHARD_MAGIC, DATA_SHARD_VERSION, 2, 0};
    uint64_t h64[2] = {n, 1};
    uint32_t v = vocab, zero[7] = {0};
    fwrite(h32, 4, 4, f);
    fwrite(h64, 8, 2, f);
    fwrite(&v, 4, 1, f);
    fwrite(zero, 4, 7, f);
    for (size_t i = 0; i < n; i++) {
        // a learnable stream: mostly counting up, sometimes a random jump
        uint16_t t = (uint16_t)(i == 0 ? 0 : (rng_next(&seed) % 4 ? (i * 7) % vocab : rng_next(&seed) % vocab));
        fwrite(&t, 2, 1, f);
    }
    fclose(f);
}

// The losses a run logged, one per step, as printed.
static size_t logged_losses(const char *run, char losses[][32], size_t max) {
    char path[600], line[512];
    snprintf(path, sizeof path, "%s/log.jsonl", run);
    FILE *f = fopen(path, "r");
    size_t n = 0;
    while (f && n < max && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "\"loss\": ");
        if (!p) continue;
        sscanf(p + 8, "%31[^,]", losses[n++]);
    }
    if (f) fclose(f);
    return n;
}

// N steps straight == a run stopped after N/2 steps, then resumed from its checkpoint: same losses, same weights.
static void test_resume(void) {
    char data[512], a[512], b[512], path[700];
    snprintf(data, sizeof data, "%s/data", tmpdir_root);
    snprintf(a, sizeof a, "%s/run_a", tmpdir_root);
    snprintf(b, sizeof b, "%s/run_b", tmpdir_root);
    mkdir(data, 0755);
    snprintf(path, sizeof path, "%s/train_000.bin", data);
    write_shard(path, 4000, 61, 5);
    snprintf(path, sizeof path, "%s/val_000.bin", data);
    write_shard(path, 600, 61, 6);
    TrainOptions o = train_defaults();
    o.model = REF "/mqa";
    o.data = data;
    o.B = 2; o.T = 16; o.accum = 2; o.ramp_tokens = 100; o.steps = 8; o.warmup = 2; o.lr = 3e-3f;
    o.eval_every = 4; o.eval_batches = 2; o.save_every = 4; o.quiet = 1;
    o.out = a;
    int rc1 = train_run(&o);
    TrainOptions o2 = o;
    o2.out = b;
    o2.stop_after = 4;
    int rc2 = train_run(&o2);
    TrainOptions o3 = train_defaults();
    snprintf(path, sizeof path, "%s/latest", b);
    Err e = {{0}};
    CHECK(train_options_load(path, &o3, &e) == 0 && o3.B == 2 && o3.T == 16 && o3.accum == 2 && o3.lr == 3e-3f,
          "resume: the run's options come back from its checkpoint (%s)", e.msg);
    o3.resume = b;
    o3.data = data;
    o3.out = b;
    o3.quiet = 1;
    o3.steps = 8;
    int rc3 = train_run(&o3);
    CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0, "straight, first-half and resumed runs succeed");
    char la[16][32], lb[16][32];
    size_t na = logged_losses(a, la, 16), nb = logged_losses(b, lb, 16), same = na == 8 && nb == 8;
    for (size_t i = 0; same && i < 8; i++) same = strcmp(la[i], lb[i]) == 0;
    CHECK(same, "resume: the 8 logged losses are identical (%zu and %zu steps; last %s vs %s)", na, nb,
          na ? la[na - 1] : "-", nb ? lb[nb - 1] : "-");
    CHECK(strcmp(la[0], la[7]) != 0, "training moves the loss (%s -> %s)", la[0], la[7]);
    Falcon ma, mb;
    snprintf(path, sizeof path, "%s/latest", a);
    int ok = falcon_load(&ma, path, &e) == 0;
    snprintf(path, sizeof path, "%s/latest", b);
    ok = ok && falcon_load(&mb, path, &e) == 0;
    CHECK(ok && memcmp(ma.params_memory, mb.params_memory, ma.num_params * sizeof(float)) == 0,
          "resume: final weights are bit for bit those of the straight run");
    if (ok) { falcon_free(&ma); falcon_free(&mb); }
}

// Weighted sources: rows come from each source in its share; the data state told after some batches gives back
// exactly the batches that followed (a resume); other weights are refused. And the run length in tokens.
static size_t rows_of_second(const Batch *bt, size_t *rows) {  // rows holding a token >= 61: the second source's
    size_t n = 0;
    for (size_t r = 0; r < bt->B; r++) {
        int hi = 0;
        for (size_t t = 0; t < bt->T; t++) hi |= bt->inputs[r * bt->T + t] >= 61;
        n += hi;
    }
    *rows += bt->B;
    return n;
}

static void test_sources(void) {
    char a[512], b[512], spec[1200];
    snprintf(a, sizeof a, "%s/source_a.bin", tmpdir_root);
    snprintf(b, sizeof b, "%s/source_b.bin", tmpdir_root);
    write_shard(a, 3000, 61, 7);   // tokens < 61
    write_shard(b, 3000, 200, 8);  // every window of 17 has tokens >= 61
    snprintf(spec, sizeof spec, "one=3=%s,two=1=%s", a, b);
    TrainOptions o = train_defaults();
    o.data = spec;
    o.B = 8;
    o.T = 16;
    TrainData d, d2;
    Err e = {{0}};
    CHECK(traindata_open(&d, &o, 0, 1, &e) == 0 && d.weighted && d.n == 2, "two weighted sources open (%s)", e.msg);
    if (e.msg[0]) return;
    Batch bt, bt2;
    batch_build(&bt, o.B, o.T);
    batch_build(&bt2, o.B, o.T);
    size_t second = 0, rows = 0;
    for (int i = 0; i < 125; i++) {
        traindata_next(&d, &bt);
        second += rows_of_second(&bt, &rows);
    }
    // 1000 rows, a quarter expected from the second source: 250, standard deviation 13.7
    CHECK(second > 195 && second < 305, "weights 3:1: %zu of %zu rows from the second source (expected 250)", second, rows);
    TrainState ts = {0};
    traindata_tell(&d, &ts);
    CHECK(!strcmp(ts.sources, "one=3,two=1") && ts.nsrc == 2, "the state names the sources (%s)", ts.sources);
    CHECK(traindata_open(&d2, &o, 0, 1, &e) == 0 && traindata_seek(&d2, &ts, &e) == 0, "seek to a told state (%s)", e.msg);
    int same = 1;
    for (int i = 0; i < 20; i++) {
        traindata_next(&d, &bt);
        traindata_next(&d2, &bt2);
        same = same && !memcmp(bt.mem, bt2.mem, 4 * bt.B * bt.T * sizeof(int32_t));
    }
    CHECK(same, "after the seek, the next 20 batches are those that followed the tell");
    traindata_close(&d2);
    snprintf(spec, sizeof spec, "one=1=%s,two=1=%s", a, b);
    CHECK(traindata_open(&d2, &o, 0, 1, &e) == 0 && traindata_seek(&d2, &ts, &e) != 0 && strstr(e.msg, "not the run's"),
          "other weights are refused on resume (%s)", e.msg);
    traindata_close(&d2);
    snprintf(spec, sizeof spec, "one=1=%s,%s", a, b);
    e.msg[0] = 0;
    CHECK(traindata_open(&d2, &o, 0, 1, &e) != 0 && strstr(e.msg, "give every source a weight"),
          "weighted and plain paths together are refused (%s)", e.msg);
    traindata_close(&d);
    batch_free(&bt);
    batch_free(&bt2);
    // steps for a length in tokens: B x T = 256 tokens a micro-batch
    o.B = 4;
    o.T = 64;
    size_t s1 = steps_for_tokens(&o, 3000, 1), s2 = steps_for_tokens(&o, 3072, 1), s3 = steps_for_tokens(&o, 3073, 2);
    o.accum = 2;
    o.ramp_tokens = 1024;  // accumulation 1 for the first 1024 tokens (4 steps), then 2: 1024 + 4 x 512 >= 3000
    size_t s4 = steps_for_tokens(&o, 3000, 1), s5 = steps_for_tokens(&o, 1, 1);
    CHECK(s1 == 12 && s2 == 12 && s3 == 7 && s4 == 8 && s5 == 1,
          "--tokens: 3000 -> 12 steps, 3072 -> 12, 3073 on 2 ranks -> 7, with a ramp 3000 -> 8, 1 -> 1 (%zu %zu %zu %zu %zu)",
          s1, s2, s3, s4, s5);
}

// Batch-size ramp-up and the schedule's end points.
static void test_schedule(void) {
    TrainOptions o = train_defaults();
    o.accum = 8;
    o.ramp_tokens = 1000;
    CHECK(accum_at(&o, 0) == 1 && accum_at(&o, 500) == 4 && accum_at(&o, 999) == 7 && accum_at(&o, 1000) == 8,
          "batch ramp-up: 1 micro-batch at the start, linear to 8 at 1000 tokens (%zu %zu %zu %zu)", accum_at(&o, 0),
          accum_at(&o, 500), accum_at(&o, 999), accum_at(&o, 1000));
    AdamW opt = {.lr = 1.0f, .lr_floor = 0.1f, .warmup = 10, .steps = 110};
    CHECK(fabsf(adamw_lr(&opt, 0) - 0.1f) < 1e-6f && fabsf(adamw_lr(&opt, 9) - 1.0f) < 1e-6f &&
              fabsf(adamw_lr(&opt, 60) - 0.55f) < 1e-6f && fabsf(adamw_lr(&opt, 110) - 0.1f) < 1e-6f &&
              fabsf(adamw_lr(&opt, 500) - 0.1f) < 1e-6f,
          "lr: warm-up to the peak, cosine halfway at the midpoint, floor of a tenth at the end and after");
}

// The sampler: temperature 0 and top-k 1 are greedy, the same seed repeats, and frequencies follow softmax.
static void test_sampler(void) {
    float logits[4] = {1.0f, 3.0f, 2.0f, 0.0f};
    ProbId buf[4];
    uint64_t r1 = 5, r2 = 5;
    CHECK(sample_token(logits, 4, 0.0f, 0, 1.0f, buf, &r1) == 1 && sample_token(logits, 4, 1.0f, 1, 1.0f, buf, &r1) == 1,
          "sampler: temperature 0 and top-k 1 take the most likely token");
    int same = 1, counts[4] = {0};
    r1 = r2 = 9;
    for (int i = 0; i < 20000; i++) {
        int a = sample_token(logits, 4, 1.0f, 0, 1.0f, buf, &r1), b = sample_token(logits, 4, 1.0f, 0, 1.0f, buf, &r2);
        same &= a == b;
        counts[a]++;
    }
    CHECK(same, "sampler: the same seed draws the same tokens");
    double z = exp(1.0) + exp(3.0) + exp(2.0) + exp(0.0), worst = 0.0;
    for (int v = 0; v < 4; v++) worst = fmax(worst, fabs(counts[v] / 20000.0 - exp(logits[v]) / z));
    CHECK(worst < 0.015, "sampler: frequencies follow softmax (worst deviation %.4f)", worst);
    int never = 1;
    for (int i = 0; i < 2000; i++) never &= sample_token(logits, 4, 1.0f, 2, 1.0f, buf, &r1) != 0;
    CHECK(never, "sampler: top-k 2 never draws the third most likely token");
    never = 1;
    for (int i = 0; i < 2000; i++) never &= sample_token(logits, 4, 1.0f, 0, 0.6f, buf, &r1) == 1;
    CHECK(never, "sampler: top-p 0.6 keeps only the top token (its probability is 0.64)");
}

// Multiple choice: each choice's log-likelihood, scored alone, against HF's; all of them scored in one batch of
// rows of different lengths (and one row longer than the model's context, cut on the left) against each scored
// alone; and the accuracies against those computed by hand from HF's numbers (acc by the raw sum, acc_norm by
// the sum per unit of length; the length here is in tokens), with passes of every size.
static void test_multiple_choice(void) {
    Falcon m;
    Err e = {{0}};
    falcon_load(&m, REF "/mqa", &e);
    FILE *f = fopen(REF "/mqa/mc.txt", "r");
    McItem items[8];
    LlRequest req[8 * 3 + 1];
    double hf[8][3], alone[8 * 3 + 1], batched[8 * 3 + 1];
    size_t n = 0, rows = 0, hits = 0, hits_norm = 0;
    double worst = 0.0;
    size_t label, k;
    while (f && n < 8 && fscanf(f, " item %zu %zu", &label, &k) == 2 && k == 3) {
        McItem *it = &items[n];
        it->label = label;
        it->nchoices = 3;
        if (fscanf(f, " ctx %zu", &it->nctx) != 1) break;
        it->ctx = xmalloc(it->nctx * sizeof(int));
        for (size_t i = 0; i < it->nctx; i++) if (fscanf(f, "%d", &it->ctx[i]) != 1) die("mc.txt: bad ctx");
        it->choice = xmalloc(3 * sizeof(int *));
        it->nchoice = xmalloc(3 * sizeof(size_t));
        it->chars = xmalloc(3 * sizeof(size_t));
        size_t best = 0, best_norm = 0;
        for (size_t c = 0; c < 3; c++) {
            if (fscanf(f, " choice %zu", &it->nchoice[c]) != 1) die("mc.txt: bad choice");
            it->choice[c] = xmalloc(it->nchoice[c] * sizeof(int));
            for (size_t i = 0; i < it->nchoice[c]; i++) if (fscanf(f, "%d", &it->choice[c][i]) != 1) die("mc.txt: bad id");
            if (fscanf(f, "%lf", &hf[n][c]) != 1) die("mc.txt: bad log-likelihood");
            it->chars[c] = it->nchoice[c];
            req[rows] = (LlRequest){it->ctx, it->choice[c], it->nctx, it->nchoice[c]};
            loglikelihoods(&m, &req[rows], 1, &alone[rows]);
            worst = fmax(worst, fabs(alone[rows++] - hf[n][c]));
            if (hf[n][c] > hf[n][best]) best = c;
            if (hf[n][c] / (double)it->chars[c] > hf[n][best_norm] / (double)it->chars[best_norm]) best_norm = c;
        }
        hits += best == label;
        hits_norm += best_norm == label;
        n++;
    }
    if (f) fclose(f);
    CHECK(n == 4 && worst < 1e-4, "multiple choice: log-likelihoods of %zu x 3 choices match HF (worst %.2e)", n, worst);
    // a context of 70 tokens, 6 more than the model's 64 positions: its first 6 tokens are not seen
    int longctx[70], cont[3] = {5, 17, 29};
    uint64_t rng = 3;
    for (size_t i = 0; i < 70; i++) longctx[i] = (int)(rng_next(&rng) % m.config.V);
    req[rows] = (LlRequest){longctx, cont, 70, 3};
    loglikelihoods(&m, &req[rows], 1, &alone[rows]);
    double cut;
    loglikelihoods(&m, &(LlRequest){longctx + 6, cont, 64, 3}, 1, &cut);
    CHECK(alone[rows] == cut, "loglikelihoods: a row longer than the context is cut on the left (%.6f, %.6f)",
          alone[rows], cut);
    rows++;
    // the long row last: the batch is padded to its length
    loglikelihoods(&m, req, rows, batched);
    worst = 0.0;
    for (size_t r = 0; r < rows; r++) worst = fmax(worst, fabs(batched[r] - alone[r]));
    CHECK(worst < 1e-5, "loglikelihoods: %zu rows in one forward pass equal each row alone (worst %.2e)", rows, worst);
    size_t sizes[] = {1, 10, 30, MC_BATCH_TOKENS};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        double acc, acc_norm;
        mc_evaluate(&m, items, n, sizes[s], NULL, &acc, &acc_norm);
        CHECK(fabs(acc - (double)hits / (double)n) < 1e-12 && fabs(acc_norm - (double)hits_norm / (double)n) < 1e-12 &&
                  acc != acc_norm,
              "multiple choice, passes of %zu tokens: acc %.2f and acc_norm %.2f as computed by hand from HF's numbers",
              sizes[s], acc, acc_norm);
    }
    for (size_t i = 0; i < n; i++) mcitem_free(&items[i]);
    falcon_free(&m);
}

// A task made from documents: every item parses, its label points at the choice that continues the context.
static void test_make_task(void) {
    char corpus[512], task[512];
    path_of(corpus, sizeof corpus, "%s/docs.jsonl", tmpdir_root);
    path_of(task, sizeof task, "%s/task.jsonl", tmpdir_root);
    const char *docs[3] = {
        "The red fox jumped over the lazy brown dog near the river. It ran away into the dark forest before night.",
        "A small boat sailed across the quiet blue lake at dawn today. The fisherman waited for hours without a bite.",
        "Our old teacher explained the long history of the city very slowly. Everyone listened until the bell rang.",
    };
    FILE *f = fopen(corpus, "w");
    for (int d = 0; d < 3; d++) {
        fprintf(f, "{\"text\": ");
        json_write_string(f, docs[d], strlen(docs[d]));
        fprintf(f, "}\n");
    }
    fclose(f);
    Err e = {{0}};
    CHECK(mctask_make(corpus, task, 10, 3, 5, &e) == 0, "make-task writes a task (%s)", e.msg);
    char *text, jerr[256];
    size_t len, items = 0, good = 0;
    read_file(task, &text, &len, jerr, sizeof jerr);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        Json j;
        items++;
        if (json_parse(line, strlen(line), &j, jerr, sizeof jerr)) continue;
        const Json *ctx = json_get(&j, "context"), *ch = json_get(&j, "choices"), *lab = json_get(&j, "label");
        if (ctx && ch && lab && ch->count == 3 && lab->number >= 0 && lab->number < 3) {
            // context + right ending must be a prefix of one document
            char *joined = xmalloc(ctx->len + ch->items[(size_t)lab->number].len + 1);
            sprintf(joined, "%s%s", ctx->str, ch->items[(size_t)lab->number].str);
            for (int d = 0; d < 3; d++) good += strncmp(docs[d], joined, strlen(joined)) == 0;
            free(joined);
        }
        json_free(&j);
    }
    free(text);
    CHECK(items == 10 && good == 10, "make-task: %zu items, %zu whose labelled choice continues its context", items, good);
}

// The tree invariant on the rows data.c packs: ./data synth --trees, then ./data trees, then the loader's batches.
// In a row, the keys visible from token i (span_end) are its root-to-leaf path up to i, and the position ids must
// count along it; the last token of a leaf message (span_end[i] = i) ends a path, whose logits in the packed row
// must be those of the path alone. A small random model with the data's vocabulary.
static void test_tree_packer(void) {
    enum { B = 4, T = 128 };
    char jsonl[600], dir[600], shard[700], derr[512];
    path_of(jsonl, sizeof jsonl, "%s/trees.jsonl", tmpdir_root);
    path_of(dir, sizeof dir, "%s/trees", tmpdir_root);
    path_of(shard, sizeof shard, "%s/train_000.bin", dir);
    char *synth[] = {"data", "synth", "--trees", "30", "--seed", "5", "-o", jsonl};
    char *pack[] = {"data", "trees", "--out", dir, "--context", "128", jsonl};  // word ids: short messages, many fit
    const char *shards[] = {shard};
    DataLoader *dl = NULL;
    if (data_cli(8, synth) || data_cli(7, pack) || !(dl = dataloader_open_val(shards, 1, B, T, 0, 1, derr, sizeof derr))) {
        CHECK(0, "data.c packs trees into a shard that the loader opens (%s)", dl ? "" : derr);
        return;
    }
    Falcon m;
    Err e = {{0}};
    falcon_load(&m, REF "/mqa", &e);
    Config c = m.config;
    falcon_free(&m);
    c.V = dataloader_vocab_size(dl);
    c.maxT = T;
    falcon_build(&m, &c);
    falcon_init(&m, 3, 0.2f);
    Batch bt;
    batch_build(&bt, B, T);
    size_t V = c.V, rows[T], paths = 0, branched = 0, badpos = 0;
    float *packed = xmalloc(B * T * V * sizeof(float));
    int alone[T];
    double worst = 0.0;
    for (int k = 0; k < 2 && batch_next(&bt, dl); k++) {
        falcon_forward(&m, bt.inputs, NULL, bt.pos, bt.span_end, B, T, FWD_LOGITS);
        memcpy(packed, m.logits, B * T * V * sizeof(float));
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < T; i++) {
                const int32_t *se = bt.span_end + b * T;
                if (se[i] != (int32_t)i) continue;  // not the end of a path
                size_t n = 0;
                for (size_t j = 0; j <= i; j++)
                    if ((int32_t)i <= se[j]) rows[n++] = j;
                if (n == 1) continue;  // padding (it sees only itself)
                for (size_t q = 0; q < n; q++) {
                    alone[q] = bt.inputs[b * T + rows[q]];
                    badpos += bt.pos[b * T + rows[q]] != (int32_t)q;
                }
                branched += rows[n - 1] - rows[0] + 1 != n;  // the path skips a sibling branch
                falcon_forward(&m, alone, NULL, NULL, NULL, 1, n, FWD_LOGITS);
                for (size_t q = 0; q < n; q++)
                    worst = fmax(worst, rel_diff(packed + (b * T + rows[q]) * V, m.logits + q * V, V));
                paths++;
            }
    }
    CHECK(badpos == 0 && branched > 0, "data.c's packed rows: position ids count along each of %zu paths (%zu wrong), "
          "%zu of them skip a sibling branch", paths, badpos, branched);
    CHECK(worst < TOL_REL, "data.c's packed rows: every path's logits are those of the path alone (max rel diff %.2e)",
          worst);
    free(packed);
    batch_free(&bt);
    dataloader_close(dl);
    falcon_free(&m);
}

// Writes text to path, replacing what was there.
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) die("%s: cannot write", path);
}

// Reading a task file through a tokenizer, and its errors: they name the file and the line.
static void test_task_file(void) {
    char task[512], terr[512];
    path_of(task, sizeof task, "%s/text_task.jsonl", tmpdir_root);
    Tokenizer *tok = tokenizer_load("tests/tok/c_trained.json", terr, sizeof terr);
    if (!tok) { CHECK(0, "tokenizer for the task test: %s", terr); return; }
    const char *good = "{\"context\": \"The cat sat on the\", \"choices\": [\" mat.\", \" moon and stars.\"], \"label\": 0}\n\n"
                       "{\"context\": \"One, two,\", \"choices\": [\" five\", \" three\", \" a\xc3\xb1o\"], \"label\": 1}\n";
    const char *bad[2][2] = {
        {"{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": 0}\n{\"context\": \"a\", \"choices\": [\" b\"], \"label\": 0}\n",
         "text_task.jsonl: line 2: need"},
        {"{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": 0}\n{\"context\": \"a\", \"choi\n",
         "text_task.jsonl: line 2: byte"},
    };
    write_text(task, good);
    Err e = {{0}};
    size_t n = 0;
    McItem *items = mctask_load(task, tok, tokenizer_vocab_size(tok), &n, &e);
    CHECK(items && n == 2 && items[1].nchoices == 3 && items[1].label == 1, "a task file loads: %zu items (%s)", n, e.msg);
    // acc_norm's lengths are in characters, as Python's len counts them: " año" is 4, in 5 bytes
    CHECK(items && items[0].chars[1] == 16 && items[1].chars[2] == 4, "choices' lengths in characters: %zu and %zu",
          items ? items[0].chars[1] : 0, items ? items[1].chars[2] : 0);
    for (size_t i = 0; items && i < n; i++) mcitem_free(&items[i]);
    free(items);
    for (int k = 0; k < 2; k++) {
        write_text(task, bad[k][0]);
        e.msg[0] = 0;
        items = mctask_load(task, tok, tokenizer_vocab_size(tok), &n, &e);
        CHECK(!items && strstr(e.msg, bad[k][1]), "a bad task file is refused with its line: %s", e.msg);
    }
    tokenizer_free(tok);
}

int main(void) {
    // Falcon's three layouts, then the switches: one at a time, together as in Falcon-RW, and SwiGLU; last, mqa with
    // Falcon's head size, 64. The 10 AdamW steps do not depend on the layout: the switches taken one at a time skip
    // them (rw has every kind of tensor), and so does mqa64.
    const struct { const char *name; int train; } layouts[] = {
        {"mqa", 1}, {"gqa", 1}, {"gqa1", 1}, {"bias", 0}, {"seq", 0}, {"mha", 0}, {"alibi", 0}, {"rw", 1}, {"swiglu", 1},
        {"mqa64", 0},
    };
    size_t nlayouts = sizeof layouts / sizeof layouts[0];
    for (size_t i = 0; i < nlayouts; i++) test_parity(layouts[i].name, layouts[i].train);
    for (size_t i = 0; i < 2; i++) test_tree_parity(layouts[i].name);
    test_zloss_gradient();
    test_swiglu_gradient();
    test_switch_configs();
    test_accumulation();
    for (size_t i = 0; i < nlayouts; i++) test_decoder(layouts[i].name);
    test_positions();
    test_tree_invariant("mqa");
    test_tree_invariant("gqa");
    test_half_loading("mqa", "_bf16", 1.0 / 256);
    test_half_loading("gqa", "_fp16", 1.0 / 2048);
    test_schedule();
    test_sampler();
    test_multiple_choice();
    make_tmpdir();
    test_save_load();
    test_make_task();
    test_task_file();
    test_tree_packer();
    test_resume();
    test_sources();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir_root);
    if (system(cmd)) printf("could not remove %s\n", tmpdir_root);
    return test_summary();
}
