"""Synth test inputs built locally: a random Llama (head_dim 64, so a CPU vLLM can load it) with a small BPE
tokenizer, MATH-schema seed files and a GSM8K-schema benchmark directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.synth.stub_engines import LEAKED_SENTENCE

MATH_ROWS = [
    {"problem": "What is $2+3$?", "solution": "Adding gives $2+3=\\boxed{5}$.", "level": "Level 1", "type": "Algebra"},
    {"problem": "Compute $10 \\cdot 4$.", "solution": "$10 \\cdot 4 = \\boxed{40}$.", "level": "Level 1",
     "type": "Prealgebra"},
    {"problem": "WRONG: what is half of 8?", "solution": "Half of 8 is $\\boxed{4}$.", "level": "Level 1",
     "type": "Prealgebra"},
    {"problem": "GARBLE: what is 3 squared?", "solution": "$3^2=\\boxed{9}$.", "level": "Level 1",
     "type": "Algebra"},
    {"problem": "FAIL: what is 7 minus 2?", "solution": "$7-2=\\boxed{5}$.", "level": "Level 1", "type": "Algebra"},
    {"problem": "LEAK: how many eggs?", "solution": "She has $\\boxed{16}$ eggs.", "level": "Level 2",
     "type": "Algebra"},
    {"problem": "What is $2+3$?", "solution": "Adding gives $2+3=\\boxed{5}$.", "level": "Level 1", "type": "Algebra"},
    {"problem": "Name a prime.", "solution": "Any prime works, for example two.", "level": "Level 1",
     "type": "Number Theory"},
    {"problem": "Solve $x/2 = 3$.", "solution": "Multiply by 2: $x = \\boxed{6}$.", "level": "Level 2",
     "type": "Algebra"},
    {"problem": f"{LEAKED_SENTENCE}. How many ducks?", "solution": "She has $\\boxed{16}$ ducks.",
     "level": "Level 1", "type": "Algebra"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="session")
def seed_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("math") / "train.jsonl", MATH_ROWS)


@pytest.fixture(scope="session")
def benchmarks_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("benchmarks")
    write_jsonl(root / "gsm8k" / "test.jsonl", [
        {"question": f"{LEAKED_SENTENCE}. How many ducks does she have?", "answer": "She has 16.\n#### 16"},
        {"question": "Tom reads four books a week. How many books does he read in three weeks?",
         "answer": "4*3=12\n#### 12"},
    ])
    return root


@pytest.fixture(scope="session")
def tiny_math_model(tmp_path_factory) -> Path:
    """A random 2-layer Llama, hidden 128 with head_dim 64, and a byte-level BPE trained on math-ish text."""
    from solar_ray.chat import SOLAR_CHAT_TEMPLATE
    from solar_ray.synth.prompts import FEW_SHOT, INSTRUCTION
    from solar_ray.tiny.model import build_tiny_model, train_byte_level_bpe

    out = tmp_path_factory.mktemp("model") / "tiny-llama"
    corpus = [INSTRUCTION] + [f"{r['problem']} {r['solution']}" for r in MATH_ROWS]
    corpus += [f"{e.problem} {e.solution} {e.rephrased_problem} {e.rephrased_solution}" for e in FEW_SHOT]
    tokenizer = train_byte_level_bpe(corpus * 5, vocab_size=600, chat_template=SOLAR_CHAT_TEMPLATE)
    build_tiny_model(out, tokenizer, layers=2, hidden=128, intermediate=256, heads=2, kv_heads=2, head_dim=64)
    return out
