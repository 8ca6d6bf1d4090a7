"""`stage: merge` - merge models with a registered method, streamed from disk with bounded memory.

Features:
1. the paper's methods: `linear`, the weighted average of any number of models, weights normalised to sum 1
   unless `parameters: {normalize: false}` (the paper's Average (0.5, 0.5), (0.4, 0.6), (0.6, 0.4)); `slerp`,
   spherical interpolation per tensor between a base and another model, `t` one value or by tensor family and
   varying over depth (mergekit style): `parameters: {t: {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}}`;
2. the field's methods, on the first model as the base: `task_arithmetic`, `ties`, `dare_linear`, `dare_ties`
   (per-model `weight` and `density`, `parameters: {density, lambda, normalize, rescale, seed}`) and
   `model_stock` (no parameters); each method is a plug-in declaring its parameters (solar_ray/merge/methods/);
3. float32 arithmetic, output in the base's dtypes; integer tensors are the base's; different vocabulary sizes
   are an error unless `vocab: base` (keep the base's vocabulary; see core.make_jobs);
4. streaming (stream.py): chunks read with pread and written with pwrite on a thread pool, memory bounded by
   `threads` x chunk size whatever the model size;
5. output: sharded safetensors + index, the base's config / tokenizer / generation config, README.md model card,
   lineage.json listing every parent (model_0, model_1, ...) with its weight; written atomically.
The same engine merges in memory (solar_ray.merge.merge_state_dicts / merge_into_model) for Tune sweeps.

Raises ConfigError / ArtifactError (one line) for: an unknown method, a parameter the method does not take or
out of its range (named `parameters.<key>` or `models.<name>.<key>`), weights summing to 0, the wrong number of
models, a missing model or config.json, pickle-only weights without `allow_pickle`,
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
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from solar_ray.artifacts import atomic_dir, refuse_output_among_inputs, write_lineage
from solar_ray.config import LocalPath, StageConfig, Strict, dump_config
from solar_ray.errors import ConfigError
from solar_ray.merge.core import CHUNK_ELEMENTS
from solar_ray.merge.plugin import MergeSpec, check_method_name, get_method, method_names, validate_parameters


class ModelSpec(Strict):
    """One input model of a merge."""

    path: LocalPath = Field(description="Model directory (Hugging Face layout, safetensors weights).")
    weight: float | None = Field(
        default=None, description="Weight of this model (linear: normalised over the models by default) or of its "
        "task vector (task_arithmetic, ties, dare_*); default 1. Not for the base of a task-vector method."
    )
    density: float | None = Field(
        default=None, description="ties / dare_*: fraction of this model's task vector kept, in (0, 1]; default "
        "parameters.density."
    )


class Config(StageConfig):
    """A `stage: merge` config: the method, the models (the first is the base) and the method's parameters."""

    stage: Literal["merge"] = Field(default="merge", description="Always 'merge'.")
    method: str = Field(default="linear", description=f"Merge method: {', '.join(method_names())}.")
    models: dict[str, ModelSpec] = Field(
        description="Name -> {path, weight, density} (or just a path), in order; the first is the base: its "
        "config, tokenizer and dtypes are kept, SLERP's t=0 returns it, task vectors are taken from it."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The method's own parameters, e.g. {t: 0.5} (slerp), {density: 0.5, "
        "lambda: 1.0} (ties); `solar-ray merge --help` lists them."
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
        return check_method_name(value)

    @field_validator("parameters")
    @classmethod
    def _parameters_of_method(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "method" in info.data:  # (an unknown method is reported on its own)
            try:
                validate_parameters(get_method(info.data["method"]), value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _parameters_fit_method(self) -> Config:
        try:
            self.spec()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def spec(self) -> MergeSpec:
        models = list(self.models.values())
        per_model = {plural: [getattr(m, key) for m in models] for key, plural in (("weight", "weights"),
                                                                                    ("density", "densities"))}
        return MergeSpec.build(
            self.method, len(models),
            **{key: values if any(v is not None for v in values) else None for key, values in per_model.items()},
            labels=[f"models.{name}" for name in self.models], **self.parameters,
        )


def run(config: Config) -> Path:
    """Merge `config.models` into `config.output`; returns the artifact directory."""
    from solar_ray.merge.stream import merge_checkpoints

    if config.output is None:
        raise ConfigError("output: missing; give the directory to write the merged model into")
    spec = config.spec()
    paths = [m.path for m in config.models.values()]
    refuse_output_among_inputs(config.output, {name: m.path for name, m in config.models.items()})
    started = time.perf_counter()
    with atomic_dir(config.output, force=config.force) as tmp:
        stats = merge_checkpoints(
            paths, spec, tmp, allow_pickle=config.allow_pickle, threads=config.threads,
            chunk_elements=config.chunk_elements, max_shard_bytes=int(config.max_shard_mb * 10**6), vocab=config.vocab,
        )
        models = [{"name": name, "role": f"model_{i}", "path": m.path,
                   "weight": spec.weights[i] if spec.weights else None,
                   "density": spec.densities[i] if spec.densities else None}
                  for i, (name, m) in enumerate(config.models.items())]
        (tmp / "README.md").write_text(model_card(config, spec, models))
        stats["seconds"] = round(time.perf_counter() - started, 3)
        write_lineage(tmp, "merge", dump_config(config),
                      parents={f"model_{i}": path for i, path in enumerate(paths)},
                      metrics=stats, method=spec.method, models=models, parameters=spec.summary())
    return Path(config.output)


def model_card(config: Config, spec: MergeSpec, models: list[dict]) -> str:
    method = get_method(spec.method)
    lines = ["---", "library_name: transformers", "tags: [merge, solar-ray]", "---", "",
             f"# Merged model ({spec.method})", "",
             f"Made by `solar-ray` with the `{spec.method}` method ({method.reference}).", "",
             "| role | name | path | weight | density |", "|---|---|---|---|---|"]
    for m in models:
        cells = ["-" if m[key] is None else f"{m[key]:.6g}" for key in ("weight", "density")]
        lines.append(f"| {m['role']} | {m['name']} | `{m['path']}` | {cells[0]} | {cells[1]} |")
    if spec.summary():
        lines += ["", f"Parameters: `{spec.summary()}`."]
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
