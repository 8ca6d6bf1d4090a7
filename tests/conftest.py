"""Shared fixtures. The whole suite shares one local Ray (started on first use) and one tiny world."""

from __future__ import annotations

import os

import pytest

# No test reaches a model hub: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
# The suite's own Ray, even when someone's `ray start --head` runs on this machine (init_ray would join that).
os.environ.setdefault("RAY_ADDRESS", "local")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (2 CPUs, like CI)."""
    import ray

    from solar_ray.ray_session import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The tiny world built once per session: OUT/base (model + tokenizer) and OUT/data/... (datasets)."""
    from solar_ray.tiny.stage import Config, run

    out = tmp_path_factory.mktemp("tiny") / "world"
    return run(Config(stage="tiny", output=str(out), seed=0))
