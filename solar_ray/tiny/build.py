"""Build the tiny world: WORLD/base (model + tokenizer) and WORLD/data/<dataset>/<split>.jsonl, atomically.

    WORLD/base/                      random-init Llama, BPE tokenizer with the SOLAR chat template, lineage.json
    WORLD/data/pretrain/{train,validation}.jsonl                      {text}
    WORLD/data/alpaca_gpt4/train.jsonl                                {instruction, input, output}
    WORLD/data/open_orca/train.jsonl                                  {id, system_prompt, question, response}
    WORLD/data/flan_collection/{flan2021,t0,niv2,cot}/train.jsonl     {inputs, targets, _task_name, ...}
    WORLD/data/math/{train,test}.jsonl                                {problem, level, type, solution}
    WORLD/data/metamathqa/train.jsonl                                 {query, response, type, original_question}
    WORLD/data/orca_dpo_pairs/train.jsonl                             {system, question, chosen, rejected}
    WORLD/data/ultrafeedback_binarized/{train,test}_{prefs,sft}.jsonl {prompt, prompt_id, chosen, rejected, ...}
    WORLD/data/benchmarks/<arc_challenge|hellaswag|mmlu|truthfulqa_mc|winogrande|gsm8k>/<split>.jsonl
    WORLD/data/manifest.json         row counts, creatures, and every planted contamination
    WORLD/lineage.json
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from solar_ray.artifacts import atomic_dir, write_json, write_lineage
from solar_ray.config import dump_config
from solar_ray.tiny import datasets as D
from solar_ray.tiny.language import World


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return len(rows)


def _split(rows: list, *sizes: int) -> list[list]:
    out, start = [], 0
    for size in sizes:
        out.append(rows[start:start + size])
        start += size
    return out


def generate_datasets(seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """All datasets as {"<dataset>/<split>": rows} plus the manifest's planted-contamination record; `seed` is the
    world's language seed (which creatures, facts and items)."""
    world = World(seed)
    rng = random.Random(seed + 1)
    files: dict[str, list[dict[str, Any]]] = {}

    arc = D.arc_items(world, rng)
    files["benchmarks/arc_challenge/test"], files["benchmarks/arc_challenge/validation"], \
        files["benchmarks/arc_challenge/train"] = _split(arc, 160, 10, len(arc) - 170)
    hellaswag = D.hellaswag_items(world, rng)
    files["benchmarks/hellaswag/validation"], files["benchmarks/hellaswag/train"] = _split(hellaswag, 200, len(hellaswag) - 200)
    mmlu: dict[str, list] = {"dev": [], "validation": [], "test": []}
    for subject in D.MMLU_SUBJECTS:
        rows = [r for r in D.mmlu_items(world, random.Random(f"{seed}-{subject}")) if r["subject"] == subject]
        dev, val, test = _split(rows, 5, 5, len(rows) - 10)
        mmlu["dev"] += dev
        mmlu["validation"] += val
        mmlu["test"] += test
    for split, rows in mmlu.items():
        files[f"benchmarks/mmlu/{split}"] = rows
    files["benchmarks/truthfulqa_mc/validation"] = D.truthfulqa_items(world, rng)
    wino = D.winogrande_items(world, rng)
    files["benchmarks/winogrande/validation"], files["benchmarks/winogrande/train"] = _split(wino, 300, len(wino) - 300)
    files["benchmarks/gsm8k/test"] = [D.gsm8k_row(p) for p in world.gsm_test]
    files["benchmarks/gsm8k/train"] = [D.gsm8k_row(p) for p in world.gsm_train]
    files["math/train"] = [D.math_row(p, rng) for p in world.math_train]
    files["math/test"] = [D.math_row(p, rng) for p in world.math_test]
    files["metamathqa/train"] = D.metamathqa_rows(world, rng)

    lines = world.pretraining_lines(rng)
    files["pretrain/validation"], files["pretrain/train"] = (
        [{"text": t} for t in lines[:300]], [{"text": t} for t in lines[300:]])
    files["alpaca_gpt4/train"] = D.alpaca_rows(world, rng)
    benchmarks = {key.removeprefix("benchmarks/"): rows for key, rows in files.items() if key.startswith("benchmarks/")}
    orca, flan, planted = D.open_orca_and_flan(world, rng, benchmarks)
    files["open_orca/train"] = orca
    for submix, rows in flan.items():
        files[f"flan_collection/{submix}/train"] = rows
    pairs = D.preference_pairs(world, rng)
    files["orca_dpo_pairs/train"] = D.orca_dpo_rows(pairs[:200], rng)
    feedback = D.ultrafeedback_rows(pairs, rng)
    files["ultrafeedback_binarized/train_prefs"], files["ultrafeedback_binarized/test_prefs"] = _split(
        feedback, len(feedback) - 30, 30)
    files["ultrafeedback_binarized/train_sft"], files["ultrafeedback_binarized/test_sft"] = _split(
        feedback, len(feedback) - 30, 30)
    manifest = {
        "language_seed": seed,
        "rows": {key: len(rows) for key, rows in sorted(files.items())},
        "creatures": D.creatures_table(world),
        "mmlu_subjects": list(D.MMLU_SUBJECTS),
        "planted": {"open_orca": planted},
        "table8_tasks": [task for tasks in D.TABLE8.values() for task in tasks],
    }
    return files, manifest


def build_tiny_world(out: Path, seed: int = 0, language_seed: int = 0, force: bool = False,
                     config: Any = None) -> Path:
    """Write the whole tiny world to `out` (atomic): its datasets and tokenizer from `language_seed`, its
    random-init base from `seed`; returns `out`."""
    from solar_ray.tiny.model import build_base_model, train_tokenizer

    files, manifest = generate_datasets(language_seed)
    config_dict = dump_config(config) if config is not None else {"stage": "tiny", "seed": seed,
                                                                   "language_seed": language_seed}
    with atomic_dir(out, force=force) as tmp:
        for key, rows in files.items():
            _write_jsonl(tmp / "data" / f"{key}.jsonl", rows)
        write_json(tmp / "data" / "manifest.json", manifest)
        corpus = [json.dumps(row) for rows in files.values() for row in rows]
        corpus += ["### System:\n\n### User:\n\n### Assistant:\n"]
        tokenizer = train_tokenizer(corpus)
        base = tmp / "base"
        build_base_model(tokenizer, seed, base)
        write_lineage(base, "tiny", config_dict, metrics={"parameters": _parameters(base)})
        write_lineage(tmp, "tiny", config_dict, metrics={"rows": sum(len(r) for r in files.values())})
    return Path(out)


def _parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(shard, "np") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += math.prod(fh.get_slice(name).get_shape())
    return total
