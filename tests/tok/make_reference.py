#!/usr/bin/env python3
"""Makes the tokenizer's committed reference data with HF `tokenizers` (run by hand, never by make test).

    make tokenizer && .venv/bin/python tests/tok/make_reference.py

Writes, under tests/tok/:
  texts/*.txt          the test texts (generated here, deterministic)
  hf_trained.json      Falcon's pre-tokenizer + BPE trained by HF's BpeTrainer on corpus.txt (vocab 2000)
  c_trained.json       the same, trained by ./tokenizer train
  hf_bytelevel.json    hf_trained.json's vocabulary with a GPT-2 style pre-tokenizer (ByteLevel only)
  expected/<tokenizer>/<text>.ids   the ids HF tokenizers gives (space-separated, one line)
Texts that are not valid UTF-8 cannot be given to HF (its input is a Rust String); they are in
texts_bytes/ and are checked for the decode(encode(x)) == x round trip only.
"""
import json
import os
import random
import subprocess
import sys
import unicodedata

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from gen_text import generate  # noqa: E402

SPECIALS = [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<", ">>ANSWER<<",
            ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<", ">>MIDDLE<<", "<|endoftext|>"]
VOCAB = 2000


def falcon_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Punctuation(behavior="contiguous"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split(pattern=Regex("[0-9][0-9][0-9]"), behavior="isolated", invert=False)])


def hf_train(files, vocab_size, out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = falcon_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train(files, trainer)
    tok.save(out)
    return tok


def texts():
    t = {}
    t["prose_en"] = generate(12000, 2)
    t["prose_mixed"] = generate(12000, 3)
    t["code"] = (open(os.path.join(ROOT, "tokenizer.h"), encoding="utf-8").read()[:6000] +
                 "\nimport os\n\ndef f(a, b=2, *args, **kw):\n\treturn {'k': [a, b], \"s\": f'{a!r}'}\n"
                 "x = y if z else w  # comment with 'quotes' and \"double\" ones\n"
                 "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 42);return 0;}\n"
                 "<div class=\"x\">&nbsp;</div>\n$ ls -la | grep -v '^d' && echo \"done\" >> log.txt\n")
    t["french"] = ("Le tokeniseur découpe le texte en morceaux : « Bonjour à tous ! » Qu'est-ce que c'est ? "
                   "L'hôpital, l'été, où, déjà, œuvre, naïve, Noël. Ça va très bien, merci.\n") * 3
    t["german"] = ("Übermäßig große Straßenbahnhaltestellen; Fußgängerübergänge. Größenwahn? Äpfel, Öl, "
                   "Übung — „Anführungszeichen“ und ‚einfache‘.\n") * 3
    t["korean"] = "토크나이저는 텍스트를 조각으로 나눕니다. 안녕하세요! 한국어(韓國語)는 한글로 씁니다. 2024년 3월 1일.\n" * 3
    t["chinese"] = "分词器把文本切成小块。你好，世界！这是第3个测试（测试）。《书名》、“引号”……\n" * 3
    t["emoji"] = "🙂🙂 🚀x 👍🏽👍🏿 🇫🇷🇩🇪 👩‍💻 ❤️‍🔥 a🐍b 1🎉2 ✨✨✨ 😀😃😄😁 \U0001F9D1\u200D\U0001F680.\n"
    nums = []
    for d in range(1, 41):
        nums.append("".join(str((i * 7 + d) % 10) for i in range(d)))
    t["numbers"] = (" ".join(nums) + "\n" + "".join(nums[:12]) + "\n3.14159 1,000,000 1e-10 0x1F 2024-03-01 "
                    "12:30:45 v1.2.3 $1,234.56 50% -7 +8 ½ ¾ ² ³ ¹ ١٢٣ ४५६ ⅷ ①②③ 12²³ x²+y³=z¹\n")
    t["whitespace"] = ("a  b   c    d\te\t\tf \t g\n\nh\n\n\ni \n j  \n  k\r\nl\u00a0m\u3000n\u2003o \u00a0 p"
                       "   \n\n   \t\t\n      end    \n" + " " * 20 + "\n" + "\t" * 9 + "x" + "\n" * 7 + "  ")
    t["punct"] = ("Hello!!! What?!?! Wait... (yes) [no] {maybe} <tag/> a--b a---b a—b ‘q’ “q” «q» "
                  "don't won't I'm you're we've they'll she'd DON'T 'S 's ''' \"\" ... ?.!.,;:@#$%^&*_+=|\\/~` "
                  "¿Qué? ¡Sí! ... 。、！？【】·…\n")
    t["specials"] = ("<|endoftext|>start>>TITLE<<mid>>ABSTRACT<<end<|endoftext|><|endoftext|> word<|endoftext|>word "
                     ">>TITLE< >TITLE<< >>>TITLE<<< <|endoftext|x <|endoftext|> >>PREFIX<<def f():>>SUFFIX<<\n"
                     ">>MIDDLE<<return 1>>QUESTION<<Why?>>ANSWER<<Because.>>COMMENT<<>>DOMAIN<<"
                     ">>INTRODUCTION<<>>SUMMARY<< <|end <|endo >>TITLE<<>>x >>TITLE<<>>TITLE<<>>\n"
                     "xyz>>TITLE<< yz>>TI yz>>TITLE<<>>\n")
    # a sample of the code points of every Unicode block, each in several contexts
    rng = random.Random(5)
    parts = []
    for cp in list(range(0x20, 0x3000, 4)) + rng.sample(range(0x3000, 0x110000), 3000):
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) in ("Cs", "Co", "Cn"):
            continue
        c = chr(cp)
        parts.append("a%sb 7%s8 !%s? %s %s\n" % (c, c, c, c, c) if cp % 2 else "%s%s %sa,%s9 " % (c, c, c, c))
    t["unicode_sample"] = "".join(parts)
    t["long_word"] = "a" * 3000 + " " + "ab" * 1500 + " " + "9" * 1000 + "\n" + "x" * 500 + "🙂" * 200
    return t


def invalid_texts():
    return {
        "invalid_utf8": (b"abc \xff\xfe def \xc3\x28 \xa0\xa1 \xe2\x82 \xf0\x9f\x98 end \xed\xa0\x80 "
                         b"\xc0\xaf \xf5\x80\x80\x80 \x80\x80\x80 ok\xff" + bytes(range(256))),
        "all_bytes": bytes(range(256)) * 2 + bytes(reversed(range(256))),
    }


def main():
    os.chdir(ROOT)
    for d in ["tests/tok/texts", "tests/tok/texts_bytes"]:
        os.makedirs(d, exist_ok=True)
    for name, s in texts().items():
        with open("tests/tok/texts/%s.txt" % name, "w", encoding="utf-8", newline="") as f:
            f.write(s)
    for name, b in invalid_texts().items():
        with open("tests/tok/texts_bytes/%s.bin" % name, "wb") as f:
            f.write(b)
    corpus = "tests/tok/corpus.txt"
    hf_train([corpus], VOCAB, "tests/tok/hf_trained.json")
    subprocess.run(["./tokenizer", "train", "--vocab-size", str(VOCAB), "--out", "tests/tok/c_trained.json", corpus],
                   check=True)
    j = json.load(open("tests/tok/hf_trained.json", encoding="utf-8"))
    j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    # more added tokens: one a prefix of a special token (leftmost-longest matching), and a "normalized"
    # one, which HF looks for only in the text between the others
    for i, (content, normalized) in enumerate([("<|end", False), (">>TITLE<<>>", False), ("yz>>TI", True)]):
        j["added_tokens"].append({"id": VOCAB + i, "content": content, "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": normalized, "special": not normalized})
    json.dump(j, open("tests/tok/hf_bytelevel.json", "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    for tk in ["hf_trained", "c_trained", "hf_bytelevel"]:
        tok = Tokenizer.from_file("tests/tok/%s.json" % tk)
        os.makedirs("tests/tok/expected/%s" % tk, exist_ok=True)
        for name in sorted(os.listdir("tests/tok/texts")):
            s = open("tests/tok/texts/" + name, encoding="utf-8", newline="").read()
            ids = tok.encode(s).ids
            with open("tests/tok/expected/%s/%s.ids" % (tk, name[:-4]), "w") as f:
                f.write(" ".join(map(str, ids)) + "\n")
    print("tokenizers", tokenizers.__version__, "unicodedata", unicodedata.unidata_version)


if __name__ == "__main__":
    main()
