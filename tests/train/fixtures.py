"""Tiny inputs for the training tests: a random 2-layer Llama with a locally trained byte-level BPE tokenizer
(SOLAR chat template), and dataset artifacts in the three row kinds of the dataset contract."""

from __future__ import annotations

import random
from pathlib import Path

COLOURS = ["red", "blue", "green", "black", "white", "pink"]
ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow"]
PLACES = ["barn", "lake", "hill", "town", "wood", "cave"]


def sentences(n: int, seed: int = 0) -> list[str]:
    """A tiny closed language: facts a 2-layer model learns quickly, so its loss visibly falls."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        c, a, p, k = rng.choice(COLOURS), rng.choice(ANIMALS), rng.choice(PLACES), rng.randint(1, 9)
        out.append(f"the {c} {a} lives in the {p} . it has {k} friends . the {a} is {c} .")
    return out


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    from solar_ray.chat import SOLAR_CHAT_TEMPLATE
    from solar_ray.tiny.model import build_tiny_model as build
    from solar_ray.tiny.model import train_byte_level_bpe

    corpus = sentences(500, seed) + ["### System:\n", "### User:\n", "### Assistant:\n", "what colour is the cat ?"]
    tokenizer = train_byte_level_bpe(corpus, vocab_size=400, chat_template=SOLAR_CHAT_TEMPLATE)
    return build(out, tokenizer, seed=seed, layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, head_dim=16,
                 max_positions=512)


def write_dataset(out: Path, train_rows: list[dict], test_rows: list[dict] | None = None) -> Path:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(train_rows).to_parquet(out / "train.parquet")
    if test_rows is not None:
        pd.DataFrame(test_rows).to_parquet(out / "test.parquet")
    return out


def text_rows(n: int, seed: int = 0) -> list[dict]:
    return [{"text": s, "source": "tiny"} for s in sentences(n, seed)]


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        c, a = rng.choice(COLOURS), rng.choice(ANIMALS)
        rows.append({"messages": [
            {"role": "system", "content": "answer briefly ."},
            {"role": "user", "content": f"what colour is the {a} ?"},
            {"role": "assistant", "content": f"the {a} is {c} ."},
        ], "source": "tiny"})
    return rows


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, p = rng.choice(ANIMALS), rng.choice(PLACES)
        wrong = rng.choice([x for x in PLACES if x != p])
        rows.append({
            "prompt": [{"role": "user", "content": f"where does the {a} live ?"}],
            "chosen": [{"role": "assistant", "content": f"the {a} lives in the {p} ."}],
            "rejected": [{"role": "assistant", "content": f"the {a} lives in the {wrong} ."}],
            "source": "tiny",
        })
    return rows
