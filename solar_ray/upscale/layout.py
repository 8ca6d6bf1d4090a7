"""Architectures as data: where a decoder keeps its layers, in its tensor names and in its config.json.

Depth up-scaling only needs to know, per architecture:
- the tensor-name pattern of a decoder layer (`model.layers.{i}.<rest>` for every family listed here);
- the config key holding the layer count, the per-layer config lists (one entry per layer, sliced like the
  tensors) and the layer-index lists (layer numbers, remapped to the new numbering);
- the output-embedding tensor that is absent (or redundant) when embeddings are tied.

Adding an architecture that follows the `*.layers.{i}.*` naming is one entry in ARCHITECTURES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from solar_ray.errors import ArtifactError

# Per-layer config lists found across transformers' decoder configs (attention kind per layer, NoPE layers, ...).
COMMON_PER_LAYER_KEYS = ("layer_types", "no_rope_layers", "sliding_window_pattern_per_layer")


@dataclass(frozen=True)
class Architecture:
    """How one model family names its layers and describes them in config.json."""

    model_type: str
    layer_prefix: str = "model.layers."  # tensor `model.layers.7.mlp.up_proj.weight` -> layer 7
    layer_count_key: str = "num_hidden_layers"
    per_layer_keys: tuple[str, ...] = COMMON_PER_LAYER_KEYS  # lists with one entry per layer: sliced
    layer_index_keys: tuple[str, ...] = ()  # lists of layer numbers (e.g. Qwen2-MoE mlp_only_layers): remapped
    embed_key: str = "model.embed_tokens.weight"
    lm_head_key: str = "lm_head.weight"
    tied_by_default: bool = False  # transformers' default for tie_word_embeddings in this family

    @property
    def layer_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.layer_prefix)}(\d+)\.(.+)$")


def _family(*model_types: str, **kw: Any) -> dict[str, Architecture]:
    return {name: Architecture(model_type=name, **kw) for name in model_types}


ARCHITECTURES: dict[str, Architecture] = {
    **_family("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "phi3", "olmo", "olmo2", "granite",
              "starcoder2", "stablelm", "cohere", "smollm3", "ministral", "internlm2"),
    **_family("qwen2_moe", layer_index_keys=("mlp_only_layers",)),
    **_family("gemma", "gemma2", "gemma3_text", tied_by_default=True),
}


def architecture_for(config: dict[str, Any], source: str) -> Architecture:
    """The layout of a config.json's `model_type`; ArtifactError naming it when it is not described here."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ArtifactError(
            f"{source}: unknown architecture model_type={model_type!r}; known: {known} "
            "(add an entry to solar_ray/upscale/layout.py ARCHITECTURES if it names layers '*.layers.{i}.*')"
        )
    return ARCHITECTURES[model_type]


def is_tied(config: dict[str, Any], arch: Architecture) -> bool:
    return bool(config.get("tie_word_embeddings", arch.tied_by_default))


def layer_count(config: dict[str, Any], arch: Architecture, source: str) -> int:
    n = config.get(arch.layer_count_key)
    if not isinstance(n, int) or n < 1:
        raise ArtifactError(f"{source}: '{arch.layer_count_key}' is {n!r}; expected a positive integer layer count")
    return n


# --------------------------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class LayerPlan:
    """Depth up-scaling of an n-layer model dropping m: output layer j reads base layer `sources[j]`.

    Output layers 0..n-m-1 are base layers 0..n-m-1 (first copy, last m dropped); output layers n-m..2(n-m)-1
    are base layers m..n-1 (second copy, first m dropped). n=32, m=8 -> 48 layers (SOLAR 10.7B).
    """

    n: int
    drop: int
    sources: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        keep = self.n - self.drop
        object.__setattr__(self, "sources", tuple(range(keep)) + tuple(range(self.drop, self.n)))

    @property
    def layers(self) -> int:
        return len(self.sources)

    def targets(self, source_layer: int) -> list[int]:
        """Output layers that copy base layer `source_layer` (one or two)."""
        return [j for j, i in enumerate(self.sources) if i == source_layer]


def resolve_drop(n: int, drop: int | None, layers: int | None, source: str) -> int:
    """M from --drop or --layers (L = 2(n-M)); default n/4. ArtifactError unless 1 <= M and 2M < n."""
    if drop is not None and layers is not None:
        raise ArtifactError(f"{source}: give drop or layers, not both (got drop={drop}, layers={layers})")
    if layers is not None:
        if layers % 2:
            raise ArtifactError(
                f"{source}: layers={layers} is odd; the output has 2(n-M) layers, so give an even count "
                f"between {n + 2 - n % 2} and {2 * n - 2} for this {n}-layer base"
            )
        drop = n - layers // 2
    elif drop is None:
        drop = n // 4  # the paper's 8 of 32
    if drop < 1 or 2 * drop >= n:
        what = f"layers={layers} gives drop M={drop}" if layers is not None else f"drop M={drop}"
        hint = f"1..{(n - 1) // 2}" if n >= 3 else "none (the base needs at least 3 layers)"
        raise ArtifactError(f"{source}: {what} is out of range for a {n}-layer base; need 1 <= M and 2M < n: M in {hint}")
    return drop


def rename_layer(name: str, arch: Architecture, new_index: int) -> str:
    match = arch.layer_pattern.match(name)
    return f"{arch.layer_prefix}{new_index}.{match.group(2)}"


def upscale_config(config: dict[str, Any], arch: Architecture, plan: LayerPlan) -> dict[str, Any]:
    """config.json of the up-scaled model: layer count, per-layer lists sliced, layer-index lists remapped."""
    out = dict(config)
    out[arch.layer_count_key] = plan.layers
    for key in arch.per_layer_keys:
        values = config.get(key)
        if isinstance(values, list) and len(values) == plan.n:
            out[key] = [values[i] for i in plan.sources]
    for key in arch.layer_index_keys:
        values = config.get(key)
        if isinstance(values, list):
            out[key] = [j for j, i in enumerate(plan.sources) if i in set(values)]
    return out


def as_llama_config(config: dict[str, Any], max_position_embeddings: int | None) -> dict[str, Any]:
    """Re-express a Mistral-style config as Llama-2 (how SOLAR's base was built): same tensors, full attention."""
    out = {k: v for k, v in config.items() if k not in ("sliding_window", "layer_types", "use_sliding_window",
                                                         "max_window_layers")}
    out["model_type"] = "llama"
    out["architectures"] = ["LlamaForCausalLM"]
    out["max_position_embeddings"] = max_position_embeddings or 4096
    return out
