// libFuzzer harness: the JSONL reader on arbitrary bytes, and every per-document stage on what it reads.
// Invariants: no crash or sanitizer report; every document read is valid UTF-8 and not empty; skipped lines are
// counted with a one-line example; line-wise corrections never grow a text.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_data_jsonl tests/fuzz/fuzz_data_jsonl.c tokenizer.c json.c -lm
//   build/fuzz_data_jsonl -max_len=65536 build/fuzz_jsonl_corpus tests/fuzz/seeds_jsonl
#include "../../data.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static UrlFilter url;
    static int ready;
    if (!ready) { urlfilter_build(&url); ready = 1; }
    Corpus c = {0};
    corpus_add_jsonl(&c, "fuzz.jsonl", (const char *)data, size);
    if ((c.bad_lines || c.bad_utf8) && (!c.example[0] || strchr(c.example, '\n'))) abort();
    Scratch sc = {0};
    Buf norm = {0}, removed = {0};
    uint64_t *sh = NULL;
    size_t shcap = 0;
    for (size_t i = 0; i < c.n; i++) {
        Doc *d = &c.doc[i];
        if (!d->len || !utf8_valid(d->text, d->len)) abort();
        url_filter(&url, d->url);
        gopher_repetition(&sc, d->text, d->len);
        gopher_quality(&sc, d->text, d->len);
        size_t before = d->len;
        linewise(d, &removed);
        if (d->len > before) abort();
        shingles(d->text, d->len, &norm, &sh, &shcap);
    }
    free(norm.s); free(removed.s); free(sh);
    scratch_free(&sc);
    corpus_free(&c);
    return 0;
}
