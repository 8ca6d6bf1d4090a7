"""Merges on tiny random Llamas: identities, endpoints, a float64 reference, in-memory == on-disk, the artifact."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from solar_ray.merge import merge_into_model, merge_state_dicts
from solar_ray.merge.stage import Config, run
from tests.merge.conftest import load_state


def merge(tmp_path, method, paths, name="out", **kw):
    """Merge on disk; `paths` are (path, weight) pairs, method parameters (t, normalize, ...) pass as keywords."""
    weighted = method != "slerp"  # SLERP takes no per-model weight (its plug-in refuses one)
    models = {f"m{i}": {"path": str(p), **({"weight": w} if weighted else {})} for i, (p, w) in enumerate(paths)}
    fields = {k: kw.pop(k) for k in list(kw) if k in Config.model_fields}
    config = Config(stage="merge", output=str(tmp_path / name), method=method, models=models, parameters=kw,
                    **fields)
    return run(config)


def bits_equal(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and torch.equal(x.view(-1).view(torch.uint8),
                                                                    y.view(-1).view(torch.uint8))


# ------------------------------------------------------------------ independent float64 reference (the formulas)


def ref_linear(tensors, weights):
    total = sum(weights)
    return sum((w / total) * t.double().numpy() for w, t in zip(weights, tensors, strict=True))


def ref_slerp(t, v0, v1):
    """SLERP as in mergekit: angle of the normalised tensors, lerp when |cos| > 0.9995."""
    a, b = v0.double().numpy().ravel(), v1.double().numpy().ravel()
    dot = float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
    if abs(dot) > 0.9995:
        out = (1 - t) * a + t * b
    else:
        theta = math.acos(dot)
        out = (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)
    return out.reshape(v0.shape)


def assert_close_to_reference(merged, reference, name):
    got = merged.double().numpy()
    scale = max(1.0, float(np.abs(reference).max()))
    assert np.allclose(got, reference, rtol=1e-5, atol=1e-6 * scale), f"{name}: max err {np.abs(got - reference).max()}"


# ----------------------------------------------------------------------------------------------- identities


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.4, 0.6), (3.0, 1.0)])
def test_average_of_a_model_with_itself_is_itself(tmp_path, models, weights):
    out = merge(tmp_path, "linear", [(models["a16"], weights[0]), (models["a16"], weights[1])])
    merged, base = load_state(out), load_state(models["a16"])
    assert merged.keys() == base.keys()
    assert all(bits_equal(merged[k], base[k]) for k in base)


@pytest.mark.parametrize("t, endpoint", [(0.0, "a16"), (1.0, "b16")])
def test_slerp_endpoints_are_exact(tmp_path, models, t, endpoint):
    out = merge(tmp_path, "slerp", [(models["a16"], 1.0), (models["b16"], 1.0)], t=t)
    merged, expected = load_state(out), load_state(models[endpoint])
    assert all(bits_equal(merged[k], expected[k]) for k in expected)


# ---------------------------------------------------------------------------------------- float64 reference


def test_linear_three_models_match_float64_reference(tmp_path, models):
    weights = (0.2, 0.3, 0.9)
    paths = [models["a32"], models["b32"], models["c32"]]
    out = merge(tmp_path, "linear", list(zip(paths, weights, strict=True)))
    merged, states = load_state(out), [load_state(p) for p in paths]
    for name in merged:
        assert merged[name].dtype == torch.float32
        assert_close_to_reference(merged[name], ref_linear([s[name] for s in states], weights), name)


def test_linear_no_normalize_uses_weights_as_given(tmp_path, models):
    out = merge(tmp_path, "linear", [(models["a32"], 0.5), (models["b32"], 1.0)], normalize=False)
    merged, a, b = load_state(out), load_state(models["a32"]), load_state(models["b32"])
    for name in merged:
        assert_close_to_reference(merged[name], 0.5 * a[name].double().numpy() + b[name].double().numpy(), name)


@pytest.mark.parametrize("pair, ulp", [(("a16", "b16"), 2**-10), (("abf", "bbf"), 2**-7)])
def test_half_precision_merges_are_the_reference_rounded(tmp_path, models, pair, ulp):
    """float32 arithmetic, then one rounding to the inputs' dtype: within one unit in the last place."""
    out = merge(tmp_path, "linear", [(models[pair[0]], 0.4), (models[pair[1]], 0.6)])
    merged, a, b = load_state(out), load_state(models[pair[0]]), load_state(models[pair[1]])
    for name in merged:
        assert merged[name].dtype == a[name].dtype
        reference = ref_linear([a[name], b[name]], (0.4, 0.6))
        got = merged[name].double().numpy()
        assert np.allclose(got, reference, rtol=ulp, atol=2**-24), f"{name}: max err {np.abs(got - reference).max()}"


def test_slerp_matches_float64_reference(tmp_path, models):
    out = merge(tmp_path, "slerp", [(models["a32"], 1.0), (models["b32"], 1.0)], t=0.3)
    merged, a, b = load_state(out), load_state(models["a32"]), load_state(models["b32"])
    for name in merged:
        assert_close_to_reference(merged[name], ref_slerp(0.3, a[name], b[name]), name)


def test_slerp_schedule_by_family_and_depth(tmp_path, models):
    # 3 layers, anchors [0, 1] -> attention t = 0, 0.5, 1 at layers 0, 1, 2; mlp 0.25 everywhere; rest 0.7
    schedule = {"self_attn": [0.0, 1.0], "mlp": 0.25, "default": 0.7}
    out = merge(tmp_path, "slerp", [(models["a32"], 1.0), (models["b32"], 1.0)], t=schedule)
    merged, a, b = load_state(out), load_state(models["a32"]), load_state(models["b32"])
    for name in merged:
        if "self_attn" in name:
            t = {0: 0.0, 1: 0.5, 2: 1.0}[int(name.split(".")[2])]
        else:
            t = 0.25 if "mlp" in name else 0.7
        assert_close_to_reference(merged[name], ref_slerp(t, a[name], b[name]), f"{name} (t={t})")
    assert bits_equal(merged["model.layers.0.self_attn.q_proj.weight"], a["model.layers.0.self_attn.q_proj.weight"])


def test_slerp_of_colinear_tensors_falls_back_to_linear():
    a = torch.randn(64, 32)
    b = 2.0 * a  # cos = 1: sin(theta) = 0, SLERP's formula would divide by zero
    a_before = a.clone()
    merged = merge_state_dicts("slerp", [{"w": a}, {"w": b}], t=0.25)["w"]
    assert torch.equal(a, a_before)  # the sources are read, never written
    assert torch.isfinite(merged).all()
    assert_close_to_reference(merged, ref_slerp(0.25, a, b), "w")
    assert torch.allclose(merged, 1.25 * a, rtol=1e-6)


# ------------------------------------------------------------------------------------- in memory == on disk


@pytest.mark.parametrize("method, kw", [("linear", {"weights": [0.4, 0.6]}),
                                        ("slerp", {"t": {"mlp": [0.0, 0.5, 1.0], "default": 0.35}})])
@pytest.mark.parametrize("chunk", [4096, 4 << 20])
@pytest.mark.parametrize("pair, dtype", [(("a16", "b16"), torch.float16), (("abf", "bbf"), torch.bfloat16)])
def test_in_memory_and_on_disk_agree_bit_for_bit(tmp_path, models, method, kw, chunk, pair, dtype):
    from transformers import AutoModelForCausalLM

    paths = [models[pair[0]], models[pair[1]]]
    disk_kw = {"t": kw["t"]} if "t" in kw else {}
    out = merge(tmp_path, method, list(zip(paths, kw.get("weights", [1.0, 1.0]), strict=True)), chunk_elements=chunk, **disk_kw)
    on_disk = load_state(out)
    states = [load_state(p) for p in paths]

    in_memory = merge_state_dicts(method, states, chunk_elements=chunk, **kw)
    assert in_memory.keys() == on_disk.keys()
    assert all(bits_equal(in_memory[k], on_disk[k]) for k in on_disk)

    # a live model holding the base weights, merged in place (it is itself the first source)
    model = AutoModelForCausalLM.from_pretrained(paths[0], dtype=dtype)
    pointers = {n: p.data_ptr() for n, p in model.named_parameters()}
    merge_into_model(model, [model.state_dict(), states[1]], method, chunk_elements=chunk, **kw)
    live = model.state_dict()
    assert all(bits_equal(live[k], on_disk[k]) for k in on_disk)
    assert pointers == {n: p.data_ptr() for n, p in model.named_parameters()}  # same storage: no copies swapped in


def test_merge_into_model_with_tied_embeddings(tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.merge.conftest import build_model

    paths = [build_model(tmp_path / f"t{i}", seed=i, dtype="float32", tie=True) for i in (1, 2)]
    states = [load_state(p) for p in paths]
    assert "lm_head.weight" not in states[0]
    model = AutoModelForCausalLM.from_pretrained(paths[0])
    merge_into_model(model, states, "linear", weights=[0.5, 0.5])
    expected = merge_state_dicts("linear", states, weights=[0.5, 0.5])
    assert torch.equal(model.lm_head.weight, expected["model.embed_tokens.weight"])
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


# ------------------------------------------------------------------------------------------------ artifact


def test_artifact_is_sharded_with_tokenizer_card_lineage_and_generates(tmp_path, models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    paths = [models["a16"], models["b16"], models["c16"]]
    out = merge(tmp_path, "linear", list(zip(paths, (0.4, 0.6, 1.0), strict=True)), max_shard_mb=0.05)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 1 and sorted(set(index["weight_map"].values())) == shards
    for name in ("config.json", "tokenizer.json", "generation_config.json", "README.md"):
        assert (out / name).is_file(), name
    lineage = json.loads((out / "lineage.json").read_text())
    assert [p["name"] for p in lineage["parents"]] == ["model_0", "model_1", "model_2"]
    assert [p["path"] for p in lineage["parents"]] == [str(p) for p in paths]
    assert [m["weight"] for m in lineage["models"]] == pytest.approx([0.2, 0.3, 0.5])
    assert "0.3" in (out / "README.md").read_text()

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.float16
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("w1 w2 w3", return_tensors="pt").input_ids
    generated = model.float().generate(ids, max_new_tokens=5, do_sample=False)
    assert generated.shape == (1, ids.shape[1] + 5)


def test_pickle_checkpoint_merges_when_allowed(tmp_path, models):
    from tests.merge.conftest import build_model

    pickled = build_model(tmp_path / "pickled", seed=2, pickle=True)
    assert not list(pickled.glob("*.safetensors"))
    out = merge(tmp_path, "linear", [(models["a16"], 1.0), (pickled, 1.0)], allow_pickle=True)
    expected = merge(tmp_path, "linear", [(models["a16"], 1.0), (models["b16"], 1.0)], name="expected")
    merged, reference = load_state(out), load_state(expected)
    assert all(bits_equal(merged[k], reference[k]) for k in reference)


# ------------------------------------------------------------------------------------- vocabulary resolution


def test_vocab_base_keeps_the_base_vocabulary(tmp_path, models):
    from tests.merge.conftest import build_model

    big = build_model(tmp_path / "big", seed=7, dtype="float32", vocab=80)  # base 80 rows, other 64
    out = merge(tmp_path, "linear", [(big, 0.25), (models["a32"], 0.75)], vocab="base")
    merged, b, a = load_state(out), load_state(big), load_state(models["a32"])
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 80
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert merged[name].shape == (80, 64)
        assert_close_to_reference(merged[name][:64], ref_linear([b[name][:64], a[name]], (0.25, 0.75)), name)
        assert bits_equal(merged[name][64:].contiguous(), b[name][64:].contiguous())  # rows only the base has
    slerp = merge(tmp_path, "slerp", [(big, 1.0), (models["a32"], 1.0)], name="slerp", vocab="base", t=0.4)
    merged = load_state(slerp)
    name = "model.embed_tokens.weight"
    assert_close_to_reference(merged[name][:64], ref_slerp(0.4, b[name][:64], a[name]), name)
    assert bits_equal(merged[name][64:].contiguous(), b[name][64:].contiguous())

    # a smaller base keeps its 64 rows; the other model's rows 64..79 are dropped; in memory gives the same bits
    out = merge(tmp_path, "linear", [(models["a32"], 0.5), (big, 0.5)], name="small_base", vocab="base")
    merged = load_state(out)
    assert merged[name].shape == (64, 64)
    in_memory = merge_state_dicts("linear", [a, b], weights=[0.5, 0.5], vocab="base")
    assert all(bits_equal(in_memory[k], merged[k]) for k in merged)


def test_the_merge_command_never_imports_torch(tmp_path, models):
    """Importing torch takes seconds, longer than merging 0.8 GiB (kernels.py): the CLI path stays numpy-only."""
    import subprocess
    import sys

    script = ("import sys; from solar_ray.cli import main; sys.argv = ['solar-ray', 'merge', sys.argv[1], "
              "'--method', 'slerp', '--model', sys.argv[2], '--model', sys.argv[3], '--t', '0.5']\n"
              "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
              "print('torch imported:', 'torch' in sys.modules)")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", script, str(out), str(models["a16"]), str(models["b16"])],
                            capture_output=True, text=True, check=True)
    assert "torch imported: False" in result.stdout, result.stdout + result.stderr
    assert (out / "model.safetensors.index.json").is_file() or list(out.glob("*.safetensors"))
