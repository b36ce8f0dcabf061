# tools/ablate_report.awk: the table and the chart of tools/ablate.sh.
# Input 1: the variant list (name|axis|what|paper|changes), in the order to show.
# Input 2: results.tsv: "name seed val_loss acc acc_norm params seconds" per finished run, or
#          "name skipped reason" per variant that could not run.
# Variables: md, svg (output paths), steps, B, T, model, seeds.
# Writes mean ± spread per variant, where the spread is the sample standard deviation over seeds, and the
# difference to the default. A difference counts as clear when it exceeds twice its standard error,
# sqrt(sd_v^2/n_v + sd_0^2/n_0); otherwise the row says it is within the noise.

function mean(name, k,    i, s) { s = 0; for (i = 1; i <= n[name]; i++) s += val[name, k, i]; return s / n[name] }
function sd(name, k,    i, s, m) {
    if (n[name] < 2) return 0
    m = mean(name, k); s = 0
    for (i = 1; i <= n[name]; i++) s += (val[name, k, i] - m) ^ 2
    return sqrt(s / (n[name] - 1))
}
function has(name, k) { return n[name] > 0 && val[name, k, 1] != "-" }
# "better", "worse" or "within noise" for the variant against the default; lower is better when sign < 0
function verdict(name, k, sign,    d, se) {
    if (!has(name, k) || !has("default", k)) return "-"
    d = mean(name, k) - mean("default", k)
    se = sqrt(sd(name, k) ^ 2 / n[name] + sd("default", k) ^ 2 / n["default"])
    if (n[name] < 2 || n["default"] < 2) return (d * sign > 0 ? "better" : "worse") " (1 seed: no spread)"
    if (d < 0 ? -d <= 2 * se : d <= 2 * se) return "within noise"
    return d * sign > 0 ? "better" : "worse"
}
# a formatted number that shows zero loses its sign: a difference of -0.0004 is "0.0" to one decimal, not "-0.0"
function unsigned_zero(s) { return s ~ /^[-+]0(\.0*)?$/ ? substr(s, 2) : s }
function cell(name, k, scale, fmt) {
    if (!has(name, k)) return "-"
    return unsigned_zero(sprintf(fmt, scale * mean(name, k))) " ± " sprintf(fmt, scale * sd(name, k))
}
function delta(name, k, scale, fmt) {
    if (name == "default" || !has(name, k) || !has("default", k)) return ""
    return unsigned_zero(sprintf("%+" substr(fmt, 2), scale * (mean(name, k) - mean("default", k))))
}
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }

FNR == NR {
    split($0, f, "|")
    order[++nv] = f[1]; axis[f[1]] = f[2]; what[f[1]] = f[3]; paper[f[1]] = f[4]
    next
}
$2 == "skipped" { skipped[$1] = $3; next }
{
    k = ++n[$1]
    val[$1, "loss", k] = $3; val[$1, "acc", k] = $4; val[$1, "accn", k] = $5
    params[$1] = $6; secs[$1] += $7
}

END {
    # ---- the table
    printf "| axis | variant | parameters | seeds | val loss | Δ loss | acc %% | Δ acc | acc_norm %% | paper (§4) | ours: loss / accuracy |\n" > md
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n" > md
    rows = 0
    for (i = 1; i <= nv; i++) {
        v = order[i]
        if (v in skipped) {
            printf "| %s | %s | | 0 | %s | | | | | %s | |\n", axis[v], v, skipped[v], paper[v] > md
            row[++rows] = v
            continue
        }
        if (!(v in n)) continue
        row[++rows] = v
        printf "| %s | **%s**: %s | %d | %d | %s | %s | %s | %s | %s | %s | %s / %s |\n", axis[v], v, what[v], params[v], n[v],
            cell(v, "loss", 1, "%.4f"), delta(v, "loss", 1, "%.4f"), cell(v, "acc", 100, "%.1f"),
            delta(v, "acc", 100, "%.1f"), cell(v, "accn", 100, "%.1f"), paper[v],
            v == "default" ? "-" : verdict(v, "loss", -1), v == "default" ? "-" : verdict(v, "acc", 1) > md
        total += secs[v]
    }
    printf "\nModel %s, %d steps of %d x %d tokens (%d tokens per run), up to %d seeds per variant; %d s of training in all.\n",
        model, steps, B, T, steps * B * T, seeds, total > md
    printf "Spread: the sample standard deviation over seeds. \"within noise\": the difference to the default is at most\n" > md
    printf "twice its standard error. Accuracy: zero-shot multiple choice on held-out documents (chance 25%%).\n" > md
    close(md)

    # ---- the chart: dots with whiskers (mean ± spread) per variant, val loss on the left, accuracy on the right
    W = 960; top = 56; rh = 22; H = top + rows * rh + 50; lw = 170; pw = (W - lw - 60) / 2
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H > svg
    printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H > svg
    printf "<text x=\"%d\" y=\"20\" font-size=\"15\">Ablations around the Falcon default: mean ± spread over seeds (dashed: the default)</text>\n", 10 > svg
    split("loss acc", keys, " ")
    split("validation loss (lower is better)|zero-shot accuracy, % (higher is better)", titles, "|")
    for (p = 1; p <= 2; p++) {
        k = keys[p]; sc = k == "acc" ? 100 : 1
        x0 = lw + (p - 1) * (pw + 40); lo = 1e30; hi = -1e30
        for (r = 1; r <= rows; r++) {
            v = row[r]
            if (!has(v, k)) continue
            m = sc * mean(v, k); s = sc * sd(v, k)
            if (m - s < lo) lo = m - s
            if (m + s > hi) hi = m + s
        }
        if (lo > hi) { lo = 0; hi = 1 }
        pad = (hi - lo) * 0.08; if (pad == 0) pad = 0.01 * (hi == 0 ? 1 : (hi < 0 ? -hi : hi))
        lo -= pad; hi += pad
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x0 + pw / 2, top - 16, titles[p] > svg
        printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", x0, top - 6, pw, rows * rh + 6 > svg
        for (t = 0; t <= 4; t++) {
            xv = lo + (hi - lo) * t / 4; xx = x0 + pw * t / 4
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", xx, top - 6, xx, top + rows * rh > svg
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.*f</text>\n", xx, top + rows * rh + 16, (hi - lo < 0.5 ? 3 : 1), xv > svg
        }
        if (has("default", k)) {
            xd = x0 + pw * (sc * mean("default", k) - lo) / (hi - lo)
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n", xd, top - 6, xd, top + rows * rh > svg
        }
        for (r = 1; r <= rows; r++) {
            v = row[r]; y = top + (r - 1) * rh + rh / 2
            if (p == 1) printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s%s</text>\n", lw - 8, y + 4, esc(v), (v in skipped) ? " (skipped)" : "" > svg
            if (!has(v, k)) continue
            m = sc * mean(v, k); s = sc * sd(v, k)
            xa = x0 + pw * (m - s - lo) / (hi - lo); xb = x0 + pw * (m + s - lo) / (hi - lo); xm = x0 + pw * (m - lo) / (hi - lo)
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n", xa, y, xb, y > svg
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1f77b4\"/><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#1f77b4\"/>\n", xa, y - 4, xa, y + 4, xb, y - 4, xb, y + 4 > svg
            printf "<circle cx=\"%.1f\" cy=\"%d\" r=\"4\" fill=\"%s\"><title>%s: %.4f ± %.4f (%d seeds)</title></circle>\n", xm, y, v == "default" ? "#d62728" : "#1f77b4", esc(v), m, s, n[v] > svg
        }
    }
    printf "<text x=\"10\" y=\"%d\" fill=\"#555\">model %s, %d steps x %d x %d tokens, up to %d seeds</text>\n", H - 8, esc(model), steps, B, T, seeds > svg
    printf "</svg>\n" > svg
    close(svg)
}
