"""Tune fixtures: two merge candidates from the tiny world (the base and a copy with perturbed weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from solar_ray.tiny.model import perturbed_copy


@pytest.fixture(scope="session")
def candidates(tiny_world, tmp_path_factory):
    other = perturbed_copy(Path(tiny_world) / "base", tmp_path_factory.mktemp("tune") / "noisy")
    return {"base": str(Path(tiny_world) / "base"), "noisy": str(other)}
