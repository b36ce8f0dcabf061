#!/usr/bin/env python3
"""Benchmark text for the tokenizer: Zipf-distributed pseudo-words, so that a 32k vocabulary has enough
distinct material to learn from (the test corpus generator's word lists are too small for that).

    python3 bench/tokenizer_text.py SIZE_BYTES SEED > out.txt

A lexicon of 200,000 pseudo-words (random syllables) plus common English words is sampled with Zipf
weights 1/rank; sentences get capitals, punctuation, numbers, quotes and now and then a line of code or
a sentence in another script (from tests/tok/gen_text.py). Deterministic for a given SIZE and SEED.
"""
import itertools
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tok"))
import gen_text  # noqa: E402

ONSETS = "b c d f g h j k l m n p r s t v w z br cr dr fr gr pr tr bl cl fl gl pl sl st sp sk ch sh th".split()
VOWELS = "a e i o u a e i o ai ea ou io".split()
CODAS = ["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "rk", "ng", "ck"]
COMMON = ("the of and to in is it that was for on are as with his they at be this from have or by one had "
          "not but what all were when we there can an your which their said if do will each about how up "
          "out them then she many some so these would other into has more her two like him see time").split()


def lexicon(rng, n):
    words = set()
    while len(words) < n:
        k = rng.choice([1, 2, 2, 3, 3, 3, 4, 5])
        words.add("".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(k)))
    words = sorted(words)
    rng.shuffle(words)
    return COMMON + words


def generate(size, seed):
    rng = random.Random(seed)
    lex = lexicon(rng, 200000)
    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(lex))))
    out, n = [], 0
    while n < size:
        if rng.random() < 0.08:
            p = gen_text.paragraph(rng)
        else:
            sents = []
            for _ in range(rng.randint(2, 8)):
                ws = rng.choices(lex, cum_weights=cum, k=rng.randint(4, 22))
                ws[0] = ws[0].capitalize()
                if rng.random() < 0.2:
                    ws.insert(rng.randrange(len(ws)), str(rng.randint(0, 10 ** rng.randint(1, 7))))
                if rng.random() < 0.15:
                    i = rng.randrange(len(ws))
                    ws[i] = rng.choice(['"%s"', "(%s)", "%s,", "%s's", "%s;", "'%s'"]) % ws[i]
                sents.append(" ".join(ws) + rng.choice([".", ".", ".", "?", "!", ":"]))
            p = " ".join(sents)
        p += rng.choice(["\n", "\n\n", "\n"])
        out.append(p)
        n += len(p.encode("utf-8"))
    return "".join(out).encode("utf-8")[:size].decode("utf-8", "ignore")


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1]), int(sys.argv[2])))
