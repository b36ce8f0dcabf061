// json.h: the small JSON reader (and string writer) shared by falcon.c, tokenizer.c and data.c.
// It parses a whole document into a tree of Json values; every value remembers its byte range in the
// source text, so that callers can name the exact position of a problem in their error messages.
#ifndef FALCON_JSON_H
#define FALCON_JSON_H
#include <stddef.h>
#include <stdio.h>

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct Json {
    JsonType type;
    size_t start, end;        // byte range [start, end) of this value in the parsed text
    double number;            // JSON_NUMBER
    char *str;                // JSON_STRING: decoded UTF-8 bytes, NUL-terminated
    size_t len;               // JSON_STRING: length in bytes, without the NUL
    size_t count;             // JSON_ARRAY: elements; JSON_OBJECT: members
    struct Json *items;       // JSON_ARRAY elements / JSON_OBJECT member values
    char **keys;              // JSON_OBJECT member keys (decoded, NUL-terminated)
    size_t *key_lens;         // JSON_OBJECT key lengths in bytes
} Json;

// Parses text[0, len). Returns 0, or -1 with err = "byte N: what is wrong" (N is 0-based).
int json_parse(const char *text, size_t len, Json *out, char *err, size_t errsize);
// Frees everything json_parse allocated inside *j (not j itself).
void json_free(Json *j);
// The value of member `key`, or NULL when absent or when obj is not an object. Last one wins on duplicates.
const Json *json_get(const Json *obj, const char *key);
// Writes s[0, len) as a quoted JSON string, escaping quotes, backslashes and control characters.
void json_write_string(FILE *f, const char *s, size_t len);
// Reads a whole file into a malloc'd, NUL-terminated buffer. Returns 0, or -1 with err = "cannot open: <reason>".
int read_file(const char *path, char **text, size_t *len, char *err, size_t errsize);

#endif
