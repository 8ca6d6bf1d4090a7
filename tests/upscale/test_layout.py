"""The layer mapping, M resolution and config rewriting: pure functions, no weights."""

from __future__ import annotations

import pytest

from solar_ray.errors import ArtifactError
from solar_ray.upscale import layout


def test_paper_plan_32_layers_drop_8_gives_48():
    plan = layout.LayerPlan(32, 8)
    assert plan.layers == 48
    assert plan.sources == tuple(range(24)) + tuple(range(8, 32))
    assert plan.targets(10) == [10, 26] and plan.targets(3) == [3] and plan.targets(30) == [46]


@pytest.mark.parametrize(("drop", "layers", "expected"), [(None, None, 8), (6, None, 6), (None, 48, 8), (None, 62, 1)])
def test_resolve_drop(drop, layers, expected):
    assert layout.resolve_drop(32, drop, layers, "base") == expected


@pytest.mark.parametrize(
    ("n", "drop", "layers", "message"),
    [(32, 0, None, "M=0 is out of range"), (32, 16, None, "M=16 is out of range"), (8, 4, None, "M in 1..3"),
     (32, None, 47, "layers=47 is odd"), (32, None, 64, "gives drop M=0"), (2, None, None, "at least 3 layers"),
     (32, 8, 48, "not both")],
)
def test_resolve_drop_refuses_out_of_range(n, drop, layers, message):
    with pytest.raises(ArtifactError, match=message):
        layout.resolve_drop(n, drop, layers, "base")


def test_config_lists_sliced_and_layer_indices_remapped():
    arch = layout.ARCHITECTURES["qwen2_moe"]
    plan = layout.LayerPlan(6, 2)  # sources 0 1 2 3 | 2 3 4 5
    config = {"model_type": "qwen2_moe", "num_hidden_layers": 6, "layer_types": list("abcdef"),
              "mlp_only_layers": [2, 5], "hidden_size": 8}
    out = layout.upscale_config(config, arch, plan)
    assert out["num_hidden_layers"] == 8
    assert out["layer_types"] == list("abcdcdef")
    assert out["mlp_only_layers"] == [2, 4, 7]
    assert config["num_hidden_layers"] == 6  # input untouched


def test_as_llama_config_drops_sliding_window():
    mistral = {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 4096,
               "max_position_embeddings": 32768, "head_dim": 128}
    llama = layout.as_llama_config(mistral, None)
    assert llama == {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                     "head_dim": 128}
    assert layout.as_llama_config(mistral, 8192)["max_position_embeddings"] == 8192


def test_unknown_architecture_is_named():
    with pytest.raises(ArtifactError, match="unknown architecture model_type='gpt2'"):
        layout.architecture_for({"model_type": "gpt2"}, "base/config.json")


def test_tied_default_follows_family():
    assert layout.is_tied({}, layout.ARCHITECTURES["gemma2"])
    assert not layout.is_tied({}, layout.ARCHITECTURES["llama"])
    assert layout.is_tied({"tie_word_embeddings": True}, layout.ARCHITECTURES["qwen2"])
