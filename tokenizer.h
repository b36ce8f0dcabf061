// tokenizer.h: the public C API of tokenizer.c, Falcon's byte-level BPE tokenizer.
//
// Token ids are int32_t everywhere (Falcon's vocabulary has 65,024 entries; -1 means "none").
// Text is bytes: any byte string encodes (invalid UTF-8 included) and decode(encode(x)) == x.
//
// Thread safety: a Tokenizer is read-only after loading except for its word cache, which
// tokenizer_encode updates. Encode from several threads with one Tokenizer per thread;
// every other function on a loaded Tokenizer is read-only and may be called concurrently. The first
// tokenizer_load / bpe_trainer_build fills shared lookup tables: make it before starting threads.
#ifndef FALCON_TOKENIZER_H
#define FALCON_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// Growable, caller-owned buffers. Start them zeroed ({0}); the functions below append to them
// (realloc as needed); free them with token_ids_free / token_bytes_free.
typedef struct { int32_t *ids; size_t len, cap; } TokenIds;
typedef struct { char *data; size_t len, cap; } TokenBytes;
void token_ids_free(TokenIds *ids);
void token_bytes_free(TokenBytes *bytes);

// ---- loading: any HF byte-level BPE tokenizer.json (Falcon's included)
// Returns NULL on error with a one-line message in err: "<path>: byte N: <problem>".
Tokenizer *tokenizer_load(const char *path, char *err, size_t errsize);
// Same from JSON text in memory; `name` is used in error messages in place of the path.
Tokenizer *tokenizer_load_json(const char *json, size_t len, const char *name, char *err, size_t errsize);
void tokenizer_free(Tokenizer *t);

// Number of ids: 1 + the largest id of the vocabulary and the added tokens.
size_t tokenizer_vocab_size(const Tokenizer *t);

// ---- encode / decode
// Appends the ids of text[0, len) to out. Added (special) tokens such as "<|endoftext|>" are
// matched in the text first, as HF tokenizers does. Returns 0, or -1 if out of memory.
int tokenizer_encode(Tokenizer *t, const char *text, size_t len, TokenIds *out);
// The bytes that token `id` stands for (byte-level mapping undone), for streaming output.
// Not NUL-terminated; *len receives the length. NULL if id is not a token.
const char *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len);
// Appends the bytes of ids[0, n) to out. Returns 0, or -1 if an id is not a token / out of memory.
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokenBytes *out);
// The id of a token given by its vocabulary string (as written in tokenizer.json, e.g.
// "<|endoftext|>", ">>TITLE<<" or "Ġthe"), or -1 if there is none.
int32_t tokenizer_token_id(const Tokenizer *t, const char *token, size_t len);

// ---- training (deterministic; learns the same merges as HF's BpeTrainer, see docs/tokenizer.md)
typedef struct {
    size_t vocab_size;                  // target size, special tokens and the 256 byte symbols included
    size_t min_frequency;               // a pair seen fewer times is never merged (HF default: 0)
    const char *const *special_tokens;  // NULL: Falcon's twelve (">>TITLE<<" = 0 ... "<|endoftext|>" = 11)
    size_t n_special;                   // used when special_tokens != NULL
} TrainConfig;

typedef struct BpeTrainer BpeTrainer;
BpeTrainer *bpe_trainer_build(void);
void bpe_trainer_free(BpeTrainer *tr);
// Counts the pre-tokenized words of one sequence (one document). Returns 0, or -1 if out of memory.
int bpe_trainer_add_text(BpeTrainer *tr, const char *text, size_t len);
// Adds a file: a .jsonl file gives one sequence per line's "text" field; any other file gives one
// sequence per line, line ending included (as HF's Tokenizer.train(files) reads them).
// Returns 0, or -1 with a one-line message in err.
int bpe_trainer_add_file(BpeTrainer *tr, const char *path, char *err, size_t errsize);
// Adds files in order, with one progress line for all of them (progress.h: bytes read, MB/s, ETA).
int bpe_trainer_add_files(BpeTrainer *tr, const char *const *paths, size_t n, char *err, size_t errsize);
// Learns the merges (with a progress line: merges done of vocab_size minus the specials and the 256 bytes)
// and writes an HF-format tokenizer.json atomically (temp file + rename).
// Returns 0, or -1 with a one-line message in err.
int bpe_trainer_write(BpeTrainer *tr, const TrainConfig *cfg, const char *out_path, char *err, size_t errsize);

#endif
