"""Validation rules pinned on hand-made rows: kept, each rejection reason, duplicates, contamination."""

import pandas as pd
import pytest

from solar_ray.data.decontam import NgramIndex
from solar_ray.errors import DataError
from solar_ray.synth.prompts import (
    FEW_SHOT,
    INSTRUCTIONS,
    build_prompt,
    marked,
    parse_rephrasing,
    prompts_hash,
)
from solar_ray.synth.validate import select_seeds, validate_samples

BENCH = "a farmer keeps twelve brown cows in the long red barn beside the quiet river every summer"
SEEDS = [
    {"problem": "What is 6 times 7?", "solution": "Multiply: $6 \\cdot 7 = \\boxed{42}$."},
    {"problem": "Find half of 1.", "solution": "Half of one is $\\boxed{\\frac12}$."},
    {"problem": "Say hello.", "solution": "Hello."},  # no answer
    {"problem": "", "solution": "\\boxed{1}"},  # empty problem
    {"problem": f"{BENCH}. How many cows?", "solution": "\\boxed{12}"},  # a benchmark copy
]


def completion(problem: str, solution: str) -> str:
    return f" {problem}\nRephrased solution: {solution}"


@pytest.fixture()
def index():
    return NgramIndex.build({"gsm8k": [f"{BENCH}. How many cows are there? #### 12"]}, n=8)


def test_seed_rules(index, tmp_path):
    seeds, rejected = select_seeds(tmp_path / "train.jsonl", SEEDS, index)
    assert seeds.seed_id.tolist() == [0, 1]
    assert seeds.answer.tolist() == ["42", "\\frac12"]
    assert dict(zip(rejected.seed_id, rejected.reason, strict=True)) == {
        2: "no_seed_answer", 3: "missing_field", 4: "seed_contaminated"}
    assert "gsm8k" in rejected.set_index("seed_id").detail[4]


def test_no_usable_seed_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"train.jsonl: no usable seed rows \(2 rows, most rejected as no_seed_answer"):
        select_seeds(tmp_path / "train.jsonl", [SEEDS[2], SEEDS[2]])


def test_sample_rules(index, tmp_path):
    seeds, _ = select_seeds(tmp_path / "t.jsonl", SEEDS[:2])
    rows = [  # (seed_id, sample, completion, error)
        (0, 0, completion("Compute the product of 6 and 7.", "Six sevens are $\\boxed{42}$."), None),  # kept
        (0, 1, completion("compute THE product of 6 and 7!", "It is $\\boxed{42.0}$."), None),  # duplicate of 0/0
        (0, 2, completion("How much is 6 multiplied by 7?", "That makes \\boxed{43}."), None),  # answer_mismatch
        (0, 3, completion("What do you get from 6 times 7?", "It is forty-two."), None),  # no_answer
        (0, 4, " just rambling on", None),  # unparseable
        (0, 5, None, "RuntimeError: CUDA out of memory"),  # generation_failed
        (0, 6, completion("What is 6 times 7?", "Different words, $\\boxed{42}$."), None),  # copy_of_original
        (1, 0, completion("What is one half of 1?", "One divided by two is $\\boxed{0.5}$."), None),  # kept
        (1, 1, completion(f"{BENCH}. What is half of one?", "Still $\\boxed{1/2}$."), None),  # contaminated
    ]
    generations = pd.DataFrame(rows, columns=["seed_id", "sample", "completion", "error"])
    kept, rejected = validate_samples(generations.sample(frac=1, random_state=0), seeds, index)
    assert list(zip(kept.seed_id, kept["sample"], strict=True)) == [(0, 0), (1, 0)]
    assert kept.rephrased_problem.tolist() == ["Compute the product of 6 and 7.", "What is one half of 1?"]
    assert kept.rephrased_solution[0] == "Six sevens are $\\boxed{42}$."
    reasons = {(s, k): r for s, k, r in zip(rejected.seed_id, rejected["sample"], rejected.reason, strict=True)}
    assert reasons == {
        (0, 1): "duplicate", (0, 2): "answer_mismatch", (0, 3): "no_answer", (0, 4): "unparseable",
        (0, 5): "generation_failed", (0, 6): "copy_of_original", (1, 1): "contaminated",
    }
    details = dict(zip(rejected.reason, rejected.detail, strict=True))
    assert details["answer_mismatch"] == "expected '42', got '43'"
    assert details["generation_failed"] == "RuntimeError: CUDA out of memory"
    assert details["contaminated"].startswith("gsm8k: 'a farmer keeps")


def test_duplicates_across_seeds_keep_the_earliest_seed(tmp_path):
    seeds, _ = select_seeds(tmp_path / "t.jsonl", [SEEDS[0], SEEDS[0]])
    same = completion("Multiply six by seven.", "\\boxed{42}")
    generations = pd.DataFrame([(1, 0, same, None), (0, 0, same, None)],
                               columns=["seed_id", "sample", "completion", "error"])
    kept, rejected = validate_samples(generations, seeds)
    assert kept.seed_id.tolist() == [0]
    assert rejected.reason.tolist() == ["duplicate"] and rejected.seed_id.tolist() == [1]


def test_prompt_layout_round_trip_and_hash():
    prompt = build_prompt("What is 1+1?", "$\\boxed{2}$", few_shot=2)
    assert prompt.endswith("### Problem:\nWhat is 1+1?\n\n### Solution:\n$\\boxed{2}$\n\nRephrased problem:")
    assert FEW_SHOT[1].rephrased_problem in prompt and FEW_SHOT[2].problem not in prompt
    parsed = parse_rephrasing(" Add one and one.\nRephrased solution: \\boxed{2}\n\n### Problem:\nnext one")
    assert parsed == ("Add one and one.", "\\boxed{2}")
    assert parse_rephrasing("Rephrased problem: Q?\nRephrased solution: A", "chat") == ("Q?", "A")
    assert parse_rephrasing(" only a problem") is None
    assert prompts_hash(2) == prompts_hash(2) != prompts_hash(3)


def test_gsm8k_answer_mark_rewrites_the_examples_and_the_instruction():
    """answer_mark gsm8k: the examples' answers leave their box for a last `#### answer` line, the instruction asks
    for that line, the seed's own solution stays as written, and the prompt hashes apart from the boxed one."""
    prompt = build_prompt("What is 1+1?", "$\\boxed{2}$", few_shot=2, answer_mark="gsm8k")
    assert prompt.startswith(INSTRUCTIONS["gsm8k"]) and "'#### <final answer>'" in prompt
    assert "$x = 6$.\n#### 6\n\n" in prompt and "\n#### \\frac{2}{5}\n\n" in prompt
    assert prompt.count("\\boxed") == 3  # the two examples' seed solutions and the seed's, none of the answers
    assert marked("so $x = \\boxed{6}$.", "boxed") == "so $x = \\boxed{6}$."
    with pytest.raises(ValueError, match="no .boxed"):
        marked("so x = 6.", "gsm8k")
    assert prompts_hash(2, "gsm8k") != prompts_hash(2, "boxed")
