"""`stage: merge` - weighted average (linear) or SLERP of models, streamed from disk with bounded memory.

Features:
1. `linear`: weighted average of any number of models, weights normalised to sum 1 unless `normalize: false`
   (the paper's Average (0.5, 0.5), (0.4, 0.6), (0.6, 0.4));
2. `slerp`: spherical interpolation per tensor between a base and another model, linear when the two are nearly
   colinear; `t` one value or by tensor family and varying over depth (mergekit style):
       t: {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}
3. float32 arithmetic, output in the base's dtypes; integer tensors are the base's; different vocabulary sizes
   are an error unless `vocab: base` (keep the base's vocabulary; see core.make_jobs);
4. streaming (stream.py): chunks read with pread and written with pwrite on a thread pool, memory bounded by
   `threads` x chunk size whatever the model size;
5. output: sharded safetensors + index, the base's config / tokenizer / generation config, README.md model card,
   lineage.json listing every parent (model_0, model_1, ...) with its weight; written atomically.
The same engine merges in memory (solar_ray.merge.merge_state_dicts / merge_into_model) for Tune sweeps.

Raises ConfigError / ArtifactError (one line) for: an unknown method, weights summing to 0, t outside [0, 1],
the wrong number of models, a missing model or config.json, pickle-only weights without `allow_pickle`,
different layer counts, a tensor missing in one model or of another shape (named), different vocabulary sizes
(unless `vocab: base`),
an existing output without `force`.

Example (experiments/tiny/merge_average.yaml):
    stage: merge
    method: linear
    models:
      sft_v3: {path: runs/tiny/sft_v3, weight: 0.5}
      sft_v4: {path: runs/tiny/sft_v4, weight: 0.5}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from solar_ray.artifacts import atomic_dir, write_lineage
from solar_ray.config import LocalPath, StageConfig, Strict, dump_config
from solar_ray.errors import ConfigError
from solar_ray.merge.core import CHUNK_ELEMENTS
from solar_ray.merge.methods import METHODS, MergeSpec, TSpec, check_t, get_method


class ModelSpec(Strict):
    """One input model of a merge."""

    path: LocalPath = Field(description="Model directory (Hugging Face layout, safetensors weights).")
    weight: float = Field(default=1.0, description="Linear merge weight (normalised over models by default).")


class Config(StageConfig):
    """A `stage: merge` config: the method, the models (the first is the base) and the method's parameters."""

    stage: Literal["merge"] = Field(default="merge", description="Always 'merge'.")
    method: str = Field(default="linear", description=f"Merge method: {', '.join(sorted(METHODS))}.")
    models: dict[str, ModelSpec] = Field(
        description="Name -> {path, weight} (or just a path), in order; the first is the base: its config, "
        "tokenizer and dtypes are kept and SLERP's t=0 returns it."
    )
    normalize: bool = Field(default=True, description="Divide linear weights by their sum (sum 0 is an error).")
    t: TSpec | None = Field(
        default=None, description="SLERP t in [0, 1] (0 = base, 1 = other), or {filter: t or [anchors over "
        "layers], default: t}, e.g. {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}."
    )
    vocab: Literal["error", "base"] = Field(
        default="error", description="Embeddings of different vocabulary sizes: 'error', or 'base' to keep the "
        "base's vocabulary (shared rows merged among the models that have them, the base's own extra rows copied, "
        "rows beyond it dropped; assumes shared ids are the same tokens)."
    )
    allow_pickle: bool = Field(default=False, description="Accept pickle (.bin) weights; they can run arbitrary code.")
    threads: int | None = Field(default=None, ge=1, description="Worker threads (default: one per usable core, at most 8).")
    chunk_elements: int = Field(default=CHUNK_ELEMENTS, ge=1024,
                                description="Elements per work chunk; scratch memory ~ threads x chunk x 26 bytes.")
    max_shard_mb: float = Field(default=5000, gt=0, description="Largest output shard in MB (10^6 bytes).")

    @field_validator("models", mode="before")
    @classmethod
    def _path_shorthand(cls, value):
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown merge method {value!r}; known: {', '.join(sorted(METHODS))}")
        return value

    @field_validator("t")
    @classmethod
    def _t_in_range(cls, value):
        if value is not None:
            try:
                check_t(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _parameters_fit_method(self) -> Config:
        try:
            self.spec()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.method != "slerp" and self.t is not None:
            raise ValueError(f"t is a SLERP parameter; method {self.method} does not use it")
        return self

    def spec(self) -> MergeSpec:
        weights = [m.weight for m in self.models.values()]
        return MergeSpec.build(self.method, len(self.models), weights=weights, t=self.t, normalize=self.normalize)


def run(config: Config) -> Path:
    """Merge `config.models` into `config.output`; returns the artifact directory."""
    from solar_ray.merge.stream import merge_checkpoints

    if config.output is None:
        raise ConfigError("output: missing; give the directory to write the merged model into")
    spec = config.spec()
    paths = [m.path for m in config.models.values()]
    started = time.perf_counter()
    with atomic_dir(config.output, force=config.force) as tmp:
        stats = merge_checkpoints(
            paths, spec, tmp, allow_pickle=config.allow_pickle, threads=config.threads,
            chunk_elements=config.chunk_elements, max_shard_bytes=int(config.max_shard_mb * 10**6), vocab=config.vocab,
        )
        models = [{"name": name, "role": f"model_{i}", "path": m.path,
                   "weight": spec.weights[i] if spec.weights else None}
                  for i, (name, m) in enumerate(config.models.items())]
        (tmp / "README.md").write_text(model_card(config, spec, models))
        stats["seconds"] = round(time.perf_counter() - started, 3)
        write_lineage(tmp, "merge", dump_config(config),
                      parents={f"model_{i}": path for i, path in enumerate(paths)},
                      metrics=stats, method=spec.method, models=models, t=spec.t)
    return Path(config.output)


def model_card(config: Config, spec: MergeSpec, models: list[dict]) -> str:
    method = get_method(spec.method)
    lines = ["---", "library_name: transformers", "tags: [merge, solar-ray]", "---", "",
             f"# Merged model ({spec.method})", "",
             f"Made by `solar-ray` with the `{spec.method}` method ({method.reference}).", "",
             "| role | name | path | weight |", "|---|---|---|---|"]
    for m in models:
        weight = "-" if m["weight"] is None else f"{m['weight']:.6g}"
        lines.append(f"| {m['role']} | {m['name']} | `{m['path']}` | {weight} |")
    if spec.t is not None:
        lines += ["", f"SLERP t: `{spec.t}` (0 = {models[0]['name']}, 1 = {models[1]['name']})"]
    if spec.weights is not None:
        lines += ["", f"Weights {'normalised to sum 1' if config.normalize else 'as given (not normalised)'}."]
    lines += ["", f"Config, tokenizer and dtypes from the base model ({models[0]['name']}); "
              "arithmetic in float32. Lineage: lineage.json.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def model_config(config: Config, sub: str, models):
    return models.config(next(iter(config.models.values())).path)  # merged models share one architecture


def workload(config: Config, models):
    from solar_ray.contract import Workload

    shape = models.shape(next(iter(config.models.values())).path)
    if shape is None:
        return Workload()
    return Workload(work=f"{len(config.models)} models streamed", disk={"export": 2 * shape.params})
