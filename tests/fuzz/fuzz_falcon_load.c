// libFuzzer harness: falcon.c's readers of untrusted files, safetensors and config.json, on arbitrary bytes.
// Invariants: the input is either read, or refused with one line that names the file; never a crash, a leak, an
// out-of-bounds read or undefined behaviour (run it under ASan and UBSan).
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp-simd -o build/fuzz_falcon_load tests/fuzz/fuzz_falcon_load.c data.c tokenizer.c json.c -lm
//   build/fuzz_falcon_load -max_len=8192 build/fuzz_falcon_corpus tests/fuzz/seeds_safetensors
#include "../../falcon.c"

static void check_error(const Err *e, const char *path) {
    if (!strstr(e->msg, path) || strchr(e->msg, '\n')) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_falcon_load.%d.safetensors", (int)getpid());
    // as a config.json
    Err e = {{0}};
    Config c;
    if (config_parse(&c, (const char *)data, size, path, &e) != 0) check_error(&e, path);
    else if (c.C % c.NH || c.NH % c.NKV || c.HS % 2) abort();
    // as a safetensors file: open, then read every tensor it declares as fp32 of its own shape
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    SafeTensors st;
    e.msg[0] = 0;
    if (safetensors_open(&st, path, &e) != 0) {
        check_error(&e, path);
        return 0;
    }
    for (size_t i = 0; i < st.n; i++) {
        const STensor *t = &st.t[i];
        if (t->numel > (1u << 20) || t->ndim > 4) continue;
        float *buf = malloc((t->numel ? t->numel : 1) * sizeof(float));
        Err re = {{0}};
        if (safetensors_read_f32(&st, t->name, t->shape, t->ndim, buf, &re) != 0) check_error(&re, path);
        free(buf);
    }
    safetensors_close(&st);
    return 0;
}
