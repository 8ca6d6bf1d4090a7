"""Block expansion, stacking and DUS with averaged overlap on a tiny Llama: exact identity, tensor-by-tensor maps."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from solar_ray.artifacts import read_lineage
from solar_ray.errors import SolarRayError
from solar_ray.upscale.stage import Config, run
from tests.upscale.test_upscale import all_tensors


def split(name: str) -> tuple[int, str] | None:
    """'model.layers.7.mlp.up_proj.weight' -> (7, 'mlp.up_proj.weight')."""
    if not name.startswith("model.layers."):
        return None
    _, _, index, rest = name.split(".", 3)
    return int(index), rest


def test_block_expansion_gives_exactly_the_base_logits(llama_base, tmp_path):
    """8 layers + 4 identity blocks (one after every 2 layers): the same logits, bit for bit, before training."""
    out = run(Config(base=str(llama_base), output=str(tmp_path / "be"), method="block_expansion", insert=4))
    base = AutoModelForCausalLM.from_pretrained(llama_base).eval()
    expanded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert expanded.config.num_hidden_layers == 12
    ids = torch.randint(3, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(expanded(ids).logits, base(ids).logits, rtol=0, atol=0)

    up, source = all_tensors(out), all_tensors(llama_base)
    copies = [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7]  # output layer -> base layer
    zeroed = []
    for name, tensor in up.items():
        if (parsed := split(name)) is None:
            assert torch.equal(tensor, source[name]), name
            continue
        j, rest = parsed
        if j in (2, 5, 8, 11) and rest.startswith(("self_attn.o_proj.", "mlp.down_proj.")):
            assert not tensor.any(), name  # the new block adds nothing to the residual stream
            zeroed.append(name)
        else:
            assert torch.equal(tensor, source[f"model.layers.{copies[j]}.{rest}"]), name
    assert len(zeroed) == 8
    lineage = read_lineage(out)
    assert lineage["identity_layers"] == [2, 5, 8, 11] and lineage["metrics"]["inserted"] == 4
    with torch.no_grad():  # and the new blocks are real blocks: a trained o_proj changes the output
        expanded.model.layers[2].self_attn.o_proj.weight.normal_()
        assert not torch.equal(expanded(ids).logits, base(ids).logits)


def test_stack_copies_every_layer_twice(llama_base, tmp_path):
    out = run(Config(base=str(llama_base), output=str(tmp_path / "stack"), method="stack"))
    up, source = all_tensors(out), all_tensors(llama_base)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 16
    assert len(up) == len(source) + 8 * sum(1 for k in source if k.startswith("model.layers.0."))
    for name, tensor in up.items():
        parsed = split(name)
        expected = name if parsed is None else f"model.layers.{parsed[0] % 8}.{parsed[1]}"
        assert torch.equal(tensor, source[expected]), name


def test_dus_average_averages_where_the_copies_overlap(llama_base, tmp_path):
    """n=8, M=2: output 0-3 = base 0-3, 4-7 = mean(base 4-7, base 0-3), 8-11 = base 4-7; float32 mean rounded
    once to the base's dtype."""
    out = run(Config(base=str(llama_base), output=str(tmp_path / "avg"), method="dus_average", drop=2))
    up, source = all_tensors(out), all_tensors(llama_base)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 12
    for name, tensor in up.items():
        if (parsed := split(name)) is None:
            assert torch.equal(tensor, source[name]), name
            continue
        j, rest = parsed
        if 4 <= j < 8:
            a, b = source[f"model.layers.{j}.{rest}"], source[f"model.layers.{j - 4}.{rest}"]
            expected = ((a.double() + b.double()) / 2).to(a.dtype)
            torch.testing.assert_close(tensor, expected, rtol=0, atol=0, msg=name)
            assert "norm" in rest or not torch.equal(tensor, a)  # (norms start at 1.0 in every layer)
        else:
            assert torch.equal(tensor, source[f"model.layers.{j if j < 4 else j - 4}.{rest}"]), name
    assert read_lineage(out)["layer_sources"][4] == [4, 0]


def test_dus_average_rounds_half_precision_once(llama_base, tmp_path):
    half = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(llama_base).to(torch.bfloat16).save_pretrained(half)
    out = run(Config(base=str(half), output=str(tmp_path / "avg16"), method="dus_average", drop=2))
    up, source = all_tensors(out), all_tensors(half)
    for j in range(4, 8):
        name, other = f"model.layers.{j}.mlp.up_proj.weight", f"model.layers.{j - 4}.mlp.up_proj.weight"
        assert up[name].dtype == torch.bfloat16
        expected = ((source[name].float() + source[other].float()) / 2).to(torch.bfloat16)  # rounded once
        assert torch.equal(up[name], expected), name


@pytest.mark.parametrize("kw, message", [
    ({"method": "block_expansion", "insert": 3}, "insert P=3 does not split 8 layers"),
    ({"method": "stack", "drop": 2}, "drop: a DUS parameter; method stack drops no layers"),
    ({"method": "dus", "insert": 2}, "insert: a block_expansion parameter"),
    ({"method": "merge_sort"}, "method"),
])
def test_bad_method_parameters_are_named(llama_base, tmp_path, kw, message):
    from solar_ray.config import validate

    with pytest.raises(SolarRayError, match=message) as info:
        run(validate(Config, {"base": str(llama_base), "output": str(tmp_path / "x"), **kw}, "upscale.yaml"))
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()
