// data.h: the public C API of data.c, the data side of falcon.c.
//
// data.c turns raw documents into token shards the way RefinedWeb's Macrodata Refinement does
// (URL filter, Gopher repetition and quality filters, line-wise corrections, MinHash and exact-substring
// deduplication, URL deduplication, tokenisation, mixing) and reads those shards back as training batches.
// falcon.c only needs the loader half of this header.
//
// ---------------------------------------------------------------------------------------------------------
// Shard file layout (version 1: plain documents; version 2: packed conversation trees, see docs/trees.md).
// All integers are little-endian.
//
//   offset  size  field
//        0     4  magic        0x44534c46, the bytes "FLSD" on disk
//        4     4  version      1 (plain) or 2 (trees)
//        8     4  token_bytes  2 (uint16 ids, used when vocab_size <= 65536) or 4 (uint32 ids)
//       12     4  eot          id of <|endoftext|>
//       16     8  n_tokens     number of token ids that follow the header
//       24     8  n_docs       number of documents (version 2: trees, a split tree counting once per piece)
//       32     4  vocab_size   every id is < vocab_size
//       36     4  context      version 2: the T the trees were packed for; 0 in version 1
//       40     8  n_messages   version 2: entries of the message table; 0 in version 1
//       48    16  reserved     zero
//       64     .  n_tokens ids of token_bytes each
// version 2 only, after the ids:
//        .     .  msg[n_tokens]   uint32: the token's message (an index into the message table), or
//                                 0xFFFFFFFF = padding (no loss, sees only itself), 0xFFFFFFFE = plain text
//        .     .  pos[n_tokens]   uint32: the token's position on its own root-to-leaf path (RoPE position id)
//        .     .  messages[n_messages], 16 bytes each:
//                   parent u32    index of the parent message (always smaller), 0xFFFFFFFF for a root
//                   flags  u32    bit 0 (DATA_MSG_REPEATED): a copy of an ancestor that a piece of a split tree
//                                 carries as context (its tokens but the last predict nothing); bit 1
//                                 (DATA_MSG_CUT): the message or its replies were cut at T (its last token
//                                 predicts nothing)
//                   end    u64    the shard index of the last token of the message's subtree
//
// Version 1: every document is preceded by one <|endoftext|>, so a shard reads EOT doc EOT doc ... and the first
// token of a shard is EOT. Version 2: windows of T tokens (below) each hold whole trees in depth-first order, each
// tree starting with EOT, then padding; plain text mixed in (`data mix`) fills whole windows. A version 2 shard
// holds whole windows plus one padding token, n_tokens = k T + 1. A file whose size is not exactly what its
// header says is refused as truncated.
//
// ---------------------------------------------------------------------------------------------------------
// Batches. The loader cuts every shard into windows of T+1 tokens that start at multiples of T (so consecutive
// windows share one token, and a window never crosses a shard boundary); the last incomplete window of a shard
// is not used. An epoch is a permutation of all windows of all shards, fixed by (seed, epoch number); batch
// number s of rank r holds the windows at permuted positions (s * world + r) * B + b for b = 0..B-1, so the
// ranks of a data-parallel job read disjoint windows. dataloader_next_batch turns each window into four rows of
// T (inputs, targets, pos, span_end); for plain text, inputs are the window's ids [0, T) and targets its ids
// [1, T+1).
//
// The attention mask of a row: key j is visible from query i iff j <= i <= span_end[j]. Depth-first order makes
// every message's subtree a contiguous range of the row, and span_end[j] is the last token of the subtree of j's
// message, so the visible keys of i are exactly i's message (causally) and its ancestors. Plain text has
// span_end = T-1 (causal); padding has span_end[j] = j (it sees only itself, and nothing sees it).
#ifndef FALCON_DATA_H
#define FALCON_DATA_H
#include <stddef.h>
#include <stdint.h>

#define DATA_SHARD_MAGIC 0x44534c46u
#define DATA_SHARD_VERSION 1u      // plain documents
#define DATA_SHARD_VERSION_TREES 2u // packed conversation trees
#define DATA_MSG_PAD 0xFFFFFFFFu
#define DATA_MSG_PLAIN 0xFFFFFFFEu
#define DATA_NO_PARENT 0xFFFFFFFFu
#define DATA_MSG_REPEATED 1u
#define DATA_MSG_CUT 2u
#define DATA_IGNORE (-100)          // a target that counts no loss
#define DATA_SHARD_HEADER 64

// ---------------------------------------------------------------------------------------------------------
// Shard header, as read from a file.
typedef struct {
    uint32_t version, token_bytes, eot, vocab_size;
    uint32_t context;     // version 2: the T of its windows; 0 for plain shards
    uint64_t n_tokens, n_docs, n_messages;
} ShardInfo;

// Reads and checks the header of a shard (magic, version, width, size). Returns 0, or -1 with a one-line
// err naming the file and the problem.
int shard_info(const char *path, ShardInfo *info, char *err, size_t errsize);

// ---------------------------------------------------------------------------------------------------------
// Training loader.
typedef struct DataLoader DataLoader;

// The position of a loader: a small POD that a checkpoint stores as is. After dataloader_seek to a position
// obtained from dataloader_tell, the following batches are bit for bit the ones that followed the tell.
// `fingerprint` identifies the data (shard sizes, B, T, seed, rank, world); seeking with a position made for
// other data is refused.
typedef struct {
    uint64_t epoch;       // completed passes over the data
    uint64_t batch;       // batches already returned in the current epoch
    uint64_t fingerprint; // hash of the loader's configuration
    uint64_t reserved;    // zero
} DataPos;

// Opens the training loader over shard files paths[0..npaths) for batches of B rows of T+1 tokens, shuffled by
// `seed`, for data-parallel rank `rank` of `world`. Returns NULL with a one-line err on bad input (unreadable
// or foreign or truncated shard, fewer windows than one batch needs, B or T zero, rank >= world, a tree shard
// packed for another context than T). Plain and tree shards may be opened together.
DataLoader *dataloader_open(const char *const *paths, size_t npaths, size_t B, size_t T, uint64_t seed,
                            int rank, int world, char *err, size_t errsize);

// The validation reader: the same windows in file order, no shuffling, rank-strided; dataloader_next_batch returns 0
// at the end of a pass, and dataloader_rewind starts the next pass from the beginning.
DataLoader *dataloader_open_val(const char *const *paths, size_t npaths, size_t B, size_t T, int rank,
                                int world, char *err, size_t errsize);

// Fills four (B, T) arrays with the next batch. Returns 1, or 0 when a validation pass is over (a training
// loader starts the next epoch by itself and always returns 1).
//   inputs    the token ids
//   targets   the id each position predicts, DATA_IGNORE (-100) for none: plain text the next token; in a tree
//             the next token of the token's own message, or at a message's last token the first token of its
//             first child in the row, or <|endoftext|> when it has none there (a leaf); padding, the tokens
//             of repeated ancestors (all but their last token) and the last token of a cut message DATA_IGNORE
//   pos       the RoPE position id: t for plain text, the position on the token's root-to-leaf path in a tree
//   span_end  the mask, row-relative: key j is visible from query i iff j <= i <= span_end[j] (T-1 for plain)
int dataloader_next_batch(DataLoader *dl, int32_t *inputs, int32_t *targets, int32_t *pos, int32_t *span_end);
int dataloader_has_trees(const DataLoader *dl);           // 1 when some shard holds trees (version 2)
DataPos dataloader_tell(const DataLoader *dl);
// Returns 0, or -1 with err when pos belongs to other data or lies beyond the end of an epoch.
int dataloader_seek(DataLoader *dl, DataPos pos, char *err, size_t errsize);
void dataloader_rewind(DataLoader *dl);
size_t dataloader_batches_per_epoch(const DataLoader *dl); // batches per epoch (per pass) for this rank
uint32_t dataloader_vocab_size(const DataLoader *dl);     // largest vocab_size over the shards
void dataloader_close(DataLoader *dl);

// ---------------------------------------------------------------------------------------------------------
// The `./data` command line (synth, prepare, mix, gopher, info); `./data --help` lists it. Returns the exit status.
int data_cli(int argc, char **argv);

#endif
