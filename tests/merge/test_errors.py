"""Bad input: one line naming the tensor / key / file, exit 2 from the CLI, nothing left at OUT."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch

from solar_ray.config import load_config
from solar_ray.errors import SolarRayError
from tests.merge.conftest import build_model


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from solar_ray.cli import main

    monkeypatch.setattr(sys, "argv", ["solar-ray", *args])
    capsys.readouterr()  # drop what building the fixtures printed
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(monkeypatch, capsys, out, args, *fragments):
    code, _, err = cli(monkeypatch, capsys, "merge", str(out), *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # no half-written sibling either


def test_cli_linear_and_slerp_succeed(tmp_path, models, monkeypatch, capsys):
    from tests.merge.conftest import load_state

    code, stdout, _ = cli(monkeypatch, capsys, "merge", str(tmp_path / "lin"), "--model", f"{models['a16']}:0.4",
                          "--model", f"{models['b16']}:0.6")
    assert code == 0 and "wrote" in stdout
    code, _, _ = cli(monkeypatch, capsys, "merge", str(tmp_path / "sl"), "--method", "slerp", "--model",
                     str(models["a16"]), "--model", str(models["b16"]), "--t", "0.5", "--t-attn", "0,1",
                     "--t-mlp", "0")
    assert code == 0
    sl, a = load_state(tmp_path / "sl"), load_state(models["a16"])
    assert (sl["model.layers.0.mlp.up_proj.weight"] == a["model.layers.0.mlp.up_proj.weight"]).all()  # t_mlp = 0
    assert not (sl["model.norm.weight"] == a["model.norm.weight"]).all()  # default t = 0.5


def test_cli_ties_options_reach_the_merge(tmp_path, models, monkeypatch, capsys):
    """--model PATH:WEIGHT:DENSITY, --density, --lambda: the same merge as the in-memory API with those values."""
    from solar_ray.merge import merge_state_dicts
    from tests.merge.conftest import load_state

    code, _, err = cli(monkeypatch, capsys, "merge", str(tmp_path / "ties"), "--method", "ties", "--model",
                       str(models["a16"]), "--model", f"{models['b16']}:0.7:0.5", "--model", str(models["c16"]),
                       "--density", "0.3", "--lambda", "0.9")
    assert code == 0, err
    lineage = json.loads((tmp_path / "ties" / "lineage.json").read_text())
    assert lineage["parameters"] == {"lambda": 0.9, "normalize": True, "density": 0.3}
    assert [m["density"] for m in lineage["models"]] == [None, 0.5, None]
    expected = merge_state_dicts("ties", [load_state(models[n]) for n in ("a16", "b16", "c16")],
                                 weights=[None, 0.7, None], densities=[None, 0.5, None], density=0.3, lambda_=0.9)
    merged = load_state(tmp_path / "ties")
    assert all(torch.equal(merged[k], expected[k]) for k in expected)


@pytest.mark.parametrize("case", ["shape", "layers", "vocab", "missing_tensor"])
def test_mismatched_models_are_refused(tmp_path, models, monkeypatch, capsys, case):
    from safetensors.torch import load_file, save_file

    if case == "layers":
        other = build_model(tmp_path / "deep", seed=5, layers=4)
        fragments = ("different layer counts", "3 layers", "4")
    elif case == "vocab":
        other = build_model(tmp_path / "bigvocab", seed=5, vocab=80)
        fragments = ("model.embed_tokens.weight", "vocabulary sizes differ", "64", "80")
    else:  # edit one tensor of a copy of b16
        other = tmp_path / "edited"
        shutil.copytree(models["b16"], other)
        shard = next(p for p in sorted(other.glob("*.safetensors")) if "model.layers.1.mlp.up_proj.weight"
                     in load_file(p))
        tensors = load_file(shard)
        if case == "shape":
            tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][:-1]
            fragments = ("model.layers.1.mlp.up_proj.weight", "[96, 64]", "[95, 64]")
        else:  # gone from its shard and from the index: a model without that tensor
            del tensors["model.layers.1.mlp.up_proj.weight"]
            index_path = other / "model.safetensors.index.json"
            index = json.loads(index_path.read_text())
            del index["weight_map"]["model.layers.1.mlp.up_proj.weight"]
            index_path.write_text(json.dumps(index))
            fragments = ("model.layers.1.mlp.up_proj.weight", "missing", str(other))
        save_file(tensors, shard, metadata={"format": "pt"})
    assert_refused(monkeypatch, capsys, tmp_path / "out", ["--model", str(models["a16"]), "--model", str(other)],
                   *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["--model", "{a}:1", "--model", "{b}:-1"], ("sum to 0",)),
    (["--method", "slerp", "--model", "{a}", "--model", "{b}", "--t", "1.5"], ("t=1.5", "outside [0, 1]")),
    (["--method", "slerp", "--model", "{a}", "--model", "{b}", "--t", "0.5", "--t-attn", "0,2"], ("t=2.0",)),
    (["--method", "slerp", "--model", "{a}", "--model", "{b}"], ("t", "needs t")),
    (["--method", "slerp", "--model", "{a}", "--model", "{b}", "--model", "{a}", "--t", "0.5"], ("exactly 2",)),
    (["--method", "frankenmerge", "--model", "{a}", "--model", "{b}"], ("unknown merge method 'frankenmerge'",
                                                                          "linear", "ties")),
    (["--model", "{a}", "--model", "{missing}"], ("nope", "not found")),
    (["--method", "ties", "--model", "{a}", "--model", "{b}", "--density", "1.5"],
     ("parameters.density", "less than or equal to 1")),
    (["--method", "ties", "--model", "{a}:0.5", "--model", "{b}"], ("models.model_0.weight", "no task vector")),
    (["--method", "model_stock", "--model", "{a}", "--model", "{b}"], ("at least 3",)),
    (["--method", "slerp", "--model", "{a}", "--model", "{b}", "--t", "0.5", "--lambda", "2"],
     ("parameters.lambda", "not a parameter of slerp")),
])
def test_bad_parameters_and_paths(tmp_path, models, monkeypatch, capsys, args, fragments):
    values = {"a": models["a16"], "b": models["b16"], "missing": tmp_path / "nope"}
    assert_refused(monkeypatch, capsys, tmp_path / "out", [arg.format(**values) for arg in args], *fragments)


def test_pickle_refused_unless_allowed(tmp_path, models, monkeypatch, capsys):
    pickled = build_model(tmp_path / "pickled", seed=2, pickle=True)
    assert_refused(monkeypatch, capsys, tmp_path / "out", ["--model", str(models["a16"]), "--model", str(pickled)],
                   "pytorch_model.bin", "--allow-pickle")


def test_existing_output_needs_force(tmp_path, models, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = cli(monkeypatch, capsys, "merge", str(out), "--model", str(models["a16"]),
                       "--model", str(models["b16"]))
    assert code == 2 and "already exists" in err
    code, _, _ = cli(monkeypatch, capsys, "merge", str(out), "--model", str(models["a16"]), "--model",
                     str(models["b16"]), "--force")
    assert code == 0 and (out / "lineage.json").is_file()


def test_in_memory_api_refuses_mismatches():
    import torch

    from solar_ray.merge import merge_state_dicts

    a = {"model.layers.0.mlp.up_proj.weight": torch.zeros(4, 2)}
    b = {"model.layers.0.mlp.up_proj.weight": torch.zeros(4, 3)}
    with pytest.raises(SolarRayError, match=r"model.layers.0.mlp.up_proj.weight.*\[4, 2\].*\[4, 3\]"):
        merge_state_dicts("linear", [a, b])
    with pytest.raises(SolarRayError, match="sum to 0"):
        merge_state_dicts("linear", [a, a], weights=[1, -1])
    with pytest.raises(SolarRayError, match="outside"):
        merge_state_dicts("slerp", [a, a], t=-0.1)


def test_shipped_config_validates():
    config = load_config("experiments/tiny/merge_average.yaml")
    assert config.stage == "merge" and config.method == "linear"
    assert [m.weight for m in config.models.values()] == [0.5, 0.5]
    assert config.spec().weights == (0.5, 0.5)


def test_config_rejects_t_out_of_range_and_t_for_linear():
    from solar_ray.config import build_config
    from solar_ray.errors import ConfigError

    base = {"stage": "merge", "models": {"a": "x", "b": "y"}}
    with pytest.raises(ConfigError, match=r"parameters.t.mlp: t=1.2 is outside \[0, 1\]"):
        build_config({**base, "method": "slerp", "parameters": {"t": {"mlp": [0, 1.2], "default": 0.5}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="needs a 'default'"):
        build_config({**base, "method": "slerp", "parameters": {"t": {"mlp": 0.5}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="parameters.t: not a parameter of linear; its parameters: normalize"):
        build_config({**base, "method": "linear", "parameters": {"t": 0.5}}, "cfg.yaml")


def test_run_slerp_from_a_config_file_with_a_schedule(tmp_path, models, monkeypatch, capsys):
    from tests.merge.conftest import load_state

    config = tmp_path / "merge_slerp.yaml"
    config.write_text(
        "stage: merge\nmethod: slerp\n"
        f"models:\n  base: {models['a16']}\n  other: {{path: {models['b16']}}}\n"
        "parameters:\n  t: {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}\n"
    )
    code, stdout, err = cli(monkeypatch, capsys, "run", str(config), f"output={tmp_path / 'out'}")
    assert code == 0, err
    merged, a, b = load_state(tmp_path / "out"), load_state(models["a16"]), load_state(models["b16"])
    assert torch_equal(merged["model.layers.0.self_attn.q_proj.weight"], a["model.layers.0.self_attn.q_proj.weight"])
    assert torch_equal(merged["model.layers.2.self_attn.q_proj.weight"], b["model.layers.2.self_attn.q_proj.weight"])
    assert torch_equal(merged["model.layers.0.mlp.up_proj.weight"], b["model.layers.0.mlp.up_proj.weight"])
    assert torch_equal(merged["model.layers.2.mlp.up_proj.weight"], a["model.layers.2.mlp.up_proj.weight"])


def torch_equal(x, y) -> bool:
    import torch

    return torch.equal(x, y)


def test_merge_into_its_own_input_is_refused_even_with_force(tmp_path, models, monkeypatch, capsys):
    own = tmp_path / "own"
    shutil.copytree(models["a16"], own)
    before = sorted((p.name, p.stat().st_size) for p in own.iterdir())
    code, _, err = cli(monkeypatch, capsys, "merge", str(own), "--model", str(own), "--model", str(models["b16"]),
                       "--force")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{own}: the output would overwrite input" in err
    assert sorted((p.name, p.stat().st_size) for p in own.iterdir()) == before
