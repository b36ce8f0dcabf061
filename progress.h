// progress.h: the progress line of every long step (reading a corpus, BPE merges, the data pipeline's stages,
// writing shards), shared by tokenizer.c, data.c and falcon.c. A header of small static functions, so that each
// tool and each test that includes a .c file gets it without another file on the link line.
//
//     reading  12.3/45.6 MB  27%  5.12 MB/s  0:02 elapsed  ETA 0:06
//
// done/total in the step's unit, the percentage, the mean rate since the start, the time so far, and the time
// left at that rate: ETA = (total - done) / rate. On a terminal the line is redrawn in place ('\r') at most ten
// times a second and ended with a newline by progress_finish; when stderr is not a terminal nothing is printed,
// so that logs and the one-line errors of failing commands stay clean. The environment overrides this:
//     FALCON_PROGRESS=0     never       FALCON_PROGRESS=1     always (10 redraws a second)
//     FALCON_PROGRESS=all   always, a redraw at every clock check (for tests: every step of a run is visible)
//
// Cost: progress_update stores a number and decrements a counter; the clock is read only every `every`
// updates, and `every` adapts (doubling or halving) so that the clock is read about a hundred times a second
// however fast the loop runs. It stops at PROGRESS_MAX_EVERY, which bounds how long the line can lag when a loop
// slows down abruptly. Call it from one thread only (between parallel chunks, not inside them).
#ifndef FALCON_PROGRESS_H
#define FALCON_PROGRESS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_MAX_EVERY ((size_t)1 << 16)

typedef struct {
    const char *what, *unit;  // "reading", "MB"
    double scale;             // items per shown unit (1e6: bytes shown as MB)
    double total, done;       // in items
    double t0, t_check, t_draw;
    size_t every, left;       // read the clock every `every` updates; `left` counts down to the next read
    int mode;                 // 0 off, 1 on (redraws at most every 0.1 s), 2 on (a redraw at every clock read)
    int width;                // length of the last line drawn (a shorter redraw pads over it)
} Progress;

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Numbers of any size in a few characters: 3 significant digits below 1000, whole numbers above.
static inline void progress_number(char *out, size_t n, double v) {
    snprintf(out, n, v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v);
}
// Seconds as M:SS, or H:MM:SS from an hour on.
static inline void progress_time(char *out, size_t n, double s) {
    unsigned long t = s <= 0 ? 0 : s < 3.6e8 ? (unsigned long)(s + 0.5) : 360000000UL;
    if (t >= 3600) snprintf(out, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, n, "%lu:%02lu", t / 60, t % 60);
}

static inline void progress_draw(Progress *p, double now, int last) {
    double elapsed = now - p->t0, rate = elapsed > 0 ? p->done / elapsed : 0;
    double left = p->total > p->done ? p->total - p->done : 0;
    int pct = p->total > 0 ? (int)(100.0 * (p->done < p->total ? p->done : p->total) / p->total) : 100; // 100 only when done
    char done[32], total[32], r[32], el[32], eta[32];
    progress_number(done, sizeof done, p->done / p->scale);
    progress_number(total, sizeof total, p->total / p->scale);
    progress_number(r, sizeof r, rate / p->scale);
    progress_time(el, sizeof el, elapsed);
    progress_time(eta, sizeof eta, last || rate <= 0 ? 0 : left / rate);
    char line[256];
    int len = snprintf(line, sizeof line, "%s  %s/%s %s  %d%%  %s %s/s  %s elapsed  ETA %s", p->what, done, total,
                       p->unit, pct, r, p->unit, el, eta);
    if (len < 0) return;
    if (len > (int)sizeof line - 1) len = (int)sizeof line - 1;
    fprintf(stderr, "\r%s%*s%s", line, p->width > len ? p->width - len : 0, "", last ? "\n" : "");
    fflush(stderr);
    p->width = last ? 0 : len;
    p->t_draw = now;
}

// Starts a step of `total` items, shown as total / scale `unit`s.
static inline void progress_start(Progress *p, const char *what, double total, const char *unit, double scale) {
    memset(p, 0, sizeof *p);
    const char *env = getenv("FALCON_PROGRESS");
    if (env && *env) p->mode = !strcmp(env, "all") ? 2 : strcmp(env, "0") != 0;
    else p->mode = isatty(STDERR_FILENO);
    p->what = what;
    p->unit = unit;
    p->scale = scale > 0 ? scale : 1;
    p->total = total;
    p->t0 = p->t_check = p->t_draw = now_seconds();
    p->every = p->left = 1;
}

// The slow half of progress_update: reads the clock, adapts `every`, redraws when it is time.
static inline void progress_check(Progress *p) {
    double now = now_seconds();
    if (p->mode == 1) {
        if (now - p->t_check < 0.005 && p->every < PROGRESS_MAX_EVERY) p->every *= 2;
        else if (now - p->t_check > 0.02 && p->every > 1) p->every /= 2;
    }
    p->t_check = now;
    p->left = p->every;
    if (p->done > 0 && (p->mode == 2 || now - p->t_draw >= 0.1)) progress_draw(p, now, 0);
}

// `done` items of the total are done. Cheap enough for the innermost loop of a pass.
static inline void progress_update(Progress *p, double done) {
    p->done = done;
    if (p->mode && --p->left == 0) progress_check(p);
}

// Draws the final line (with what was last reported done) and ends it.
static inline void progress_finish(Progress *p) {
    if (p->mode) progress_draw(p, now_seconds(), 1);
    p->mode = 0;
}

#endif
