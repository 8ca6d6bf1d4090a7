"""Every bad input of issue 3 gives one clear line and leaves no output behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from solar_ray.errors import ArtifactError
from solar_ray.upscale.stage import Config, run


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "solar_ray.cli", *args], capture_output=True, text=True, timeout=120)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary sibling left behind"


def copy_base(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "base"))


def rename_tensor(model_dir: Path, old: str, new: str) -> None:
    """Rename a tensor in its shard header (same length keeps offsets valid) and in the index."""
    assert len(old) == len(new)
    index_path = model_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = model_dir / index["weight_map"].pop(old)
    shard.write_bytes(shard.read_bytes().replace(f'"{old}"'.encode(), f'"{new}"'.encode()))
    index["weight_map"][new] = shard.name
    index_path.write_text(json.dumps(index))


def test_cli_drop_out_of_range_one_line(llama_base, tmp_path):
    out = tmp_path / "out"
    for drop in ("0", "4"):
        result = cli("upscale", str(llama_base), str(out), "--drop", drop)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "need 1 <= M and 2M < n: M in 1..3" in result.stderr
        assert_nothing_written(out)


def test_cli_pickle_refused_unless_allowed(llama_base, tmp_path):
    base = tmp_path / "pickled"
    base.mkdir()
    (base / "config.json").write_bytes((llama_base / "config.json").read_bytes())
    (base / "pytorch_model.bin").write_bytes(b"not really a pickle")
    out = tmp_path / "out"
    result = cli("upscale", str(base), str(out))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "pytorch_model.bin: pickle checkpoint refused" in result.stderr and "--allow-pickle" in result.stderr
    assert_nothing_written(out)


def test_cli_existing_output_refused_then_forced(llama_base, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    result = cli("upscale", str(llama_base), str(out), "--drop", "2")
    assert result.returncode == 2 and result.stderr.strip() == f"error: {out}: output already exists " \
        "(pass --force / force: true to replace it)"
    assert (out / "keep").exists()
    result = cli("upscale", str(llama_base), str(out), "--layers", "14", "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 14 and not (out / "keep").exists()


def test_cli_unknown_architecture(llama_base, tmp_path):
    base = copy_base(llama_base, tmp_path)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    result = cli("upscale", str(base), str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown architecture model_type='gpt2'" in result.stderr
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: rename_tensor(b, "model.layers.3.self_attn.q_proj.weight", "model.layers.3.self_attn.q_prjj.weight"),
         "tensor 'model.layers.3.self_attn.q_proj.weight' is missing (other layers have it); "
         "it has 'model.layers.3.self_attn.q_prjj.weight' instead (misnamed?)"),
        (lambda b: rename_tensor(b, "model.embed_tokens.weight", "model.embed_tokenz.weight"),
         "tensor 'model.embed_tokens.weight' is missing from the checkpoint (found 'model.embed_tokenz.weight': "
         "misnamed?)"),
        (lambda b: rename_tensor(b, "model.layers.5.mlp.up_proj.weight", "model.layers.9.mlp.up_proj.weight"),
         "tensor 'model.layers.9.mlp.up_proj.weight' is for layer 9, but config.json says 8 layers"),
        (lambda b: rename_tensor(b, "lm_head.weight", "lm_headxweight"), "tensor 'lm_head.weight' is missing"),
        (lambda b: _truncate_last_shard(b), "truncated safetensors shard: tensor"),
        (lambda b: _delete_a_shard(b), "is missing; re-download it"),
        (lambda b: _index_lies(b), "lists tensor 'model.norm.weight' in model-000"),
    ],
    ids=["misnamed-layer-tensor", "misnamed-embedding", "layer-out-of-range", "missing-lm-head", "truncated",
         "missing-shard", "index-disagrees"],
)
def test_damaged_checkpoints_named(llama_base, tmp_path, damage, message):
    base = copy_base(llama_base, tmp_path)
    damage(base)
    out = tmp_path / "out"
    with pytest.raises(ArtifactError) as info:
        run(Config(base=str(base), output=str(out)))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert_nothing_written(out)


def _truncate_last_shard(base: Path) -> None:
    shard = sorted(base.glob("*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])


def _delete_a_shard(base: Path) -> None:
    sorted(base.glob("*.safetensors"))[3].unlink()


def _index_lies(base: Path) -> None:
    """Point model.norm.weight at a shard that does not hold it."""
    index_path = base / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shards = sorted(set(index["weight_map"].values()))
    holder = index["weight_map"]["model.norm.weight"]
    index["weight_map"]["model.norm.weight"] = shards[0] if holder != shards[0] else shards[1]
    index_path.write_text(json.dumps(index))
