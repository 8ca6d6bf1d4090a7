"""Merge sweep overhead: a Tune trial's wall time vs the evaluation alone on the same merged weights.
Target: trial <= 1.1x eval.

Side by side in one run (load is noisy): the evaluation alone is timed before and after the sweep (median), with
the trial's thread count; the sweep runs one trial at a time. Per trial, `trial s` is Tune's time_total_s (the
trial function: build the model, merge in memory, evaluate, report) and `wall/trial` is the sweep's wall time
over its trials (adds Tune's scheduling, the trial actor's start and the candidates' transfer).

    .venv/bin/python bench/bench_tune.py WORLD_DIR [--task winogrande] [--limit 16] [--reps 2] [--cpus 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

WEIGHTS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def eval_alone(config, state_dicts, weight: float, threads: int) -> tuple[float, float]:
    """Seconds of evaluate_model alone on the (weight, 1 - weight) merge, and its mean score."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from solar_ray.evaluate.runner import evaluate_model
    from solar_ray.merge.core import merge_state_dicts

    base = next(iter(config.candidates.values()))
    model = AutoModelForCausalLM.from_pretrained(base)
    model.load_state_dict(merge_state_dicts("linear", state_dicts, weights=[weight, 1 - weight]), strict=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.set_num_threads(threads)  # what the trial gets: Ray sets OMP_NUM_THREADS to its CPUs
    started = time.perf_counter()
    scores = evaluate_model(model, tokenizer, tasks=config.tasks, limit=config.limit, data_dir=config.data_dir,
                            batch_size=config.batch_size)
    return time.perf_counter() - started, sum(scores.values()) / len(scores)


def main() -> None:
    import torch
    from ray import tune

    from solar_ray.config import dump_config
    from solar_ray.ray_session import init_ray
    from solar_ray.tiny.model import perturbed_copy
    from solar_ray.tune.merge_sweep import Config, load_candidates, trial
    from solar_ray.tune.sweep import run_tuner

    parser = argparse.ArgumentParser()
    parser.add_argument("world")
    parser.add_argument("--task", default="winogrande")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--reps", type=int, default=2, help="Eval-alone runs per weight, before and after.")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs per trial (= threads of the eval alone).")
    parser.add_argument("--no-reuse", dest="reuse", action="store_false",
                        help="A fresh trial process per trial (merge_sweep reuses them).")
    args = parser.parse_args()
    scratch = Path("/tmp/bench_tune")
    shutil.rmtree(scratch, ignore_errors=True)
    base = Path(args.world) / "base"
    noisy = perturbed_copy(base, scratch / "noisy")
    config = Config(output=str(scratch / "out"), storage_path=str(scratch / "ray"),
                    candidates={"a": str(base), "b": str(noisy)}, space={"weight": {"grid": WEIGHTS}},
                    search={"algorithm": "grid", "num_samples": 1, "metric": "mean", "max_concurrent_trials": 1},
                    tasks=[args.task], limit=args.limit, cpus_per_trial=args.cpus,
                    data_dir=str(Path(args.world) / "data" / "benchmarks"))
    state_dicts = load_candidates(config)
    eval_alone(config, state_dicts, 0.5, args.cpus)  # warm-up: imports, lm-eval task loading

    alone: dict[float, list[float]] = {w: [] for w in WEIGHTS}
    scores: dict[float, float] = {}

    def time_alone():
        for _ in range(args.reps):
            for w in WEIGHTS:
                seconds, scores[w] = eval_alone(config, state_dicts, w, args.cpus)
                alone[w].append(seconds)

    time_alone()
    init_ray()
    trainable = tune.with_parameters(trial, config_dict=dump_config(config), state_dicts=state_dicts)
    started = time.perf_counter()
    results = run_tuner(config, trainable, {"cpu": args.cpus}, reuse_actors=args.reuse)
    per_trial_wall = (time.perf_counter() - started) / len(results)
    time_alone()
    torch.set_num_threads(os.cpu_count())

    print(f"load average {os.getloadavg()}; {args.task} limit {args.limit}; {args.cpus} CPU per trial; "
          f"eval alone = median of {2 * args.reps}")
    print("| weight | eval alone s | trial s | ratio | wall/trial s | ratio | score trial | score alone |")
    print("|---|---|---|---|---|---|---|---|")
    for result in sorted(results, key=lambda r: r.config["weight"]):
        w = result.config["weight"]
        median = statistics.median(alone[w])
        trial_s = result.metrics["time_total_s"]
        print(f"| {w} | {median:.2f} | {trial_s:.2f} | {trial_s / median:.3f} | {per_trial_wall:.2f} | "
              f"{per_trial_wall / median:.3f} | {result.metrics['mean']:.4f} | {scores[w]:.4f} |")


if __name__ == "__main__":
    main()
