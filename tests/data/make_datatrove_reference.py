#!/usr/bin/env python3
"""Reference decisions of datatrove's Gopher filters on the synthetic corpus, for tests/test_data.c.

Usage (from the repository root, after `make data`):
    python tests/data/make_datatrove_reference.py [--docs 2000] [--edge 1100] [--seed 1] > tests/data/datatrove_gopher.tsv

Needs `pip install datatrove spacy` (datatrove splits English words with spaCy's blank "en" tokenizer).
Two document sets: the synthetic corpus (`./data synth --docs N`, set "main") and documents built to sit close
to the Gopher thresholds (`./data synth --edge N`, set "edge"). Writes "# synth docs=N edge=E seed=S" and then
one line per document: set, index, GopherRepetitionFilter's verdict, GopherQualityFilter's verdict ("keep" or
datatrove's reason),
both with datatrove's default thresholds, each filter applied to every document independently.
"""
import argparse
import json
import subprocess
import sys

from importlib.metadata import version

from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter


def verdict(flt, doc):
    out = flt.filter(doc)
    if out is True:
        return "keep"
    if isinstance(out, tuple):
        return "keep" if out[0] else out[1]
    return "keep" if out else "removed"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--edge", type=int, default=1100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="./data", help="the data binary")
    args = ap.parse_args()
    rep, qual = GopherRepetitionFilter(), GopherQualityFilter()
    print(f"# synth docs={args.docs} edge={args.edge} seed={args.seed} datatrove={version('datatrove')}")
    for name, flag, n in (("main", "--docs", args.docs), ("edge", "--edge", args.edge)):
        out = subprocess.run([args.data, "synth", flag, str(n), "--seed", str(args.seed)],
                             check=True, capture_output=True).stdout.decode("utf-8")
        for i, line in enumerate(out.splitlines()):
            doc = Document(text=json.loads(line)["text"], id=str(i))
            print(f"{name}\t{i}\t{verdict(rep, doc)}\t{verdict(qual, doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
