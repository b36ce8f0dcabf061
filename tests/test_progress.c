// progress.h: the numbers of the line from a known state, when it draws and when it stays silent, the redraw
// padding, and that a tight loop of updates reads the clock only now and then.
#include "../progress.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

// Runs progress calls with stderr sent to a temporary file; returns what they wrote (malloc'd).
static FILE *cap_file;
static int cap_saved = -1;
static void capture_begin(void) {
    cap_file = tmpfile();
    fflush(stderr);
    cap_saved = dup(STDERR_FILENO);
    dup2(fileno(cap_file), STDERR_FILENO);
}
static char *capture_end(size_t *len) {
    fflush(stderr);
    dup2(cap_saved, STDERR_FILENO);
    close(cap_saved);
    long n = ftell(cap_file);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    rewind(cap_file);
    *len = fread(s, 1, (size_t)(n > 0 ? n : 0), cap_file);
    fclose(cap_file);
    return s;
}

// Splits at '\r' and '\n' into a NULL-terminated array of non-empty lines (pointing into s, which it edits).
static size_t split_lines(char *s, char **lines, size_t max) {
    size_t n = 0;
    for (char *t = strtok(s, "\r\n"); t && n + 1 < max; t = strtok(NULL, "\r\n")) lines[n++] = t;
    lines[n] = NULL;
    return n;
}

static size_t count_char(const char *s, size_t n, char c) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == c;
    return k;
}

int main(void) {
    char buf[64];
    // 1. number and time formats
    progress_number(buf, sizeof buf, 1.2345); CHECK(!strcmp(buf, "1.23"), "1.2345 shows as 1.23: %s", buf);
    progress_number(buf, sizeof buf, 12.345); CHECK(!strcmp(buf, "12.3"), "12.345 shows as 12.3: %s", buf);
    progress_number(buf, sizeof buf, 1234.5); CHECK(!strcmp(buf, "1234"), "1234.5 shows as 1234: %s", buf);
    progress_time(buf, sizeof buf, 59.6); CHECK(!strcmp(buf, "1:00"), "59.6 s shows as 1:00: %s", buf);
    progress_time(buf, sizeof buf, 3725); CHECK(!strcmp(buf, "1:02:05"), "3725 s shows as 1:02:05: %s", buf);
    progress_time(buf, sizeof buf, -3); CHECK(!strcmp(buf, "0:00"), "a negative time shows as 0:00: %s", buf);

    // 2. who decides whether it draws: the environment, else whether stderr is a terminal
    Progress p;
    struct { const char *env; int mode; } modes[] = {{"0", 0}, {"1", 1}, {"all", 2}, {"yes", 1}};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        setenv("FALCON_PROGRESS", modes[i].env, 1);
        progress_start(&p, "x", 1, "items", 1);
        CHECK(p.mode == modes[i].mode, "FALCON_PROGRESS=%s: mode %d (expected %d)", modes[i].env, p.mode, modes[i].mode);
    }
    unsetenv("FALCON_PROGRESS");
    size_t len;
    capture_begin(); // stderr is now a file, not a terminal
    progress_start(&p, "quiet", 1e6, "items", 1);
    for (int i = 1; i <= 1000000; i++) progress_update(&p, i);
    progress_finish(&p);
    char *out = capture_end(&len);
    CHECK(len == 0, "stderr not a terminal, no FALCON_PROGRESS: nothing written (%zu bytes)", len);
    free(out);

    // 3. the line from a known state: 1 of 4 MB after 10 s is 0.1 MB/s, 3 MB left at that rate is 30 s
    setenv("FALCON_PROGRESS", "1", 1);
    capture_begin();
    progress_start(&p, "reading", 4e6, "MB", 1e6);
    double now = now_seconds();
    p.t0 = now - 10;
    p.done = 1e6;
    progress_draw(&p, now, 0);
    p.done = 4e6;
    p.t0 = now - 20;
    progress_draw(&p, now, 1);
    out = capture_end(&len);
    const char *want = "\rreading  1.00/4.00 MB  25%  0.10 MB/s  0:10 elapsed  ETA 0:30"
                       "\rreading  4.00/4.00 MB  100%  0.20 MB/s  0:20 elapsed  ETA 0:00\n";
    CHECK(!strcmp(out, want), "line from a known state:\n  got  %s\n  want %s", out, want);
    free(out);

    // a shorter redraw is padded over the longer line before it
    capture_begin();
    progress_start(&p, "merging", 1e6, "merges", 1);
    p.t0 = now - 1;
    p.done = 500000;
    progress_draw(&p, now, 0);       // 500000 merges/s
    p.t0 = now - 1000;
    progress_draw(&p, now, 0);       // 500 merges/s: four characters shorter
    out = capture_end(&len);
    char *second = strrchr(out, '\r');
    CHECK(second && strlen(second) == (size_t)(second - out), "the shorter redraw covers the longer one (%zu >= %zu)",
          second ? strlen(second) : 0, (size_t)(second ? second - out : 0));
    free(out);

    // 4. FALCON_PROGRESS=all: a line at every update; percent never falls, the last line is 100% and ends in '\n'
    setenv("FALCON_PROGRESS", "all", 1);
    capture_begin();
    progress_start(&p, "steps", 1000, "steps", 1);
    for (int i = 1; i <= 1000; i++) progress_update(&p, i);
    progress_finish(&p);
    out = capture_end(&len);
    size_t newlines = count_char(out, len, '\n');
    char **lines = malloc(2000 * sizeof *lines);
    size_t n = split_lines(out, lines, 2000);
    int monotone = 1, parsed = 0, last_pct = -1;
    for (size_t i = 0; i < n; i++) {
        double done, total, rate;
        int pct, em, es, tm, ts;
        if (sscanf(lines[i], "steps  %lf/%lf steps  %d%%  %lf steps/s  %d:%d elapsed  ETA %d:%d", &done, &total, &pct,
                   &rate, &em, &es, &tm, &ts) == 8 && total == 1000 && rate > 0 && es < 60 && ts < 60)
            parsed++;
        if (pct < last_pct) monotone = 0;
        last_pct = pct;
    }
    CHECK(n == 1001, "a line at each of the 1000 updates and a final one: %zu", n);
    CHECK(parsed == (int)n, "every line parses (done/total, percent, rate, elapsed, ETA): %d of %zu", parsed, n);
    CHECK(monotone, "percent never falls");
    CHECK(n && strstr(lines[n - 1], "1000/1000 steps  100%") && strstr(lines[n - 1], "ETA 0:00"),
          "the last line is at 100%% with ETA 0:00: %s", n ? lines[n - 1] : "");
    CHECK(newlines == 1, "the line is ended by one newline, at the end: %zu", newlines);
    free(lines);
    free(out);

    // 5. FALCON_PROGRESS=1 in a tight loop: at most ten redraws a second, and the clock is read only every
    //    `every` updates, which grows far above 1
    setenv("FALCON_PROGRESS", "1", 1);
    capture_begin();
    double t0 = now_seconds();
    progress_start(&p, "tight", 5e7, "items", 1);
    for (int i = 1; i <= 50000000; i++) progress_update(&p, i);
    size_t every = p.every;
    progress_finish(&p);
    double secs = now_seconds() - t0;
    out = capture_end(&len);
    size_t draws = count_char(out, len, '\r');
    CHECK(draws <= 2 + (size_t)(secs * 10), "%zu redraws in %.2f s (at most 10 a second, and the final line)", draws, secs);
    CHECK(every >= 1024, "the clock is read every %zu updates in a tight loop", every);
    free(out);
    return test_summary();
}
