"""Merge sweep overhead: one trial's work (build model, merge in memory, evaluate) vs the evaluation alone on the
same merged weights. Target: trial <= 1.1x eval.

    .venv/bin/python bench/bench_tune.py WORLD_DIR [--task winogrande] [--limit 16]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from transformers import AutoTokenizer

    from solar_ray.evaluate.runner import evaluate_model
    from solar_ray.tune.merge_sweep import Config, load_candidates, merge_and_evaluate
    from tests.tune.conftest import perturbed_copy

    parser = argparse.ArgumentParser()
    parser.add_argument("world")
    parser.add_argument("--task", default="winogrande")
    parser.add_argument("--limit", type=int, default=16)
    args = parser.parse_args()
    base = Path(args.world) / "base"
    noisy = Path("/tmp/bench_tune_noisy")
    shutil.rmtree(noisy, ignore_errors=True)
    perturbed_copy(base, noisy)
    config = Config(output="/tmp/bench_tune_out", candidates={"a": str(base), "b": str(noisy)},
                    space={"weight": {"uniform": [0, 1]}}, search={"metric": "mean"}, tasks=[args.task],
                    limit=args.limit, data_dir=str(Path(args.world) / "data" / "benchmarks"))
    state_dicts = load_candidates(config)
    merge_and_evaluate(config, {"weight": 0.5}, state_dicts)  # warm-up: imports, lm-eval task loading
    started = time.perf_counter()
    scores = merge_and_evaluate(config, {"weight": 0.4}, state_dicts)
    trial = time.perf_counter() - started
    # Eval alone on the same merged weights: rebuild them, then time only evaluate_model.
    from solar_ray.merge.core import merge_state_dicts
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    model.load_state_dict(merge_state_dicts("linear", state_dicts, weights=[0.4, 0.6]), strict=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    started = time.perf_counter()
    alone = evaluate_model(model, tokenizer, tasks=[args.task], limit=args.limit, data_dir=config.data_dir)
    evaluation = time.perf_counter() - started
    print("| task | limit | trial s | eval alone s | ratio | score trial | score eval |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.task} | {args.limit} | {trial:.2f} | {evaluation:.2f} | {trial / evaluation:.3f} | "
          f"{scores['mean']:.4f} | {sum(alone.values()) / len(alone):.4f} |")


if __name__ == "__main__":
    main()
