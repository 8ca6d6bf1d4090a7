"""A worker killed mid-run: Ray Train restarts the group from the last checkpoint and the run finishes with the
same loss, step for step, as a run that was never interrupted."""

from __future__ import annotations

import json

import pytest

from solar_ray.train import pretrain
from solar_ray.train.launcher import fit, run, write_artifact
from tests.train.test_stages import _loads_and_generates


def _config(tiny_model, text_dataset, tmp_path, name: str, output: str, steps: int = 6):
    return pretrain.Config(
        model=str(tiny_model), dataset=str(text_dataset), output=str(tmp_path / output),
        scaling={"num_workers": 2}, deepspeed={"zero_stage": 2},
        optim={"max_length": 32, "per_device_batch_size": 4, "max_steps": steps, "learning_rate": 3e-3,
               "warmup_ratio": 0.2},
        run={"name": name, "storage_path": str(tmp_path / "ray"), "checkpoint_every": 2, "max_failures": 1},
    )


def _losses(path) -> dict[int, float]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.fixture(scope="module")
def clean_run(ray_session, tiny_model, text_dataset, tmp_path_factory):
    """An uninterrupted pretraining run (ZeRO-2, 2 workers): the reference for both tests below. fit +
    write_artifact, not run: its Ray storage stays, like a driver's that died before deleting it."""
    tmp_path = tmp_path_factory.mktemp("resume")
    config = _config(tiny_model, text_dataset, tmp_path, "clean", "clean")
    clean = write_artifact(config, fit(config))
    return tmp_path, clean


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_worker_resumes_with_identical_losses(clean_run, tiny_model, text_dataset):
    tmp_path, clean = clean_run
    _loads_and_generates(clean)  # the clean run is also the pretrain ZeRO-2 stage test

    marker = tmp_path / "kill-marker"
    killed_config = _config(tiny_model, text_dataset, tmp_path, "killed", "killed")
    # Rank 1 dies (os._exit) right after step 3; the last checkpoint is step 2.
    result = fit(killed_config, loop_overrides={"_kill": {"step": 3, "rank": 1, "marker": str(marker)}})
    assert marker.exists(), "the fault was never injected"
    resumed = write_artifact(killed_config, result)

    clean_losses, resumed_losses = _losses(clean), _losses(resumed)
    assert sorted(resumed_losses) == list(range(1, 7))
    for step in range(3, 7):  # every step after the resume point (checkpoint at step 2)
        assert resumed_losses[step] == pytest.approx(clean_losses[step], abs=1e-5), step
    assert resumed_losses[6] < resumed_losses[1] - 0.3


@pytest.mark.slow
def test_rerun_with_same_name_returns_the_finished_run(clean_run, tiny_model, text_dataset):
    tmp_path, clean = clean_run
    # Same run name and storage: the finished run's result comes back without training again.
    assert (tmp_path / "ray" / "clean").is_dir()
    again = run(_config(tiny_model, text_dataset, tmp_path, "clean", "again"))
    assert _losses(again) == _losses(clean)
    assert (again / "model.safetensors").read_bytes() == (clean / "model.safetensors").read_bytes()
    assert not (tmp_path / "ray" / "clean").exists()  # deleted once the artifact was written
