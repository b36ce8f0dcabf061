/*
falcon.c: the Falcon language model (Falcon-7B/40B/180B, "The Falcon Series of Open Language Models", TII 2023)
in one C file: its configuration, forward and backward pass, AdamW training, HF-compatible checkpoints and scoring.

The model, as HF transformers' FalconForCausalLM computes it:
    x = wte[tokens]                                     // token embeddings, no position embeddings
    for each of L blocks:                               // parallel attention + MLP, no biases anywhere
        a = LN_attn(x), m = LN_mlp(x)                   // 7B: one shared LayerNorm, a == m
        q, k, v = split(a @ Wqkv^T)                     // fused QKV: NH query heads, NKV key/value heads
        q, k = rope(q), rope(k)                         // rotary position embedding, rotate-half convention
        x = x + attention(q, k, v) @ Wdense^T + gelu(m @ Wfc^T) @ Wproj^T
    logits = LN_f(x) @ wte^T                            // LM head tied to the word embeddings

Switches (Config, all off for Falcon): the RefinedWeb models' Linear biases, sequential blocks
(x = x + attention(LN1(x)), then x = x + MLP(LN2(x))), full multi-head attention (NKV = NH) and ALiBi in place of
RoPE, from HF's FalconConfig; and falcon.c's own SwiGLU MLP. docs/architecture.md describes each.

Dimension names used everywhere: B batch, T time (sequence), C channels (hidden size), V vocabulary, L layers,
NH query heads, NKV key/value heads (1 = multi-query), HS head size, FF MLP hidden size, QKV = (NH + 2 NKV) HS.

Sections, top to bottom: configuration, safetensors, parameters, layers (each forward with its backward right
below it), the model, the optimizer, checkpoints, training data, sampling, the command line.
*/
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "data.h"
#include "json.h"
#include "progress.h"
#include "tokenizer.h"

// ----------------------------------------------------------------------------
// Errors. Every failure the user can cause is reported as one line and a non-zero exit.

typedef struct {
    char msg[512];
} Err;

// Records the first error only: the innermost description is the most precise one.
static int errorf(Err *e, const char *fmt, ...) {
    if (e->msg[0] == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static _Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "falcon: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

// Formats a file path; a path that does not fit is an error, never silently cut.
static char *path_of(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) die("path too long: %.80s...", out);
    return out;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory allocating %zu bytes", n);
    return p;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

// ----------------------------------------------------------------------------
// Configuration: the subset of HF's FalconConfig that defines the computation.

typedef struct {
    size_t V;          // vocab_size
    size_t C;          // hidden_size
    size_t L;          // num_hidden_layers
    size_t NH;         // num_attention_heads
    size_t NKV;        // key/value heads: 1 for multi-query (7B), num_kv_heads with new_decoder_architecture,
                       // NH for full multi-head (multi_query false: Falcon-RW)
    size_t HS;         // head size, C / NH
    size_t FF;         // ffn_hidden_size, 4 C by default
    size_t maxT;       // max_position_embeddings
    int new_decoder;   // new_decoder_architecture (40B/180B): QKV rows grouped per K/V head
    int num_ln;        // LayerNorms per block: 1 (shared by attention and MLP, 7B) or 2 (ln_attn + ln_mlp, 40B;
                       // input_layernorm + post_attention_layernorm in sequential blocks)
    float eps;         // layer_norm_epsilon
    float rope_theta;  // RoPE base
    int bos_id, eos_id;
    // The switches of the first RefinedWeb models (Falcon-RW-1B/7B), and one of falcon.c's own. All 0 = Falcon.
    int sequential;    // parallel_attn false: x += attention(LN1(x)), then x += MLP(LN2(x)) with the updated x
    int bias;          // bias: every Linear layer (QKV, dense, both MLP layers) adds a bias vector
    int alibi;         // alibi: ALiBi distance penalties on the attention scores instead of RoPE
    int swiglu;        // "mlp_type": "swiglu" (not HF's): h = silu(gate) * up instead of gelu(fc)
} Config;

// Presets: the released models' shapes and small ones for a laptop. vocab 65024 is Falcon's tokenizer.
typedef struct {
    const char *name;
    Config c;
} Preset;

static const Preset PRESETS[] = {
    // name          V      C      L   NH   NKV HS   FF     maxT  new ln eps   theta    bos eos seq bias alibi swiglu
    {"falcon-7b",   {65024, 4544,  32, 71,  1,  64,  18176, 2048, 0,  1, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
    {"falcon-40b",  {65024, 8192,  60, 128, 8,  64,  32768, 2048, 1,  2, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
    {"falcon-180b", {65024, 14848, 80, 232, 8,  64,  59392, 2048, 1,  2, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
    // the RefinedWeb paper's models (their HF config.json): full multi-head, sequential blocks, biases, ALiBi
    {"falcon-rw-1b", {50304, 2048, 24, 32,  32, 64,  8192,  2048, 0,  2, 1e-5f, 10000.f, 1,  2,  1,  1,   1,    0}},
    {"falcon-rw-7b", {65024, 4096, 36, 64,  64, 64,  16384, 2048, 0,  2, 1e-5f, 10000.f, 1,  2,  1,  1,   1,    0}},
    // laptop sizes; the vocabulary is replaced by the tokenizer's when training on shards
    {"nano",        {4096,  128,   4,  4,   1,  32,  512,   256,  0,  1, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
    {"tiny",        {8192,  256,   6,  8,   1,  32,  1024,  512,  0,  1, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
    {"small",       {8192,  512,   8,  8,   2,  64,  2048,  512,  1,  2, 1e-5f, 10000.f, 11, 11, 0,  0,   0,    0}},
};
#define NUM_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

static const Config *preset_find(const char *name) {
    for (size_t i = 0; i < NUM_PRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0) return &PRESETS[i].c;
    return NULL;
}

// Reads an integer member; absent -> def. Refuses non-integers and values outside [lo, hi].
static int cfg_int(const Json *root, const char *key, const char *alias, long long def, long long lo, long long hi,
                   long long *out, const char *path, Err *e) {
    const Json *v = json_get(root, key);
    if (!v && alias) v = json_get(root, alias);
    if (!v || v->type == JSON_NULL) {
        if (def == LLONG_MIN) return errorf(e, "%s: missing required key \"%s\"", path, key);
        *out = def;
        return 0;
    }
    if (v->type != JSON_NUMBER || v->number != floor(v->number))
        return errorf(e, "%s: byte %zu: \"%s\" must be an integer", path, v->start, key);
    if (v->number < (double)lo || v->number > (double)hi)
        return errorf(e, "%s: byte %zu: \"%s\" = %.0f is out of range [%lld, %lld]", path, v->start, key, v->number,
                      lo, hi);
    *out = (long long)v->number;
    return 0;
}

static int cfg_bool(const Json *root, const char *key, int def, int *out, const char *path, Err *e) {
    const Json *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (v->type != JSON_TRUE && v->type != JSON_FALSE)
        return errorf(e, "%s: byte %zu: \"%s\" must be true or false", path, v->start, key);
    *out = v->type == JSON_TRUE;
    return 0;
}

static int cfg_float(const Json *v, const char *key, double def, double lo, double hi, double *out,
                     const char *path, Err *e) {
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (v->type != JSON_NUMBER) return errorf(e, "%s: byte %zu: \"%s\" must be a number", path, v->start, key);
    if (!(v->number >= lo && v->number <= hi))
        return errorf(e, "%s: byte %zu: \"%s\" = %g is out of range [%g, %g]", path, v->start, key, v->number, lo, hi);
    *out = v->number;
    return 0;
}

// The SwiGLU MLP has three matrices of C x FF' where GELU's has two of C x FF: FF' = 2 FF / 3, to the nearest
// integer, gives the same number of parameters (and of FLOPs), within C per matrix.
static long long swiglu_hidden(long long ff) { return (2 * ff + 1) / 3; }

// Parses an HF Falcon config.json. Everything this file does not implement is refused, never ignored.
static int config_parse(Config *c, const char *text, size_t len, const char *path, Err *e) {
    Json root;
    char jerr[200];
    if (json_parse(text, len, &root, jerr, sizeof jerr)) return errorf(e, "%s: %s", path, jerr);
    int rc = -1;
    if (root.type != JSON_OBJECT) { errorf(e, "%s: byte 0: expected a JSON object", path); goto done; }
    const Json *mt = json_get(&root, "model_type");
    if (mt && (mt->type != JSON_STRING || (strcmp(mt->str, "falcon") && strcmp(mt->str, "RefinedWeb") &&
                                           strcmp(mt->str, "RefinedWebModel")))) {
        errorf(e, "%s: byte %zu: model_type must be \"falcon\"", path, mt->start);
        goto done;
    }
    // the first releases' files say model_type "RefinedWeb" (40B, grouped layout) or "RefinedWebModel" (7B)
    int rw40 = mt && mt->type == JSON_STRING && !strcmp(mt->str, "RefinedWeb");
    long long V, C, L, NH, NKV, FF, maxT, bos, eos, nln;
    int mq, nda, par, bias, alibi, tie;
    // falcon.c's own key: "mlp_type": "gelu" (HF's Falcon, the default) or "swiglu"
    const Json *mlp = json_get(&root, "mlp_type");
    if (mlp && (mlp->type != JSON_STRING || (strcmp(mlp->str, "gelu") && strcmp(mlp->str, "swiglu")))) {
        errorf(e, "%s: byte %zu: \"mlp_type\" must be \"gelu\" or \"swiglu\"", path, mlp->start);
        goto done;
    }
    int swiglu = mlp && !strcmp(mlp->str, "swiglu");
    if (cfg_int(&root, "vocab_size", NULL, LLONG_MIN, 1, 1LL << 31, &V, path, e) ||
        cfg_int(&root, "hidden_size", "n_embed", LLONG_MIN, 1, 1 << 20, &C, path, e) ||
        cfg_int(&root, "num_hidden_layers", "n_layer", LLONG_MIN, 1, 1 << 12, &L, path, e) ||
        cfg_int(&root, "num_attention_heads", "n_head", LLONG_MIN, 1, 1 << 14, &NH, path, e) ||
        cfg_int(&root, "num_kv_heads", "n_head_kv", NH, 1, 1 << 14, &NKV, path, e) ||
        cfg_int(&root, "ffn_hidden_size", NULL, swiglu ? swiglu_hidden(4 * C) : 4 * C, 1, 1 << 22, &FF, path, e) ||
        cfg_int(&root, "max_position_embeddings", NULL, 2048, 1, 1 << 24, &maxT, path, e) ||
        cfg_int(&root, "bos_token_id", NULL, 11, -1, V - 1, &bos, path, e) ||
        cfg_int(&root, "eos_token_id", NULL, 11, -1, V - 1, &eos, path, e) ||
        cfg_bool(&root, "multi_query", 1, &mq, path, e) ||
        cfg_bool(&root, "new_decoder_architecture", rw40, &nda, path, e) ||
        cfg_bool(&root, "parallel_attn", 1, &par, path, e) || cfg_bool(&root, "bias", 0, &bias, path, e) ||
        cfg_bool(&root, "alibi", 0, &alibi, path, e) || cfg_bool(&root, "tie_word_embeddings", 1, &tie, path, e) ||
        cfg_int(&root, "num_ln_in_parallel_attn", NULL, nda ? 2 : 1, 1, 2, &nln, path, e))
        goto done;
    const Json *act = json_get(&root, "activation");
    if (act && (act->type != JSON_STRING || strcmp(act->str, "gelu"))) {
        errorf(e, "%s: byte %zu: only \"activation\": \"gelu\" is supported", path, act->start);
        goto done;
    }
    if (!tie) { errorf(e, "%s: \"tie_word_embeddings\": false is not supported", path); goto done; }
    // HF's decoder layer reads ln_attn/ln_mlp (new_decoder_architecture) or post_attention_layernorm (sequential),
    // never both: the combination fails inside transformers itself
    if (!par && nda) {
        errorf(e, "%s: byte %zu: \"parallel_attn\": false contradicts \"new_decoder_architecture\": true", path,
               json_get(&root, "parallel_attn")->start);
        goto done;
    }
    // full multi-head (multi_query false): HF reshapes the keys to num_kv_heads heads, which must then be all of them
    if (!nda && !mq && NKV != NH) {
        const Json *kv = json_get(&root, "num_kv_heads");
        errorf(e, "%s: byte %zu: \"num_kv_heads\" %lld must equal num_attention_heads %lld with \"multi_query\": false",
               path, (kv ? kv : json_get(&root, "n_head_kv"))->start, NKV, NH);
        goto done;
    }
    if (C % NH) { errorf(e, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", path, C, NH); goto done; }
    if (!alibi && (C / NH) % 2) { errorf(e, "%s: head size %lld must be even for RoPE", path, C / NH); goto done; }
    if (nda && NH % NKV) {
        errorf(e, "%s: num_attention_heads %lld is not divisible by num_kv_heads %lld", path, NH, NKV);
        goto done;
    }
    if (!nda && nln != 1) { errorf(e, "%s: num_ln_in_parallel_attn 2 needs new_decoder_architecture", path); goto done; }
    // RoPE base: transformers 5 nests it in rope_parameters, older files have rope_theta at the top level
    const Json *rp = json_get(&root, "rope_parameters");
    const Json *theta = rp ? json_get(rp, "rope_theta") : NULL;
    if (!theta) theta = json_get(&root, "rope_theta");
    const Json *rtype = rp ? json_get(rp, "rope_type") : NULL;
    if (rtype && (rtype->type != JSON_STRING || strcmp(rtype->str, "default"))) {
        errorf(e, "%s: byte %zu: only the default rope_type is supported", path, rtype->start);
        goto done;
    }
    const Json *rs = json_get(&root, "rope_scaling");
    if (rs && rs->type != JSON_NULL) { errorf(e, "%s: byte %zu: rope_scaling is not supported", path, rs->start); goto done; }
    double th, eps;
    if (cfg_float(theta, "rope_theta", 10000.0, 1.0, 1e12, &th, path, e) ||
        cfg_float(json_get(&root, "layer_norm_epsilon"), "layer_norm_epsilon", 1e-5, 0.0, 1.0, &eps, path, e))
        goto done;
    c->V = (size_t)V;
    c->C = (size_t)C;
    c->L = (size_t)L;
    c->NH = (size_t)NH;
    c->NKV = nda || !mq ? (size_t)NKV : 1;
    c->HS = (size_t)(C / NH);
    c->FF = (size_t)FF;
    c->maxT = (size_t)maxT;
    c->new_decoder = nda;
    c->num_ln = par ? (int)nln : 2;
    c->sequential = !par;
    c->bias = bias;
    c->alibi = alibi;
    c->swiglu = swiglu;
    c->eps = (float)eps;
    c->rope_theta = (float)th;
    c->bos_id = (int)bos;
    c->eos_id = (int)eos;
    rc = 0;
done:
    json_free(&root);
    return rc;
}

static int config_load(Config *c, const char *dir, Err *e) {
    char path[4096], jerr[256];
    path_of(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t len;
    if (read_file(path, &text, &len, jerr, sizeof jerr)) return errorf(e, "%s: %s", path, jerr);
    int rc = config_parse(c, text, len, path, e);
    free(text);
    return rc;
}

// Writes config.json as HF's FalconConfig expects it.
static int config_save(const Config *c, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\n  \"architectures\": [\"FalconForCausalLM\"],\n  \"model_type\": \"falcon\",\n");
    fprintf(f, "  \"vocab_size\": %zu,\n  \"hidden_size\": %zu,\n  \"num_hidden_layers\": %zu,\n", c->V, c->C, c->L);
    fprintf(f, "  \"num_attention_heads\": %zu,\n  \"num_kv_heads\": %zu,\n", c->NH, c->new_decoder ? c->NKV : c->NH);
    fprintf(f, "  \"multi_query\": %s,\n  \"new_decoder_architecture\": %s,\n",
            c->new_decoder || c->NKV == 1 ? "true" : "false", c->new_decoder ? "true" : "false");
    if (c->new_decoder) fprintf(f, "  \"num_ln_in_parallel_attn\": %d,\n", c->num_ln);
    fprintf(f, "  \"parallel_attn\": %s,\n  \"bias\": %s,\n  \"alibi\": %s,\n  \"activation\": \"gelu\",\n",
            c->sequential ? "false" : "true", c->bias ? "true" : "false", c->alibi ? "true" : "false");
    if (c->swiglu) fprintf(f, "  \"mlp_type\": \"swiglu\",\n");
    fprintf(f, "  \"ffn_hidden_size\": %zu,\n  \"max_position_embeddings\": %zu,\n", c->FF, c->maxT);
    fprintf(f, "  \"layer_norm_epsilon\": %.9g,\n  \"rope_theta\": %.9g,\n", c->eps, c->rope_theta);
    fprintf(f, "  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": %.9g},\n", c->rope_theta);
    fprintf(f, "  \"tie_word_embeddings\": true,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n", c->bos_id,
            c->eos_id);
    fprintf(f, "  \"hidden_dropout\": 0.0,\n  \"attention_dropout\": 0.0,\n  \"dtype\": \"float32\"\n}\n");
    return fclose(f) ? -1 : 0;
}

// ----------------------------------------------------------------------------
// safetensors: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the raw little-endian tensor data; offsets are relative to the end of the header.

typedef struct {
    char *name;
    char dtype[8];     // "F32", "BF16", "F16", "I32", "I64"
    size_t shape[8];
    int ndim;
    size_t numel;
    uint64_t begin, end;
} STensor;

typedef struct {
    FILE *f;
    char *path;
    uint64_t data_start;   // 8 + N
    STensor *t;
    size_t n;
    Json meta;             // the "__metadata__" object (string values), JSON_NULL when absent
} SafeTensors;

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
    if (!strcmp(d, "BF16") || !strcmp(d, "F16")) return 2;
    if (!strcmp(d, "I64") || !strcmp(d, "F64")) return 8;
    return 0;
}

static void safetensors_close(SafeTensors *st) {
    if (st->f) fclose(st->f);
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    free(st->path);
    json_free(&st->meta);
    memset(st, 0, sizeof *st);
}

// Opens a safetensors file and validates its whole header against the file size before any data is read.
static int safetensors_open(SafeTensors *st, const char *path, Err *e) {
    memset(st, 0, sizeof *st);
    st->f = fopen(path, "rb");
    if (!st->f) return errorf(e, "%s: cannot open: %s", path, strerror(errno));
    st->path = strdup(path);
    if (fseeko(st->f, 0, SEEK_END)) { safetensors_close(st); return errorf(e, "%s: cannot seek", path); }
    uint64_t fsize = (uint64_t)ftello(st->f);
    rewind(st->f);
    unsigned char hb[8];
    if (fsize < 8 || fread(hb, 1, 8, st->f) != 8) {
        safetensors_close(st);
        return errorf(e, "%s: byte 0: file too short for a safetensors header (%llu bytes)", path,
                      (unsigned long long)fsize);
    }
    uint64_t N = 0;
    for (int i = 7; i >= 0; i--) N = (N << 8) | hb[i];
    if (N > fsize - 8 || N > (100u << 20)) {
        safetensors_close(st);
        return errorf(e, "%s: byte 0: header length %llu exceeds the file size %llu", path, (unsigned long long)N,
                      (unsigned long long)fsize);
    }
    char *hdr = xmalloc(N + 1);
    if (fread(hdr, 1, N, st->f) != N) { free(hdr); safetensors_close(st); return errorf(e, "%s: read error", path); }
    hdr[N] = 0;
    st->data_start = 8 + N;
    uint64_t data_size = fsize - st->data_start;
    Json root;
    char jerr[200];
    if (json_parse(hdr, N, &root, jerr, sizeof jerr)) {
        free(hdr);
        safetensors_close(st);
        // json offsets are relative to the header, which starts at byte 8 of the file
        size_t at = 0;
        sscanf(jerr, "byte %zu", &at);
        const char *what = strchr(jerr, ':');
        return errorf(e, "%s: byte %zu: bad header JSON%s", path, at + 8, what ? what : "");
    }
    free(hdr);
    int rc = -1;
    if (root.type != JSON_OBJECT) { errorf(e, "%s: byte 8: header is not a JSON object", path); goto done; }
    st->t = xcalloc(root.count, sizeof(STensor));
    for (size_t i = 0; i < root.count; i++) {
        const Json *v = &root.items[i];
        size_t at = 8 + v->start;
        if (!strcmp(root.keys[i], "__metadata__")) {
            if (v->type != JSON_OBJECT) { errorf(e, "%s: byte %zu: __metadata__ is not an object", path, at); goto done; }
            continue;
        }
        STensor *t = &st->t[st->n];
        const Json *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"), *off = json_get(v, "data_offsets");
        if (v->type != JSON_OBJECT || !dt || dt->type != JSON_STRING || !sh || sh->type != JSON_ARRAY || !off ||
            off->type != JSON_ARRAY || off->count != 2) {
            errorf(e, "%s: byte %zu: tensor \"%s\" needs dtype, shape and two data_offsets", path, at, root.keys[i]);
            goto done;
        }
        size_t es = dtype_size(dt->str);
        if (!es || strlen(dt->str) >= sizeof t->dtype) {
            errorf(e, "%s: byte %zu: tensor \"%s\" has unsupported dtype \"%s\"", path, 8 + dt->start, root.keys[i],
                   dt->str);
            goto done;
        }
        if (sh->count > 8) { errorf(e, "%s: byte %zu: tensor \"%s\" has more than 8 dimensions", path, at, root.keys[i]); goto done; }
        size_t numel = 1;
        for (size_t d = 0; d < sh->count; d++) {
            const Json *x = &sh->items[d];
            if (x->type != JSON_NUMBER || x->number < 0 || x->number != floor(x->number) || x->number > 1e15) {
                errorf(e, "%s: byte %zu: tensor \"%s\" has an invalid shape", path, 8 + x->start, root.keys[i]);
                goto done;
            }
            t->shape[d] = (size_t)x->number;
            if (t->shape[d] && numel > SIZE_MAX / t->shape[d]) {
                errorf(e, "%s: byte %zu: tensor \"%s\" shape overflows", path, 8 + x->start, root.keys[i]);
                goto done;
            }
            numel *= t->shape[d];
        }
        double b = off->items[0].number, en = off->items[1].number;
        if (off->items[0].type != JSON_NUMBER || off->items[1].type != JSON_NUMBER || b < 0 || en < b ||
            b != floor(b) || en != floor(en) || en > (double)data_size) {
            errorf(e, "%s: byte %zu: tensor \"%s\" data_offsets [%.0f, %.0f] point outside the %llu data bytes", path,
                   8 + off->start, root.keys[i], b, en, (unsigned long long)data_size);
            goto done;
        }
        if ((uint64_t)en - (uint64_t)b != (uint64_t)numel * es) {
            errorf(e, "%s: byte %zu: tensor \"%s\" has %.0f bytes of data, its shape and dtype need %zu", path,
                   8 + off->start, root.keys[i], en - b, numel * es);
            goto done;
        }
        t->name = strdup(root.keys[i]);
        strcpy(t->dtype, dt->str);
        t->ndim = (int)sh->count;
        t->numel = numel;
        t->begin = (uint64_t)b;
        t->end = (uint64_t)en;
        st->n++;
    }
    const Json *meta = json_get(&root, "__metadata__");
    if (meta) {
        // keep a private copy of the metadata object: re-parse its source range
        st->meta = *meta;
        root.items[meta - root.items] = (Json){0};
    }
    rc = 0;
done:
    json_free(&root);
    if (rc) safetensors_close(st);
    return rc;
}

static const STensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

// bf16 is the top half of an fp32; fp16 has a 5-bit exponent and 10-bit mantissa (with subnormals).
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1F, man = h & 0x3FF;
    float f;
    if (ex == 0) {
        f = ldexpf((float)man, -24);
    } else if (ex == 31) {
        f = man ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(man | 0x400), (int)ex - 25);
    }
    uint32_t u;
    memcpy(&u, &f, 4);
    u |= sign;
    memcpy(&f, &u, 4);
    return f;
}

// Reads a float tensor (F32, BF16 or F16 on disk) into dst as fp32, checking its shape.
static int safetensors_read_f32(const SafeTensors *st, const char *name, const size_t *shape, int ndim, float *dst,
                                Err *e) {
    const STensor *t = safetensors_find(st, name);
    if (!t) return errorf(e, "%s: tensor \"%s\" is missing", st->path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char want[128] = "", got[128] = "";
        for (int d = 0; d < ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%zu", d ? ", " : "", shape[d]);
        for (int d = 0; d < t->ndim; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "", t->shape[d]);
        return errorf(e, "%s: tensor \"%s\" has shape [%s], expected [%s]", st->path, name, got, want);
    }
    size_t es = dtype_size(t->dtype);
    if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "BF16") && strcmp(t->dtype, "F16"))
        return errorf(e, "%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16", st->path, name, t->dtype);
    if (fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET))
        return errorf(e, "%s: cannot seek to tensor \"%s\"", st->path, name);
    if (es == 4) {
        if (fread(dst, 4, t->numel, st->f) != t->numel) return errorf(e, "%s: tensor \"%s\" is truncated", st->path, name);
        return 0;
    }
    uint16_t buf[4096];
    for (size_t i = 0; i < t->numel;) {
        size_t k = t->numel - i < 4096 ? t->numel - i : 4096;
        if (fread(buf, 2, k, st->f) != k) return errorf(e, "%s: tensor \"%s\" is truncated", st->path, name);
        for (size_t j = 0; j < k; j++) dst[i + j] = t->dtype[0] == 'B' ? bf16_to_f32(buf[j]) : f16_to_f32(buf[j]);
        i += k;
    }
    return 0;
}

// A tensor to write: name, shape and fp32 data.
typedef struct {
    const char *name;
    size_t shape[4];
    int ndim;
    const float *data;
} WTensor;

static size_t wtensor_numel(const WTensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

// Writes tensors as fp32 safetensors to path, through a temporary file renamed into place (atomic).
// meta is an optional list of key/value strings for "__metadata__", NULL-terminated.
static int safetensors_write(const char *path, const WTensor *ts, size_t n, const char *const *meta, Err *e) {
    char tmp[4200];
    path_of(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return errorf(e, "%s: cannot create: %s", tmp, strerror(errno));
    // the header JSON, built in memory and padded with spaces to a multiple of 8 bytes (as HF writes it)
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    fprintf(h, "{\"__metadata__\":{\"format\":\"pt\"");
    for (size_t i = 0; meta && meta[i]; i += 2) {
        fputc(',', h);
        json_write_string(h, meta[i], strlen(meta[i]));
        fputc(':', h);
        json_write_string(h, meta[i + 1], strlen(meta[i + 1]));
    }
    fputc('}', h);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = wtensor_numel(&ts[i]) * 4;
        fputc(',', h);
        json_write_string(h, ts[i].name, strlen(ts[i].name));
        fprintf(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < ts[i].ndim; d++) fprintf(h, "%s%zu", d ? "," : "", ts[i].shape[d]);
        fprintf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    fputc('}', h);
    while ((ftell(h) % 8) != 0) fputc(' ', h);
    fclose(h);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(lb, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen;
    free(hdr);
    for (size_t i = 0; ok && i < n; i++) ok = fwrite(ts[i].data, 4, wtensor_numel(&ts[i]), f) == wtensor_numel(&ts[i]);
    ok = (fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
    if (fclose(f) || !ok) { remove(tmp); return errorf(e, "%s: write failed", tmp); }
    if (rename(tmp, path)) { remove(tmp); return errorf(e, "%s: cannot rename into place: %s", path, strerror(errno)); }
    return 0;
}

// ----------------------------------------------------------------------------
// Parameters: every weight of the model in one flat allocation, carved into named tensors.
// Per-layer tensors of all L layers are stored back to back, (L, ...) in the shape comments.

// FC is the MLP's first output: FF, or 2 FF for SwiGLU (gate and up). The biases exist only with "bias": true.
enum {
    P_WTE,       // (V, C)         transformer.word_embeddings.weight, also the LM head
    P_LN1W,      // (L, C)         input_layernorm (7B) or ln_attn (40B)
    P_LN1B,      // (L, C)
    P_LN2W,      // (L, C) or (0)  ln_mlp (40B) or post_attention_layernorm (sequential), with two LayerNorms only
    P_LN2B,      // (L, C) or (0)
    P_QKVW,      // (L, QKV, C)    self_attention.query_key_value.weight
    P_QKVB,      // (L, QKV) or (0) its bias
    P_ATTPROJW,  // (L, C, C)      self_attention.dense.weight
    P_ATTPROJB,  // (L, C) or (0)
    P_FCW,       // (L, FC, C)     mlp.dense_h_to_4h.weight
    P_FCB,       // (L, FC) or (0)
    P_FCPROJW,   // (L, C, FF)     mlp.dense_4h_to_h.weight
    P_FCPROJB,   // (L, C) or (0)
    P_LNFW,      // (C)            ln_f
    P_LNFB,      // (C)
    NUM_PARAM_TENSORS
};

typedef struct {
    float *t[NUM_PARAM_TENSORS];
} ParameterTensors;

static size_t qkv_dim(const Config *c) { return (c->NH + 2 * c->NKV) * c->HS; }
static size_t fc_dim(const Config *c) { return c->swiglu ? 2 * c->FF : c->FF; }

// The number of floats of each tensor of one layer (or of the whole tensor when it is not per layer).
static void param_shapes(const Config *c, size_t shape[NUM_PARAM_TENSORS][2], size_t per_layer[NUM_PARAM_TENSORS]) {
    size_t ln2 = c->num_ln == 2 ? c->C : 0, b = c->bias ? 1 : 0;
    size_t s[NUM_PARAM_TENSORS][2] = {
        {c->V, c->C}, {c->C, 0}, {c->C, 0}, {ln2, 0}, {ln2, 0}, {qkv_dim(c), c->C}, {b * qkv_dim(c), 0},
        {c->C, c->C}, {b * c->C, 0}, {fc_dim(c), c->C}, {b * fc_dim(c), 0}, {c->C, c->FF}, {b * c->C, 0},
        {c->C, 0}, {c->C, 0},
    };
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        shape[i][0] = s[i][0];
        shape[i][1] = s[i][1];
        per_layer[i] = (i == P_WTE || i == P_LNFW || i == P_LNFB) ? 0 : 1;
    }
}

// Sizes in floats of each whole tensor.
static void param_sizes(const Config *c, size_t sizes[NUM_PARAM_TENSORS]) {
    size_t shape[NUM_PARAM_TENSORS][2], per_layer[NUM_PARAM_TENSORS];
    param_shapes(c, shape, per_layer);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        sizes[i] = (per_layer[i] ? c->L : 1) * shape[i][0] * (shape[i][1] ? shape[i][1] : 1);
}

static size_t param_count(const Config *c) {
    size_t sizes[NUM_PARAM_TENSORS], n = 0;
    param_sizes(c, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += sizes[i];
    return n;
}

// Points the named tensors into one block of memory.
static void param_carve(ParameterTensors *p, float *mem, const Config *c) {
    size_t sizes[NUM_PARAM_TENSORS];
    param_sizes(c, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        p->t[i] = mem;
        mem += sizes[i];
    }
}

// HF's name of tensor i in layer l.
static void param_name(const Config *c, int i, size_t l, char *out, size_t n) {
    int grouped = c->num_ln == 2 && !c->sequential;
    const char *ln1 = grouped ? "ln_attn" : "input_layernorm", *ln2 = grouped ? "ln_mlp" : "post_attention_layernorm";
    switch (i) {
        case P_WTE: snprintf(out, n, "transformer.word_embeddings.weight"); break;
        case P_LN1W: snprintf(out, n, "transformer.h.%zu.%s.weight", l, ln1); break;
        case P_LN1B: snprintf(out, n, "transformer.h.%zu.%s.bias", l, ln1); break;
        case P_LN2W: snprintf(out, n, "transformer.h.%zu.%s.weight", l, ln2); break;
        case P_LN2B: snprintf(out, n, "transformer.h.%zu.%s.bias", l, ln2); break;
        case P_QKVW: snprintf(out, n, "transformer.h.%zu.self_attention.query_key_value.weight", l); break;
        case P_QKVB: snprintf(out, n, "transformer.h.%zu.self_attention.query_key_value.bias", l); break;
        case P_ATTPROJW: snprintf(out, n, "transformer.h.%zu.self_attention.dense.weight", l); break;
        case P_ATTPROJB: snprintf(out, n, "transformer.h.%zu.self_attention.dense.bias", l); break;
        case P_FCW: snprintf(out, n, "transformer.h.%zu.mlp.dense_h_to_4h.weight", l); break;
        case P_FCB: snprintf(out, n, "transformer.h.%zu.mlp.dense_h_to_4h.bias", l); break;
        case P_FCPROJW: snprintf(out, n, "transformer.h.%zu.mlp.dense_4h_to_h.weight", l); break;
        case P_FCPROJB: snprintf(out, n, "transformer.h.%zu.mlp.dense_4h_to_h.bias", l); break;
        case P_LNFW: snprintf(out, n, "transformer.ln_f.weight"); break;
        default: snprintf(out, n, "transformer.ln_f.bias"); break;
    }
}

// Weight decay applies to the matrices (embeddings, QKV, dense, MLP), never to LayerNorm gains, nor to any bias.
static int param_decays(int i) { return i == P_WTE || i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW; }

// Calls fn for every named tensor of one layer (or whole), in file order: name, shape, data offset in floats.
typedef void (*TensorFn)(void *ctx, const char *name, const size_t *shape, int ndim, size_t offset);

static void param_foreach(const Config *c, TensorFn fn, void *ctx) {
    size_t shape[NUM_PARAM_TENSORS][2], per_layer[NUM_PARAM_TENSORS], sizes[NUM_PARAM_TENSORS];
    param_shapes(c, shape, per_layer);
    param_sizes(c, sizes);
    size_t base = 0;
    char name[160];
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t layers = per_layer[i] ? c->L : 1, each = sizes[i] / layers;
        for (size_t l = 0; l < layers && each; l++) {
            param_name(c, i, l, name, sizeof name);
            fn(ctx, name, shape[i], shape[i][1] ? 2 : 1, base + l * each);
        }
        base += sizes[i];
    }
}

// ----------------------------------------------------------------------------
// Layers. Each forward is followed by its backward, which takes the same arguments plus the gradients
// and accumulates (+=) into the gradients of its inputs and parameters.
// Three compiler matters: gcc in ISO C mode (-std=c11) never fuses a * b + c into one FMA instruction unless told
// to (clang does by default); gcc keeps the clamps and selects of exp_fast and erf_fast as branches, and so leaves
// every softmax, GELU and cross-entropy loop scalar, unless it may ignore floating-point exception flags (AVX-512
// masks hide the problem, AVX2 and NEON do not; falcon.c never reads the flags, and clang ignores them by default);
// and the reference kernels, kept next to the fast ones for the tests, are unused by the programs.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast", "no-trapping-math")
#endif
#define REFERENCE __attribute__((unused))

// Matrix products. out = inp @ w^T: inp (N, IC), w (OC, IC), out (N, OC). Every Linear layer of Falcon is
// bias-free. The reference versions say what is computed; the fast ones compute the same with another order of
// summation (tests/test_kernels.c checks one against the other on awkward shapes).
static REFERENCE void matmul_forward_ref(float *out, const float *inp, const float *w, size_t N, size_t IC, size_t OC) {
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) {
            float s = 0.0f;
            for (size_t i = 0; i < IC; i++) s += inp[n * IC + i] * w[o * IC + i];
            out[n * OC + o] = s;
        }
}

// dinp += dout @ w,  dw += dout^T @ inp
static REFERENCE void matmul_backward_ref(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                          size_t N, size_t IC, size_t OC) {
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++)
            for (size_t i = 0; i < IC; i++) {
                dinp[n * IC + i] += dout[n * OC + o] * w[o * IC + i];
                dw[o * IC + i] += dout[n * OC + o] * inp[n * IC + i];
            }
}

// The fast products are all one routine, gemm, in the blocked form of Goto and van de Geijn ("Anatomy of
// high-performance matrix multiplication", 2008). C (M, N) += A (M, K) B (K, N) is cut into blocks; a block
// of KC x NC of B, small enough to stay in the L2 cache, is first copied ("packed") into the exact order the
// inner kernel reads it, then serves every row of A. The inner kernel holds an MR x NR tile of C in vector
// registers through the whole depth KC: at each k it loads NR values of B (NV vectors of VL floats), broadcasts
// MR values of A, and issues MR NV fused multiply-adds. That is MR + NV loads for MR NV FMAs, so the FMA units,
// not the loads, set the pace.
//
// The kernel is written once against four vector operations; each instruction set supplies them (AVX-512,
// AVX2 + FMA, Arm NEON), and plain C with one float per "vector" is the fallback for every other machine.
// MR and NV fill the register file: MR NV accumulators + NV loads of B + 1 broadcast.
#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vfloat;
enum { VL = 16, MR = 12, NV = 2 };  // 24 of 32 registers hold C
#define VEC_ISA "AVX-512"
static inline vfloat vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vfloat x) { _mm512_storeu_ps(p, x); }
static inline vfloat vbroadcast(float x) { return _mm512_set1_ps(x); }
static inline vfloat vfma(vfloat a, vfloat b, vfloat c) { return _mm512_fmadd_ps(a, b, c); }  // a b + c
static inline vfloat vadd(vfloat a, vfloat b) { return _mm512_add_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vfloat;
enum { VL = 8, MR = 6, NV = 2 };  // 12 of 16 registers hold C
#define VEC_ISA "AVX2 + FMA"
static inline vfloat vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vfloat x) { _mm256_storeu_ps(p, x); }
static inline vfloat vbroadcast(float x) { return _mm256_set1_ps(x); }
static inline vfloat vfma(vfloat a, vfloat b, vfloat c) { return _mm256_fmadd_ps(a, b, c); }
static inline vfloat vadd(vfloat a, vfloat b) { return _mm256_add_ps(a, b); }
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
typedef float32x4_t vfloat;
enum { VL = 4, MR = 8, NV = 3 };  // 24 of 32 registers hold C
#define VEC_ISA "Arm NEON"
static inline vfloat vload(const float *p) { return vld1q_f32(p); }
static inline void vstore(float *p, vfloat x) { vst1q_f32(p, x); }
static inline vfloat vbroadcast(float x) { return vdupq_n_f32(x); }
static inline vfloat vfma(vfloat a, vfloat b, vfloat c) { return vfmaq_f32(c, a, b); }
static inline vfloat vadd(vfloat a, vfloat b) { return vaddq_f32(a, b); }
#else
typedef float vfloat;
enum { VL = 1, MR = 4, NV = 4 };
#define VEC_ISA "plain C"
static inline vfloat vload(const float *p) { return *p; }
static inline void vstore(float *p, vfloat x) { *p = x; }
static inline vfloat vbroadcast(float x) { return x; }
static inline vfloat vfma(vfloat a, vfloat b, vfloat c) { return a * b + c; }
static inline vfloat vadd(vfloat a, vfloat b) { return a + b; }
#endif
enum { NR = NV * VL, KC = 256, NC = 16 * NR, MC = 64 * MR };

// c (MR x NR tile, row stride ldc) = c0 + a b: a (MR, kc) with element (i, k) at a[i ars + k acs], b a packed
// panel (kc, NR), c0 a tile like c (c itself to accumulate, another matrix's tile, or NULL for zero: BLAS's
// beta, which spares the callers a pass to clear or copy C first). The accumulators start at zero and c0 is
// added only at the end: C is usually far from the cache (it is larger than L2), so the kernel asks for its
// lines first and lets them arrive during the k loop instead of waiting for them before the first FMA.
static void gemm_kernel(float *c, const float *c0, size_t ldc, const float *a, size_t ars, size_t acs, const float *b,
                        size_t kc) {
    vfloat acc[MR][NV];
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + NR - 1, 1);
        if (c0 && c0 != c) {
            __builtin_prefetch(c0 + i * ldc);
            __builtin_prefetch(c0 + i * ldc + NR - 1);
        }
        #pragma GCC unroll 4
        for (int j = 0; j < NV; j++) acc[i][j] = vbroadcast(0.0f);
    }
    #pragma GCC unroll 2  // two k steps per loop iteration: measured 5-10% faster on the model's shapes
    for (size_t k = 0; k < kc; k++, a += acs, b += NR) {
        vfloat bv[NV];
        #pragma GCC unroll 4
        for (int j = 0; j < NV; j++) bv[j] = vload(b + j * VL);
        #pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vfloat ai = vbroadcast(a[i * ars]);
            #pragma GCC unroll 4
            for (int j = 0; j < NV; j++) acc[i][j] = vfma(ai, bv[j], acc[i][j]);
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
        #pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            vstore(c + i * ldc + j * VL, c0 ? vadd(vload(c0 + i * ldc + j * VL), acc[i][j]) : acc[i][j]);
}

// Packs rows [0, m) x columns [0, kc) of X (element (r, k) at x[r rs + k cs]) into panels of P rows:
// panel p holds (kc, P) with element (k, r) = X(p P + r, k), rows past m zero. Reads along whichever index is
// contiguous: when it is r (rs 1), the whole panels are filled one k at a time, reading X's memory in order,
// which the hardware prefetcher streams far better than a slice of P floats from every k in turn. restrict (dst
// and x never overlap) lets gcc copy the slices shorter than a vector (A's MR = 12 under AVX-512) with vector
// moves, where it otherwise copied them one float at a time.
static void gemm_pack(float *restrict dst, const float *restrict x, size_t rs, size_t cs, size_t m, size_t kc,
                      size_t P) {
    size_t whole = 0;
    if (rs == 1) {  // vector copies where P allows (gcc would call memcpy for each slice)
        whole = m / P * P;
        for (size_t k = 0; k < kc; k++)
            for (size_t r0 = 0; r0 < whole; r0 += P) {
                float *d = dst + r0 * kc + k * P;
                const float *s = x + k * cs + r0;
                size_t v = 0;
                for (; v + VL <= P; v += VL) vstore(d + v, vload(s + v));
                for (; v < P; v++) d[v] = s[v];
            }
    }
    for (size_t r0 = whole; r0 < m; r0 += P) {
        float *d = dst + r0 * kc;
        size_t pr = m - r0 < P ? m - r0 : P;
        if (pr < P) memset(d, 0, kc * P * sizeof(float));
        if (cs == 1)
            for (size_t r = 0; r < pr; r++)
                for (size_t k = 0; k < kc; k++) d[k * P + r] = x[(r0 + r) * rs + k];
        else
            for (size_t k = 0; k < kc; k++)
                for (size_t r = 0; r < pr; r++) d[k * P + r] = x[(r0 + r) * rs + k * cs];
    }
}

// The OpenMP threads a parallel region will run (OMP_NUM_THREADS, or --threads); 1 without OpenMP.
static size_t num_threads(void) {
#ifdef _OPENMP
    return (size_t)omp_get_max_threads();
#else
    return 1;
#endif
}

// gemm_pack shared by the threads of the enclosing parallel region, whole panels each: thread t packs panels
// [lo, hi). An `omp for` with its barrier, so the panels are complete when it returns.
static void gemm_pack_shared(float *dst, const float *x, size_t rs, size_t cs, size_t m, size_t kc, size_t P,
                             size_t threads) {
    size_t np = (m + P - 1) / P;
    #pragma omp for schedule(static)
    for (size_t t = 0; t < threads; t++) {
        size_t lo = np * t / threads * P, hi = np * (t + 1) / threads * P;
        hi = hi < m ? hi : m;
        if (lo < hi) gemm_pack(dst + lo * kc, x + lo * rs, rs, cs, hi - lo, kc, P);
    }
}

// C (M, n), rows ldc apart, = C0 + A B for a B already packed: panels of NR columns, each (K, NR), ps floats
// apart; A(i, k) = a[i ars + k acs]; C0 as in gemm_kernel (c0 NULL: zero, c0 == c: accumulate). Only B is
// packed: the kernel broadcasts single elements of A, which it can read in place (MR rows of KC floats stay in
// the L1 cache while the kernel sweeps the panels), except in the last, partial panel of rows, which is packed
// with zeros in place of the missing rows. Tiles at the right edge of C go through a full-size scratch tile.
// The depth K is taken KC at a time.
static void gemm_packed(float *c, const float *c0, size_t ldc, const float *a, size_t ars, size_t acs,
                        const float *pb, size_t ps, size_t M, size_t n, size_t K) {
    float tile[MR * NR], pa[MR * KC];
    for (size_t p0 = 0; p0 < K; p0 += KC, c0 = c) {  // after the first KC of depth, C accumulates onto itself
        size_t kc = K - p0 < KC ? K - p0 : KC;
        for (size_t i0 = 0; i0 < M; i0 += MR) {
            const float *ap = a + i0 * ars + p0 * acs;
            size_t sr = ars, sk = acs;
            if (M - i0 < MR) {
                gemm_pack(pa, ap, ars, acs, M - i0, kc, MR);
                ap = pa, sr = 1, sk = MR;
            }
            for (size_t jr = 0; jr < n; jr += NR) {
                float *ct = c + i0 * ldc + jr;
                const float *c0t = c0 ? c0 + i0 * ldc + jr : NULL;
                const float *panel = pb + jr / NR * ps + p0 * NR;
                if (i0 + MR <= M && jr + NR <= n) {
                    gemm_kernel(ct, c0t, ldc, ap, sr, sk, panel, kc);
                    continue;
                }
                size_t tm = M - i0 < MR ? M - i0 : MR, tn = n - jr < NR ? n - jr : NR;
                gemm_kernel(tile, NULL, NR, ap, sr, sk, panel, kc);
                for (size_t i = 0; i < tm; i++)
                    for (size_t j = 0; j < tn; j++)
                        ct[i * ldc + j] = (c0t ? c0t[i * ldc + j] : 0.0f) + tile[i * NR + j];
            }
        }
    }
}

// C (M, N), rows ldc apart, = C0 + A B, with A(i, k) = a[i ars + k acs] and B(k, j) = b[k brs + j bcs], so that
// one routine serves inp w^T, dout w and dout^T inp; C0 as in gemm_kernel. B is taken a block of KC x NC at a
// time, small enough to stay in each core's L2 cache. The threads pack the block together, each a slice of its
// panels, then share the rows of C out one strip of MR rows at a time, first come first served: every thread
// reads the one packed copy (each element of B is copied once, against 2 M FLOPs it serves), and a thread that
// falls behind (on a shared machine a core can slow down at any moment) holds the others up by one strip at
// most. Each block costs two barriers: the panels must be whole before any strip reads them, and every strip
// done before the next block overwrites them.
//
// A is read in place, except when it is stored transposed (ars 1, as dout^T in dout^T inp) with its rows a page
// (4 KB) or more apart: a strip would then be MR floats from each of KC rows of dout, one cache line from a new
// page at every k, which no hardware prefetcher follows (and at a power-of-two stride the lines all land in the
// same few cache sets). There the threads first pack MC rows of A together, reading each row of dout in order, MC
// rows at a time so that the copy stays under a MB for any M, such as the LM head's vocabulary. Measured on one
// core: 1.1x at 4 KB apart, 1.7x for Falcon-7B's LM head (65,024 apart); below 2 KB packing costs more than it saves.
static void gemm(float *c, const float *c0, size_t ldc, const float *a, size_t ars, size_t acs, const float *b,
                 size_t brs, size_t bcs, size_t M, size_t N, size_t K) {
    size_t threads = num_threads();
    int pack_a = ars == 1 && acs * sizeof(float) >= 4096;
    size_t mc = pack_a ? MC : M;
    float *pb = aligned_alloc(64, KC * NC * sizeof(float)), *pa = pack_a ? aligned_alloc(64, MC * KC * sizeof(float)) : NULL;
    if (!pb || (pack_a && !pa)) die("out of memory");
    #pragma omp parallel
    for (size_t j0 = 0; j0 < N; j0 += NC) {
        size_t n = N - j0 < NC ? N - j0 : NC;
        for (size_t p0 = 0; p0 < K; p0 += KC) {
            size_t kc = K - p0 < KC ? K - p0 : KC;
            gemm_pack_shared(pb, b + p0 * brs + j0 * bcs, bcs, brs, n, kc, NR, threads);
            const float *start = p0 ? c : c0;  // after the first KC of depth, C accumulates onto itself
            for (size_t ib = 0; ib < M; ib += mc) {
                size_t m = M - ib < mc ? M - ib : mc;
                if (pack_a) gemm_pack_shared(pa, a + ib + p0 * acs, 1, acs, m, kc, MR, threads);
                #pragma omp for schedule(dynamic)
                for (size_t i0 = ib; i0 < ib + m; i0 += MR) {
                    const float *ap = pack_a ? pa + (i0 - ib) * kc : a + i0 * ars + p0 * acs;
                    gemm_packed(c + i0 * ldc + j0, start ? start + i0 * ldc + j0 : NULL, ldc, ap, pack_a ? 1 : ars,
                                pack_a ? MR : acs, pb, kc * NR, M - i0 < MR ? M - i0 : MR, n, kc);
                }
            }
        }
    }
    free(pb);
    free(pa);
}

// A dot product is a reduction, which C's strict float semantics forbid the compiler to split into SIMD lanes;
// `omp simd reduction` grants that permission (it needs -fopenmp-simd, no OpenMP runtime).
static float dot(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    #pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// max(m, x[0], ..., x[n-1]), the row maximum of a softmax. gcc vectorises this reduction under `omp simd`; clang
// cannot without being told there are no NaNs (it would warn and leave the loop scalar), so it gets the plain loop.
static float max_of(const float *x, size_t n, float m) {
#ifndef __clang__
    #pragma omp simd reduction(max : m)
#endif
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// out (N, OC) = inp (N, IC) @ w^T, plus resid (N, OC) when given (NULL: nothing; it may be out itself). Adding the
// residual stream here, as gemm's starting C, saves the projections of a block a buffer and two passes over it.
// A few rows (the decoder's one token) are a matrix-vector product, bound by reading w once: dot products, the
// threads sharing the rows of w. More rows go through gemm.
static void matmul_forward(float *out, const float *inp, const float *w, const float *resid, size_t N, size_t IC,
                           size_t OC) {
    if (N < MR) {
        #pragma omp parallel for schedule(static)
        for (size_t o = 0; o < OC; o++)
            for (size_t n = 0; n < N; n++)
                out[n * OC + o] = (resid ? resid[n * OC + o] : 0.0f) + dot(inp + n * IC, w + o * IC, IC);
        return;
    }
    gemm(out, resid, OC, inp, IC, 1, w, 1, IC, N, OC, IC);
}

// dinp += dout @ w: A = dout (N, OC), B = w (OC, IC).  dw += dout^T @ inp: A = dout^T (OC, N), B = inp (N, IC).
static void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, size_t N,
                            size_t IC, size_t OC) {
    gemm(dinp, dinp, IC, dout, OC, 1, w, IC, 1, N, IC, OC);
    gemm(dw, dw, IC, dout, 1, OC, inp, IC, 1, OC, IC, N);
}

// The bias of a Linear layer (Falcon-RW only): out[n, :] += b. HF too adds it after the product, as its own step.
// b NULL (no biases) does nothing.
static void bias_forward(float *out, const float *b, size_t N, size_t OC) {
    if (!b) return;
    #pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) out[n * OC + o] += b[o];
}

// db += sum over rows of dout. Threads take columns, each summing its rows in order (the same sums whatever the
// number of threads).
static void bias_backward(float *db, const float *dout, size_t N, size_t OC) {
    if (!db) return;
    #pragma omp parallel for schedule(static)
    for (size_t o0 = 0; o0 < OC; o0 += 64)
        for (size_t n = 0; n < N; n++)
            for (size_t o = o0; o < OC && o < o0 + 64; o++) db[o] += dout[n * OC + o];
}

// LayerNorm over C: y = (x - mean) / sqrt(var + eps) * w + b, with the biased variance.
// mean and rstd = 1/sqrt(var + eps) are kept for the backward pass.
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              size_t N, size_t C, float eps) {
    #pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f;
        for (size_t i = 0; i < C; i++) m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (size_t i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        float *y = out + n * C;
        for (size_t i = 0; i < C; i++) y[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

// With xhat = (x - mean) rstd and g = dout * w:
//   dx = rstd (g - mean(g) - xhat mean(g xhat)),  dw += dout xhat,  db += dout
// dw and db sum over rows; reading them row by row keeps memory in order: each of LN_CHUNKS fixed chunks of rows
// sums into its own partial, and the partials are added in order at the end: the same sums in the same order
// whatever the number of threads, so that runs repeat bit for bit.
enum { LN_CHUNKS = 16 };
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                               const float *mean, const float *rstd, size_t N, size_t C) {
    float *part = xcalloc(LN_CHUNKS * 2 * C, sizeof(float));  // (LN_CHUNKS, 2, C): dw then db partials
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < LN_CHUNKS; k++) {
        float *pw = part + k * 2 * C, *pb = pw + C;
        for (size_t n = k * N / LN_CHUNKS; n < (k + 1) * N / LN_CHUNKS; n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            float m = mean[n], s = rstd[n], gm = 0.0f, gx = 0.0f;
            for (size_t i = 0; i < C; i++) {
                float xh = (x[i] - m) * s, gi = g[i] * w[i];
                gm += gi;
                gx += gi * xh;
                pw[i] += g[i] * xh;
                pb[i] += g[i];
            }
            gm /= (float)C;
            gx /= (float)C;
            float *dx = dinp + n * C;
            for (size_t i = 0; i < C; i++) dx[i] += s * (g[i] * w[i] - gm - (x[i] - m) * s * gx);
        }
    }
    for (size_t k = 0; k < LN_CHUNKS; k++)
        for (size_t i = 0; i < C; i++) {
            dw[i] += part[k * 2 * C + i];
            db[i] += part[k * 2 * C + C + i];
        }
    free(part);
}

// Token embedding: out[b,t,:] = wte[inp[b,t], :]. No position embedding: positions enter through RoPE.
static void encoder_forward(float *out, const int *inp, const float *wte, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) memcpy(out + n * C, wte + (size_t)inp[n] * C, C * sizeof(float));
}

static void encoder_backward(float *dwte, const float *dout, const int *inp, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) {
        float *d = dwte + (size_t)inp[n] * C;
        for (size_t i = 0; i < C; i++) d[i] += dout[n * C + i];
    }
}

// RoPE, rotate-half convention (GPT-NeoX / HF): for i < HS/2 the pair (x_i, x_{i+HS/2}) is rotated by the angle
// pos * theta^(-2i/HS):  x_i' = x_i cos - x_{i+HS/2} sin,  x_{i+HS/2}' = x_{i+HS/2} cos + x_i sin.
// Tables cos/sin are (maxT, HS/2), computed in fp32 as HF does.
static void rope_tables(float *cosb, float *sinb, size_t maxT, size_t HS, float theta) {
    for (size_t i = 0; i < HS / 2; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)HS);
        for (size_t p = 0; p < maxT; p++) {
            float a = (float)p * inv_freq;
            cosb[p * (HS / 2) + i] = cosf(a);
            sinb[p * (HS / 2) + i] = sinf(a);
        }
    }
}

// Rotates one head vector in place; sign = +1 applies the rotation, -1 its inverse (= its transpose),
// which is exactly the backward pass of the rotation.
static void rope_rotate(float *x, const float *cs, const float *sn, size_t HS, float sign) {
    size_t h = HS / 2;
    for (size_t i = 0; i < h; i++) {
        float a = x[i], b = x[i + h], s = sign * sn[i];
        x[i] = a * cs[i] - b * s;
        x[i + h] = b * cs[i] + a * s;
    }
}

// Row of Q head h, K and V of group g inside the fused QKV vector of one token. HF's layout, for both the 7B
// (one group, NKV = 1) and the 40B/180B (NKV groups) checkpoints: per group, its NH/NKV query heads, then K, then V.
static size_t q_off(const Config *c, size_t h) {
    size_t qpk = c->NH / c->NKV;
    return ((h / qpk) * (qpk + 2) + h % qpk) * c->HS;
}
static size_t k_off(const Config *c, size_t g) { return (g * (c->NH / c->NKV + 2) + c->NH / c->NKV) * c->HS; }
static size_t v_off(const Config *c, size_t g) { return k_off(c, g) + c->HS; }

// Applies RoPE to every query and key head of qkv (N tokens, each at position pos[n]). ALiBi models have none.
static void rope_forward(float *qkv, const int *pos, const float *cosb, const float *sinb, const Config *c, size_t N,
                         float sign) {
    if (c->alibi) return;
    size_t QKV = qkv_dim(c), h2 = c->HS / 2;
    #pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *cs = cosb + (size_t)pos[n] * h2, *sn = sinb + (size_t)pos[n] * h2;
        float *x = qkv + n * QKV;
        for (size_t h = 0; h < c->NH; h++) rope_rotate(x + q_off(c, h), cs, sn, c->HS, sign);
        for (size_t g = 0; g < c->NKV; g++) rope_rotate(x + k_off(c, g), cs, sn, c->HS, sign);
    }
}

// The backward of a rotation is the inverse rotation of the gradient.
static void rope_backward(float *dqkv, const int *pos, const float *cosb, const float *sinb, const Config *c,
                          size_t N) {
    rope_forward(dqkv, pos, cosb, sinb, c, N, -1.0f);
}

// ALiBi (Press et al., "Train Short, Test Long", 2022), the positions of the RefinedWeb models in place of RoPE:
// query head h adds slope_h j to its score for the key at position j. Within one query's softmax that is the
// penalty -slope_h (i - j) for a key i - j positions back (a constant per row changes nothing), so each head
// prefers near keys, with its own range. The slopes form a geometric sequence: for NH a power of two,
// slope_h = 2^(-8 (h + 1) / NH); otherwise the NH' = the largest power of two below NH take those of NH', and the
// remaining heads take every other slope of 2 NH': 2^(-4 (2k + 1) / NH'), k = 0, 1, ...
// HF's numerics, reproduced: each slope is computed in fp32 (2^(-8 / NH') raised to the power h + 1) and rounded to
// bf16; the position j too is rounded to bf16 (PyTorch casts the integer positions to the slopes' type), so beyond
// 256 positions share their bias in pairs, beyond 512 in fours, ...; their product is rounded to bf16 once more;
// the result is divided by sqrt(HS), the scale of the scores: s = q.k / sqrt(HS) + bf16(slope bf16(j)) / sqrt(HS).
// docs/architecture.md has the quirks of HF's code. The table holds (maxT, NH) biases, one row per key position.
static float bf16_round(float x) {  // to the nearest bf16, ties to even, as PyTorch's .bfloat16() does
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void alibi_table(float *tab, size_t maxT, size_t NH, size_t HS) {
    size_t P = 1;
    while (2 * P <= NH) P *= 2;
    float base = (float)pow(2.0, -pow(2.0, -(log2((double)P) - 3.0)));
    float extra = (float)pow(2.0, -pow(2.0, -(log2((double)(2 * P)) - 3.0)));
    for (size_t h = 0; h < NH; h++) {
        float slope = h < P ? powf(base, (float)(h + 1)) : powf(extra, (float)(2 * (h - P) + 1));
        slope = bf16_round(slope);
        for (size_t j = 0; j < maxT; j++)
            tab[j * NH + h] = bf16_round(slope * bf16_round((float)j)) / sqrtf((float)HS);
    }
}

// Causal self-attention with NKV key/value heads shared by groups of NH/NKV query heads (multi-query when NKV = 1).
//   att[b,h,t,:] = softmax_{t2 visible from t}(q_t . k_t2 / sqrt(HS)),   out[b,t,h,:] = sum_t2 att[b,h,t,t2] v_t2
// Which keys are visible. Plain text: every t2 <= t (causal). Conversation trees (docs/trees.md): a row holds
// trees of messages packed depth first, so the subtree of a message (it and all its replies, replies to them, ...)
// is one contiguous range of positions. span_end (B, T) gives, per token t2, the last position of the subtree of
// t2's message, and
//   t2 is visible from t   iff   t2 <= t <= span_end[t2]
// i.e. t lies after t2 in t2's own message or in one of its descendants: a message sees itself causally and its
// ancestors, never a sibling branch or another tree. One int per token, so a tile of keys needs only its spans to
// decide whether it is wholly visible, wholly hidden or mixed; no (T, T) mask exists. span_end = NULL is plain
// causal attention (the special case span_end = T - 1 everywhere), and costs nothing.
static REFERENCE int attn_visible(size_t t, size_t t2, const int *span_end_row) {
    return t2 <= t && (!span_end_row || (int)t <= span_end_row[t2]);
}

// With ALiBi each score gains a bias that depends on the head and on the key only: key_bias (B, T, NH), the ALiBi
// table's row of each token's position id (so in a tree a key's bias follows its depth), or NULL (RoPE).
// The reference versions compute it as written, keeping the probabilities att (B, NH, T, T): O(T^2) memory,
// with att = 0 wherever a key is not visible. qkv (B, T, QKV) already rotated, out (B, T, C) with heads in order.
static REFERENCE void attention_forward_ref(float *out, float *att, const float *qkv, const int *span_end,
                                            const float *key_bias, const Config *c, size_t B, size_t T) {
    size_t QKV = qkv_dim(c), C = c->C, HS = c->HS, NH = c->NH;
    float scale = 1.0f / sqrtf((float)HS);
    #pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++) {
        for (size_t h = 0; h < NH; h++) {
            size_t g = h / (NH / c->NKV);
            const int *se = span_end ? span_end + b * T : NULL;
            for (size_t t = 0; t < T; t++) {
                const float *q = qkv + (b * T + t) * QKV + q_off(c, h);
                float *a = att + ((b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (size_t t2 = 0; t2 < T; t2++) {
                    a[t2] = -INFINITY;
                    if (!attn_visible(t, t2, se)) continue;
                    const float *k = qkv + (b * T + t2) * QKV + k_off(c, g);
                    float s = 0.0f;
                    for (size_t i = 0; i < HS; i++) s += q[i] * k[i];
                    a[t2] = s * scale + (key_bias ? key_bias[(b * T + t2) * NH + h] : 0.0f);
                    if (a[t2] > mx) mx = a[t2];
                }
                float sum = 0.0f;
                for (size_t t2 = 0; t2 < T; t2++) {
                    a[t2] = a[t2] == -INFINITY ? 0.0f : expf(a[t2] - mx);
                    sum += a[t2];
                }
                for (size_t t2 = 0; t2 < T; t2++) a[t2] /= sum;
                float *o = out + (b * T + t) * C + h * HS;
                for (size_t i = 0; i < HS; i++) o[i] = 0.0f;
                for (size_t t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + (b * T + t2) * QKV + v_off(c, g);
                    for (size_t i = 0; i < HS; i++) o[i] += a[t2] * v[i];
                }
            }
        }
    }
}

// With p = att and s the scaled scores: dv += p^T dout, dp = dout v^T, ds = p (dp - sum(p dp)),
// dq += ds k / sqrt(HS), dk += ds^T q / sqrt(HS). A hidden key has p = 0, hence ds = 0: att carries the mask.
// The query heads of a group write the same dk, dv: parallelising over (batch, group) keeps those sums race-free.
static REFERENCE void attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *att,
                                             const Config *c, size_t B, size_t T) {
    size_t QKV = qkv_dim(c), C = c->C, HS = c->HS, NH = c->NH, qpk = NH / c->NKV;
    float scale = 1.0f / sqrtf((float)HS);
    #pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++) {
        for (size_t g = 0; g < c->NKV; g++) {
            float *dp = xmalloc(T * sizeof(float));
            for (size_t h = g * qpk; h < (g + 1) * qpk; h++) {
                for (size_t t = 0; t < T; t++) {
                    const float *a = att + ((b * NH + h) * T + t) * T;
                    const float *go = dout + (b * T + t) * C + h * HS;
                    const float *q = qkv + (b * T + t) * QKV + q_off(c, h);
                    float *dq = dqkv + (b * T + t) * QKV + q_off(c, h);
                    float dot = 0.0f;
                    for (size_t t2 = 0; t2 <= t; t2++) {
                        const float *v = qkv + (b * T + t2) * QKV + v_off(c, g);
                        float *dv = dqkv + (b * T + t2) * QKV + v_off(c, g);
                        float s = 0.0f;
                        for (size_t i = 0; i < HS; i++) {
                            s += go[i] * v[i];
                            dv[i] += a[t2] * go[i];
                        }
                        dp[t2] = s;
                        dot += a[t2] * s;
                    }
                    for (size_t t2 = 0; t2 <= t; t2++) {
                        float ds = a[t2] * (dp[t2] - dot) * scale;
                        const float *k = qkv + (b * T + t2) * QKV + k_off(c, g);
                        float *dk = dqkv + (b * T + t2) * QKV + k_off(c, g);
                        for (size_t i = 0; i < HS; i++) {
                            dq[i] += ds * k[i];
                            dk[i] += ds * q[i];
                        }
                    }
                }
            }
            free(dp);
        }
    }
}

// Flash attention (Dao et al., "FlashAttention", 2022; "FlashAttention-2", 2023): the same outputs without any
// (T, T) matrix. Keys and values are visited in tiles of ATT_BK positions. Each query row keeps the running
// maximum m of its scores, the running sum l = sum exp(s - m) and the running output o = sum exp(s - m) v; when a
// tile raises the maximum, l and o are first rescaled by exp(m_old - m_new) (the "online softmax"). At the end
// out = o / l, and lse = m + log l is all the backward needs to recompute any probability as exp(s - lse).
// Memory: the (B, NH, T) lse instead of (B, NH, T, T) probabilities.
// A tile of queries holds every query head of one K/V group (qpk heads x n positions: row r is head r / n at
// position t0 + r % n), so each key and value loaded serves all the heads that share it: all NH of them for
// multi-query. A key tile that lies wholly in a row's future is skipped; the diagonal tile is masked per row.
// Trees add one test per tile (att_tile_kind): a key tile is skipped when no query of the tile sees any of its keys,
// taken whole when the causal test alone decides, and masked per (query, key) only when it is mixed.
// Keys per tile, a whole number of gemm's NR-column panels (a tile's keys are then whole panels of the packed
// K^T), and query rows per tile, a whole number of its MR-row panels (fewer positions when qpk is large). Both
// serve as the M of some tile product, where a partial panel of rows wastes kernel work. 96 keys and 72 rows
// measured best with AVX-512 (64 and 128 of each, and their mixes, were up to 10% slower).
enum { ATT_BK = (96 + NR - 1) / NR * NR, ATT_ROWS = (72 + MR - 1) / MR * MR };

// e^x in arithmetic the compiler vectorises (libm's expf is a call per element): x = n ln2 + f
// with n = round(x / ln2) and |f| <= ln2 / 2 (ln2 in two parts so that f is exact), e^f by its Taylor series to
// f^6 (relative error under 2e-7 there), times 2^n written straight into the exponent bits. x is clamped to the
// range where 2^n is a normal float; below it (e^x < 1.7e-38, e.g. a masked score of -inf) the result is an exact
// 0, which keeps subnormal floats, slow on x86, out of the products that follow.
static inline float exp_fast(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // rounded: adding 1.5 2^23 drops the fraction bits
    float f = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

// K and V of one K/V group of one sequence, packed once as gemm's B operand for every tile that reads them
// (packing them per tile cost as much as the tile's products): kt is K^T (HS, T) in panels of NR keys, for
// the scores q k^T; kn is K (T, HS) in panels of NR dimensions, each (T, NR), so that the keys [s0, s0 + nk) of
// a panel are the contiguous rows s0.. of it, for ds k. vt and vn are the same for V.
static size_t att_kt_size(size_t T, size_t HS) { return (T + NR - 1) / NR * NR * HS; }
static size_t att_kn_size(size_t T, size_t HS) { return (HS + NR - 1) / NR * NR * T; }
static void att_pack_kt(float *kt, const float *k, size_t T, size_t HS, size_t QKV) { gemm_pack(kt, k, QKV, 1, T, HS, NR); }
static void att_pack_kn(float *kn, const float *k, size_t T, size_t HS, size_t QKV) { gemm_pack(kn, k, 1, QKV, HS, T, NR); }

// Per-thread scratch of the flash kernels, for R rows of head size HS.
typedef struct {
    float *q, *o, *dout, *dq;  // (R, HS) each: queries pre-scaled by 1/sqrt(HS), output or its gradient
    float *s, *dp;             // (R, ATT_BK) scores, then probabilities; gradients of the probabilities, then ds
    float *m, *l;              // (R) running maximum and sum (forward); lse and sum(dout o) (backward)
    float *mem;
} AttScratch;

static void att_scratch_build(AttScratch *w, size_t R, size_t HS) {
    w->mem = xcalloc(4 * R * HS + 2 * R * ATT_BK + 2 * R, sizeof(float));
    float **dst[] = {&w->q, &w->o, &w->dout, &w->dq, &w->s, &w->dp, &w->m, &w->l};
    size_t sizes[] = {R * HS, R * HS, R * HS, R * HS, R * ATT_BK, R * ATT_BK, R, R};
    float *p = w->mem;
    for (size_t i = 0; i < 8; i++) { *dst[i] = p; p += sizes[i]; }
}

static void att_scratch_free(AttScratch *w) {
    free(w->mem);
}

// Query positions per tile: ATT_ROWS rows in all, at least one position.
static size_t att_tile_positions(const Config *c) {
    size_t qpk = c->NH / c->NKV;
    return qpk >= ATT_ROWS ? 1 : ATT_ROWS / qpk;
}

// How the keys [s0, s0 + nk) of a tile look from its queries [t0, t1], given the spans se of the row (NULL:
// causal). ATT_HIDDEN: every key's subtree ends before t0, no query sees any of them. ATT_CAUSAL: every key's
// subtree reaches t1, so the causal test alone decides. ATT_MIXED: some pairs need the span test (att_mask_row).
enum { ATT_HIDDEN, ATT_CAUSAL, ATT_MIXED };
static int att_tile_kind(const int *se, size_t s0, size_t nk, size_t t0, size_t t1) {
    if (!se) return ATT_CAUSAL;
    int lo = INT_MAX, hi = INT_MIN;
    for (size_t j = s0; j < s0 + nk; j++) {
        lo = se[j] < lo ? se[j] : lo;
        hi = se[j] > hi ? se[j] : hi;
    }
    return hi < (int)t0 ? ATT_HIDDEN : lo < (int)t1 ? ATT_MIXED : ATT_CAUSAL;
}

// In a mixed tile, the scores s of the first jn keys (spans se) of query t: those not visible become -inf, so
// that exp_fast gives them the weight 0.
static void att_mask_row(float *s, const int *se, size_t t, size_t jn) {
    for (size_t j = 0; j < jn; j++)
        if (se[j] < (int)t) s[j] = -INFINITY;
}

// s (R, ATT_BK) = q (R, HS) k^T for the nk keys of a tile starting at key s0, from the packed K^T kt.
static void att_scores(float *s, const float *q, const float *kt, size_t s0, size_t R, size_t nk, size_t HS) {
    gemm_packed(s, NULL, ATT_BK, q, HS, 1, kt + s0 / NR * HS * NR, HS * NR, R, nk, HS);
}

// In a tile, the scores s of the first jn keys (key_bias kb, rows NH apart, at the head's column) of one query gain
// their ALiBi biases.
static void att_bias_row(float *s, const float *kb, size_t NH, size_t jn) {
    for (size_t j = 0; j < jn; j++) s[j] += kb[j * NH];
}

// qkv (B, T, QKV) already rotated; span_end (B, T) or NULL; key_bias (B, T, NH) or NULL; out (B, T, C) with heads in
// order; lse (B, NH, T) kept for the backward.
static void attention_forward(float *out, float *lse, const float *qkv, const int *span_end, const float *key_bias,
                              const Config *c, size_t B, size_t T) {
    size_t QKV = qkv_dim(c), C = c->C, HS = c->HS, NH = c->NH, NKV = c->NKV, qpk = NH / NKV;
    size_t bq = att_tile_positions(c), tiles = (T + bq - 1) / bq;
    size_t kts = att_kt_size(T, HS), kvs = kts + att_kn_size(T, HS);
    float scale = 1.0f / sqrtf((float)HS);
    float *packed = xmalloc(B * NKV * kvs * sizeof(float));  // (B, NKV) pairs of K^T (kt) and V (vn), packed
    #pragma omp parallel
    {
        AttScratch w;
        att_scratch_build(&w, qpk * bq, HS);
        #pragma omp for
        for (size_t u = 0; u < B * NKV; u++) {
            const float *x = qkv + u / NKV * T * QKV;
            att_pack_kt(packed + u * kvs, x + k_off(c, u % NKV), T, HS, QKV);
            att_pack_kn(packed + u * kvs + kts, x + v_off(c, u % NKV), T, HS, QKV);
        }
        #pragma omp for schedule(dynamic)
        for (size_t u = 0; u < B * NKV * tiles; u++) {
            size_t b = u / (NKV * tiles), g = u / tiles % NKV, t0 = u % tiles * bq;
            size_t n = T - t0 < bq ? T - t0 : bq, R = qpk * n;
            const float *x = qkv + b * T * QKV;  // this sequence
            const float *kt = packed + (b * NKV + g) * kvs, *vn = kt + kts;
            const int *se = span_end ? span_end + b * T : NULL;
            for (size_t r = 0; r < R; r++) {
                const float *q = x + (t0 + r % n) * QKV + q_off(c, g * qpk + r / n);
                for (size_t d = 0; d < HS; d++) {
                    w.q[r * HS + d] = q[d] * scale;
                    w.o[r * HS + d] = 0.0f;
                }
                w.m[r] = -INFINITY;
                w.l[r] = 0.0f;
            }
            for (size_t s0 = 0; s0 < t0 + n; s0 += ATT_BK) {
                size_t nk = t0 + n - s0 < ATT_BK ? t0 + n - s0 : ATT_BK;
                int kind = att_tile_kind(se, s0, nk, t0, t0 + n - 1);
                if (kind == ATT_HIDDEN) continue;
                att_scores(w.s, w.q, kt, s0, R, nk, HS);
                for (size_t r = 0; r < R; r++) {
                    size_t t = t0 + r % n, jn = t < s0 ? 0 : t - s0 + 1 < nk ? t - s0 + 1 : nk;  // keys it may see
                    float *s = w.s + r * ATT_BK, *o = w.o + r * HS, sum = 0.0f;
                    if (key_bias) att_bias_row(s, key_bias + (b * T + s0) * NH + g * qpk + r / n, NH, jn);
                    if (kind == ATT_MIXED) att_mask_row(s, se + s0, t, jn);
                    float mx = max_of(s, jn, w.m[r]);
                    if (mx == -INFINITY) jn = 0;  // nothing visible so far: the row's tree starts further on
                    #pragma omp simd reduction(+ : sum)
                    for (size_t j = 0; j < jn; j++) {
                        s[j] = exp_fast(s[j] - mx);
                        sum += s[j];
                    }
                    for (size_t j = jn; j < nk; j++) s[j] = 0.0f;
                    if (!jn) continue;
                    float corr = exp_fast(w.m[r] - mx);
                    w.l[r] = w.l[r] * corr + sum;
                    w.m[r] = mx;
                    for (size_t d = 0; d < HS; d++) o[d] *= corr;
                }
                // o += p v over the tile
                gemm_packed(w.o, w.o, HS, w.s, ATT_BK, 1, vn + s0 * NR, T * NR, R, HS, nk);
            }
            for (size_t r = 0; r < R; r++) {
                size_t t = t0 + r % n, h = g * qpk + r / n;
                float *y = out + (b * T + t) * C + h * HS;
                for (size_t d = 0; d < HS; d++) y[d] = w.o[r * HS + d] / w.l[r];
                lse[(b * NH + h) * T + t] = w.m[r] + logf(w.l[r]);
            }
        }
        att_scratch_free(&w);
    }
    free(packed);
}

// With p = exp(s - lse) recomputed tile by tile and D = sum_d dout o (= sum_t2 p dp, the softmax's correction):
// dv += p^T dout, dp = dout v^T, ds = p (dp - D), dq += ds k / sqrt(HS), dk += ds^T q / sqrt(HS), each a small
// matrix product over the tile (ALiBi's biases, constants, enter only the recomputed scores). The query heads of a
// group write the same dk, dv, so the threads take whole (batch, group) pairs and every sum stays race-free.
static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
                               const int *span_end, const float *key_bias, const Config *c, size_t B, size_t T) {
    size_t QKV = qkv_dim(c), C = c->C, HS = c->HS, NH = c->NH, NKV = c->NKV, qpk = NH / NKV;
    size_t bq = att_tile_positions(c);
    float scale = 1.0f / sqrtf((float)HS);
    size_t kts = att_kt_size(T, HS), kns = att_kn_size(T, HS), R0 = qpk * bq, rs = att_kn_size(R0, HS);
    #pragma omp parallel
    {
        AttScratch w;
        att_scratch_build(&w, R0, HS);
        // this thread's group, packed: K^T, V^T, K; and the tile's queries and output gradients as B (R, HS)
        float *kt = xmalloc((2 * kts + kns + 2 * rs) * sizeof(float)), *vt = kt + kts, *kn = vt + kts;
        float *qn = kn + kns, *dn = qn + rs;
        #pragma omp for schedule(dynamic)
        for (size_t u = 0; u < B * NKV; u++) {
            size_t b = u / NKV, g = u % NKV;
            const float *x = qkv + b * T * QKV;
            const int *se = span_end ? span_end + b * T : NULL;
            float *dx = dqkv + b * T * QKV;
            att_pack_kt(kt, x + k_off(c, g), T, HS, QKV);
            att_pack_kt(vt, x + v_off(c, g), T, HS, QKV);
            att_pack_kn(kn, x + k_off(c, g), T, HS, QKV);
            for (size_t t0 = 0; t0 < T; t0 += bq) {
                size_t n = T - t0 < bq ? T - t0 : bq, R = qpk * n;
                for (size_t r = 0; r < R; r++) {
                    size_t t = t0 + r % n, h = g * qpk + r / n;
                    const float *q = x + t * QKV + q_off(c, h);
                    const float *go = dout + (b * T + t) * C + h * HS, *y = out + (b * T + t) * C + h * HS;
                    for (size_t d = 0; d < HS; d++) {  // copies only: D is a dot product of its own, so both vectorise
                        w.q[r * HS + d] = q[d] * scale;
                        w.dout[r * HS + d] = go[d];
                    }
                    w.m[r] = lse[(b * NH + h) * T + t];
                    w.l[r] = dot(go, y, HS);  // D = sum(dout o)
                }
                memset(w.dq, 0, R * HS * sizeof(float));
                gemm_pack(qn, w.q, 1, HS, HS, R, NR);
                gemm_pack(dn, w.dout, 1, HS, HS, R, NR);
                for (size_t s0 = 0; s0 < t0 + n; s0 += ATT_BK) {
                    size_t nk = t0 + n - s0 < ATT_BK ? t0 + n - s0 : ATT_BK;
                    int kind = att_tile_kind(se, s0, nk, t0, t0 + n - 1);
                    if (kind == ATT_HIDDEN) continue;
                    att_scores(w.s, w.q, kt, s0, R, nk, HS);
                    att_scores(w.dp, w.dout, vt, s0, R, nk, HS);
                    for (size_t r = 0; r < R; r++) {
                        size_t t = t0 + r % n, jn = t < s0 ? 0 : t - s0 + 1 < nk ? t - s0 + 1 : nk;
                        float *s = w.s + r * ATT_BK, *dp = w.dp + r * ATT_BK;
                        if (key_bias) att_bias_row(s, key_bias + (b * T + s0) * NH + g * qpk + r / n, NH, jn);
                        if (kind == ATT_MIXED) att_mask_row(s, se + s0, t, jn);
                        for (size_t j = 0; j < jn; j++) {
                            s[j] = exp_fast(s[j] - w.m[r]);    // the probability
                            dp[j] = s[j] * (dp[j] - w.l[r]);  // ds
                        }
                        for (size_t j = jn; j < nk; j++) s[j] = dp[j] = 0.0f;
                    }
                    float *dv = dx + s0 * QKV + v_off(c, g), *dk = dx + s0 * QKV + k_off(c, g);
                    gemm_packed(dv, dv, QKV, w.s, 1, ATT_BK, dn, R * NR, nk, HS, R);
                    gemm_packed(dk, dk, QKV, w.dp, 1, ATT_BK, qn, R * NR, nk, HS, R);
                    gemm_packed(w.dq, w.dq, HS, w.dp, ATT_BK, 1, kn + s0 * NR, T * NR, R, HS, nk);
                }
                for (size_t r = 0; r < R; r++) {
                    float *dq = dx + (t0 + r % n) * QKV + q_off(c, g * qpk + r / n);
                    for (size_t d = 0; d < HS; d++) dq[d] += w.dq[r * HS + d] * scale;
                }
            }
        }
        free(kt);
        att_scratch_free(&w);
    }
}

// erf in arithmetic the compiler vectorises (libm's erff is a call per element), Abramowitz and Stegun's 7.1.26:
// erf(x) = 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) e^(-x^2), t = 1 / (1 + p x), for x >= 0, odd for x < 0;
// absolute error 1.5e-7 in exact arithmetic, under 5e-7 in floats (tests/test_kernels.c checks it against erf).
static inline float erf_fast(float x) {
    float a = x < 0.0f ? -x : x, t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float y = 1.0f - poly * exp_fast(-a * a);
    return x < 0.0f ? -y : y;
}

// GELU, the exact form HF's "gelu" uses: gelu(x) = x Phi(x) = x/2 (1 + erf(x / sqrt 2)).
static void gelu_forward(float *out, const float *inp, size_t N) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = 0.5f * inp[i] * (1.0f + erf_fast(inp[i] * 0.70710678118654752f));
}

// gelu'(x) = Phi(x) + x phi(x), phi the standard normal density.
static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erf_fast(x * 0.70710678118654752f));
        float pdf = exp_fast(-0.5f * x * x) * 0.3989422804014327f;
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

// SwiGLU (Shazeer, "GLU Variants Improve Transformer", 2020), falcon.c's alternative to GELU ("mlp_type": "swiglu").
// The first MLP layer has 2 FF outputs per row: the gate g (the first FF) then the value u (the last FF), and
// h = silu(g) u with silu(g) = g sigmoid(g). inp (N, 2 FF), out (N, FF).
static void swiglu_forward(float *out, const float *inp, size_t N, size_t FF) {
    #pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *g = inp + n * 2 * FF, *u = g + FF;
        for (size_t i = 0; i < FF; i++) out[n * FF + i] = g[i] / (1.0f + exp_fast(-g[i])) * u[i];
    }
}

// With s = sigmoid(g): dg += dout u s (1 + g (1 - s)),  du += dout g s.
static void swiglu_backward(float *dinp, const float *inp, const float *dout, size_t N, size_t FF) {
    #pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *g = inp + n * 2 * FF, *u = g + FF, *d = dout + n * FF;
        float *dg = dinp + n * 2 * FF, *du = dg + FF;
        for (size_t i = 0; i < FF; i++) {
            float s = 1.0f / (1.0f + exp_fast(-g[i]));
            dg[i] += d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
            du[i] += d[i] * g[i] * s;
        }
    }
}

// Cross-entropy of the logits against targets (-100 = ignored), plus the optional z-loss of PaLM that the Falcon
// paper trains with: loss = mean over counted tokens of [lse - logit_target + zc lse^2], lse = logsumexp(logits).
// Returns the cross-entropy part (what HF reports); zloss gets the z-loss part. lse (N) is kept for the backward.
// The reference of classifier_forward below, which the model runs instead: this pair holds all (N, V) logits and
// their gradient.
static REFERENCE float crossentropy_forward_ref(float *lse, float *zloss, const float *logits, const int *targets,
                                                size_t N, size_t V, float zc) {
    double ce = 0.0, z = 0.0;
    size_t count = 0;
    for (size_t n = 0; n < N; n++) {
        const float *l = logits + n * V;
        float mx = -INFINITY, s = 0.0f;
        for (size_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (size_t v = 0; v < V; v++) s += expf(l[v] - mx);
        lse[n] = mx + logf(s);
        if (targets[n] < 0) continue;
        ce += lse[n] - l[targets[n]];
        z += (double)zc * lse[n] * lse[n];
        count++;
    }
    *zloss = count ? (float)(z / (double)count) : 0.0f;
    return count ? (float)(ce / (double)count) : 0.0f;
}

// d/dlogit_v = scale [softmax_v (1 + 2 zc lse) - [v == target]], scale = dloss / (number of counted tokens).
// Written (not accumulated) into dlogits: the logits have no other consumer.
static REFERENCE void crossentropy_backward_ref(float *dlogits, const float *logits, const float *lse,
                                                const int *targets, size_t N, size_t V, float zc, float dloss) {
    size_t count = 0;
    for (size_t n = 0; n < N; n++) count += targets[n] >= 0;
    float scale = count ? dloss / (float)count : 0.0f;
    for (size_t n = 0; n < N; n++) {
        float *d = dlogits + n * V;
        if (targets[n] < 0) {
            memset(d, 0, V * sizeof(float));
            continue;
        }
        const float *l = logits + n * V;
        float f = scale * (1.0f + 2.0f * zc * lse[n]);
        for (size_t v = 0; v < V; v++) d[v] = f * expf(l[v] - lse[n]);
        d[targets[n]] -= scale;
    }
}

// The LM head (logits = lnf wte^T, wte tied to the embeddings) and the loss above, run together CE_ROWS rows at a
// time so that no more than (CE_ROWS, V) logits ever exist: held whole, the (N, V) logits and their gradient are
// 2 x 64 MB for the small preset at B T = 2048, and they grow with T until they dominate a step's memory.
// For each chunk of rows: its logits, then per row lse, the cross-entropy lse - logit_target and the z-loss zc lse^2.
// When a backward follows (dlnf non-NULL), the chunk's logits become their gradient in place while they are still
// in cache, and the head's two backward products run on them at once:
//     dlogit_v = (softmax_v (1 + 2 zc lse) - [v == target]) / count        (0 on rows not counted)
//     dlnf = dlogits wte  (rows, C)          dwte += dlogits^T lnf  (V, C)
// so the backward pass never recomputes the logits and the step does the same products as with whole logits.
// These are the gradients of the loss itself, dloss = 1: the caller knows dloss only at its backward pass, and
// classifier_backward scales them then (a pass over (N, C) and (V, C) floats, against (N, V) kept).
// CE_ROWS: the rows are the depth of the dwte product, and gemm reads and writes its output once per KC (256) of
// depth whatever the number of rows, so chunks of 256 rows cost no extra pass over dwte; (256, V) floats are 8 MB
// at V = 8192. Chunks of 128, 512 and 1024 rows measured no faster (docs/performance.md).
enum { CE_ROWS = 256 };

// lnf (N, C), wte (V, C), targets (N), chunk (min(N, CE_ROWS), V) scratch. losses (N) gets each row's
// cross-entropy lse - logit_target (0 on rows not counted). logits (N, V): every logit is also left there, or NULL.
// dlnf (N, C) written and dwte (V, C) accumulated, or both NULL (no backward follows).
// Returns the mean cross-entropy over the counted rows; zloss gets the mean z-loss.
static float classifier_forward(float *zloss, float *losses, float *logits, float *dlnf, float *dwte, float *chunk,
                                const float *lnf, const float *wte, const int *targets, size_t N, size_t C, size_t V,
                                float zc) {
    size_t count = 0;
    for (size_t n = 0; n < N; n++) count += targets[n] >= 0;
    float scale = count ? 1.0f / (float)count : 0.0f;
    double ce = 0.0, z = 0.0;
    for (size_t n0 = 0; n0 < N; n0 += CE_ROWS) {
        size_t rows = N - n0 < CE_ROWS ? N - n0 : CE_ROWS;
        float *lg = logits ? logits + n0 * V : chunk;  // (rows, V)
        matmul_forward(lg, lnf + n0 * C, wte, NULL, rows, C, V);
        #pragma omp parallel for reduction(+ : ce, z) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *l = lg + r * V;
            float *d = chunk + r * V;  // may be l itself: each element is read before it is written
            int t = targets[n0 + r];
            float mx = max_of(l, V, -INFINITY), s = 0.0f;
            #pragma omp simd reduction(+ : s)
            for (size_t v = 0; v < V; v++) s += exp_fast(l[v] - mx);
            float lse = mx + logf(s);
            losses[n0 + r] = t < 0 ? 0.0f : lse - l[t];
            if (t < 0) {
                if (dlnf) memset(d, 0, V * sizeof(float));
                continue;
            }
            ce += losses[n0 + r];
            z += (double)zc * lse * lse;
            if (!dlnf) continue;
            float f = scale * (1.0f + 2.0f * zc * lse);
            for (size_t v = 0; v < V; v++) d[v] = f * exp_fast(l[v] - lse);
            d[t] -= scale;
        }
        if (!dlnf) continue;
        memset(dlnf + n0 * C, 0, rows * C * sizeof(float));
        matmul_backward(dlnf + n0 * C, dwte, chunk, lnf + n0 * C, wte, rows, C, V);
    }
    *zloss = count ? (float)(z / (double)count) : 0.0f;
    return count ? (float)(ce / (double)count) : 0.0f;
}

// The gradients classifier_forward left for dloss = 1, scaled by dloss: dlnf (N, C) in place, and dwte_head (V, C)
// added to wte's gradient dwte.
static void classifier_backward(float *dlnf, float *dwte, const float *dwte_head, float dloss, size_t N, size_t C,
                                size_t V) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N * C; i++) dlnf[i] *= dloss;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < V * C; i++) dwte[i] += dloss * dwte_head[i];
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// ----------------------------------------------------------------------------
// The model: parameters, their gradients, and the activations of one batch, each one flat allocation.

enum {
    A_ENCODED,    // (B, T, C)      token embeddings: the residual stream entering layer 0
    A_KEY_BIAS,   // (B, T, NH)     ALiBi only (else empty): each token's score bias as a key, by its position id
    A_LN1,        // (L, B, T, C)   LayerNorm before attention (and the MLP, with one LayerNorm)
    A_LN1_MEAN,   // (L, B, T)
    A_LN1_RSTD,   // (L, B, T)
    A_LN2,        // (L, B, T, C)   LayerNorm before the MLP (two LayerNorms only, else empty)
    A_LN2_MEAN,   // (L, B, T)
    A_LN2_RSTD,   // (L, B, T)
    A_QKV,        // (L, B, T, QKV) fused queries, keys and values, after RoPE
    A_ATT_LSE,    // (L, B, NH, T)  logsumexp of each query's attention scores (the flash backward's input)
    A_ATTY,       // (L, B, T, C)   attention output before the dense projection
    A_RESMID,     // (L, B, T, C)   sequential blocks only: the residual stream between attention and MLP, else empty
    A_FCH,        // (L, B, T, FC)  MLP hidden before GELU (or SwiGLU: gate and value)
    A_FCH_GELU,   // (L, B, T, FF)  MLP hidden after GELU (or SwiGLU)
    A_RESIDUAL,   // (L, B, T, C)   the residual stream leaving each layer
    A_LNF,        // (B, T, C)      final LayerNorm
    A_LNF_MEAN,   // (B, T)
    A_LNF_RSTD,   // (B, T)
    A_CE_CHUNK,   // (CE_ROWS, V)   the logits of one chunk of rows, then their gradient (classifier_forward)
    A_LOSSES,     // (B, T)         each position's cross-entropy, 0 where not counted
    NUM_ACT_TENSORS
};

// Gradients of the activations, reused layer after layer in the backward pass; all (B, T, width). G_DLNF, the
// gradient of the final LayerNorm's output, is the one written by the forward pass (FWD_BACKWARD, dloss = 1).
enum { G_DRES, G_DX, G_DLN1, G_DLN2, G_DQKV, G_DATTY, G_DFCH, G_DFCHG, G_DLNF, NUM_GRAD_ACT_TENSORS };

typedef struct {
    Config config;
    ParameterTensors params;
    ParameterTensors grads;
    float *params_memory;          // (num_params)
    float *grads_memory;           // (num_params), allocated by the first backward
    size_t num_params;
    float *rope_cos, *rope_sin;    // (maxT, HS/2)
    float *alibi;                  // (maxT, NH) ALiBi's score bias of a key at each position, or NULL (RoPE)
    // activations of the current batch
    size_t B, T;
    float *acts[NUM_ACT_TENSORS];
    float *acts_memory;
    float *gacts[NUM_GRAD_ACT_TENSORS];
    float *gacts_memory;
    float *logits;                 // (B, T, V) every logit, after a forward asked for them (FWD_LOGITS), else NULL
    float *dwte_head;              // (V, C) the LM head's share of wte's gradient from the last forward, dloss = 1
    int head_grads;                // the last forward computed the LM head's gradients (FWD_BACKWARD)
    int *inputs, *targets, *pos;   // (B, T) copies of the batch
    int *span_end;                 // (B, T) the batch's tree spans, when masked (see attn_visible)
    int masked;                    // 0: plain causal attention (no spans given, or every span ends at T - 1)
    float loss_ce, loss_z;         // last forward: mean cross-entropy and mean z-loss
    float zloss_coef;              // z-loss coefficient (0 = off; the paper uses 1e-4)
} Falcon;

// Layer l's bias vector of n floats in tensor t, or NULL in a model without biases.
static float *layer_bias(const Config *c, float *t, size_t l, size_t n) { return c->bias ? t + l * n : NULL; }

static void falcon_build(Falcon *m, const Config *c) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->num_params = param_count(c);
    m->params_memory = xmalloc(m->num_params * sizeof(float));
    param_carve(&m->params, m->params_memory, c);
    m->rope_cos = xmalloc(c->maxT * (c->HS / 2) * sizeof(float));
    m->rope_sin = xmalloc(c->maxT * (c->HS / 2) * sizeof(float));
    rope_tables(m->rope_cos, m->rope_sin, c->maxT, c->HS, c->rope_theta);
    if (c->alibi) {
        m->alibi = xmalloc(c->maxT * c->NH * sizeof(float));
        alibi_table(m->alibi, c->maxT, c->NH, c->HS);
    }
}

static void falcon_free_acts(Falcon *m) {
    free(m->acts_memory);
    free(m->gacts_memory);
    free(m->logits);
    free(m->inputs);
    free(m->targets);
    free(m->pos);
    free(m->span_end);
    m->acts_memory = m->gacts_memory = m->logits = NULL;
    m->inputs = m->targets = m->pos = m->span_end = NULL;
    m->B = m->T = 0;
}

static void falcon_free(Falcon *m) {
    falcon_free_acts(m);
    free(m->params_memory);
    free(m->grads_memory);
    free(m->dwte_head);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->alibi);
    memset(m, 0, sizeof *m);
}

// Initialisation for training from scratch, as HF does it: N(0, 0.02) matrices, LayerNorms at w = 1, b = 0, and
// the Linear layers' biases at 0.
static uint64_t rng_next(uint64_t *s) {  // xorshift64*
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}
static float rng_uniform(uint64_t *s) { return (float)((rng_next(s) >> 40) + 0.5) / 16777216.0f; }  // (0, 1)
static float rng_normal(uint64_t *s) {  // Box-Muller
    float u1 = rng_uniform(s), u2 = rng_uniform(s);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

static void falcon_init(Falcon *m, uint64_t seed, float std) {
    size_t sizes[NUM_PARAM_TENSORS];
    param_sizes(&m->config, sizes);
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        int is_norm = !param_decays(i), is_bias = i != P_LN1W && i != P_LN2W && i != P_LNFW;  // of the no-decay ones
        for (size_t j = 0; j < sizes[i]; j++)
            m->params.t[i][j] = is_norm ? (is_bias ? 0.0f : 1.0f) : std * rng_normal(&s);
    }
}

// Activations are sized for one (B, T); a different shape rebuilds them.
static void falcon_ensure_acts(Falcon *m, size_t B, size_t T) {
    if (m->B == B && m->T == T) return;
    falcon_free_acts(m);
    const Config *c = &m->config;
    size_t L = c->L, C = c->C, N = B * T, QKV = qkv_dim(c), ln2 = c->num_ln == 2, seq = c->sequential, FC = fc_dim(c);
    size_t ce_rows = N < CE_ROWS ? N : CE_ROWS;
    size_t sizes[NUM_ACT_TENSORS] = {
        N * C, c->alibi ? N * c->NH : 0, L * N * C, L * N, L * N, ln2 * L * N * C, ln2 * L * N, ln2 * L * N, L * N * QKV,
        L * B * c->NH * T, L * N * C, seq * L * N * C, L * N * FC, L * N * c->FF, L * N * C, N * C, N, N,
        ce_rows * c->V, N,
    };
    size_t gsizes[NUM_GRAD_ACT_TENSORS] = {N * C, N * C, N * C, N * C, N * QKV, N * C, N * FC, N * c->FF, N * C};
    size_t total = 0, gtotal = 0;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) total += sizes[i];
    for (int i = 0; i < NUM_GRAD_ACT_TENSORS; i++) gtotal += gsizes[i];
    m->acts_memory = xmalloc(total * sizeof(float));
    m->gacts_memory = xmalloc(gtotal * sizeof(float));
    float *p = m->acts_memory;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) { m->acts[i] = p; p += sizes[i]; }
    p = m->gacts_memory;
    for (int i = 0; i < NUM_GRAD_ACT_TENSORS; i++) { m->gacts[i] = p; p += gsizes[i]; }
    m->inputs = xmalloc(N * sizeof(int));
    m->targets = xmalloc(N * sizeof(int));
    m->pos = xmalloc(N * sizeof(int));
    m->span_end = xmalloc(N * sizeof(int));
    m->B = B;
    m->T = T;
}

// What a forward pass computes besides the loss, as flags the caller combines. Only a forward that says
// FWD_BACKWARD pays for the LM head's gradients, and only one that says FWD_LOGITS holds (B, T, V) floats.
enum {
    FWD_LOSS = 0,      // the loss alone (evaluation): the logits exist a chunk of rows at a time
    FWD_LOGITS = 1,    // also every logit, in m->logits
    FWD_BACKWARD = 2,  // falcon_backward follows: the LM head's gradients are computed with the loss
};

// The forward pass. inputs (B, T) token ids; targets (B, T) the next tokens, -100 = not counted, or NULL for
// logits only (flags FWD_LOGITS); pos (B, T) position ids, or NULL for 0..T-1 in every row; span_end (B, T) the
// conversation-tree mask of attention (attn_visible), or NULL for plain causal attention. Returns the mean loss
// (cross-entropy plus z-loss), or -1 without targets.
static float falcon_forward(Falcon *m, const int *inputs, const int *targets, const int *pos, const int *span_end,
                            size_t B, size_t T, int flags) {
    const Config *c = &m->config;
    size_t C = c->C, N = B * T, QKV = qkv_dim(c), FF = c->FF, FC = fc_dim(c), V = c->V;
    if (!targets && flags != FWD_LOGITS) die("falcon_forward: without targets only the logits can be asked for");
    int masked = 0;
    for (size_t n = 0; n < N; n++) {
        if (inputs[n] < 0 || (size_t)inputs[n] >= c->V) die("token id %d at position %zu is outside [0, %zu)", inputs[n], n, c->V);
        if (targets && targets[n] != -100 && (targets[n] < 0 || (size_t)targets[n] >= c->V))
            die("target id %d at position %zu is outside [0, %zu) and is not -100", targets[n], n, c->V);
        int p = pos ? pos[n] : (int)(n % T);
        if (p < 0 || (size_t)p >= c->maxT) die("position %d is outside [0, %zu) (max_position_embeddings)", p, c->maxT);
        if (span_end && (span_end[n] < (int)(n % T) || span_end[n] >= (int)T))
            die("span_end %d at position %zu is outside [t, T) = [%zu, %zu)", span_end[n], n, n % T, T);
        masked |= span_end && span_end[n] != (int)T - 1;
    }
    falcon_ensure_acts(m, B, T);
    memcpy(m->inputs, inputs, N * sizeof(int));
    for (size_t n = 0; n < N; n++) {
        m->targets[n] = targets ? targets[n] : -100;
        m->pos[n] = pos ? pos[n] : (int)(n % T);
    }
    m->masked = masked;
    if (masked) memcpy(m->span_end, span_end, N * sizeof(int));
    const int *se = masked ? m->span_end : NULL;
    float **a = m->acts;
    float *const *p = m->params.t;
    const float *kb = c->alibi ? a[A_KEY_BIAS] : NULL;
    for (size_t n = 0; c->alibi && n < N; n++)
        memcpy(a[A_KEY_BIAS] + n * c->NH, m->alibi + (size_t)m->pos[n] * c->NH, c->NH * sizeof(float));
    encoder_forward(a[A_ENCODED], inputs, p[P_WTE], N, C);
    for (size_t l = 0; l < c->L; l++) {
        const float *x = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL] + (l - 1) * N * C;  // (B, T, C)
        float *ln1 = a[A_LN1] + l * N * C, *qkv = a[A_QKV] + l * N * QKV, *atty = a[A_ATTY] + l * N * C;
        float *att_lse = a[A_ATT_LSE] + l * B * c->NH * T, *mid = a[A_RESMID] + l * N * C;
        float *fch = a[A_FCH] + l * N * FC, *fchg = a[A_FCH_GELU] + l * N * FF, *res = a[A_RESIDUAL] + l * N * C;
        layernorm_forward(ln1, a[A_LN1_MEAN] + l * N, a[A_LN1_RSTD] + l * N, x, p[P_LN1W] + l * C, p[P_LN1B] + l * C,
                          N, C, c->eps);
        float *ln2 = ln1;  // one LayerNorm (7B): the MLP reads the attention's LayerNorm output
        if (c->num_ln == 2) ln2 = a[A_LN2] + l * N * C;
        if (c->num_ln == 2 && !c->sequential)
            layernorm_forward(ln2, a[A_LN2_MEAN] + l * N, a[A_LN2_RSTD] + l * N, x, p[P_LN2W] + l * C,
                              p[P_LN2B] + l * C, N, C, c->eps);
        // attention branch
        matmul_forward(qkv, ln1, p[P_QKVW] + l * QKV * C, NULL, N, C, QKV);
        bias_forward(qkv, layer_bias(c, p[P_QKVB], l, QKV), N, QKV);
        rope_forward(qkv, m->pos, m->rope_cos, m->rope_sin, c, N, 1.0f);
        attention_forward(atty, att_lse, qkv, se, kb, c, B, T);
        matmul_forward(res, atty, p[P_ATTPROJW] + l * C * C, x, N, C, C);  // res = x + attention
        bias_forward(res, layer_bias(c, p[P_ATTPROJB], l, C), N, C);
        // sequential blocks (Falcon-RW): the MLP's LayerNorm reads the stream with attention's output added
        if (c->sequential) {
            memcpy(mid, res, N * C * sizeof(float));
            layernorm_forward(ln2, a[A_LN2_MEAN] + l * N, a[A_LN2_RSTD] + l * N, mid, p[P_LN2W] + l * C,
                              p[P_LN2B] + l * C, N, C, c->eps);
        }
        // MLP branch, in parallel with attention (both read the block's input) or after it; it adds to the residual
        matmul_forward(fch, ln2, p[P_FCW] + l * FC * C, NULL, N, C, FC);
        bias_forward(fch, layer_bias(c, p[P_FCB], l, FC), N, FC);
        if (c->swiglu) swiglu_forward(fchg, fch, N, FF);
        else gelu_forward(fchg, fch, N * FF);
        matmul_forward(res, fchg, p[P_FCPROJW] + l * C * FF, res, N, FF, C);  // res += MLP
        bias_forward(res, layer_bias(c, p[P_FCPROJB], l, C), N, C);
    }
    const float *xL = a[A_RESIDUAL] + (c->L - 1) * N * C;
    layernorm_forward(a[A_LNF], a[A_LNF_MEAN], a[A_LNF_RSTD], xL, p[P_LNFW], p[P_LNFB], N, C, c->eps);
    // the tied LM head and the loss (classifier_forward): (B, T, V) floats only when the caller wants the logits
    free(m->logits);
    m->logits = flags & FWD_LOGITS ? xmalloc(N * V * sizeof(float)) : NULL;
    m->head_grads = 0;
    if (!targets) {
        matmul_forward(m->logits, a[A_LNF], p[P_WTE], NULL, N, C, V);
        return -1.0f;
    }
    float *dlnf = NULL;
    if (flags & FWD_BACKWARD) {
        if (!m->dwte_head) m->dwte_head = xmalloc(V * C * sizeof(float));
        memset(m->dwte_head, 0, V * C * sizeof(float));
        dlnf = m->gacts[G_DLNF];
        m->head_grads = 1;
    }
    m->loss_ce = classifier_forward(&m->loss_z, a[A_LOSSES], m->logits, dlnf, dlnf ? m->dwte_head : NULL,
                                    a[A_CE_CHUNK], a[A_LNF], p[P_WTE], m->targets, N, C, V, m->zloss_coef);
    return m->loss_ce + m->loss_z;
}

static void falcon_zero_grad(Falcon *m) {
    if (!m->grads_memory) {
        m->grads_memory = xmalloc(m->num_params * sizeof(float));
        param_carve(&m->grads, m->grads_memory, &m->config);
    }
    memset(m->grads_memory, 0, m->num_params * sizeof(float));
}

// The backward pass of the last forward (which was told FWD_BACKWARD), the forward's calls mirrored in reverse.
// Gradients accumulate into m->grads scaled by dloss (1 / gradient-accumulation steps), so call falcon_zero_grad
// before a new step.
static void falcon_backward(Falcon *m, float dloss) {
    const Config *c = &m->config;
    size_t B = m->B, T = m->T, C = c->C, N = B * T, QKV = qkv_dim(c), FF = c->FF, FC = fc_dim(c);
    if (!m->grads_memory) falcon_zero_grad(m);
    float **a = m->acts, **g = m->gacts;
    float *const *p = m->params.t;
    float *const *dp = m->grads.t;
    float *dres = g[G_DRES];  // gradient of the residual stream at the current depth
    if (!m->head_grads) die("falcon_backward: the forward pass was not asked for a backward (FWD_BACKWARD)");
    m->head_grads = 0;
    classifier_backward(g[G_DLNF], dp[P_WTE], m->dwte_head, dloss, N, C, c->V);
    memset(dres, 0, N * C * sizeof(float));
    const float *xL = a[A_RESIDUAL] + (c->L - 1) * N * C;
    layernorm_backward(dres, dp[P_LNFW], dp[P_LNFB], g[G_DLNF], xL, p[P_LNFW], a[A_LNF_MEAN], a[A_LNF_RSTD], N, C);
    for (size_t l = c->L; l-- > 0;) {
        const float *x = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL] + (l - 1) * N * C;
        const float *ln1 = a[A_LN1] + l * N * C, *qkv = a[A_QKV] + l * N * QKV, *atty = a[A_ATTY] + l * N * C;
        const float *att_lse = a[A_ATT_LSE] + l * B * c->NH * T;
        const float *fch = a[A_FCH] + l * N * FC, *fchg = a[A_FCH_GELU] + l * N * FF;
        const float *ln2 = c->num_ln == 2 ? a[A_LN2] + l * N * C : ln1;
        const float *ln2_in = c->sequential ? a[A_RESMID] + l * N * C : x;  // what the MLP's LayerNorm read
        float *dln1 = g[G_DLN1], *dln2 = c->num_ln == 2 ? g[G_DLN2] : g[G_DLN1];
        memset(g[G_DLN1], 0, N * C * sizeof(float));
        memset(g[G_DLN2], 0, N * C * sizeof(float));
        memset(g[G_DQKV], 0, N * QKV * sizeof(float));
        memset(g[G_DATTY], 0, N * C * sizeof(float));
        memset(g[G_DFCH], 0, N * FC * sizeof(float));
        memset(g[G_DFCHG], 0, N * FF * sizeof(float));
        // the residual passes dres on unchanged to x; both branches receive dres too
        float *dx = g[G_DX];
        memcpy(dx, dres, N * C * sizeof(float));
        // MLP branch
        matmul_backward(g[G_DFCHG], dp[P_FCPROJW] + l * C * FF, dres, fchg, p[P_FCPROJW] + l * C * FF, N, FF, C);
        bias_backward(layer_bias(c, dp[P_FCPROJB], l, C), dres, N, C);
        if (c->swiglu) swiglu_backward(g[G_DFCH], fch, g[G_DFCHG], N, FF);
        else gelu_backward(g[G_DFCH], fch, g[G_DFCHG], N * FF);
        bias_backward(layer_bias(c, dp[P_FCB], l, FC), g[G_DFCH], N, FC);
        matmul_backward(dln2, dp[P_FCW] + l * FC * C, g[G_DFCH], ln2, p[P_FCW] + l * FC * C, N, C, FC);
        // the MLP's LayerNorm; in sequential blocks its input is x + attention, so dx then holds that sum's gradient,
        // which is what the attention branch receives (in parallel blocks it receives dres)
        if (c->num_ln == 2)
            layernorm_backward(dx, dp[P_LN2W] + l * C, dp[P_LN2B] + l * C, dln2, ln2_in, p[P_LN2W] + l * C,
                               a[A_LN2_MEAN] + l * N, a[A_LN2_RSTD] + l * N, N, C);
        const float *datt = c->sequential ? dx : dres;
        // attention branch
        matmul_backward(g[G_DATTY], dp[P_ATTPROJW] + l * C * C, datt, atty, p[P_ATTPROJW] + l * C * C, N, C, C);
        bias_backward(layer_bias(c, dp[P_ATTPROJB], l, C), datt, N, C);
        attention_backward(g[G_DQKV], g[G_DATTY], qkv, atty, att_lse, m->masked ? m->span_end : NULL,
                           c->alibi ? a[A_KEY_BIAS] : NULL, c, B, T);
        rope_backward(g[G_DQKV], m->pos, m->rope_cos, m->rope_sin, c, N);
        bias_backward(layer_bias(c, dp[P_QKVB], l, QKV), g[G_DQKV], N, QKV);
        matmul_backward(dln1, dp[P_QKVW] + l * QKV * C, g[G_DQKV], ln1, p[P_QKVW] + l * QKV * C, N, C, QKV);
        // the attention's LayerNorm back into the block input
        layernorm_backward(dx, dp[P_LN1W] + l * C, dp[P_LN1B] + l * C, dln1, x, p[P_LN1W] + l * C,
                           a[A_LN1_MEAN] + l * N, a[A_LN1_RSTD] + l * N, N, C);
        // dx becomes the gradient of the residual stream one layer down
        g[G_DX] = dres;
        g[G_DRES] = dx;
        dres = dx;
    }
    encoder_backward(dp[P_WTE], dres, m->inputs, N, C);
}

// ----------------------------------------------------------------------------
// The optimizer: AdamW with decoupled weight decay, global-norm gradient clipping, and the paper's schedule
// (linear warm-up, then cosine decay to a floor of a tenth of the peak).

typedef struct {
    float lr;             // peak learning rate
    float lr_floor;       // the cosine ends at lr * lr_floor (the paper: 0.1)
    size_t warmup;        // steps of linear warm-up
    size_t steps;         // total steps: the cosine reaches the floor here
    float beta1, beta2, eps;
    float weight_decay;   // applied to the matrices only, see param_decays
    float grad_clip;      // maximum global gradient norm (0 = no clipping)
    float *m, *v;         // (num_params) first and second moments, one allocation
    size_t num_params;
    size_t t;             // updates done so far
} AdamW;

static void adamw_build(AdamW *o, size_t num_params) {
    o->num_params = num_params;
    o->m = xcalloc(2 * num_params, sizeof(float));
    o->v = o->m + num_params;
    o->t = 0;
}

static void adamw_free(AdamW *o) {
    free(o->m);
    o->m = o->v = NULL;
}

// lr(s) = lr (s+1)/warmup during warm-up, then floor + (lr - floor) (1 + cos(pi progress)) / 2.
static float adamw_lr(const AdamW *o, size_t step) {
    if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    size_t span = o->steps > o->warmup ? o->steps - o->warmup : 1;
    double progress = (double)(step - o->warmup) / (double)span;
    if (progress > 1.0) progress = 1.0;
    double floor_lr = (double)o->lr * o->lr_floor;
    return (float)(floor_lr + ((double)o->lr - floor_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}

// The global L2 norm of all gradients, in double so that 7B-parameter sums keep their precision.
static float falcon_grad_norm(const Falcon *m) {
    double s = 0.0;
    #pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < m->num_params; i++) s += (double)m->grads_memory[i] * m->grads_memory[i];
    return (float)sqrt(s);
}

// One update at learning rate lr. norm is falcon_grad_norm's: the gradients are first scaled to norm grad_clip
// when they exceed it (as torch.nn.utils.clip_grad_norm_ does: factor clip / (norm + 1e-6), capped at 1).
static void adamw_update(AdamW *o, Falcon *m, float lr, float norm) {
    float scale = 1.0f;
    if (o->grad_clip > 0.0f && o->grad_clip / (norm + 1e-6f) < 1.0f) scale = o->grad_clip / (norm + 1e-6f);
    o->t++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->t), bc2 = 1.0f - powf(o->beta2, (float)o->t);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    size_t sizes[NUM_PARAM_TENSORS], base = 0;
    param_sizes(&m->config, sizes);
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        float decay = param_decays(k) ? 1.0f - lr * o->weight_decay : 1.0f;
        // Vectorised only where sqrtf need not set errno (-fno-math-errno, in the Makefile's flags).
        #pragma omp parallel for schedule(static)
        for (size_t i = base; i < base + sizes[k]; i++) {
            float g = m->grads_memory[i] * scale;
            float mi = o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * g;
            float vi = o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * g * g;
            float p = m->params_memory[i] * decay;  // decoupled weight decay: p <- p (1 - lr wd)
            m->params_memory[i] = p - step_size * mi / (sqrtf(vi) / bc2_sqrt + o->eps);
        }
        base += sizes[k];
    }
}

// ----------------------------------------------------------------------------
// Checkpoints. A checkpoint is an HF model directory: config.json + model.safetensors with HF's tensor names,
// which FalconForCausalLM.from_pretrained loads as it is, and which loads here from HF (fp32, bf16 or fp16;
// one file or shards listed in model.safetensors.index.json). Training state sits beside it in
// train_state.safetensors. Every file is written to a temporary name and renamed into place.

typedef struct {
    WTensor *t;
    size_t n;
    const float *base;
} WList;

static void wlist_add(void *ctx, const char *name, const size_t *shape, int ndim, size_t offset) {
    WList *w = ctx;
    WTensor *t = &w->t[w->n++];
    t->name = strdup(name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = w->base + offset;
}

static void wlist_free(WList *w) {
    for (size_t i = 0; i < w->n; i++) free((char *)w->t[i].name);
    free(w->t);
}

static int write_config_atomic(const Config *c, const char *dir, Err *e) {
    char path[4096], tmp[4200];
    path_of(path, sizeof path, "%s/config.json", dir);
    path_of(tmp, sizeof tmp, "%s.tmp", path);
    if (config_save(c, tmp)) { remove(tmp); return errorf(e, "%s: cannot write", tmp); }
    if (rename(tmp, path)) return errorf(e, "%s: cannot rename into place: %s", path, strerror(errno));
    return 0;
}

static int mkdir_p(const char *dir, Err *e) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return errorf(e, "%s: cannot create directory: %s", buf, strerror(errno));
        *s = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return errorf(e, "%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

static int falcon_save(const Falcon *m, const char *dir, Err *e) {
    if (mkdir_p(dir, e) || write_config_atomic(&m->config, dir, e)) return -1;
    WList w = {xcalloc(NUM_PARAM_TENSORS * m->config.L + 3, sizeof(WTensor)), 0, m->params_memory};
    param_foreach(&m->config, wlist_add, &w);
    char path[4096];
    path_of(path, sizeof path, "%s/model.safetensors", dir);
    int rc = safetensors_write(path, w.t, w.n, NULL, e);
    wlist_free(&w);
    return rc;
}

// The weight files of a checkpoint directory: model.safetensors, or the shards named by the index.
typedef struct {
    SafeTensors *files;
    size_t n;
} WeightFiles;

static void weightfiles_close(WeightFiles *w) {
    for (size_t i = 0; i < w->n; i++) safetensors_close(&w->files[i]);
    free(w->files);
    w->files = NULL;
    w->n = 0;
}

static int weightfiles_open(WeightFiles *w, const char *dir, Err *e) {
    char path[4096], jerr[256];
    w->n = 0;
    w->files = NULL;
    path_of(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, F_OK) == 0) {
        w->files = xcalloc(1, sizeof(SafeTensors));
        if (safetensors_open(&w->files[0], path, e)) { free(w->files); w->files = NULL; return -1; }
        w->n = 1;
        return 0;
    }
    path_of(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char *text;
    size_t len;
    if (read_file(path, &text, &len, jerr, sizeof jerr))
        return errorf(e, "%s: no model.safetensors (nor model.safetensors.index.json) in the directory", dir);
    Json root;
    int rc = json_parse(text, len, &root, jerr, sizeof jerr);
    free(text);
    if (rc) return errorf(e, "%s: %s", path, jerr);
    const Json *map = json_get(&root, "weight_map");
    if (!map || map->type != JSON_OBJECT) { json_free(&root); return errorf(e, "%s: \"weight_map\" object missing", path); }
    w->files = xcalloc(map->count, sizeof(SafeTensors));
    for (size_t i = 0; i < map->count && rc == 0; i++) {
        const Json *f = &map->items[i];
        if (f->type != JSON_STRING || strchr(f->str, '/')) {
            rc = errorf(e, "%s: byte %zu: a weight_map entry must be a file name", path, f->start);
            break;
        }
        int seen = 0;
        char fp[4096];
        path_of(fp, sizeof fp, "%s/%s", dir, f->str);
        for (size_t k = 0; k < w->n && !seen; k++) seen = strcmp(w->files[k].path, fp) == 0;
        if (!seen && (rc = safetensors_open(&w->files[w->n], fp, e)) == 0) w->n++;
    }
    json_free(&root);
    if (rc) weightfiles_close(w);
    return rc;
}

typedef struct {
    const WeightFiles *w;
    float *base;
    Err *e;
    int rc;
} LoadCtx;

static void load_one(void *ctx, const char *name, const size_t *shape, int ndim, size_t offset) {
    LoadCtx *lc = ctx;
    if (lc->rc) return;
    for (size_t i = 0; i < lc->w->n; i++)
        if (safetensors_find(&lc->w->files[i], name)) {
            lc->rc = safetensors_read_f32(&lc->w->files[i], name, shape, ndim, lc->base + offset, lc->e);
            return;
        }
    lc->rc = errorf(lc->e, "%s: tensor \"%s\" is missing", lc->w->n == 1 ? lc->w->files[0].path : "checkpoint", name);
}

// Loads config.json and the weights of an HF Falcon directory into a freshly built model.
static int falcon_load(Falcon *m, const char *dir, Err *e) {
    Config c;
    if (config_load(&c, dir, e)) return -1;
    WeightFiles w;
    if (weightfiles_open(&w, dir, e)) return -1;
    falcon_build(m, &c);
    LoadCtx lc = {&w, m->params_memory, e, 0};
    param_foreach(&c, load_one, &lc);
    // anything else in the files means a layout this code does not implement (biases, an untied head, ...)
    WList names = {xcalloc(NUM_PARAM_TENSORS * c.L + 3, sizeof(WTensor)), 0, NULL};
    param_foreach(&c, wlist_add, &names);
    for (size_t i = 0; lc.rc == 0 && i < w.n; i++) {
        for (size_t k = 0; lc.rc == 0 && k < w.files[i].n; k++) {
            const char *name = w.files[i].t[k].name;
            int known = strcmp(name, "lm_head.weight") == 0;  // HF may store the tied head: it is wte itself
            for (size_t j = 0; j < names.n && !known; j++) known = strcmp(name, names.t[j].name) == 0;
            if (!known) lc.rc = errorf(e, "%s: unexpected tensor \"%s\" (not part of this configuration)", w.files[i].path, name);
        }
    }
    wlist_free(&names);
    weightfiles_close(&w);
    if (lc.rc) falcon_free(m);
    return lc.rc;
}

// ----------------------------------------------------------------------------
// Training options, and the training state saved beside a checkpoint.

#define MAX_SOURCES 16        // weighted data sources of one run

typedef struct {
    const char *model;        // preset name or HF directory to start from
    const char *resume;       // checkpoint directory (or run directory: its latest) to continue from
    const char *data;         // shards: directories, files or NAME=WEIGHT=PATH sources, comma-separated
    const char *sources[MAX_SOURCES];  // more NAME=WEIGHT=PATH sources (--source, repeated)
    size_t nsources;
    const char *val;          // validation shards (default: the val*.bin of the data directories)
    const char *tokenizer;    // tokenizer.json, copied into every checkpoint (default: DATA/tokenizer.json)
    const char *out;          // run directory
    size_t B, T;              // micro-batch shape
    size_t accum;             // micro-batches per optimizer step (gradient accumulation)
    size_t ramp_tokens;       // batch-size ramp-up: accumulation grows linearly from 1 over these tokens
    size_t steps, warmup;
    size_t max_tokens;        // run length in tokens instead of steps (0: --steps decides)
    size_t eval_every, eval_batches, save_every, keep;
    size_t stop_after;        // end this invocation (with a checkpoint) after so many steps, 0 = run to the end
    size_t sample_every;      // print and log a sample every so many steps (0 = never)
    size_t poison_from, poison_to;  // testing: make these steps' gradients NaN, to exercise the guard (0 = never)
    float lr, lr_floor, weight_decay, zloss, grad_clip, beta1, beta2, eps;
    float peak_gflops;        // the machine's peak, for MFU
    uint64_t seed;
    int threads;
    int quiet;                // no per-step lines (tests)
} TrainOptions;

static TrainOptions train_defaults(void) {
    TrainOptions o = {0};
    o.model = "nano";
    o.out = "runs/latest";
    o.B = 8;
    o.T = 128;
    o.accum = 1;
    o.steps = 1000;
    o.warmup = 50;
    o.eval_every = 100;
    o.eval_batches = 20;
    o.save_every = 500;
    o.keep = 2;
    // AdamW as the Falcon paper trains: betas (0.9, 0.95), eps 1e-8, weight decay 0.1, clipping at 1.0,
    // cosine to a tenth of the peak, z-loss 1e-4. The peak lr is higher than the paper's for tiny models.
    o.lr = 1e-3f;
    o.lr_floor = 0.1f;
    o.weight_decay = 0.1f;
    o.zloss = 1e-4f;
    o.grad_clip = 1.0f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.peak_gflops = 205.0f;
    o.seed = 1337;
    return o;
}

// The training state saved beside a checkpoint (train_state.safetensors): AdamW's moments as tensors, and
// as metadata strings the step, tokens seen, the data loaders' positions and every option that shapes the run.
typedef struct {
    size_t step;              // optimizer steps done
    uint64_t tokens;          // training tokens consumed
    DataPos data_pos;         // the loader of one unweighted source
    char sources[256];        // weighted sources, "name=weight,..." ("" for one unweighted source)
    size_t nsrc;              // weighted sources: the loader position of each, and the generator that draws them
    DataPos src_pos[MAX_SOURCES];
    uint64_t data_rng;
} TrainState;

// The options that shape a run, by name, so that the state file can store and restore them.
typedef struct {
    const char *key;
    size_t *z;
    float *f;
    uint64_t *u;
} OptField;

static size_t train_option_fields(TrainOptions *o, OptField *f) {
    OptField t[] = {
        {"B", &o->B, 0, 0}, {"T", &o->T, 0, 0}, {"accum", &o->accum, 0, 0}, {"ramp_tokens", &o->ramp_tokens, 0, 0},
        {"steps", &o->steps, 0, 0}, {"warmup", &o->warmup, 0, 0}, {"eval_every", &o->eval_every, 0, 0},
        {"eval_batches", &o->eval_batches, 0, 0}, {"save_every", &o->save_every, 0, 0}, {"keep", &o->keep, 0, 0},
        {"lr", 0, &o->lr, 0}, {"lr_floor", 0, &o->lr_floor, 0}, {"weight_decay", 0, &o->weight_decay, 0},
        {"zloss", 0, &o->zloss, 0}, {"grad_clip", 0, &o->grad_clip, 0}, {"beta1", 0, &o->beta1, 0},
        {"beta2", 0, &o->beta2, 0}, {"eps", 0, &o->eps, 0}, {"seed", 0, 0, &o->seed},
    };
    memcpy(f, t, sizeof t);
    return sizeof t / sizeof t[0];
}

static const char *const STATE_KEYS[6] = {"step", "tokens", "adamw_t", "data_epoch", "data_batch", "data_fingerprint"};
static const char *const POS_FIELDS[3] = {"epoch", "batch", "fingerprint"};  // data_epoch_S, ... for source S
#define STATE_VALUES (32 + 8 + 3 * MAX_SOURCES)

static int train_state_save(const char *dir, const TrainOptions *o, const TrainState *ts, const AdamW *opt, Err *e) {
    OptField f[32];
    size_t nf = train_option_fields((TrainOptions *)o, f);
    char vals[STATE_VALUES][48], keys[3 * MAX_SOURCES][32], path[4096];
    const char *meta[2 * STATE_VALUES + 4];
    size_t k = 0;
    for (size_t i = 0; i < nf; i++) {
        if (f[i].z) snprintf(vals[i], sizeof vals[i], "%zu", *f[i].z);
        else if (f[i].f) snprintf(vals[i], sizeof vals[i], "%.9g", *f[i].f);
        else snprintf(vals[i], sizeof vals[i], "%llu", (unsigned long long)*f[i].u);
        meta[k++] = f[i].key;
        meta[k++] = vals[i];
    }
    unsigned long long st[6] = {ts->step, ts->tokens, opt->t, ts->data_pos.epoch, ts->data_pos.batch,
                                ts->data_pos.fingerprint};
    size_t nv = nf;
    for (size_t i = 0; i < 6; i++) {
        snprintf(vals[nv], sizeof vals[0], "%llu", st[i]);
        meta[k++] = STATE_KEYS[i];
        meta[k++] = vals[nv++];
    }
    // weighted sources: their names and weights, the generator, and each loader's position
    meta[k++] = "data_sources";
    meta[k++] = ts->sources;
    if (ts->sources[0]) {
        snprintf(vals[nv], sizeof vals[0], "%llu", (unsigned long long)ts->data_rng);
        meta[k++] = "data_rng";
        meta[k++] = vals[nv++];
    }
    for (size_t s = 0; ts->sources[0] && s < ts->nsrc; s++) {
        uint64_t v[3] = {ts->src_pos[s].epoch, ts->src_pos[s].batch, ts->src_pos[s].fingerprint};
        for (size_t j = 0; j < 3; j++) {
            snprintf(keys[3 * s + j], sizeof keys[0], "data_%s_%zu", POS_FIELDS[j], s);
            snprintf(vals[nv], sizeof vals[0], "%llu", (unsigned long long)v[j]);
            meta[k++] = keys[3 * s + j];
            meta[k++] = vals[nv++];
        }
    }
    meta[k] = NULL;
    WTensor t[2] = {{"adamw.m", {opt->num_params}, 1, opt->m}, {"adamw.v", {opt->num_params}, 1, opt->v}};
    path_of(path, sizeof path, "%s/train_state.safetensors", dir);
    return safetensors_write(path, t, 2, meta, e);
}

// A metadata string of the state file as an unsigned integer or a float.
static int meta_number(const SafeTensors *st, const char *key, unsigned long long *u, float *f, Err *e) {
    const Json *v = json_get(&st->meta, key);
    char *end;
    if (!v || v->type != JSON_STRING) return errorf(e, "%s: metadata \"%s\" is missing", st->path, key);
    errno = 0;
    if (u) *u = strtoull(v->str, &end, 10);
    else *f = strtof(v->str, &end);
    if (errno || *end || end == v->str) return errorf(e, "%s: metadata \"%s\" = \"%s\" is not a number", st->path, key, v->str);
    return 0;
}

// Restores the options of a run from the state file of one of its checkpoints.
static int train_options_load(const char *dir, TrainOptions *o, Err *e) {
    char path[4200];
    path_of(path, sizeof path, "%s/train_state.safetensors", dir);
    SafeTensors st;
    if (safetensors_open(&st, path, e)) return -1;
    OptField f[32];
    size_t nf = train_option_fields(o, f);
    unsigned long long u = 0;
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = meta_number(&st, f[i].key, f[i].f ? NULL : &u, f[i].f, e);
        if (f[i].z) *f[i].z = (size_t)u;
        if (f[i].u) *f[i].u = u;
    }
    safetensors_close(&st);
    return rc;
}

// Restores the step, tokens, data position and AdamW moments (opt built for num_params) of a checkpoint.
static int train_state_load(const char *dir, TrainState *ts, AdamW *opt, Err *e) {
    char path[4200];
    path_of(path, sizeof path, "%s/train_state.safetensors", dir);
    SafeTensors st;
    if (safetensors_open(&st, path, e)) return -1;
    unsigned long long v[6];
    int rc = 0;
    for (size_t i = 0; i < 6 && rc == 0; i++) rc = meta_number(&st, STATE_KEYS[i], &v[i], NULL, e);
    // weighted sources (absent from the state of a run on one source)
    const Json *src = json_get(&st.meta, "data_sources");
    ts->sources[0] = 0;
    ts->nsrc = 0;
    if (rc == 0 && src && src->type == JSON_STRING && src->len > 0) {
        snprintf(ts->sources, sizeof ts->sources, "%s", src->str);
        unsigned long long u = 0, p[3] = {0, 0, 0};
        rc = meta_number(&st, "data_rng", &u, NULL, e);
        ts->data_rng = u;
        for (const char *c = ts->sources; rc == 0 && c; c = strchr(c + 1, ','), ts->nsrc++) {
            if (ts->nsrc == MAX_SOURCES) { rc = errorf(e, "%s: more than %d data sources", path, MAX_SOURCES); break; }
            char key[32];
            for (size_t j = 0; j < 3 && rc == 0; j++) {
                snprintf(key, sizeof key, "data_%s_%zu", POS_FIELDS[j], ts->nsrc);
                rc = meta_number(&st, key, &p[j], NULL, e);
            }
            ts->src_pos[ts->nsrc] = (DataPos){p[0], p[1], p[2], 0};
        }
    }
    size_t shape[1] = {opt->num_params};
    if (rc == 0) rc = safetensors_read_f32(&st, "adamw.m", shape, 1, opt->m, e);
    if (rc == 0) rc = safetensors_read_f32(&st, "adamw.v", shape, 1, opt->v, e);
    safetensors_close(&st);
    if (rc) return -1;
    ts->step = (size_t)v[0];
    ts->tokens = v[1];
    opt->t = (size_t)v[2];
    ts->data_pos = (DataPos){v[3], v[4], v[5], 0};
    return 0;
}

// Copies a small file (the tokenizer) through a temporary name.
static int copy_file(const char *from, const char *to, Err *e) {
    char *text, jerr[256], tmp[4200];
    size_t len;
    if (read_file(from, &text, &len, jerr, sizeof jerr)) return errorf(e, "%s: %s", from, jerr);
    path_of(tmp, sizeof tmp, "%s.tmp", to);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    free(text);
    if (!ok || rename(tmp, to)) { remove(tmp); return errorf(e, "%s: cannot write", to); }
    return 0;
}

// Removes a checkpoint directory: its files, then itself (checkpoints hold no subdirectories).
static int remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *ent;
    char path[4400];
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        path_of(path, sizeof path, "%s/%s", dir, ent->d_name);
        remove(path);
    }
    closedir(d);
    return rmdir(dir);
}

// A checkpoint of a run: RUN/ckpt-00000100/ is written under a temporary name and renamed when complete, then the
// symbolic link RUN/latest is replaced atomically (rename of a new link). Older checkpoints beyond `keep` go.
static int run_checkpoint(const char *run, const Falcon *m, const TrainOptions *o, const TrainState *ts,
                          const AdamW *opt, Err *e) {
    char tmp[4096], dir[4096], name[64], link_tmp[4200], link[4200], tok[4200];
    snprintf(name, sizeof name, "ckpt-%08zu", ts->step);
    path_of(dir, sizeof dir, "%s/%s", run, name);
    path_of(tmp, sizeof tmp, "%s/.tmp-%s", run, name);
    if (falcon_save(m, tmp, e) || train_state_save(tmp, o, ts, opt, e)) return -1;
    if (o->tokenizer) {
        path_of(tok, sizeof tok, "%s/tokenizer.json", tmp);
        if (copy_file(o->tokenizer, tok, e)) return -1;
    }
    // a checkpoint of the same step from an earlier, interrupted run is replaced
    char old[4200];
    path_of(old, sizeof old, "%s/.old-%s", run, name);
    if (rename(dir, old) == 0 && remove_dir(old)) return errorf(e, "%s: cannot remove", old);
    if (rename(tmp, dir)) return errorf(e, "%s: cannot rename into place: %s", dir, strerror(errno));
    path_of(link_tmp, sizeof link_tmp, "%s/.latest.tmp", run);
    path_of(link, sizeof link, "%s/latest", run);
    remove(link_tmp);
    if (symlink(name, link_tmp) || rename(link_tmp, link)) return errorf(e, "%s: cannot update: %s", link, strerror(errno));
    if (o->keep && ts->step >= o->keep * o->save_every && o->save_every) {
        // remove checkpoints older than the `keep` most recent multiples of save_every
        size_t oldest = ts->step - o->keep * o->save_every;
        for (size_t s = oldest; ; s -= o->save_every) {
            char od[4200];
            path_of(od, sizeof od, "%s/ckpt-%08zu", run, s);
            if (access(od, F_OK)) break;
            if (remove_dir(od)) return errorf(e, "%s: cannot remove", od);
            if (s < o->save_every) break;
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Evaluation: zero-shot multiple choice, as the Falcon paper's ablations judge models (HellaSwag, PIQA, ARC, ...).
// A task is JSONL, one item per line: {"context": "...", "choices": ["...", "..."], "label": 1}. Each choice is
// scored by the summed log-likelihood of its tokens after the context; the prediction is the best choice. The
// two scores are those of the EleutherAI lm-evaluation-harness:
//   acc       the best raw sum ll_c
//   acc_norm  the best ll_c / chars_c, chars_c = the choice's length in characters (Unicode code points, what
//             Python's len counts), which removes the advantage of short choices (their sums have fewer terms)

typedef struct {
    int *ctx;            // (nctx) context tokens
    size_t nctx;
    int **choice;        // (nchoices) token lists
    size_t *nchoice;
    size_t *chars;       // each choice's length in characters
    size_t nchoices;
    size_t label;
} McItem;

static void mcitem_free(McItem *it) {
    for (size_t c = 0; c < it->nchoices; c++) free(it->choice[c]);
    free(it->choice);
    free(it->nchoice);
    free(it->chars);
    free(it->ctx);
}

// Characters of UTF-8 text: every byte but the continuation bytes 10xxxxxx starts one.
static size_t utf8_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

// One continuation to score after its context.
typedef struct {
    const int *ctx, *cont;
    size_t nctx, ncont;
} LlRequest;

// The length of a request's row: context then continuation, cut on the left to the model's context.
static size_t llrequest_len(const LlRequest *r, size_t maxT) {
    size_t len = r->nctx + r->ncont;
    return len < maxT ? len : maxT;
}

// Token k of context then continuation.
static int llrequest_token(const LlRequest *r, size_t k) { return k < r->nctx ? r->ctx[k] : r->cont[k - r->nctx]; }

// ll[i] = log p(cont_i | ctx_i), the sum over the continuation's tokens of their log-probability, for n requests
// in one forward pass of n rows. Each row is padded on the right to the longest: attention is causal, so the
// padding changes nothing before it, and its targets are -100. The log-probability of target y at position t is
// logit_y - logsumexp(logits), minus the position's cross-entropy, which the forward pass leaves in A_LOSSES.
static void loglikelihoods(Falcon *m, const LlRequest *r, size_t n, double *ll) {
    size_t maxT = m->config.maxT, T = 0;
    for (size_t i = 0; i < n; i++) T = llrequest_len(&r[i], maxT) > T ? llrequest_len(&r[i], maxT) : T;
    int *seq = xcalloc(n * T, sizeof(int)), *tg = xcalloc(n * T, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        size_t len = r[i].nctx + r[i].ncont, skip = len - llrequest_len(&r[i], maxT);
        for (size_t t = 0; t < T; t++) {
            size_t k = skip + t;  // the token's index in context + continuation
            if (k < len) seq[i * T + t] = llrequest_token(&r[i], k);
            // position k predicts token k+1: only the continuation's tokens are counted
            tg[i * T + t] = k + 1 >= r[i].nctx && k + 1 < len ? llrequest_token(&r[i], k + 1) : -100;
        }
    }
    falcon_forward(m, seq, tg, NULL, NULL, n, T, FWD_LOSS);
    const float *losses = m->acts[A_LOSSES];
    for (size_t i = 0; i < n; i++) {
        ll[i] = 0.0;
        for (size_t t = i * T; t < (i + 1) * T; t++) ll[i] -= (double)losses[t];
    }
    free(seq);
    free(tg);
}

// Tokens (rows x padded length) per forward pass of eval --task, by default: enough for the parallel loops to
// share out (with 2 threads the nano model scores a task 2x faster than one row at a time), few enough that the
// activations stay small: each pass of a new shape allocates them afresh, and at 2048 tokens the kernel's
// zeroing of fresh pages cost the nano model 20% more time.
#define MC_BATCH_TOKENS 512

// A row of eval --task: one choice of one item.
typedef struct {
    LlRequest req;
    size_t len;    // its length, the sort key
    size_t index;  // its place in the task: the items in order, each item's choices in order
} McRow;

static int mcrow_longer_first(const void *a, const void *b) {
    const McRow *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

// Scores every item; returns acc and acc_norm. Every choice of every item is one row. The rows are sorted by
// length, longest first, so that the rows of a forward pass have nearly the same length and little padding (and
// the first pass needs the most memory: a lack of it shows at once); consecutive rows go through the model
// together, as many as fit batch_tokens (at least one). Neither the order nor the batching changes a score: each
// row is computed alone. With a progress line (NULL: none), it counts the rows (choices) scored.
static void mc_evaluate(Falcon *m, const McItem *items, size_t n, size_t batch_tokens, Progress *p, double *acc,
                        double *acc_norm) {
    size_t rows = 0, maxT = m->config.maxT;
    for (size_t i = 0; i < n; i++) rows += items[i].nchoices;
    McRow *row = xmalloc(rows * sizeof(McRow));
    for (size_t i = 0, r = 0; i < n; i++)
        for (size_t c = 0; c < items[i].nchoices; c++, r++) {
            row[r].req = (LlRequest){items[i].ctx, items[i].choice[c], items[i].nctx, items[i].nchoice[c]};
            row[r].len = llrequest_len(&row[r].req, maxT);
            row[r].index = r;
        }
    qsort(row, rows, sizeof(McRow), mcrow_longer_first);
    LlRequest *req = xmalloc(rows * sizeof(LlRequest));
    double *sorted = xmalloc(rows * sizeof(double)), *ll = xmalloc(rows * sizeof(double));
    for (size_t r = 0; r < rows; r++) req[r] = row[r].req;
    for (size_t a = 0; a < rows;) {
        // the first row is the longest, and the pass is padded to its length
        size_t B = batch_tokens / row[a].len ? batch_tokens / row[a].len : 1;
        size_t b = a + B < rows ? a + B : rows;
        loglikelihoods(m, req + a, b - a, sorted + a);
        a = b;
        if (p) progress_update(p, (double)a);
    }
    for (size_t r = 0; r < rows; r++) ll[row[r].index] = sorted[r];
    size_t hits = 0, hits_norm = 0;
    for (size_t i = 0, r = 0; i < n; r += items[i++].nchoices) {
        const McItem *it = &items[i];
        const double *l = ll + r;
        size_t best = 0, best_norm = 0;
        for (size_t c = 1; c < it->nchoices; c++) {
            if (l[c] > l[best]) best = c;
            if (l[c] / (double)it->chars[c] > l[best_norm] / (double)it->chars[best_norm]) best_norm = c;
        }
        hits += best == it->label;
        hits_norm += best_norm == it->label;
    }
    free(row);
    free(req);
    free(sorted);
    free(ll);
    *acc = n ? (double)hits / (double)n : 0.0;
    *acc_norm = n ? (double)hits_norm / (double)n : 0.0;
}

// Token ids of text, as ints.
static int *encode_ints(Tokenizer *tok, const char *text, size_t len, size_t *n) {
    TokenIds ids = {0};
    if (tokenizer_encode(tok, text, len, &ids)) die("out of memory");
    int *out = xmalloc((ids.len ? ids.len : 1) * sizeof(int));
    for (size_t i = 0; i < ids.len; i++) out[i] = ids.ids[i];
    *n = ids.len;
    token_ids_free(&ids);
    return out;
}

// Reads a multiple-choice task. Errors name the file, the line and the problem.
static McItem *mctask_load(const char *path, Tokenizer *tok, size_t V, size_t *n, Err *e) {
    char *text, jerr[256];
    size_t len;
    if (read_file(path, &text, &len, jerr, sizeof jerr)) { errorf(e, "%s: %s", path, jerr); return NULL; }
    McItem *items = NULL;
    size_t count = 0, line = 0;
    for (size_t a = 0; a < len;) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        line++;
        Json j;
        size_t k = a;
        while (k < b && (text[k] == ' ' || text[k] == '\r' || text[k] == '\t')) k++;
        if (k == b) { a = b + 1; continue; }  // blank line
        if (json_parse(text + a, b - a, &j, jerr, sizeof jerr)) { errorf(e, "%s: line %zu: %s", path, line, jerr); break; }
        const Json *ctx = json_get(&j, "context"), *ch = json_get(&j, "choices"), *lab = json_get(&j, "label");
        int ok = ctx && ctx->type == JSON_STRING && ch && ch->type == JSON_ARRAY && ch->count >= 2 && lab &&
                 lab->type == JSON_NUMBER && lab->number >= 0 && lab->number == floor(lab->number) &&
                 lab->number < (double)ch->count;
        for (size_t c = 0; ok && c < ch->count; c++) ok = ch->items[c].type == JSON_STRING && ch->items[c].len > 0;
        if (!ok) {
            json_free(&j);
            errorf(e, "%s: line %zu: need \"context\" (string), \"choices\" (2+ non-empty strings) and \"label\" (an index into choices)", path, line);
            break;
        }
        items = realloc(items, (count + 1) * sizeof(McItem));
        McItem *it = &items[count++];
        it->ctx = encode_ints(tok, ctx->str, ctx->len, &it->nctx);
        it->nchoices = ch->count;
        it->choice = xmalloc(ch->count * sizeof(int *));
        it->nchoice = xmalloc(ch->count * sizeof(size_t));
        it->chars = xmalloc(ch->count * sizeof(size_t));
        for (size_t c = 0; c < ch->count; c++) {
            it->choice[c] = encode_ints(tok, ch->items[c].str, ch->items[c].len, &it->nchoice[c]);
            it->chars[c] = utf8_chars(ch->items[c].str, ch->items[c].len);
            if (it->chars[c] == 0) it->chars[c] = 1;  // stray continuation bytes (kept raw) still make a choice
            for (size_t t = 0; t < it->nchoice[c]; t++)
                if ((size_t)it->choice[c][t] >= V) errorf(e, "%s: line %zu: the tokenizer's ids exceed the model's vocabulary %zu", path, line, V);
        }
        it->label = (size_t)lab->number;
        json_free(&j);
        if (it->nctx == 0) errorf(e, "%s: line %zu: empty context", path, line);
        if (e->msg[0]) break;
        a = b + 1;
    }
    free(text);
    if (e->msg[0] == 0 && count == 0) errorf(e, "%s: no items", path);
    if (e->msg[0]) {
        for (size_t i = 0; i < count; i++) mcitem_free(&items[i]);
        free(items);
        return NULL;
    }
    *n = count;
    return items;
}

// Makes a multiple-choice task from held-out documents (JSONL with "text"): for a sentence of 8 words or more, the
// context is the document up to the middle of that sentence, the right choice is the sentence's true ending, and
// the wrong ones are endings of sentences taken from other documents. A model that has learnt the language of the
// documents prefers endings that fit; chance is one in the number of choices.
typedef struct {
    char *s;
    size_t len;
} Str;

static int mctask_make(const char *corpus, const char *out, size_t nitems, size_t nchoices, uint64_t seed, Err *e) {
    char *text, jerr[256];
    size_t len;
    if (read_file(corpus, &text, &len, jerr, sizeof jerr)) return errorf(e, "%s: %s", corpus, jerr);
    Str *docs = NULL;
    size_t ndocs = 0;
    for (size_t a = 0, line = 1; a < len; line++) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        Json j;
        if (b > a && json_parse(text + a, b - a, &j, jerr, sizeof jerr) == 0) {
            const Json *t = json_get(&j, "text");
            if (t && t->type == JSON_STRING && t->len > 0) {
                docs = realloc(docs, (ndocs + 1) * sizeof(Str));
                docs[ndocs].s = strdup(t->str);
                docs[ndocs++].len = t->len;
            }
            json_free(&j);
        } else if (b > a) {
            free(text);
            return errorf(e, "%s: line %zu: %s", corpus, line, jerr);
        }
        a = b + 1;
    }
    free(text);
    if (ndocs < 2) return errorf(e, "%s: need at least 2 documents with a \"text\"", corpus);
    // sentences: spans ending in ". " or ".\n", with their word midpoint
    typedef struct { size_t doc, start, mid, end; } Sent;
    Sent *sents = NULL;
    size_t nsents = 0;
    for (size_t d = 0; d < ndocs; d++) {
        const char *s = docs[d].s;
        size_t start = 0;
        for (size_t i = 0; i < docs[d].len; i++) {
            if (s[i] != '.' || (i + 1 < docs[d].len && s[i + 1] != ' ' && s[i + 1] != '\n')) continue;
            size_t words = 0, mid = 0;
            for (size_t k = start; k <= i; k++) words += s[k] == ' ' && k > start;
            if (words >= 7) {
                size_t half = (words + 1) / 2, seen = 0;
                for (size_t k = start; k <= i && !mid; k++)
                    if (s[k] == ' ' && k > start && ++seen == half) mid = k;
                sents = realloc(sents, (nsents + 1) * sizeof(Sent));
                sents[nsents++] = (Sent){d, start, mid, i + 1};
            }
            start = i + 1;
            while (start < docs[d].len && (s[start] == ' ' || s[start] == '\n')) start++;
        }
    }
    char tmp[4200];
    path_of(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) return errorf(e, "%s: cannot create: %s", tmp, strerror(errno));
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 7;
    size_t made = 0;
    for (size_t tries = 0; made < nitems && nsents > nchoices && tries < 100 * nitems; tries++) {
        const Sent *q = &sents[rng_next(&rng) % nsents];
        size_t label = rng_next(&rng) % nchoices;
        const Sent *pick[16];
        int ok = 1;
        for (size_t c = 0; c < nchoices && ok; c++) {
            pick[c] = c == label ? q : &sents[rng_next(&rng) % nsents];
            if (c != label) ok = pick[c]->doc != q->doc;
        }
        if (!ok) continue;
        const char *s = docs[q->doc].s;
        fprintf(f, "{\"context\": ");
        json_write_string(f, s, q->mid);
        fprintf(f, ", \"choices\": [");
        for (size_t c = 0; c < nchoices; c++) {
            fprintf(f, "%s", c ? ", " : "");
            json_write_string(f, docs[pick[c]->doc].s + pick[c]->mid, pick[c]->end - pick[c]->mid);
        }
        fprintf(f, "], \"label\": %zu}\n", label);
        made++;
    }
    int bad = fclose(f) != 0;
    for (size_t d = 0; d < ndocs; d++) free(docs[d].s);
    free(docs);
    free(sents);
    if (bad || made == 0) { remove(tmp); return errorf(e, "%s: %s", out, bad ? "write failed" : "no usable sentences"); }
    if (rename(tmp, out)) return errorf(e, "%s: cannot rename into place: %s", out, strerror(errno));
    return 0;
}

// ----------------------------------------------------------------------------
// Sampling: one token at a time with a KV cache. Each layer caches only its NKV key/value heads (one for the
// multi-query 7B), which is the point of multi-query attention: a cache NH/NKV times smaller.

typedef struct {
    const Falcon *m;
    float *k, *v;                  // (L, maxT, NKV, HS) each: rotated keys and values of every position so far
    float *x, *ln1, *ln2, *qkv, *atty, *fch, *fchg, *att, *lnf, *logits;  // one token's activations
    float mean, rstd;
} Decoder;

static void decoder_build(Decoder *d, const Falcon *m) {
    const Config *c = &m->config;
    size_t kv = c->L * c->maxT * c->NKV * c->HS;
    d->m = m;
    d->k = xmalloc(2 * kv * sizeof(float));
    d->v = d->k + kv;
    size_t C = c->C, sizes[10] = {C, C, C, qkv_dim(c), C, fc_dim(c), c->FF, c->maxT, C, c->V};
    size_t total = 0;
    for (int i = 0; i < 10; i++) total += sizes[i];
    float *p = xmalloc(total * sizeof(float));
    float **dst[10] = {&d->x, &d->ln1, &d->ln2, &d->qkv, &d->atty, &d->fch, &d->fchg, &d->att, &d->lnf, &d->logits};
    for (int i = 0; i < 10; i++) { *dst[i] = p; p += sizes[i]; }
}

static void decoder_free(Decoder *d) {
    free(d->k);
    free(d->x);
}

// Feeds the token at position pos (all earlier positions already fed) and returns the next-token logits (V).
// The same layers as falcon_forward with B = T = 1, attention reading the cache.
static const float *decoder_step(Decoder *d, int token, int pos) {
    const Falcon *m = d->m;
    const Config *c = &m->config;
    size_t C = c->C, HS = c->HS, QKV = qkv_dim(c), FF = c->FF, FC = fc_dim(c), NKV = c->NKV, qpk = c->NH / NKV;
    float *const *p = m->params.t;
    float scale = 1.0f / sqrtf((float)HS);
    encoder_forward(d->x, &token, p[P_WTE], 1, C);
    for (size_t l = 0; l < c->L; l++) {
        layernorm_forward(d->ln1, &d->mean, &d->rstd, d->x, p[P_LN1W] + l * C, p[P_LN1B] + l * C, 1, C, c->eps);
        const float *ln2 = c->num_ln == 2 ? d->ln2 : d->ln1;
        if (c->num_ln == 2 && !c->sequential)
            layernorm_forward(d->ln2, &d->mean, &d->rstd, d->x, p[P_LN2W] + l * C, p[P_LN2B] + l * C, 1, C, c->eps);
        matmul_forward(d->qkv, d->ln1, p[P_QKVW] + l * QKV * C, NULL, 1, C, QKV);
        bias_forward(d->qkv, layer_bias(c, p[P_QKVB], l, QKV), 1, QKV);
        rope_forward(d->qkv, &pos, m->rope_cos, m->rope_sin, c, 1, 1.0f);
        float *kc = d->k + l * c->maxT * NKV * HS, *vc = d->v + l * c->maxT * NKV * HS;  // (maxT, NKV, HS)
        for (size_t g = 0; g < NKV; g++) {
            memcpy(kc + ((size_t)pos * NKV + g) * HS, d->qkv + k_off(c, g), HS * sizeof(float));
            memcpy(vc + ((size_t)pos * NKV + g) * HS, d->qkv + v_off(c, g), HS * sizeof(float));
        }
        for (size_t h = 0; h < c->NH; h++) {
            size_t g = h / qpk;
            const float *q = d->qkv + q_off(c, h);
            float mx = -INFINITY, sum = 0.0f;
            for (int t = 0; t <= pos; t++) {
                const float *k = kc + ((size_t)t * NKV + g) * HS;
                float s = 0.0f;
                for (size_t i = 0; i < HS; i++) s += q[i] * k[i];
                d->att[t] = s * scale + (c->alibi ? m->alibi[(size_t)t * c->NH + h] : 0.0f);
                if (d->att[t] > mx) mx = d->att[t];
            }
            for (int t = 0; t <= pos; t++) sum += d->att[t] = expf(d->att[t] - mx);
            float *o = d->atty + h * HS;
            memset(o, 0, HS * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *v = vc + ((size_t)t * NKV + g) * HS;
                float a = d->att[t] / sum;
                for (size_t i = 0; i < HS; i++) o[i] += a * v[i];
            }
        }
        matmul_forward(d->x, d->atty, p[P_ATTPROJW] + l * C * C, d->x, 1, C, C);
        bias_forward(d->x, layer_bias(c, p[P_ATTPROJB], l, C), 1, C);
        // sequential blocks: the MLP's LayerNorm reads x with attention's output added
        if (c->sequential)
            layernorm_forward(d->ln2, &d->mean, &d->rstd, d->x, p[P_LN2W] + l * C, p[P_LN2B] + l * C, 1, C, c->eps);
        matmul_forward(d->fch, ln2, p[P_FCW] + l * FC * C, NULL, 1, C, FC);
        bias_forward(d->fch, layer_bias(c, p[P_FCB], l, FC), 1, FC);
        if (c->swiglu) swiglu_forward(d->fchg, d->fch, 1, FF);
        else gelu_forward(d->fchg, d->fch, FF);
        matmul_forward(d->x, d->fchg, p[P_FCPROJW] + l * C * FF, d->x, 1, FF, C);
        bias_forward(d->x, layer_bias(c, p[P_FCPROJB], l, C), 1, C);
    }
    layernorm_forward(d->lnf, &d->mean, &d->rstd, d->x, p[P_LNFW], p[P_LNFB], 1, C, c->eps);
    matmul_forward(d->logits, d->lnf, p[P_WTE], NULL, 1, C, c->V);
    return d->logits;
}

// Draws a token from softmax(logits / temperature) restricted to the top_k most likely tokens (0 = all) and then
// to the smallest set whose probability reaches top_p (1 = all). temperature 0 takes the most likely token.
typedef struct {
    float p;
    int id;
} ProbId;

static int cmp_prob_desc(const void *a, const void *b) {
    float x = ((const ProbId *)a)->p, y = ((const ProbId *)b)->p;
    return x < y ? 1 : x > y ? -1 : ((const ProbId *)a)->id - ((const ProbId *)b)->id;
}

static int sample_token(const float *logits, size_t V, float temperature, size_t top_k, float top_p, ProbId *buf,
                        uint64_t *rng) {
    size_t best = 0;
    for (size_t v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    if (temperature <= 0.0f) return (int)best;
    float sum = 0.0f;
    for (size_t v = 0; v < V; v++) {
        buf[v].p = expf((logits[v] - logits[best]) / temperature);
        buf[v].id = (int)v;
        sum += buf[v].p;
    }
    qsort(buf, V, sizeof(ProbId), cmp_prob_desc);
    size_t n = top_k && top_k < V ? top_k : V;
    float kept = 0.0f;
    size_t cut = 0;
    while (cut < n) {
        kept += buf[cut++].p;
        if (kept >= top_p * sum) break;
    }
    float r = rng_uniform(rng) * kept, acc = 0.0f;
    for (size_t i = 0; i < cut; i++) {
        acc += buf[i].p;
        if (r < acc) return buf[i].id;
    }
    return buf[cut - 1].id;
}

// What to generate: at most max_tokens, drawn by sample_token with these settings from a generator seeded by seed.
typedef struct {
    size_t max_tokens, top_k;
    float temperature, top_p;
    uint64_t seed;
} SampleSettings;

// Feeds the prompt (empty: start as a document starts, after <|endoftext|>) and generates until max_tokens, the
// end of the context, or <|endoftext|>. emit receives the bytes of each new token as soon as it is drawn.
// Returns the number of tokens generated, or -1 when an empty prompt has no <|endoftext|> to start from.
static long generate(const Falcon *m, Tokenizer *tok, const char *prompt, const SampleSettings *st,
                     void (*emit)(void *ctx, const char *bytes, size_t len), void *ctx) {
    TokenIds ids = {0};
    if (tokenizer_encode(tok, prompt, strlen(prompt), &ids)) die("out of memory");
    int eot = tokenizer_token_id(tok, "<|endoftext|>", 13);
    if (ids.len == 0) {
        if (eot < 0) return -1;
        ids.ids = realloc(ids.ids, sizeof(int32_t));
        ids.ids[ids.len++] = eot;
    }
    Decoder d;
    decoder_build(&d, m);
    ProbId *buf = xmalloc(m->config.V * sizeof(ProbId));
    uint64_t rng = st->seed * 0x9E3779B97F4A7C15ULL + 1;
    const float *logits = NULL;
    size_t pos = 0, made = 0;
    for (; pos < ids.len && pos < m->config.maxT; pos++) logits = decoder_step(&d, ids.ids[pos], (int)pos);
    for (; made < st->max_tokens && pos < m->config.maxT; made++, pos++) {
        int next = sample_token(logits, m->config.V, st->temperature, st->top_k, st->top_p, buf, &rng);
        if (next == eot) break;
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, next, &len);
        if (bytes) emit(ctx, bytes, len);
        logits = decoder_step(&d, next, (int)pos);
    }
    free(buf);
    decoder_free(&d);
    token_ids_free(&ids);
    return (long)made;
}

// ----------------------------------------------------------------------------
// The training loop: batches from the data loader, gradient accumulation with the batch ramp-up, AdamW, NaN
// guard, evaluation, samples, checkpoints, the log and a summary.

// One SVG line chart of the training and validation loss against tokens, from RUN/log.jsonl, in plain C.
// Axis labels for token counts: 1.2M, 350k, 900.
static void format_count(char *buf, size_t n, double v) {
    if (v >= 1e6) snprintf(buf, n, "%.1fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, n, "%.0fk", v / 1e3);
    else snprintf(buf, n, "%.0f", v);
}

static int plot_write(const char *run, const char *outpath, Err *e) {
    char logpath[4200], jerr[256], label[32];
    path_of(logpath, sizeof logpath, "%s/log.jsonl", run);
    char *text;
    size_t len, n[2] = {0, 0};
    if (read_file(logpath, &text, &len, jerr, sizeof jerr)) return errorf(e, "%s: %s", logpath, jerr);
    double *x[2] = {xmalloc(len * sizeof(double)), xmalloc(len * sizeof(double))};
    double *y[2] = {xmalloc(len * sizeof(double)), xmalloc(len * sizeof(double))};
    for (size_t a = 0, line = 1; a < len; line++) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        Json j;
        if (b > a) {
            if (json_parse(text + a, b - a, &j, jerr, sizeof jerr)) {
                free(text);
                return errorf(e, "%s: line %zu: %s", logpath, line, jerr);
            }
            const Json *tk = json_get(&j, "tokens"), *l = json_get(&j, "loss"), *vl = json_get(&j, "val_loss");
            int k = l ? 0 : vl ? 1 : -1;
            const Json *yv = l ? l : vl;
            if (k >= 0 && tk && tk->type == JSON_NUMBER && yv->type == JSON_NUMBER && isfinite(yv->number)) {
                x[k][n[k]] = tk->number;
                y[k][n[k]++] = yv->number;
            }
            json_free(&j);
        }
        a = b + 1;
    }
    free(text);
    if (!n[0]) {
        for (int k = 0; k < 2; k++) { free(x[k]); free(y[k]); }
        return errorf(e, "%s: no training steps logged", logpath);
    }
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n[k]; i++) {
            if (x[k][i] > x1) x1 = x[k][i];
            if (y[k][i] < y0) y0 = y[k][i];
            if (y[k][i] > y1) y1 = y[k][i];
        }
    y0 = floor(y0 * 2) / 2;
    y1 = ceil(y1 * 2) / 2;
    if (y1 <= y0) y1 = y0 + 1;
    const double W = 640, H = 400, L = 60, R = 20, TOP = 30, BOT = 50;
    char tmp[4300];
    path_of(tmp, sizeof tmp, "%s.tmp", outpath);
    FILE *f = fopen(tmp, "w");
    if (!f) return errorf(e, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    #define PX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
    #define PY(v) (H - BOT - ((v) - y0) / (y1 - y0) * (H - TOP - BOT))
    for (int t = 0; t <= 5; t++) {  // grid and tick labels
        double yv = y0 + (y1 - y0) * t / 5, xv = x0 + (x1 - x0) * t / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(yv), W - R, PY(yv));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L - 6, PY(yv) + 4, yv);
        format_count(label, sizeof label, xv);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", PX(xv), H - BOT + 18, label);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", L, TOP,
            W - L - R, H - TOP - BOT);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">tokens</text>\n", (L + W - R) / 2, H - 12);
    fprintf(f, "<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 14 %.1f)\" text-anchor=\"middle\">loss</text>\n",
            (TOP + H - BOT) / 2, (TOP + H - BOT) / 2);
    const char *colour[2] = {"#1f77b4", "#d62728"}, *name[2] = {"train", "validation"};
    for (int k = 0; k < 2; k++) {
        if (!n[k]) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", colour[k], k ? "2" : "1");
        for (size_t i = 0; i < n[k]; i++) fprintf(f, "%.1f,%.1f ", PX(x[k][i]), PY(y[k][i]));
        fprintf(f, "\"/>\n");
        for (size_t i = 0; k == 1 && i < n[k]; i++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(x[k][i]), PY(y[k][i]), colour[k]);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 150 + 80.0 * k, 20, colour[k], name[k]);
    }
    #undef PX
    #undef PY
    fprintf(f, "</svg>\n");
    for (int k = 0; k < 2; k++) { free(x[k]); free(y[k]); }
    if (fclose(f) || rename(tmp, outpath)) return errorf(e, "%s: cannot write", outpath);
    return 0;
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

// Training FLOPs per token: 6 per parameter (forward 2, backward 4; the tied LM head counts once, as its matmul
// costs what its parameters say) plus causal attention, 6 L C T (scores and weighted values over T/2 keys on
// average, forward and backward). The switches need no term of their own: SwiGLU's three matrices and full
// multi-head's larger QKV are in the parameter count, and the attention term depends on NH HS = C alone; biases,
// ALiBi's additions and SwiGLU's products are elementwise, as GELU and the LayerNorms are, and not counted either.
// visible scales the attention term for packed conversation trees (attn_visible_share; 1 for plain text).
static double flops_per_token(const Falcon *m, size_t T, double visible) {
    const Config *c = &m->config;
    return 6.0 * (double)m->num_params + 6.0 * (double)c->L * (double)c->C * (double)T * visible;
}

// The share of causal attention's (query, key) pairs that a batch's tree mask keeps, which is the share of the
// causal attention FLOPs the flash kernels do (they skip hidden tiles; the few hidden pairs inside mixed tiles
// are not counted as work). Key j is visible from the queries j..span_end[j] (attn_visible), so a row of T has
// sum_j (span_end[j] - j + 1) pairs of the causal T (T + 1) / 2; plain text (span_end = T - 1) gives 1.
static double attn_visible_share(const int *span_end, size_t B, size_t T) {
    double pairs = 0.0;
    for (size_t n = 0; n < B * T; n++) pairs += (double)(span_end[n] - (int)(n % T) + 1);
    return pairs / ((double)B * (double)T * (double)(T + 1) / 2.0);
}

// Micro-batches in the optimizer step that starts after `tokens` training tokens: with a ramp, the batch grows
// linearly from one micro-batch to `accum` over the first ramp_tokens tokens (the paper ramps its batch size).
static size_t accum_at(const TrainOptions *o, uint64_t tokens) {
    if (!o->ramp_tokens || tokens >= o->ramp_tokens) return o->accum;
    size_t a = 1 + (size_t)((double)(o->accum - 1) * (double)tokens / (double)o->ramp_tokens);
    return a < o->accum ? a : o->accum;
}

// One batch as the loader gives it (data.h's dataloader_next_batch), four (B, T) arrays: the token ids, the id
// each position predicts (-100: none), RoPE position ids and the attention spans. Plain text is the special case
// targets = the next token, pos = t, span_end = T - 1; packed conversation trees use all four (docs/trees.md).
typedef struct {
    int32_t *inputs, *targets, *pos, *span_end;
    int32_t *mem;
    size_t B, T;
} Batch;

static void batch_build(Batch *b, size_t B, size_t T) {
    b->mem = xmalloc(4 * B * T * sizeof(int32_t));
    b->inputs = b->mem;
    b->targets = b->inputs + B * T;
    b->pos = b->targets + B * T;
    b->span_end = b->pos + B * T;
    b->B = B;
    b->T = T;
}

static void batch_free(Batch *b) { free(b->mem); }

// The next batch of dl into b; 0 at the end of a validation pass.
static int batch_next(Batch *b, DataLoader *dl) {
    return dataloader_next_batch(dl, b->inputs, b->targets, b->pos, b->span_end);
}

// The forward pass of the model on a batch (flags as falcon_forward's); returns its loss.
static float falcon_forward_batch(Falcon *m, const Batch *b, int flags) {
    return falcon_forward(m, b->inputs, b->targets, b->pos, b->span_end, b->B, b->T, flags);
}

// Mean cross-entropy over (up to) `batches` validation batches, the reader rewound first. With a progress line
// (NULL: none), it counts the tokens evaluated.
static float evaluate(Falcon *m, DataLoader *val, size_t batches, Batch *bt, Progress *p) {
    dataloader_rewind(val);
    double sum = 0.0;
    size_t n = 0;
    float zc = m->zloss_coef;
    m->zloss_coef = 0.0f;
    while (n < batches && batch_next(bt, val)) {
        falcon_forward_batch(m, bt, FWD_LOSS);
        sum += m->loss_ce;
        n++;
        if (p) progress_update(p, (double)(n * bt->B * bt->T));
    }
    m->zloss_coef = zc;
    return n ? (float)(sum / (double)n) : NAN;
}

// The shard files DIR/<prefix>*.bin, sorted by name (glob sorts).
static char **list_shards(const char *dir, const char *prefix, size_t *n, Err *e) {
    char pattern[4200];
    path_of(pattern, sizeof pattern, "%s/%s*.bin", dir, prefix);
    glob_t g;
    *n = 0;
    if (glob(pattern, 0, NULL, &g) != 0) {
        errorf(e, "%s: no %s*.bin shards (make them with ./data prepare)", dir, prefix);
        return NULL;
    }
    char **out = xmalloc(g.gl_pathc * sizeof(char *));
    for (size_t i = 0; i < g.gl_pathc; i++) out[i] = strdup(g.gl_pathv[i]);
    *n = g.gl_pathc;
    globfree(&g);
    return out;
}

static void free_list(char **l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

// The entropy (nats) of the token frequencies of a pass over the validation data: the loss of the best model that
// ignores context. A model that has learnt anything beyond word frequencies ends clearly below it.
static double unigram_entropy(DataLoader *val, size_t V, Batch *bt) {
    double *count = xcalloc(V, sizeof(double)), total = 0.0, h = 0.0;
    dataloader_rewind(val);
    while (batch_next(bt, val))
        for (size_t i = 0; i < bt->B * bt->T; i++) {  // the targets of the batch
            int32_t id = bt->targets[i];
            if (id >= 0 && (size_t)id < V) { count[id] += 1.0; total += 1.0; }
        }
    for (size_t v = 0; v < V; v++)
        if (count[v] > 0) h -= count[v] / total * log(count[v] / total);
    free(count);
    return h;
}

// Training data: shard files and source weights (train's --data, --source and --val).
//   DIR                 its train*.bin shards, or (a directory made by ./data mix) its mix_*.bin
//   FILE                one shard file
//   A,B,...             several directories or files, read as one source
//   NAME=WEIGHT=PATH,.. weighted sources, PATH a directory or a file, named as ./data mix names them (also
//                       --source NAME=WEIGHT=PATH, repeated)
// One source is read by one loader of B rows. Weighted sources have a loader each, of one row: every row of
// every batch comes from source s with probability w_s / sum of the weights, drawn by a generator seeded by
// --seed, so a batch holds the sources in their shares on average (./data mix fixes the shares in the shards
// instead). The state of a run stores the generator and each loader's position: a resume continues exactly.
// Validation: the val*.bin of every directory named, or --val's directories (val*.bin) and files.
typedef struct {
    char *name;          // weighted sources: the name; NULL for one unweighted source
    double weight;
    char **files;
    size_t nfiles;
    DataLoader *dl;
} DataSource;

typedef struct {
    DataSource src[MAX_SOURCES];
    size_t n;
    int weighted;
    double total_weight;
    uint64_t rng;              // weighted: draws the source of each row
    char sources[256];         // weighted: "name=weight,...", stored in the state and checked on resume
    char **val_files;          // NULL: no validation shards
    size_t nval;
    char dir[4096];            // the directory of the first path (for DIR/tokenizer.json)
} TrainData;

// Appends the shard files of one path to *files: a file itself, a directory's <prefix>*.bin, for training
// falling back to the mix_*.bin that ./data mix writes. Returns 0, or -1 with e.
static int path_shards(const char *path, int val, char ***files, size_t *n, Err *e) {
    struct stat st;
    if (stat(path, &st)) return errorf(e, "%s: cannot open: %s", path, strerror(errno));
    size_t k = 0;
    char **found = NULL;
    Err quiet = {{0}};
    if (!S_ISDIR(st.st_mode)) {
        found = xmalloc(sizeof(char *));
        found[k++] = strdup(path);
    } else if (val) {
        found = list_shards(path, "val", &k, &quiet);
    } else if (!(found = list_shards(path, "train", &k, &quiet)) && !(found = list_shards(path, "mix_", &k, &quiet))) {
        return errorf(e, "%s: no train*.bin or mix_*.bin shards (make them with ./data prepare or ./data mix)", path);
    }
    *files = realloc(*files, (*n + k + 1) * sizeof(char *));
    if (!*files) die("out of memory");
    for (size_t i = 0; i < k; i++) (*files)[(*n)++] = found[i];
    free(found);
    return 0;
}

// Splits a NAME=WEIGHT=PATH item (WEIGHT a positive number); 0 when the item is a plain path, -1 when NAME does
// not fit in name[nn].
static int source_item(const char *item, char *name, size_t nn, double *weight, const char **path) {
    const char *e1 = strchr(item, '='), *e2 = e1 ? strchr(e1 + 1, '=') : NULL;
    char *end;
    if (!e2 || e1 == item || memchr(item, ',', (size_t)(e1 - item))) return 0;
    *weight = strtod(e1 + 1, &end);
    if (end != e2 || !isfinite(*weight) || *weight <= 0) return 0;
    if ((size_t)(e1 - item) >= nn) return -1;
    snprintf(name, nn, "%.*s", (int)(e1 - item), item);
    *path = e2 + 1;
    return 1;
}

static void traindata_close(TrainData *d) {
    for (size_t s = 0; s < d->n; s++) {
        free(d->src[s].name);
        free_list(d->src[s].files, d->src[s].nfiles);
        if (d->src[s].dl) dataloader_close(d->src[s].dl);
    }
    free_list(d->val_files, d->nval);
    memset(d, 0, sizeof *d);
}

// Opens the training data of o (--data's comma-separated items, then every --source) for data-parallel rank
// `rank` of `world`. Returns 0, or -1 with a one-line e.
static int traindata_open(TrainData *d, const TrainOptions *o, int rank, int world, Err *e) {
    memset(d, 0, sizeof *d);
    char *list = strdup(o->data ? o->data : ""), *save = NULL, derr[512];
    const char *items[64 + MAX_SOURCES];
    size_t nitems = 0, plain = 0;
    int rc = 0;
    for (char *t = strtok_r(list, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
        if (nitems < 64) items[nitems++] = t;
        else rc = errorf(e, "train: --data names more than 64 paths");
    for (size_t i = 0; i < o->nsources; i++) items[nitems++] = o->sources[i];
    if (rc == 0 && !nitems) rc = errorf(e, "train: --data names no shards");
    for (size_t i = 0; i < nitems && rc == 0; i++) {
        char name[64];
        double w = 0;
        const char *path = items[i];
        int weighted = source_item(items[i], name, sizeof name, &w, &path);
        if (weighted < 0) {
            rc = errorf(e, "train: '%.40s...': a source name has %zu bytes at most", items[i], sizeof name - 1);
            break;
        }
        if (i == 0) {  // the first path's directory holds the tokenizer
            struct stat st;
            int isdir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
            const char *slash = strrchr(path, '/');
            if (isdir) snprintf(d->dir, sizeof d->dir, "%s", path);
            else snprintf(d->dir, sizeof d->dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
        }
        if ((weighted && plain) || (!weighted && d->weighted)) {
            rc = errorf(e, "train: '%s': give every source a weight (NAME=WEIGHT=PATH) or none", items[i]);
            break;
        }
        if (weighted && d->n == MAX_SOURCES) { rc = errorf(e, "train: more than %d data sources", MAX_SOURCES); break; }
        DataSource *src = &d->src[weighted ? d->n++ : 0];
        if (weighted) {
            src->name = strdup(name);
            src->weight = w;
            d->weighted = 1;
            d->total_weight += w;
            size_t len = strlen(d->sources);
            if ((size_t)snprintf(d->sources + len, sizeof d->sources - len, "%s%s=%g", len ? "," : "", name, w) >=
                sizeof d->sources - len) {
                rc = errorf(e, "train: the names of the data sources are too long (%zu bytes at most)", sizeof d->sources - 1);
                break;
            }
        } else {
            plain++;
            d->n = 1;
        }
        rc = path_shards(path, 0, &src->files, &src->nfiles, e);
        // validation: every directory's val*.bin, unless --val names them
        struct stat st;
        if (rc == 0 && !o->val && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rc = path_shards(path, 1, &d->val_files, &d->nval, e);
    }
    free(list);
    if (rc == 0 && o->val) {
        char *vl = strdup(o->val);
        for (char *t = strtok_r(vl, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            rc = path_shards(t, 1, &d->val_files, &d->nval, e);
        free(vl);
        if (rc == 0 && !d->nval) rc = errorf(e, "%s: no val*.bin shards", o->val);
    }
    // one loader of B rows for one source; one of single rows per weighted source
    for (size_t s = 0; s < d->n && rc == 0; s++) {
        DataSource *src = &d->src[s];
        src->dl = dataloader_open((const char *const *)src->files, src->nfiles, d->weighted ? 1 : o->B, o->T,
                                  o->seed + s, rank, world, derr, sizeof derr);
        if (!src->dl) rc = errorf(e, "%s", derr);
    }
    d->rng = ((o->seed ^ 0x5DEECE66DULL) * 0x9E3779B97F4A7C15ULL + 2 * (uint64_t)rank) | 1;  // odd: never zero
    if (rc) traindata_close(d);
    return rc;
}

// The next training batch: B rows of the one source, or B rows each drawn from a weighted source.
static void traindata_next(TrainData *d, Batch *b) {
    if (!d->weighted) { batch_next(b, d->src[0].dl); return; }
    for (size_t r = 0; r < b->B; r++) {
        double u = (double)(rng_next(&d->rng) >> 11) / 9007199254740992.0 * d->total_weight;  // [0, total)
        size_t s = 0;
        while (s + 1 < d->n && u >= d->src[s].weight) u -= d->src[s++].weight;
        size_t at = r * b->T;
        dataloader_next_batch(d->src[s].dl, b->inputs + at, b->targets + at, b->pos + at, b->span_end + at);
    }
}

// The largest vocabulary of the shards.
static uint32_t traindata_vocab_size(const TrainData *d) {
    uint32_t v = 0;
    for (size_t s = 0; s < d->n; s++)
        if (dataloader_vocab_size(d->src[s].dl) > v) v = dataloader_vocab_size(d->src[s].dl);
    return v;
}

// The data's part of the training state: the loaders' positions and the generator.
static void traindata_tell(const TrainData *d, TrainState *ts) {
    snprintf(ts->sources, sizeof ts->sources, "%s", d->sources);
    ts->nsrc = d->weighted ? d->n : 0;
    ts->data_rng = d->rng;
    if (!d->weighted) ts->data_pos = dataloader_tell(d->src[0].dl);
    for (size_t s = 0; d->weighted && s < d->n; s++) ts->src_pos[s] = dataloader_tell(d->src[s].dl);
}

// Continues where a checkpoint's state left the data; refuses other sources or weights than the run's.
static int traindata_seek(TrainData *d, const TrainState *ts, Err *e) {
    char derr[512];
    if (strcmp(d->sources, ts->sources))
        return errorf(e, "train: the data sources (%s) are not the run's (%s): a resumed run keeps its sources and weights",
                      d->sources[0] ? d->sources : "one, unweighted", ts->sources[0] ? ts->sources : "one, unweighted");
    if (!d->weighted) return dataloader_seek(d->src[0].dl, ts->data_pos, derr, sizeof derr) ? errorf(e, "%s", derr) : 0;
    d->rng = ts->data_rng;
    for (size_t s = 0; s < d->n; s++)
        if (dataloader_seek(d->src[s].dl, ts->src_pos[s], derr, sizeof derr)) return errorf(e, "%s", derr);
    return 0;
}

// The optimizer steps of a run of `tokens` tokens: the fewest steps that see at least that many, each taking
// accum_at(tokens so far) micro-batches of B x T tokens on each of `world` ranks (during a batch ramp-up the
// steps are smaller, so there are more of them).
static size_t steps_for_tokens(const TrainOptions *o, uint64_t tokens, size_t world) {
    uint64_t seen = 0, per = (uint64_t)o->B * o->T * world;
    size_t steps = 0;
    for (; seen < tokens && seen < o->ramp_tokens; steps++) seen += accum_at(o, seen) * per;
    if (seen < tokens) steps += (size_t)((tokens - seen + o->accum * per - 1) / (o->accum * per));
    return steps;
}

static void emit_buffer(void *ctx, const char *bytes, size_t len) {
    TokenBytes *b = ctx;
    if (b->len + len + 1 > b->cap) {
        b->cap = 2 * (b->len + len + 1);
        b->data = realloc(b->data, b->cap);
        if (!b->data) die("out of memory");
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    b->data[b->len] = 0;
}

// A run directory resumes from its latest checkpoint; a checkpoint directory from itself.
static void resume_path(const char *resume, char *out, size_t n) {
    snprintf(out, n, "%s/latest", resume);
    if (access(out, F_OK)) snprintf(out, n, "%s", resume);
}

// A training run: the model, the optimizer and everything else that lives from one step to the next. train_run
// below is its loop; the pieces around the arithmetic (opening, logging, evaluation, samples, checkpoints,
// summary) are functions of their own so that the GPU trainer can share them.
typedef struct {
    TrainOptions *o;
    Falcon m;
    AdamW opt;
    TrainState ts;
    TrainData data;                   // the training shards and their sources
    DataLoader *val;                  // NULL without validation shards
    Tokenizer *tokenizer;             // for samples during training (--sample-every)
    FILE *log;                        // RUN/log.jsonl
    char logpath[4200];
    Batch batch;                      // one loader batch
    double flops_per_token;
    double t_start;
    uint64_t tokens_start;
    size_t first_step, evaluated_at;
    int bad_steps;
    float loss, val_loss;             // last step's loss, last validation loss
} TrainRun;

// The configuration that --model names: a preset, a config.json file, or a checkpoint directory (its config.json).
static int model_is_json(const char *model) {
    size_t n = strlen(model);
    return n > 5 && !strcmp(model + n - 5, ".json");
}
static int model_config(Config *c, const char *model, Err *e) {
    const Config *pc = preset_find(model);
    if (pc) {
        *c = *pc;
        return 0;
    }
    if (!model_is_json(model)) return config_load(c, model, e);
    char *text, jerr[256];
    size_t len;
    if (read_file(model, &text, &len, jerr, sizeof jerr)) return errorf(e, "%s: %s", model, jerr);
    int rc = config_parse(c, text, len, model, e);
    free(text);
    return rc;
}

// The fresh model of a run that does not resume, from --model: a preset or a config.json starts from random
// weights (a preset takes the shards' vocabulary, and -T positions when it has fewer); a checkpoint directory
// continues from its weights. Bad input dies with one line. falcon_cuda.cu's trainer builds its model here too.
static void train_model_build(Falcon *m, const TrainOptions *o, size_t vocab) {
    Err e = {{0}};
    Config c;
    if (preset_find(o->model) || model_is_json(o->model)) {
        if (model_config(&c, o->model, &e)) die("%s", e.msg);
        if (preset_find(o->model)) {
            c.V = vocab;
            if (o->T > c.maxT) c.maxT = o->T;
        }
        falcon_build(m, &c);
        falcon_init(m, o->seed, 0.02f);
    } else if (falcon_load(m, o->model, &e)) {
        die("%s (--model takes a preset: nano, tiny, small, falcon-7b, ..., a config.json, or a checkpoint directory)", e.msg);
    }
}

// Opens a run: a fresh model (preset, config.json or checkpoint weights) or the state of a checkpoint to resume
// from (o must then hold the run's options, see train_options_load), the data loaders, the log. Bad input dies
// with one line.
static void trainrun_open(TrainRun *r, TrainOptions *o) {
    Err e = {{0}};
    memset(r, 0, sizeof *r);
    r->o = o;
    char resume_dir[4096] = "", derr[512];
    if (o->resume) {
        resume_path(o->resume, resume_dir, sizeof resume_dir);
        if (falcon_load(&r->m, resume_dir, &e)) die("%s", e.msg);
        adamw_build(&r->opt, r->m.num_params);
        if (train_state_load(resume_dir, &r->ts, &r->opt, &e)) die("%s", e.msg);
    }
    if (!o->data && !o->nsources) die("train: --data DIR (shards made by ./data prepare or ./data mix) is required");
    e.msg[0] = 0;
    if (traindata_open(&r->data, o, 0, 1, &e)) die("%s", e.msg);
    TrainData *d = &r->data;
    if (d->nval && !(r->val = dataloader_open_val((const char *const *)d->val_files, d->nval, o->B, o->T, 0, 1, derr,
                                                  sizeof derr)))
        die("%s", derr);
    if (o->resume) {
        if (traindata_seek(d, &r->ts, &e)) die("%s", e.msg);
    } else {
        train_model_build(&r->m, o, traindata_vocab_size(d));
        adamw_build(&r->opt, r->m.num_params);
    }
    if (traindata_vocab_size(d) > r->m.config.V)
        die("%s: the shards' vocabulary (%u) is larger than the model's (%zu)", d->src[0].files[0],
            traindata_vocab_size(d), r->m.config.V);
    if (o->T > r->m.config.maxT) die("train: -T %zu exceeds max_position_embeddings %zu", o->T, r->m.config.maxT);
    if (!o->tokenizer) {
        static char tokpath[4200];
        path_of(tokpath, sizeof tokpath, "%s/tokenizer.json", resume_dir[0] ? resume_dir : d->dir);
        if (access(tokpath, F_OK) == 0) o->tokenizer = tokpath;
    }
    if (o->sample_every) {
        char terr[512];
        if (!o->tokenizer) die("train: --sample-every needs a tokenizer (--tokenizer FILE or DATA/tokenizer.json)");
        if (!(r->tokenizer = tokenizer_load(o->tokenizer, terr, sizeof terr))) die("%s", terr);
    }
    if (o->max_tokens) o->steps = steps_for_tokens(o, o->max_tokens, 1);
    AdamW *opt = &r->opt;
    opt->lr = o->lr;
    opt->lr_floor = o->lr_floor;
    opt->warmup = o->warmup;
    opt->steps = o->steps;
    opt->beta1 = o->beta1;
    opt->beta2 = o->beta2;
    opt->eps = o->eps;
    opt->weight_decay = o->weight_decay;
    opt->grad_clip = o->grad_clip;
    r->m.zloss_coef = o->zloss;
    e.msg[0] = 0;
    if (mkdir_p(o->out, &e)) die("%s", e.msg);
    path_of(r->logpath, sizeof r->logpath, "%s/log.jsonl", o->out);
    if (!(r->log = fopen(r->logpath, o->resume ? "a" : "w"))) die("%s: cannot open: %s", r->logpath, strerror(errno));
    batch_build(&r->batch, o->B, o->T);
    r->flops_per_token = flops_per_token(&r->m, o->T, 1.0);
    const Config *c = &r->m.config;
    printf("model: %zu parameters (L=%zu C=%zu NH=%zu NKV=%zu V=%zu), %.1f MFLOP per token\n", r->m.num_params, c->L,
           c->C, c->NH, c->NKV, c->V, r->flops_per_token / 1e6);
    size_t threads = num_threads();
    printf("kernels: %s (%d x %d tile), %zu thread%s\n", VEC_ISA, MR, NR, threads, threads > 1 ? "s" : "");
    int trees = 0;
    for (size_t s = 0; s < d->n; s++) trees |= dataloader_has_trees(d->src[s].dl);
    printf("data: ");
    for (size_t s = 0; s < d->n; s++)
        if (d->weighted) printf("%s %s %.3g (%zu shards)", s ? "," : "source", d->src[s].name, d->src[s].weight / d->total_weight, d->src[s].nfiles);
        else printf("%zu train shards", d->src[s].nfiles);
    printf("%s, %zu val shards; batch %zu x %zu x %zu accum; %zu steps", trees ? " (conversation trees: masked attention)" : "",
           d->nval, o->B, o->T, o->accum, o->steps);
    if (o->max_tokens) printf(" (%zu tokens)", o->max_tokens);
    printf("\n");
    r->t_start = now_seconds();
    r->tokens_start = r->ts.tokens;
    r->first_step = r->ts.step;
    r->evaluated_at = SIZE_MAX;
    r->loss = r->val_loss = NAN;
}

// Whether another step should run: steps left, no Ctrl-C, --stop-after not reached.
static int trainrun_continues(const TrainRun *r) {
    const TrainOptions *o = r->o;
    return r->ts.step < o->steps && !interrupted && !(o->stop_after && r->ts.step - r->first_step >= o->stop_after);
}

// A step whose loss or gradient norm is not finite is skipped: reported, logged, the weights left as they were.
// Returns 1 when five in a row mean the run must stop.
static int trainrun_skip(TrainRun *r, float loss, float norm) {
    printf("step %zu: loss %g, gradient norm %g: not finite, step skipped\n", r->ts.step + 1, loss, norm);
    fprintf(r->log, "{\"step\": %zu, \"skipped\": true}\n", r->ts.step + 1);
    r->ts.step++;
    if (++r->bad_steps < 5) return 0;
    fprintf(stderr, "falcon: 5 steps in a row were not finite: stopping; the last checkpoint is intact\n");
    return 1;
}

// After an update: the step's line and log entry, then evaluation, a sample and a checkpoint when they are due.
static void trainrun_step_done(TrainRun *r, float loss, float lr, float norm, size_t tokens, double seconds) {
    TrainOptions *o = r->o;
    TrainState *ts = &r->ts;
    Err e = {{0}};
    r->bad_steps = 0;
    r->loss = loss;
    ts->step++;
    double tps = (double)tokens / seconds, elapsed = now_seconds() - r->t_start;
    double eta = (double)(o->steps - ts->step) * elapsed / (double)(ts->tokens - r->tokens_start) * (double)tokens;
    double mfu = tps * r->flops_per_token / (o->peak_gflops * 1e9);
    char eta_text[32];
    progress_time(eta_text, sizeof eta_text, eta);  // M:SS or H:MM:SS, as the progress lines
    if (!o->quiet)
        printf("step %5zu/%zu | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | MFU %.1f%% | ETA %s\n", ts->step,
               o->steps, loss, lr, norm, tps, 100.0 * mfu, eta_text);
    fprintf(r->log, "{\"step\": %zu, \"tokens\": %llu, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                    "\"tok_per_s\": %.1f, \"mfu\": %.4f}\n",
            ts->step, (unsigned long long)ts->tokens, loss, lr, norm, tps, mfu);
    if (r->val && o->eval_every && (ts->step % o->eval_every == 0 || ts->step == o->steps)) {
        r->val_loss = evaluate(&r->m, r->val, o->eval_batches, &r->batch, NULL);
        r->evaluated_at = ts->step;
        printf("step %5zu: val loss %.4f\n", ts->step, r->val_loss);
        fprintf(r->log, "{\"step\": %zu, \"tokens\": %llu, \"val_loss\": %.6f}\n", ts->step,
                (unsigned long long)ts->tokens, r->val_loss);
    }
    if (r->tokenizer && ts->step % o->sample_every == 0) {
        TokenBytes text = {0};
        SampleSettings st = {64, 0, 0.8f, 0.95f, ts->step};
        generate(&r->m, r->tokenizer, "", &st, emit_buffer, &text);
        printf("step %5zu: sample: %s\n", ts->step, text.data ? text.data : "");
        fprintf(r->log, "{\"step\": %zu, \"tokens\": %llu, \"sample\": ", ts->step, (unsigned long long)ts->tokens);
        json_write_string(r->log, text.data ? text.data : "", text.len);
        fprintf(r->log, "}\n");
        token_bytes_free(&text);
    }
    fflush(r->log);
    if (o->save_every && ts->step % o->save_every == 0 && ts->step < o->steps) {
        traindata_tell(&r->data, ts);
        if (run_checkpoint(o->out, &r->m, o, ts, &r->opt, &e)) die("%s", e.msg);
    }
}

// The end of a run: a checkpoint (unless it failed), the plot, and the summary.
static void trainrun_finish(TrainRun *r, int failed) {
    TrainOptions *o = r->o;
    TrainState *ts = &r->ts;
    Err e = {{0}};
    traindata_tell(&r->data, ts);
    if (!failed && run_checkpoint(o->out, &r->m, o, ts, &r->opt, &e)) die("%s", e.msg);
    if (interrupted) printf("interrupted: checkpoint of step %zu saved in %s/latest\n", ts->step, o->out);
    fflush(r->log);
    char plotpath[4200];
    path_of(plotpath, sizeof plotpath, "%s/loss.svg", o->out);
    if (plot_write(o->out, plotpath, &e)) plotpath[0] = 0;
    double elapsed = now_seconds() - r->t_start;
    uint64_t run_tokens = ts->tokens - r->tokens_start;
    printf("\n== summary ==\n");
    printf("steps %zu/%zu, %llu tokens this run (%llu in all), %.1f s, %.0f tok/s\n", ts->step, o->steps,
           (unsigned long long)run_tokens, (unsigned long long)ts->tokens, elapsed, (double)run_tokens / elapsed);
    printf("final train loss %.4f", r->loss);
    if (r->val) {
        if (r->evaluated_at != ts->step)
            r->val_loss = evaluate(&r->m, r->val, o->eval_batches, &r->batch, NULL);
        double h = unigram_entropy(r->val, r->m.config.V, &r->batch);
        printf(", val loss %.4f (perplexity %.2f); unigram entropy of the val data %.4f nats", r->val_loss,
               exp(r->val_loss), h);
    }
    printf("\ncheckpoint %s/latest\nlog        %s\nplot       %s\n", o->out, r->logpath, plotpath[0] ? plotpath : "(none)");
}

static void trainrun_close(TrainRun *r) {
    fclose(r->log);
    batch_free(&r->batch);
    if (r->tokenizer) tokenizer_free(r->tokenizer);
    traindata_close(&r->data);
    if (r->val) dataloader_close(r->val);
    adamw_free(&r->opt);
    falcon_free(&r->m);
}

// The training loop. With o->resume, o must hold the run's own options (train_options_load). Returns the exit status.
static int train_run(TrainOptions *o) {
    TrainRun r;
    trainrun_open(&r, o);
    size_t B = o->B, T = o->T;
    int failed = 0;
    signal(SIGINT, on_sigint);
    while (!failed && trainrun_continues(&r)) {
        double t0 = now_seconds();
        size_t accum = accum_at(o, r.ts.tokens);  // micro-batches of this step (batch ramp-up)
        falcon_zero_grad(&r.m);
        float loss = 0.0f;
        double visible = 0.0;
        for (size_t k = 0; k < accum; k++) {
            traindata_next(&r.data, &r.batch);
            visible += attn_visible_share(r.batch.span_end, B, T) / (double)accum;
            loss += falcon_forward_batch(&r.m, &r.batch, FWD_BACKWARD) / (float)accum;
            falcon_backward(&r.m, 1.0f / (float)accum);
        }
        r.flops_per_token = flops_per_token(&r.m, T, visible);  // for this step's MFU
        if (r.ts.step + 1 >= o->poison_from && r.ts.step + 1 <= o->poison_to) r.m.grads_memory[0] = NAN;
        float norm = falcon_grad_norm(&r.m), lr = adamw_lr(&r.opt, r.ts.step);
        r.ts.tokens += accum * B * T;
        if (!isfinite(loss) || !isfinite(norm)) {
            failed = trainrun_skip(&r, loss, norm);
            continue;
        }
        adamw_update(&r.opt, &r.m, lr, norm);
        trainrun_step_done(&r, loss, lr, norm, accum * B * T, now_seconds() - t0);
    }
    trainrun_finish(&r, failed);
    trainrun_close(&r);
    return failed;
}

// ----------------------------------------------------------------------------
// The command line: falcon info | score | train | sample | eval | make-task | plot

#ifdef FALCON_MAIN

static size_t arg_size(const char *opt, const char *v, int allow_zero) {
    char *end;
    errno = 0;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || v[0] == '-' || (!allow_zero && x == 0))
        die("option %s: '%s' is not a %s integer", opt, v ? v : "", allow_zero ? "non-negative" : "positive");
    return (size_t)x;
}

static float arg_float(const char *opt, const char *v) {
    char *end;
    float x = v ? strtof(v, &end) : 0.0f;
    if (!v || *end || end == v || !isfinite(x) || x < 0) die("option %s: '%s' is not a non-negative number", opt, v ? v : "");
    return x;
}

// `--help` or `-h` anywhere an option may stand prints the command's usage and exits with success.
static void help_if_asked(const char *a, void (*usage)(void)) {
    if (strcmp(a, "--help") && strcmp(a, "-h")) return;
    usage();
    exit(0);
}

static void print_config(const char *name, const Config *c) {
    size_t n = param_count(c);
    printf("%s: %s\n", name, c->new_decoder ? "new decoder architecture (Falcon-40B/180B): grouped K/V heads"
                             : c->NKV == 1 ? "Falcon-7B architecture: multi-query attention"
                                           : "RefinedWeb architecture (Falcon-RW): full multi-head attention");
    printf("  %s blocks, %s, %s MLP, %s\n", c->sequential ? "sequential" : "parallel",
           c->alibi ? "ALiBi" : "RoPE", c->swiglu ? "SwiGLU" : "GELU", c->bias ? "biases" : "no biases");
    printf("  vocab_size V=%zu  hidden_size C=%zu  layers L=%zu  heads NH=%zu  kv heads NKV=%zu  head size HS=%zu\n",
           c->V, c->C, c->L, c->NH, c->NKV, c->HS);
    printf("  ffn_hidden_size FF=%zu  LayerNorms per block %d  max positions %zu  rope_theta %g  eps %g\n", c->FF,
           c->num_ln, c->maxT, c->rope_theta, c->eps);
    printf("  parameters: %zu (%.2f%s)\n", n, n >= 1000000000 ? (double)n / 1e9 : (double)n / 1e6, n >= 1000000000 ? "B" : "M");
}

static void info_usage(void) {
    printf("usage: falcon info [--model] PRESET|DIR   a configuration and its exact parameter count\n"
           "  PRESET              one of:");
    for (size_t i = 0; i < NUM_PRESETS; i++) printf(" %s", PRESETS[i].name);
    printf("\n  DIR                 a checkpoint directory (its config.json), falcon.c's or HF's\n"
           "  (no argument: this list)\n");
}

static int cmd_info(int argc, char **argv) {
    if (argc > 2) help_if_asked(argv[2], info_usage);
    if (argc < 3) { info_usage(); return 0; }
    int flag = !strcmp(argv[2], "--model");  // --model as train takes it
    if (argc != 3 + flag) die("info: one preset or directory (see falcon info --help)");
    const char *model = argv[2 + flag];
    const Config *pc = preset_find(model);
    Config c;
    Err e = {{0}};
    if (pc) c = *pc;
    else if (config_load(&c, model, &e)) die("%s", e.msg);
    print_config(model, &c);
    return 0;
}

// Reads whitespace-separated token ids from f.
static int *read_ids(FILE *f, const char *what, size_t *n) {
    size_t cap = 1024;
    int *ids = xmalloc(cap * sizeof(int));
    *n = 0;
    char buf[64];
    int ch;
    size_t offset = 0;
    for (;;) {
        while ((ch = fgetc(f)) != EOF && (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r')) offset++;
        if (ch == EOF) break;
        size_t start = offset, k = 0;
        while (ch != EOF && !(ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r')) {
            if (k < sizeof buf - 1) buf[k++] = (char)ch;
            ch = fgetc(f);
            offset++;
        }
        offset++;
        buf[k] = 0;
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || *end || v < 0 || v > INT32_MAX) die("%s: byte %zu: '%s' is not a token id", what, start, buf);
        if (*n == cap) ids = realloc(ids, (cap *= 2) * sizeof(int));
        if (!ids) die("out of memory");
        ids[(*n)++] = (int)v;
        if (ch == EOF) break;
    }
    return ids;
}

static void score_usage(void) {
    printf("usage: falcon score -m DIR [--dump FILE] < ids.txt\n"
           "  prints the mean next-token cross-entropy of the whitespace-separated token ids on stdin (HF's loss\n"
           "  for labels = input_ids), for one-line comparisons with other implementations\n"
           "  -m DIR              checkpoint directory (required)\n"
           "  --dump FILE         also write the input ids and the logits to FILE (safetensors) [no dump]\n");
}

static int cmd_score(int argc, char **argv) {
    const char *dir = NULL, *dump = NULL;
    for (int i = 2; i < argc; i++) {
        help_if_asked(argv[i], score_usage);
        if (!strcmp(argv[i], "-m") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump = argv[++i];
        else die("score: unknown argument '%s' (see falcon score --help)", argv[i]);
    }
    if (!dir) die("score: -m DIR is required (see falcon score --help)");
    Falcon m;
    Err e = {{0}};
    if (falcon_load(&m, dir, &e)) die("%s", e.msg);
    size_t T;
    int *ids = read_ids(stdin, "stdin", &T);
    if (T < 2) die("stdin: need at least 2 token ids, got %zu", T);
    if (T > m.config.maxT) die("stdin: %zu tokens exceed max_position_embeddings %zu", T, m.config.maxT);
    for (size_t t = 0; t < T; t++)
        if ((size_t)ids[t] >= m.config.V) die("stdin: token %zu: id %d is outside the vocabulary [0, %zu)", t, ids[t], m.config.V);
    int *targets = xmalloc(T * sizeof(int));
    for (size_t t = 0; t < T; t++) targets[t] = t + 1 < T ? ids[t + 1] : -100;
    float loss = falcon_forward(&m, ids, targets, NULL, NULL, 1, T, dump ? FWD_LOGITS : FWD_LOSS);
    printf("%.6f\n", loss);
    if (dump) {
        float *fid = xmalloc(T * sizeof(float));
        for (size_t t = 0; t < T; t++) fid[t] = (float)ids[t];
        WTensor w[2] = {{"input_ids", {1, T}, 2, fid}, {"logits", {1, T, m.config.V}, 3, m.logits}};
        if (safetensors_write(dump, w, 2, NULL, &e)) die("%s", e.msg);
        free(fid);
    }
    free(ids);
    free(targets);
    falcon_free(&m);
    return 0;
}

static void train_usage(void) {
    TrainOptions d = train_defaults();
    printf("usage: falcon train --data SHARDS [options]\n"
           "  --data SHARDS       training shards (required): a directory (its train*.bin, or the mix_*.bin of\n"
           "                      ./data mix), shard files, or several, comma-separated, read as one source; or\n"
           "                      weighted sources NAME=WEIGHT=PATH,... (as ./data mix names them): each row of\n"
           "                      a batch comes from a source drawn with probability WEIGHT / sum of weights\n"
           "  --source N=W=PATH   one more weighted source (repeatable), the same as in --data [none]\n"
           "  --val SHARDS        validation shards: directories (their val*.bin) or files, comma-separated\n"
           "                      [the val*.bin of the --data directories]\n"
           "  --model M           preset (nano, tiny, small, falcon-7b, ...) or config.json: random weights;\n"
           "                      or an HF checkpoint directory: fine-tune its weights [%s]\n"
           "  --resume DIR        continue a run (its directory, or one checkpoint) exactly where it stopped [none]\n"
           "  --out DIR           run directory: checkpoints, log.jsonl [%s]\n"
           "  --tokenizer FILE    tokenizer.json copied into checkpoints [DIR/tokenizer.json of the first --data path]\n"
           "  -B N                micro-batch size [%zu]\n"
           "  -T N                sequence length [%zu]\n"
           "  --accum N           micro-batches per step (gradient accumulation) [%zu]\n"
           "  --ramp-tokens N     batch ramp-up: accumulation grows from 1 to --accum over N tokens [0 = off]\n"
           "  --steps N           optimizer steps; the cosine schedule ends there [%zu]\n"
           "  --tokens N          or the run's length in tokens: the fewest steps that train on N tokens, each of\n"
           "                      accum x B x T tokens (fewer micro-batches during a ramp-up, so more steps)\n"
           "                      [off: --steps]; with --resume, --steps or --tokens may lengthen the run\n"
           "  --warmup N          linear warm-up steps [%zu]\n"
           "  --lr X              peak learning rate [%g]\n"
           "  --lr-floor X        cosine floor as a fraction of the peak [%g]\n"
           "  --weight-decay X    AdamW decoupled weight decay, matrices only [%g]\n"
           "  --zloss X           z-loss coefficient [%g]\n"
           "  --clip X            gradient clipping by global norm, 0 = off [%g]\n"
           "  --eval-every N      validation every N steps [%zu]\n"
           "  --eval-batches N    validation batches per evaluation [%zu]\n"
           "  --save-every N      checkpoint every N steps [%zu]\n"
           "  --keep N            checkpoints kept [%zu]\n"
           "  --stop-after N      stop after N steps of this invocation, with a checkpoint to --resume from [0 = off]\n"
           "  --sample-every N    print and log a sample every N steps [0 = never]\n"
           "  --poison N[-M]      testing: make the gradients of steps N..M NaN, to see them skipped [never]\n"
           "  --seed N            initialisation and data order [%llu]\n"
           "  --peak-gflops X     the machine's peak, for MFU [%g]\n"
           "  --threads N         OpenMP threads [all cores]\n",
           d.model, d.out, d.B, d.T, d.accum, d.steps, d.warmup, d.lr, d.lr_floor, d.weight_decay, d.zloss,
           d.grad_clip, d.eval_every, d.eval_batches, d.save_every, d.keep, (unsigned long long)d.seed, d.peak_gflops);
}

// Parses train options. On --resume, options that shape the run come from the checkpoint, so they may not be
// given again; the run length, evaluation and saving may change.
static void parse_train_args(int argc, char **argv, TrainOptions *o, int resumed) {
    int steps_given = 0;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int shaping = 1;
        help_if_asked(a, train_usage);
        if (!v) die("train: option %s needs a value (see falcon train --help)", a);
        if (!strcmp(a, "--resume")) { o->resume = v; shaping = 0; }
        else if (!strcmp(a, "--data")) { o->data = v; shaping = 0; }
        else if (!strcmp(a, "--out")) { o->out = v; shaping = 0; }
        else if (!strcmp(a, "--tokenizer")) { o->tokenizer = v; shaping = 0; }
        else if (!strcmp(a, "--source")) {
            char name[64];
            double w;
            const char *path;
            if (source_item(v, name, sizeof name, &w, &path) == 0) die("train: --source '%s' is not NAME=WEIGHT=PATH with a positive weight", v);
            if (o->nsources == MAX_SOURCES) die("train: more than %d data sources", MAX_SOURCES);
            o->sources[o->nsources++] = v;
            shaping = 0;
        }
        else if (!strcmp(a, "--val")) { o->val = v; shaping = 0; }
        else if (!strcmp(a, "--steps")) { o->steps = arg_size(a, v, 0); steps_given = 1; shaping = 0; }
        else if (!strcmp(a, "--tokens")) { o->max_tokens = arg_size(a, v, 0); shaping = 0; }
        else if (!strcmp(a, "--eval-every")) { o->eval_every = arg_size(a, v, 1); shaping = 0; }
        else if (!strcmp(a, "--eval-batches")) { o->eval_batches = arg_size(a, v, 1); shaping = 0; }
        else if (!strcmp(a, "--save-every")) { o->save_every = arg_size(a, v, 1); shaping = 0; }
        else if (!strcmp(a, "--keep")) { o->keep = arg_size(a, v, 1); shaping = 0; }
        else if (!strcmp(a, "--stop-after")) { o->stop_after = arg_size(a, v, 0); shaping = 0; }
        else if (!strcmp(a, "--sample-every")) { o->sample_every = arg_size(a, v, 1); shaping = 0; }
        else if (!strcmp(a, "--poison")) {
            char first[32];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(v, "-"), v);
            o->poison_from = arg_size(a, first, 0);
            o->poison_to = strchr(v, '-') ? arg_size(a, strchr(v, '-') + 1, 0) : o->poison_from;
            shaping = 0;
        }
        else if (!strcmp(a, "--threads")) { o->threads = (int)arg_size(a, v, 0); shaping = 0; }
        else if (!strcmp(a, "--peak-gflops")) { o->peak_gflops = arg_float(a, v); shaping = 0; }
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "-B")) o->B = arg_size(a, v, 0);
        else if (!strcmp(a, "-T")) o->T = arg_size(a, v, 0);
        else if (!strcmp(a, "--accum")) o->accum = arg_size(a, v, 0);
        else if (!strcmp(a, "--ramp-tokens")) o->ramp_tokens = arg_size(a, v, 1);
        else if (!strcmp(a, "--warmup")) o->warmup = arg_size(a, v, 1);
        else if (!strcmp(a, "--lr")) o->lr = arg_float(a, v);
        else if (!strcmp(a, "--lr-floor")) o->lr_floor = arg_float(a, v);
        else if (!strcmp(a, "--weight-decay")) o->weight_decay = arg_float(a, v);
        else if (!strcmp(a, "--zloss")) o->zloss = arg_float(a, v);
        else if (!strcmp(a, "--clip")) o->grad_clip = arg_float(a, v);
        else if (!strcmp(a, "--seed")) o->seed = arg_size(a, v, 1);
        else die("train: unknown option '%s' (see falcon train --help)", a);
        if (resumed && shaping) die("train: %s cannot change when resuming: the run keeps its own", a);
    }
    if (steps_given && o->max_tokens) die("train: give the run's length as --steps or --tokens, not both");
}

// The options of `train`: the command line's, or with --resume the run's own and those that may change then.
static TrainOptions train_options_from_args(int argc, char **argv) {
    TrainOptions o = train_defaults();
    parse_train_args(argc, argv, &o, 0);
    if (o.resume) {
        char dir[4096];
        Err e = {{0}};
        resume_path(o.resume, dir, sizeof dir);
        o = train_defaults();
        if (train_options_load(dir, &o, &e)) die("%s", e.msg);
        parse_train_args(argc, argv, &o, 1);  // refuses options that shape the run
    }
    return o;
}

static int cmd_train(int argc, char **argv) {
    TrainOptions o = train_options_from_args(argc, argv);
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
#endif
    return train_run(&o);
}

static void emit_stdout(void *ctx, const char *bytes, size_t len) {
    (void)ctx;
    fwrite(bytes, 1, len, stdout);
    fflush(stdout);
}

static const SampleSettings SAMPLE_DEFAULTS = {200, 0, 0.8f, 0.95f, 42};
static const char *const SAMPLE_DIR = "runs/demo/run/latest";

static void sample_usage(void) {
    const SampleSettings *d = &SAMPLE_DEFAULTS;
    printf("usage: falcon sample [-m DIR] [options]   continues a prompt, printing each token as it is drawn\n"
           "  -m DIR              checkpoint directory, falcon.c's or an HF Falcon directory [%s]\n"
           "  --tokenizer FILE    tokenizer.json [DIR/tokenizer.json]\n"
           "  --prompt TEXT       text to continue [\"\": start as a document starts, after <|endoftext|>]\n"
           "  -n N                tokens to generate at most (fewer at <|endoftext|> or the context's end) [%zu]\n"
           "  --temperature X     divides the logits; 0 = always the most likely token [%g]\n"
           "  --top-k K           draw among the K most likely tokens only [%zu = all]\n"
           "  --top-p P           draw among the fewest most likely tokens whose probability reaches P [%g]\n"
           "  --seed N            the random draws: the same seed gives the same text [%llu]\n"
           "  the speed (tokens/s) goes to stderr at the end\n",
           SAMPLE_DIR, d->max_tokens, d->temperature, d->top_k, d->top_p, (unsigned long long)d->seed);
}

static int cmd_sample(int argc, char **argv) {
    const char *dir = SAMPLE_DIR, *tokpath = NULL, *prompt = "";
    SampleSettings st = SAMPLE_DEFAULTS;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        help_if_asked(a, sample_usage);
        if (!v) die("sample: option %s needs a value (see falcon sample --help)", a);
        if (!strcmp(a, "-m")) dir = v;
        else if (!strcmp(a, "--tokenizer")) tokpath = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n")) st.max_tokens = arg_size(a, v, 0);
        else if (!strcmp(a, "--temperature")) st.temperature = arg_float(a, v);
        else if (!strcmp(a, "--top-k")) st.top_k = arg_size(a, v, 1);
        else if (!strcmp(a, "--top-p")) st.top_p = arg_float(a, v);
        else if (!strcmp(a, "--seed")) st.seed = arg_size(a, v, 1);
        else die("sample: unknown option '%s' (see falcon sample --help)", a);
    }
    Falcon m;
    Err e = {{0}};
    if (falcon_load(&m, dir, &e)) die("%s", e.msg);
    char tp[4200], terr[512];
    if (!tokpath) tokpath = path_of(tp, sizeof tp, "%s/tokenizer.json", dir);
    Tokenizer *tok = tokenizer_load(tokpath, terr, sizeof terr);
    if (!tok) die("%s", terr);
    fwrite(prompt, 1, strlen(prompt), stdout);
    double t0 = now_seconds();
    long made = generate(&m, tok, prompt, &st, emit_stdout, NULL);
    if (made < 0) die("%s: no <|endoftext|> token to start an empty prompt", tokpath);
    double dt = now_seconds() - t0;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "%ld tokens in %.2fs (%.1f tok/s, prompt included)\n", made, dt, (double)made / (dt > 0 ? dt : 1e-9));
    tokenizer_free(tok);
    falcon_free(&m);
    return 0;
}

static void eval_usage(void) {
    printf("usage: falcon eval -m DIR [--data DIR] [--task FILE.jsonl] [options]\n"
           "  -m DIR              checkpoint directory (required)\n"
           "  --data DIR          validation loss and perplexity on the shards DIR/val*.bin [none]\n"
           "  -B N                rows per validation batch [8]\n"
           "  -T N                tokens per row [the model's context, at most 256]\n"
           "  --batches N         validation batches at most (0 = all) [100]\n"
           "  --task FILE         zero-shot multiple choice on a JSONL task [none]: one item per line,\n"
           "                      {\"context\": ..., \"choices\": [...], \"label\": i}; prints acc and acc_norm as the\n"
           "                      EleutherAI harness defines them: the share of items whose right choice has the\n"
           "                      highest log-likelihood (acc), or log-likelihood per character (acc_norm)\n"
           "  --task-tokens N     --task scores its choices several at a time, in forward passes of N tokens at\n"
           "                      most (rows x longest row; always one row at least); fewer use less memory, and\n"
           "                      1 scores one choice at a time: the same acc and acc_norm [%d]\n"
           "  --tokenizer FILE    tokenizer.json for --task [DIR/tokenizer.json]\n"
           "  at least one of --data and --task\n", MC_BATCH_TOKENS);
}

static int cmd_eval(int argc, char **argv) {
    const char *dir = NULL, *data = NULL, *task = NULL, *tokpath = NULL;
    size_t B = 8, T = 0, batches = 100, task_tokens = MC_BATCH_TOKENS;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        help_if_asked(a, eval_usage);
        if (!v) die("eval: option %s needs a value (see falcon eval --help)", a);
        if (!strcmp(a, "-m")) dir = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--tokenizer")) tokpath = v;
        else if (!strcmp(a, "-B")) B = arg_size(a, v, 0);
        else if (!strcmp(a, "-T")) T = arg_size(a, v, 0);
        else if (!strcmp(a, "--batches")) batches = arg_size(a, v, 1);
        else if (!strcmp(a, "--task-tokens")) task_tokens = arg_size(a, v, 0);
        else die("eval: unknown option '%s' (see falcon eval --help)", a);
    }
    if (!dir || (!data && !task)) die("eval: usage: falcon eval -m DIR [--data DIR [-B N -T N --batches N]] [--task FILE.jsonl [--task-tokens N]]");
    Falcon m;
    Err e = {{0}};
    if (falcon_load(&m, dir, &e)) die("%s", e.msg);
    if (data) {
        if (!T) T = m.config.maxT < 256 ? m.config.maxT : 256;
        if (T > m.config.maxT) die("eval: -T %zu exceeds max_position_embeddings %zu", T, m.config.maxT);
        size_t nval;
        char **files = list_shards(data, "val", &nval, &e), derr[512];
        if (!files) die("%s", e.msg);
        DataLoader *val = dataloader_open_val((const char *const *)files, nval, B, T, 0, 1, derr, sizeof derr);
        if (!val) die("%s", derr);
        Batch bt;
        batch_build(&bt, B, T);
        size_t nb = dataloader_batches_per_epoch(val);
        if (batches && batches < nb) nb = batches;
        Progress p;  // a large validation set takes a while: tokens evaluated, rate and ETA on the terminal
        double total = (double)(nb * B * T);
        progress_start(&p, "eval", total, total < 1e7 ? "k tokens" : "M tokens", total < 1e7 ? 1e3 : 1e6);
        float loss = evaluate(&m, val, nb, &bt, &p);
        progress_finish(&p);
        printf("val loss %.4f  perplexity %.2f  (%zu batches of %zu x %zu)\n", loss, exp(loss), nb, B, T);
        batch_free(&bt);
        free_list(files, nval);
        dataloader_close(val);
    }
    if (task) {
        char tp[4200], terr[512];
        if (!tokpath) tokpath = path_of(tp, sizeof tp, "%s/tokenizer.json", dir);
        Tokenizer *tok = tokenizer_load(tokpath, terr, sizeof terr);
        if (!tok) die("%s", terr);
        size_t n;
        McItem *items = mctask_load(task, tok, m.config.V, &n, &e);
        if (!items) die("%s", e.msg);
        double acc, acc_norm;
        Progress p;  // choices scored, the unit of work
        size_t choices = 0;
        for (size_t i = 0; i < n; i++) choices += items[i].nchoices;
        progress_start(&p, "eval", (double)choices, "choices", 1);
        mc_evaluate(&m, items, n, task_tokens, &p, &acc, &acc_norm);
        progress_finish(&p);
        size_t k = items[0].nchoices;
        printf("%s: %zu items, acc %.4f, acc_norm %.4f (chance %.4f)\n", task, n, acc, acc_norm, 1.0 / (double)k);
        for (size_t i = 0; i < n; i++) mcitem_free(&items[i]);
        free(items);
        tokenizer_free(tok);
    }
    falcon_free(&m);
    return 0;
}

static void make_task_usage(void) {
    printf("usage: falcon make-task --from DOCS.jsonl -o TASK.jsonl [options]\n"
           "  a multiple-choice task from held-out documents: the context stops in the middle of a sentence, the\n"
           "  right choice is its true ending, the others end sentences of other documents (deterministic for a seed)\n"
           "  --from FILE         documents, JSONL with a \"text\" field (required)\n"
           "  -o FILE             the task, JSONL for falcon eval --task (required)\n"
           "  --items N           items at most [200]\n"
           "  --choices K         choices per item, 2 to 16 [4]\n"
           "  --seed N            which sentences and endings are drawn [1]\n");
}

static int cmd_make_task(int argc, char **argv) {
    const char *from = NULL, *out = NULL;
    size_t items = 200, choices = 4;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        help_if_asked(a, make_task_usage);
        if (!v) die("make-task: option %s needs a value (see falcon make-task --help)", a);
        if (!strcmp(a, "--from")) from = v;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--items")) items = arg_size(a, v, 0);
        else if (!strcmp(a, "--choices")) choices = arg_size(a, v, 0);
        else if (!strcmp(a, "--seed")) seed = arg_size(a, v, 1);
        else die("make-task: unknown option '%s' (see falcon make-task --help)", a);
    }
    if (!from || !out) die("make-task: usage: falcon make-task --from DOCS.jsonl -o TASK.jsonl [--items N] [--choices K]");
    if (choices < 2 || choices > 16) die("make-task: --choices must be between 2 and 16");
    Err e = {{0}};
    if (mctask_make(from, out, items, choices, seed, &e)) die("%s", e.msg);
    return 0;
}


static void plot_usage(void) {
    printf("usage: falcon plot RUN [-o FILE.svg]   train and validation loss against tokens, from RUN/log.jsonl\n"
           "  RUN                 a run directory (falcon train --out)\n"
           "  -o FILE             the SVG to write [RUN/loss.svg]\n");
}

static int cmd_plot(int argc, char **argv) {
    for (int i = 2; i < argc; i++) help_if_asked(argv[i], plot_usage);
    if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "-o"))) die("plot: usage: falcon plot RUN_DIR [-o FILE.svg]");
    char out[4200];
    Err e = {{0}};
    if (argc == 5) path_of(out, sizeof out, "%s", argv[4]);
    else path_of(out, sizeof out, "%s/loss.svg", argv[2]);
    if (plot_write(argv[2], out, &e)) die("%s", e.msg);
    printf("%s\n", out);
    return 0;
}

// The commands, in the order `falcon --help` shows them.
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*usage)(void);
} Command;

static const Command COMMANDS[] = {
    {"train", cmd_train, train_usage},      {"sample", cmd_sample, sample_usage},
    {"eval", cmd_eval, eval_usage},         {"make-task", cmd_make_task, make_task_usage},
    {"plot", cmd_plot, plot_usage},         {"info", cmd_info, info_usage},
    {"score", cmd_score, score_usage},
};
#define NUM_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const Command *command_find(const char *name) {
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
    return NULL;
}

// falcon --help, -h and help (and falcon alone): every command's usage; falcon help CMD: one.
static int cmd_help(int argc, char **argv) {
    if (argc > 2) {
        const Command *c = command_find(argv[2]);
        if (!c) die("help: unknown command '%s' (falcon --help lists them)", argv[2]);
        c->usage();
        return 0;
    }
    printf("falcon.c: train, sample from and evaluate Falcon models (docs/training.md walks through a first run)\n"
           "falcon COMMAND [options]; falcon COMMAND --help (or falcon help COMMAND) shows one command\n");
    for (size_t i = 0; i < NUM_COMMANDS; i++) {
        printf("\n");
        COMMANDS[i].usage();
    }
    return 0;
}

int main(int argc, char **argv) {
    char names[256] = "";
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", COMMANDS[i].name);
    // no command: the help, on stdout as git prints it; status 1, as git's, since no command ran
    if (argc < 2) {
        cmd_help(argc, argv);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return cmd_help(argc, argv);
    const Command *c = command_find(argv[1]);
    if (!c) die("unknown command '%s'; commands: %s (falcon --help for their options)", argv[1], names);
    return c->run(argc, argv);
}
#endif
