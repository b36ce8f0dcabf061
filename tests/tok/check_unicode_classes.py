#!/usr/bin/env python3
"""Compares tokenizer.c's pre-tokenization with HF tokenizers' on every Unicode code point (run by hand).

    make tokenizer && .venv/bin/python tests/tok/check_unicode_classes.py [tokenizer.json]

Each code point c is put in the contexts "a{c}a 1{c}1 !{c}! {c}{c} x{c}\\n", which tell letters, numbers,
punctuation, white space and the rest apart; the pieces of both pre-tokenizers are compared.
"""
import os
import subprocess
import sys

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/tok/hf_trained.json")
    pre = Tokenizer.from_file(path).pre_tokenizer
    bad, total = [], 0
    step = 0x10000
    for lo in range(0, 0x110000, step):
        cps = [c for c in range(lo, lo + step) if not 0xD800 <= c <= 0xDFFF]
        total += len(cps)
        text = "".join("a{0}a 1{0}1 !{0}! {0}{0} x{0}\n".format(chr(c)) for c in cps)
        hf = [p for p, _ in pre.pre_tokenize_str(text)]
        out = subprocess.run([os.path.join(ROOT, "tokenizer"), "explain", "-t", path], input=text.encode("utf-8"),
                             capture_output=True, check=True).stdout.decode("utf-8")
        ours = [line.split(" ")[0] for line in out.splitlines()]
        if hf != ours:
            # find the first differing code point by comparing per-line groups
            for c in cps:
                t = "a{0}a 1{0}1 !{0}! {0}{0} x{0}\n".format(chr(c))
                h = [p for p, _ in pre.pre_tokenize_str(t)]
                o = subprocess.run([os.path.join(ROOT, "tokenizer"), "explain", "-t", path], input=t.encode("utf-8"),
                                   capture_output=True, check=True).stdout.decode("utf-8")
                if h != [line.split(" ")[0] for line in o.splitlines()]:
                    bad.append(c)
                    if len(bad) > 20:
                        break
    print("code points checked: %d, differing: %d %s" % (total, len(bad), " ".join("U+%04X" % c for c in bad[:20])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
