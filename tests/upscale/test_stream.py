"""Byte-range safetensors reading and writing against the safetensors library."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from solar_ray.errors import ArtifactError
from solar_ray.tensors.safetensors_io import (
    plan_shards,
    read_checkpoint,
    read_header,
    write_checkpoint,
    write_shard,
)


@pytest.fixture()
def shard(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float16).reshape(2, 3), "b": torch.ones(5, dtype=torch.bfloat16),
               "c": torch.tensor([1, 2, 3], dtype=torch.int64)}
    path = tmp_path / "x.safetensors"
    save_file(tensors, path)
    return path, tensors


def test_rewritten_shard_loads_with_safetensors(shard, tmp_path):
    path, tensors = shard
    refs = read_header(path)
    out = tmp_path / "y.safetensors"
    # renamed, reordered, one tensor twice: what up-scaling does
    write_shard(out, [("c2", refs["c"]), ("a", refs["a"]), ("c", refs["c"])])
    loaded = load_file(out)
    assert set(loaded) == {"a", "c", "c2"}
    assert torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["c2"], tensors["c"])


def test_checkpoint_sharded_with_index(shard, tmp_path):
    path, tensors = shard
    refs = read_header(path)
    out = tmp_path / "out"
    out.mkdir()
    stats = write_checkpoint(out, [(k, refs[k]) for k in "abc"], max_shard_bytes=24)
    assert stats["shards"] == 2  # a + b (12 B + 10 B) | c (24 B)
    assert {name: ref.file.name for name, ref in read_checkpoint(out).items()} == {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}
    assert plan_shards([("a", refs["a"])], 1) == [[("a", refs["a"])]]


def test_truncated_shard_named(shard):
    path, _ = shard
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match=r"x.safetensors: truncated safetensors shard: tensor '[abc]' ends at byte \d+, file has"):
        read_header(path)
    path.write_bytes(b"\x10\x00")
    with pytest.raises(ArtifactError, match="truncated safetensors shard"):
        read_header(path)
