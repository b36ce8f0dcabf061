#!/usr/bin/env python3
"""Deterministic mixed-language text for the tokenizer's tests and benchmarks (written for this project).

    python3 tests/tok/gen_text.py SIZE_BYTES SEED > out.txt

Prose built from small hand-written word lists and sentence templates (English, French, German,
Korean, Chinese), source code, numbers of all lengths, punctuation, white-space runs and emoji. Only the
standard library's random module is used, so the same SIZE and SEED always give the same bytes.
"""
import random
import sys

EN_NOUNS = ("model data falcon token river city teacher window garden machine language history "
            "computer network morning evening question answer system paper result method student "
            "table light music mountain ocean street market friend family problem idea number word "
            "letter story picture country village winter summer kitchen engine bridge forest").split()
EN_VERBS = ("reads writes learns trains builds finds sees makes takes gives keeps shows moves carries "
            "counts splits merges opens closes follows changes brings holds turns starts").split()
EN_ADJ = ("small large quick slow bright dark old new simple careful happy quiet loud green blue "
          "strange early late long short heavy light warm cold clever").split()
EN_ADV = "quickly slowly carefully often never always again together today quietly".split()
FR = ["Le chat dort sur la fenêtre pendant que la pluie tombe.",
      "Nous avons appris à écrire un tokeniseur très rapide.",
      "Où est la bibliothèque ? Elle est près de l'église, à gauche.",
      "L'été dernier, j'ai visité Montréal et Québec avec ma sœur.",
      "Ça coûte 12,50 € — c'est déjà trop cher pour un café !"]
DE = ["Der schnelle braune Fuchs springt über den faulen Hund.",
      "Die Straße ist nass, weil es die ganze Nacht geregnet hat.",
      "Größere Modelle brauchen mehr Daten und längere Übungszeit.",
      "Können Sie mir bitte sagen, wie spät es ist?",
      "Fußgänger müssen an der Ampel warten."]
KO = ["안녕하세요, 만나서 반갑습니다.", "오늘 날씨가 정말 좋네요.", "한국어 문장을 토큰으로 나눕니다.",
      "저는 학생입니다. 책을 읽는 것을 좋아해요."]
ZH = ["今天天气很好，我们去公园散步吧。", "机器学习需要大量的数据。", "这个分词器的速度非常快！",
      "他在北京大学学习计算机科学。"]
EMOJI = ["🙂", "🚀", "👍🏽", "🇫🇷", "👩‍💻", "🎉🎉", "❤️", "🐍"]
CODE = ["def {n}(x, y):\n    return x * {k} + y  # {a} helper\n",
        "for (size_t i = 0; i < n; i++) {{\n\tsum += a[i] * {k};\n}}\n",
        "if ({n} != NULL && {n}->len > {k}) {{ return -1; }}\n",
        "const {n} = [{k}, {k2}, {k3}].map((v) => v ** 2);\n",
        "    self.{n} = nn.Linear({k}, {k2}, bias=False)\n"]


def number(rng):
    digits = rng.randint(1, 14)
    s = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))
    r = rng.random()
    if r < 0.15:
        s += "." + str(rng.randint(0, 999))
    elif r < 0.25:
        s = "{:,}".format(int(s))
    return s


def english(rng):
    words = [rng.choice(["The", "A", "Every", "One", "This"]), rng.choice(EN_ADJ), rng.choice(EN_NOUNS),
             rng.choice(EN_VERBS), rng.choice(["the", "a", "her", "his", "their"]), rng.choice(EN_NOUNS)]
    if rng.random() < 0.5:
        words.append(rng.choice(EN_ADV))
    if rng.random() < 0.3:
        words += ["in", str(rng.randint(1800, 2030))]
    if rng.random() < 0.2:
        words += ["and", "doesn't", "stop", "until", "it's", "done"]
    s = " ".join(words)
    return s + rng.choice([".", ".", ".", "!", "?", "...", ";"])


def paragraph(rng):
    kind = rng.random()
    if kind < 0.55:
        return " ".join(english(rng) for _ in range(rng.randint(2, 7)))
    if kind < 0.63:
        return " ".join(rng.choice(FR) for _ in range(rng.randint(1, 3)))
    if kind < 0.70:
        return " ".join(rng.choice(DE) for _ in range(rng.randint(1, 3)))
    if kind < 0.75:
        return " ".join(rng.choice(KO) for _ in range(rng.randint(1, 3)))
    if kind < 0.80:
        return "".join(rng.choice(ZH) for _ in range(rng.randint(1, 3)))
    if kind < 0.90:
        t = rng.choice(CODE)
        return t.format(n=rng.choice(EN_NOUNS), a=rng.choice(EN_ADJ), k=rng.randint(0, 999),
                        k2=rng.randint(0, 9999), k3=rng.randint(0, 99))
    if kind < 0.95:
        return " ".join(number(rng) for _ in range(rng.randint(3, 10)))
    return english(rng) + " " + rng.choice(EMOJI) + rng.choice(["", "!!", " :)", " -- ", "?!?"])


def generate(size, seed):
    rng = random.Random(seed)
    out, n = [], 0
    while n < size:
        p = paragraph(rng) + rng.choice(["\n", "\n", "\n\n", "  \n", "\t\n", "\n\n\n"])
        out.append(p)
        n += len(p.encode("utf-8"))
    return "".join(out).encode("utf-8")[:size].decode("utf-8", "ignore")


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1]), int(sys.argv[2])))
