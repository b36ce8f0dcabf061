// libFuzzer harness: encoding arbitrary bytes with tests/tok/hf_trained.json (Falcon's pre-tokenizer):
// decode(encode(x)) == x, and the two BPE merge loops (heap, short words) agree on every word.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_tokenizer_encode tests/fuzz/fuzz_tokenizer_encode.c json.c
//   build/fuzz_tokenizer_encode -max_len=2048 build/fuzz_encode_corpus tests/tok/texts   (from the repository root)
#include "../../tokenizer.c"

static Tokenizer *tok;
static Tokenizer *ref;   // a second copy, used for the word-level comparison

static void check_word(void *ctx, const uint8_t *s, size_t n) {
    (void)ctx;
    if (n > BPE_SMALL) return;
    long m = bpe_symbols(ref, s, n);
    size_t k = bpe_merge_small(ref, (size_t)m);
    int32_t small[BPE_SMALL];
    memcpy(small, ref->sym_id, k * sizeof(int32_t));
    m = bpe_symbols(ref, s, n);
    bpe_merge_heap(ref, (size_t)m);
    size_t j = 0;
    for (long i = 0; i < m; i++)
        if (ref->sym_len[i] && (j >= k || ref->sym_id[i] != small[j++])) abort();
    if (j != k) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    if (!tok) {
        tok = tokenizer_load("tests/tok/hf_trained.json", err, sizeof err);
        ref = tokenizer_load("tests/tok/hf_trained.json", err, sizeof err);
        if (!tok || !ref) { fprintf(stderr, "%s (run from the repository root)\n", err); abort(); }
        ref->pre.leaf = check_word;
        ref->pre.leaf_ctx = ref;
    }
    TokenIds ids = {0};
    TokenBytes back = {0};
    if (tokenizer_encode(tok, (const char *)data, size, &ids) || tokenizer_decode(tok, ids.ids, ids.len, &back)) abort();
    if (back.len != size || (size && memcmp(back.data, data, size) != 0)) abort();
    pretok_run(&ref->pre, 0, data, size);
    token_ids_free(&ids);
    token_bytes_free(&back);
    return 0;
}
