"""`stage: synth_math` - Synth. Math-Instruct and Synth. Math-Alignment from MetaMath-style rephrasing of MATH.

Features:
- seeds: MATH rows (problem, solution with `\\boxed{}`) from a .jsonl/.parquet file or a directory with
  train.jsonl (the tiny world's WORLD/data/math); seeds without an answer or matching a benchmark are set aside.
- generation: a Ray Data pipeline over `actors` engine actors (engines.py: transformers, vllm), sampling
  settings from `sampling`; resumable block by block (generate.py).
- validation (validate.py): answer must match the original's after normalisation; copies, duplicates and
  benchmark n-gram matches are rejected; every rejection is kept with its reason.
Output: one artifact directory with two dataset sub-artifacts, each following the dataset contract (so other
stages take `synth_math:instruct` / `synth_math:alignment` as inputs):

    OUT/instruct/train.parquet     {messages: [user: rephrased problem, assistant: rephrased solution], source}
    OUT/alignment/train.parquet    {prompt: [user: rephrased problem], chosen: [assistant: rephrased solution],
                                    rejected: [assistant: original solution], source}
    OUT/{instruct,alignment}/{lineage.json,report.json}
    OUT/kept.parquet               accepted samples with seed_id, answer, level, type (for inspection)
    OUT/rejected.parquet           every rejected seed and sample: reason, detail, texts
    OUT/report.json, OUT/lineage.json   counts per outcome, the yield (rows kept / samples generated), engine,
                                        model, prompts' hash, sampling, tokens/s
Sizing: rows kept = seeds x sampling.n x yield, so reaching a row count (Table 1: 126K from MATH's 7,500 training
problems) needs sampling.n >= rows / (seeds x yield): ~17 samples per problem before validation losses, more after;
the report's yield tells how many.
Raises: DataError (seed file missing/unusable), ArtifactError (model directory missing, output exists),
EngineStartError (engine unknown or cannot start here, e.g. vllm without a GPU or its CPU build - the message
names the fallback `engine: transformers`), ConfigError (bad settings).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from solar_ray.config import LocalPath, ModelPath, StageConfig, Strict, dump_config
from solar_ray.synth.engines import EngineOptions, SamplingSettings, known_engines

INSTRUCT_SOURCE = "synth_math_instruct"
ALIGNMENT_SOURCE = "synth_math_alignment"


class Decontamination(Strict):
    """Benchmark evaluation sets that no seed or rephrasing may share an n-gram with."""

    benchmarks_dir: LocalPath | None = Field(
        default=None, description="Directory of <benchmark>/<split>.jsonl (WORLD/data/benchmarks); None: skip."
    )
    benchmarks: list[str] = Field(
        default=["gsm8k"], description="Benchmarks under benchmarks_dir to index (their evaluation splits)."
    )
    math_test: LocalPath | None = Field(
        default=None, description="MATH test split (.jsonl, MATH schema), indexed as 'math_test'; None: skip."
    )
    ngram: int = Field(default=13, ge=1, description="Words per n-gram (13, as GPT-3 and FLAN did).")


class Config(StageConfig):
    stage: Literal["synth_math"] = "synth_math"
    seed_data: LocalPath = Field(description="MATH-schema seed rows: .jsonl/.parquet file or a directory with "
                           "train.jsonl (WORLD/data/math). Only MATH, not GSM8K (GSM8K is an H6 benchmark).")
    model: ModelPath = Field(description="Model that rephrases: a local HF model directory (or a hub id org/name).")
    engine: str = Field(default="transformers", description="Generation engine: transformers or vllm.")
    sampling: SamplingSettings = Field(default_factory=SamplingSettings, description="Sampling settings.")
    engine_options: EngineOptions = Field(default_factory=EngineOptions, description="Engine start-up settings.")
    prompt_format: Literal["completion", "chat"] = Field(
        default="completion",
        description="completion: few-shot text prompt (base models); chat: the same turns through the model's "
        "chat template (instruction-tuned models).",
    )
    few_shot: int = Field(default=2, ge=0, le=3, description="Worked examples in the prompt (0-3).")
    answer_mark: Literal["boxed", "gsm8k"] = Field(
        default="boxed",
        description="How rephrased solutions mark their final answer: boxed (MATH's \\boxed{}) or gsm8k (a last "
        "line '#### answer', GSM8K's layout). Validation reads either.",
    )
    max_seed_rows: int | None = Field(default=None, ge=1, description="Use only the first N seed rows.")
    actors: int = Field(default=2, ge=1, description="Generation actors in the Ray Data pool (1 engine each).")
    num_cpus_per_actor: float = Field(default=1.0, gt=0, description="CPUs Ray reserves per actor.")
    batch_size: int = Field(default=8, ge=1, description="Seeds per engine call (prompts batched together).")
    block_size: int = Field(default=64, ge=1, description="Seeds per saved block; a rerun skips saved blocks.")
    system_prompt: str | None = Field(default=None, description="System turn added to every instruct row.")
    decontamination: Decontamination = Field(default_factory=Decontamination, description="Benchmark filter.")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in known_engines():
            raise ValueError(f"unknown engine {value!r}; known engines: {', '.join(known_engines())}")
        return value

    @model_validator(mode="after")
    def _greedy_has_one_sample(self) -> Config:
        if self.sampling.temperature == 0 and self.sampling.n > 1:
            raise ValueError("sampling.n > 1 with temperature 0 gives n identical samples; raise temperature or n=1")
        return self


def work_key(config: Config, seed_path: Path) -> str:
    """What the saved blocks depend on: a changed model, engine, prompt or sampling setting starts afresh."""
    import xxhash

    from solar_ray.artifacts import artifact_hash
    from solar_ray.synth.prompts import prompts_hash

    parts = [config.engine, config.model, str(artifact_hash(config.model) if Path(config.model).is_dir() else ""),
             config.sampling.model_dump_json(), config.prompt_format,
             prompts_hash(config.few_shot, config.answer_mark),
             str(config.block_size), str(config.max_seed_rows), xxhash.xxh3_64(seed_path.read_bytes()).hexdigest()]
    return xxhash.xxh3_64("\0".join(parts).encode()).hexdigest()


def build_index(decon: Decontamination):
    """The benchmark n-gram index, or None when nothing is configured."""
    from solar_ray.data.decontam import NgramIndex, load_benchmark_texts
    from solar_ray.synth.validate import read_seed_file

    texts: dict[str, list[str]] = {}
    if decon.benchmarks_dir:
        texts.update(load_benchmark_texts(decon.benchmarks_dir, decon.benchmarks))
    if decon.math_test:
        _, rows = read_seed_file(decon.math_test)
        texts["math_test"] = [f"{r.get('problem', '')} {r.get('solution', '')}" for r in rows]
    return NgramIndex.build(texts, n=decon.ngram) if texts else None


def instruct_rows(kept, system_prompt: str | None) -> list[dict]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [{"messages": [*system, {"role": "user", "content": q}, {"role": "assistant", "content": a}],
             "source": INSTRUCT_SOURCE}
            for q, a in zip(kept.rephrased_problem, kept.rephrased_solution, strict=True)]


def alignment_rows(kept) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": a}],
             "rejected": [{"role": "assistant", "content": original}], "source": ALIGNMENT_SOURCE}
            for q, a, original in zip(kept.rephrased_problem, kept.rephrased_solution, kept.solution, strict=True)]


def run(config: Config) -> Path:
    import pandas as pd

    from solar_ray.artifacts import atomic_dir, refuse_existing_output, write_json, write_lineage
    from solar_ray.capacity import ensure_capacity
    from solar_ray.ray_session import cluster_gpus, init_ray
    from solar_ray.synth.engines import get_engine
    from solar_ray.synth.generate import generate_blocks
    from solar_ray.synth.prompts import prompts_hash
    from solar_ray.synth.validate import read_seed_file, select_seeds, validate_samples

    out = Path(config.output or "runs/synth_math")
    refuse_existing_output(out, config.force)  # fail before hours of generation, not at the final rename
    engine_cls = get_engine(config.engine)
    # Ray first: the engines' device and the room for them are the cluster's (a CPU head has no GPU of its own).
    init_ray()
    options = engine_cls.resolve_options(config.engine_options)
    engine_cls.preflight(config.model, options)
    gpus = engine_cls.resources(options)["num_gpus"]
    ensure_capacity(f"stage 'synth_math' ({out.name})",
                    [{"CPU": config.num_cpus_per_actor, "GPU": gpus}] * config.actors)

    # 1. Seeds: usable rows, minus those without an answer or matching a benchmark.
    seed_path, rows = read_seed_file(config.seed_data)
    rows = rows[: config.max_seed_rows] if config.max_seed_rows else rows
    index = build_index(config.decontamination)
    seeds, rejected_seeds = select_seeds(seed_path, rows, index)

    # 2. Generation over the actor pool, resumable from the work directory next to the output.
    work_dir = out.parent / f".{out.name}.synth-work-{work_key(config, seed_path)}"
    generations, stats = generate_blocks(
        seeds, work_dir, engine_cls, config.model, config.sampling, options,
        prompt_format=config.prompt_format, few_shot=config.few_shot, answer_mark=config.answer_mark,
        block_size=config.block_size, batch_size=config.batch_size, actors=config.actors,
        num_cpus_per_actor=config.num_cpus_per_actor,
    )
    stats["cluster_gpus"] = cluster_gpus()

    # 3. Validation: kept samples and every rejection with its reason.
    kept, rejected_samples = validate_samples(generations, seeds, index, config.prompt_format)
    rejected = pd.concat([rejected_seeds, rejected_samples], ignore_index=True)
    counts = {
        "seed_rows": len(rows), "seeds_used": len(seeds), "samples": len(generations), "kept": len(kept),
        "yield": round(len(kept) / len(generations), 4) if len(generations) else 0.0,  # rows kept / generated
        "rejected": len(rejected), **{f"rejected_{k}": int(v) for k, v in rejected.reason.value_counts().items()},
    }
    provenance = {"engine": config.engine, "model": config.model,
                  "prompts_hash": prompts_hash(config.few_shot, config.answer_mark),
                  "sampling": config.sampling.model_dump(), "prompt_format": config.prompt_format,
                  "answer_mark": config.answer_mark}
    config_dict = dump_config(config)
    parents = {"seed_data": seed_path, "model": config.model} if Path(config.model).exists() else {
        "seed_data": seed_path}

    # 4. Two dataset sub-artifacts and the top-level record, written atomically as one directory.
    with atomic_dir(out, force=config.force) as tmp:
        subsets = (
            ("instruct", instruct_rows(kept, config.system_prompt), ["messages", "source"], INSTRUCT_SOURCE),
            ("alignment", alignment_rows(kept), ["prompt", "chosen", "rejected", "source"], ALIGNMENT_SOURCE),
        )
        for name, frame_rows, columns, source in subsets:
            sub = tmp / name
            sub.mkdir()
            pd.DataFrame(frame_rows, columns=columns).to_parquet(sub / "train.parquet")
            report = {"rows": {"train": len(frame_rows)}, "source": source, **counts}
            write_json(sub / "report.json", report)
            write_lineage(sub, "synth_math", config_dict, parents=parents, metrics=counts, dataset=source,
                          **provenance)
        kept.to_parquet(tmp / "kept.parquet")
        if len(rejected):
            rejected.to_parquet(tmp / "rejected.parquet")
        write_json(tmp / "report.json", {"counts": counts, "generation": stats, **provenance})
        write_lineage(tmp, "synth_math", config_dict, parents=parents, metrics={**counts, **stats}, **provenance)
    shutil.rmtree(work_dir, ignore_errors=True)  # the artifact now holds everything the blocks did
    return out


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def needs(config: Config):
    from solar_ray.contract import StageNeeds

    gpus = config.engine_options.tensor_parallel_size if config.engine == "vllm" else 0
    engine = f"{config.engine} engine" + (f", {gpus} GPU{'s' if gpus != 1 else ''} each" if gpus else " (CPU)")
    return StageNeeds(workers=config.actors, cpus_per_worker=config.num_cpus_per_actor, gpus_per_worker=gpus,
                      on_gpu=bool(gpus), what=f"{config.actors} Ray actor{'s' if config.actors != 1 else ''} ({engine})")


def _seeds(config: Config, models) -> int | None:
    rows = models.rows(config.seed_data)
    return min(rows, config.max_seed_rows) if rows is not None and config.max_seed_rows else rows


def rows(config: Config, sub: str, models) -> int | None:
    """At most one row per sample (validation drops the wrong ones)."""
    seeds = _seeds(config, models)
    return None if seeds is None else seeds * config.sampling.n


def workload(config: Config, models):
    from solar_ray.contract import Workload
    from solar_ray.plan.estimate import dtype_bytes, unknown, vllm_engine

    tp = config.engine_options.tensor_parallel_size if config.engine == "vllm" else 1
    device = "gpu" if config.engine == "vllm" else "cpu"
    shape = models.shape(config.model)
    if shape is None:
        return unknown(device, config.actors * tp, f"model {config.model}")
    nbytes = dtype_bytes(config.engine_options.dtype, 2 if device == "gpu" else 4)
    if device == "gpu":
        memory, fill = vllm_engine(shape, models, tensor_parallel=tp, share=config.engine_options.gpu_memory_utilization,
                                   max_len=config.engine_options.max_model_len, nbytes=nbytes)
    else:
        memory, fill = {"weights": nbytes * shape.params}, None
    seeds = _seeds(config, models)
    if seeds is None:
        return Workload(device=device, devices=config.actors * tp, per_worker=tp, memory=memory, fill=fill,
                        cpus_per_device=config.num_cpus_per_actor, notes=[f"{config.seed_data}: rows unknown"])
    shot = models.note("tokens_per_shot", "{value} prompt tokens per worked example and per seed question (synth)")
    prompt = seeds * shot * (config.few_shot + 1)
    generated = seeds * config.sampling.n * config.sampling.max_tokens  # an upper bound: every sample runs to the end
    return Workload(
        device=device, devices=config.actors * tp, per_worker=tp, memory=memory, fill=fill,
        cpus_per_device=config.num_cpus_per_actor, infer_flops=2 * shape.params * (prompt + generated),
        work=f"{seeds:,} seeds x {config.sampling.n}, <= {generated / 1e6:.0f}M tokens out",
        notes=[f"{config.model}: {shape.params / 1e9:.1f}B parameters; generated tokens counted at max_tokens"],
    )
