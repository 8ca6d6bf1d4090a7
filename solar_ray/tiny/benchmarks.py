"""Tiny benchmark files in the six leaderboard schemas (lm-eval field names) and a tiny random Llama over them.

Smaller and plainer than the tiny world's benchmarks (items built from a few colours and animals, any count):
what tests/evaluate, tests/cluster and bench/bench_eval.py evaluate. Deterministic, offline, seconds to build.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "hen"]
SUBJECTS = ["anatomy", "astronomy"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arc_row(i: int, rng: random.Random) -> dict:
    animal, colours = ANIMALS[i % 8], rng.sample(COLOURS, 4)
    return {"id": f"arc-{i}", "question": f"What colour is the {animal} number {i}?",
            "choices": {"text": colours, "label": ["A", "B", "C", "D"]}, "answerKey": "ABCD"[i % 4]}


def hellaswag_row(i: int, rng: random.Random) -> dict:
    animal = ANIMALS[i % 8]
    return {"ind": i, "activity_label": "Walking", "ctx_a": f"The {animal} walks to the lake.",
            "ctx_b": "then it", "ctx": f"The {animal} walks to the lake. then it",
            "endings": [f"drinks {c} water." for c in rng.sample(COLOURS, 4)], "label": str(i % 4)}


def mmlu_row(i: int, rng: random.Random, subject: str) -> dict:
    return {"question": f"Which {subject} fact holds for item {i}?", "subject": subject,
            "choices": rng.sample(COLOURS, 4), "answer": i % 4}


def truthfulqa_row(i: int, rng: random.Random) -> dict:
    true, false = rng.sample(COLOURS, 2)
    return {"question": f"What colour is the sky of world {i}?",
            "mc1_targets": {"choices": [f"It is {true}.", f"It is {false}."], "labels": [1, 0]},
            "mc2_targets": {"choices": [f"It is {true}.", f"It is {false}.", "It is dark."], "labels": [1, 0, 0]}}


def winogrande_row(i: int, rng: random.Random) -> dict:
    a, b = rng.sample(ANIMALS, 2)
    return {"sentence": f"The {a} chased the {b} because _ was hungry.", "option1": a, "option2": b,
            "answer": str(1 + i % 2)}


def gsm8k_row(i: int, rng: random.Random) -> dict:
    x, y = rng.randint(1, 9), rng.randint(1, 9)
    return {"question": f"Tom has {x} apples and buys {y} more. How many apples?",
            "answer": f"Tom has {x} + {y} = {x + y} apples.\n#### {x + y}"}


def build_benchmarks(root: Path, items: int = 30, seed: int = 0) -> Path:
    """root/<benchmark>/<split>.jsonl for the six tasks; `items` rows per evaluated split."""
    rng = random.Random(seed)
    n_train = 30  # few-shot pools: 25 shots for ARC need at least 25 rows

    def rows(make, n, offset=0, **kw):
        return [make(offset + i, rng, **kw) for i in range(n)]

    write_jsonl(root / "arc_challenge/train.jsonl", rows(arc_row, n_train, 1000))
    write_jsonl(root / "arc_challenge/validation.jsonl", rows(arc_row, 5, 2000))
    write_jsonl(root / "arc_challenge/test.jsonl", rows(arc_row, items))
    write_jsonl(root / "hellaswag/train.jsonl", rows(hellaswag_row, n_train, 1000))
    write_jsonl(root / "hellaswag/validation.jsonl", rows(hellaswag_row, items))
    for split, n, offset in (("dev", 5, 1000), ("validation", 3, 2000), ("test", items // 2, 0)):
        write_jsonl(root / f"mmlu/{split}.jsonl",
                    [r for s in SUBJECTS for r in rows(mmlu_row, n, offset, subject=s)])
    write_jsonl(root / "truthfulqa_mc/validation.jsonl", rows(truthfulqa_row, items))
    write_jsonl(root / "winogrande/train.jsonl", rows(winogrande_row, n_train, 1000))
    write_jsonl(root / "winogrande/validation.jsonl", rows(winogrande_row, items))
    write_jsonl(root / "gsm8k/train.jsonl", rows(gsm8k_row, n_train, 1000))
    write_jsonl(root / "gsm8k/test.jsonl", rows(gsm8k_row, items))
    return root


def build_model(out: Path, corpus: list[str], seed: int = 0, layers: int = 2) -> Path:
    """A random Llama (hidden 128, head_dim 64) with a byte-level BPE trained on `corpus`; safetensors."""
    from solar_ray.tiny.model import build_tiny_model, train_byte_level_bpe

    tokenizer = train_byte_level_bpe(corpus, vocab_size=400)
    return build_tiny_model(out, tokenizer, seed=seed, layers=layers, hidden=128, intermediate=256, heads=2,
                            kv_heads=2, head_dim=64)


def benchmark_corpus(root: Path) -> list[str]:
    return [line for path in sorted(root.rglob("*.jsonl")) for line in path.read_text().splitlines()]
