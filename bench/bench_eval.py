"""Wall time of the six H6 tasks on a tiny model: Ray actor fan-out vs one sequential lm-eval call.

    .venv/bin/python bench/bench_eval.py [--limit 20] [--max-gen-toks 64] [--models 3] [--world WORLD]

Both sides run the same lm-eval tasks (leaderboard shots), limits and batch size over the same offline files
(the tiny world's WORLD/data/benchmarks with --world, else solar_ray/tiny/benchmarks.py's files and an 8-layer
random Llama, hidden 128, head_dim 64). Rows:
  sequential  one `evaluate_model` call in this process (torch on 2 threads), after a warm-up
  lm-eval's HFLM  the same call with lm-eval's own loglikelihood, which runs a shared few-shot context once per
              answer choice (solar_ray.patches.lm_eval_context runs it once per context); same H6 expected
  fan-out     `evaluate_models` over 2 one-CPU actors, cold: actor start, lm-eval import, model load included
  fan-out xN  N models in one call (the eval stage's case), per model: actor start amortised
The load average is printed: the machine is shared, so rows are comparable only within one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-gen-toks", type=int, default=64)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--world", type=Path, default=None)
    args = parser.parse_args()

    from unittest import mock

    import ray
    import torch
    from lm_eval.models.huggingface import HFLM

    from solar_ray.evaluate.runner import evaluate_model, evaluate_models
    from solar_ray.patches.lm_eval_context import SharedContextHFLM
    from solar_ray.ray_session import init_ray
    from solar_ray.tiny.benchmarks import benchmark_corpus, build_benchmarks, build_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    if args.world:
        data, model = args.world / "data/benchmarks", args.world / "base"
    else:
        data = build_benchmarks(tmp / "benchmarks", items=max(30, args.limit))
        model = build_model(tmp / "model", benchmark_corpus(data), layers=8)
    common = dict(tasks="h6", limit=args.limit, data_dir=data, batch_size=args.batch_size,
                  max_gen_toks=args.max_gen_toks)
    rows = []

    torch.set_num_threads(2)
    evaluate_model(str(model), tasks="arc", limit=2, data_dir=data)  # warm-up: imports, dataset cache
    start = time.perf_counter()
    scores = evaluate_model(str(model), **common)
    sequential = time.perf_counter() - start
    rows.append(("sequential (1 process, 2 threads)", sequential, scores["H6"]))
    with mock.patch.object(SharedContextHFLM, "_loglikelihood_tokens", HFLM._loglikelihood_tokens):
        start = time.perf_counter()
        scores = evaluate_model(str(model), **common)
        rows.append(("  the same, lm-eval's HFLM loglikelihood", time.perf_counter() - start, scores["H6"]))

    init_ray(num_cpus=2)
    start = time.perf_counter()
    out = evaluate_models({"m": str(model)}, "h6", data, limit=args.limit, batch_size=args.batch_size, workers=2,
                          max_gen_toks=args.max_gen_toks)
    fan_out = time.perf_counter() - start
    from solar_ray.evaluate.scores import summarize
    from solar_ray.evaluate.suites import H6

    rows.append(("fan-out (2 actors x 1 CPU, cold)", fan_out, summarize(out["m"]["results"], list(H6))["H6"]["value"]))

    many = {f"m{i}": str(model) for i in range(args.models)}
    start = time.perf_counter()
    evaluate_models(many, "h6", data, limit=args.limit, batch_size=args.batch_size, workers=2,
                    max_gen_toks=args.max_gen_toks)
    per_model = (time.perf_counter() - start) / args.models
    rows.append((f"fan-out x{args.models} models, per model", per_model, float("nan")))
    ray.shutdown()

    print(f"\nH6 on a tiny model: limit {args.limit}/task, max_gen_toks {args.max_gen_toks}, "
          f"batch {args.batch_size}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'configuration':<40}{'wall s':>10}{'speed-up':>10}{'H6':>8}")
    for name, seconds, h6 in rows:
        print(f"{name:<40}{seconds:>10.1f}{sequential / seconds:>9.2f}x{h6:>8.3f}")


if __name__ == "__main__":
    main()
