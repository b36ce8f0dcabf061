#!/usr/bin/env bash
# Draws the figures of docs/trees.md from one small example (no dependencies beyond bash and awk):
#   trees_example.svg  the tree, its packed sequence with message, position id, span_end and target per token
#   trees_mask.svg     its attention mask: key j visible from query i iff j <= i <= span_end[j]
# Run from the repository root: docs/img/trees_figures.sh
cd "$(dirname "$0")" || exit 1
# token  message  pos  span_end  target   (messages: A root, B reply to A, D reply to B, C reply to A)
DATA='EOT A 0 11 Do
Do A 1 11 you
you A 2 11 like
like A 3 11 Paris?
Paris? A 4 11 Yes!
Yes! B 5 9 It'"'"'s
It'"'"'s B 6 9 lovely!
lovely! B 7 9 Which
Which D 8 9 part?
part? D 9 9 EOT
Too C 5 11 crowded.
crowded. C 6 11 EOT'
printf '%s\n' "$DATA" | awk '
BEGIN { col["A"] = "#cfe3ff"; col["B"] = "#ffe0b3"; col["D"] = "#ffd0d0"; col["C"] = "#d4f2d0" }
{ tok[NR-1] = $1; msg[NR-1] = $2; pos[NR-1] = $3; se[NR-1] = $4; tg[NR-1] = $5; n = NR }
END {
    W = 66; x0 = 110; y0 = 250
    f = "trees_example.svg"
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"430\" font-family=\"sans-serif\" font-size=\"13\">\n", x0 + n * W + 20 > f
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > f
    # the tree
    box("A", "A  ana: Do you like Paris?", 330, 20, 230)
    box("B", "B  ben: Yes! It'"'"'s lovely!", 130, 100, 210)
    box("C", "C  cy: Too crowded.", 560, 100, 170)
    box("D", "D  ana: Which part?", 130, 175, 170)
    line(445, 50, 235, 100); line(445, 50, 645, 100); line(215, 130, 215, 175)
    # the packed sequence
    split("token message position&#160;id span_end target", lab, " ")
    for (r = 1; r <= 5; r++) printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", x0 - 8, y0 + 22 + (r - 1) * 34, lab[r] > f
    for (i = 0; i < n; i++) {
        x = x0 + i * W
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#666\">%d</text>\n", x + W / 2, y0 - 8, i > f
        for (r = 0; r < 5; r++) {
            v = r == 0 ? tok[i] : r == 1 ? msg[i] : r == 2 ? pos[i] : r == 3 ? se[i] : tg[i]
            printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"30\" fill=\"%s\" stroke=\"#888\"/>\n", x, y0 + r * 34, W - 2, r < 2 ? col[msg[i]] : "#f6f6f6" > f
            printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x + W / 2 - 1, y0 + r * 34 + 20, v > f
        }
    }
    printf "</svg>\n" > f
    # the mask
    f = "trees_mask.svg"; C = 30; mx = 100; my = 90
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", mx + n * C + 20, my + n * C + 20 > f
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > f
    printf "<text x=\"%d\" y=\"16\" text-anchor=\"middle\">key j</text>\n", mx + n * C / 2 > f
    printf "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">query i</text>\n", my + n * C / 2, my + n * C / 2 > f
    for (j = 0; j < n; j++) {
        printf "<text x=\"%d\" y=\"%d\" transform=\"rotate(-60 %d %d)\">%s</text>\n", mx + j * C + 12, my - 6, mx + j * C + 12, my - 6, tok[j] > f
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s %s</text>\n", mx - 6, my + j * C + 20, tok[j], msg[j] > f
    }
    for (i = 0; i < n; i++) for (j = 0; j < n; j++) {
        vis = j <= i && i <= se[j]
        printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#bbb\"/>\n", mx + j * C, my + i * C, C, C, vis ? col[msg[j]] : "white" > f
        if (vis) printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", mx + j * C + C / 2, my + i * C + 19, msg[j] > f
    }
    printf "</svg>\n" > f
}
function box(m, t, x, y, w) {
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"30\" rx=\"6\" fill=\"%s\" stroke=\"#555\"/>\n", x, y, w, col[m] > f
    printf "<text x=\"%d\" y=\"%d\">%s</text>\n", x + 8, y + 20, t > f
}
function line(a, b, c, d) { printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n", a, b, c, d > f }
'
