"""Rephrasing generation as a Ray Data pipeline over a pool of engine actors, saved block by block.

1. Seed rows are numbered into blocks of `block_size` rows (block = seed_id // block_size).
2. Blocks already saved under the work directory (a previous, interrupted run) are skipped.
3. The rest stream through `map_batches(RephraseWorker, compute=ActorPoolStrategy(size=actors))`: each actor
   loads the engine once and turns `batch_size` seeds at a time into `n` samples each.
4. The driver collects samples per block and saves a block (parquet, written to a temporary name then renamed)
   as soon as all its seeds have come back, so a killed run loses at most the blocks in flight.
A batch whose generation raises is retried one prompt at a time; a prompt that still fails is recorded with
its error (reason generation_failed later) instead of failing the job.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from solar_ray.synth.engines import EngineOptions, GenerationEngine, SamplingSettings
from solar_ray.synth.prompts import STOP, build_chat_messages, build_prompt

# batch_start/batch_end: wall-clock time (time.time(), one machine clock) around the engine call of the row's
# batch, so throughput can be measured without actor start-up and model loading.
GENERATION_COLUMNS = ["seed_id", "sample", "block", "completion", "num_tokens", "error", "batch_start", "batch_end"]


class RephraseWorker:
    """Ray Data callable class: one engine per actor, everything it needs from its constructor arguments."""

    def __init__(self, engine_cls: type[GenerationEngine], model: str, sampling: dict[str, Any],
                 options: dict[str, Any], prompt_format: str, few_shot: int, answer_mark: str = "boxed"):
        self.sampling = SamplingSettings(**sampling)
        self.engine = engine_cls(model, self.sampling, EngineOptions(**options))
        self.prompt_format = prompt_format
        self.few_shot = few_shot
        self.answer_mark = answer_mark

    def prompt(self, problem: str, solution: str) -> str:
        if self.prompt_format == "chat":
            return self.engine.render_chat(build_chat_messages(problem, solution, self.few_shot, self.answer_mark))
        return build_prompt(problem, solution, self.few_shot, self.answer_mark)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        prompts = [self.prompt(p, s) for p, s in zip(batch["problem"], batch["solution"], strict=True)]
        started = time.time()
        try:
            results: list[Any] = self.engine.generate(prompts, stop=[STOP])
        except Exception:  # one bad prompt must not cost the batch: retry each alone, record what still fails
            results = []
            for prompt in prompts:
                try:
                    results.append(self.engine.generate([prompt], stop=[STOP])[0])
                except Exception as exc:
                    results.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        finished = time.time()
        rows = []
        for seed_id, block, result in zip(batch["seed_id"], batch["block"], results, strict=True):
            for sample in range(self.sampling.n):
                failed = isinstance(result, str)
                completion = None if failed else result[sample]
                rows.append({
                    "seed_id": int(seed_id), "sample": sample, "block": int(block),
                    "completion": None if failed else completion.text,
                    "num_tokens": 0 if failed else int(completion.num_tokens),
                    "error": result if failed else None, "batch_start": started, "batch_end": finished,
                })
        return pd.DataFrame(rows, columns=GENERATION_COLUMNS)


def block_path(work_dir: Path, block: int) -> Path:
    return work_dir / f"block-{block:06d}.parquet"


def finished_blocks(work_dir: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in work_dir.glob("block-*.parquet")}


def _save_block(work_dir: Path, block: int, parts: list[pd.DataFrame]) -> None:
    frame = pd.concat(parts).sort_values(["seed_id", "sample"]).reset_index(drop=True)
    tmp = work_dir / f".block-{block:06d}.{uuid.uuid4().hex[:8]}.tmp"
    frame.to_parquet(tmp)
    tmp.replace(block_path(work_dir, block))


def generate_blocks(
    seeds: pd.DataFrame,
    work_dir: Path,
    engine_cls: type[GenerationEngine],
    model: str,
    sampling: SamplingSettings,
    options: EngineOptions,
    *,
    prompt_format: str = "completion",
    few_shot: int = 2,
    answer_mark: str = "boxed",
    block_size: int = 64,
    batch_size: int = 8,
    actors: int = 2,
    num_cpus_per_actor: float = 1.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generate samples for every seed (skipping saved blocks); returns (all generations, run statistics)."""
    import ray

    work_dir.mkdir(parents=True, exist_ok=True)
    seeds = seeds.assign(block=seeds.seed_id // block_size)
    done = finished_blocks(work_dir)
    pending = seeds[~seeds.block.isin(done)][["seed_id", "block", "problem", "solution"]].reset_index(drop=True)
    stats: dict[str, Any] = {"blocks": int(seeds.block.nunique()), "blocks_resumed": len(done & set(seeds.block)),
                             "new_tokens": 0, "generate_seconds": 0.0}
    if len(pending):
        expected = (pending.groupby("block").size() * sampling.n).to_dict()
        # One input block per batch, so every actor gets work from the start. (Split here rather than with
        # from_pandas(override_num_blocks=...): Ray 2.60 passes np.array_split's output on as DataFrames, which
        # this pandas no longer returns.)
        parts = [pending.iloc[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        dataset = ray.data.from_pandas(parts).map_batches(
            RephraseWorker,
            fn_constructor_kwargs={
                "engine_cls": engine_cls, "model": model, "sampling": sampling.model_dump(),
                "options": options.model_dump(), "prompt_format": prompt_format, "few_shot": few_shot,
                "answer_mark": answer_mark,
            },
            batch_size=batch_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=num_cpus_per_actor,
            **engine_cls.resources(options),
        )
        buffers: dict[int, list[pd.DataFrame]] = defaultdict(list)
        counts: dict[int, int] = defaultdict(int)
        start = time.perf_counter()
        for out in dataset.iter_batches(batch_format="pandas", batch_size=None):
            stats["new_tokens"] += int(out.num_tokens.sum())
            for block, part in out.groupby("block"):
                buffers[block].append(part)
                counts[block] += len(part)
                if counts[block] == expected[block]:
                    _save_block(work_dir, int(block), buffers.pop(block))
        stats["generate_seconds"] = round(time.perf_counter() - start, 3)  # includes actor start + model load
        stats["tokens_per_second"] = round(stats["new_tokens"] / max(stats["generate_seconds"], 1e-9), 2)
        fresh = pd.concat([pd.read_parquet(block_path(work_dir, int(b))) for b in expected])
        # Steady state: from the first engine call's start to the last one's end, over all actors.
        stats["engine_seconds"] = round(float(fresh.batch_end.max() - fresh.batch_start.min()), 3)
        stats["engine_tokens_per_second"] = round(stats["new_tokens"] / max(stats["engine_seconds"], 1e-9), 2)
    frames = [pd.read_parquet(block_path(work_dir, int(b))) for b in sorted(seeds.block.unique())]
    generations = pd.concat(frames).reset_index(drop=True) if frames else pd.DataFrame(columns=GENERATION_COLUMNS)
    return generations, stats
