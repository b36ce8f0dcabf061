#!/usr/bin/env python3
"""Reference decisions of datatrove's Gopher filters on the synthetic corpus, for tests/test_data.c.

Usage (from the repository root, after `make data`):
    python tests/data/make_datatrove_reference.py [--docs 2000] [--seed 1] > tests/data/datatrove_gopher.tsv

Needs `pip install datatrove spacy` (datatrove splits English words with spaCy's blank "en" tokenizer).
Writes "# synth docs=N seed=S datatrove=VERSION" and then one line per document:
index, GopherRepetitionFilter's verdict, GopherQualityFilter's verdict ("keep" or datatrove's reason),
both with datatrove's default thresholds, each filter applied to every document independently.
"""
import argparse
import json
import subprocess
import sys

import datatrove
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
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="./data", help="the data binary")
    args = ap.parse_args()
    out = subprocess.run([args.data, "synth", "--docs", str(args.docs), "--seed", str(args.seed)],
                         check=True, capture_output=True).stdout.decode("utf-8")
    rep, qual = GopherRepetitionFilter(), GopherQualityFilter()
    print(f"# synth docs={args.docs} seed={args.seed} datatrove={datatrove.__version__ if hasattr(datatrove, '__version__') else 'unknown'}")
    for i, line in enumerate(out.splitlines()):
        d = json.loads(line)
        doc = Document(text=d["text"], id=str(i))
        print(f"{i}\t{verdict(rep, doc)}\t{verdict(qual, doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
