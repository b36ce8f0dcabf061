// libFuzzer harness: the shard reader (shard_info, the training and validation loaders, the mixer's document
// scan) on arbitrary files, plain or trees. Invariants: a file is either refused with a one-line error naming it,
// or every batch read from it holds ids and targets below the header's vocabulary size (or -100), positions below
// T and span_end in [t, T).
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_data_shard tests/fuzz/fuzz_data_shard.c tokenizer.c json.c -lm
//   build/fuzz_data_shard -max_len=4096 build/fuzz_shard_corpus tests/fuzz/seeds_shard
#include "../../data.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_data_shard.%d.bin", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char err[512];
    const char *paths[1] = {path};
    int32_t in[2 * 4], tg[2 * 4], ps[2 * 4], se[2 * 4];
    ShardInfo info;
    int ok = shard_info(path, &info, err, sizeof err) == 0;
    if (!ok && (!strstr(err, path) || strchr(err, '\n'))) abort();
    DataLoader *dl = dataloader_open(paths, 1, 2, 4, 7, 0, 1, err, sizeof err);
    if (dl && !ok) abort();
    if (dl) {
        for (int k = 0; k < 3; k++) {
            dataloader_next_batch(dl, in, tg, ps, se);
            for (int i = 0; i < 8; i++)
                if (in[i] < 0 || (uint32_t)in[i] >= info.vocab_size || (tg[i] != -100 && (tg[i] < 0 || (uint32_t)tg[i] >= info.vocab_size)) ||
                    ps[i] < 0 || ps[i] >= 4 || se[i] < i % 4 || se[i] >= 4)
                    abort();
        }
        DataPos p = dataloader_tell(dl);
        if (dataloader_seek(dl, p, err, sizeof err) != 0) abort();
        dataloader_close(dl);
    }
    DataLoader *v = dataloader_open_val(paths, 1, 2, 4, 0, 1, err, sizeof err);
    if (v) {
        int n = 0;
        while (dataloader_next_batch(v, in, tg, ps, se) && n < 100) n++;
        dataloader_close(v);
    }
    MixSource m = {0};
    m.name = xstrndup("fuzz", 4);
    strlist_add(&m.paths, path, strlen(path));
    mix_source_open(&m, err, sizeof err);
    mix_source_free(&m);
    return 0;
}
