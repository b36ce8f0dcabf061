// The fast kernels of falcon.c against their reference versions, on random data and awkward shapes: sizes that
// are not multiples of any tile, odd head counts, one K/V head, more query heads per group than a tile has rows.
// The Makefile builds it for every vector path of falcon.c it can run: this machine's widest (-march=native), the
// compiler's default target (plain C on x86-64), AVX2 + FMA where the CPU has them, and Arm NEON under qemu-user
// (tests/t_arm.sh). The first line of the output names the path.
// falcon.c is included to reach its internals; the functions this program does not call are no warning here.
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../falcon.c"
#include "test.h"
#include "trees.h"

static float *randn(size_t n, uint64_t *rng) {
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(rng);
    return x;
}

// All three products of a Linear layer, with the backward accumulating into non-zero gradients.
static void test_matmul(void) {
    size_t shapes[][3] = {{1, 1, 1},   {2, 5, 3},     {3, 7, 5},     {13, 100, 71}, {37, 300, 129},
                          {25, 257, 33}, {100, 513, 77}, {12, 32, 32}, {96, 64, 1030}, {7, 1, 600},
                          {300, 40, 1601}};  // OC 1030 and 1601: dw packs dout^T in blocks of MC rows
    uint64_t rng = 21;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
        float *inp = randn(N * IC, &rng), *w = randn(OC * IC, &rng), *dout = randn(N * OC, &rng);
        float *o1 = xmalloc(N * OC * 4), *o2 = xmalloc(N * OC * 4);
        float *di1 = randn(N * IC, &rng), *di2 = xmalloc(N * IC * 4), *dw1 = randn(OC * IC, &rng);
        float *dw2 = xmalloc(OC * IC * 4);
        memcpy(di2, di1, N * IC * 4);
        memcpy(dw2, dw1, OC * IC * 4);
        matmul_forward_ref(o1, inp, w, N, IC, OC);
        matmul_forward(o2, inp, w, NULL, N, IC, OC);
        matmul_backward_ref(di1, dw1, dout, inp, w, N, IC, OC);
        matmul_backward(di2, dw2, dout, inp, w, N, IC, OC);
        double df = rel_diff(o2, o1, N * OC), di = rel_diff(di2, di1, N * IC), dw = rel_diff(dw2, dw1, OC * IC);
        CHECK(df < 1e-5 && di < 1e-5 && dw < 1e-5, "matmul N=%zu IC=%zu OC=%zu: out %.1e dinp %.1e dw %.1e", N, IC,
              OC, df, di, dw);
        // with a residual: into another buffer, and in place (out = out + inp w^T)
        float *res = randn(N * OC, &rng), *o3 = xmalloc(N * OC * 4);
        matmul_forward(o2, inp, w, res, N, IC, OC);
        memcpy(o3, res, N * OC * 4);
        matmul_forward(o3, inp, w, o3, N, IC, OC);
        for (size_t i = 0; i < N * OC; i++) o1[i] += res[i];
        double dr = rel_diff(o2, o1, N * OC), dp = rel_diff(o3, o1, N * OC);
        CHECK(dr < 1e-5 && dp < 1e-5, "matmul N=%zu IC=%zu OC=%zu plus a residual: %.1e, in place %.1e", N, IC, OC, dr,
              dp);
        free(res); free(o3);
        free(inp); free(w); free(dout); free(o1); free(o2); free(di1); free(di2); free(dw1); free(dw2);
    }
}

// Flash attention against the O(T^2) reference: outputs, and the input gradients accumulated onto non-zero ones;
// plain causal, then with conversation trees of every shape packed into the rows (tests/trees.h), whose tiles
// are hidden, causal or mixed.
static void test_attention(void) {
    size_t shapes[][5] = {
        // B, T, NH, NKV, HS
        {2, ATT_BK + 6, 4, 1, 8},      // multi-query; T crosses a key tile
        {1, 2 * ATT_BK + 1, 6, 2, 16}, // grouped; T one past two key tiles
        {2, 5, 3, 3, 4},               // odd head count, one query head per K/V head
        {1, 200, 5, 1, 12},            // odd heads sharing one K/V head
        {1, 9, 130, 2, 4},             // 65 query heads per group: about a tile's rows
        {3, 1, 2, 1, 6},               // a single position
        {1, ATT_BK, 7, 7, 3},          // exactly one key tile
        {4, 300, 4, 2, 8},             // long rows: whole key tiles of other trees are skipped
        {32, 7, 2, 1, 4},              // many short rows: a subtree ending at every position of a tile
        {1, 5, 300, 1, 2},             // 300 query heads on one K/V head: a tile product deeper than gemm's KC
        {1, 40, 2, 1, 300},            // head size 300: the score product is deeper than KC too
    };
    uint64_t rng = 5;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t B = shapes[s][0], T = shapes[s][1];
        Config c = {.V = 1, .NH = shapes[s][2], .NKV = shapes[s][3], .HS = shapes[s][4], .L = 1, .maxT = T};
        c.C = c.NH * c.HS;
        size_t QKV = qkv_dim(&c), N = B * T;
        float *qkv = randn(N * QKV, &rng), *dout = randn(N * c.C, &rng);
        float *o1 = xmalloc(N * c.C * 4), *o2 = xmalloc(N * c.C * 4);
        float *att = xmalloc(B * c.NH * T * T * 4), *lse = xmalloc(B * c.NH * T * 4);
        float *d1 = xmalloc(N * QKV * 4), *d2 = xmalloc(N * QKV * 4);
        int *pos = xmalloc(N * sizeof(int)), *span = xmalloc(N * sizeof(int));
        TreeRow row;
        for (size_t b = 0; b < B; b++)
            tree_row_make(&row, pos + b * T, span + b * T, T, (TreeShape)((s + b) % TREE_SHAPES), 1 + s % 9, &rng);
        // ALiBi: each key's bias by its position id (the tree rows' depths), from falcon.c's table
        float *table = xmalloc(T * c.NH * sizeof(float)), *kb = xmalloc(N * c.NH * sizeof(float));
        alibi_table(table, T, c.NH, c.HS);
        for (size_t i = 0; i < N; i++) memcpy(kb + i * c.NH, table + (size_t)pos[i] * c.NH, c.NH * sizeof(float));
        for (int variant = 0; variant < 4; variant++) {
            const int *se = variant & 1 ? span : NULL;
            const float *bias = variant & 2 ? kb : NULL;
            for (size_t i = 0; i < N * QKV; i++) d1[i] = d2[i] = rng_normal(&rng);
            attention_forward_ref(o1, att, qkv, se, bias, &c, B, T);
            attention_forward(o2, lse, qkv, se, bias, &c, B, T);
            attention_backward_ref(d1, dout, qkv, att, &c, B, T);
            attention_backward(d2, dout, qkv, o2, lse, se, bias, &c, B, T);
            double df = rel_diff(o2, o1, N * c.C), db = rel_diff(d2, d1, N * QKV);
            CHECK(df < 1e-5 && db < 1e-5, "attention B=%zu T=%zu NH=%zu NKV=%zu HS=%zu%s%s: out %.1e dqkv %.1e", B, T,
                  c.NH, c.NKV, c.HS, se ? ", trees" : "", bias ? ", ALiBi" : "", df, db);
        }
        free(table); free(kb);
        free(qkv); free(dout); free(o1); free(o2); free(att); free(lse); free(d1); free(d2); free(pos); free(span);
    }
}

// The share of causal (query, key) pairs a batch's tree mask keeps, which scales the attention FLOPs of MFU,
// against counting attn_visible over every pair: 1 for plain rows, less for trees of every shape.
static void test_visible_share(void) {
    size_t B = TREE_SHAPES, T = 150;
    int *pos = xmalloc(B * T * sizeof(int)), *span = xmalloc(B * T * sizeof(int));
    uint64_t rng = 9;
    TreeRow row;
    for (size_t b = 0; b < B; b++) tree_row_make(&row, pos + b * T, span + b * T, T, (TreeShape)b, 7, &rng);
    double pairs = 0.0;
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t t2 = 0; t2 <= t; t2++) pairs += attn_visible(t, t2, span + b * T);
    double want = pairs / ((double)B * T * (T + 1) / 2), got = attn_visible_share(span, B, T);
    CHECK(fabs(got - want) < 1e-12 && want < 0.9, "attention's visible share of packed trees: %.6f, counted %.6f", got,
          want);
    for (size_t n = 0; n < B * T; n++) span[n] = (int)T - 1;
    CHECK(attn_visible_share(span, B, T) == 1.0, "plain rows: visible share %g, want 1", attn_visible_share(span, B, T));
    free(pos); free(span);
}

// The vectorisable exp and erf against libm's, relative error for exp and absolute for erf, over the ranges the
// softmax, the cross-entropy and GELU use.
static void test_exp_erf(void) {
    double we = 0.0, wf = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 97.0f * (float)i / 200000.0f;
        we = fmax(we, fabs((double)exp_fast(x) - exp((double)x)) / exp((double)x));
        float y = -6.0f + 12.0f * (float)i / 200000.0f;
        wf = fmax(wf, fabs((double)erf_fast(y) - erf((double)y)));
    }
    CHECK(we < 5e-7, "exp_fast: relative error %.2e on [-87, 10]", we);
    CHECK(wf < 1e-6, "erf_fast: absolute error %.2e on [-6, 6]", wf);
    CHECK(exp_fast(-INFINITY) == 0.0f && exp_fast(-87.5f) == 0.0f && exp_fast(0.0f) == 1.0f,
          "exp_fast(-inf) = exp_fast(-87.5) = 0 (%g: no subnormals), exp_fast(0) = 1", exp_fast(-87.5f));
}

// The chunked LM head and loss (classifier_forward, classifier_backward) against the whole-logits references: loss,
// z-loss, each row's cross-entropy, logits, and the gradients of lnf and wte, the latter accumulated over two micro-batches with different
// dloss, as training with gradient accumulation does. Row counts below, at and past multiples of CE_ROWS; targets of
// -100 among the rows (and a micro-batch with none counted); z-loss off and on. The loss-only call (no backward
// follows, logits not kept) must give the same loss.
static void test_classifier(void) {
    size_t shapes[][3] = {
        // N, C, V
        {1, 5, 3},                     // one row; its second micro-batch counts no row at all
        {CE_ROWS - 1, 7, 37},          // one chunk, partial
        {CE_ROWS, 16, 64},             // exactly one chunk
        {CE_ROWS + 1, 9, 33},          // one row past a chunk
        {2 * CE_ROWS + 45, 13, 130},   // three chunks, the last partial
    };
    float zcs[] = {0.0f, 0.05f}, dloss[] = {0.37f, 1.25f};
    uint64_t rng = 11;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t zi = 0; zi < 2; zi++) {
            size_t N = shapes[s][0], C = shapes[s][1], V = shapes[s][2], rows = N < CE_ROWS ? N : CE_ROWS;
            float zc = zcs[zi];
            float *wte = randn(V * C, &rng), *dwte_ref = randn(V * C, &rng), *dwte = xmalloc(V * C * 4);
            memcpy(dwte, dwte_ref, V * C * 4);
            float *lg_ref = xmalloc(N * V * 4), *dlg = xmalloc(N * V * 4), *lse = xmalloc(N * 4);
            float *lg = xmalloc(N * V * 4), *chunk = xmalloc(rows * V * 4), *head = xmalloc(V * C * 4);
            float *dlnf_ref = xmalloc(N * C * 4), *dlnf = xmalloc(N * C * 4), *losses = xmalloc(N * 4);
            int *tg = xmalloc(N * sizeof(int));
            double worst_loss = 0.0, worst_row = 0.0, worst_lg = 0.0, worst_dlnf = 0.0, worst_eval = 0.0;
            for (size_t mb = 0; mb < 2; mb++) {
                float *lnf = randn(N * C, &rng);
                for (size_t n = 0; n < N; n++) tg[n] = rng_next(&rng) % 4 == 0 ? -100 : (int)(rng_next(&rng) % V);
                if (s == 0 && mb == 1) tg[0] = -100;
                float z_ref, z, z_eval;
                matmul_forward_ref(lg_ref, lnf, wte, N, C, V);
                float ce_ref = crossentropy_forward_ref(lse, &z_ref, lg_ref, tg, N, V, zc);
                crossentropy_backward_ref(dlg, lg_ref, lse, tg, N, V, zc, dloss[mb]);
                memset(dlnf_ref, 0, N * C * 4);
                matmul_backward_ref(dlnf_ref, dwte_ref, dlg, lnf, wte, N, C, V);
                memset(head, 0, V * C * 4);
                float ce = classifier_forward(&z, losses, lg, dlnf, head, chunk, lnf, wte, tg, N, C, V, zc);
                classifier_backward(dlnf, dwte, head, dloss[mb], N, C, V);
                for (size_t n = 0; n < N; n++)
                    worst_row = fmax(worst_row, fabs(losses[n] - (tg[n] < 0 ? 0.0f : lse[n] - lg_ref[n * V + tg[n]])));
                float ce_eval = classifier_forward(&z_eval, losses, NULL, NULL, NULL, chunk, lnf, wte, tg, N, C, V, zc);
                worst_loss = fmax(worst_loss, fmax(fabs(ce - ce_ref), fabs(z - z_ref)) / fmax(1.0, fabs(ce_ref)));
                worst_eval = fmax(worst_eval, fabs(ce_eval + z_eval - ce - z) / fmax(1.0, fabs(ce)));
                worst_lg = fmax(worst_lg, rel_diff(lg, lg_ref, N * V));
                worst_dlnf = fmax(worst_dlnf, rel_diff(dlnf, dlnf_ref, N * C));
                free(lnf);
            }
            double dw = rel_diff(dwte, dwte_ref, V * C);
            CHECK(worst_loss < 1e-5 && worst_row < 1e-5 && worst_eval < 1e-6 && worst_lg < 1e-5 && worst_dlnf < 1e-5 &&
                      dw < 1e-5,
                  "classifier N=%zu C=%zu V=%zu zloss %g: loss %.1e (loss only %.1e) rows %.1e logits %.1e dlnf %.1e "
                  "dwte %.1e", N, C, V, zc, worst_loss, worst_eval, worst_row, worst_lg, worst_dlnf, dw);
            free(wte); free(dwte_ref); free(dwte); free(lg_ref); free(dlg); free(lse); free(lg); free(chunk);
            free(head); free(dlnf_ref); free(dlnf); free(losses); free(tg);
        }
}

int main(void) {
    printf("# vector kernels: %s, %d x %d tile\n", VEC_ISA, MR, NR);
    test_matmul();
    test_attention();
    test_visible_share();
    test_exp_erf();
    test_classifier();
    return test_summary();
}
