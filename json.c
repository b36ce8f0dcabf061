// json.c: a strict recursive-descent JSON parser (RFC 8259) building a tree of Json values.
// Strings are decoded to UTF-8: \uXXXX escapes and surrogate pairs become their code point, a lone
// surrogate becomes U+FFFD, raw bytes are kept as they are (so invalid UTF-8 survives a round trip).
#include "json.h"
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 512

typedef struct {
    const char *s;
    size_t n, i;        // text, its length, the read position
    char *err;
    size_t errsize;
    int failed;
} Parser;

static int fail(Parser *p, size_t at, const char *fmt, ...) {
    if (!p->failed) {
        p->failed = 1;
        int k = snprintf(p->err, p->errsize, "byte %zu: ", at);
        if (k >= 0 && (size_t)k < p->errsize) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->errsize - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void skip_space(Parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

// Growable byte buffer used while decoding a string.
typedef struct { char *b; size_t len, cap; } Buf;

static int buf_put(Buf *b, const char *src, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16;
        while (b->len + n + 1 > cap) cap *= 2;
        char *nb = realloc(b->b, cap);
        if (!nb) return -1;
        b->b = nb;
        b->cap = cap;
    }
    memcpy(b->b + b->len, src, n);
    b->len += n;
    b->b[b->len] = 0;
    return 0;
}

static int put_utf8(Buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return buf_put(b, u, n);
}

static int hex4(Parser *p, size_t at, uint32_t *out) {
    if (at + 4 > p->n) return fail(p, at, "truncated \\u escape");
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        char c = p->s[at + k];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return fail(p, at + k, "invalid hex digit in \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

// Parses a string starting at the opening quote; the decoded bytes go to *out (malloc'd), length to *len.
static int parse_string(Parser *p, char **out, size_t *len) {
    size_t open = p->i++;
    Buf b = {0};
    if (buf_put(&b, "", 0)) return fail(p, open, "out of memory");
    for (;;) {
        size_t run = p->i;
        while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && (unsigned char)p->s[p->i] >= 0x20) p->i++;
        if (buf_put(&b, p->s + run, p->i - run)) { free(b.b); return fail(p, run, "out of memory"); }
        if (p->i >= p->n) { free(b.b); return fail(p, open, "unterminated string"); }
        char c = p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c != '\\') { free(b.b); return fail(p, p->i, "control character 0x%02x in string", (unsigned)c); }
        size_t esc = p->i++;
        if (p->i >= p->n) { free(b.b); return fail(p, esc, "unterminated string"); }
        char e = p->s[p->i++];
        const char *simple = NULL;
        switch (e) {
            case '"': simple = "\""; break;
            case '\\': simple = "\\"; break;
            case '/': simple = "/"; break;
            case 'b': simple = "\b"; break;
            case 'f': simple = "\f"; break;
            case 'n': simple = "\n"; break;
            case 'r': simple = "\r"; break;
            case 't': simple = "\t"; break;
            case 'u': break;
            default:
                free(b.b);
                if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f) return fail(p, esc, "invalid escape '\\%c'", e);
                return fail(p, esc, "invalid escape: byte 0x%02x after a backslash", (unsigned char)e);
        }
        int rc;
        if (simple) {
            rc = buf_put(&b, simple, 1);
        } else {
            uint32_t cp;
            if (hex4(p, p->i, &cp)) { free(b.b); return -1; }
            p->i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                // a high surrogate must be followed by \u and a low surrogate to form one code point
                uint32_t lo;
                if (p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' &&
                    hex4(p, p->i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    p->i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    if (p->failed) { free(b.b); return -1; }
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            rc = put_utf8(&b, cp);
        }
        if (rc) { free(b.b); return fail(p, esc, "out of memory"); }
    }
    *out = b.b;
    *len = b.len;
    return 0;
}

static int parse_number(Parser *p, Json *v) {
    size_t a = p->i;
    const char *s = p->s;
    size_t i = a;
    if (i < p->n && s[i] == '-') i++;
    if (i < p->n && s[i] == '0') i++;
    else if (i < p->n && s[i] >= '1' && s[i] <= '9') { while (i < p->n && s[i] >= '0' && s[i] <= '9') i++; }
    else return fail(p, a, "invalid number");
    if (i < p->n && s[i] == '.') {
        i++;
        if (!(i < p->n && s[i] >= '0' && s[i] <= '9')) return fail(p, i, "digit expected after '.'");
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        if (!(i < p->n && s[i] >= '0' && s[i] <= '9')) return fail(p, i, "digit expected in exponent");
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    // strtod needs a NUL-terminated copy: the text itself need not be terminated
    char small[64];
    size_t k = i - a;
    char *tmp = k < sizeof small ? small : malloc(k + 1);
    if (!tmp) return fail(p, a, "out of memory");
    memcpy(tmp, s + a, k);
    tmp[k] = 0;
    v->type = JSON_NUMBER;
    v->number = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    p->i = i;
    return 0;
}

static int parse_value(Parser *p, Json *v, int depth);

// Appends one element to a growing array of Json (and, for objects, of keys).
static int grow(Parser *p, Json *v, size_t *cap, int with_keys) {
    if (v->count < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    Json *items = realloc(v->items, nc * sizeof(Json));
    if (!items) return fail(p, p->i, "out of memory");
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, nc * sizeof(char *));
        if (!keys) return fail(p, p->i, "out of memory");
        v->keys = keys;
        size_t *kl = realloc(v->key_lens, nc * sizeof(size_t));
        if (!kl) return fail(p, p->i, "out of memory");
        v->key_lens = kl;
    }
    *cap = nc;
    return 0;
}

static int parse_container(Parser *p, Json *v, int depth, int is_object) {
    char close = is_object ? '}' : ']';
    size_t cap = 0;
    v->type = is_object ? JSON_OBJECT : JSON_ARRAY;
    p->i++;
    skip_space(p);
    if (p->i < p->n && p->s[p->i] == close) { p->i++; return 0; }
    for (;;) {
        if (grow(p, v, &cap, is_object)) return -1;
        if (is_object) {
            skip_space(p);
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, p->i, "object key (a string) expected");
            char *key;
            size_t klen;
            if (parse_string(p, &key, &klen)) return -1;
            v->keys[v->count] = key;
            v->key_lens[v->count] = klen;
            skip_space(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                return fail(p, p->i, "':' expected after object key");
            }
            p->i++;
        }
        Json *item = &v->items[v->count];
        memset(item, 0, sizeof *item);
        int rc = parse_value(p, item, depth + 1);
        v->count++;  // counted even on failure so that json_free releases the partial item and key
        if (rc) return -1;
        skip_space(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == close) { p->i++; return 0; }
        return fail(p, p->i, "',' or '%c' expected", close);
    }
}

static int parse_literal(Parser *p, const char *word, JsonType type, Json *v) {
    size_t n = strlen(word);
    if (p->i + n > p->n || memcmp(p->s + p->i, word, n) != 0) return fail(p, p->i, "invalid value");
    p->i += n;
    v->type = type;
    return 0;
}

static int parse_value(Parser *p, Json *v, int depth) {
    if (depth > JSON_MAX_DEPTH) return fail(p, p->i, "nesting deeper than %d", JSON_MAX_DEPTH);
    skip_space(p);
    if (p->i >= p->n) return fail(p, p->i, "unexpected end of input, value expected");
    v->start = p->i;
    int rc;
    switch (p->s[p->i]) {
        case '{': rc = parse_container(p, v, depth, 1); break;
        case '[': rc = parse_container(p, v, depth, 0); break;
        case '"': v->type = JSON_STRING; rc = parse_string(p, &v->str, &v->len); break;
        case 't': rc = parse_literal(p, "true", JSON_TRUE, v); break;
        case 'f': rc = parse_literal(p, "false", JSON_FALSE, v); break;
        case 'n': rc = parse_literal(p, "null", JSON_NULL, v); break;
        default: rc = parse_number(p, v); break;
    }
    v->end = p->i;
    return rc;
}

int json_parse(const char *text, size_t len, Json *out, char *err, size_t errsize) {
    Parser p = {text, len, 0, err, errsize, 0};
    memset(out, 0, sizeof *out);
    if (parse_value(&p, out, 0) == 0) {
        skip_space(&p);
        if (p.i == p.n) return 0;
        fail(&p, p.i, "unexpected data after the JSON value");
    }
    json_free(out);
    return -1;
}

void json_free(Json *j) {
    if (!j) return;
    for (size_t k = 0; k < j->count; k++) {
        json_free(&j->items[k]);
        if (j->keys) free(j->keys[k]);
    }
    free(j->items);
    free(j->keys);
    free(j->key_lens);
    free(j->str);
    memset(j, 0, sizeof *j);
}

const Json *json_get(const Json *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    size_t klen = strlen(key);
    for (size_t k = obj->count; k-- > 0;)
        if (obj->key_lens[k] == klen && memcmp(obj->keys[k], key, klen) == 0) return &obj->items[k];
    return NULL;
}

void json_write_string(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default:
                if (c < 0x20) fprintf(f, "\\u%04x", c);
                else fputc(c, f);
        }
    }
    fputc('"', f);
}

int read_file(const char *path, char **text, size_t *len, char *err, size_t errsize) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errsize, "cannot open: %s", strerror(errno)); return -1; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) { fclose(f); snprintf(err, errsize, "cannot open: out of memory"); return -1; }
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    if (ferror(f)) { free(buf); fclose(f); snprintf(err, errsize, "cannot open: read error"); return -1; }
    fclose(f);
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}
