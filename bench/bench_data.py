#!/usr/bin/env python3
"""Speed of data.c's pipeline stages, side by side with datatrove on the same documents, one core each.

Usage (from the repository root, after `make data`; needs `pip install datatrove spacy` in the Python used):
    python bench/bench_data.py [--docs 2000] [--runs 3] [--dt-minhash-docs 300]

Ours: `OMP_NUM_THREADS=1 ./data prepare` on the synthetic corpus, its per-stage table (seconds, documents and MB
entering each stage) and the wall time of the whole command (reading, all stages, writing). Medians of --runs.
datatrove: GopherRepetitionFilter and GopherQualityFilter (`filter` on every document), and MinhashDedupSignature's
shingling + signature (`get_shingles` + `get_signature`, the first of its four MinHash steps, without writing) at
our setting (450 buckets x 20 hashes = 9,000) and at its default (14 x 8). Our MinHash column includes the
banding and clustering that datatrove does in later steps, so the ratio understates our advantage.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_ours(corpus, runs):
    stages, walls = {}, []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            p = subprocess.run(["./data", "prepare", "--out", out, corpus], check=True, capture_output=True, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
            walls.append(time.perf_counter() - t0)
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) >= 9 and f[0] in ("url_filter", "repetition", "quality", "linewise", "minhash", "url_dedup",
                                        "exact_substring"):
                stages.setdefault(f[0], []).append((int(f[1]), float(f[7]), float(f[8])))
    table = {}
    for name, rows in stages.items():
        docs, mb = rows[0][0], rows[0][1]
        sec = statistics.median(r[2] for r in rows)
        table[name] = (docs, mb, sec)
    return table, statistics.median(walls)


def time_docs(fn, docs, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for d in docs:
            fn(d)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dt-minhash-docs", type=int, default=300, help="documents for datatrove's 9,000-hash MinHash")
    args = ap.parse_args()

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "synth.jsonl")
    subprocess.run(["./data", "synth", "--docs", str(args.docs), "-o", corpus], check=True)
    texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
    mb_all = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    ours, wall = run_ours(corpus, args.runs)
    print(f"corpus: {len(texts)} synthetic documents, {mb_all:.2f} MB; one core each; medians of {args.runs} runs")
    print(f"{'ours: stage':<18} {'docs':>7} {'MB':>7} {'seconds':>9} {'docs/s':>10} {'MB/s':>8}")
    for name, (docs, mb, sec) in ours.items():
        print(f"{name:<18} {docs:>7} {mb:>7.2f} {sec:>9.4f} {docs / sec if sec else float('inf'):>10.0f} "
              f"{mb / sec if sec else float('inf'):>8.2f}")
    print(f"{'whole pipeline':<18} {len(texts):>7} {mb_all:>7.2f} {wall:>9.4f} {len(texts) / wall:>10.0f} {mb_all / wall:>8.2f}"
          "   (process wall time: read, all stages, write)")

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    rep, qual = GopherRepetitionFilter(), GopherQualityFilter()
    rep.filter(docs[0]), qual.filter(docs[0])  # load spaCy outside the timing
    # ours sees only the documents that survived earlier stages; datatrove here sees all: compare per document
    comparisons = []
    for name, flt, stage in (("gopher repetition", rep, "repetition"), ("gopher quality", qual, "quality")):
        sec = time_docs(flt.filter, docs, args.runs)
        d_ours, _, s_ours = ours[stage]
        comparisons.append((name, len(docs) / sec, d_ours / s_ours))

    n9 = min(args.dt_minhash_docs, len(docs))
    for label, nb, hb, sub in (("minhash 450x20", 450, 20, docs[:n9]), ("minhash 14x8 (datatrove default)", 14, 8, docs)):
        with tempfile.TemporaryDirectory() as out:
            sig = MinhashDedupSignature(output_folder=out, config=MinhashConfig(num_buckets=nb, hashes_per_bucket=hb))
            def one(d):
                sh = sig.get_shingles(d.text)
                if len(sh):  # datatrove's signature fails on documents under 5 words; ours skips them too
                    sig.get_signature(sh)
            one(sub[0])
            sec = time_docs(one, sub, args.runs)
        d_ours, _, s_ours = ours["minhash"]
        comparisons.append((label, len(sub) / sec, d_ours / s_ours))
    print()
    print(f"{'vs datatrove':<34} {'datatrove docs/s':>16} {'ours docs/s':>12} {'ours / datatrove':>17}")
    for name, dt, us in comparisons:
        print(f"{name:<34} {dt:>16.0f} {us:>12.0f} {us / dt:>16.1f}x")
    print("(ours at 450x20 in every row: it runs 9,000 hashes however datatrove is configured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
