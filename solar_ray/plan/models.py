"""Model sizes and dataset rows for the planner, before the artifacts that hold them exist.

A model's parameter count comes from its Hugging Face config: transformers builds the model on the meta device
(no memory, no weights) and the parameters are counted, as accelerate's `estimate-memory` does. A config is
found, in order: for a pipeline artifact, from the stage that writes it (its `model_config` contract: a fetch
stage reads the hub config shipped in `solar_ray/plan/hub/`, up-scaling changes the layer count, training and
merging keep their input's); for a local model directory, its config.json; for a hub id, the shipped config.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HUB_CONFIGS = Path(__file__).with_name("hub")


@functools.cache
def facts() -> dict[str, Any]:
    """The planner's stated assumptions (solar_ray/plan/facts.yaml)."""
    return yaml.safe_load(Path(__file__).with_name("facts.yaml").read_text())


def hub_config(repo_id: str) -> dict[str, Any] | None:
    """A hub model's config.json: the hub mirror's copy when the run reads one (SOLAR_RAY_HUB_MIRROR, as a
    rehearsal does: it fetches that model, so the plan sizes it), else the copy shipped with the planner."""
    from solar_ray.hub import MIRROR_ENV

    mirror = os.environ.get(MIRROR_ENV)
    path = Path(mirror) / "models" / repo_id / "config.json" if mirror else None
    if path is None or not path.is_file():
        path = HUB_CONFIGS / f"{repo_id.replace('/', '--')}.json"
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass(frozen=True)
class ModelShape:
    """The figures memory and FLOPs depend on, read from a config.json."""

    params: int                 # all parameters (shared ones once)
    largest_layer: int          # parameters of the largest leaf module (DeepSpeed's "largest layer")
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV cache of one token: keys and values, every layer, every KV head."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def _config_key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True)


def shape_of(config: dict[str, Any]) -> ModelShape:
    return _shape(_config_key(config))


@functools.cache
def _shape(key: str) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = json.loads(key)
    fields.pop("architectures", None)
    fields.pop("auto_map", None)  # remote code is never loaded; the model type's own class is counted
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    # Tied weights are one tensor: count each parameter object once (as DeepSpeed's model_to_params does).
    params = sum({id(p): p.numel() for p in model.parameters()}.values())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    heads = config.num_attention_heads
    return ModelShape(
        params=params, largest_layer=largest, layers=config.num_hidden_layers, hidden=config.hidden_size,
        intermediate=getattr(config, "intermediate_size", 4 * config.hidden_size), heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads, vocab=config.vocab_size,
        max_positions=getattr(config, "max_position_embeddings", 4096),
    )


class PlanContext:
    """What a stage's `workload` may ask about its inputs: model configs and shapes, dataset rows, assumptions.

    `artifacts` maps an artifact directory of the pipeline to (the stage config that writes it); paths under it
    (`stage:sub/path` inputs) resolve through the same stage with `sub`.
    """

    def __init__(self, artifacts: dict[Path, Any] | None = None, assume: dict[str, Any] | None = None):
        self.artifacts = {Path(p): c for p, c in (artifacts or {}).items()}
        self.assume = {**facts(), **(assume or {})}
        self.used: dict[str, str] = {}  # assumption -> what it is, for the plan's list of assumptions

    def note(self, key: str, text: str) -> Any:
        """The assumed value of `key`, recorded as used."""
        value = self.assume[key]
        self.used[key] = text.format(value=value)
        return value

    def _writer(self, path: str | Path) -> tuple[Any, str] | None:
        path = Path(path)
        for root, config in self.artifacts.items():
            if path == root or root in path.parents:
                return config, str(path.relative_to(root)) if path != root else ""
        return None

    def config(self, model: str | Path) -> dict[str, Any] | None:
        """The config.json of a model: a pipeline artifact, a local directory or a hub id with a shipped config."""
        from solar_ray import contract

        writer = self._writer(model)
        if writer is not None:
            return contract.model_config(writer[0], writer[1], self)
        local = Path(model) / "config.json"
        if local.is_file():
            return json.loads(local.read_text())
        found = hub_config(str(model))
        if found is not None:
            self.used[f"hub:{model}"] = f"{model}: architecture from its hub config.json, shipped in solar_ray/plan/hub/"
        return found

    def shape(self, model: str | Path) -> ModelShape | None:
        config = self.config(model)
        if not config:
            return None
        try:
            return shape_of(config)
        except (ValueError, KeyError, TypeError) as exc:  # a model type this transformers cannot build
            self.used[f"unsized {model}"] = f"{model}: not sized ({type(exc).__name__}: {str(exc)[:80]})"
            return None

    def rows(self, dataset: str | Path) -> int | None:
        """Rows of a dataset artifact (its train split), or of one of its files (`<dataset>/test.parquet`): from
        the stage that writes it, else the parquet metadata."""
        from solar_ray import contract

        writer = self._writer(dataset)
        if writer is not None:
            return contract.rows(writer[0], writer[1], self)
        path = Path(dataset) if Path(dataset).suffix == ".parquet" else Path(dataset) / "train.parquet"
        if path.is_file():
            import pyarrow.parquet as pq

            return pq.read_metadata(path).num_rows
        return None
