"""`stage: eval` - lm-eval's leaderboard v1 tasks (docs/reference.md) on one or more models, offline, on Ray.

Features: suites by name (`h6`, `h6_mc`, ...) or task names; lm-eval's own prompts, few-shot sampling and metrics
over local benchmark files (`data_dir`, the tiny world's data/benchmarks layout or a user's mirror); tasks spread
over Ray actors (HF backend on CPU/GPU, vLLM on GPU); MMLU as the plain mean over subjects; H6 with stderr.

Writes OUTPUT/results/<model>.json (lm-eval's results), summary.json, table.md, table.csv, h6.png, lineage.json.
Raises before any evaluation: ConfigError (unknown task/suite, GPU backend without a GPU), ArtifactError (a model
dir without config or safetensors), DataError (a benchmark file missing, or a row missing a field a task reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from solar_ray.config import LocalPath, StageConfig


class Config(StageConfig):
    stage: Literal["eval"] = "eval"
    models: dict[str, LocalPath] = Field(description="Model name (table row) -> model directory; evaluated side by side.")
    tasks: list[str] = Field(default=["h6"], description="Suites (h6, h6_mc, arc, mmlu) or lm-eval task names.")
    data_dir: LocalPath = Field(description="Benchmark files: <data_dir>/<benchmark>/<split>.jsonl (WORLD/data/benchmarks).")
    limit: int | dict[str, int | None] | None = Field(
        default=None, description="Items per task (per MMLU subject); null = all. A mapping sets it per task key, "
        "`default` for the others: {default: 30, gsm8k: null}.")
    backend: Literal["hf", "vllm"] = Field(default="hf", description="hf (transformers, CPU or GPU) or vllm (GPU).")
    device: str = Field(default="cpu", description="Device for the hf backend: cpu or cuda.")
    batch_size: int = Field(default=16, ge=1, description="lm-eval batch size per actor (the hf backend; vLLM batches "
                                                         "by its own scheduler: lm-eval's batch_size auto).")
    workers: int | None = Field(default=None, description="Ray actors; default: cluster CPUs / cpus_per_worker.")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs each actor reserves (torch threads).")
    max_gen_toks: int | None = Field(default=None, description="Cap on generated tokens (GSM8K); null = lm-eval's 256.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights dtype; auto: bfloat16 on GPU, float32 on CPU.")
    cache_dir: LocalPath | None = Field(
        default=None, description="Scores of each model by its content hash and these settings: a model whose "
        "weights were scored with the same settings before (another stage's, or a twin's) is not scored again. "
        "A pipeline shares one per run; null: no cache.")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="vllm backend: share of GPU memory (CPU build: of its KV-cache "
        "budget) an engine may take; null: vLLM's 0.9.")

    @field_validator("limit")
    @classmethod
    def _known_limits(cls, value):
        from solar_ray.evaluate.suites import check_limit

        return check_limit(value)

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one model: models: {name: path}")
        return value


def run(config: Config) -> Path:
    from solar_ray.artifacts import atomic_dir, refuse_existing_output, write_json, write_lineage
    from solar_ray.evaluate.runner import evaluate_models
    from solar_ray.evaluate.scores import summarize
    from solar_ray.evaluate.suites import resolve_tasks
    from solar_ray.evaluate.tables import markdown_table, write_tables

    keys = resolve_tasks(config.tasks, source="tasks")
    out = Path(config.output or "runs/eval")
    refuse_existing_output(out, config.force)
    cache = ScoreCache(config, keys)

    def score(models: dict[str, str]) -> dict[str, dict]:
        return evaluate_models(
            models, keys, config.data_dir, limit=config.limit, backend=config.backend, device=config.device,
            batch_size=config.batch_size, workers=config.workers, cpus_per_worker=config.cpus_per_worker,
            max_gen_toks=config.max_gen_toks, dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization, stage=f"stage 'eval' ({out.name})") if models else {}

    try:
        scored = score(cache.to_score())
        cache.store(scored)
        # Models another stage was scoring when this one started: their results, or, if it stopped without
        # storing them, scored here.
        scored.update(score(cache.wait_for_others()))
        results = cache.complete(scored)
    finally:
        cache.release()
    summaries = {name: summarize(result["results"], keys, result["items"]) for name, result in results.items()}
    with atomic_dir(out, force=config.force) as tmp:
        (tmp / "results").mkdir()
        for name, result in results.items():
            write_json(tmp / "results" / f"{name}.json", result)
        write_json(tmp / "summary.json", summaries)
        write_tables(summaries, tmp)
        metrics = {f"{name}/{col}": entry["value"] for name, s in summaries.items() for col, entry in s.items()}
        write_lineage(tmp, "eval", config.model_dump(mode="json"), parents=config.models, metrics=metrics)
    print(markdown_table(summaries))
    return out


class ScoreCache:
    """Scores of identical weights are not computed twice. A model's key is its content hash (solar_ray.artifacts)
    and the settings that decide its scores. Models of one key in a stage are scored once; with a `cache_dir`
    (a pipeline shares one per run), a result stored there by another stage is read instead of scored, and a model
    another stage is scoring right now (its claim file, `<key>.claim`, names a live process on this host) is waited
    for. Each result keeps the `timing` of the run that made it."""

    POLL_S = 1.0

    def __init__(self, config: Config, keys: list[str]):
        import json

        from solar_ray.artifacts import artifact_hash

        self.dir = Path(config.cache_dir) if config.cache_dir else None
        settings = json.dumps({"tasks": keys, "data": artifact_hash(config.data_dir), "limit": config.limit,
                               "max_gen_toks": config.max_gen_toks, "backend": config.backend, "device": config.device,
                               "dtype": config.dtype, "batch_size": config.batch_size}, sort_keys=True)
        self.models = config.models
        self.keys = {name: self._key(artifact_hash(path), settings) for name, path in self.models.items()}
        self.found = {name: self._read(key) for name, key in self.keys.items()}
        self.claimed: set[str] = set()  # keys this stage claimed and has not stored yet
        self.elsewhere: dict[str, str] = {}  # model -> its key, being scored by another stage

    @staticmethod
    def _key(model_hash: str | None, settings: str) -> str | None:
        import hashlib

        return hashlib.sha256(f"{model_hash}\n{settings}".encode()).hexdigest()[:32] if model_hash else None

    def _read(self, key: str | None):
        import json

        path = self.dir / f"{key}.json" if self.dir and key else None
        return json.loads(path.read_text()) if path and path.is_file() else None

    def _claim(self, key: str) -> bool:
        """Claim `key` for this stage; False while another live process on this host holds it."""
        import os
        import socket

        self.dir.mkdir(parents=True, exist_ok=True)
        path, mine = self.dir / f"{key}.claim", f"{socket.gethostname()} {os.getpid()} {id(self)}"
        for _ in range(2):
            try:
                with open(path, "x") as handle:
                    handle.write(mine)
                self.claimed.add(key)
                return True
            except FileExistsError:
                if self._live(path):
                    return False
                path.unlink(missing_ok=True)  # left by a process that is gone: take it over
        return False

    @staticmethod
    def _live(path: Path) -> bool:
        import os
        import socket

        try:
            host, pid, _ = path.read_text().split()
        except (FileNotFoundError, ValueError):
            return False
        if host != socket.gethostname():
            return False  # another host's process cannot be checked: score it here rather than wait for ever
        try:
            os.kill(int(pid), 0)  # PermissionError: alive, another user's
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def to_score(self) -> dict[str, str]:
        """The models to score now: one per key, none stored, none another stage is scoring (`wait_for_others`)."""
        todo: dict[str, str] = {}
        chosen: set[str | None] = set()
        for name, path in self.models.items():
            key = self.keys[name]
            if self.found[name] is not None or (key is not None and key in chosen):
                continue
            if self.dir and key is not None and not self._claim(key):
                self.elsewhere[name] = key
                continue
            todo[name] = path
            chosen.add(key)
        return todo

    def store(self, scored: dict[str, dict]) -> None:
        from solar_ray.artifacts import write_json

        for name, result in scored.items():
            key = self.keys[name]
            if self.dir and key:
                write_json(self.dir / f"{key}.json", result)
                (self.dir / f"{key}.claim").unlink(missing_ok=True)
                self.claimed.discard(key)

    def wait_for_others(self) -> dict[str, str]:
        """Wait for the models other stages were scoring; returns those left to score here (their stage stopped
        without storing them)."""
        import time

        left: dict[str, str] = {}
        for name, key in self.elsewhere.items():
            while True:
                if (result := self._read(key)) is not None:
                    self.found[name] = result
                    break
                if key in self.claimed or self._claim(key):  # freed by its stage (or ours: a model of the same key)
                    if key not in {self.keys[other] for other in left}:
                        left[name] = self.models[name]
                    break
                time.sleep(self.POLL_S)
        return left

    def complete(self, scored: dict[str, dict]) -> dict[str, dict]:
        """Every model's result, in the config's order: scored now, from a model of the same key, or stored."""
        by_key = {self.keys[name]: result for name, result in scored.items() if self.keys[name]}
        return {name: scored.get(name) or self.found[name] or by_key[self.keys[name]] for name in self.models}

    def release(self) -> None:
        """Drop the claims this stage still holds (it failed before storing them)."""
        for key in self.claimed:
            (self.dir / f"{key}.claim").unlink(missing_ok=True)
        self.claimed.clear()


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)

CACHE_KEY = "cache_dir"


def _on_gpu(config: Config) -> bool:
    return config.backend == "vllm" or config.device.startswith("cuda")  # the runner gives each GPU actor one GPU


def needs(config: Config):
    from solar_ray.contract import StageNeeds

    unit = "GPU" if _on_gpu(config) else "CPU"
    if config.workers is None:
        return StageNeeds(whole_cluster=True, what=f"Ray actors, one per {unit}")
    return StageNeeds(workers=config.workers, cpus_per_worker=config.cpus_per_worker, gpus_per_worker=1,
                      on_gpu=_on_gpu(config), what=f"{config.workers} Ray actor{'s' if config.workers != 1 else ''} ({unit})")


def workload(config: Config, models):
    """Each actor loads every model in turn (weights in the runner's dtype: bfloat16 on GPU, float32 on CPU, unless
    the config says) and scores its share of the items; FLOPs are 2 per parameter per scored or generated token."""
    from solar_ray.contract import Workload
    from solar_ray.evaluate.runner import weights_dtype
    from solar_ray.evaluate.suites import LM_EVAL_MAX_GEN_TOKS, resolve_tasks, task_limit
    from solar_ray.plan.estimate import dtype_bytes, hf_inference, unknown, vllm_engine

    device = "gpu" if _on_gpu(config) else "cpu"
    shapes = {name: models.shape(path) for name, path in config.models.items()}
    if any(shape is None for shape in shapes.values()):
        return unknown(device, config.workers, "models " + ", ".join(n for n, s in shapes.items() if s is None))
    largest = max(shapes.values(), key=lambda s: s.params)
    nbytes = dtype_bytes(weights_dtype(config.dtype, device == "gpu"), 4)
    benchmarks = models.assume["benchmarks"]
    models.used["benchmarks"] = "eval items / mean tokens per item with the leaderboard's shots: " + ", ".join(
        f"{k} {v['items']:,} / {v['tokens']:,}" + (f" + {v['generated']} generated" if "generated" in v else "")
        for k, v in benchmarks.items())
    tokens = generated = items = 0
    keys = [key for key in resolve_tasks(config.tasks) if key in benchmarks]  # others: sizes not known to the plan
    for key in keys:
        facts = benchmarks[key]
        limit = task_limit(config.limit, key)
        count = facts["items"] if limit is None else min(facts["items"], limit * facts.get("subjects", 1))
        items += count
        tokens += count * facts["tokens"]
        generated += count * min(facts.get("generated", 0), config.max_gen_toks or LM_EVAL_MAX_GEN_TOKS)
    seq = max((benchmarks[key]["tokens"] + benchmarks[key].get("generated", 0) for key in keys), default=2048)
    if config.backend == "vllm":
        memory, fill = vllm_engine(largest, models, tensor_parallel=1, share=0.9, max_len=None, nbytes=nbytes)
    else:
        memory, fill = hf_inference(largest, batch=config.batch_size, seq=seq, nbytes=nbytes), None
    flops = sum(2 * shape.params * (tokens + generated) for shape in shapes.values())
    return Workload(device=device, devices=config.workers, memory=memory, fill=fill,
                    cpus_per_device=config.cpus_per_worker, infer_flops=flops,
                    work=f"{len(shapes)} models x {items:,} items, {(tokens + generated) / 1e6:.0f}M tokens",
                    notes=[f"eval weights in {'float32' if nbytes == 4 else 'a 16-bit dtype'} ({nbytes} B/param)"])
