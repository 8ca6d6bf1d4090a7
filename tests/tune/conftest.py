"""Tune fixtures: two merge candidates from the tiny world (the base and a copy with perturbed weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def perturbed_copy(base: Path, out: Path, scale: float = 0.02, seed: int = 1) -> Path:
    """Copy of `base` whose float tensors get Gaussian noise of std `scale` (a second 'fine-tuned' candidate)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, out)
    generator = torch.Generator().manual_seed(seed)
    for shard in out.glob("*.safetensors"):
        state = load_file(shard)
        noisy = {k: (v + scale * torch.randn(v.shape, generator=generator)).to(v.dtype) if v.is_floating_point() else v
                 for k, v in state.items()}
        save_file(noisy, shard, metadata={"format": "pt"})
    return out


@pytest.fixture(scope="session")
def candidates(tiny_world, tmp_path_factory):
    other = perturbed_copy(Path(tiny_world) / "base", tmp_path_factory.mktemp("tune") / "noisy")
    return {"base": str(Path(tiny_world) / "base"), "noisy": str(other)}
