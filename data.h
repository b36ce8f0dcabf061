// data.h: the public C API of data.c, the data side of falcon.c.
//
// data.c turns raw documents into token shards the way RefinedWeb's Macrodata Refinement does
// (URL filter, Gopher repetition and quality filters, line-wise corrections, MinHash and exact-substring
// deduplication, URL deduplication, tokenisation, mixing) and reads those shards back as training batches.
// falcon.c only needs the loader half of this header.
//
// ---------------------------------------------------------------------------------------------------------
// Shard file layout (version 1). All integers are little-endian.
//
//   offset  size  field
//        0     4  magic        0x44534c46, the bytes "FLSD" on disk
//        4     4  version      1
//        8     4  token_bytes  2 (uint16 ids, used when vocab_size <= 65536) or 4 (uint32 ids)
//       12     4  eot          id of <|endoftext|>
//       16     8  n_tokens     number of token ids that follow the header
//       24     8  n_docs       number of documents in the shard
//       32     4  vocab_size   every id is < vocab_size
//       36    28  reserved     zero
//       64     .  n_tokens ids of token_bytes each
//
// Every document is preceded by one <|endoftext|>, so a shard reads EOT doc EOT doc ... and the first token of
// a shard is EOT. A file whose size is not exactly 64 + n_tokens * token_bytes is refused as truncated.
//
// ---------------------------------------------------------------------------------------------------------
// Batches. The loader cuts every shard into windows of T+1 tokens that start at multiples of T (so consecutive
// windows share one token, and a window never crosses a shard boundary); the last incomplete window of a shard
// is not used. An epoch is a permutation of all windows of all shards, fixed by (seed, epoch number); batch
// number s of rank r holds the windows at permuted positions (s * world + r) * B + b for b = 0..B-1, so the
// ranks of a data-parallel job read disjoint windows. Each batch is B rows of T+1 int32 ids: inputs are
// row[0, T), targets are row[1, T+1).
#ifndef FALCON_DATA_H
#define FALCON_DATA_H
#include <stddef.h>
#include <stdint.h>

#define DATA_SHARD_MAGIC 0x44534c46u
#define DATA_SHARD_VERSION 1u
#define DATA_SHARD_HEADER 64

// ---------------------------------------------------------------------------------------------------------
// Shard header, as read from a file.
typedef struct {
    uint32_t token_bytes, eot, vocab_size;
    uint64_t n_tokens, n_docs;
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
// or foreign or truncated shard, fewer windows than one batch needs, B or T zero, rank >= world).
DataLoader *dataloader_open(const char *const *paths, size_t npaths, size_t B, size_t T, uint64_t seed,
                            int rank, int world, char *err, size_t errsize);

// The validation reader: the same windows in file order, no shuffling, rank-strided; dataloader_next returns 0
// at the end of a pass, and dataloader_rewind starts the next pass from the beginning.
DataLoader *dataloader_open_val(const char *const *paths, size_t npaths, size_t B, size_t T, int rank,
                                int world, char *err, size_t errsize);

// Fills tokens[0, B*(T+1)) with the next batch. Returns 1, or 0 when a validation pass is over (a training
// loader starts the next epoch by itself and always returns 1).
int dataloader_next(DataLoader *dl, int32_t *tokens);
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
