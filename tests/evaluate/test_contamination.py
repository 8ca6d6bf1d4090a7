"""The Table 9 neighbour test separates a model trained on benchmark items from one that never saw them."""

from __future__ import annotations

import shutil

import pytest

from solar_ray.evaluate.contamination import (
    Config,
    contamination_figure,
    load_examples,
    run,
    score_examples,
    split_prefix,
)

EXAMPLES = 6


def test_scores_and_figure_by_hand():
    scores = score_examples([1.0, 3.0], [[2.0, 2.5, 0.5, 4.0], [1.0, 2.0, 2.5, 5.0]])
    assert scores == [0.25, 0.75]
    assert contamination_figure([0.0, 0.05, 0.1, 0.9]) == 0.5  # a fraction, as Table 9 prints it (0.06 ... 0.70)
    assert split_prefix("one two three four five six seven eight nine ten", 0.4) == "one two three four"


@pytest.fixture(scope="module")
def contaminated_model(tmp_path_factory, eval_model, bench_dir):
    """The tiny model trained (plain torch loop, 40 steps) on the first ARC test items: memorised."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = load_examples(bench_dir, "arc_challenge", EXAMPLES)
    tokenizer = AutoTokenizer.from_pretrained(eval_model)
    model = AutoModelForCausalLM.from_pretrained(eval_model, dtype=torch.float32)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]  # it did memorise
    out = tmp_path_factory.mktemp("contaminated") / "model"
    shutil.copytree(eval_model, out)
    model.save_pretrained(out, safe_serialization=True)
    return out


def test_separates_trained_from_untrained(ray_session, tmp_path, eval_model, contaminated_model, bench_dir):
    common = dict(stage="contamination", reference=str(eval_model), data_dir=str(bench_dir),
                  benchmarks=["arc_challenge"], examples=EXAMPLES, neighbours=8, workers=2)
    clean = run(Config(model=str(eval_model), output=str(tmp_path / "clean"), **common))
    dirty = run(Config(model=str(contaminated_model), output=str(tmp_path / "dirty"), **common))
    import json

    clean_figure = json.loads((clean / "results.json").read_text())["arc_challenge"]["figure"]
    dirty_figure = json.loads((dirty / "results.json").read_text())["arc_challenge"]["figure"]
    assert dirty_figure >= 0.8, dirty_figure
    # The untrained model is a random init tested against itself: its figure carries no signal and depends on
    # which items the seeded shuffle draws (0.0-0.5 seen), so what must hold is the separation.
    assert dirty_figure - clean_figure >= 0.4, (dirty_figure, clean_figure)
    table = (dirty / "table.md").read_text()
    assert "(result < 0.1) | " in table and f"{dirty_figure:.2f}" in table and "%" not in table  # fractions, as Table 9
    assert (dirty / "lineage.json").is_file()


def test_sample_is_a_seeded_shuffle_not_the_first_rows(tmp_path):
    """MMLU's test file is sorted by subject: the first N rows are one subject, a seeded shuffle spans several."""
    import json

    rows = [{"question": f"{subject} question {i}", "choices": ["a", "b", "c", "d"], "answer": 0, "subject": subject}
            for subject in ("anatomy", "astronomy", "virology") for i in range(20)]
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "mmlu" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = load_examples(tmp_path, "mmlu", 10, seed=0)
    assert len({text.split()[0] for text in drawn}) > 1, drawn
    assert drawn == load_examples(tmp_path, "mmlu", 10, seed=0)
    assert drawn != load_examples(tmp_path, "mmlu", 10, seed=1)
    assert sorted(load_examples(tmp_path, "mmlu", 60, seed=3)) == sorted(f"{r['question']} a" for r in rows)
