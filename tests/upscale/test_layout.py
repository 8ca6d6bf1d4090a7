"""The layer plans of every up-scaling method, M / P resolution, config rewriting, architectures as data: pure
functions, no weights."""

from __future__ import annotations

import pytest

from solar_ray.errors import ArtifactError
from solar_ray.tensors import layout
from solar_ray.upscale import plans


def test_paper_plan_32_layers_drop_8_gives_48():
    plan = plans.dus(32, 8)
    assert plan.layers == 48
    assert plan.sources == tuple((i,) for i in (*range(24), *range(8, 32)))
    assert plan.targets(10) == [10, 26] and plan.targets(3) == [3] and plan.targets(30) == [46]
    assert not plan.identity


def test_stack_plan_is_two_full_copies():
    plan = plans.make_plan("stack", 5, None, None, None, "base")
    assert plan.sources == ((0,), (1,), (2,), (3,), (4,), (0,), (1,), (2,), (3,), (4,)) and not plan.identity


def test_dus_average_overlaps_the_copies_on_2m_layers():
    plan = plans.make_plan("dus_average", 8, 2, None, None, "base")  # copy 2 starts at output layer 8 - 4 = 4
    assert plan.layers == plans.dus(8, 2).layers == 12
    assert plan.sources == ((0,), (1,), (2,), (3,), (4, 0), (5, 1), (6, 2), (7, 3), (4,), (5,), (6,), (7,))


def test_block_expansion_inserts_identity_copies_evenly():
    plan = plans.make_plan("block_expansion", 8, None, 4, None, "base")
    assert plan.sources == ((0,), (1,), (1,), (2,), (3,), (3,), (4,), (5,), (5,), (6,), (7,), (7,))
    assert plan.identity == {2, 5, 8, 11}
    assert plans.make_plan("block_expansion", 8, None, None, 10, "base").identity == {4, 9}  # P from layers


@pytest.mark.parametrize(("method", "drop", "insert", "layers", "message"), [
    ("block_expansion", None, 3, None, "P=3 does not split 8 layers"),
    ("block_expansion", 2, None, None, "drop is a DUS parameter"),
    ("dus", None, 2, None, "insert is a block_expansion parameter"),
    ("stack", None, None, 12, "stack always makes 2n = 16 layers"),
])
def test_plan_parameters_that_do_not_fit_are_named(method, drop, insert, layers, message):
    with pytest.raises(ArtifactError, match=message):
        plans.make_plan(method, 8, drop, insert, layers, "base")


def test_residual_outputs_are_data_per_architecture():
    llama, mixtral = layout.ARCHITECTURES["llama"], layout.ARCHITECTURES["mixtral"]
    assert llama.writes_residual("self_attn.o_proj.weight") and llama.writes_residual("mlp.down_proj.weight")
    assert not llama.writes_residual("self_attn.q_proj.weight") and not llama.writes_residual("mlp.up_proj.weight")
    assert mixtral.writes_residual("block_sparse_moe.experts.3.w2.weight")
    assert not mixtral.writes_residual("block_sparse_moe.experts.3.w1.weight")


@pytest.mark.parametrize(("drop", "layers", "expected"), [(None, None, 8), (6, None, 6), (None, 48, 8), (None, 62, 1)])
def test_resolve_drop(drop, layers, expected):
    assert plans.resolve_drop(32, drop, layers, "base") == expected


@pytest.mark.parametrize(
    ("n", "drop", "layers", "message"),
    [(32, 0, None, "M=0 is out of range"), (32, 16, None, "M=16 is out of range"), (8, 4, None, "M in 1..3"),
     (32, None, 47, "layers=47 is odd"), (32, None, 64, "gives drop M=0"), (2, None, None, "at least 3 layers"),
     (32, 8, 48, "not both")],
)
def test_resolve_drop_refuses_out_of_range(n, drop, layers, message):
    with pytest.raises(ArtifactError, match=message):
        plans.resolve_drop(n, drop, layers, "base")


def test_config_lists_sliced_and_layer_indices_remapped():
    arch = layout.ARCHITECTURES["qwen2_moe"]
    plan = plans.dus(6, 2)  # sources 0 1 2 3 | 2 3 4 5
    config = {"model_type": "qwen2_moe", "num_hidden_layers": 6, "layer_types": list("abcdef"),
              "mlp_only_layers": [2, 5], "hidden_size": 8}
    out = plans.upscale_config(config, arch, plan)
    assert out["num_hidden_layers"] == 8
    assert out["layer_types"] == list("abcdcdef")
    assert out["mlp_only_layers"] == [2, 4, 7]
    assert config["num_hidden_layers"] == 6  # input untouched


def test_as_llama_config_drops_sliding_window():
    mistral = {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 4096,
               "max_position_embeddings": 32768, "head_dim": 128}
    llama = plans.as_llama_config(mistral, None)
    assert llama == {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                     "head_dim": 128}
    assert plans.as_llama_config(mistral, 8192)["max_position_embeddings"] == 8192


def test_unknown_architecture_is_named():
    with pytest.raises(ArtifactError, match="unknown architecture model_type='gpt2'"):
        layout.architecture_for({"model_type": "gpt2"}, "base/config.json")


def test_tied_default_follows_family():
    assert layout.is_tied({}, layout.ARCHITECTURES["gemma2"])
    assert not layout.is_tied({}, layout.ARCHITECTURES["llama"])
    assert layout.is_tied({"tie_word_embeddings": True}, layout.ARCHITECTURES["qwen2"])
