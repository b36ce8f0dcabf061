// Tests of tokenizer.c's internals: the byte-level alphabet, UTF-8 decoding, the pre-tokenizer against
// pieces printed by HF tokenizers, the heap BPE against a plain reference BPE, training parity with HF's
// BpeTrainer (tests/tok/hf_trained.json), the C API, and linear time on adversarial input.
// Run from the repository root.
#include "../tokenizer.c"
#include "test.h"
#include <time.h>

// ---- the pre-tokenizer: collect the pieces (as byte-level vocabulary strings, like HF prints them)
static char pieces[8192];
static void collect(void *ctx, const uint8_t *s, size_t n) {
    (void)ctx;
    TokenBytes b = {0};
    bytes_to_vocab_string(s, n, &b);
    size_t l = strlen(pieces);
    snprintf(pieces + l, sizeof pieces - l, "%s%.*s", l ? "|" : "", (int)b.len, b.data);
    token_bytes_free(&b);
}

// Pre-tokenizes with Falcon's pipeline, or with the GPT-2 one (ByteLevel alone) when gpt2 is set.
static const char *pretokenize_with(const char *text, int gpt2) {
    PreTokenizer p = {0};
    pretok_falcon(&p);
    if (gpt2) { p.steps[0] = p.steps[1]; p.n_steps = 1; p.bytelevel_at = 0; }
    p.leaf = collect;
    pieces[0] = 0;
    pretok_run(&p, 0, (const uint8_t *)text, strlen(text));
    return pieces;
}
static const char *pretokenize(const char *text) { return pretokenize_with(text, 0); }

// ---- a plain BPE, the textbook way: while some adjacent pair has a merge, merge the one of lowest
// rank (leftmost on ties). O(n^2) per word; the heap version in tokenizer.c must agree with it.
static void bpe_reference(const Tokenizer *t, const uint8_t *s, size_t n, TokenIds *out) {
    int32_t *sym = malloc((n + 1) * sizeof *sym);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) if (t->byte_id[s[i]] >= 0) sym[m++] = t->byte_id[s[i]];
    for (;;) {
        size_t best = SIZE_MAX;
        uint32_t best_rank = UINT32_MAX;
        int32_t best_id = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            const MergeSlot *ms = merge_get(t, sym[i], sym[i + 1]);
            if (ms && ms->rank < best_rank) { best = i; best_rank = ms->rank; best_id = ms->new_id; }
        }
        if (best == SIZE_MAX) break;
        sym[best] = best_id;
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof *sym);
        m--;
    }
    for (size_t i = 0; i < m; i++) ids_push(out, sym[i]);
    free(sym);
}

// CPU time of this process: unlike wall time, other jobs on a shared machine barely change it.
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double encode_seconds(Tokenizer *t, const char *text, size_t len, size_t *n_ids) {
    TokenIds ids = {0};
    double t0 = now();
    tokenizer_encode(t, text, len, &ids);
    double dt = now() - t0;
    *n_ids = ids.len;
    token_ids_free(&ids);
    return dt;
}

int main(void) {
    tables_init();
    char err[512];

    // byte-level alphabet: printable Latin-1 stands for itself, the rest is U+0100 onwards in byte order
    CHECK(byte_to_cp[' '] == 0x120 && byte_to_cp['\n'] == 0x10A && byte_to_cp['a'] == 'a' && byte_to_cp[0] == 0x100,
          "byte-level characters: space U+%04X newline U+%04X NUL U+%04X", byte_to_cp[' '], byte_to_cp['\n'], byte_to_cp[0]);
    int bijective = 1;
    for (int b = 0; b < 256; b++) bijective &= cp_to_byte[byte_to_cp[b]] == b && byte_to_cp[b] < 324;
    CHECK(bijective, "byte-level mapping is a bijection onto U+0021..U+0143");

    // UTF-8 decoding: invalid sequences become single bytes of no class
    uint32_t cp;
    CHECK(utf8_decode((const uint8_t *)"\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20AC, "UTF-8 euro sign decodes");
    CHECK(utf8_decode((const uint8_t *)"\xc0\xaf", 2, &cp) == 1 && cp == 0xFFFFFFFFu, "overlong form is invalid");
    CHECK(utf8_decode((const uint8_t *)"\xed\xa0\x80", 3, &cp) == 1 && cp == 0xFFFFFFFFu, "surrogate is invalid");
    CHECK(utf8_decode((const uint8_t *)"\xf0\x9f\x98", 3, &cp) == 1 && cp == 0xFFFFFFFFu, "truncated sequence is invalid");

    // the pre-tokenizer, against the pieces HF tokenizers 0.23.3 prints for Falcon's pre-tokenizer
    const char *got = pretokenize("Hello, don't 12345678 x\xc2\xb2  y\n\n z ...!? \xc2\xa0" "a");
    const char *want = "Hello|,|Ġdon|'|t|Ġ|123|456|78|Ġx|Â|²|Ġ|Ġy|ĊĊ|Ġz|Ġ|...!?|Ġ|Âł|a";
    CHECK(strcmp(got, want) == 0, "Falcon pre-tokenizer pieces\n   got  %s\n   want %s", got, want);
    got = pretokenize("a\xd9\xa1\xd9\xa2" "b 1\xc2\xb2" "2345 \t\tx   ");
    want = "a|Ù¡Ù¢|b|Ġ|1|Â|²|234|5|Ġĉ|ĉ|x|ĠĠĠ";   // after ByteLevel, Digits sees bytes: '²' (0xB2) is numeric
    CHECK(strcmp(got, want) == 0, "digits and white space pieces\n   got  %s\n   want %s", got, want);

    got = pretokenize_with("I'm don't we'll they've you're he'd it's 'S 'Ts x'  'll''s ?'s", 1);
    want = "I|'m|Ġdon|'t|Ġwe|'ll|Ġthey|'ve|Ġyou|'re|Ġhe|'d|Ġit|'s|Ġ'|S|Ġ'|Ts|Ġx|'|Ġ|Ġ'|ll|''|s|Ġ?'|s";
    CHECK(strcmp(got, want) == 0, "GPT-2 pre-tokenizer contractions\n   got  %s\n   want %s", got, want);

    Tokenizer *hf = tokenizer_load("tests/tok/hf_trained.json", err, sizeof err);
    CHECK(hf != NULL, "load tests/tok/hf_trained.json: %s", hf ? "ok" : err);
    if (!hf) return test_summary();

    // the C API
    CHECK(tokenizer_vocab_size(hf) == 2000, "vocab size %zu", tokenizer_vocab_size(hf));
    CHECK(tokenizer_token_id(hf, "<|endoftext|>", 13) == 11 && tokenizer_token_id(hf, ">>TITLE<<", 9) == 0 &&
          tokenizer_token_id(hf, ">>MIDDLE<<", 10) == 10, "Falcon's special token ids");
    CHECK(tokenizer_token_id(hf, "Ġthe", strlen("Ġthe")) > 11 && tokenizer_token_id(hf, "no such token", 13) == -1,
          "token lookup by vocabulary string");
    size_t len;
    const char *b = tokenizer_token_bytes(hf, tokenizer_token_id(hf, "Ġthe", strlen("Ġthe")), &len);
    CHECK(b && len == 4 && memcmp(b, " the", 4) == 0, "token bytes undo the byte-level mapping");
    CHECK(tokenizer_token_bytes(hf, 2000, &len) == NULL && tokenizer_token_bytes(hf, -1, &len) == NULL,
          "out-of-range ids have no bytes");
    TokenBytes bytes = {0};
    int32_t bad_ids[2] = {5, 99999};
    CHECK(tokenizer_decode(hf, bad_ids, 2, &bytes) == -1, "decode refuses an unknown id");
    token_bytes_free(&bytes);
    TokenIds ids = {0};
    const char *s = "Hi<|endoftext|>>>TITLE<<x";
    tokenizer_encode(hf, s, strlen(s), &ids);
    int has_eot = 0, has_title = 0;
    for (size_t i = 0; i < ids.len; i++) { has_eot |= ids.ids[i] == 11; has_title |= ids.ids[i] == 0; }
    CHECK(has_eot && has_title, "special tokens are matched inside text (%zu ids)", ids.len);
    tokenizer_decode(hf, ids.ids, ids.len, &bytes);
    CHECK(bytes.len == strlen(s) && memcmp(bytes.data, s, bytes.len) == 0, "decode(encode(x)) == x with special tokens");
    token_bytes_free(&bytes);
    token_ids_free(&ids);

    // heap BPE == plain BPE, on every word of the corpus and on random byte strings
    char *corpus;
    size_t clen;
    CHECK(read_file("tests/tok/corpus.txt", &corpus, &clen, err, sizeof err) == 0, "read corpus");
    size_t words = 0, differ_heap = 0, differ_small = 0;
    uint64_t rng = 42;
    for (size_t i = 0; i < clen && words < 20000; words++) {
        size_t n = 1;
        while (i + n < clen && corpus[i + n] != ' ' && corpus[i + n] != '\n' && n < 60) n++;
        uint8_t w[64];
        if (words % 2) {   // a random byte string instead of the corpus word
            for (size_t k = 0; k < n; k++) { rng = rng * 6364136223846793005ull + 1442695040888963407ull; w[k] = (uint8_t)(rng >> 56); }
        } else {
            memcpy(w, corpus + i, n);
        }
        TokenIds r = {0};
        bpe_reference(hf, w, n, &r);
        // the heap version (any length) and the short-word version (up to BPE_SMALL bytes)
        size_t m = (size_t)bpe_symbols(hf, w, n), k = 0;
        bpe_merge_heap(hf, m);
        for (size_t j = 0; j < m; j++) if (hf->sym_len[j]) differ_heap += k >= r.len || hf->sym_id[j] != r.ids[k++];
        differ_heap += k != r.len;
        if (n <= BPE_SMALL) {
            k = bpe_merge_small(hf, (size_t)bpe_symbols(hf, w, n));
            differ_small += k != r.len || memcmp(hf->sym_id, r.ids, k * sizeof(int32_t)) != 0;
        }
        token_ids_free(&r);
        i += n;
    }
    CHECK(differ_heap == 0, "heap BPE agrees with the reference BPE on %zu words (%zu differ)", words, differ_heap);
    CHECK(differ_small == 0, "short-word BPE agrees with the reference BPE (%zu differ)", differ_small);

    // training parity: tokenizer.c's trainer learns exactly HF BpeTrainer's vocabulary and merges
    BpeTrainer *tr = bpe_trainer_build();
    CHECK(bpe_trainer_add_file(tr, "tests/tok/corpus.txt", err, sizeof err) == 0, "trainer reads the corpus");
    char tmpl[] = "/tmp/tok_test_XXXXXX";
    char *dir = mkdtemp(tmpl), out[256];
    snprintf(out, sizeof out, "%s/trained.json", dir ? dir : "/tmp");
    TrainConfig cfg = {2000, 0, NULL, 0};
    CHECK(bpe_trainer_write(tr, &cfg, out, err, sizeof err) == 0, "training writes %s", out);
    bpe_trainer_free(tr);
    Tokenizer *ours = tokenizer_load(out, err, sizeof err);
    CHECK(ours != NULL, "HF-format output loads back: %s", ours ? "ok" : err);
    if (ours) {
        size_t same_tokens = 0, same_merges = 0;
        for (size_t id = 0; id < hf->n_ids && id < ours->n_ids; id++) {
            size_t la = 0, lb = 0;
            const char *ta = tokenizer_token_bytes(hf, (int32_t)id, &la), *tb = tokenizer_token_bytes(ours, (int32_t)id, &lb);
            same_tokens += ta && tb && la == lb && memcmp(ta, tb, la) == 0;
        }
        for (size_t i = 0; i < hf->merges_cap; i++) {
            const MergeSlot *m = &hf->merges[i];
            if (!m->key) continue;
            const MergeSlot *o = merge_get(ours, (int32_t)((m->key - 1) >> 32), (int32_t)(uint32_t)(m->key - 1));
            same_merges += o && o->rank == m->rank && o->new_id == m->new_id;
        }
        CHECK(ours->n_ids == hf->n_ids && same_tokens == hf->n_ids, "vocabulary identical to HF's: %zu of %zu tokens",
              same_tokens, hf->n_ids);
        CHECK(ours->n_merges == hf->n_merges && same_merges == hf->n_merges,
              "merges identical to HF's (same rank): %zu of %zu", same_merges, hf->n_merges);
        tokenizer_free(ours);
    }
    remove(out);
    if (dir) rmdir(dir);

    // linear time on adversarial text: one enormous word, a long digit run, random bytes.
    // 8x the input must cost at most 32x the time, half of the 8x8 = 64x that a quadratic encoder needs
    // (n log n BPE and cache misses make the heap path about 12x).
    char *text = malloc(8 << 20);
    // (the word is the corpus's letters run together, so that BPE has many merges to do in it)
    const char *kinds[3] = {"one word", "a digit run", "random bytes"};
    for (int k = 0; k < 3; k++) {
        size_t big = k == 0 ? 1 << 18 : 1 << 20;   // the word: 256 KiB and 2 MiB; the others: 1 and 8 MiB
        for (size_t i = 0, c = 0; i < 8 * big; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            if (k == 0) {
                while (!((corpus[c % clen] | 0x20) >= 'a' && (corpus[c % clen] | 0x20) <= 'z')) c++;
                text[i] = corpus[c++ % clen];
            } else {
                text[i] = k == 1 ? (char)('0' + (rng >> 60) % 10) : (char)(rng >> 56);
            }
        }
        size_t n1, n8;
        double t1 = encode_seconds(hf, text, big, &n1), t8 = encode_seconds(hf, text, 8 * big, &n8);
        CHECK(t8 < 32 * t1 + 0.05 && n8 > n1, "%s: %zu KiB %.3fs, 8x that %.3fs (ratio %.1f, linear is 8)", kinds[k],
              big >> 10, t1, t8, t8 / t1);
    }
    free(text);
    free(corpus);
    tokenizer_free(hf);
    return test_summary();
}
