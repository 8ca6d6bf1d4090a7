"""Architectures as data: where a decoder keeps its layers, in its tensor names and in its config.json.

The one source of tensor layouts for up-scaling and merging. Per architecture:
- the tensor-name pattern of a decoder layer (`model.layers.{i}.<rest>` for every family listed here);
- the config key holding the layer count, the per-layer config lists (one entry per layer, sliced like the
  tensors) and the layer-index lists (layer numbers, remapped to the new numbering);
- the output-embedding tensor that is absent (or redundant) when embeddings are tied;
- the layer tensors that write into the residual stream (attention output, MLP down projection): zeroed, they
  make a layer the identity (block expansion).
Merging works on state dicts whose architecture it is not told, so it reads names with the family-independent
helpers at the end (`layer_index`, `is_vocab_tensor`).

Adding an architecture that follows the `*.layers.{i}.*` naming is one entry in ARCHITECTURES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    # layer tensors (name after `layers.{i}.`) adding into the residual stream; zero them and the layer is x -> x
    residual_outputs: str = r"(self_attn\.o_proj|mlp\.(experts\.\d+\.|shared_expert\.)?down_proj)\."

    @property
    def layer_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.layer_prefix)}(\d+)\.(.+)$")

    def writes_residual(self, layer_suffix: str) -> bool:
        """Whether `layer_suffix` (a tensor name after `layers.{i}.`) adds into the residual stream."""
        return re.match(self.residual_outputs, layer_suffix) is not None


def _family(*model_types: str, **kw: Any) -> dict[str, Architecture]:
    return {name: Architecture(model_type=name, **kw) for name in model_types}


ARCHITECTURES: dict[str, Architecture] = {
    **_family("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "phi3", "olmo", "olmo2", "granite",
              "stablelm", "cohere", "smollm3", "ministral"),
    **_family("qwen2_moe", layer_index_keys=("mlp_only_layers",)),
    **_family("gemma", "gemma2", "gemma3_text", tied_by_default=True),
    **_family("mixtral", residual_outputs=r"(self_attn\.o_proj|block_sparse_moe\.experts\.\d+\.w2)\."),
    **_family("starcoder2", residual_outputs=r"(self_attn\.o_proj|mlp\.c_proj)\."),
    **_family("internlm2", residual_outputs=r"(attention\.wo|feed_forward\.w2)\."),
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


# ------------------------------------------------------------------------------- names, any architecture

# `<prefix>.layers.{i}.<rest>`: the layer naming every family above shares (and most decoders do).
LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")
# Tensors with one row per vocabulary entry: input embeddings and the output head, across families.
VOCAB_TENSORS = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out")


def layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to (`model.layers.7.mlp.up_proj.weight` -> 7), None outside layers."""
    match = LAYER_INDEX.search(name)
    return int(match.group(1)) if match else None


def count_layers(names) -> int:
    """Decoder layers in a checkpoint, from its tensor names."""
    indices = {i for name in names if (i := layer_index(name)) is not None}
    return max(indices) + 1 if indices else 0


def is_vocab_tensor(name: str) -> bool:
    return any(key in name for key in VOCAB_TENSORS)
