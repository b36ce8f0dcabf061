// data.c: RefinedWeb's Macrodata Refinement for falcon.c, from raw documents to training shards.
//
// The Falcon paper's central claim is that web data, filtered and deduplicated with care, trains models as well
// as curated corpora. This file is that care, stage by stage, in the order RefinedWeb applies it:
//
//   read JSONL / text  ->  URL filter  ->  Gopher repetition  ->  Gopher quality  ->  line-wise corrections
//   ->  MinHash fuzzy dedup  ->  URL dedup  ->  tokenise  ->  exact-substring dedup  ->  shards (train / val)
//
// plus a generator of a synthetic web corpus with ground truth (`./data synth`), mixing of sources by weight,
// and the training data loader that falcon.c calls (data.h). Every stage can be switched off, reports what it
// kept and removed, and can write what it removed to a file.
//
// Sources of rules and thresholds: Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM" (arXiv
// 2306.01116), sections 3 and appendix G; Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
// Insights from Training Gopher" (arXiv 2112.11446), appendix A, table A1; the defaults of datatrove 0.10's
// GopherRepetitionFilter / GopherQualityFilter, with which docs/data.md compares our decisions.
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
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

// ---------------------------------------------------------------------------------------------------------------
// Small helpers: allocation that never returns NULL, a growable byte buffer, and 64-bit hashing.

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "data: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) { fprintf(stderr, "data: out of memory (%zu x %zu bytes)\n", n, size); exit(1); }
    return p;
}
static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) { fprintf(stderr, "data: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}
static char *xstrndup(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

// Grows *p (holding *cap elements of `size` bytes) so that it holds at least `need`.
static void grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    *p = xrealloc(*p, c * size);
    *cap = c;
}

typedef struct { char *s; size_t len, cap; } Buf;
static void buf_add(Buf *b, const char *s, size_t n) {
    grow((void **)&b->s, &b->cap, b->len + n + 1, 1);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// splitmix64: a good 64-bit mixer, used both as a PRNG step and to finish hashes.
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// Hash of a byte string: 8 bytes at a time through a multiply-xor step, finished with mix64.
static uint64_t hash_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0xff51afd7ed558ccdull;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ mix64(w ^ 0x5bd1e995)) * 0xc4ceb9fe1a85ec53ull;
    return mix64(h);
}

// A deterministic PRNG (xorshift64*), seeded through mix64 so that nearby seeds give unrelated streams.
typedef struct { uint64_t s; } Rng;
static Rng rng_seed(uint64_t seed) { Rng r = {mix64(seed) | 1}; return r; }
static uint64_t rng_u64(Rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}
static size_t rng_below(Rng *r, size_t n) { return n ? (size_t)(rng_u64(r) % n) : 0; }
static double rng_unit(Rng *r) { return (double)(rng_u64(r) >> 11) / 9007199254740992.0; }

// A set of 64-bit hashes (open addressing, 0 marks an empty slot, so the value 0 is stored as 1). The stages
// compare lines, paragraphs and n-grams by 64-bit hash: two different strings collide with probability 2^-64
// per pair, far below anything a corpus can show.
typedef struct { uint64_t *slot; uint32_t *count; size_t cap, n; } HashSet;
static void hs_clear(HashSet *h, size_t expect) {
    size_t cap = 64;
    while (cap < 2 * expect + 16) cap *= 2;
    if (cap != h->cap) { // sized to this use, so that clearing costs what the use costs
        free(h->slot);
        free(h->count);
        h->slot = xmalloc(cap * sizeof *h->slot);
        h->count = xmalloc(cap * sizeof *h->count);
        h->cap = cap;
    }
    memset(h->slot, 0, h->cap * sizeof *h->slot);
    h->n = 0;
}
static void hs_free(HashSet *h) { free(h->slot); free(h->count); memset(h, 0, sizeof *h); }
// Adds key; returns its slot. *fresh says whether it was new. The table must have room (hs_clear sizes it).
static size_t hs_add(HashSet *h, uint64_t key, int *fresh) {
    if (!key) key = 1;
    size_t mask = h->cap - 1, i = (size_t)key & mask;
    while (h->slot[i] && h->slot[i] != key) i = (i + 1) & mask;
    *fresh = !h->slot[i];
    if (*fresh) { h->slot[i] = key; h->count[i] = 0; h->n++; }
    h->count[i]++;
    return i;
}

// ---------------------------------------------------------------------------------------------------------------
// UTF-8. Python counts characters (code points) where we hold bytes; the Gopher fractions divide by len(text) in
// characters, so we count lead bytes. Invalid bytes count as one character each, as they would once decoded with
// errors="replace".

static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}
// White-space separated words, the unit of the stage statistics and of the line-wise 5% rule.
static size_t count_words_ws(const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += !isspace((unsigned char)s[i]) && (i == 0 || isspace((unsigned char)s[i - 1]));
    return w;
}

// Decodes one code point at s[*i] (advancing *i); invalid sequences yield U+FFFD and advance one byte.
static uint32_t utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[*i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 1) { (*i)++; return c; }
    if (k == 0 || *i + k > n) { (*i)++; return 0xFFFD; }
    uint32_t cp = c & (0x7F >> k);
    for (size_t j = 1; j < k; j++) {
        if ((u[*i + j] & 0xC0) != 0x80) { (*i)++; return 0xFFFD; }
        cp = (cp << 6) | (u[*i + j] & 0x3F);
    }
    *i += k;
    return cp;
}
static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Punctuation as datatrove's PUNCTUATION_SET has it, for the characters that occur in practice: ASCII
// punctuation, ASCII controls, and the common typographic marks.
static int is_punct(uint32_t c) {
    if (c < 128) return c < 32 || c == 127 || (ispunct((int)c) != 0);
    if (c >= 0x80 && c < 0xA0) return 1;
    switch (c) {
    case 0x2014: case 0x2013: case 0x201C: case 0x201D: case 0x201E: case 0x2018: case 0x2019: case 0x00B4:
    case 0x00AB: case 0x00BB: case 0x2026: case 0x3001: case 0x3002: case 0xFF0C: case 0xFF01: case 0xFF1F:
    case 0xFF1A: case 0xFF1B: case 0xFF08: case 0xFF09: case 0x300A: case 0x300B: case 0x3008: case 0x3009:
    case 0x300C: case 0x300D: case 0x3010: case 0x3011: case 0x25BA: case 0x2501: case 0xFF05: case 0xFF11:
    case 0xFF0E: case 0x2236: case 0xFF5E: case 0x00A1: case 0x00BF: case 0x2022: return 1;
    default: return 0;
    }
}
// Letters: ASCII letters, and every non-ASCII code point that is not punctuation or white space (an
// approximation of str.isalpha that is exact for the Latin scripts the pipeline targets).
static int is_alpha_cp(uint32_t c) {
    if (c < 128) return isalpha((int)c) != 0;
    return !is_punct(c) && c != 0xA0 && c != 0xFFFD && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x2190 && c <= 0x2BFF);
}

// Accents stripped for the MinHash normalisation: Latin-1 Supplement and Latin Extended-A letters mapped to
// their base letter (the first 0xC0..0x17F code points; '\0' means "no base letter, keep as is").
static const char accent_base[] =
    "AAAAAAACEEEEIIII" "DNOOOOO\0OUUUUYTs" "aaaaaaaceeeeiiii" "dnooooo\0ouuuuyty"   // 0xC0-0xFF
    "AaAaAaCcCcCcCcDd" "DdEeEeEeEeEeGgGg" "GgGgHhHhIiIiIiIi" "IiJjJjKkkLlLlLlL"   // 0x100-0x13F
    "lLlNnNnNnnNnOoOo" "OoOoRrRrRrSsSsSs" "SsTtTtTtUuUuUuUu" "UuUuWwYyYZzZzZzs";  // 0x140-0x17F

// ---------------------------------------------------------------------------------------------------------------
// Documents. A document is its text, its URL (may be empty), and the other members of its JSON line kept as raw
// JSON text ("key":value,...) so that they travel with it to the output.

typedef struct {
    char *text; size_t len;
    char *url;               // NUL-terminated, "" when absent
    char *extra;             // raw JSON members other than text and url, "" when none
    const char *removed_by;  // NULL while kept, else why it was removed (a static string)
    int stage;               // the stage that removed it, -1 while kept
} Doc;

typedef struct {
    Doc *doc; size_t n, cap;
    // what the reader skipped, with one example
    size_t bad_lines, bad_utf8, empty;
    char example[256];
    Progress *progress;      // while reading: bytes read (NULL: no progress line)
} Corpus;

static void corpus_free(Corpus *c) {
    for (size_t i = 0; i < c->n; i++) { free(c->doc[i].text); free(c->doc[i].url); free(c->doc[i].extra); }
    free(c->doc);
    memset(c, 0, sizeof *c);
}
static Doc *corpus_add(Corpus *c, const char *text, size_t len, const char *url, const char *extra) {
    grow((void **)&c->doc, &c->cap, c->n + 1, sizeof *c->doc);
    Doc *d = &c->doc[c->n++];
    d->text = xstrndup(text, len);
    d->len = len;
    d->url = xstrndup(url ? url : "", url ? strlen(url) : 0);
    d->extra = xstrndup(extra ? extra : "", extra ? strlen(extra) : 0);
    d->removed_by = NULL;
    d->stage = -1;
    return d;
}

static int utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t before = i;
        uint32_t c = utf8_next(s, n, &i);
        if (c == 0xFFFD && !(i - before == 3 && (unsigned char)s[before] == 0xEF)) return 0;
    }
    return 1;
}

static void note_skip(Corpus *c, size_t *counter, const char *fmt, ...) {
    (*counter)++;
    if (!c->example[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->example, sizeof c->example, fmt, ap);
        va_end(ap);
    }
}

// The next line of a JSONL buffer that is not blank, from offset *i: sets s and len to it and line to its
// 1-based number (blank lines counted), and moves *i past it. Returns 0 at the end of the buffer.
static int jsonl_next_line(const char *buf, size_t n, size_t *i, size_t *line, const char **s, size_t *len) {
    while (*i < n) {
        const char *p = buf + *i, *e = memchr(p, '\n', n - *i);
        size_t l = e ? (size_t)(e - p) : n - *i, k = 0;
        *i += l + 1;
        (*line)++;
        while (k < l && isspace((unsigned char)p[k])) k++;
        if (k < l) {
            *s = p;
            *len = l;
            return 1;
        }
    }
    return 0;
}

// Reads one JSONL buffer: one JSON object per line with a string "text", an optional string "url", other members
// carried along. Malformed lines, lines without a text string, and texts that are not valid UTF-8 are skipped,
// counted, and the first one is named in c->example; empty texts are counted as empty.
static void corpus_add_jsonl(Corpus *c, const char *path, const char *buf, size_t n) {
    size_t i = 0, line = 0, len;
    const char *s;
    double base = c->progress ? c->progress->done : 0;
    while (jsonl_next_line(buf, n, &i, &line, &s, &len)) {
        if (c->progress) progress_update(c->progress, base + (double)(s - buf));
        Json j;
        char err[128];
        if (json_parse(s, len, &j, err, sizeof err) != 0) {
            note_skip(c, &c->bad_lines, "%s:%zu: %s", path, line, err);
            continue;
        }
        const Json *t = json_get(&j, "text"), *u = json_get(&j, "url");
        if (j.type != JSON_OBJECT || !t || t->type != JSON_STRING) {
            note_skip(c, &c->bad_lines, "%s:%zu: no \"text\" string", path, line);
        } else if (!utf8_valid(t->str, t->len)) {
            note_skip(c, &c->bad_utf8, "%s:%zu: text is not valid UTF-8", path, line);
        } else if (t->len == 0) {
            c->empty++;
        } else {
            Buf extra = {0};
            for (size_t m = 0; m < j.count; m++) {
                if (!strcmp(j.keys[m], "text") || !strcmp(j.keys[m], "url")) continue;
                if (extra.len) buf_str(&extra, ",");
                FILE *mf = NULL;
                char *mem = NULL;
                size_t memlen = 0;
                mf = open_memstream(&mem, &memlen);
                json_write_string(mf, j.keys[m], j.key_lens[m]);
                fclose(mf);
                buf_add(&extra, mem, memlen);
                free(mem);
                buf_str(&extra, ":");
                buf_add(&extra, s + j.items[m].start, j.items[m].end - j.items[m].start);
            }
            corpus_add(c, t->str, t->len, u && u->type == JSON_STRING ? u->str : "", extra.s);
            free(extra.s);
        }
        json_free(&j);
    }
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

// Reads a file (.jsonl / .json: JSONL; anything else: one plain-text document per file) or a directory (every
// file below it, in sorted order so that runs are reproducible). Returns 0, or -1 with err. With c == NULL it
// reads nothing and adds the sizes of the files to *bytes instead (the total of the progress line).
static int corpus_read(Corpus *c, const char *path, double *bytes, char *err, size_t errsize) {
    struct stat st;
    if (stat(path, &st) != 0) { snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    if (S_ISDIR(st.st_mode)) {
        struct dirent **names;
        int k = scandir(path, &names, NULL, alphasort);
        if (k < 0) { snprintf(err, errsize, "%s: cannot list: %s", path, strerror(errno)); return -1; }
        int rc = 0;
        for (int i = 0; i < k; i++) {
            if (!rc && names[i]->d_name[0] != '.') {
                Buf sub = {0};
                buf_printf(&sub, "%s/%s", path, names[i]->d_name);
                rc = corpus_read(c, sub.s, bytes, err, errsize);
                free(sub.s);
            }
            free(names[i]);
        }
        free(names);
        return rc;
    }
    if (!c) { *bytes += (double)st.st_size; return 0; }
    double base = c->progress ? c->progress->done : 0;
    char *text;
    size_t len;
    char rerr[256];
    if (read_file(path, &text, &len, rerr, sizeof rerr) != 0) {
        snprintf(err, errsize, "%s: %s", path, rerr);
        return -1;
    }
    if (has_suffix(path, ".jsonl") || has_suffix(path, ".json")) {
        corpus_add_jsonl(c, path, text, len);
    } else if (len == 0) {
        c->empty++;
    } else if (!utf8_valid(text, len)) {
        note_skip(c, &c->bad_utf8, "%s: not valid UTF-8", path);
    } else {
        corpus_add(c, text, len, "", "");
    }
    free(text);
    if (c->progress) progress_update(c->progress, base + (double)len);
    return 0;
}

// Reads the inputs (files or directories) in order, with one progress line for all of them.
static int corpus_read_all(Corpus *c, const char *const *paths, size_t n, char *err, size_t errsize) {
    double bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = corpus_read(NULL, paths[i], &bytes, err, errsize);
    Progress p;
    progress_start(&p, "reading", bytes, "MB", 1e6);
    c->progress = &p;
    for (size_t i = 0; i < n && !rc; i++) rc = corpus_read(c, paths[i], NULL, err, errsize);
    progress_finish(&p);
    c->progress = NULL;
    return rc;
}

// Writes one document as a JSON line: text, url, then the carried members.
static void doc_write_jsonl(FILE *f, const Doc *d) {
    fputs("{", f);
    if (d->removed_by) {
        fputs("\"removed_by\":", f);
        json_write_string(f, d->removed_by, strlen(d->removed_by));
        fputs(",", f);
    }
    fputs("\"text\":", f);
    json_write_string(f, d->text, d->len);
    if (d->url[0]) { fputs(",\"url\":", f); json_write_string(f, d->url, strlen(d->url)); }
    if (d->extra[0]) { fputc(',', f); fputs(d->extra, f); }
    fputs("}\n", f);
}

// ---------------------------------------------------------------------------------------------------------------
// The synthetic web corpus (`./data synth`). Good documents are built from sentence templates and word lists
// written for this project (twelve topics, six styles), so that they read like simple English and a tiny model
// can learn from them. Planted among them, each labelled in its "label" member: exact duplicates, near duplicates
// at a measured word-5-gram Jaccard similarity ("jaccard", "dup_of"), boilerplate lines, repetitive spam,
// keyword-stuffed pages, short junk, blocklisted or bad-word URLs, reused URLs, and passages repeated across
// documents (long ones that exact-substring dedup must cut, short ones it must leave).
//
// The same seed makes the same bytes with every compiler on every machine, because each random draw is its own
// statement. C leaves the order in which a call's arguments are evaluated unspecified (gcc on x86-64 evaluates
// them last to first, clang and gcc on Arm first to last), so `f(PICK(a), PICK(b))` would make another corpus,
// and other reference numbers, on each. Where a call takes two draws they are taken last argument first, the
// order in which the committed references were made.

typedef struct {
    const char *name;
    const char *noun[12];   // things of the topic
    const char *place[6];   // where they are
    const char *verb[8];    // past-tense actions on them
} SynthTopic;

static const SynthTopic synth_topics[] = {
    {"gardening", {"tomato plants", "rose bushes", "compost heap", "vegetable beds", "apple trees", "seedlings",
                   "herb garden", "greenhouse", "garden soil", "potato crop", "bean poles", "flower borders"},
     {"the allotment", "the back garden", "the village green", "the walled garden", "the hillside farm",
      "the community plot"},
     {"watered", "pruned", "planted", "harvested", "weeded", "covered", "moved", "measured"}},
    {"cooking", {"bread dough", "tomato soup", "apple pie", "roast chicken", "rice dish", "pasta sauce",
                 "lemon cake", "vegetable stew", "fish pie", "pancake batter", "onion tart", "bean salad"},
     {"the kitchen", "the bakery", "the market hall", "the cooking school", "the harbour cafe",
      "the old restaurant"},
     {"baked", "stirred", "tasted", "served", "seasoned", "prepared", "cooled", "shared"}},
    {"astronomy", {"the telescope", "the comet", "the red planet", "the star cluster", "the lunar eclipse",
                   "the night sky", "the meteor shower", "the distant galaxy", "the observatory dome",
                   "the solar flare", "the ringed planet", "the star chart"},
     {"the mountain observatory", "the desert camp", "the science museum", "the university roof",
      "the dark sky park", "the coastal station"},
     {"observed", "photographed", "tracked", "measured", "recorded", "studied", "mapped", "described"}},
    {"history", {"the old castle", "the city walls", "the trade route", "the ancient library", "the royal court",
                 "the stone bridge", "the harbour town", "the old map", "the market square", "the river fort",
                 "the cathedral", "the village records"},
     {"the northern valley", "the river delta", "the coastal region", "the capital", "the border town",
      "the mountain pass"},
     {"rebuilt", "defended", "described", "restored", "expanded", "abandoned", "studied", "visited"}},
    {"travel", {"the night train", "the mountain road", "the ferry crossing", "the small hotel", "the hiking trail",
                "the old station", "the coastal path", "the city tour", "the island harbour", "the bus route",
                "the summer festival", "the guide book"},
     {"the southern coast", "the lake district", "the old town", "the national park", "the island",
      "the river valley"},
     {"explored", "booked", "crossed", "followed", "visited", "recommended", "photographed", "enjoyed"}},
    {"music", {"the string quartet", "the old piano", "the jazz band", "the choir", "the folk song",
               "the violin concerto", "the drum line", "the brass section", "the new album", "the concert hall",
               "the guitar solo", "the opening chorus"},
     {"the concert hall", "the summer festival", "the music school", "the town theatre", "the radio studio",
      "the church hall"},
     {"performed", "rehearsed", "recorded", "composed", "arranged", "tuned", "practised", "played"}},
    {"football", {"the home team", "the young striker", "the goalkeeper", "the final match", "the league table",
                  "the training session", "the new coach", "the penalty kick", "the midfield", "the stadium",
                  "the cup run", "the away fans"},
     {"the national stadium", "the training ground", "the local park", "the city arena", "the school pitch",
      "the northern ground"},
     {"won", "trained", "defended", "scored", "coached", "watched", "celebrated", "analysed"}},
    {"computers", {"the old laptop", "the file server", "the network cable", "the source code", "the database",
                   "the compiler", "the memory chip", "the backup drive", "the web browser", "the operating system",
                   "the test suite", "the text editor"},
     {"the office", "the data centre", "the computer lab", "the repair shop", "the university", "the home desk"},
     {"installed", "repaired", "tested", "compiled", "upgraded", "configured", "debugged", "replaced"}},
    {"health", {"the morning walk", "the balanced diet", "the sleep routine", "the yoga class", "the fresh fruit",
                "the water intake", "the cycling habit", "the breathing exercise", "the swimming lesson",
                "the rest day", "the health check", "the stretching plan"},
     {"the local clinic", "the sports centre", "the city park", "the swimming pool", "the health club",
      "the community hall"},
     {"recommended", "started", "followed", "improved", "changed", "planned", "tracked", "discussed"}},
    {"birds", {"the barn owl", "the robin", "the heron", "the flock of geese", "the kingfisher", "the swallow nest",
               "the blackbird song", "the eagle", "the sparrows", "the bird feeder", "the migration route",
               "the woodpecker"},
     {"the wetland reserve", "the old forest", "the estuary", "the garden hedge", "the cliff top",
      "the river bank"},
     {"spotted", "counted", "photographed", "heard", "followed", "ringed", "sketched", "watched"}},
    {"sailing", {"the small yacht", "the harbour wall", "the main sail", "the sea chart", "the tide table",
                 "the wooden dinghy", "the anchor chain", "the coastal wind", "the sailing club", "the lighthouse",
                 "the rope locker", "the night watch"},
     {"the bay", "the open sea", "the harbour", "the estuary", "the island channel", "the marina"},
     {"sailed", "repaired", "steered", "anchored", "painted", "launched", "checked", "navigated"}},
    {"chess", {"the opening move", "the endgame", "the chess club", "the rook", "the tournament", "the old board",
               "the bishop pair", "the queen sacrifice", "the pawn chain", "the clock", "the final round",
               "the study book"},
     {"the chess club", "the town library", "the school hall", "the city cafe", "the tournament room",
      "the park table"},
     {"played", "studied", "analysed", "won", "lost", "prepared", "explained", "replayed"}},
};
#define N_TOPICS (sizeof synth_topics / sizeof synth_topics[0])

static const char *synth_names[] = {
    "Anna", "Ben", "Clara", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Karin", "Leo", "Maya",
    "Nils", "Olga", "Pedro", "Rosa", "Sami", "Tara", "Umar", "Vera", "Walter", "Yusuf", "Zoe", "Marta", "Oscar",
    "Lena", "Tomas", "Helen", "Ravi"};
static const char *synth_adj[] = {
    "quiet", "bright", "careful", "small", "large", "old", "new", "simple", "famous", "early", "late", "warm",
    "cold", "busy", "gentle", "strong", "patient", "clever", "common", "rare", "useful", "short", "long",
    "steady", "curious", "friendly", "heavy", "light", "clear", "local"};
static const char *synth_adv[] = {
    "slowly", "carefully", "quickly", "happily", "quietly", "often", "rarely", "usually", "finally", "already",
    "clearly", "gladly", "simply", "nearly", "really"};
static const char *synth_time[] = {
    "last spring", "in the autumn", "every morning", "on a cold evening", "during the summer", "after the rain",
    "before dawn", "at the weekend", "in early winter", "last year", "on most days", "late at night"};
static const char *synth_people[] = {
    "the neighbours", "the students", "the old teacher", "a local farmer", "the visitors", "the children",
    "her brother", "his friends", "the committee", "a young writer", "the volunteers", "the family"};

// Sentence templates. Slots: %N noun of the topic, %O another noun of the topic, %P place, %V verb, %M name,
// %A / %B adjectives, %R adverb, %T time, %E people, %Y year, %D small number.
static const char *synth_templates[] = {
    "%M %V %N at %P %T.",
    "%N was %R %V by %E, who found it %A.",
    "%T, %E %V %N and %O near %P.",
    "Many people think that %N is the most %A part of %P.",
    "%M said that %N looked %A and %B %T.",
    "In %Y, %N at %P was %V for the first time.",
    "It took %D hours to finish, but %E %R %V %N.",
    "If you visit %P, you should see %N and %O.",
    "%M and %E %V %N together, and it was %A work.",
    "The story of %N begins at %P in %Y.",
    "According to %M, %O is %A when it is %V %R.",
    "%E %R talk about %N, because it is so %A.",
    "We %V %N %T, and %M wrote down %D short notes.",
    "There were %D %A reasons to care about %O.",
    "%M has %V %N at %P for %D years.",
    "After %M %V %O, %E agreed that it was %B.",
    "Nobody at %P expected %N to be this %A.",
    "%O at %P is %R %V by %M.",
    "%T the weather was %A, so %M %V %N instead.",
    "With a little help from %E, %M %V %O %R.",
    "Some say %N was %V in %Y, while others say it was later.",
    "%M asked %E whether %N could be %V %T.",
    "The first thing you notice at %P is %N.",
    "%M still remembers how %A %O was in %Y.",
};
#define N_TEMPLATES (sizeof synth_templates / sizeof synth_templates[0])

#define PICK(arr) (arr[rng_below(r, sizeof arr / sizeof arr[0])])

// The words a template's slots are filled from, one list per slot letter (%M name, %N and %O noun, %P place,
// %V verb, %A and %B adjective, %R adverb, %T time, %E people; %Y a year and %D a number need no list).
typedef struct { const char *const *w; size_t n; } WordList;
#define WORDS(arr) ((WordList){arr, sizeof arr / sizeof arr[0]})
typedef struct {
    WordList name, noun, place, verb, adj, adv, time, people;
    int article; // English: a noun without "the " gets one
} Lexicon;

static const char *words_pick(Rng *r, WordList w) { return w.w[rng_below(r, w.n)]; }

// Agreement, which the Spanish lists need: a verb or an adjective may come in two forms, "visitó|visitaron"
// (singular|plural) or "antiguo|antigua" (masculine|feminine). A verb takes the number of the sentence's subject
// (the last name or people slot: a name is singular), an adjective the gender of the last noun. Number and gender
// show in the article: "los", "las" plural; "la", "las", "una" feminine. The English words have one form each, so
// English sentences are what they were.
static int article_is(const char *w, const char *article) {
    size_t n = strlen(article);
    return !strncmp(w, article, n) && w[n] == ' ';
}
static int es_plural(const char *w) { return article_is(w, "los") || article_is(w, "las"); }
static int es_feminine(const char *w) { return article_is(w, "la") || article_is(w, "las") || article_is(w, "una"); }

// Appends form k (0 or 1) of a word "form0|form1", or the word itself when it has one form.
static void buf_form(Buf *b, const char *w, int k) {
    const char *bar = strchr(w, '|');
    if (!bar) buf_str(b, w);
    else if (k) buf_str(b, bar + 1);
    else buf_add(b, w, (size_t)(bar - w));
}

// Appends template t with every slot filled from lx, and capitalises the sentence's first letter.
static void synth_fill(Buf *b, Rng *r, const char *t, const Lexicon *lx) {
    size_t start = b->len;
    int plural = 0, feminine = 0;  // the subject's number and the last noun's gender, for agreement
    for (; *t; t++) {
        if (*t != '%') { buf_add(b, t, 1); continue; }
        switch (*++t) {
        case 'N': case 'O': {
            const char *noun = words_pick(r, lx->noun);
            if (lx->article && strncmp(noun, "the ", 4)) buf_str(b, "the ");
            buf_str(b, noun);
            feminine = es_feminine(noun);
            break;
        }
        case 'P': buf_str(b, words_pick(r, lx->place)); break;
        case 'V': buf_form(b, words_pick(r, lx->verb), plural); break;
        case 'M': buf_str(b, words_pick(r, lx->name)); plural = 0; break;
        case 'A': case 'B': buf_form(b, words_pick(r, lx->adj), feminine); break;
        case 'R': buf_str(b, words_pick(r, lx->adv)); break;
        case 'T': buf_str(b, words_pick(r, lx->time)); break;
        case 'E': {
            const char *people = words_pick(r, lx->people);
            buf_str(b, people);
            plural = es_plural(people);
            break;
        }
        case 'Y': buf_printf(b, "%d", 1850 + (int)rng_below(r, 170)); break;
        case 'D': buf_printf(b, "%d", 2 + (int)rng_below(r, 40)); break;
        default: break;
        }
    }
    b->s[start] = (char)toupper((unsigned char)b->s[start]);
}

// An English sentence about a topic: its own nouns, places and verbs, the shared lists for the rest.
static void synth_sentence(Buf *b, Rng *r, const SynthTopic *tp) {
    const char *t = synth_templates[rng_below(r, N_TEMPLATES)];
    Lexicon lx = {WORDS(synth_names), WORDS(tp->noun), WORDS(tp->place), WORDS(tp->verb), WORDS(synth_adj),
                  WORDS(synth_adv), WORDS(synth_time), WORDS(synth_people), 1};
    synth_fill(b, r, t, &lx);
}

static void synth_paragraph(Buf *b, Rng *r, const SynthTopic *tp, size_t sentences) {
    for (size_t i = 0; i < sentences; i++) {
        if (i) buf_str(b, " ");
        synth_sentence(b, r, tp);
    }
}

// One good document: a title line and paragraphs, in one of six styles.
static void synth_good(Buf *b, Rng *r, size_t topic) {
    const SynthTopic *tp = &synth_topics[topic];
    size_t style = rng_below(r, 6), paras = 3 + rng_below(r, 4);
    switch (style) {
    case 0: {
        const char *noun = tp->noun[rng_below(r, 12)], *place = tp->place[rng_below(r, 6)];
        buf_printf(b, "News from %s: %s\n\n", place, noun);
        break;
    }
    case 1: buf_printf(b, "How to care for %s\n\n", tp->noun[rng_below(r, 12)]); break;
    case 2: buf_printf(b, "Forum: a question about %s\n\n", tp->noun[rng_below(r, 12)]); break;
    case 3: buf_printf(b, "A short story about %s\n\n", tp->noun[rng_below(r, 12)]); break;
    case 4: buf_printf(b, "Notes on %s and %s\n\n", tp->name, tp->noun[rng_below(r, 12)]); break;
    default: {
        const char *place = tp->place[rng_below(r, 6)], *adj = PICK(synth_adj);
        buf_printf(b, "A %s day at %s\n\n", adj, place);
        break;
    }
    }
    for (size_t p = 0; p < paras; p++) {
        if (p) buf_str(b, "\n\n");
        if (style == 1 && p == paras - 1) {
            // a how-to ends with a few numbered steps
            for (size_t s = 0; s < 3; s++) {
                buf_printf(b, "Step %zu: ", s + 1);
                synth_sentence(b, r, tp);
                buf_str(b, s < 2 ? "\n" : "");
            }
        } else if (style == 2) {
            buf_printf(b, "%s wrote: ", PICK(synth_names));
            synth_paragraph(b, r, tp, 2 + rng_below(r, 3));
        } else {
            synth_paragraph(b, r, tp, 3 + rng_below(r, 3));
        }
    }
}

static const char *synth_sites[] = {"dailyleaf", "northpost", "cornerblog", "learnwell", "greenhouse-notes",
                                    "citywire", "openguide", "riverforum", "thehobbyist", "weeklyread"};
static const char *synth_tlds[] = {"com", "org", "net", "co.uk", "info"};

static void synth_url(Buf *b, Rng *r, const char *topic, size_t id) {
    const char *tld = PICK(synth_tlds), *site = PICK(synth_sites);
    buf_printf(b, "https://www.%s.%s/%s/article-%zu", site, tld, topic, id);
}

// The URL lists that ship with data.c (see url_filter below) contain these; synth plants them.
static const char *synth_blocked_domains[] = {"spamfarm.example", "clickbait-central.example",
                                              "malware-host.example", "adult-pages.example"};

// Planted boilerplate lines, each removed by one of the line-wise rules.
static const char *synth_boiler[] = {
    "Sign in to leave a comment", "Read more...", "Share this article on social media", "12 likes",
    "CLICK HERE TO SUBSCRIBE NOW", "Copyright 2023 all rights reserved", "2023", "Subscribe",
    "Log in or register to reply", "347 comments", "Add to cart", "Home | About | Contact"};

static const char *synth_spam_lines[] = {
    "Buy cheap watches online today", "Best prices guaranteed, order now", "Free shipping on every order",
    "Limited offer, click to win a prize"};
static const char *synth_keywords[] = {
    "cheap", "flights", "hotels", "best", "deals", "discount", "online", "shop", "sale", "free", "shipping",
    "watches", "shoes", "bags", "phones", "laptops", "coupons", "offers", "price", "buy", "top", "rated", "new",
    "outlet", "store", "brands", "fashion", "gadgets", "bargain", "review", "compare", "tickets", "loans",
    "insurance", "casino", "bonus", "credit", "winter", "summer", "designer"};
static const char *synth_junk[] = {"Page not found", "Loading...", "404", "Please enable JavaScript to view",
                                   "Redirecting", "Under construction", "Access denied", "Click here"};

typedef struct {
    char *text; size_t len;
    char *url;
    const char *label;
    long dup_of;        // index of the source document, -1 when none
    double jaccard;     // measured word-5-gram Jaccard with dup_of (near_dup, exact_dup), else -1
    size_t span_id;     // passage group for span_long / span_short, else 0
    size_t span_start, span_len; // byte range of the planted passage in text
} SynthDoc;

typedef struct { SynthDoc *doc; size_t n, cap; } Synth;

static void synth_free(Synth *s) {
    for (size_t i = 0; i < s->n; i++) { free(s->doc[i].text); free(s->doc[i].url); }
    free(s->doc);
    memset(s, 0, sizeof *s);
}
static SynthDoc *synth_push(Synth *s, Buf *text, Buf *url, const char *label) {
    grow((void **)&s->doc, &s->cap, s->n + 1, sizeof *s->doc);
    SynthDoc *d = &s->doc[s->n++];
    memset(d, 0, sizeof *d);
    d->text = text->s; d->len = text->len;
    d->url = url->s ? url->s : xstrndup("", 0);
    d->label = label;
    d->dup_of = -1;
    d->jaccard = -1;
    memset(text, 0, sizeof *text);
    memset(url, 0, sizeof *url);
    return d;
}

// ---------------------------------------------------------------------------------------------------------------
// Text normalisation and word 5-grams, as MinHash sees a document: lower case, punctuation removed, accents
// stripped (Latin letters up to U+017F and combining marks), white space collapsed to single spaces. The
// shingles are the 64-bit hashes of every run of 5 consecutive normalised words (one shingle of all the words
// when there are fewer than 5; none for an empty text).

#define SHINGLE_N 5

static void normalise(const char *s, size_t n, Buf *out) {
    out->len = 0;
    grow((void **)&out->s, &out->cap, n * 2 + 8, 1);
    int space = 1; // at the start, as if after a space, so leading white space is dropped
    for (size_t i = 0; i < n;) {
        uint32_t c = utf8_next(s, n, &i);
        if (c >= 0x300 && c <= 0x36F) continue; // combining accent
        if (c < 128) {
            if (isspace((int)c) || is_punct(c)) c = ' ';
            else c = (uint32_t)tolower((int)c);
        } else if (c >= 0xC0 && c <= 0x17F && accent_base[c - 0xC0]) {
            c = (uint32_t)tolower((unsigned char)accent_base[c - 0xC0]);
        } else if (is_punct(c) || c == 0xA0 || (c >= 0x2000 && c <= 0x206F)) {
            c = ' ';
        }
        if (c == ' ') {
            if (!space) out->s[out->len++] = ' ';
            space = 1;
        } else {
            out->len += utf8_put(c, out->s + out->len);
            space = 0;
        }
    }
    if (out->len && out->s[out->len - 1] == ' ') out->len--;
    out->s[out->len] = 0;
}

// Appends the shingle hashes of text to *sh (cleared first); returns their number.
static size_t shingles(const char *text, size_t n, Buf *norm, uint64_t **sh, size_t *cap) {
    normalise(text, n, norm);
    size_t nw = 0, wcap = 64;
    size_t *ws = xmalloc(wcap * sizeof *ws); // word start offsets, plus one past the end
    for (size_t i = 0; i < norm->len; i++)
        if (i == 0 || norm->s[i - 1] == ' ') {
            if (nw + 2 > wcap) { wcap *= 2; ws = xrealloc(ws, wcap * sizeof *ws); }
            ws[nw++] = i;
        }
    ws[nw] = norm->len + 1;
    size_t k = nw == 0 ? 0 : nw < SHINGLE_N ? 1 : nw - SHINGLE_N + 1;
    grow((void **)sh, cap, k, sizeof **sh);
    for (size_t i = 0; i < k; i++) {
        size_t last = i + (nw < SHINGLE_N ? nw : SHINGLE_N);
        (*sh)[i] = hash_bytes(norm->s + ws[i], ws[last] - 1 - ws[i], 0x5111);
    }
    free(ws);
    return k;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static size_t sort_unique_u64(uint64_t *v, size_t n) {
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) if (v[i] != v[k - 1]) v[k++] = v[i];
    return k;
}

// Exact Jaccard similarity of the shingle sets of two texts: the quantity MinHash estimates.
static double jaccard(const char *a, size_t na, const char *b, size_t nb) {
    Buf norm = {0};
    uint64_t *sa = NULL, *sb = NULL;
    size_t ca = 0, cb = 0;
    size_t ka = shingles(a, na, &norm, &sa, &ca);
    size_t kb = shingles(b, nb, &norm, &sb, &cb);
    ka = sort_unique_u64(sa, ka);
    kb = sort_unique_u64(sb, kb);
    size_t i = 0, j = 0, inter = 0;
    while (i < ka && j < kb) {
        if (sa[i] == sb[j]) { inter++; i++; j++; }
        else if (sa[i] < sb[j]) i++;
        else j++;
    }
    free(sa); free(sb); free(norm.s);
    size_t uni = ka + kb - inter;
    return uni ? (double)inter / (double)uni : 1.0;
}

// ---------------------------------------------------------------------------------------------------------------
// The synthetic corpus generator.

// A near duplicate of text: replaces the words at the first k positions of a random order with other words.
static void synth_edit(Buf *out, const char *text, size_t len, const size_t *order, const size_t *wstart,
                       const size_t *wend, size_t nw, size_t k, Rng *r) {
    char *mark = xcalloc(nw, 1);
    for (size_t i = 0; i < k && i < nw; i++) mark[order[i]] = 1;
    out->len = 0;
    size_t at = 0;
    for (size_t w = 0; w < nw; w++) {
        buf_add(out, text + at, wstart[w] - at);
        if (mark[w]) buf_str(out, PICK(synth_adj));
        else buf_add(out, text + wstart[w], wend[w] - wstart[w]);
        at = wend[w];
    }
    buf_add(out, text + at, len - at);
    free(mark);
}

// Makes a near duplicate of text whose Jaccard similarity is the largest reachable value at or below target
// (binary search on the number of replaced words; Jaccard falls as more words are replaced).
static double synth_near_dup(Buf *out, const char *text, size_t len, double target, Rng *r) {
    size_t nw = 0, cap = 64;
    size_t *ws = xmalloc(cap * sizeof *ws), *we = xmalloc(cap * sizeof *we);
    for (size_t i = 0; i < len;) {
        while (i < len && isspace((unsigned char)text[i])) i++;
        if (i >= len) break;
        if (nw == cap) { cap *= 2; ws = xrealloc(ws, cap * sizeof *ws); we = xrealloc(we, cap * sizeof *we); }
        ws[nw] = i;
        while (i < len && !isspace((unsigned char)text[i])) i++;
        we[nw++] = i;
    }
    size_t *order = xmalloc((nw ? nw : 1) * sizeof *order);
    for (size_t i = 0; i < nw; i++) order[i] = i;
    for (size_t i = nw; i > 1; i--) { size_t j = rng_below(r, i); size_t t = order[i - 1]; order[i - 1] = order[j]; order[j] = t; }
    uint64_t edit_seed = rng_u64(r);
    size_t lo = 1, hi = nw;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        Rng er = rng_seed(edit_seed);
        synth_edit(out, text, len, order, ws, we, nw, mid, &er);
        if (jaccard(text, len, out->s, out->len) <= target) hi = mid;
        else lo = mid + 1;
    }
    Rng er = rng_seed(edit_seed);
    synth_edit(out, text, len, order, ws, we, nw, lo, &er);
    free(ws); free(we); free(order);
    return jaccard(text, len, out->s, out->len);
}

// Inserts `passage` as a paragraph after the first paragraph of text; records where it went.
static void synth_insert_passage(SynthDoc *d, const char *passage) {
    char *brk = strstr(d->text, "\n\n");
    size_t at = brk ? (size_t)(brk - d->text) + 2 : d->len, pl = strlen(passage), n = d->len + pl + 2;
    char *t = xmalloc(n + 1);
    memcpy(t, d->text, at);
    memcpy(t + at, passage, pl);
    memcpy(t + at + pl, "\n\n", 2);
    memcpy(t + at + pl + 2, d->text + at, d->len - at);
    t[n] = 0;
    free(d->text);
    d->text = t;
    d->len = n;
    d->span_start = at;
    d->span_len = pl;
}

// Shares of the planted kinds, in percent of all documents; the rest are good documents.
typedef struct { const char *label; int percent; } SynthShare;
static const SynthShare synth_shares[] = {
    {"exact_dup", 4}, {"near_dup", 10}, {"boilerplate_light", 4}, {"boilerplate_heavy", 4},
    {"spam_repetitive", 4}, {"keyword_stuffed", 3}, {"short_junk", 3}, {"blocked_domain", 2}, {"url_words", 2},
    {"url_dup", 2}, {"span_long", 3}, {"span_short", 3}};
#define N_SHARES (sizeof synth_shares / sizeof synth_shares[0])

static void synth_fresh(Synth *s, Rng *r, const char *label, size_t id) {
    Buf t = {0}, u = {0};
    size_t topic = rng_below(r, N_TOPICS);
    synth_good(&t, r, topic);
    synth_url(&u, r, synth_topics[topic].name, id);
    synth_push(s, &t, &u, label);
}

// Generates n documents from seed. Good documents come first; each planted document comes after the
// document it was derived from, so "keep the first of each cluster" keeps the original.
static void synth_generate(Synth *s, size_t n, uint64_t seed) {
    Rng rr = rng_seed(seed), *r = &rr;
    size_t count[N_SHARES], planted = 0;
    for (size_t k = 0; k < N_SHARES; k++) { count[k] = n * (size_t)synth_shares[k].percent / 100; planted += count[k]; }
    count[10] -= count[10] % 3; count[11] -= count[11] % 3; // passages are shared by groups of three
    planted = 0;
    for (size_t k = 0; k < N_SHARES; k++) planted += count[k];
    size_t n_good = n > planted ? n - planted : 0;
    Progress p;
    progress_start(&p, "synth", (double)(n_good + planted), "docs", 1);
    for (size_t i = 0; i < n_good; i++) { synth_fresh(s, r, "good", i); progress_update(&p, (double)s->n); }
    size_t base = 0; // next good document to derive from
    Buf t = {0}, u = {0}, passage = {0};
    size_t group = 0;
    for (size_t k = 0; k < N_SHARES; k++) {
        const char *label = synth_shares[k].label;
        for (size_t i = 0; i < count[k]; i++) {
            size_t id = s->n;
            progress_update(&p, (double)id);
            if (k == 0 || k == 1) { // exact and near duplicates of distinct good documents
                size_t src = n_good ? base++ % n_good : 0;
                if (!n_good) { synth_fresh(s, r, label, id); continue; }
                SynthDoc *sd = &s->doc[src];
                double js = 1.0;
                if (k == 0) buf_add(&t, sd->text, sd->len);
                else js = synth_near_dup(&t, sd->text, sd->len, 0.3 + 0.7 * rng_unit(r), r);
                synth_url(&u, r, "copy", id);
                SynthDoc *d = synth_push(s, &t, &u, label);
                d->dup_of = (long)src;
                d->jaccard = k == 0 ? 1.0 : js;
            } else if (k == 2 || k == 3) { // boilerplate lines at the start and the end
                size_t topic = rng_below(r, N_TOPICS);
                size_t nb = k == 2 ? 1 : 8 + rng_below(r, 5); // at most the 12 lines of synth_boiler
                Buf body = {0};
                synth_good(&body, r, topic);
                size_t pick[sizeof synth_boiler / sizeof *synth_boiler], nbl = sizeof pick / sizeof *pick;
                for (size_t j = 0; j < nbl; j++) pick[j] = j;
                for (size_t j = nbl; j > 1; j--) { size_t q = rng_below(r, j), x = pick[j - 1]; pick[j - 1] = pick[q]; pick[q] = x; }
                if (k == 2) { // one short line (at most 3 words), well under 5% of the words
                    static const size_t short_lines[] = {1, 3, 6, 7, 9, 10};
                    pick[0] = short_lines[rng_below(r, 6)];
                }
                // distinct lines, so that the repetition filter does not see them first
                for (size_t j = 0; j < nb / 2; j++) { buf_str(&t, synth_boiler[pick[j]]); buf_str(&t, "\n"); }
                buf_add(&t, body.s, body.len);
                for (size_t j = nb / 2; j < nb; j++) { buf_str(&t, "\n"); buf_str(&t, synth_boiler[pick[j]]); }
                free(body.s);
                synth_url(&u, r, synth_topics[topic].name, id);
                synth_push(s, &t, &u, label);
            } else if (k == 4) { // repetitive spam: a few lines over and over
                size_t reps = 10 + rng_below(r, 20), variant = rng_below(r, 3);
                const char *line = PICK(synth_spam_lines);
                for (size_t j = 0; j < reps; j++) {
                    if (variant == 0) { buf_str(&t, line); buf_str(&t, "\n"); }
                    else if (variant == 1) { buf_str(&t, line); buf_str(&t, ". "); buf_str(&t, PICK(synth_spam_lines)); buf_str(&t, ".\n\n"); }
                    else { buf_str(&t, line); buf_str(&t, " "); buf_str(&t, line); buf_str(&t, " "); }
                }
                buf_printf(&u, "https://www.%s.com/deals/%zu", PICK(synth_sites), id);
                synth_push(s, &t, &u, label);
            } else if (k == 5) { // keyword stuffing: lists of shopping keywords, no sentences
                size_t lines = 5 + rng_below(r, 5);
                for (size_t j = 0; j < lines; j++) {
                    size_t w = 10 + rng_below(r, 8);
                    for (size_t x = 0; x < w; x++) { if (x) buf_str(&t, ", "); buf_str(&t, PICK(synth_keywords)); }
                    buf_str(&t, "\n");
                }
                buf_printf(&u, "https://www.%s.net/shop/%zu", PICK(synth_sites), id);
                synth_push(s, &t, &u, label);
            } else if (k == 6) { // short junk
                buf_str(&t, PICK(synth_junk));
                if (rng_below(r, 2)) { buf_str(&t, "\n"); buf_str(&t, PICK(synth_junk)); }
                buf_printf(&u, "https://www.%s.org/p/%zu", PICK(synth_sites), id);
                synth_push(s, &t, &u, label);
            } else if (k == 7 || k == 8) { // good text under a bad URL
                size_t topic = rng_below(r, N_TOPICS);
                synth_good(&t, r, topic);
                static const char *bad_paths[] = {"free-casino-bonus", "keygen-download", "xxx-videos",
                                                  "poker-betting-tips", "hot-dating-pills", "pornhub-mirror"};
                if (k == 7) buf_printf(&u, "http://%s/%s/%zu", PICK(synth_blocked_domains), synth_topics[topic].name, id);
                else {
                    const char *path = PICK(bad_paths), *site = PICK(synth_sites);
                    buf_printf(&u, "https://www.%s.com/%s-%zu", site, path, id);
                }
                synth_push(s, &t, &u, label);
            } else if (k == 9) { // a new text under the URL of an earlier good document
                size_t topic = rng_below(r, N_TOPICS);
                synth_good(&t, r, topic);
                size_t src = n_good ? rng_below(r, n_good) : 0;
                buf_str(&u, n_good ? s->doc[src].url : "https://www.example.org/");
                SynthDoc *d = synth_push(s, &t, &u, label);
                d->dup_of = n_good ? (long)src : -1;
            } else { // a passage shared by three documents: long (>= 60 words) or short (<= 25 words)
                if (i % 3 == 0) {
                    const SynthTopic *tp = &synth_topics[rng_below(r, N_TOPICS)];
                    passage.len = 0;
                    group = s->n + 1;
                    if (k == 10) {
                        while (passage.len < 420) { if (passage.len) buf_str(&passage, " "); synth_sentence(&passage, r, tp); }
                    } else {
                        synth_sentence(&passage, r, tp);
                    }
                }
                synth_fresh(s, r, label, id);
                SynthDoc *d = &s->doc[s->n - 1];
                synth_insert_passage(d, passage.s);
                d->span_id = group;
            }
        }
    }
    progress_update(&p, (double)s->n);
    progress_finish(&p);
    free(passage.s);
    free(t.s);
    free(u.s);
}

// Documents that straddle the Gopher thresholds, for comparing our filters with datatrove's where the decision
// is close (`./data synth --edge N`): each takes one rule and a strength drawn across its threshold.
static const char *edge_labels[] = {"edge_dup_lines", "edge_dup_paragraphs", "edge_top_ngram", "edge_dup_ngrams",
                                    "edge_word_count", "edge_word_length", "edge_hashes", "edge_ellipsis_lines",
                                    "edge_bullets", "edge_alpha", "edge_stop_words"};
#define N_EDGE (sizeof edge_labels / sizeof edge_labels[0])

static void synth_edge(Synth *s, size_t n, uint64_t seed) {
    Rng rr = rng_seed(seed ^ 0xed6e), *r = &rr;
    Buf t = {0}, u = {0}, line = {0};
    for (size_t i = 0; i < n; i++) {
        size_t kind = i % N_EDGE;
        const SynthTopic *tp = &synth_topics[rng_below(r, N_TOPICS)];
        double x = rng_unit(r); // strength
        size_t lines = 12 + rng_below(r, 16);
        if (kind == 0 || kind == 7 || kind == 8) { // one sentence per line; some repeated, ellipsis or bullet
            size_t marked = (size_t)(x * 0.6 * (double)lines);
            Buf first = {0};
            for (size_t l = 0; l < lines; l++) {
                line.len = 0;
                synth_sentence(&line, r, tp);
                if (l == 0) buf_add(&first, line.s, line.len);
                int mark = l >= lines - marked;
                if (kind == 0 && mark) buf_add(&t, first.s, first.len); // a copy of the first line
                else {
                    if (kind == 8 && (mark || rng_below(r, 4) == 0)) buf_str(&t, rng_below(r, 2) ? "- " : "\xE2\x80\xA2 ");
                    buf_add(&t, line.s, line.len);
                    if (kind == 7 && mark) { t.len--; buf_str(&t, rng_below(r, 3) ? "..." : "\xE2\x80\xA6"); }
                }
                if (l + 1 < lines) buf_str(&t, "\n");
            }
            free(first.s);
            if (kind == 8) { // bullets near 90%: start almost every line with one
                Buf all = {0};
                size_t nb = (size_t)((0.8 + 0.2 * x) * (double)lines), l = 0;
                for (size_t a = 0; a < t.len; l++) {
                    const char *e = memchr(t.s + a, '\n', t.len - a);
                    size_t len = e ? (size_t)(e - (t.s + a)) : t.len - a;
                    if (l < nb && t.s[a] != '-' && (unsigned char)t.s[a] != 0xE2) buf_str(&all, "- ");
                    buf_add(&all, t.s + a, len);
                    if (e) buf_str(&all, "\n");
                    a += len + 1;
                }
                free(t.s);
                t = all;
            }
        } else if (kind == 1) { // paragraphs, some repeated
            size_t paras = 4 + rng_below(r, 6), rep = (size_t)(x * 0.6 * (double)paras);
            Buf p0 = {0};
            for (size_t p = 0; p < paras; p++) {
                if (p) buf_str(&t, "\n\n");
                if (p >= paras - rep && p0.len) { buf_add(&t, p0.s, p0.len); continue; }
                line.len = 0;
                synth_paragraph(&line, r, tp, 1 + rng_below(r, 3));
                if (p == 0) buf_add(&p0, line.s, line.len);
                buf_add(&t, line.s, line.len);
            }
            free(p0.s);
        } else if (kind == 2 || kind == 3) { // a phrase (2 words) or a sentence (>= 5 words) repeated inside paragraphs
            line.len = 0;
            if (kind == 2) {
                const char *name = PICK(synth_names), *adj = PICK(synth_adj);
                buf_printf(&line, "%s %s", adj, name);
            }
            else synth_sentence(&line, r, tp);
            size_t sentences = 10 + rng_below(r, 15), reps = (size_t)(x * (kind == 2 ? 12 : 5)) + 1;
            for (size_t k = 0; k < sentences; k++) {
                if (k) buf_str(&t, k % 4 ? " " : "\n\n");
                if (rng_below(r, sentences) < reps) { buf_add(&t, line.s, line.len); buf_str(&t, kind == 2 ? " is here." : ""); }
                else synth_sentence(&t, r, tp);
            }
        } else if (kind == 4) { // around 50 words
            while (count_words_ws(t.s ? t.s : "", t.len) < 35 + (size_t)(x * 30)) { if (t.len) buf_str(&t, " "); synth_sentence(&t, r, tp); }
        } else { // word-level changes to a good text: long words, '#', numbers, or stop words removed
            line.len = 0;
            synth_paragraph(&line, r, tp, 6 + rng_below(r, 6));
            for (size_t a = 0; a < line.len;) {
                size_t e = a;
                while (e < line.len && line.s[e] != ' ') e++;
                double roll = rng_unit(r);
                if (kind == 5 && roll < x) buf_str(&t, "extraordinarily");
                else if (kind == 6 && roll < x * 0.25) { buf_str(&t, "#"); buf_add(&t, line.s + a, e - a); }
                else if (kind == 9 && roll < x * 0.4) buf_printf(&t, "%d", (int)rng_below(r, 1000));
                else if (kind == 10 && roll < x && (e - a <= 4)) buf_str(&t, "a");
                else buf_add(&t, line.s + a, e - a);
                if (e < line.len) buf_str(&t, " ");
                a = e + 1;
            }
        }
        buf_printf(&u, "https://www.%s.org/edge/%zu", PICK(synth_sites), i);
        synth_push(s, &t, &u, edge_labels[kind]);
    }
    free(line.s);
}

// Other kinds of documents for the data-mixture ablations (`./data synth --kind code|second-language`): code-like
// pages (small functions in a Python-like or a C-like syntax, with names from the topics' words) and pages in a
// second language (simple Spanish from its own templates and word lists). Neither is web junk: they carry no
// planted defects, and their label is their kind.

// A topic noun as an identifier: "the tomato plants" -> "tomato_plants".
static void synth_ident(Buf *b, const char *noun) {
    if (!strncmp(noun, "the ", 4)) noun += 4;
    for (; *noun; noun++) buf_add(b, *noun == ' ' ? "_" : noun, 1);
}

static void synth_code_doc(Buf *b, Rng *r) {
    const SynthTopic *tp = &synth_topics[rng_below(r, N_TOPICS)];
    size_t funcs = 2 + rng_below(r, 3);
    int clike = (int)rng_below(r, 2);
    buf_printf(b, clike ? "/* %s helpers */\n" : "# %s helpers\n", tp->name);
    for (size_t f = 0; f < funcs; f++) {
        Buf a = {0}, c = {0};
        synth_ident(&a, tp->noun[rng_below(r, 12)]);
        synth_ident(&c, tp->noun[rng_below(r, 12)]);
        const char *verb = tp->verb[rng_below(r, 8)], *adj = PICK(synth_adj);
        size_t limit = 2 + rng_below(r, 98), shape = rng_below(r, 3);
        buf_str(b, "\n");
        if (clike) {
            if (shape == 0) buf_printf(b, "int count_%s(const int *%s, int n) {\n    int total = 0;\n"
                                          "    for (int i = 0; i < n; i++)\n        if (%s[i] > %zu) total++;\n"
                                          "    return total;\n}\n", a.s, c.s, c.s, limit);
            else if (shape == 1) buf_printf(b, "void %s_%s(struct %s *x) {\n    x->%s = %zu;\n    x->state = STATE_%s;\n}\n",
                                            verb, a.s, a.s, c.s, limit, verb);
            else buf_printf(b, "static int is_%s(int %s) {\n    return %s %% %zu == 0;\n}\n", adj, a.s, a.s, limit);
        } else {
            if (shape == 0) buf_printf(b, "def count_%s(%s):\n    total = 0\n    for x in %s:\n"
                                          "        if x > %zu:\n            total += 1\n    return total\n",
                                       a.s, c.s, c.s, limit);
            else if (shape == 1) buf_printf(b, "def %s_%s(%s, %s_size=%zu):\n    %s.%s = %s_size\n    return %s\n", verb, a.s,
                                            a.s, c.s, limit, a.s, c.s, c.s, a.s);
            else buf_printf(b, "class %s_%s:\n    def __init__(self):\n        self.%s = []\n        self.limit = %zu\n",
                            adj, a.s, c.s, limit);
        }
        free(a.s);
        free(c.s);
    }
}

// The second language: sentence templates with the slots of synth_templates (%M name, %N noun, %P place, %V verb,
// %A adjective, %T time, %E people, %Y year, %D number), filled from Spanish lists whose verbs agree with their
// subjects and adjectives with their nouns (synth_fill), and "de el" contracted to "del" (es_contract).
static const char *synth_es_templates[] = {
    "%M %V %N en %P %T.", "%E %V %N, y quedó %A.", "En %Y, %N de %P fue %A por primera vez.",
    "Si visitas %P, debes ver %N.", "%M dice que %N es %A %T.", "Hay %D razones para cuidar %N.",
    "Nadie en %P esperaba que %N fuera tan %A.", "%T, %E %V %N cerca de %P.",
    "Según %M, %N es muy %A.", "La historia de %N empieza en %P en %Y.",
};
static const char *synth_es_nouns[] = {
    "el jardín", "la cocina", "el castillo", "el tren", "la canción", "el partido", "el ordenador", "el río",
    "la playa", "el libro", "la montaña", "el mercado", "la ventana", "el barco", "la plaza", "el bosque"};
static const char *synth_es_places[] = {
    "el pueblo", "la ciudad", "la escuela", "el puerto", "la biblioteca", "el valle", "la isla", "el museo"};
static const char *synth_es_verbs[] = {
    "visitó|visitaron", "pintó|pintaron", "encontró|encontraron", "describió|describieron", "cuidó|cuidaron",
    "compró|compraron", "estudió|estudiaron", "limpió|limpiaron", "abrió|abrieron", "cerró|cerraron"};
static const char *synth_es_adj[] = {
    "tranquilo|tranquila", "antiguo|antigua", "nuevo|nueva", "pequeño|pequeña", "grande", "famoso|famosa", "útil",
    "difícil", "bonito|bonita", "largo|larga"};
static const char *synth_es_time[] = {
    "en primavera", "cada mañana", "el año pasado", "durante el verano", "por la noche", "después de la lluvia"};
static const char *synth_es_people[] = {
    "los vecinos", "los estudiantes", "la familia", "un agricultor", "los niños", "el maestro", "los visitantes"};

// Spanish contracts "de el" to "del": "la historia del río", "cerca del pueblo". Rewrites b from start on.
static void es_contract(Buf *b, size_t start) {
    size_t w = start;
    for (size_t i = start; i < b->len;) {
        if (!strncmp(b->s + i, "de el ", 6) && (i == start || b->s[i - 1] == ' ')) {
            memcpy(b->s + w, "del ", 4);
            w += 4;
            i += 6;
        } else {
            b->s[w++] = b->s[i++];
        }
    }
    b->len = w;
    b->s[w] = 0;
}

static void synth_es_sentence(Buf *b, Rng *r) {
    const Lexicon lx = {WORDS(synth_names), WORDS(synth_es_nouns), WORDS(synth_es_places),
                        WORDS(synth_es_verbs), WORDS(synth_es_adj), {NULL, 0}, WORDS(synth_es_time),
                        WORDS(synth_es_people), 0};
    size_t start = b->len;
    synth_fill(b, r, PICK(synth_es_templates), &lx);
    es_contract(b, start);
}

static void synth_es_doc(Buf *b, Rng *r) {
    buf_printf(b, "Notas sobre %s\n\n", PICK(synth_es_nouns));
    size_t paras = 2 + rng_below(r, 4);
    for (size_t p = 0; p < paras; p++) {
        if (p) buf_str(b, "\n\n");
        size_t n = 3 + rng_below(r, 3);
        for (size_t i = 0; i < n; i++) {
            if (i) buf_str(b, " ");
            synth_es_sentence(b, r);
        }
    }
}

// n documents of one kind: "code" or "second_language".
static void synth_kind(Synth *s, size_t n, uint64_t seed, int code) {
    Rng rr = rng_seed(seed ^ (code ? 0xc0deu : 0xe5u)), *r = &rr;
    Buf t = {0}, u = {0};
    for (size_t i = 0; i < n; i++) {
        if (code) synth_code_doc(&t, r);
        else synth_es_doc(&t, r);
        buf_printf(&u, code ? "https://code.%s.org/snippet/%zu" : "https://www.%s.es/articulo/%zu", PICK(synth_sites), i);
        synth_push(s, &t, &u, code ? "code" : "second_language");
    }
}

static void synth_write(FILE *f, const Synth *s) {
    for (size_t i = 0; i < s->n; i++) {
        const SynthDoc *d = &s->doc[i];
        fprintf(f, "{\"id\":%zu,\"text\":", i);
        json_write_string(f, d->text, d->len);
        fputs(",\"url\":", f);
        json_write_string(f, d->url, strlen(d->url));
        fprintf(f, ",\"label\":\"%s\"", d->label);
        if (d->dup_of >= 0) fprintf(f, ",\"dup_of\":%ld", d->dup_of);
        if (d->jaccard >= 0) fprintf(f, ",\"jaccard\":%.4f", d->jaccard);
        if (d->span_id) fprintf(f, ",\"span\":%zu,\"span_start\":%zu,\"span_len\":%zu", d->span_id, d->span_start, d->span_len);
        fputs("}\n", f);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Words as the Gopher rules count them. datatrove splits English text with spaCy's rule-based tokenizer; we
// follow its main rules: split at white space, then peel punctuation off the front and the back of each chunk
// one mark at a time ("..." stays one token), split English contractions ('s n't 're 've 'll 'd 'm) and hyphens
// between letters. docs/data.md lists where this and spaCy still part ways.

typedef struct { const char *s; uint32_t len, chars; } Word;
typedef struct { Word *w; size_t n, cap; } Words;

static void words_push(Words *ws, const char *s, size_t len) {
    if (!len) return;
    grow((void **)&ws->w, &ws->cap, ws->n + 1, sizeof *ws->w);
    ws->w[ws->n].s = s;
    ws->w[ws->n].len = (uint32_t)len;
    ws->w[ws->n].chars = (uint32_t)utf8_chars(s, len);
    ws->n++;
}
static int is_prefix_mark(uint32_t c) {
    return c == '"' || c == '\'' || c == '(' || c == '[' || c == '{' || c == '<' || c == '*' || c == '$' ||
           c == '#' || c == '-' || c == 0x201C || c == 0x2018 || c == 0xAB || c == 0xBF || c == 0xA1 || c == 0xA3 ||
           c == 0x20AC || c == 0x2014 || c == 0x2013 || c == '`' || c == '&' || c == '~' || c == 0x2022;
}
static int is_suffix_mark(uint32_t c) {
    return c == '.' || c == ',' || c == '!' || c == '?' || c == ';' || c == ':' || c == ')' || c == ']' ||
           c == '}' || c == '"' || c == '\'' || c == '%' || c == 0x201D || c == 0x2019 || c == 0xBB ||
           c == 0x2026 || c == '>' || c == 0x2014 || c == 0x2013 || c == '*';
}
// Length in bytes of the last code point of s[0, n).
static size_t last_cp(const char *s, size_t n, uint32_t *cp) {
    size_t k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80 && n - k < 3) k--;
    if (k > 0) k--;
    size_t i = k;
    *cp = utf8_next(s, n, &i);
    return n - k;
}

static void split_words(const char *text, size_t n, Words *ws) {
    ws->n = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && isspace((unsigned char)text[i])) i++;
        size_t a = i;
        while (i < n && !isspace((unsigned char)text[i])) i++;
        size_t b = i;
        if (a == b) continue;
        // a chunk made only of dashes ("--", "---") is one token
        size_t dash = a;
        while (dash < b && text[dash] == '-') dash++;
        if (dash == b) { words_push(ws, text + a, b - a); continue; }
        // prefixes
        while (a < b) {
            if (b - a >= 3 && !memcmp(text + a, "...", 3)) { words_push(ws, text + a, 3); a += 3; continue; }
            size_t j = a;
            uint32_t c = utf8_next(text, b, &j);
            if (!is_prefix_mark(c) || j == b) break;
            words_push(ws, text + a, j - a);
            a = j;
        }
        // suffixes, collected from the back
        size_t suf[64], nsuf = 0, sb = b;
        while (sb > a && nsuf < 62) {
            if (sb - a >= 3 && !memcmp(text + sb - 3, "...", 3) && sb - a > 3) { suf[nsuf++] = sb; sb -= 3; continue; }
            static const char *contr[] = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m", "'S", "\xE2\x80\x99s"};
            int hit = 0;
            for (size_t q = 0; q < sizeof contr / sizeof contr[0] && !hit; q++) {
                size_t cl = strlen(contr[q]);
                if (sb - a > cl && !memcmp(text + sb - cl, contr[q], cl) && isalpha((unsigned char)text[sb - cl - 1])) {
                    suf[nsuf++] = sb; sb -= cl; hit = 1;
                }
            }
            if (hit) continue;
            uint32_t c;
            size_t cl = last_cp(text + a, sb - a, &c);
            if (!is_suffix_mark(c) || cl == sb - a) break;
            // an abbreviation keeps its final period: "U.S.", "e.g."
            if (c == '.' && memchr(text + a, '.', sb - a - 1) && isalpha((unsigned char)text[sb - 2])) break;
            suf[nsuf++] = sb;
            sb -= cl;
        }
        // infix hyphens between letters
        size_t start = a;
        for (size_t k = a + 1; k + 1 < sb; k++)
            if (text[k] == '-' && (isalpha((unsigned char)text[k - 1]) || (unsigned char)text[k - 1] >= 0x80) &&
                (isalpha((unsigned char)text[k + 1]) || (unsigned char)text[k + 1] >= 0x80)) {
                words_push(ws, text + start, k - start);
                words_push(ws, text + k, 1);
                start = k + 1;
            }
        words_push(ws, text + start, sb - start);
        for (size_t k = nsuf; k > 0; k--) {
            size_t end = suf[k - 1];
            size_t beg = k == nsuf ? sb : suf[k];
            words_push(ws, text + beg, end - beg);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 2: URL filtering (RefinedWeb 3.1 and appendix G.1). A document goes when its domain is on the blocklist,
// or its URL scores as adult/fraud content: a strict sub-word anywhere in the URL bans at one hit, a hard word
// (the URL split into words at non-letters) bans at one hit, soft words ban at two hits. RefinedWeb's own lists
// (4.6M domains, curated word lists) are not public; the lists below are small ones written for this project in
// the same categories, and --blocklist / --url-words add to them.

static const char *url_default_blocklist[] = {"spamfarm.example", "clickbait-central.example",
                                              "malware-host.example", "adult-pages.example"};
static const char *url_strict_subwords[] = {"xxx", "porn", "hentai", "warez"};
static const char *url_hard_words[] = {"nude", "escort", "gore", "keygen", "torrent", "crack", "camgirl"};
static const char *url_soft_words[] = {"casino", "bonus", "poker", "betting", "dating", "pills", "adult", "hot",
                                       "sexy", "loans", "viagra", "gambling"};

typedef struct { char **s; size_t n, cap; } StrList;
static void strlist_add(StrList *l, const char *s, size_t n) {
    grow((void **)&l->s, &l->cap, l->n + 1, sizeof *l->s);
    l->s[l->n++] = xstrndup(s, n);
}
static void strlist_free(StrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

typedef struct {
    StrList blocked, strict, hard, soft;
} UrlFilter;

static void urlfilter_build(UrlFilter *u) {
    memset(u, 0, sizeof *u);
#define ADD_ALL(list, arr) for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) strlist_add(list, arr[i], strlen(arr[i]))
    ADD_ALL(&u->blocked, url_default_blocklist);
    ADD_ALL(&u->strict, url_strict_subwords);
    ADD_ALL(&u->hard, url_hard_words);
    ADD_ALL(&u->soft, url_soft_words);
#undef ADD_ALL
}
static void urlfilter_free(UrlFilter *u) {
    strlist_free(&u->blocked); strlist_free(&u->strict); strlist_free(&u->hard); strlist_free(&u->soft);
}
// Adds one entry per non-empty line of a file ('#' starts a comment). Returns 0 or -1 with err.
static int strlist_load(StrList *l, const char *path, char *err, size_t errsize) {
    char *text, rerr[200];
    size_t len;
    if (read_file(path, &text, &len, rerr, sizeof rerr) != 0) { snprintf(err, errsize, "%s: %s", path, rerr); return -1; }
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t a = i, b = e;
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        if (b > a && text[a] != '#') {
            char *w = xstrndup(text + a, b - a);
            for (char *p = w; *p; p++) *p = (char)tolower((unsigned char)*p);
            strlist_add(l, w, b - a);
            free(w);
        }
        i = e + 1;
    }
    free(text);
    return 0;
}

// The host of a URL, lower-cased, without "www." (written into out).
static void url_host(const char *url, char *out, size_t outsize) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = 0;
    while (p[n] && p[n] != '/' && p[n] != ':' && p[n] != '?' && p[n] != '#') n++;
    if (n >= 4 && !strncasecmp(p, "www.", 4)) { p += 4; n -= 4; }
    if (n >= outsize) n = outsize - 1;
    for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)p[i]);
    out[n] = 0;
}

// Returns NULL to keep, else the reason.
static const char *url_filter(const UrlFilter *u, const char *url) {
    if (!url[0]) return NULL;
    char host[256];
    url_host(url, host, sizeof host);
    for (size_t i = 0; i < u->blocked.n; i++) {
        size_t hl = strlen(host), bl = strlen(u->blocked.s[i]);
        // the domain itself or any subdomain of it
        if (hl >= bl && !strcmp(host + hl - bl, u->blocked.s[i]) && (hl == bl || host[hl - bl - 1] == '.'))
            return "blocklisted domain";
    }
    size_t n = strlen(url);
    char *low = xstrndup(url, n);
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)low[i]);
    const char *why = NULL;
    for (size_t i = 0; i < u->strict.n && !why; i++) if (strstr(low, u->strict.s[i])) why = "strict sub-word in URL";
    size_t soft = 0;
    for (size_t i = 0; i < n && !why;) {
        while (i < n && !isalpha((unsigned char)low[i])) i++;
        size_t a = i;
        while (i < n && isalpha((unsigned char)low[i])) i++;
        if (a == i) break;
        for (size_t k = 0; k < u->hard.n; k++)
            if (strlen(u->hard.s[k]) == i - a && !memcmp(low + a, u->hard.s[k], i - a)) why = "hard word in URL";
        for (size_t k = 0; k < u->soft.n; k++)
            if (strlen(u->soft.s[k]) == i - a && !memcmp(low + a, u->soft.s[k], i - a)) soft++;
    }
    if (!why && soft >= 2) why = "two soft words in URL";
    free(low);
    return why;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 3: Gopher repetition removal (Rae et al. 2021, appendix A table A1; datatrove's GopherRepetitionFilter).
// With L = len(text) in characters, a document is removed when
//   duplicate paragraphs / paragraphs > 0.30   or  characters in duplicate paragraphs / L > 0.20
//   duplicate lines / lines > 0.30             or  characters in duplicate lines / L > 0.20
//   the most frequent n-gram's characters x its count / L > 0.20, 0.18, 0.16 for n = 2, 3, 4
//   characters in duplicated n-grams / L > 0.15, 0.14, 0.13, 0.12, 0.11, 0.10 for n = 5..10
// "Duplicate" counts every occurrence after the first. Paragraphs are split at runs of two or more newlines
// (of the stripped text), lines at runs of newlines.

typedef struct { Words words; HashSet set; uint64_t *wh; size_t whcap; } Scratch;
static void scratch_free(Scratch *s) { free(s->words.w); hs_free(&s->set); free(s->wh); memset(s, 0, sizeof *s); }

static const double rep_top_frac[] = {0.20, 0.18, 0.16};           // n = 2, 3, 4
static const double rep_dup_frac[] = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10}; // n = 5..10

// Counts duplicate pieces of text split at runs of `minrun` or more newlines: *dups elements, *dchars characters.
static size_t split_dups(Scratch *sc, const char *s, size_t n, size_t minrun, size_t *dups, size_t *dchars) {
    size_t breaks = 0;
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++) breaks++;
    hs_clear(&sc->set, breaks + 1);
    size_t pieces = 0;
    *dups = *dchars = 0;
    size_t a = 0;
    for (size_t i = 0; i <= n;) {
        size_t run = 0;
        while (i + run < n && s[i + run] == '\n') run++;
        if (i == n || run >= minrun) {
            int fresh;
            hs_add(&sc->set, hash_bytes(s + a, i - a, 7), &fresh);
            pieces++;
            if (!fresh) { (*dups)++; *dchars += utf8_chars(s + a, i - a); }
            if (i == n) break;
            i += run;
            a = i;
        } else {
            i += run ? run : 1;
        }
    }
    return pieces;
}

// Hash of words[i, i+k).
static uint64_t ngram_hash(const uint64_t *wh, size_t i, size_t k) {
    uint64_t h = 0x12345;
    for (size_t j = 0; j < k; j++) h = mix64(h ^ wh[i + j]);
    return h;
}


static const char *gopher_repetition(Scratch *sc, const char *text, size_t n) {
    if (n == 0) return "empty";
    size_t L = utf8_chars(text, n), dups, dchars;
    size_t a = 0, b = n; // strip
    while (a < b && isspace((unsigned char)text[a])) a++;
    while (b > a && isspace((unsigned char)text[b - 1])) b--;
    size_t paras = split_dups(sc, text + a, b - a, 2, &dups, &dchars);
    if ((double)dups / (double)paras > 0.30) return "dup_para_frac";
    if ((double)dchars / (double)L > 0.20) return "dup_para_char_frac";
    size_t lines = split_dups(sc, text, n, 1, &dups, &dchars);
    if ((double)dups / (double)lines > 0.30) return "dup_line_frac";
    if ((double)dchars / (double)L > 0.20) return "dup_line_char_frac";
    split_words(text, n, &sc->words);
    size_t nw = sc->words.n;
    Word *w = sc->words.w;
    grow((void **)&sc->wh, &sc->whcap, nw + 1, sizeof *sc->wh);
    for (size_t i = 0; i < nw; i++) sc->wh[i] = hash_bytes(w[i].s, w[i].len, 3);
    static const char *top_name[] = {"top_2_gram", "top_3_gram", "top_4_gram"};
    for (size_t k = 2; k <= 4; k++) {
        if (nw < k) continue;
        hs_clear(&sc->set, nw);
        // the most frequent n-gram; ties go to the one seen first, as Counter.most_common does
        size_t best = 0, best_i = 0;
        size_t *first = xmalloc(sc->set.cap * sizeof *first);
        for (size_t i = 0; i + k <= nw; i++) {
            int fresh;
            size_t slot = hs_add(&sc->set, ngram_hash(sc->wh, i, k), &fresh);
            if (fresh) first[slot] = i;
            uint32_t c = sc->set.count[slot];
            if (c > best || (c == best && first[slot] < best_i)) { best = c; best_i = first[slot]; }
        }
        free(first);
        size_t chars = k - 1;
        for (size_t j = 0; j < k; j++) chars += w[best_i + j].chars;
        if ((double)(chars * best) / (double)L > rep_top_frac[k - 2]) return top_name[k - 2];
    }
    static const char *dup_name[] = {"duplicated_5_n_grams", "duplicated_6_n_grams", "duplicated_7_n_grams",
                                     "duplicated_8_n_grams", "duplicated_9_n_grams", "duplicated_10_n_grams"};
    for (size_t k = 5; k <= 10; k++) {
        hs_clear(&sc->set, nw);
        size_t rep = 0;
        for (size_t i = 0; i + k <= nw;) {
            int fresh;
            hs_add(&sc->set, ngram_hash(sc->wh, i, k), &fresh);
            if (!fresh) {
                for (size_t j = 0; j < k; j++) rep += w[i + j].chars;
                i += k;
            } else {
                i++;
            }
        }
        if ((double)rep / (double)L > rep_dup_frac[k - 5]) return dup_name[k - 5];
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 4: Gopher quality filter (Rae et al. 2021 appendix A; datatrove's GopherQualityFilter defaults). With
// words as split above and "non-symbol words" those with a character that is not punctuation, a document is
// removed when it has fewer than 50 or more than 100,000 non-symbol words, their mean length is outside [3, 10]
// characters, '#' or ellipses ("..." and U+2026) per word exceed 0.1, more than 90% of lines start with a bullet
// ('-' or U+2022), more than 30% end with an ellipsis, fewer than 80% of words contain a letter, or fewer than 2 of
// the stop words {the, be, to, of, and, that, have, with} occur.

static size_t count_sub(const char *s, size_t n, const char *sub) {
    size_t m = strlen(sub), c = 0;
    for (size_t i = 0; i + m <= n;) {
        if (!memcmp(s + i, sub, m)) { c++; i += m; } else i++;
    }
    return c;
}

// Python's str.splitlines() boundaries that matter here: \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085, U+2028/9.
static size_t line_break_len(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') return i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
    if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) return 1;
    if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) return 2;
    if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) return 3;
    return 0;
}

static const char *gopher_quality(Scratch *sc, const char *text, size_t n) {
    split_words(text, n, &sc->words);
    size_t nw = sc->words.n, ns = 0, slen = 0, alpha = 0;
    Word *w = sc->words.w;
    static const char *stop[] = {"the", "be", "to", "of", "and", "that", "have", "with"};
    unsigned stop_seen = 0;
    for (size_t i = 0; i < nw; i++) {
        int non_symbol = 0, has_alpha = 0;
        for (size_t j = 0; j < w[i].len;) {
            uint32_t c = utf8_next(w[i].s, w[i].len, &j);
            if (!is_punct(c)) non_symbol = 1;
            if (is_alpha_cp(c)) has_alpha = 1;
        }
        if (non_symbol) { ns++; slen += w[i].chars; }
        alpha += has_alpha;
        for (size_t k = 0; k < 8; k++)
            if (w[i].len == strlen(stop[k]) && !memcmp(w[i].s, stop[k], w[i].len)) stop_seen |= 1u << k;
    }
    if (ns < 50) return "gopher_short_doc";
    if (ns > 100000) return "gopher_long_doc";
    double mean = (double)slen / (double)ns;
    if (mean < 3) return "gopher_below_avg_threshold";
    if (mean > 10) return "gopher_above_avg_threshold";
    if ((double)count_sub(text, n, "#") / (double)nw > 0.1) return "gopher_too_many_hashes";
    if ((double)(count_sub(text, n, "...") + count_sub(text, n, "\xE2\x80\xA6")) / (double)nw > 0.1)
        return "gopher_too_many_ellipsis";
    size_t lines = 0, bullets = 0, ellipses = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i, br = 0;
        while (e < n && !(br = line_break_len(text, n, e))) e++;
        size_t a = i, b = e;
        while (a < b && (isspace((unsigned char)text[a]))) a++;
        while (b > a && (isspace((unsigned char)text[b - 1]))) b--;
        lines++;
        if (b > a && (text[a] == '-' || (b - a >= 3 && !memcmp(text + a, "\xE2\x80\xA2", 3)))) bullets++;
        if ((b - a >= 3 && !memcmp(text + b - 3, "...", 3)) || (b - a >= 3 && !memcmp(text + b - 3, "\xE2\x80\xA6", 3))) ellipses++;
        i = e + br;
        if (e == n) break;
    }
    if (lines && (double)bullets / (double)lines > 0.9) return "gopher_too_many_bullets";
    if (lines && (double)ellipses / (double)lines > 0.3) return "gopher_too_many_end_ellipsis";
    if ((double)alpha / (double)nw < 0.8) return "gopher_below_alpha_threshold";
    if (__builtin_popcount(stop_seen) < 2) return "gopher_enough_stop_words";
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 5: line-wise corrections (RefinedWeb appendix G.2). Web pages keep navigation, counters and calls to
// action between their sentences. A line is removed when it is
//   mostly upper case (more than half of its letters),  only digits and punctuation,  a counter ("12 likes"),
//   a single word,  or short (at most 10 words) and made of boilerplate (a line starting with "sign in",
//   "log in", "share", ..., ending with "read more", "all rights reserved", ..., or containing "items in cart",
//   " | ", "privacy policy", ...).
// When the removed lines hold more than 5% of the document's words, the document is dropped instead of edited.

static const char *line_starts[] = {"sign in", "sign up", "log in", "login", "register", "subscribe", "share",
                                    "click here", "add to cart", "follow us", "skip to", "back to top"};
static const char *line_ends[] = {"read more", "read more...", "continue reading", "all rights reserved",
                                  "rights reserved", "see more", "show more"};
static const char *line_contains[] = {"items in cart", " | ", "privacy policy", "terms of use", "cookie",
                                      "social media", "all rights reserved"};
static const char *counter_words[] = {"likes", "like", "shares", "comments", "comment", "retweets", "reactions",
                                      "replies", "views", "followers", "reads", "votes"};

// Returns NULL when the line stays, else the rule that removes it.
static const char *line_rule(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (!n) return NULL;
    size_t letters = 0, upper = 0, digits = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalpha(c)) { letters++; upper += isupper(c) != 0; }
        else if (isdigit(c)) digits++;
        else if (!isspace(c) && !ispunct(c)) other++;
    }
    if (letters && upper * 2 > letters) return "uppercase line";
    if (!letters && !other && digits) return "numeric line";
    size_t words = count_words_ws(s, n);
    if (words == 1) return "one-word line";
    char low[256];
    size_t m = n < sizeof low - 1 ? n : sizeof low - 1;
    for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)s[i]);
    low[m] = 0;
    if (words == 2 && isdigit((unsigned char)low[0])) {
        const char *sp = strchr(low, ' ');
        for (size_t k = 0; sp && k < sizeof counter_words / sizeof *counter_words; k++)
            if (!strcmp(sp + 1, counter_words[k])) return "counter line";
    }
    if (words > 10) return NULL;
    for (size_t k = 0; k < sizeof line_starts / sizeof *line_starts; k++)
        if (!strncmp(low, line_starts[k], strlen(line_starts[k]))) return "boilerplate line";
    for (size_t k = 0; k < sizeof line_ends / sizeof *line_ends; k++)
        if (has_suffix(low, line_ends[k])) return "boilerplate line";
    for (size_t k = 0; k < sizeof line_contains / sizeof *line_contains; k++)
        if (strstr(low, line_contains[k])) return "boilerplate line";
    return NULL;
}

// Edits d in place. Returns NULL when kept (edited or not), else the reason it is dropped. *removed_lines
// receives the removed lines (joined with newlines) when it is not NULL.
static const char *linewise(Doc *d, Buf *removed_lines) {
    size_t total = count_words_ws(d->text, d->len), cut = 0;
    Buf keep = {0};
    if (removed_lines) removed_lines->len = 0;
    int first = 1;
    for (size_t i = 0; i <= d->len;) {
        const char *e = memchr(d->text + i, '\n', d->len - i);
        size_t len = e ? (size_t)(e - (d->text + i)) : d->len - i;
        if (line_rule(d->text + i, len)) {
            cut += count_words_ws(d->text + i, len);
            if (removed_lines) { if (removed_lines->len) buf_str(removed_lines, "\n"); buf_add(removed_lines, d->text + i, len); }
        } else {
            if (!first) buf_str(&keep, "\n");
            buf_add(&keep, d->text + i, len);
            first = 0;
        }
        i += len + 1;
        if (!e) break;
    }
    if (total && (double)cut / (double)total > 0.05) { free(keep.s); return "line corrections over 5% of words"; }
    if (cut) {
        free(d->text);
        d->text = keep.s ? keep.s : xstrndup("", 0);
        d->len = keep.len;
    } else {
        free(keep.s);
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 6: MinHash fuzzy deduplication (RefinedWeb 3.3 and appendix G.3). Each document's set of word 5-gram
// shingles gets 9,000 min-hashes; for two sets of Jaccard similarity s, one min-hash agrees with probability s.
// The hashes are cut into 450 bands of 20: a band agrees with probability s^20, and two documents are flagged when
// any band agrees, with probability
//     P(s) = 1 - (1 - s^20)^450          (P(0.8) = 0.9945, P(0.7) = 0.30, P(0.5) = 0.0004).
// Flagged pairs are joined transitively (union-find) and the first document of each cluster is kept.
//
// Hash family: a shingle x (32 bits of its 64-bit hash) goes through h_i(x) = fmix32(x ^ seed_i), MurmurHash3's
// 32-bit finaliser, a bijection that mixes every input bit into every output bit; 32-bit lanes keep the 9,000-hash
// inner loop vectorisable. tests/test_data.c measures P(s) against the formula.
//
// Memory is bounded for any number of documents: the 450 band keys of each document (64-bit hashes of its 20
// min-hashes) are streamed to a temporary file; then groups of bands, as many as the memory budget holds, are
// read back, sorted by key, and equal keys are unioned.

#define MH_BANDS 450
#define MH_ROWS 20
#define MH_HASHES (MH_BANDS * MH_ROWS)

typedef struct { uint32_t seed[MH_HASHES]; } MinHasher;

static void minhasher_build(MinHasher *m, uint64_t seed) {
    Rng r = rng_seed(seed ^ 0x6d696e68617368ull);
    for (size_t i = 0; i < MH_HASHES; i++) m->seed[i] = (uint32_t)rng_u64(&r);
}

static inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16; h *= 0x85ebca6bu;
    h ^= h >> 13; h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

// sig[i] = min over shingles of h_i(shingle). Blocks of 1,024 hashes keep seeds and minima in L1.
static void minhash_signature(const MinHasher *m, const uint64_t *sh, size_t k, uint32_t *sig) {
    for (size_t i = 0; i < MH_HASHES; i++) sig[i] = UINT32_MAX;
    for (size_t b = 0; b < MH_HASHES; b += 1024) {
        size_t e = b + 1024 < MH_HASHES ? b + 1024 : MH_HASHES;
        for (size_t j = 0; j < k; j++) {
            uint32_t x = (uint32_t)(sh[j] ^ (sh[j] >> 32));
            for (size_t i = b; i < e; i++) {
                uint32_t v = fmix32(x ^ m->seed[i]);
                sig[i] = v < sig[i] ? v : sig[i];
            }
        }
    }
}

static void band_keys(const uint32_t *sig, uint64_t *keys) {
    for (size_t b = 0; b < MH_BANDS; b++) {
        uint64_t k = hash_bytes(sig + b * MH_ROWS, MH_ROWS * sizeof *sig, b);
        keys[b] = k ? k : 1; // 0 is reserved for "document has no shingles"
    }
}

// Union-find over document indices; the root of a set is its smallest index, so the first document is kept.
static uint32_t uf_find(uint32_t *p, uint32_t x) {
    while (p[x] != x) { p[x] = p[p[x]]; x = p[x]; }
    return x;
}
static void uf_union(uint32_t *p, uint32_t a, uint32_t b) {
    a = uf_find(p, a); b = uf_find(p, b);
    if (a < b) p[b] = a; else if (b < a) p[a] = b;
}

typedef struct { uint64_t key; uint32_t doc, pad; } KeyDoc;

// LSD radix sort by key, 16 bits per pass.
static void radix_sort_keys(KeyDoc *a, size_t n) {
    KeyDoc *tmp = xmalloc(n * sizeof *tmp);
    size_t *cnt = xmalloc(65536 * sizeof *cnt);
    for (int shift = 0; shift < 64; shift += 16) {
        memset(cnt, 0, 65536 * sizeof *cnt);
        for (size_t i = 0; i < n; i++) cnt[(a[i].key >> shift) & 0xFFFF]++;
        size_t sum = 0;
        for (size_t i = 0; i < 65536; i++) { size_t c = cnt[i]; cnt[i] = sum; sum += c; }
        for (size_t i = 0; i < n; i++) tmp[cnt[(a[i].key >> shift) & 0xFFFF]++] = a[i];
        KeyDoc *t = a; a = tmp; tmp = t;
    }
    // four passes: the sorted data is back in the caller's array
    free(tmp);
    free(cnt);
}

typedef struct {
    MinHasher hasher;
    size_t mem_budget;   // bytes for one group of bands in memory
    size_t n;            // documents added
    FILE *keys;          // band keys, MH_BANDS per document, in a temporary file
    Buf norm; uint64_t *sh; size_t shcap; uint32_t *sig;
} MinHashDedup;

static int mhd_build(MinHashDedup *m, uint64_t seed, size_t mem_budget, char *err, size_t errsize) {
    memset(m, 0, sizeof *m);
    minhasher_build(&m->hasher, seed);
    m->mem_budget = mem_budget;
    m->keys = tmpfile();
    if (!m->keys) { snprintf(err, errsize, "minhash: cannot create a temporary file: %s", strerror(errno)); return -1; }
    m->sig = xmalloc(MH_HASHES * sizeof *m->sig);
    return 0;
}
static void mhd_free(MinHashDedup *m) {
    if (m->keys) fclose(m->keys);
    free(m->norm.s); free(m->sh); free(m->sig);
    memset(m, 0, sizeof *m);
}
// Computes the band keys of one text (all zero when it has no shingles).
static void mhd_keys(MinHashDedup *m, const char *text, size_t len, uint64_t *keys) {
    size_t k = shingles(text, len, &m->norm, &m->sh, &m->shcap);
    if (!k) { memset(keys, 0, MH_BANDS * sizeof *keys); return; }
    minhash_signature(&m->hasher, m->sh, k, m->sig);
    band_keys(m->sig, keys);
}
static int mhd_add_keys(MinHashDedup *m, const uint64_t *keys) {
    if (fwrite(keys, sizeof *keys, MH_BANDS, m->keys) != MH_BANDS) return -1;
    m->n++;
    return 0;
}

// Clusters the documents added so far: parent[i] is the kept document of i's cluster. Returns 0, or -1 with err.
static int mhd_cluster(MinHashDedup *m, uint32_t *parent, char *err, size_t errsize) {
    for (size_t i = 0; i < m->n; i++) parent[i] = (uint32_t)i;
    if (!m->n) return 0;
    size_t per_band = m->n * sizeof(KeyDoc) * 2; // the pairs and the radix sort's copy
    size_t group = m->mem_budget / (per_band ? per_band : 1);
    if (group < 1) group = 1;
    if (group > MH_BANDS) group = MH_BANDS;
    KeyDoc *pairs = xmalloc(group * m->n * sizeof *pairs);
    uint64_t *row = xmalloc(MH_BANDS * sizeof *row);
    // progress in band keys, MH_BANDS per document; reading a group's keys counts as half of its work, sorting
    // and joining them as the other half
    Progress p;
    progress_start(&p, "minhash bands", (double)MH_BANDS * (double)m->n, "M keys", 1e6);
    for (size_t g = 0; g < MH_BANDS; g += group) {
        size_t ge = g + group < MH_BANDS ? g + group : MH_BANDS, np = 0;
        if (fseek(m->keys, 0, SEEK_SET) != 0) break;
        for (size_t d = 0; d < m->n; d++) {
            progress_update(&p, (double)g * (double)m->n + 0.5 * (double)(ge - g) * (double)d);
            if (fread(row, sizeof *row, MH_BANDS, m->keys) != MH_BANDS) {
                snprintf(err, errsize, "minhash: cannot read back band keys: %s", strerror(errno));
                progress_finish(&p);
                free(pairs); free(row);
                return -1;
            }
            if (!row[0]) continue;
            for (size_t b = g; b < ge; b++) { pairs[np].key = row[b] ^ mix64(b); pairs[np].doc = (uint32_t)d; pairs[np].pad = 0; np++; }
        }
        radix_sort_keys(pairs, np);
        for (size_t i = 1; i < np; i++)
            if (pairs[i].key == pairs[i - 1].key) uf_union(parent, pairs[i - 1].doc, pairs[i].doc);
        progress_update(&p, (double)ge * (double)m->n);
    }
    progress_finish(&p);
    free(pairs);
    free(row);
    for (size_t i = 0; i < m->n; i++) parent[i] = uf_find(parent, (uint32_t)i);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 7: exact substring deduplication (RefinedWeb 3.3, after Lee et al. 2022, "Deduplicating Training Data
// Makes Language Models Better"). All documents' tokens are concatenated, each followed by a separator symbol
// unique to it (so no match crosses a document boundary), and a suffix array is built over the whole sequence.
// Two suffixes adjacent in the array share the longest common prefix that any pair does at that rank, so every
// span of >= min_len tokens occurring more than once shows up as an adjacent pair with lcp >= min_len; both
// copies of [pos, pos + lcp) are marked (a difference array keeps this O(n) however long the repeats), and the
// marked tokens are cut from all their copies.
//
// Suffix array: prefix doubling (Manber and Myers) with counting sorts, O(n log L) for repeats of length L;
// LCP: Kasai et al.'s O(n) scan.
//
// Progress: the suffixes told apart so far (distinct ranks) of all n. Every round costs the same, but the early
// rounds tell most suffixes apart and the last ones only the long repeats, so the ETA is optimistic.

static void suffix_array(const uint32_t *s, size_t n, size_t alphabet, uint32_t *sa, uint32_t *rk, Progress *prog) {
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    size_t m = alphabet > n ? alphabet : n;
    size_t *cnt = xmalloc((m + 1) * sizeof *cnt);
    for (size_t i = 0; i < n; i++) rk[i] = s[i];
    memset(cnt, 0, (m + 1) * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[rk[i]]++;
    for (size_t i = 1; i <= m; i++) cnt[i] += cnt[i - 1];
    for (size_t i = n; i-- > 0;) sa[--cnt[rk[i]]] = (uint32_t)i;
    for (size_t k = 1; k < n; k *= 2) {
        // order by the second key rk[i + k] (suffixes shorter than k first), then stable by the first key
        size_t p = 0;
        for (size_t i = n - k; i < n; i++) tmp[p++] = (uint32_t)i;
        for (size_t i = 0; i < n; i++) if (sa[i] >= k) tmp[p++] = sa[i] - (uint32_t)k;
        memset(cnt, 0, (m + 1) * sizeof *cnt);
        for (size_t i = 0; i < n; i++) cnt[rk[i]]++;
        for (size_t i = 1; i <= m; i++) cnt[i] += cnt[i - 1];
        for (size_t i = n; i-- > 0;) sa[--cnt[rk[tmp[i]]]] = tmp[i];
        // new ranks
        tmp[sa[0]] = 0;
        uint32_t r = 0;
        for (size_t i = 1; i < n; i++) {
            uint32_t a = sa[i - 1], b = sa[i];
            long ra = a + k < n ? (long)rk[a + k] : -1, rb = b + k < n ? (long)rk[b + k] : -1;
            if (rk[a] != rk[b] || ra != rb) r++;
            tmp[b] = r;
        }
        memcpy(rk, tmp, n * sizeof *rk);
        progress_update(prog, (double)r + 1);
        if ((size_t)r + 1 == n) break;
    }
    free(tmp);
    free(cnt);
}

// cut[i] = 1 for every position covered by a span of >= min_len tokens that occurs more than once.
static void repeated_spans(const uint32_t *s, size_t n, size_t alphabet, size_t min_len, unsigned char *cut) {
    memset(cut, 0, n);
    if (n < 2) return;
    uint32_t *sa = xmalloc(n * sizeof *sa), *rk = xmalloc(n * sizeof *rk);
    Progress p;
    progress_start(&p, "suffix array", (double)n, "M suffixes", 1e6);
    suffix_array(s, n, alphabet, sa, rk, &p); // rk is now the inverse of sa
    int32_t *diff = xcalloc(n + 1, sizeof *diff);
    size_t h = 0;
    for (size_t i = 0; i < n; i++) {
        if (rk[i] == 0) { h = 0; continue; }
        size_t j = sa[rk[i] - 1];
        while (i + h < n && j + h < n && s[i + h] == s[j + h]) h++;
        if (h >= min_len) { diff[i]++; diff[i + h]--; diff[j]++; diff[j + h]--; }
        if (h) h--;
    }
    int32_t run = 0;
    for (size_t i = 0; i < n; i++) { run += diff[i]; cut[i] = run > 0; }
    progress_update(&p, (double)n);
    progress_finish(&p);
    free(diff); free(sa); free(rk);
}

// The same by brute force, O(n^2 L): the reference that tests/test_data.c holds repeated_spans to.
void data_repeated_spans_naive(const uint32_t *s, size_t n, size_t min_len, unsigned char *cut);
void data_repeated_spans_naive(const uint32_t *s, size_t n, size_t min_len, unsigned char *cut) {
    memset(cut, 0, n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            size_t h = 0;
            while (j + h < n && s[i + h] == s[j + h]) h++;
            if (h >= min_len) { memset(cut + i, 1, h); memset(cut + j, 1, h); }
        }
}

// A tokenised document: ids and the end byte offset of each token in its text, so that cut tokens map back to
// the text they stand for.
typedef struct { int32_t *ids; uint32_t *end; size_t n; } TokDoc;

static void tokdoc_free(TokDoc *t) { free(t->ids); free(t->end); memset(t, 0, sizeof *t); }

// Word tokens, for when no tokenizer is given: each token is a run of non-space bytes with the white space that
// follows it (leading white space is a token of its own); ids come from a dictionary built on the fly.
typedef struct { HashSet set; uint32_t *id; size_t next; } WordVocab;

static void wordvocab_build(WordVocab *v) { memset(v, 0, sizeof *v); hs_clear(&v->set, 1 << 16); v->id = xmalloc(v->set.cap * sizeof *v->id); }
static void wordvocab_free(WordVocab *v) { hs_free(&v->set); free(v->id); memset(v, 0, sizeof *v); }
static uint32_t wordvocab_id(WordVocab *v, const char *s, size_t n) {
    if (v->set.n * 2 + 2 > v->set.cap) { // rehash into a table twice as large
        HashSet big = {0};
        hs_clear(&big, v->set.cap);
        uint32_t *id = xmalloc(big.cap * sizeof *id);
        for (size_t k = 0; k < v->set.cap; k++)
            if (v->set.slot[k]) { int f; size_t slot = hs_add(&big, v->set.slot[k], &f); id[slot] = v->id[k]; }
        hs_free(&v->set); free(v->id);
        v->set = big; v->id = id;
    }
    int fresh;
    size_t slot = hs_add(&v->set, hash_bytes(s, n, 11), &fresh);
    if (fresh) v->id[slot] = (uint32_t)v->next++;
    return v->id[slot];
}
static void word_tokenise(WordVocab *v, const char *text, size_t len, TokDoc *t) {
    size_t cap = 16;
    t->ids = xmalloc(cap * sizeof *t->ids); t->end = xmalloc(cap * sizeof *t->end); t->n = 0;
    for (size_t i = 0; i < len;) {
        size_t a = i;
        while (i < len && !isspace((unsigned char)text[i])) i++;
        while (i < len && isspace((unsigned char)text[i])) i++;
        if (t->n == cap) { cap *= 2; t->ids = xrealloc(t->ids, cap * sizeof *t->ids); t->end = xrealloc(t->end, cap * sizeof *t->end); }
        t->ids[t->n] = (int32_t)wordvocab_id(v, text + a, i - a);
        t->end[t->n++] = (uint32_t)i;
    }
}

// Tokens with the tokenizer; byte offsets from each token's bytes (byte-level BPE has no normaliser, so the
// tokens' bytes concatenate back to the text).
static int bpe_tokenise(Tokenizer *tk, const char *text, size_t len, TokDoc *t) {
    TokenIds ids = {0};
    if (tokenizer_encode(tk, text, len, &ids) != 0) { token_ids_free(&ids); return -1; }
    t->n = ids.len;
    t->ids = ids.ids ? ids.ids : xmalloc(sizeof *t->ids);
    t->end = xmalloc((t->n ? t->n : 1) * sizeof *t->end);
    size_t at = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t bl = 0;
        if (!tokenizer_token_bytes(tk, t->ids[i], &bl)) bl = 0;
        at += bl;
        t->end[i] = (uint32_t)(at < len ? at : len);
    }
    return 0;
}

// Cuts the repeated spans from docs[0, n) (only those with keep[i]), rewriting their tokens and texts.
// Returns the number of tokens cut; *chars_removed receives the characters cut.
static size_t exact_substring_dedup(Doc **docs, TokDoc *toks, size_t n, size_t vocab, size_t min_len,
                                    Buf *removed, size_t *chars_removed) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += toks[i].n + 1;
    if (total >= UINT32_MAX - n) { fprintf(stderr, "data: exact substring: corpus over 4G tokens, stage skipped\n"); return 0; }
    uint32_t *s = xmalloc((total ? total : 1) * sizeof *s);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < toks[i].n; j++) s[at++] = (uint32_t)toks[i].ids[j];
        s[at++] = (uint32_t)(vocab + i); // this document's separator
    }
    unsigned char *cut = xmalloc(total ? total : 1);
    repeated_spans(s, total, vocab + n, min_len, cut);
    size_t ncut = 0;
    *chars_removed = 0;
    at = 0;
    for (size_t i = 0; i < n; i++) {
        TokDoc *t = &toks[i];
        Doc *d = docs[i];
        size_t any = 0;
        for (size_t j = 0; j < t->n; j++) any += cut[at + j];
        if (any) {
            Buf text = {0};
            size_t k = 0, prev = 0;
            for (size_t j = 0; j < t->n; j++) {
                size_t beg = prev, end = t->end[j];
                prev = end;
                if (cut[at + j]) {
                    *chars_removed += utf8_chars(d->text + beg, end - beg);
                    if (removed) buf_add(removed, d->text + beg, end - beg);
                    continue;
                }
                buf_add(&text, d->text + beg, end - beg);
                t->ids[k] = t->ids[j];
                t->end[k++] = (uint32_t)text.len;
            }
            if (removed) buf_str(removed, "\n");
            t->n = k;
            free(d->text);
            d->text = text.s ? text.s : xstrndup("", 0);
            d->len = text.len;
            ncut += any;
        }
        at += t->n + any + 1;
    }
    free(s);
    free(cut);
    return ncut;
}

// ---------------------------------------------------------------------------------------------------------------
// Stage 8: URL deduplication. The first document of every URL is kept (URLs compared lower-cased, without the
// scheme, a leading "www.", a trailing '/' or a '#fragment').

static uint64_t url_key(const char *url) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    if (!strncasecmp(p, "www.", 4)) p += 4;
    size_t n = strcspn(p, "#");
    while (n && p[n - 1] == '/') n--;
    char *low = xstrndup(p, n);
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)low[i]);
    uint64_t h = hash_bytes(low, n, 13);
    free(low);
    return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Shards (layout in data.h). A ShardWriter appends documents and starts a new file every `max_tokens` tokens;
// each file is written to a temporary name and renamed when complete, so a crash never leaves a half shard.

static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get_u32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }

typedef struct {
    char *dir, *prefix;
    uint32_t eot, vocab, width;
    size_t max_tokens, index;
    FILE *f;
    char *tmp_path, *path;              // of the open file
    uint64_t n_tokens, n_docs;          // in the open file
    uint64_t total_tokens, total_docs;  // over all files
    StrList written;
    // version 2 (trees): the context, and the per-token arrays and message table of the open file, appended
    // after its ids when the file is finished
    uint32_t context;
    uint32_t *msg, *pos; size_t tok_cap;
    unsigned char *table; size_t table_cap;
    uint64_t n_messages;
} ShardWriter;

static void shardwriter_build(ShardWriter *w, const char *dir, const char *prefix, uint32_t eot, uint32_t vocab,
                              size_t max_tokens) {
    memset(w, 0, sizeof *w);
    w->dir = xstrndup(dir, strlen(dir));
    w->prefix = xstrndup(prefix, strlen(prefix));
    w->eot = eot;
    w->vocab = vocab;
    w->width = vocab <= 65536 ? 2 : 4;
    w->max_tokens = max_tokens ? max_tokens : 100000000;
}

static int shardwriter_write_ids(ShardWriter *w, const int32_t *ids, size_t n, int eot_first, char *err, size_t errsize);

// A tree file ends with one padding token (so that its last window has its T+1), then its per-token arrays and
// message table.
static int shardwriter_finish_trees(ShardWriter *w) {
    int32_t pad = (int32_t)w->eot;
    char e[8];
    if (shardwriter_write_ids(w, &pad, 1, 0, e, sizeof e) != 0) return -1;
    w->msg[w->n_tokens] = DATA_MSG_PAD;
    w->pos[w->n_tokens] = 0;
    w->n_tokens++;
    w->total_tokens++;
    unsigned char b[4];
    for (int a = 0; a < 2; a++)
        for (uint64_t i = 0; i < w->n_tokens; i++) {
            put_u32(b, a ? w->pos[i] : w->msg[i]);
            if (fwrite(b, 1, 4, w->f) != 4) return -1;
        }
    return fwrite(w->table, 1, 16 * w->n_messages, w->f) == 16 * w->n_messages ? 0 : -1;
}

static int shardwriter_finish_file(ShardWriter *w, char *err, size_t errsize) {
    if (!w->f) return 0;
    int bad = w->context ? shardwriter_finish_trees(w) != 0 : 0;
    unsigned char h[DATA_SHARD_HEADER] = {0};
    put_u32(h, DATA_SHARD_MAGIC); put_u32(h + 4, w->context ? DATA_SHARD_VERSION_TREES : DATA_SHARD_VERSION); put_u32(h + 8, w->width);
    put_u32(h + 12, w->eot); put_u64(h + 16, w->n_tokens); put_u64(h + 24, w->n_docs); put_u32(h + 32, w->vocab);
    put_u32(h + 36, w->context); put_u64(h + 40, w->n_messages);
    bad |= fseek(w->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->f) != sizeof h;
    bad |= fclose(w->f) != 0;
    w->f = NULL;
    if (bad || rename(w->tmp_path, w->path) != 0) {
        snprintf(err, errsize, "%s: cannot write: %s", w->path, strerror(errno));
        remove(w->tmp_path);
        return -1;
    }
    strlist_add(&w->written, w->path, strlen(w->path));
    return 0;
}

// Starts a new file when the open one would grow past max_tokens with `more` tokens (and holds something).
static int shardwriter_room(ShardWriter *w, size_t more, char *err, size_t errsize) {
    if (w->f && w->n_tokens + more > w->max_tokens && w->n_tokens > 0)
        if (shardwriter_finish_file(w, err, errsize) != 0) return -1;
    if (!w->f) {
        Buf p = {0}, t = {0};
        buf_printf(&p, "%s/%s_%03zu.bin", w->dir, w->prefix, w->index++);
        buf_printf(&t, "%s.tmp", p.s);
        free(w->path); free(w->tmp_path);
        w->path = p.s;
        w->tmp_path = t.s;
        w->f = fopen(w->tmp_path, "wb");
        if (!w->f) { snprintf(err, errsize, "%s: cannot create: %s", w->tmp_path, strerror(errno)); return -1; }
        unsigned char h[DATA_SHARD_HEADER] = {0};
        if (fwrite(h, 1, sizeof h, w->f) != sizeof h) { snprintf(err, errsize, "%s: cannot write", w->tmp_path); return -1; }
        w->n_tokens = w->n_docs = w->n_messages = 0;
    }
    return 0;
}

// Writes ids (after one EOT when eot_first) in the file's width; counts nothing.
static int shardwriter_write_ids(ShardWriter *w, const int32_t *ids, size_t n, int eot_first, char *err, size_t errsize) {
    unsigned char buf[4096];
    size_t fill = 0, total = n + (eot_first ? 1 : 0);
    for (size_t i = 0; i < total; i++) {
        uint32_t id = eot_first ? (i == 0 ? w->eot : (uint32_t)ids[i - 1]) : (uint32_t)ids[i];
        if (w->width == 2) { buf[fill] = (unsigned char)id; buf[fill + 1] = (unsigned char)(id >> 8); fill += 2; }
        else { put_u32(buf + fill, id); fill += 4; }
        if (fill + 4 > sizeof buf || i + 1 == total) {
            if (fwrite(buf, 1, fill, w->f) != fill) { snprintf(err, errsize, "%s: cannot write: %s", w->tmp_path, strerror(errno)); return -1; }
            fill = 0;
        }
    }
    return 0;
}

// Appends one document: EOT, then its ids.
static int shardwriter_add(ShardWriter *w, const int32_t *ids, size_t n, char *err, size_t errsize) {
    if (shardwriter_room(w, n + 1, err, errsize) != 0 || shardwriter_write_ids(w, ids, n, 1, err, errsize) != 0) return -1;
    w->n_tokens += n + 1;
    w->n_docs++;
    w->total_tokens += n + 1;
    w->total_docs++;
    return 0;
}
static int shardwriter_close(ShardWriter *w, char *err, size_t errsize) {
    int rc = shardwriter_finish_file(w, err, errsize);
    free(w->dir); free(w->prefix); free(w->path); free(w->tmp_path);
    free(w->msg); free(w->pos); free(w->table);
    w->dir = w->prefix = w->path = w->tmp_path = NULL;
    w->msg = w->pos = NULL;
    w->table = NULL;
    return rc;
}

// The bytes a shard with this header must have: ids, and for trees the per-token arrays and the message table.
static uint64_t shard_bytes(const ShardInfo *info) {
    uint64_t n = DATA_SHARD_HEADER + info->n_tokens * info->token_bytes;
    if (info->version == DATA_SHARD_VERSION_TREES) n += info->n_tokens * 8 + info->n_messages * 16;
    return n;
}

int shard_info(const char *path, ShardInfo *info, char *err, size_t errsize) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    unsigned char h[DATA_SHARD_HEADER];
    size_t got = fread(h, 1, sizeof h, f);
    struct stat st;
    int st_ok = fstat(fileno(f), &st) == 0;
    fclose(f);
    if (got < 8 || get_u32(h) != DATA_SHARD_MAGIC) { snprintf(err, errsize, "%s: byte 0: not a data shard (bad magic)", path); return -1; }
    info->version = get_u32(h + 4);
    if (info->version != DATA_SHARD_VERSION && info->version != DATA_SHARD_VERSION_TREES) { snprintf(err, errsize, "%s: byte 4: unsupported shard version %u", path, info->version); return -1; }
    if (got < sizeof h) { snprintf(err, errsize, "%s: byte %zu: truncated header", path, got); return -1; }
    info->token_bytes = get_u32(h + 8);
    info->eot = get_u32(h + 12);
    info->n_tokens = get_u64(h + 16);
    info->n_docs = get_u64(h + 24);
    info->vocab_size = get_u32(h + 32);
    info->context = get_u32(h + 36);
    info->n_messages = get_u64(h + 40);
    if (info->token_bytes != 2 && info->token_bytes != 4) { snprintf(err, errsize, "%s: byte 8: token width %u is not 2 or 4", path, info->token_bytes); return -1; }
    if (info->vocab_size == 0 || info->eot >= info->vocab_size) { snprintf(err, errsize, "%s: byte 12: eot %u outside vocab %u", path, info->eot, info->vocab_size); return -1; }
    int trees = info->version == DATA_SHARD_VERSION_TREES;
    if (trees ? info->context == 0 || info->context > (1u << 24) : info->context != 0) { snprintf(err, errsize, "%s: byte 36: context %u does not fit version %u", path, info->context, info->version); return -1; }
    if (trees ? info->n_messages > info->n_tokens : info->n_messages != 0) { snprintf(err, errsize, "%s: byte 40: %llu messages for %llu tokens", path, (unsigned long long)info->n_messages, (unsigned long long)info->n_tokens); return -1; }
    if (!st_ok || info->n_tokens > ((uint64_t)1 << 40) || (uint64_t)st.st_size != shard_bytes(info)) {
        snprintf(err, errsize, "%s: byte %lld: truncated or oversized: header says %llu tokens", path,
                 st_ok ? (long long)st.st_size : 0LL, (unsigned long long)info->n_tokens);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// The training data loader (API and batch layout in data.h). Shards are memory-mapped. The windows of an epoch
// are visited in a pseudo-random order given by a bijection of [0, W) built from a 4-round Feistel network on
// the next power of two with cycle walking: any window is found in O(1) from (seed, epoch, index), so the loader
// needs no permutation table and its position is two numbers.

typedef struct {
    const unsigned char *map; size_t map_len;
    ShardInfo info;
    uint64_t windows, first_window; // windows in this shard, index of its first window overall
} LoaderShard;

struct DataLoader {
    LoaderShard *shard; size_t nshard;
    size_t B, T;
    uint64_t seed, windows, batches;
    int rank, world, shuffle, trees;
    uint64_t epoch, batch, fingerprint;
    uint32_t vocab;
    unsigned bits; // of the Feistel domain
};

static uint32_t shard_token(const unsigned char *map, uint32_t width, uint64_t i) {
    const unsigned char *p = map + DATA_SHARD_HEADER + i * width;
    return width == 2 ? (uint32_t)(p[0] | (uint32_t)p[1] << 8) : get_u32(p);
}
// The version 2 arrays (data.h): a token's message and position, a message's parent, flags and subtree end.
static const unsigned char *shard_msgs(const unsigned char *map, const ShardInfo *in) { return map + DATA_SHARD_HEADER + in->n_tokens * in->token_bytes; }
static uint32_t shard_msg(const unsigned char *map, const ShardInfo *in, uint64_t i) { return get_u32(shard_msgs(map, in) + 4 * i); }
static uint32_t shard_pos(const unsigned char *map, const ShardInfo *in, uint64_t i) { return get_u32(shard_msgs(map, in) + 4 * (in->n_tokens + i)); }
static const unsigned char *shard_message(const unsigned char *map, const ShardInfo *in, uint32_t m) {
    return shard_msgs(map, in) + 8 * in->n_tokens + 16 * (uint64_t)m;
}

// Checks a shard and maps it into memory. Returns 0, or -1 with err.
static int shard_map(const char *path, ShardInfo *info, const unsigned char **map, size_t *len, char *err, size_t errsize) {
    if (shard_info(path, info, err, errsize) != 0) return -1;
    int fd = open(path, O_RDONLY);
    *len = shard_bytes(info);
    void *m = fd >= 0 ? mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (fd >= 0) close(fd);
    if (m == MAP_FAILED) { snprintf(err, errsize, "%s: cannot map: %s", path, strerror(errno)); return -1; }
    // every id must index the model's embedding table, every tree index its table: one pass, at memory speed
    const unsigned char *p = (const unsigned char *)m + DATA_SHARD_HEADER;
    uint64_t bad = UINT64_MAX;
    const char *what = NULL;
    uint32_t val = 0;
    for (uint64_t i = 0; i < info->n_tokens && bad == UINT64_MAX; i++) {
        uint32_t id = info->token_bytes == 2 ? (uint32_t)(p[2 * i] | (uint32_t)p[2 * i + 1] << 8) : get_u32(p + 4 * i);
        if (id >= info->vocab_size) { bad = DATA_SHARD_HEADER + i * info->token_bytes; what = "token id"; val = id; }
    }
    if (info->version == DATA_SHARD_VERSION_TREES) {
        const unsigned char *q = shard_msgs(m, info);
        for (uint64_t i = 0; i < info->n_tokens && bad == UINT64_MAX; i++) {
            uint32_t msg = get_u32(q + 4 * i), pos = get_u32(q + 4 * (info->n_tokens + i));
            if (msg < DATA_MSG_PLAIN && msg >= info->n_messages) { bad = (uint64_t)(q - p) + DATA_SHARD_HEADER + 4 * i; what = "message index"; val = msg; }
            else if (pos >= info->context) { bad = (uint64_t)(q - p) + DATA_SHARD_HEADER + 4 * (info->n_tokens + i); what = "position id"; val = pos; }
        }
        for (uint64_t k = 0; k < info->n_messages && bad == UINT64_MAX; k++) {
            const unsigned char *e = shard_message(m, info, (uint32_t)k);
            uint32_t parent = get_u32(e);
            if (parent != DATA_NO_PARENT && parent >= k) { bad = (uint64_t)(e - (const unsigned char *)m); what = "parent"; val = parent; }
            else if (get_u64(e + 8) >= info->n_tokens) { bad = (uint64_t)(e - (const unsigned char *)m) + 8; what = "subtree end"; val = (uint32_t)get_u64(e + 8); }
        }
    }
    if (bad != UINT64_MAX) {
        if (!strcmp(what, "token id"))
            snprintf(err, errsize, "%s: byte %llu: token id %u is not below the vocabulary size %u", path,
                     (unsigned long long)bad, val, info->vocab_size);
        else
            snprintf(err, errsize, "%s: byte %llu: %s %u out of range", path, (unsigned long long)bad, what, val);
        munmap(m, *len);
        return -1;
    }
    *map = m;
    return 0;
}

// A bijection of [0, 2^bits) (bits even): four Feistel rounds on two halves, keyed by (seed, epoch, round).
static uint64_t feistel(const DataLoader *dl, uint64_t x) {
    unsigned half = dl->bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1, L = x >> half, R = x & mask;
    for (uint64_t round = 0; round < 4; round++) {
        uint64_t f = mix64(R ^ mix64(dl->seed ^ mix64(dl->epoch * 4 + round + 1))) & mask;
        uint64_t t = R;
        R = L ^ f;
        L = t;
    }
    return (L << half) | R;
}

// The window at position i of the current epoch's order.
static uint64_t loader_window(const DataLoader *dl, uint64_t i) {
    if (!dl->shuffle) return i;
    uint64_t x = i;
    do x = feistel(dl, x); while (x >= dl->windows);
    return x;
}

// The shard holding window w (the last with first_window <= w) and the shard index of the window's first token.
static const LoaderShard *loader_locate(const DataLoader *dl, uint64_t w, uint64_t *start) {
    size_t lo = 0, hi = dl->nshard;
    while (hi - lo > 1) { size_t mid = (lo + hi) / 2; if (dl->shard[mid].first_window <= w) lo = mid; else hi = mid; }
    *start = (w - dl->shard[lo].first_window) * dl->T;
    return &dl->shard[lo];
}

// One window as the four rows of dataloader_next_batch. Plain shards: the next token, t, T-1. Tree shards: the
// rules of data.h, from the token's message, the next token's message and the message table; span_end is clamped
// to [t, T-1] so that a damaged shard can never hand the model a mask outside its row.
static void loader_read_rows(const DataLoader *dl, uint64_t w, int32_t *in, int32_t *tg, int32_t *pos, int32_t *se) {
    uint64_t start;
    const LoaderShard *s = loader_locate(dl, w, &start);
    const ShardInfo *fi = &s->info;
    size_t T = dl->T;
    int trees = fi->version == DATA_SHARD_VERSION_TREES;
    uint32_t next = shard_token(s->map, fi->token_bytes, start), mnext = trees ? shard_msg(s->map, fi, start) : DATA_MSG_PLAIN;
    for (size_t t = 0; t < T; t++) {
        uint32_t id = next, m = mnext;
        next = shard_token(s->map, fi->token_bytes, start + t + 1);
        mnext = trees ? shard_msg(s->map, fi, start + t + 1) : DATA_MSG_PLAIN;
        in[t] = (int32_t)id;
        if (m == DATA_MSG_PLAIN) {
            tg[t] = mnext == DATA_MSG_PLAIN ? (int32_t)next : DATA_IGNORE; // plain text never predicts into a tree
            pos[t] = (int32_t)t;
            se[t] = (int32_t)T - 1;
        } else if (m == DATA_MSG_PAD) {
            tg[t] = DATA_IGNORE;
            pos[t] = 0;
            se[t] = (int32_t)t;
        } else {
            const unsigned char *e = shard_message(s->map, fi, m);
            if (mnext == m) tg[t] = get_u32(e + 4) & DATA_MSG_REPEATED ? DATA_IGNORE : (int32_t)next; // inside a message
            else if (mnext < fi->n_messages && get_u32(shard_message(s->map, fi, mnext)) == m) tg[t] = (int32_t)next; // its first child
            else tg[t] = get_u32(e + 4) & DATA_MSG_CUT ? DATA_IGNORE : (int32_t)fi->eot; // a leaf's last token, unless cut
            pos[t] = (int32_t)shard_pos(s->map, fi, start + t);
            uint64_t end = get_u64(e + 8);
            se[t] = end < start + t ? (int32_t)t : end - start >= T ? (int32_t)T - 1 : (int32_t)(end - start);
        }
    }
}

static void dataloader_unmap(DataLoader *dl) {
    for (size_t i = 0; i < dl->nshard; i++) if (dl->shard[i].map) munmap((void *)dl->shard[i].map, dl->shard[i].map_len);
    free(dl->shard);
    free(dl);
}

static DataLoader *loader_open(const char *const *paths, size_t npaths, size_t B, size_t T, uint64_t seed, int rank,
                               int world, int shuffle, char *err, size_t errsize) {
    if (!npaths) { snprintf(err, errsize, "data loader: no shard files"); return NULL; }
    if (!B || !T) { snprintf(err, errsize, "data loader: B and T must be positive (B=%zu T=%zu)", B, T); return NULL; }
    if (world < 1 || rank < 0 || rank >= world) { snprintf(err, errsize, "data loader: rank %d outside world of %d", rank, world); return NULL; }
    DataLoader *dl = xcalloc(1, sizeof *dl);
    dl->shard = xcalloc(npaths, sizeof *dl->shard);
    dl->B = B; dl->T = T; dl->seed = seed; dl->rank = rank; dl->world = world; dl->shuffle = shuffle;
    uint64_t fp = mix64(B) ^ mix64(T * 3 + 1) ^ mix64(seed + 7) ^ mix64((uint64_t)rank * 131 + (uint64_t)world) ^ (uint64_t)shuffle;
    for (size_t i = 0; i < npaths; i++) {
        LoaderShard *s = &dl->shard[i];
        if (shard_map(paths[i], &s->info, &s->map, &s->map_len, err, errsize) != 0) { dataloader_unmap(dl); return NULL; }
        dl->nshard = i + 1;
        if (s->info.version == DATA_SHARD_VERSION_TREES && s->info.context != T) {
            snprintf(err, errsize, "%s: trees packed for context %u, the loader asks for T = %zu (pack them again: data trees --context %zu)",
                     paths[i], s->info.context, T, T);
            dataloader_unmap(dl);
            return NULL;
        }
        dl->trees |= s->info.version == DATA_SHARD_VERSION_TREES;
        s->windows = s->info.n_tokens > T ? (s->info.n_tokens - 1) / T : 0;
        s->first_window = dl->windows;
        dl->windows += s->windows;
        if (s->info.vocab_size > dl->vocab) dl->vocab = s->info.vocab_size;
        fp = mix64(fp ^ s->info.n_tokens ^ mix64(s->info.n_docs + i));
        if (s->info.version == DATA_SHARD_VERSION_TREES) fp = mix64(fp ^ mix64(s->info.n_messages * 5 + s->info.context));
    }
    dl->fingerprint = fp;
    uint64_t per_batch = (uint64_t)B * (uint64_t)world;
    dl->batches = shuffle ? dl->windows / per_batch : (dl->windows + per_batch - 1) / per_batch;
    if (dl->batches == 0 || (!shuffle && dl->windows < (uint64_t)rank + 1)) {
        snprintf(err, errsize, "%s: %llu windows of %zu+1 tokens, fewer than one batch of %zu x %d ranks needs",
                 paths[0], (unsigned long long)dl->windows, T, B, world);
        dataloader_unmap(dl);
        return NULL;
    }
    dl->bits = 2; // even, so the Feistel halves are equal; cycle walking then takes under 4 steps on average
    while (((uint64_t)1 << dl->bits) < dl->windows) dl->bits += 2;
    return dl;
}

DataLoader *dataloader_open(const char *const *paths, size_t npaths, size_t B, size_t T, uint64_t seed, int rank,
                            int world, char *err, size_t errsize) {
    return loader_open(paths, npaths, B, T, seed, rank, world, 1, err, errsize);
}
DataLoader *dataloader_open_val(const char *const *paths, size_t npaths, size_t B, size_t T, int rank, int world,
                                char *err, size_t errsize) {
    return loader_open(paths, npaths, B, T, 0, rank, world, 0, err, errsize);
}

int dataloader_next_batch(DataLoader *dl, int32_t *inputs, int32_t *targets, int32_t *pos, int32_t *span_end) {
    if (dl->batch >= dl->batches) {
        if (!dl->shuffle) return 0;
        dl->epoch++;
        dl->batch = 0;
    }
    uint64_t base = (dl->batch * (uint64_t)dl->world + (uint64_t)dl->rank) * dl->B;
    // validation: the last batch may run past the windows; its rows wrap to the start of the pass
    for (size_t b = 0; b < dl->B; b++) {
        size_t o = b * dl->T;
        loader_read_rows(dl, loader_window(dl, (base + b) % dl->windows), inputs + o, targets + o, pos + o, span_end + o);
    }
    dl->batch++;
    return 1;
}

DataPos dataloader_tell(const DataLoader *dl) {
    DataPos p = {dl->epoch, dl->batch, dl->fingerprint, 0};
    return p;
}
int dataloader_seek(DataLoader *dl, DataPos pos, char *err, size_t errsize) {
    if (pos.fingerprint != dl->fingerprint) { snprintf(err, errsize, "data loader: position belongs to other data or settings"); return -1; }
    if (pos.batch > dl->batches) { snprintf(err, errsize, "data loader: position batch %llu beyond %llu per epoch", (unsigned long long)pos.batch, (unsigned long long)dl->batches); return -1; }
    dl->epoch = pos.epoch;
    dl->batch = pos.batch;
    return 0;
}
void dataloader_rewind(DataLoader *dl) { dl->epoch = 0; dl->batch = 0; }
size_t dataloader_batches_per_epoch(const DataLoader *dl) { return (size_t)dl->batches; }
uint32_t dataloader_vocab_size(const DataLoader *dl) { return dl->vocab; }
int dataloader_has_trees(const DataLoader *dl) { return dl->trees; }
void dataloader_close(DataLoader *dl) { if (dl) dataloader_unmap(dl); }

// ---------------------------------------------------------------------------------------------------------------
// Conversation trees (docs/trees.md). A thread whose replies branch is packed into one sequence in depth-first
// order, so that every message's subtree is a contiguous range; the attention mask then needs one number per
// token, span_end (data.h), and RoPE gets each token's position on its own root-to-leaf path. Reading: JSONL, a
// tree per line (nested "replies" or "children") or a message per line ("id", "parent", "text", "author").
// Packing: trees into windows of T tokens, several per window, never across two; a tree longer than T is split
// into pieces that repeat the ancestors of what they carry.

typedef struct {
    char *text, *author;  // author NULL when absent
    size_t len, alen;
    uint32_t parent;      // forest index of the parent (always smaller), DATA_NO_PARENT for a root
    uint32_t depth;       // 0 for a root
} TreeMsg;

typedef struct {
    TreeMsg *msg; size_t n, cap;              // every tree's messages depth first, one tree after the other
    size_t *tree; size_t ntrees, tree_cap;    // tree k is messages [tree[k], tree[k+1]) (the last one up to n)
    // what the reader skipped, in messages (lines for bad_lines), with the first example
    size_t bad_lines, bad_msgs, dup_ids, orphans, cycles;
    char example[256];
} Forest;

static void forest_free(Forest *f) {
    for (size_t i = 0; i < f->n; i++) { free(f->msg[i].text); free(f->msg[i].author); }
    free(f->msg); free(f->tree);
    memset(f, 0, sizeof *f);
}
static size_t forest_tree_end(const Forest *f, size_t k) { return k + 1 < f->ntrees ? f->tree[k + 1] : f->n; }

static void forest_note(Forest *f, size_t *counter, size_t count, const char *fmt, ...) {
    *counter += count;
    if (!f->example[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->example, sizeof f->example, fmt, ap);
        va_end(ap);
    }
}

static void forest_push(Forest *f, const char *text, size_t len, const char *author, size_t alen, uint32_t parent) {
    grow((void **)&f->msg, &f->cap, f->n + 1, sizeof *f->msg);
    TreeMsg *m = &f->msg[f->n];
    m->text = xstrndup(text, len); m->len = len;
    m->author = author ? xstrndup(author, alen) : NULL; m->alen = author ? alen : 0;
    m->parent = parent;
    m->depth = parent == DATA_NO_PARENT ? 0 : f->msg[parent].depth + 1;
    if (parent == DATA_NO_PARENT) {
        grow((void **)&f->tree, &f->tree_cap, f->ntrees + 1, sizeof *f->tree);
        f->tree[f->ntrees++] = f->n;
    }
    f->n++;
}

// A message's text and author from its JSON object, or NULL with *why set.
static const Json *tree_text(const Json *o, const Json **author, const char **why) {
    const Json *t = json_get(o, "text");
    *author = json_get(o, "author");
    if (*author && (*author)->type == JSON_NULL) *author = NULL;
    if (!t || t->type != JSON_STRING) { *why = "no \"text\" string"; return NULL; }
    if (!utf8_valid(t->str, t->len)) { *why = "text is not valid UTF-8"; return NULL; }
    if (*author && ((*author)->type != JSON_STRING || !utf8_valid((*author)->str, (*author)->len))) { *why = "\"author\" is not a UTF-8 string"; return NULL; }
    return t;
}

// The replies of a nested message: "replies" or "children", NULL when it has none; *bad when not an array.
static const Json *tree_replies(const Json *o, int *bad) {
    const Json *r = json_get(o, "replies");
    if (!r) r = json_get(o, "children");
    *bad = r && r->type != JSON_ARRAY && r->type != JSON_NULL;
    return r && r->type == JSON_ARRAY ? r : NULL;
}

// Messages in a nested subtree (a reply that is not an object counts as one).
static size_t nested_count(const Json *o) {
    size_t n = 1;
    int bad;
    const Json *r = o->type == JSON_OBJECT ? tree_replies(o, &bad) : NULL;
    for (size_t i = 0; r && i < r->count; i++) n += nested_count(&r->items[i]);
    return n;
}

// Appends a nested tree depth first. A message without a valid text is dropped with its replies. (Recursion is
// bounded by json.c's nesting limit of 512.)
static void nested_add(Forest *f, const Json *o, uint32_t parent, const char *path, size_t line) {
    const Json *author;
    const char *why = "not a JSON object";
    int bad_replies = 0;
    const Json *t = o->type == JSON_OBJECT ? tree_text(o, &author, &why) : NULL;
    const Json *r = o->type == JSON_OBJECT ? tree_replies(o, &bad_replies) : NULL;
    if (t && bad_replies) { t = NULL; why = "\"replies\" is not an array"; }
    if (!t) {
        size_t below = nested_count(o) - 1;
        forest_note(f, &f->bad_msgs, 1, "%s:%zu: byte %zu: message dropped: %s", path, line, o->start, why);
        f->orphans += below;
        return;
    }
    uint32_t me = (uint32_t)f->n;
    forest_push(f, t->str, t->len, author ? author->str : NULL, author ? author->len : 0, parent);
    for (size_t i = 0; r && i < r->count; i++) nested_add(f, &r->items[i], me, path, line);
}

// Message-per-line input, gathered over one file and linked at its end.
typedef struct {
    char *id, *pid;             // pid NULL for a root
    char *text, *author; size_t len, alen;
    size_t line;
    int bad;                    // no valid text: dropped, its replies become orphans
} FlatMsg;

static int flat_cmp_id(const void *a, const void *b, void *ctx) {
    const FlatMsg *m = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(m[i].id, m[j].id);
    return c ? c : (i > j) - (i < j);
}
// qsort_r is not in C11 or POSIX: a small merge sort of indices with a context.
static void sort_idx(size_t *v, size_t n, size_t *tmp, int (*cmp)(const void *, const void *, void *), void *ctx) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_idx(v, h, tmp, cmp, ctx);
    sort_idx(v + h, n - h, tmp, cmp, ctx);
    size_t a = 0, b = h, k = 0;
    while (a < h || b < n) tmp[k++] = b == n || (a < h && cmp(&v[a], &v[b], ctx) <= 0) ? v[a++] : v[b++];
    memcpy(v, tmp, n * sizeof *v);
}

// The JSON value of an id or parent as a string key ("7" and 7 are the same id), or NULL if of another type.
static char *flat_key(const Json *v) {
    if (v->type == JSON_STRING) return xstrndup(v->str, v->len);
    if (v->type != JSON_NUMBER) return NULL;
    char b[40];
    snprintf(b, sizeof b, "%.17g", v->number);
    return xstrndup(b, strlen(b));
}

// Links the messages of one file into trees and appends them depth first (children in file order, trees in the
// order of their roots). Messages that no root reaches are counted: orphans (a parent id that is missing or was
// dropped, and everything below) or cycles (on or below a loop of parents).
static void flat_link(Forest *f, FlatMsg *m, size_t n, const char *path) {
    if (!n) return;
    size_t *byid = xmalloc(n * sizeof *byid), *tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) byid[i] = i;
    sort_idx(byid, n, tmp, flat_cmp_id, m);
    enum { UNSEEN, REACHED, ORPHAN, CYCLE, WALKING, DUP };
    unsigned char *state = xcalloc(n, 1);
    for (size_t k = 1; k < n; k++)
        if (!strcmp(m[byid[k]].id, m[byid[k - 1]].id)) {
            state[byid[k]] = DUP;
            forest_note(f, &f->dup_ids, 1, "%s:%zu: duplicate id \"%s\" (first on line %zu)", path, m[byid[k]].line, m[byid[k]].id, m[byid[k - 1]].line);
        }
    // parent of each message (its first holder of the id), SIZE_MAX for a root or a missing id
    size_t *parent = xmalloc(n * sizeof *parent), *nchild = xcalloc(n + 1, sizeof *nchild);
    for (size_t i = 0; i < n; i++) {
        parent[i] = SIZE_MAX;
        if (!m[i].pid) continue;
        size_t lo = 0, hi = n; // first index in byid with id >= pid
        while (lo < hi) { size_t mid = (lo + hi) / 2; if (strcmp(m[byid[mid]].id, m[i].pid) < 0) lo = mid + 1; else hi = mid; }
        if (lo < n && !strcmp(m[byid[lo]].id, m[i].pid)) { parent[i] = byid[lo]; nchild[byid[lo]]++; }
    }
    // children lists (CSR), in file order
    size_t *first = xcalloc(n + 1, sizeof *first), *child = xmalloc(n * sizeof *child), *fill = xcalloc(n, sizeof *fill);
    for (size_t i = 0; i < n; i++) first[i + 1] = first[i] + nchild[i];
    for (size_t i = 0; i < n; i++) if (parent[i] != SIZE_MAX) child[first[parent[i]] + fill[parent[i]]++] = i;
    // depth first from every root, with an explicit stack (a thread may be a chain of any depth)
    size_t *stack = xmalloc(n * sizeof *stack), *at = xmalloc(n * sizeof *at);
    uint32_t *fidx = xmalloc(n * sizeof *fidx);
    for (size_t r = 0; r < n; r++) {
        if (m[r].pid || m[r].bad || state[r] == DUP) continue;
        size_t sp = 0;
        stack[sp++] = r;
        state[r] = REACHED;
        fidx[r] = (uint32_t)f->n;
        forest_push(f, m[r].text, m[r].len, m[r].author, m[r].alen, DATA_NO_PARENT);
        at[r] = 0;
        while (sp) {
            size_t top = stack[sp - 1];
            if (at[top] == nchild[top]) { sp--; continue; }
            size_t c = child[first[top] + at[top]++];
            if (m[c].bad || state[c] != UNSEEN) continue;
            state[c] = REACHED;
            fidx[c] = (uint32_t)f->n;
            forest_push(f, m[c].text, m[c].len, m[c].author, m[c].alen, fidx[top]);
            at[c] = 0;
            stack[sp++] = c;
        }
    }
    // the unreached: walk up the parents; the walk ends at a dropped or missing parent (orphan), at a message
    // already classified (same class), or back on the walk itself (a cycle)
    for (size_t i = 0; i < n; i++) {
        if (state[i] != UNSEEN || m[i].bad) continue;
        size_t sp = 0, c = i;
        unsigned char cls;
        for (;;) {
            if (state[c] == WALKING) { cls = CYCLE; break; }
            if (state[c] == ORPHAN || state[c] == CYCLE) { cls = state[c]; break; }
            state[c] = WALKING;
            stack[sp++] = c;
            size_t p = parent[c];
            if (p == SIZE_MAX || m[p].bad || state[p] == DUP || state[p] == REACHED) { cls = ORPHAN; break; }
            c = p;
        }
        for (size_t k = 0; k < sp; k++) state[stack[k]] = cls;
        if (cls == ORPHAN) forest_note(f, &f->orphans, sp, "%s:%zu: message \"%s\": parent \"%s\" missing or dropped", path, m[stack[sp - 1]].line, m[stack[sp - 1]].id, m[stack[sp - 1]].pid);
        else forest_note(f, &f->cycles, sp, "%s:%zu: message \"%s\" is in a cycle of parents", path, m[stack[sp - 1]].line, m[stack[sp - 1]].id);
    }
    // replies of dropped messages that were never reached above are orphans too (counted there); the dropped
    // messages themselves were counted when read
    free(byid); free(tmp); free(state); free(parent); free(nchild); free(first); free(child); free(fill);
    free(stack); free(at); free(fidx);
}

// Reads one JSONL buffer of trees. Lines with a "parent" member are messages (linked when the buffer ends); other
// object lines are whole nested trees. Malformed lines are skipped and counted, the first named.
static void forest_add_jsonl(Forest *f, const char *path, const char *buf, size_t n) {
    FlatMsg *flat = NULL;
    size_t nflat = 0, flat_cap = 0, i = 0, line = 0, len;
    const char *s;
    while (jsonl_next_line(buf, n, &i, &line, &s, &len)) {
        Json j;
        char err[128];
        if (json_parse(s, len, &j, err, sizeof err) != 0) { forest_note(f, &f->bad_lines, 1, "%s:%zu: %s", path, line, err); continue; }
        const Json *pj = json_get(&j, "parent");
        if (j.type != JSON_OBJECT) forest_note(f, &f->bad_lines, 1, "%s:%zu: not a JSON object", path, line);
        else if (!pj) nested_add(f, &j, DATA_NO_PARENT, path, line);
        else {
            const Json *idj = json_get(&j, "id"), *author;
            char *id = idj ? flat_key(idj) : NULL, *pid = pj->type == JSON_NULL ? NULL : flat_key(pj);
            const char *why = NULL;
            const Json *t = tree_text(&j, &author, &why);
            if (!id) forest_note(f, &f->bad_lines, 1, "%s:%zu: \"id\" missing or not a string or number", path, line);
            else if (pj->type != JSON_NULL && !pid) forest_note(f, &f->bad_lines, 1, "%s:%zu: \"parent\" is not null, a string or a number", path, line);
            else {
                grow((void **)&flat, &flat_cap, nflat + 1, sizeof *flat);
                FlatMsg *fm = &flat[nflat++];
                memset(fm, 0, sizeof *fm);
                fm->id = id; fm->pid = pid; fm->line = line;
                id = pid = NULL;
                if (t) {
                    fm->text = xstrndup(t->str, t->len); fm->len = t->len;
                    if (author) { fm->author = xstrndup(author->str, author->len); fm->alen = author->len; }
                } else {
                    fm->bad = 1;
                    forest_note(f, &f->bad_msgs, 1, "%s:%zu: message \"%s\" dropped: %s", path, line, fm->id, why);
                }
            }
            free(id); free(pid);
        }
        json_free(&j);
    }
    flat_link(f, flat, nflat, path);
    for (size_t i = 0; i < nflat; i++) { free(flat[i].id); free(flat[i].pid); free(flat[i].text); free(flat[i].author); }
    free(flat);
}

static int forest_read(Forest *f, const char *path, char *err, size_t errsize) {
    char *text, rerr[160];
    size_t len;
    if (read_file(path, &text, &len, rerr, sizeof rerr) != 0) {
        Buf b = {0};
        buf_printf(&b, "%s: %s", path, rerr);
        size_t k = b.len < errsize ? b.len : errsize - 1;
        memcpy(err, b.s, k);
        err[k] = 0;
        free(b.s);
        return -1;
    }
    forest_add_jsonl(f, path, text, len);
    free(text);
    return 0;
}

// How a message becomes text before tokenisation: "author: text\n", or "text\n" without an author. The newline
// ends every message, so a message boundary is always a token boundary of the tokenizer's choosing.
static void tree_render(Buf *b, const TreeMsg *m) {
    b->len = 0;
    if (m->author) { buf_add(b, m->author, m->alen); buf_str(b, ": "); }
    buf_add(b, m->text, m->len);
    buf_str(b, "\n");
}

// Tokens of every message (without the EOT that opens a tree): with the tokenizer, or word tokens (tests).
static int forest_tokenise(const Forest *f, Tokenizer *tk, WordVocab *wv, TokDoc *toks, char *err, size_t errsize) {
    Buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < f->n && !rc; i++) {
        tree_render(&b, &f->msg[i]);
        if (tk) { if (bpe_tokenise(tk, b.s, b.len, &toks[i]) != 0) { snprintf(err, errsize, "tokenisation failed (out of memory)"); rc = -1; } }
        else word_tokenise(wv, b.s, b.len, &toks[i]);
    }
    free(b.s);
    return rc;
}

// Packing. A piece is what one window holds of a tree: its messages in depth-first order, each with the number
// of its tokens kept and flags (TREE_REPEATED: an ancestor already trained on in an earlier piece, carried as
// context; TREE_CUT: its tokens or its replies were cut, so its last token predicts nothing).
enum { TREE_REPEATED = DATA_MSG_REPEATED, TREE_CUT = DATA_MSG_CUT };
typedef struct { uint32_t msg, ntok, flags; } PieceMsg;

typedef struct {
    size_t T;
    PieceMsg *e; size_t n, cap;                          // the entries of every piece
    size_t *start, *ntok, *tree; size_t npieces, pcap;   // piece p: entries [start[p], start[p+1]), tokens, tree
    // per message of the tree being split: tokens (with the root's EOT), subtree tokens and messages
    size_t *len, *sub, *cnt;
    unsigned char *emitted;
    PieceMsg *chain; size_t nchain;                      // the ancestors of the subtree being split
    // statistics
    size_t trees, split_trees, truncated, tokens_dropped, tokens;
} Packer;

static void packer_free(Packer *p) {
    free(p->e); free(p->start); free(p->ntok); free(p->tree);
    free(p->len); free(p->sub); free(p->cnt); free(p->emitted); free(p->chain);
    memset(p, 0, sizeof *p);
}

static void piece_entry(Packer *p, uint32_t msg, uint32_t ntok, uint32_t flags) {
    grow((void **)&p->e, &p->cap, p->n + 1, sizeof *p->e);
    p->e[p->n++] = (PieceMsg){msg, ntok, flags};
}

// Closes the piece whose entries start at entry `from`, marking its messages as trained on.
static void piece_close(Packer *p, size_t from, size_t tree) {
    size_t tok = 0;
    for (size_t i = from; i < p->n; i++) { tok += p->e[i].ntok; p->emitted[p->e[i].msg] = 1; }
    grow((void **)&p->start, &p->pcap, p->npieces + 2, sizeof *p->start);
    p->ntok = xrealloc(p->ntok, p->pcap * sizeof *p->ntok);
    p->tree = xrealloc(p->tree, p->pcap * sizeof *p->tree);
    p->start[p->npieces] = from;
    p->ntok[p->npieces] = tok;
    p->tree[p->npieces] = tree;
    p->npieces++;
    p->start[p->npieces] = p->n;
    p->tokens += tok;
}

// Opens a piece: the current chain of ancestors, flagged repeated where already trained on.
static size_t piece_open(Packer *p) {
    size_t from = p->n;
    for (size_t i = 0; i < p->nchain; i++)
        piece_entry(p, p->chain[i].msg, p->chain[i].ntok, p->chain[i].flags | (p->emitted[p->chain[i].msg] ? TREE_REPEATED : 0));
    return from;
}
static size_t chain_tokens(const Packer *p) {
    size_t t = 0;
    for (size_t i = 0; i < p->nchain; i++) t += p->chain[i].ntok;
    return t;
}
static void piece_subtree(Packer *p, size_t c) {
    for (size_t k = c; k < c + p->cnt[c]; k++) piece_entry(p, (uint32_t)k, (uint32_t)p->len[k], 0);
}

// Splits the subtree of message n (an index within the tree), which does not fit in one
// window with the chain of its ancestors. The children's subtrees are grouped greedily, in order, into pieces
// that each repeat the chain and n; a child whose subtree does not fit alone is split the same way, one level
// down. A path longer than T is cut at T tokens (what follows on it is dropped and counted).
static void tree_split(Packer *p, size_t n, size_t tree) {
    size_t ct = chain_tokens(p);
    if (ct + p->len[n] >= p->T) { // no reply of n fits: the path is cut here
        size_t keep = p->T - ct;
        size_t from = piece_open(p);
        piece_entry(p, (uint32_t)n, (uint32_t)keep, TREE_CUT);
        piece_close(p, from, tree);
        p->truncated++;
        p->tokens_dropped += p->sub[n] - keep;
        return;
    }
    p->chain = xrealloc(p->chain, (p->nchain + 1) * sizeof *p->chain);
    p->chain[p->nchain++] = (PieceMsg){(uint32_t)n, (uint32_t)p->len[n], 0};
    size_t base = ct + p->len[n], size = base, from = SIZE_MAX;
    for (size_t c = n + 1; c < n + p->cnt[n]; c += p->cnt[c]) {
        if (base + p->sub[c] <= p->T) {
            if (from != SIZE_MAX && size + p->sub[c] > p->T) { piece_close(p, from, tree); from = SIZE_MAX; }
            if (from == SIZE_MAX) { from = piece_open(p); size = base; }
            piece_subtree(p, c);
            size += p->sub[c];
        } else {
            if (from != SIZE_MAX) { piece_close(p, from, tree); from = SIZE_MAX; }
            tree_split(p, c, tree);
        }
    }
    if (from != SIZE_MAX) piece_close(p, from, tree);
    p->nchain--;
}

// Cuts tree k of the forest into pieces of at most T tokens (one piece when it fits). Entry msg fields are
// forest indices.
static void packer_add_tree(Packer *p, const Forest *f, const TokDoc *toks, size_t k) {
    size_t a = f->tree[k], b = forest_tree_end(f, k), n = b - a;
    p->len = xrealloc(p->len, n * sizeof *p->len);
    p->sub = xrealloc(p->sub, n * sizeof *p->sub);
    p->cnt = xrealloc(p->cnt, n * sizeof *p->cnt);
    p->emitted = xrealloc(p->emitted, n);
    memset(p->emitted, 0, n);
    for (size_t i = 0; i < n; i++) { p->len[i] = toks[a + i].n + (i == 0); p->sub[i] = p->len[i]; p->cnt[i] = 1; }
    for (size_t i = n; i-- > 1;) { size_t q = f->msg[a + i].parent - a; p->sub[q] += p->sub[i]; p->cnt[q] += p->cnt[i]; }
    size_t e0 = p->n;
    p->trees++;
    if (p->sub[0] <= p->T) {
        size_t from = p->n;
        piece_subtree(p, 0);
        piece_close(p, from, k);
    } else {
        p->nchain = 0;
        tree_split(p, 0, k);
        p->split_trees++;
    }
    for (size_t i = e0; i < p->n; i++) p->e[i].msg += (uint32_t)a;
}

// A window of T tokens as a version 2 shard stores it, with message indices and subtree ends relative to the
// window (the writer rebases them to the file).
typedef struct {
    size_t T, n;                                      // tokens filled so far
    int32_t *ids; uint32_t *msg, *pos;
    uint32_t *parent, *flags; uint64_t *end; size_t nmsg;
    size_t docs, pad;                                 // trees (pieces) and padding tokens in it
} TreeWindow;

static void treewin_build(TreeWindow *w, size_t T) {
    memset(w, 0, sizeof *w);
    w->T = T;
    w->ids = xmalloc(T * sizeof *w->ids); w->msg = xmalloc(T * sizeof *w->msg); w->pos = xmalloc(T * sizeof *w->pos);
    w->parent = xmalloc(T * sizeof *w->parent); w->flags = xmalloc(T * sizeof *w->flags); w->end = xmalloc(T * sizeof *w->end);
}
static void treewin_free(TreeWindow *w) {
    free(w->ids); free(w->msg); free(w->pos); free(w->parent); free(w->flags); free(w->end);
    memset(w, 0, sizeof *w);
}
static void treewin_pad(TreeWindow *w, uint32_t eot) {
    for (; w->n < w->T; w->n++, w->pad++) { w->ids[w->n] = (int32_t)eot; w->msg[w->n] = DATA_MSG_PAD; w->pos[w->n] = 0; }
}

// Appends a piece: its tokens (a root's first token is EOT), each message's parent in the window, the position
// of each token on its path (a message starts where its parent ends), and every subtree's last token.
static void treewin_add_piece(TreeWindow *w, const Packer *p, size_t piece, const Forest *f, const TokDoc *toks, uint32_t eot) {
    size_t m0 = w->nmsg, sp = 0;
    struct { uint32_t msg, wi, pos_end; } *stack = xmalloc((p->start[piece + 1] - p->start[piece]) * sizeof *stack);
    for (size_t i = p->start[piece]; i < p->start[piece + 1]; i++) {
        const PieceMsg *e = &p->e[i];
        const TreeMsg *tm = &f->msg[e->msg];
        while (sp && stack[sp - 1].msg != tm->parent) sp--; // the path from the root down to this message's parent
        uint32_t wi = (uint32_t)w->nmsg++, p0 = sp ? stack[sp - 1].pos_end : 0;
        w->parent[wi] = sp ? stack[sp - 1].wi : DATA_NO_PARENT;
        w->flags[wi] = e->flags;
        int root = tm->parent == DATA_NO_PARENT;
        for (uint32_t t = 0; t < e->ntok; t++) {
            w->ids[w->n] = root && t == 0 ? (int32_t)eot : toks[e->msg].ids[t - (uint32_t)root];
            w->msg[w->n] = wi;
            w->pos[w->n] = p0 + t;
            w->n++;
        }
        w->end[wi] = w->n - 1;
        stack[sp].msg = e->msg; stack[sp].wi = wi; stack[sp].pos_end = p0 + e->ntok;
        sp++;
    }
    for (size_t wi = w->nmsg; wi-- > m0 + 1;)  // a subtree ends where its last descendant ends
        if (w->end[wi] > w->end[w->parent[wi]]) w->end[w->parent[wi]] = w->end[wi];
    w->docs++;
    free(stack);
}

// Places the pieces in windows: each goes to the first of the last 32 windows with room for it (first fit over a
// bounded list: linear time, nearly as tight as first fit over all), or opens a new window. Returns the pieces
// grouped by window, window w holding order[wstart[w], wstart[w+1]).
static size_t *pack_windows(const Packer *p, size_t *nwin, size_t **wstart) {
    size_t *win = xmalloc((p->npieces ? p->npieces : 1) * sizeof *win), *used = NULL, cap = 0, nw = 0;
    for (size_t k = 0; k < p->npieces; k++) {
        size_t w = nw > 32 ? nw - 32 : 0;
        while (w < nw && used[w] + p->ntok[k] > p->T) w++;
        if (w == nw) { grow((void **)&used, &cap, nw + 1, sizeof *used); used[nw++] = 0; }
        used[w] += p->ntok[k];
        win[k] = w;
    }
    size_t *start = xcalloc(nw + 1, sizeof *start), *order = xmalloc((p->npieces ? p->npieces : 1) * sizeof *order);
    for (size_t k = 0; k < p->npieces; k++) start[win[k] + 1]++;
    for (size_t w = 0; w < nw; w++) start[w + 1] += start[w];
    size_t *fill = xcalloc(nw + 1, sizeof *fill);
    for (size_t k = 0; k < p->npieces; k++) order[start[win[k]] + fill[win[k]]++] = k;
    free(win); free(used); free(fill);
    *nwin = nw;
    *wstart = start;
    return order;
}

// Appends a full window (n == T) to a version 2 shard, rebasing its message indices and subtree ends.
static int shardwriter_add_window(ShardWriter *sw, const TreeWindow *w, char *err, size_t errsize) {
    if (shardwriter_room(sw, w->T + 1, err, errsize) != 0 || shardwriter_write_ids(sw, w->ids, w->T, 0, err, errsize) != 0) return -1;
    uint64_t at = sw->n_tokens;
    grow((void **)&sw->msg, &sw->tok_cap, at + w->T + 1, sizeof *sw->msg);
    sw->pos = xrealloc(sw->pos, sw->tok_cap * sizeof *sw->pos);
    for (size_t t = 0; t < w->T; t++) {
        sw->msg[at + t] = w->msg[t] >= DATA_MSG_PLAIN ? w->msg[t] : w->msg[t] + (uint32_t)sw->n_messages;
        sw->pos[at + t] = w->pos[t];
    }
    grow((void **)&sw->table, &sw->table_cap, 16 * (sw->n_messages + w->nmsg), 1);
    for (size_t m = 0; m < w->nmsg; m++) {
        unsigned char *e = sw->table + 16 * (sw->n_messages + m);
        put_u32(e, w->parent[m] == DATA_NO_PARENT ? DATA_NO_PARENT : w->parent[m] + (uint32_t)sw->n_messages);
        put_u32(e + 4, w->flags[m]);
        put_u64(e + 8, w->end[m] + at);
    }
    sw->n_tokens += w->T; sw->total_tokens += w->T;
    sw->n_docs += w->docs; sw->total_docs += w->docs;
    sw->n_messages += w->nmsg;
    return 0;
}

// Packs the pieces into windows and writes them. *pad receives the padding tokens written, *nwin the windows.
static int packer_write(const Packer *p, const Forest *f, const TokDoc *toks, ShardWriter *sw, size_t *pad,
                        uint64_t *nwin, char *err, size_t errsize) {
    size_t nw, *wstart, *order = pack_windows(p, &nw, &wstart);
    *nwin = nw;
    TreeWindow w;
    treewin_build(&w, p->T);
    int rc = 0;
    *pad = 0;
    for (size_t k = 0; k < nw && !rc; k++) {
        w.n = w.nmsg = w.docs = w.pad = 0;
        for (size_t i = wstart[k]; i < wstart[k + 1]; i++) treewin_add_piece(&w, p, order[i], f, toks, sw->eot);
        treewin_pad(&w, sw->eot);
        *pad += w.pad;
        rc = shardwriter_add_window(sw, &w, err, errsize);
    }
    treewin_free(&w);
    free(order); free(wstart);
    return rc;
}

// The unrolled alternative: every root-to-leaf path of tree k as a plain document (the same tokens a path has in
// the packed tree; the shard's EOT before each document is the root's EOT). Returns the paths written.
static int tree_unroll(const Forest *f, const TokDoc *toks, size_t k, ShardWriter *sw, size_t *paths, char *err, size_t errsize) {
    size_t a = f->tree[k], b = forest_tree_end(f, k);
    int32_t *ids = NULL;
    size_t cap = 0;
    uint32_t *chain = xmalloc((b - a) * sizeof *chain);
    int rc = 0;
    for (size_t i = a; i < b && !rc; i++) {
        if (i + 1 < b && f->msg[i + 1].parent == i) continue; // not a leaf
        size_t depth = 0, n = 0;
        for (uint32_t m = (uint32_t)i; m != DATA_NO_PARENT; m = f->msg[m].parent) chain[depth++] = m;
        for (size_t d = depth; d-- > 0;) {
            grow((void **)&ids, &cap, n + toks[chain[d]].n, sizeof *ids);
            memcpy(ids + n, toks[chain[d]].ids, toks[chain[d]].n * sizeof *ids);
            n += toks[chain[d]].n;
        }
        rc = shardwriter_add(sw, ids, n, err, errsize);
        (*paths)++;
    }
    free(ids); free(chain);
    return rc;
}

// Writing trees: train (and val) shards of packed trees, and optionally the unrolled paths as plain shards.
typedef struct {
    size_t T, shard_tokens;
    uint32_t eot, vocab;
    double val_frac;
    uint64_t seed;
    const char *out, *unroll;   // directories; unroll NULL: no unrolled shards
} TreeConfig;

typedef struct {
    Packer pk[2];               // train, val: the pieces and the split statistics
    size_t pad[2];              // padding tokens written
    uint64_t windows[2];
    size_t paths;               // unrolled paths
    uint64_t unrolled_tokens;   // their tokens, one EOT each included
} TreeStats;

static void tree_stats_free(TreeStats *st) { packer_free(&st->pk[0]); packer_free(&st->pk[1]); }

static int trees_write(const Forest *f, const TokDoc *toks, const TreeConfig *c, TreeStats *st, char *err, size_t errsize) {
    memset(st, 0, sizeof *st);
    const char *names[2] = {"train", "val"};
    ShardWriter unroll[2];
    for (int s = 0; s < 2; s++) {
        st->pk[s].T = c->T;
        if (c->unroll) shardwriter_build(&unroll[s], c->unroll, names[s], c->eot, c->vocab, c->shard_tokens);
    }
    int rc = 0;
    for (size_t k = 0; k < f->ntrees && !rc; k++) { // a tree goes to validation when a hash of (seed, k) falls below val_frac
        int val = (double)(mix64(c->seed ^ mix64(k)) >> 11) / 9007199254740992.0 < c->val_frac;
        packer_add_tree(&st->pk[val], f, toks, k);
        if (c->unroll) rc = tree_unroll(f, toks, k, &unroll[val], &st->paths, err, errsize);
    }
    for (int s = 0; s < 2; s++) {
        char later[256];
        if (c->unroll) {
            if (shardwriter_close(&unroll[s], rc ? later : err, rc ? sizeof later : errsize) != 0) rc = -1;
            st->unrolled_tokens += unroll[s].total_tokens;
            strlist_free(&unroll[s].written);
        }
        if (rc || !st->pk[s].npieces) continue;
        ShardWriter sw;
        size_t max = c->shard_tokens > c->T ? c->shard_tokens : c->T + 1;
        shardwriter_build(&sw, c->out, names[s], c->eot, c->vocab, (max - 1) / c->T * c->T + 1);
        sw.context = (uint32_t)c->T;
        rc = packer_write(&st->pk[s], f, toks, &sw, &st->pad[s], &st->windows[s], err, errsize);
        if (shardwriter_close(&sw, rc ? later : err, rc ? sizeof later : errsize) != 0) rc = -1;
        strlist_free(&sw.written);
    }
    return rc;
}

static void tree_report(FILE *out, const Forest *f, const TreeStats *st, size_t T, int unroll) {
    fprintf(out, "read: %zu trees, %zu messages; skipped %zu malformed lines, %zu bad messages, %zu duplicate ids, "
            "%zu orphans, %zu in cycles%s%s\n", f->ntrees, f->n, f->bad_lines, f->bad_msgs, f->dup_ids, f->orphans,
            f->cycles, f->example[0] ? "; first: " : "", f->example);
    for (int s = 0; s < 2; s++) {
        const Packer *p = &st->pk[s];
        if (!p->trees) continue;
        uint64_t all = st->windows[s] * T;
        fprintf(out, "%s: %zu trees in %zu pieces, %llu windows of %zu: %zu tree tokens + %zu padding (%.1f%% full); "
                "%zu trees split, %zu paths cut at %zu (%zu tokens dropped)\n", s ? "val" : "train", p->trees,
                p->npieces, (unsigned long long)st->windows[s], T, p->tokens, st->pad[s],
                all ? 100.0 * (double)p->tokens / (double)all : 0.0, p->split_trees, p->truncated, T, p->tokens_dropped);
    }
    if (unroll) fprintf(out, "unrolled: %zu root-to-leaf paths, %llu tokens\n", st->paths, (unsigned long long)st->unrolled_tokens);
}

// ---------------------------------------------------------------------------------------------------------------
// Synthetic Reddit-like threads (`./data synth --trees N`), planted as a Forest (the ground truth) and written as
// JSONL, a message per line in breadth-first order (so children come after their parents but not right after)
// or a tree per line. Shapes: single posts, deep back-and-forth chains, wide fans of direct answers, and
// branching discussions whose replies thin out with depth.

static const char *synth_openers[] = {"Do you like %N?", "What do you think of %N at %P?", "Has anyone %V %N?",
                                      "Is %N worth it?", "Help: %N at %P.", "TIL about %N."};
static const char *synth_short[] = {"Yes! It's lovely!", "Agreed.", "Source?", "This.", "Not really.",
                                    "Thanks, that helps.", "Same here.", "Ha, good one."};

static void synth_message(Buf *b, Rng *r, const SynthTopic *tp, int root) {
    b->len = 0;
    if (root || rng_below(r, 4) == 0) {
        const char *t = root ? synth_openers[rng_below(r, 6)] : synth_short[rng_below(r, 8)];
        for (; *t; t++) {
            if (*t != '%') { buf_add(b, t, 1); continue; }
            t++;
            if (*t == 'N') buf_str(b, tp->noun[rng_below(r, 12)]);
            else if (*t == 'P') buf_str(b, tp->place[rng_below(r, 6)]);
            else buf_str(b, tp->verb[rng_below(r, 8)]);
        }
        if (!root) return;
        buf_str(b, " ");
    }
    synth_paragraph(b, r, tp, 1 + rng_below(r, root ? 3 : 2));
}

// An author's name, such as "ana42", into a.
static void synth_author(Buf *a, Rng *r) {
    size_t n = rng_below(r, 100);
    const char *name = PICK(synth_names);
    a->len = 0;
    buf_printf(a, "%s%zu", name, n);
}

// Replies of message `parent` at `depth` for the branching shape, depth first.
static void synth_branch(Forest *f, Rng *r, const SynthTopic *tp, uint32_t parent, size_t depth, size_t *budget, Buf *b, Buf *a) {
    size_t k = depth == 0 ? 1 + rng_below(r, 5) : rng_unit(r) < 0.55 / (double)depth ? 1 + rng_below(r, 3) : 0;
    for (size_t i = 0; i < k && *budget; i++) {
        (*budget)--;
        synth_message(b, r, tp, 0);
        synth_author(a, r);
        uint32_t me = (uint32_t)f->n;
        forest_push(f, b->s, b->len, a->s, a->len, parent);
        synth_branch(f, r, tp, me, depth + 1, budget, b, a);
    }
}

static void synth_forest(Forest *f, size_t ntrees, uint64_t seed) {
    Rng rr = rng_seed(seed * 7919 + 17), *r = &rr;
    Buf b = {0}, a = {0};
    for (size_t k = 0; k < ntrees; k++) {
        const SynthTopic *tp = &synth_topics[rng_below(r, N_TOPICS)];
        double shape = rng_unit(r);
        synth_message(&b, r, tp, 1);
        synth_author(&a, r);
        uint32_t root = (uint32_t)f->n;
        forest_push(f, b.s, b.len, a.s, a.len, DATA_NO_PARENT);
        if (shape < 0.2) continue;                          // a post nobody answered
        if (shape < 0.35) {                                 // two people arguing: a chain
            size_t n = 4 + rng_below(r, 22);
            for (size_t i = 0; i < n; i++) {
                synth_message(&b, r, tp, 0);
                forest_push(f, b.s, b.len, f->msg[root + (i % 2)].author, f->msg[root + (i % 2)].alen, (uint32_t)f->n - 1);
            }
        } else if (shape < 0.5) {                           // a question with many direct answers
            size_t n = 5 + rng_below(r, 26);
            for (size_t i = 0; i < n; i++) {
                synth_message(&b, r, tp, 0);
                synth_author(&a, r);
                forest_push(f, b.s, b.len, a.s, a.len, root);
                if (rng_below(r, 5) == 0) { synth_message(&b, r, tp, 0); forest_push(f, b.s, b.len, f->msg[root].author, f->msg[root].alen, (uint32_t)f->n - 1); }
            }
        } else {                                            // a discussion
            size_t budget = 80;
            synth_branch(f, r, tp, root, 0, &budget, &b, &a);
        }
    }
    free(b.s); free(a.s);
}

static void tree_write_fields(FILE *out, const TreeMsg *m) {
    fputs("\"author\":", out);
    json_write_string(out, m->author, m->alen);
    fputs(",\"text\":", out);
    json_write_string(out, m->text, m->len);
}
// Writes message i of a nested tree and its replies (messages [i+1, i+cnt[i])); returns the next sibling.
static size_t tree_write_nested(FILE *out, const Forest *f, size_t i, const size_t *cnt, size_t a) {
    fputc('{', out);
    tree_write_fields(out, &f->msg[i]);
    fprintf(out, ",\"depth\":%u", f->msg[i].depth);
    if (cnt[i - a] > 1) {
        fputs(",\"replies\":[", out);
        for (size_t c = i + 1; c < i + cnt[i - a];) {
            if (c > i + 1) fputc(',', out);
            c = tree_write_nested(out, f, c, cnt, a);
        }
        fputc(']', out);
    }
    fputc('}', out);
    return i + cnt[i - a];
}

static void forest_write_jsonl(FILE *out, const Forest *f, int nested, uint64_t seed) {
    for (size_t k = 0; k < f->ntrees; k++) {
        size_t a = f->tree[k], b = forest_tree_end(f, k), n = b - a;
        if (nested) {
            size_t *cnt = xmalloc(n * sizeof *cnt);
            for (size_t i = 0; i < n; i++) cnt[i] = 1;
            for (size_t i = n; i-- > 1;) cnt[f->msg[a + i].parent - a] += cnt[i];
            tree_write_nested(out, f, a, cnt, a);
            fprintf(out, "\n");
            free(cnt);
            continue;
        }
        uint32_t maxd = 0;
        for (size_t i = a; i < b; i++) if (f->msg[i].depth > maxd) maxd = f->msg[i].depth;
        for (uint32_t d = 0; d <= maxd; d++)
            for (size_t i = a; i < b; i++) {
                const TreeMsg *m = &f->msg[i];
                if (m->depth != d) continue;
                fprintf(out, "{\"id\":\"c%012llx\",\"parent\":", (unsigned long long)(mix64(seed ^ mix64(i)) >> 16));
                if (m->parent == DATA_NO_PARENT) fputs("null", out);
                else fprintf(out, "\"c%012llx\"", (unsigned long long)(mix64(seed ^ mix64(m->parent)) >> 16));
                fputc(',', out);
                tree_write_fields(out, m);
                fprintf(out, ",\"tree\":%zu,\"depth\":%u}\n", k, d);
            }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Mixing sources by weight (Falcon paper, table 3: e.g. Falcon-7B's 79% web, 7% books, 6% conversations, 3% code,
// 3% French, 2% technical). Source s, holding A_s tokens, gets t_s = w_s * N of the N output tokens, whole
// documents at a time, reshuffled at every pass; a small source may not repeat more than R times (t_s <= R A_s):
// when N is not given it is the largest total that respects every cap, and when a given N would break a cap the
// source is held at R passes and reported. Documents of the sources are interleaved so that every prefix of the
// output holds the sources in their shares (the next document comes from the source furthest below its share).

typedef struct {
    char *name; double weight;
    StrList paths;
    const unsigned char **map; size_t *map_len; ShardInfo *info;
    uint64_t *doc_shard, *doc_start, *doc_len, ndocs, tokens; // documents (without their EOT)
    uint64_t target, used, next, pass; uint64_t *order;
    uint32_t context;     // tree shards: their T, and their "documents" are windows
    uint64_t cur, off;    // a plain source cut into windows (a mix with trees): current document, next offset
} MixSource;

static int mix_source_open(MixSource *m, char *err, size_t errsize) {
    size_t n = m->paths.n, cap = 0;
    m->map = xcalloc(n, sizeof *m->map); m->map_len = xcalloc(n, sizeof *m->map_len); m->info = xcalloc(n, sizeof *m->info);
    for (size_t f = 0; f < n; f++) {
        if (shard_map(m->paths.s[f], &m->info[f], &m->map[f], &m->map_len[f], err, errsize) != 0) return -1;
        if (m->info[f].eot != m->info[0].eot || m->info[f].vocab_size != m->info[0].vocab_size) {
            snprintf(err, errsize, "%s: vocabulary or eot differs from %s", m->paths.s[f], m->paths.s[0]);
            return -1;
        }
        if (f && m->info[f].context != m->info[0].context) {
            snprintf(err, errsize, "%s: context %u differs from %s", m->paths.s[f], m->info[f].context, m->paths.s[0]);
            return -1;
        }
        m->context = m->info[f].context;
        if (m->context) { // tree shards move by whole windows; their share counts the tokens that are not padding
            uint64_t T = m->context, nw = (m->info[f].n_tokens - 1) / T;
            grow((void **)&m->doc_shard, &cap, m->ndocs + nw, sizeof *m->doc_shard);
            m->doc_start = xrealloc(m->doc_start, cap * sizeof *m->doc_start);
            m->doc_len = xrealloc(m->doc_len, cap * sizeof *m->doc_len);
            for (uint64_t w = 0; w < nw; w++, m->ndocs++) {
                m->doc_shard[m->ndocs] = f; m->doc_start[m->ndocs] = w * T; m->doc_len[m->ndocs] = T;
                for (uint64_t i = w * T; i < (w + 1) * T; i++) m->tokens += shard_msg(m->map[f], &m->info[f], i) != DATA_MSG_PAD;
            }
            continue;
        }
        // documents run from one EOT to the next
        uint64_t start = 0;
        for (uint64_t i = 0; i <= m->info[f].n_tokens; i++) {
            if (i < m->info[f].n_tokens && shard_token(m->map[f], m->info[f].token_bytes, i) != m->info[f].eot) continue;
            if (i > start) {
                if (m->ndocs == cap) {
                    cap = cap ? 2 * cap : 1024;
                    m->doc_shard = xrealloc(m->doc_shard, cap * sizeof *m->doc_shard);
                    m->doc_start = xrealloc(m->doc_start, cap * sizeof *m->doc_start);
                    m->doc_len = xrealloc(m->doc_len, cap * sizeof *m->doc_len);
                }
                m->doc_shard[m->ndocs] = f; m->doc_start[m->ndocs] = start; m->doc_len[m->ndocs] = i - start;
                m->ndocs++;
                m->tokens += i - start + 1;
            }
            start = i + 1;
        }
    }
    if (!m->ndocs) { snprintf(err, errsize, "%s: no documents in source %s", n ? m->paths.s[0] : "?", m->name); return -1; }
    m->order = xmalloc(m->ndocs * sizeof *m->order);
    return 0;
}
static void mix_source_free(MixSource *m) {
    for (size_t f = 0; f < m->paths.n; f++) if (m->map && m->map[f]) munmap((void *)m->map[f], m->map_len[f]);
    free(m->map); free(m->map_len); free(m->info);
    free(m->doc_shard); free(m->doc_start); free(m->doc_len); free(m->order); free(m->name);
    strlist_free(&m->paths);
}

// Starts pass p of a source: its documents in a fresh order.
static void mix_shuffle(MixSource *m, uint64_t seed) {
    Rng r = rng_seed(seed ^ mix64(m->pass * 977 + hash_bytes(m->name, strlen(m->name), 5)));
    for (uint64_t i = 0; i < m->ndocs; i++) m->order[i] = i;
    for (uint64_t i = m->ndocs; i > 1; i--) { uint64_t j = rng_u64(&r) % i, t = m->order[i - 1]; m->order[i - 1] = m->order[j]; m->order[j] = t; }
    m->next = 0;
}

// One window of a mix with trees: the next window of a tree source (message indices rebased to the window), or
// the next T tokens of a plain source's document stream (EOT doc EOT doc ..., cut every T tokens, as a plain
// shard's windows are). Returns the tokens it counts towards the source's share (padding does not count).
static uint64_t mix_take_window(MixSource *m, TreeWindow *w, uint64_t seed) {
    size_t T = w->T;
    w->n = T;
    w->nmsg = w->docs = w->pad = 0;
    if (!m->context) {
        for (size_t t = 0; t < T; t++) {
            if (m->off == 0) { if (m->next == m->ndocs) { m->pass++; mix_shuffle(m, seed); } m->cur = m->order[m->next++]; }
            uint64_t f = m->doc_shard[m->cur];
            w->ids[t] = (int32_t)(m->off == 0 ? m->info[f].eot : shard_token(m->map[f], m->info[f].token_bytes, m->doc_start[m->cur] + m->off - 1));
            w->msg[t] = DATA_MSG_PLAIN;
            w->pos[t] = 0;
            m->off = m->off == m->doc_len[m->cur] ? 0 : m->off + 1;
        }
        return T;
    }
    if (m->next == m->ndocs) { m->pass++; mix_shuffle(m, seed); }
    uint64_t d = m->order[m->next++], f = m->doc_shard[d], s = m->doc_start[d];
    const ShardInfo *in = &m->info[f];
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t t = 0; t < T; t++) {
        uint32_t mm = shard_msg(m->map[f], in, s + t);
        if (mm < DATA_MSG_PLAIN) { if (mm < lo) lo = mm; if (mm > hi) hi = mm; }
    }
    for (size_t t = 0; t < T; t++) {
        uint32_t mm = shard_msg(m->map[f], in, s + t);
        w->ids[t] = (int32_t)shard_token(m->map[f], in->token_bytes, s + t);
        w->msg[t] = mm < DATA_MSG_PLAIN ? mm - lo : mm;
        w->pos[t] = shard_pos(m->map[f], in, s + t);
        w->pad += mm == DATA_MSG_PAD;
    }
    for (uint32_t k = lo; lo <= hi && k <= hi; k++) {
        const unsigned char *e = shard_message(m->map[f], in, k);
        uint32_t parent = get_u32(e);
        uint64_t end = get_u64(e + 8);
        w->parent[w->nmsg] = parent == DATA_NO_PARENT || parent < lo ? DATA_NO_PARENT : parent - lo;
        w->flags[w->nmsg] = get_u32(e + 4);
        w->end[w->nmsg] = end < s ? 0 : end - s >= T ? T - 1 : end - s;
        w->docs += w->parent[w->nmsg] == DATA_NO_PARENT;
        w->nmsg++;
    }
    return T - w->pad;
}

// Mixes the sources into dir/mix_NNN.bin. total = 0: the largest total the repeat cap allows. When a source
// holds trees the output is a tree shard: sources then take turns by whole windows of its T, so that no window
// mixes a tree with plain text and every tree stays inside its window.
static int mix_sources(MixSource *src, size_t ns, uint64_t total, double max_repeat, uint64_t seed, const char *dir,
                       size_t shard_tokens, FILE *report, char *err, size_t errsize) {
    double wsum = 0;
    for (size_t s = 0; s < ns; s++) {
        if (mix_source_open(&src[s], err, errsize) != 0) return -1;
        if (s && (src[s].info[0].eot != src[0].info[0].eot || src[s].info[0].vocab_size != src[0].info[0].vocab_size)) {
            snprintf(err, errsize, "%s: vocabulary or eot differs from source %s", src[s].paths.s[0], src[0].name);
            return -1;
        }
        wsum += src[s].weight;
    }
    uint32_t T = 0;
    for (size_t s = 0; s < ns; s++) {
        if (src[s].context && T && src[s].context != T) {
            snprintf(err, errsize, "%s: trees packed for context %u, source %s's for %u", src[s].paths.s[0], src[s].context, src[0].name, T);
            return -1;
        }
        if (src[s].context) T = src[s].context;
    }
    if (!total) {
        double best = -1;
        for (size_t s = 0; s < ns; s++) {
            double t = max_repeat * (double)src[s].tokens / (src[s].weight / wsum);
            if (best < 0 || t < best) best = t;
        }
        total = (uint64_t)best;
    }
    for (size_t s = 0; s < ns; s++) {
        double want = (double)total * src[s].weight / wsum, cap = max_repeat * (double)src[s].tokens;
        src[s].target = (uint64_t)(want < cap ? want : cap);
        if (want > cap && report) fprintf(report, "mix: source %s capped at %.3g passes (%llu of %.0f tokens asked)\n", src[s].name, max_repeat, (unsigned long long)src[s].target, want);
        mix_shuffle(&src[s], seed);
    }
    ShardWriter w;
    shardwriter_build(&w, dir, "mix", src[0].info[0].eot, src[0].info[0].vocab_size, shard_tokens);
    TreeWindow win = {0};
    if (T) {
        w.context = T;
        w.max_tokens = w.max_tokens > T ? (w.max_tokens - 1) / T * T + 1 : T + 1;
        treewin_build(&win, T);
    }
    int32_t *ids = NULL;
    size_t idcap = 0;
    int rc = 0;
    double want = 0;
    for (size_t s = 0; s < ns; s++) want += (double)src[s].target;
    Progress p;
    progress_start(&p, "mix", want, "M tokens", 1e6);
    for (;;) {
        // the source furthest below its share: smallest used / target among those with tokens left to give
        size_t pick = ns;
        double best = 2;
        for (size_t s = 0; s < ns; s++) {
            if (src[s].used >= src[s].target) continue;
            double f = (double)src[s].used / (double)src[s].target;
            if (f < best) { best = f; pick = s; }
        }
        if (pick == ns) break;
        MixSource *m = &src[pick];
        if (T) {
            uint64_t got = mix_take_window(m, &win, seed);
            if ((rc = shardwriter_add_window(&w, &win, err, errsize)) != 0) break;
            m->used += got;
            progress_update(&p, (double)w.total_tokens);
            continue;
        }
        if (m->next == m->ndocs) { m->pass++; mix_shuffle(m, seed); }
        uint64_t d = m->order[m->next++];
        uint64_t f = m->doc_shard[d], len = m->doc_len[d];
        grow((void **)&ids, &idcap, len, sizeof *ids);
        for (uint64_t i = 0; i < len; i++) ids[i] = (int32_t)shard_token(m->map[f], m->info[f].token_bytes, m->doc_start[d] + i);
        if ((rc = shardwriter_add(&w, ids, len, err, errsize)) != 0) break;
        m->used += len + 1;
        progress_update(&p, (double)w.total_tokens);
    }
    progress_finish(&p);
    free(ids);
    if (T) treewin_free(&win);
    char later[256];
    if (shardwriter_close(&w, rc ? later : err, rc ? sizeof later : errsize) != 0) rc = -1;
    if (!rc && report) {
        fprintf(report, "%-16s %8s %14s %14s %8s %8s\n", "source", "weight", "tokens have", "tokens used", "passes", "share");
        for (size_t s = 0; s < ns; s++)
            fprintf(report, "%-16s %8.4f %14llu %14llu %8.3f %8.4f\n", src[s].name, src[s].weight / wsum,
                    (unsigned long long)src[s].tokens, (unsigned long long)src[s].used,
                    (double)src[s].used / (double)src[s].tokens, (double)src[s].used / (double)(w.total_tokens ? w.total_tokens : 1));
        fprintf(report, "mix: %llu tokens, %llu documents in %zu files\n", (unsigned long long)w.total_tokens,
                (unsigned long long)w.total_docs, w.written.n);
    }
    strlist_free(&w.written);
    return rc;
}

// ---------------------------------------------------------------------------------------------------------------
// The pipeline: the stages in RefinedWeb's order over a corpus in memory. Each per-document stage is one parallel
// pass over the documents still kept, timed on its own; a removed document remembers which stage removed it.

enum { ST_URL, ST_REP, ST_QUAL, ST_LINE, ST_MINHASH, ST_URLDEDUP, ST_EXACT, N_STAGES };
static const char *stage_names[N_STAGES] = {"url_filter", "repetition", "quality", "linewise", "minhash",
                                            "url_dedup", "exact_substring"};

typedef struct {
    int off[N_STAGES];        // stages switched off
    UrlFilter url;
    const char *tokenizer;    // tokenizer.json path, or NULL: exact substring runs on word tokens
    size_t min_span;          // exact substring: shortest repeated span cut, in tokens (50)
    size_t min_chars;         // exact substring: documents left shorter are dropped (20)
    size_t mem_budget;        // minhash: bytes for band keys in memory
    uint64_t seed;
    const char *removed_dir;  // write what each stage removed there, or NULL
} PipelineConfig;

typedef struct {
    size_t docs_in, docs_removed, docs_edited;
    size_t words_in, words_removed; // white-space words; tokens for exact_substring
    size_t bytes_in;
    double seconds;
} StageStats;

typedef struct {
    StageStats st[N_STAGES];
    TokDoc *toks;        // tokens of every document (kept ones filled after tokenisation)
    size_t vocab;        // token alphabet (tokenizer vocabulary, or the word dictionary's size)
    double tokenise_seconds;
    size_t tokens_out;
} PipelineResult;

static void pipeline_config_default(PipelineConfig *c) {
    memset(c, 0, sizeof *c);
    urlfilter_build(&c->url);
    c->min_span = 50;
    c->min_chars = 20;
    c->mem_budget = (size_t)1 << 30;
    c->seed = 1;
}

// Removed-document files, one per stage, opened on first use.
typedef struct { FILE *f[N_STAGES], *edits[N_STAGES]; const char *dir; } RemovedFiles;

static FILE *removed_file(RemovedFiles *rf, int stage, int edits) {
    if (!rf->dir) return NULL;
    FILE **f = edits ? &rf->edits[stage] : &rf->f[stage];
    if (!*f) {
        Buf p = {0};
        buf_printf(&p, "%s/%s%s.jsonl", rf->dir, stage_names[stage], edits ? "_edits" : "");
        *f = fopen(p.s, "w");
        if (!*f) fprintf(stderr, "data: %s: cannot create: %s\n", p.s, strerror(errno));
        free(p.s);
    }
    return *f;
}
static void write_removed(RemovedFiles *rf, int stage, const Doc *d) {
    FILE *f = removed_file(rf, stage, 0);
    if (!f) return;
    doc_write_jsonl(f, d);
}
static void write_edit(RemovedFiles *rf, int stage, size_t index, const char *removed, size_t len) {
    FILE *f = removed_file(rf, stage, 1);
    if (!f) return;
    fprintf(f, "{\"index\":%zu,\"removed\":", index);
    json_write_string(f, removed, len);
    fputs("}\n", f);
}

static int nthreads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Documents per parallel pass of a stage: small enough for a live progress line, large enough that starting the
// threads of a pass costs nothing measurable.
#define PROGRESS_CHUNK 4096

// Runs one per-document stage over the kept documents.
static void run_doc_stage(Corpus *c, int stage, const PipelineConfig *cfg, StageStats *st, RemovedFiles *rf) {
    double t0 = now_seconds();
    int nt = nthreads();
    Scratch *sc = xcalloc((size_t)nt, sizeof *sc);
    char *edited = xcalloc(c->n, 1);
    Buf *cut = xcalloc((size_t)nt, sizeof *cut);
    char **cut_text = xcalloc(c->n, sizeof *cut_text);
    long n = (long)c->n;
    Progress p;
    progress_start(&p, stage_names[stage], (double)n, "docs", 1);
    for (long a = 0; a < n; a += PROGRESS_CHUNK) { // parallel chunks, the progress line between them
        long e = a + PROGRESS_CHUNK < n ? a + PROGRESS_CHUNK : n;
#ifdef _OPENMP
        #pragma omp parallel for schedule(dynamic, 16)
#endif
        for (long i = a; i < e; i++) {
            Doc *d = &c->doc[i];
            if (d->removed_by) continue;
            Scratch *s = &sc[thread_id()];
            if (stage == ST_URL) d->removed_by = url_filter(&cfg->url, d->url);
            else if (stage == ST_REP) d->removed_by = gopher_repetition(s, d->text, d->len);
            else if (stage == ST_QUAL) d->removed_by = gopher_quality(s, d->text, d->len);
            else {
                Buf *b = &cut[thread_id()];
                size_t before = d->len;
                d->removed_by = linewise(d, b);
                if (!d->removed_by && d->len != before) { edited[i] = 1; cut_text[i] = xstrndup(b->s, b->len); }
            }
        }
        progress_update(&p, (double)e);
    }
    progress_finish(&p);
    st->seconds += now_seconds() - t0;
    for (size_t i = 0; i < c->n; i++) {
        if (edited[i]) {
            st->docs_edited++;
            st->words_removed += count_words_ws(cut_text[i], strlen(cut_text[i]));
            write_edit(rf, stage, i, cut_text[i], strlen(cut_text[i]));
            free(cut_text[i]);
        }
    }
    for (int t = 0; t < nt; t++) { scratch_free(&sc[t]); free(cut[t].s); }
    free(sc); free(cut); free(edited); free(cut_text);
}

// Stage statistics before a stage: documents, words and bytes still kept. Returns a map of who is kept.
static char *stage_begin(const Corpus *c, StageStats *st) {
    char *kept = xcalloc(c->n, 1);
    for (size_t i = 0; i < c->n; i++)
        if (!c->doc[i].removed_by) {
            kept[i] = 1;
            st->docs_in++;
            st->words_in += count_words_ws(c->doc[i].text, c->doc[i].len);
            st->bytes_in += c->doc[i].len;
        }
    return kept;
}
static void stage_end(Corpus *c, int stage, char *kept, StageStats *st, RemovedFiles *rf) {
    for (size_t i = 0; i < c->n; i++) {
        Doc *d = &c->doc[i];
        if (kept[i] && d->removed_by) {
            d->stage = stage;
            st->docs_removed++;
            st->words_removed += count_words_ws(d->text, d->len);
            write_removed(rf, stage, d);
        }
    }
    free(kept);
}

static int pipeline_run(Corpus *c, const PipelineConfig *cfg, PipelineResult *res, char *err, size_t errsize) {
    memset(res, 0, sizeof *res);
    RemovedFiles rf = {0};
    rf.dir = cfg->removed_dir;
    int rc = 0;
    for (int stage = ST_URL; stage <= ST_LINE; stage++) {
        if (cfg->off[stage]) continue;
        char *kept = stage_begin(c, &res->st[stage]);
        run_doc_stage(c, stage, cfg, &res->st[stage], &rf);
        stage_end(c, stage, kept, &res->st[stage], &rf);
    }
    if (!cfg->off[ST_MINHASH]) {
        StageStats *st = &res->st[ST_MINHASH];
        char *kept = stage_begin(c, st);
        double t0 = now_seconds();
        MinHashDedup m;
        if (mhd_build(&m, cfg->seed, cfg->mem_budget, err, errsize) != 0) { free(kept); return -1; }
        size_t *idx = xmalloc((c->n ? c->n : 1) * sizeof *idx), nk = 0;
        for (size_t i = 0; i < c->n; i++) if (kept[i]) idx[nk++] = i;
        // band keys in parallel, a chunk at a time, then streamed to the file in document order
        const size_t chunk = 2048;
        uint64_t *keys = xmalloc(chunk * MH_BANDS * sizeof *keys);
        int nt = nthreads();
        MinHashDedup *local = xcalloc((size_t)nt, sizeof *local);
        for (int t = 0; t < nt; t++) { local[t].hasher = m.hasher; local[t].sig = xmalloc(MH_HASHES * sizeof(uint32_t)); }
        Progress p;
        progress_start(&p, "minhash signatures", (double)nk, "docs", 1);
        for (size_t a = 0; a < nk && !rc; a += chunk) {
            long e = (long)(a + chunk < nk ? a + chunk : nk);
#ifdef _OPENMP
            #pragma omp parallel for schedule(dynamic, 8)
#endif
            for (long i = (long)a; i < e; i++) {
                const Doc *d = &c->doc[idx[i]];
                mhd_keys(&local[thread_id()], d->text, d->len, keys + (size_t)(i - (long)a) * MH_BANDS);
            }
            for (long i = (long)a; i < e; i++)
                if (mhd_add_keys(&m, keys + (size_t)(i - (long)a) * MH_BANDS) != 0) {
                    snprintf(err, errsize, "minhash: cannot write band keys: %s", strerror(errno));
                    rc = -1;
                    break;
                }
            progress_update(&p, (double)e);
        }
        progress_finish(&p);
        for (int t = 0; t < nt; t++) { free(local[t].norm.s); free(local[t].sh); free(local[t].sig); }
        free(local);
        free(keys);
        uint32_t *parent = xmalloc((nk ? nk : 1) * sizeof *parent);
        if (!rc) rc = mhd_cluster(&m, parent, err, errsize);
        if (!rc)
            for (size_t i = 0; i < nk; i++)
                if (parent[i] != i) c->doc[idx[i]].removed_by = "near duplicate";
        mhd_free(&m);
        free(parent);
        free(idx);
        st->seconds = now_seconds() - t0;
        stage_end(c, ST_MINHASH, kept, st, &rf);
        if (rc) return -1;
    }
    if (!cfg->off[ST_URLDEDUP]) {
        StageStats *st = &res->st[ST_URLDEDUP];
        char *kept = stage_begin(c, st);
        double t0 = now_seconds();
        HashSet seen = {0};
        hs_clear(&seen, c->n);
        Progress p;
        progress_start(&p, stage_names[ST_URLDEDUP], (double)c->n, "docs", 1);
        for (size_t i = 0; i < c->n; i++) {
            Doc *d = &c->doc[i];
            progress_update(&p, (double)(i + 1));
            if (d->removed_by || !d->url[0]) continue;
            int fresh;
            hs_add(&seen, url_key(d->url), &fresh);
            if (!fresh) d->removed_by = "duplicate URL";
        }
        progress_finish(&p);
        hs_free(&seen);
        st->seconds = now_seconds() - t0;
        stage_end(c, ST_URLDEDUP, kept, st, &rf);
    }
    // tokenisation: the tokenizer's ids, or word tokens
    double t0 = now_seconds();
    res->toks = xcalloc(c->n ? c->n : 1, sizeof *res->toks);
    Progress p;
    progress_start(&p, "tokenise", (double)c->n, "docs", 1);
    if (cfg->tokenizer) {
        int nt = nthreads();
        Tokenizer **tk = xcalloc((size_t)nt, sizeof *tk);
        for (int t = 0; t < nt && !rc; t++)
            if (!(tk[t] = tokenizer_load(cfg->tokenizer, err, errsize))) rc = -1;
        if (!rc) {
            res->vocab = tokenizer_vocab_size(tk[0]);
            long n = (long)c->n;
            int fail = 0;
            for (long a = 0; a < n && !fail; a += PROGRESS_CHUNK) {
                long e = a + PROGRESS_CHUNK < n ? a + PROGRESS_CHUNK : n;
#ifdef _OPENMP
                #pragma omp parallel for schedule(dynamic, 16) reduction(|:fail)
#endif
                for (long i = a; i < e; i++)
                    if (!c->doc[i].removed_by) fail |= bpe_tokenise(tk[thread_id()], c->doc[i].text, c->doc[i].len, &res->toks[i]) != 0;
                progress_update(&p, (double)e);
            }
            if (fail) { snprintf(err, errsize, "%s: tokenisation failed (out of memory)", cfg->tokenizer); rc = -1; }
        }
        for (int t = 0; t < nt; t++) if (tk[t]) tokenizer_free(tk[t]);
        free(tk);
        if (rc) { progress_finish(&p); return -1; }
    } else {
        WordVocab v;
        wordvocab_build(&v);
        for (size_t i = 0; i < c->n; i++) {
            if (!c->doc[i].removed_by) word_tokenise(&v, c->doc[i].text, c->doc[i].len, &res->toks[i]);
            progress_update(&p, (double)(i + 1));
        }
        res->vocab = v.next;
        wordvocab_free(&v);
    }
    progress_finish(&p);
    res->tokenise_seconds = now_seconds() - t0;
    if (!cfg->off[ST_EXACT]) {
        StageStats *st = &res->st[ST_EXACT];
        char *kept = stage_begin(c, st);
        st->words_in = 0;
        double t1 = now_seconds();
        size_t nk = 0;
        for (size_t i = 0; i < c->n; i++) if (kept[i]) nk++;
        Doc **docs = xmalloc((nk ? nk : 1) * sizeof *docs);
        TokDoc *toks = xmalloc((nk ? nk : 1) * sizeof *toks);
        size_t *idx = xmalloc((nk ? nk : 1) * sizeof *idx);
        nk = 0;
        for (size_t i = 0; i < c->n; i++)
            if (kept[i]) { docs[nk] = &c->doc[i]; toks[nk] = res->toks[i]; idx[nk++] = i; st->words_in += res->toks[i].n; }
        size_t chars_removed = 0;
        Buf removed = {0};
        size_t before = 0, after = 0;
        for (size_t i = 0; i < nk; i++) before += toks[i].n;
        exact_substring_dedup(docs, toks, nk, res->vocab, cfg->min_span, &removed, &chars_removed);
        for (size_t i = 0; i < nk; i++) {
            if (toks[i].n != res->toks[idx[i]].n && utf8_chars(docs[i]->text, docs[i]->len) >= cfg->min_chars) {
                st->docs_edited++;
            }
            res->toks[idx[i]] = toks[i];
            after += toks[i].n;
        }
        if (removed.len) write_edit(&rf, ST_EXACT, 0, removed.s, removed.len);
        st->words_removed = before - after;
        // documents left with too little text are dropped; their remaining tokens count as removed too
        for (size_t i = 0; i < nk; i++)
            if (utf8_chars(docs[i]->text, docs[i]->len) < cfg->min_chars) {
                docs[i]->removed_by = "under 20 characters after exact-substring cuts";
                st->words_removed += toks[i].n;
            }
        free(removed.s);
        free(docs); free(toks); free(idx);
        st->seconds = now_seconds() - t1;
        size_t saved = st->words_removed;
        stage_end(c, ST_EXACT, kept, st, &rf);
        st->words_removed = saved; // stage_end counted white-space words of dropped documents; keep tokens
    }
    for (size_t i = 0; i < c->n; i++) if (!c->doc[i].removed_by) res->tokens_out += res->toks[i].n;
    for (int s = 0; s < N_STAGES; s++) { if (rf.f[s]) fclose(rf.f[s]); if (rf.edits[s]) fclose(rf.edits[s]); }
    return rc;
}

static void pipeline_result_free(PipelineResult *res, size_t n) {
    if (res->toks) for (size_t i = 0; i < n; i++) tokdoc_free(&res->toks[i]);
    free(res->toks);
    res->toks = NULL;
}

static void print_stats(FILE *f, const Corpus *c, const PipelineConfig *cfg, const PipelineResult *res) {
    fprintf(f, "read: %zu documents; skipped %zu malformed lines, %zu invalid UTF-8, %zu empty%s%s\n", c->n,
            c->bad_lines, c->bad_utf8, c->empty, c->example[0] ? "; first: " : "", c->example);
    fprintf(f, "%-16s %9s %9s %9s %9s %12s %12s %10s %9s\n", "stage", "docs in", "removed", "edited", "kept", "words in",
            "words cut", "MB in", "seconds");
    for (int s = 0; s < N_STAGES; s++) {
        const StageStats *st = &res->st[s];
        if (cfg->off[s]) { fprintf(f, "%-16s (off)\n", stage_names[s]); continue; }
        fprintf(f, "%-16s %9zu %9zu %9zu %9zu %12zu %12zu %10.3f %9.4f%s\n", stage_names[s], st->docs_in, st->docs_removed,
                st->docs_edited, st->docs_in - st->docs_removed, st->words_in, st->words_removed, (double)st->bytes_in / 1e6,
                st->seconds, s == ST_EXACT ? "  (tokens)" : "");
    }
    fprintf(f, "tokenise: %.4f s; %zu tokens kept\n", res->tokenise_seconds, res->tokens_out);
}

// Writes the kept documents: kept.jsonl (when asked) and, with a tokenizer, train_NNN.bin / val_NNN.bin shards.
// A document goes to validation when a hash of (seed, its index) falls below val_frac.
static int write_outputs(const Corpus *c, const PipelineResult *res, const char *dir, int jsonl, int shards,
                         uint32_t eot, double val_frac, uint64_t seed, size_t shard_tokens, char *err, size_t errsize) {
    if (jsonl) {
        Buf p = {0}, tmp = {0};
        buf_printf(&p, "%s/kept.jsonl", dir);
        buf_printf(&tmp, "%s.tmp", p.s);
        FILE *f = fopen(tmp.s, "w");
        if (!f) { snprintf(err, errsize, "%s: cannot create: %s", tmp.s, strerror(errno)); free(p.s); free(tmp.s); return -1; }
        for (size_t i = 0; i < c->n; i++) if (!c->doc[i].removed_by) doc_write_jsonl(f, &c->doc[i]);
        int bad = fclose(f) != 0 || rename(tmp.s, p.s) != 0;
        if (bad) snprintf(err, errsize, "%s: cannot write: %s", p.s, strerror(errno));
        free(p.s); free(tmp.s);
        if (bad) return -1;
    }
    if (!shards) return 0;
    ShardWriter tw, vw;
    shardwriter_build(&tw, dir, "train", eot, (uint32_t)res->vocab, shard_tokens);
    shardwriter_build(&vw, dir, "val", eot, (uint32_t)res->vocab, shard_tokens);
    int rc = 0;
    Progress p;
    progress_start(&p, "shards", (double)res->tokens_out, "M tokens", 1e6);
    double written = 0;
    for (size_t i = 0; i < c->n && !rc; i++) {
        if (c->doc[i].removed_by) continue;
        int val = (double)(mix64(seed ^ mix64(i)) >> 11) / 9007199254740992.0 < val_frac;
        rc = shardwriter_add(val ? &vw : &tw, res->toks[i].ids, res->toks[i].n, err, errsize);
        progress_update(&p, written += (double)res->toks[i].n);
    }
    progress_finish(&p);
    char later[256]; // a second error is not reported over the first
    if (shardwriter_close(&tw, rc ? later : err, rc ? sizeof later : errsize) != 0) rc = -1;
    if (shardwriter_close(&vw, rc ? later : err, rc ? sizeof later : errsize) != 0) rc = -1;
    if (!rc) printf("shards: train %llu documents, %llu tokens in %zu files; val %llu documents, %llu tokens in %zu files\n",
                    (unsigned long long)tw.total_docs, (unsigned long long)tw.total_tokens, tw.written.n,
                    (unsigned long long)vw.total_docs, (unsigned long long)vw.total_tokens, vw.written.n);
    strlist_free(&tw.written);
    strlist_free(&vw.written);
    return rc;
}

// ---------------------------------------------------------------------------------------------------------------
// The command line (data_cli in data.h; `./data` is its main).

static void usage(void) {
    fprintf(stderr,
            "usage:\n"
            "  data synth [--docs N] [--seed S] [-o FILE]       synthetic web corpus with planted labels (JSONL)\n"
            "  data synth --edge N [--seed S] [-o FILE]          N documents close to the Gopher thresholds\n"
            "  data synth --kind code|second-language [--docs N] [--seed S] [-o FILE]\n"
            "                                                    code-like or Spanish pages (data-mixture ablations)\n"
            "  data prepare --out DIR [options] INPUT...         the pipeline: JSONL / text files / directories\n"
            "      --tokenizer tok.json   tokenise and write DIR/train_NNN.bin, DIR/val_NNN.bin\n"
            "      --jsonl                write the kept documents to DIR/kept.jsonl\n"
            "      --removed DIR2         write what each stage removed to DIR2/<stage>.jsonl\n"
            "      --no-url_filter --no-repetition --no-quality --no-linewise --no-minhash --no-url_dedup\n"
            "      --no-exact_substring   switch a stage off\n"
            "      --blocklist FILE --strict-words FILE --hard-words FILE --soft-words FILE   add to the URL lists\n"
            "      --val-frac F (0.01) --seed S (1) --shard-tokens N (100000000) --mem-mb N (1024)\n"
            "      --min-span N (50) --min-chars N (20)\n"
            "  data gopher FILE.jsonl                            repetition and quality decisions per document\n"
            "  data info SHARD...                                shard headers\n"
            "  data synth --trees N [--nested] [--seed S] [-o FILE]   Reddit-like conversation trees (JSONL)\n"
            "  data trees --out DIR --context T [options] INPUT...  conversation trees (JSONL) to packed tree shards\n"
            "      --tokenizer tok.json (else word tokens)  --val-frac F (0) --seed S (1) --shard-tokens N (100000000)\n"
            "      --unroll DIR2          also every root-to-leaf path as a plain document in DIR2 (for comparison)\n"
            "  data mix --out DIR [--tokens N] [--max-repeat R (4)] [--seed S] NAME=WEIGHT=PATH...\n"
            "      mixes sources (a shard or a directory of shards each) by weight into DIR/mix_NNN.bin\n");
}

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("data: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static int parse_size(const char *s, size_t *out) {
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || s[0] == '-') return -1;
    *out = (size_t)v;
    return 0;
}

// `synth --trees N`: Reddit-like threads as JSONL (a message per line, or a tree per line with --nested).
static int synth_trees_cli(size_t n, uint64_t seed, int nested, const char *out) {
    Forest f = {0};
    synth_forest(&f, n, seed);
    Buf tmp = {0};
    FILE *fp = stdout;
    if (out) {
        buf_printf(&tmp, "%s.tmp", out);
        fp = fopen(tmp.s, "w");
        if (!fp) { forest_free(&f); free(tmp.s); return fail("%s: cannot create: %s", out, strerror(errno)); }
    }
    forest_write_jsonl(fp, &f, nested, seed);
    int bad = out && (fclose(fp) != 0 || rename(tmp.s, out) != 0);
    free(tmp.s);
    forest_free(&f);
    return bad ? fail("%s: cannot write: %s", out, strerror(errno)) : 0;
}

static int cmd_synth(int argc, char **argv) {
    size_t n = 2000, seed = 1, edge = 0, trees = 0;
    int nested = 0;
    const char *out = NULL, *kind = "web";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--docs") && i + 1 < argc) { if (parse_size(argv[++i], &n) || n == 0) return fail("--docs: not a positive number: %s", argv[i]); }
        else if (!strcmp(argv[i], "--edge") && i + 1 < argc) { if (parse_size(argv[++i], &edge)) return fail("--edge: not a number: %s", argv[i]); }
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) { if (parse_size(argv[++i], &seed)) return fail("--seed: not a number: %s", argv[i]); }
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc) kind = argv[++i];
        else if (!strcmp(argv[i], "--trees") && i + 1 < argc) { if (parse_size(argv[++i], &trees) || trees == 0) return fail("--trees: not a positive number: %s", argv[i]); }
        else if (!strcmp(argv[i], "--nested")) nested = 1;
        else return fail("synth: unknown argument: %s", argv[i]);
    }
    if (trees) return synth_trees_cli(trees, seed, nested, out);
    if (strcmp(kind, "web") && strcmp(kind, "code") && strcmp(kind, "second-language"))
        return fail("--kind: expected web, code or second-language: %s", kind);
    Synth s = {0};
    if (edge) synth_edge(&s, edge, seed);
    else if (strcmp(kind, "web")) synth_kind(&s, n, seed, !strcmp(kind, "code"));
    else synth_generate(&s, n, seed);
    Buf tmp = {0};
    FILE *f = stdout;
    if (out) {
        buf_printf(&tmp, "%s.tmp", out);
        f = fopen(tmp.s, "w");
        if (!f) { synth_free(&s); return fail("%s: cannot create: %s", tmp.s, strerror(errno)); }
    }
    synth_write(f, &s);
    int bad = 0;
    if (out) bad = fclose(f) != 0 || rename(tmp.s, out) != 0;
    free(tmp.s);
    synth_free(&s);
    return bad ? fail("%s: cannot write: %s", out, strerror(errno)) : 0;
}

static int cmd_prepare(int argc, char **argv) {
    PipelineConfig cfg;
    pipeline_config_default(&cfg);
    const char *out = NULL;
    int jsonl = 0;
    size_t shard_tokens = 100000000, mem_mb = 1024, seed = 1;
    double val_frac = 0.01;
    StrList inputs = {0};
    char err[512];
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int stage = -1;
        for (int s = 0; s < N_STAGES; s++)
            if (!strncmp(a, "--no-", 5) && !strcmp(a + 5, stage_names[s])) stage = s;
        if (stage >= 0) cfg.off[stage] = 1;
        else if (!strcmp(a, "--jsonl")) jsonl = 1;
        else if (a[0] == '-' && a[1] == '-' && !v) rc = fail("%s needs a value", a);
        else if (!strcmp(a, "--out")) { out = v; i++; }
        else if (!strcmp(a, "--tokenizer")) { cfg.tokenizer = v; i++; }
        else if (!strcmp(a, "--removed")) { cfg.removed_dir = v; i++; }
        else if (!strcmp(a, "--blocklist")) { if (strlist_load(&cfg.url.blocked, v, err, sizeof err)) rc = fail("%s", err); i++; }
        else if (!strcmp(a, "--strict-words")) { if (strlist_load(&cfg.url.strict, v, err, sizeof err)) rc = fail("%s", err); i++; }
        else if (!strcmp(a, "--hard-words")) { if (strlist_load(&cfg.url.hard, v, err, sizeof err)) rc = fail("%s", err); i++; }
        else if (!strcmp(a, "--soft-words")) { if (strlist_load(&cfg.url.soft, v, err, sizeof err)) rc = fail("%s", err); i++; }
        else if (!strcmp(a, "--val-frac")) {
            char *e;
            val_frac = strtod(v, &e);
            if (*e || e == v || !(val_frac >= 0 && val_frac <= 1)) rc = fail("--val-frac: not a fraction in [0, 1]: %s", v);
            i++;
        }
        else if (!strcmp(a, "--seed")) { if (parse_size(v, &seed)) rc = fail("--seed: not a number: %s", v); i++; }
        else if (!strcmp(a, "--shard-tokens")) { if (parse_size(v, &shard_tokens) || !shard_tokens) rc = fail("--shard-tokens: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--mem-mb")) { if (parse_size(v, &mem_mb) || !mem_mb) rc = fail("--mem-mb: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--min-span")) { if (parse_size(v, &cfg.min_span) || !cfg.min_span) rc = fail("--min-span: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--min-chars")) { if (parse_size(v, &cfg.min_chars)) rc = fail("--min-chars: not a number: %s", v); i++; }
        else if (a[0] == '-' && a[1]) rc = fail("prepare: unknown option: %s", a);
        else strlist_add(&inputs, a, strlen(a));
    }
    if (!rc && !out) rc = fail("prepare: --out DIR is required");
    if (!rc && !inputs.n) rc = fail("prepare: no input files");
    cfg.seed = seed;
    cfg.mem_budget = mem_mb << 20;
    Corpus c = {0};
    if (!rc) {
        struct stat st;
        if (stat(out, &st) != 0 && mkdir(out, 0777) != 0) rc = fail("%s: cannot create directory: %s", out, strerror(errno));
        if (!rc && cfg.removed_dir && stat(cfg.removed_dir, &st) != 0 && mkdir(cfg.removed_dir, 0777) != 0)
            rc = fail("%s: cannot create directory: %s", cfg.removed_dir, strerror(errno));
    }
    uint32_t eot = 0;
    if (!rc && cfg.tokenizer) { // check the tokenizer before the long work, and find <|endoftext|>
        Tokenizer *tk = tokenizer_load(cfg.tokenizer, err, sizeof err);
        if (!tk) rc = fail("%s", err);
        else {
            int32_t id = tokenizer_token_id(tk, "<|endoftext|>", 13);
            if (id < 0) rc = fail("%s: no <|endoftext|> token", cfg.tokenizer);
            eot = (uint32_t)id;
            tokenizer_free(tk);
        }
    }
    if (!rc && corpus_read_all(&c, (const char *const *)inputs.s, inputs.n, err, sizeof err) != 0) rc = fail("%s", err);
    PipelineResult res = {0};
    if (!rc && pipeline_run(&c, &cfg, &res, err, sizeof err) != 0) rc = fail("%s", err);
    if (!rc) {
        print_stats(stdout, &c, &cfg, &res);
        if (write_outputs(&c, &res, out, jsonl, cfg.tokenizer != NULL, eot, val_frac, seed, shard_tokens, err, sizeof err) != 0)
            rc = fail("%s", err);
    }
    pipeline_result_free(&res, c.n);
    corpus_free(&c);
    strlist_free(&inputs);
    urlfilter_free(&cfg.url);
    return rc;
}

// Shard files of a source: a file, or the *.bin files of a directory (sorted). Returns 0, or -1 with err.
static int list_shards(const char *path, StrList *out, char *err, size_t errsize) {
    struct stat st;
    if (stat(path, &st) != 0) { snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    if (!S_ISDIR(st.st_mode)) { strlist_add(out, path, strlen(path)); return 0; }
    struct dirent **names;
    int k = scandir(path, &names, NULL, alphasort);
    if (k < 0) { snprintf(err, errsize, "%s: cannot list: %s", path, strerror(errno)); return -1; }
    for (int i = 0; i < k; i++) {
        if (has_suffix(names[i]->d_name, ".bin") && names[i]->d_name[0] != '.') {
            Buf p = {0};
            buf_printf(&p, "%s/%s", path, names[i]->d_name);
            strlist_add(out, p.s, p.len);
            free(p.s);
        }
        free(names[i]);
    }
    free(names);
    if (!out->n) { snprintf(err, errsize, "%s: no .bin shards in the directory", path); return -1; }
    return 0;
}

static int cmd_mix(int argc, char **argv) {
    const char *out = NULL;
    size_t total = 0, seed = 1, shard_tokens = 100000000;
    double max_repeat = 4;
    MixSource *src = xcalloc((size_t)argc, sizeof *src);
    size_t ns = 0;
    char err[512];
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] == '-' && a[1] == '-' && !v) rc = fail("%s needs a value", a);
        else if (!strcmp(a, "--out")) { out = v; i++; }
        else if (!strcmp(a, "--tokens")) { if (parse_size(v, &total) || !total) rc = fail("--tokens: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--seed")) { if (parse_size(v, &seed)) rc = fail("--seed: not a number: %s", v); i++; }
        else if (!strcmp(a, "--shard-tokens")) { if (parse_size(v, &shard_tokens) || !shard_tokens) rc = fail("--shard-tokens: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--max-repeat")) {
            char *e;
            max_repeat = strtod(v, &e);
            if (*e || e == v || !(max_repeat > 0)) rc = fail("--max-repeat: not a positive number: %s", v);
            i++;
        }
        else if (a[0] == '-') rc = fail("mix: unknown option: %s", a);
        else { // NAME=WEIGHT=PATH
            const char *e1 = strchr(a, '='), *e2 = e1 ? strchr(e1 + 1, '=') : NULL;
            char *end;
            double w = e2 ? strtod(e1 + 1, &end) : 0;
            if (!e2 || end != e2 || !(w > 0) || e1 == a) rc = fail("mix: expected NAME=WEIGHT=PATH with a positive weight: %s", a);
            else {
                MixSource *m = &src[ns++];
                m->name = xstrndup(a, (size_t)(e1 - a));
                m->weight = w;
                if (list_shards(e2 + 1, &m->paths, err, sizeof err) != 0) rc = fail("%s", err);
            }
        }
    }
    if (!rc && !out) rc = fail("mix: --out DIR is required");
    if (!rc && !ns) rc = fail("mix: no sources (NAME=WEIGHT=PATH)");
    struct stat st;
    if (!rc && stat(out, &st) != 0 && mkdir(out, 0777) != 0) rc = fail("%s: cannot create directory: %s", out, strerror(errno));
    if (!rc && mix_sources(src, ns, total, max_repeat, seed, out, shard_tokens, stdout, err, sizeof err) != 0) rc = fail("%s", err);
    for (size_t s = 0; s < ns; s++) mix_source_free(&src[s]);
    free(src);
    return rc;
}

// `trees`: conversation trees (JSONL) to packed tree shards, and optionally their unrolled paths.
static int cmd_trees(int argc, char **argv) {
    TreeConfig c = {0};
    c.shard_tokens = 100000000;
    c.seed = 1;
    const char *tokpath = NULL;
    StrList inputs = {0};
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t seed = 0;
        if (a[0] == '-' && a[1] == '-' && !v) rc = fail("%s needs a value", a);
        else if (!strcmp(a, "--out")) { c.out = v; i++; }
        else if (!strcmp(a, "--unroll")) { c.unroll = v; i++; }
        else if (!strcmp(a, "--tokenizer")) { tokpath = v; i++; }
        else if (!strcmp(a, "--context")) { if (parse_size(v, &c.T) || c.T < 2 || c.T > (1u << 24)) rc = fail("--context: not a number in [2, 16777216]: %s", v); i++; }
        else if (!strcmp(a, "--seed")) { if (parse_size(v, &seed)) rc = fail("--seed: not a number: %s", v); c.seed = seed; i++; }
        else if (!strcmp(a, "--shard-tokens")) { if (parse_size(v, &c.shard_tokens) || !c.shard_tokens) rc = fail("--shard-tokens: not a positive number: %s", v); i++; }
        else if (!strcmp(a, "--val-frac")) {
            char *e;
            c.val_frac = strtod(v, &e);
            if (*e || e == v || !(c.val_frac >= 0 && c.val_frac <= 1)) rc = fail("--val-frac: not a fraction in [0, 1]: %s", v);
            i++;
        }
        else if (a[0] == '-' && a[1]) rc = fail("trees: unknown option: %s", a);
        else strlist_add(&inputs, a, strlen(a));
    }
    if (!rc && !c.out) rc = fail("trees: --out DIR is required");
    if (!rc && !c.T) rc = fail("trees: --context T is required (the training context the trees are packed for)");
    if (!rc && !inputs.n) rc = fail("trees: no input files");
    struct stat st;
    if (!rc && stat(c.out, &st) != 0 && mkdir(c.out, 0777) != 0) rc = fail("%s: cannot create directory: %s", c.out, strerror(errno));
    if (!rc && c.unroll && stat(c.unroll, &st) != 0 && mkdir(c.unroll, 0777) != 0) rc = fail("%s: cannot create directory: %s", c.unroll, strerror(errno));
    char err[512];
    Tokenizer *tk = NULL;
    if (!rc && tokpath) {
        if (!(tk = tokenizer_load(tokpath, err, sizeof err))) rc = fail("%s", err);
        else {
            int32_t id = tokenizer_token_id(tk, "<|endoftext|>", 13);
            if (id < 0) rc = fail("%s: no <|endoftext|> token", tokpath);
            c.eot = (uint32_t)id;
            c.vocab = (uint32_t)tokenizer_vocab_size(tk);
        }
    }
    Forest f = {0};
    for (size_t i = 0; i < inputs.n && !rc; i++)
        if (forest_read(&f, inputs.s[i], err, sizeof err) != 0) rc = fail("%s", err);
    TokDoc *toks = xcalloc(f.n ? f.n : 1, sizeof *toks);
    WordVocab wv;
    wordvocab_build(&wv);
    if (!rc && forest_tokenise(&f, tk, &wv, toks, err, sizeof err) != 0) rc = fail("%s", err);
    if (!tk) { c.eot = (uint32_t)wv.next; c.vocab = (uint32_t)wv.next + 1; } // word tokens: EOT is one more id
    TreeStats ts = {0};
    if (!rc && !f.ntrees) rc = fail("trees: no trees read; first problem: %s", f.example[0] ? f.example : "empty input");
    if (!rc && trees_write(&f, toks, &c, &ts, err, sizeof err) != 0) rc = fail("%s", err);
    if (!rc) tree_report(stdout, &f, &ts, c.T, c.unroll != NULL);
    tree_stats_free(&ts);
    for (size_t i = 0; i < f.n; i++) tokdoc_free(&toks[i]);
    free(toks);
    wordvocab_free(&wv);
    if (tk) tokenizer_free(tk);
    forest_free(&f);
    strlist_free(&inputs);
    return rc;
}

static int cmd_gopher(int argc, char **argv) {
    if (argc != 3) return fail("gopher: expected one JSONL file");
    Corpus c = {0};
    char err[512];
    if (corpus_read_all(&c, (const char *const *)argv + 2, 1, err, sizeof err) != 0) return fail("%s", err);
    Scratch sc = {0};
    for (size_t i = 0; i < c.n; i++) {
        const char *r = gopher_repetition(&sc, c.doc[i].text, c.doc[i].len);
        const char *q = gopher_quality(&sc, c.doc[i].text, c.doc[i].len);
        printf("%zu\t%s\t%s\n", i, r ? r : "keep", q ? q : "keep");
    }
    scratch_free(&sc);
    corpus_free(&c);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        ShardInfo info;
        char err[512];
        if (shard_info(argv[i], &info, err, sizeof err) != 0) { rc = fail("%s", err); continue; }
        printf("%s: %llu tokens, %llu documents, %u-byte ids, vocab %u, eot %u", argv[i],
               (unsigned long long)info.n_tokens, (unsigned long long)info.n_docs, info.token_bytes,
               info.vocab_size, info.eot);
        if (info.version == DATA_SHARD_VERSION_TREES)
            printf(", trees packed for context %u: %llu windows, %llu messages", info.context,
                   (unsigned long long)((info.n_tokens - 1) / info.context), (unsigned long long)info.n_messages);
        printf("\n");
    }
    return rc;
}

int data_cli(int argc, char **argv) {
    if (argc < 2) { usage(); return 1; }
    if (!strcmp(argv[1], "synth")) return cmd_synth(argc, argv);
    if (!strcmp(argv[1], "prepare")) return cmd_prepare(argc, argv);
    if (!strcmp(argv[1], "gopher")) return cmd_gopher(argc, argv);
    if (!strcmp(argv[1], "info")) return cmd_info(argc, argv);
    if (!strcmp(argv[1], "trees")) return cmd_trees(argc, argv);
    if (!strcmp(argv[1], "mix")) return cmd_mix(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(); return 0; }
    return fail("unknown command: %s (try data --help)", argv[1]);
}

#ifdef DATA_MAIN
int main(int argc, char **argv) { return data_cli(argc, argv); }
#endif
