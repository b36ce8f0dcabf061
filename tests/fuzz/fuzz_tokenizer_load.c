// libFuzzer harness: tokenizer_load_json (and through it json.c) on arbitrary bytes; when a file loads,
// encoding and decoding with it must work and round-trip whenever the vocabulary covers every byte.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_tokenizer_load tests/fuzz/fuzz_tokenizer_load.c json.c
//   build/fuzz_tokenizer_load -max_len=4096 build/fuzz_load_corpus tests/fuzz/seeds_load
#include "../../tokenizer.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    Tokenizer *t = tokenizer_load_json((const char *)data, size, "fuzz.json", err, sizeof err);
    if (!t) {
        if (!strchr(err, ':') || strchr(err, '\n')) abort();   // the message must be one line with a position
        return 0;
    }
    int covers = 1;
    for (int b = 0; b < 256; b++) covers &= t->byte_id[b] >= 0;
    const char *texts[3] = {"Hello, world! 12345 <|endoftext|> \xff\xfe caf\xc3\xa9", (const char *)data, ""};
    size_t lens[3] = {strlen(texts[0]), size < 512 ? size : 512, 0};
    for (int k = 0; k < 3; k++) {
        TokenIds ids = {0};
        TokenBytes back = {0};
        if (tokenizer_encode(t, texts[k], lens[k], &ids) == 0 && tokenizer_decode(t, ids.ids, ids.len, &back) == 0 &&
            covers && (back.len != lens[k] || (lens[k] && memcmp(back.data, texts[k], lens[k]) != 0)))
            abort();
        token_ids_free(&ids);
        token_bytes_free(&back);
    }
    tokenizer_free(t);
    return 0;
}
