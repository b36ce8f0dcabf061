// Conversation trees for the tests of falcon.c: random trees of messages packed depth first into rows of T tokens,
// with the per-token arrays the model takes (position ids, span_end) and, per message, its parent and its tokens,
// so that a test can rebuild any root-to-leaf path as a plain sequence. Include after falcon.c (its rng_next).
//
// Depth first: a message is followed by its first child, that child's subtree, then its next child, ...; so the
// subtree of a message is one contiguous range of tokens, and span_end of a token is the end of that range.
#define TREE_MAXMSG 256

typedef enum { TREE_CHAIN, TREE_FAN, TREE_SINGLES, TREE_MIXED, TREE_SHAPES } TreeShape;

typedef struct {
    size_t nmsg;
    int parent[TREE_MAXMSG];                 // -1: the root of a tree (a row holds one tree or several)
    size_t start[TREE_MAXMSG], len[TREE_MAXMSG];  // the message's tokens are [start, start + len) of the row
    size_t depth[TREE_MAXMSG];               // 0 for a root
} TreeRow;

// Fills one row of T tokens with messages of 1..maxlen tokens (the last one cut to fit). Each new message is
// the child of a message on the current root-to-leaf path: TREE_CHAIN always of the deepest (one long
// conversation), TREE_FAN of the first message (one prompt, many replies), TREE_SINGLES never (every message is
// a tree of its own), TREE_MIXED anywhere on the path or a new tree. pos (T) and span_end (T) are the row's.
static void tree_row_make(TreeRow *r, int *pos, int *span_end, size_t T, TreeShape shape, size_t maxlen, uint64_t *rng) {
    size_t path[TREE_MAXMSG], depth = 0, t = 0;  // path[0, depth): the messages from the root to the last one
    r->nmsg = 0;
    while (t < T && r->nmsg < TREE_MAXMSG) {
        size_t keep = shape == TREE_CHAIN ? depth : shape == TREE_FAN ? (depth > 0) : shape == TREE_SINGLES ? 0
                    : rng_next(rng) % (depth + 1);
        if (shape == TREE_MIXED && keep == 0 && depth > 0 && rng_next(rng) % 3) keep = 1;  // new trees now and then
        depth = keep;
        size_t k = r->nmsg++, len = 1 + rng_next(rng) % maxlen;
        r->parent[k] = depth ? (int)path[depth - 1] : -1;
        r->depth[k] = depth;
        r->start[k] = t;
        r->len[k] = len < T - t ? len : T - t;
        size_t p0 = depth ? (size_t)pos[r->start[path[depth - 1]] + r->len[path[depth - 1]] - 1] + 1 : 0;
        for (size_t i = 0; i < r->len[k]; i++) pos[t + i] = (int)(p0 + i);
        t += r->len[k];
        path[depth++] = k;
    }
    if (t < T) die("tree_row_make: more than %d messages in a row of %zu tokens", TREE_MAXMSG, T);
    // the subtree of message k ends where the next message not deeper than k begins
    for (size_t k = 0; k < r->nmsg; k++) {
        size_t j = k + 1;
        while (j < r->nmsg && r->depth[j] > r->depth[k]) j++;
        size_t end = j < r->nmsg ? r->start[j] - 1 : T - 1;
        for (size_t i = 0; i < r->len[k]; i++) span_end[r->start[k] + i] = (int)end;
    }
}

// Whether message k has no children (the end of a root-to-leaf path).
static int tree_is_leaf(const TreeRow *r, size_t k) { return k + 1 >= r->nmsg || r->parent[k + 1] != (int)k; }

// The row positions of the tokens of the path from the root to message k, in order; returns their number.
static size_t tree_path(const TreeRow *r, size_t k, size_t *rows) {
    size_t chain[TREE_MAXMSG], n = 0, len = 0;
    for (int m = (int)k; m >= 0; m = r->parent[m]) chain[n++] = (size_t)m;
    while (n--)
        for (size_t i = 0; i < r->len[chain[n]]; i++) rows[len++] = r->start[chain[n]] + i;
    return len;
}
