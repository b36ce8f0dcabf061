// libFuzzer harness: the conversation-tree JSONL reader, the packer and the loader on what they write.
// Invariants: no crash or sanitizer report; problems are counted with a one-line example; every row the loader
// returns has span_end in [t, T-1], position ids below T, targets -100 or below the vocabulary; every token of
// the forest is trained on once or counted as dropped.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_data_trees tests/fuzz/fuzz_data_trees.c tokenizer.c json.c -lm
//   build/fuzz_data_trees -max_len=8192 build/fuzz_trees_corpus tests/fuzz/seeds_trees
#include "../../data.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64];
    if (!dir[0]) { snprintf(dir, sizeof dir, "/tmp/fuzz_data_trees.%d", (int)getpid()); mkdir(dir, 0777); }
    Forest f = {0};
    forest_add_jsonl(&f, "fuzz.jsonl", (const char *)data, size);
    size_t problems = f.bad_lines + f.bad_msgs + f.dup_ids + f.orphans + f.cycles;
    if (problems && (!f.example[0] || strchr(f.example, '\n'))) abort();
    for (size_t i = 0; i < f.n; i++) if (f.msg[i].parent != DATA_NO_PARENT && f.msg[i].parent >= i) abort();
    if (!f.ntrees) { forest_free(&f); return 0; }
    TokDoc *toks = xcalloc(f.n, sizeof *toks);
    WordVocab wv;
    wordvocab_build(&wv);
    char err[256];
    forest_tokenise(&f, NULL, &wv, toks, err, sizeof err);
    size_t Ts[2] = {8, 64};
    for (int k = 0; k < 2; k++) {
        size_t T = Ts[k];
        TreeConfig c = {0};
        c.T = T; c.shard_tokens = 1 << 20; c.eot = (uint32_t)wv.next; c.vocab = c.eot + 1; c.out = dir;
        TreeStats st;
        if (trees_write(&f, toks, &c, &st, err, sizeof err) != 0) abort();
        char path[128];
        snprintf(path, sizeof path, "%s/train_000.bin", dir);
        const char *pp[1] = {path};
        DataLoader *dl = dataloader_open_val(pp, 1, 1, T, 0, 1, err, sizeof err);
        if (!dl) abort();
        int32_t in[64], tg[64], ps[64], se[64];
        while (dataloader_next_batch(dl, in, tg, ps, se))
            for (size_t t = 0; t < T; t++)
                if (se[t] < (int32_t)t || se[t] >= (int32_t)T || ps[t] < 0 || ps[t] >= (int32_t)T ||
                    (tg[t] != -100 && (tg[t] < 0 || (uint32_t)tg[t] >= c.vocab)))
                    abort();
        dataloader_close(dl);
        size_t all = 0;
        for (size_t i = 0; i < f.n; i++) all += toks[i].n + (f.msg[i].parent == DATA_NO_PARENT);
        size_t fresh = 0; // tokens of pieces' messages not flagged repeated
        for (size_t e = 0; e < st.pk[0].n; e++) if (!(st.pk[0].e[e].flags & TREE_REPEATED)) fresh += st.pk[0].e[e].ntok;
        if (fresh + st.pk[0].tokens_dropped != all) abort();
        tree_stats_free(&st);
        remove(path);
    }
    for (size_t i = 0; i < f.n; i++) tokdoc_free(&toks[i]);
    free(toks);
    wordvocab_free(&wv);
    forest_free(&f);
    return 0;
}
