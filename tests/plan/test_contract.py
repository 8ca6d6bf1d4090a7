"""The stage contract: a stage kind defined here, registered in the stage registry alone, is scheduled, planned
and checked by the pipeline without the pipeline knowing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from solar_ray import stages
from solar_ray.artifacts import atomic_dir, write_lineage
from solar_ray.config import StageConfig, dump_config
from solar_ray.contract import StageNeeds, Workload
from solar_ray.errors import ConfigError
from solar_ray.pipeline import Pipeline
from solar_ray.plan.cluster import load_cluster
from solar_ray.plan.planner import make_plan

# ------------------------------------------------------------------ the stand-in stage: Config, run, contract


class Config(StageConfig):
    stage: Literal["standin"] = "standin"
    gpus: int = Field(default=0, ge=0, description="GPU workers (0: one CPU worker).")
    gb_per_gpu: float = Field(default=1.0, description="Memory each GPU needs, GB.")
    tokens: float = Field(default=1e9, description="Tokens trained on.")
    storage: str = Field(default="", description="Where its Ray state lives (the pipeline sets it).")
    source: str | None = Field(default=None, description="Input artifact.")


def run(config: Config) -> Path:
    with atomic_dir(config.output, force=config.force) as tmp:
        (tmp / "storage.txt").write_text(config.storage)
        write_lineage(tmp, "standin", dump_config(config), parents={"source": config.source} if config.source else {})
    return Path(config.output)


RAY_STORAGE_KEY = "storage"


def needs(config: Config) -> StageNeeds:
    return StageNeeds(workers=max(1, config.gpus), cpus_per_worker=0.5, gpus_per_worker=1, on_gpu=config.gpus > 0,
                      what=f"{config.gpus} stand-in GPU workers")


def ray_state(config: Config) -> list[Path]:
    return [Path(config.storage) / "standin-run"] if config.storage else []


def workload(config: Config, models) -> Workload:
    return Workload(device="gpu", devices=config.gpus, memory={"weights": config.gb_per_gpu * 1e9},
                    train_flops=6 * 1e9 * config.tokens, disk={"export": 2e9}, work=f"{config.tokens:g} tokens")


# ---------------------------------------------------------------------------------------------- tests

EXPERIMENT = """
name: standin
parallel: 2
stages:
  a: {config: {stage: standin}}
  b: {config: {stage: standin, gpus: 2, gb_per_gpu: GB}, inputs: {source: a}}
"""

SPEC = """
name: two small GPUs
node_types:
  head: {cpus: 4, memory_gb: 16, head: true}
  gpu: {gpu: tiny, gpu_memory_gb: 10, bf16_tflops: 100, gpus: 2, cpus: 8, memory_gb: 32, count: 1, price_per_hour: 3}
"""


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.setitem(stages.STAGES, "standin", __name__)  # the registry entry: the only change outside here
    monkeypatch.setattr("solar_ray.ray_session.init_ray", lambda *a, **k: None)
    monkeypatch.setattr("solar_ray.ray_session.cluster_resources", lambda: {"CPU": 2.0, "GPU": 2.0})
    (tmp_path / "spec.yaml").write_text(SPEC)

    def write(gb: float) -> Path:
        path = tmp_path / "standin.yaml"
        path.write_text(EXPERIMENT.replace("GB", str(gb)))
        return path
    return write


def test_a_new_stage_kind_is_scheduled_from_its_contract(experiment, tmp_path):
    root = tmp_path / "out"
    pipe = Pipeline(experiment(8), output=str(root))
    assert pipe.configs["b"].storage == str(root / "ray")  # RAY_STORAGE_KEY pointed at the experiment's root
    rows = {row["stage"]: row for row in pipe.plan()}
    assert rows["b"]["resources"] == "2 stand-in GPU workers" and rows["b"]["reserves"] == "1 CPU + 2 GPU"
    assert rows["b"]["GB/device"] == "8.0" and rows["b"]["devices"] == "2 GPU"
    (root / "ray" / "standin-run").mkdir(parents=True)  # a stale run from other inputs: ray_state finds it
    state = pipe.run(report=False)
    assert state["stages"]["b"]["status"] == "ran" and not (root / "ray" / "standin-run").exists()
    assert json.loads((root / "pipeline.json").read_text())["graph"]["b"] == {"kind": "standin", "parents": ["a"]}


def test_a_new_stage_kind_is_planned_from_its_contract(experiment, tmp_path):
    pipe = Pipeline(experiment(8), output=str(tmp_path / "out"))
    plan = make_plan(pipe, load_cluster(tmp_path / "spec.yaml"), mfu=0.5)
    b = plan.stages["b"]
    assert (b.node.name, b.devices, b.nodes, b.fits, b.limit) == ("gpu", 2, 1, True, 10e9)
    assert b.hours == pytest.approx(6e18 / (2 * 100e12 * 0.5) / 3600)  # 6 N tokens at 50% of 2 x 100 TFLOPS
    assert b.cost == pytest.approx(b.hours * 3)
    assert plan.critical_path == ["a", "b"] and plan.makespan == pytest.approx(b.hours)


def test_a_stage_that_cannot_fit_stops_the_run_before_any_stage(experiment, tmp_path):
    root = tmp_path / "out"
    pipe = Pipeline(experiment(12), output=str(root))
    with pytest.raises(ConfigError) as error:
        pipe.run(report=False, cluster_spec=load_cluster(tmp_path / "spec.yaml"))
    assert str(error.value) == "stage 'b': 12.0 GB per GPU (tiny) needed (weights 12.0), limit 10.0 GB"
    assert not (root / "a").exists()  # a fits, but nothing ran


def test_a_stage_near_a_limit_is_warned_about(experiment, tmp_path):
    pipe = Pipeline(experiment(9.5), output=str(tmp_path / "out"))
    warnings = pipe.check_fit(pipe.select(), load_cluster(tmp_path / "spec.yaml"))
    assert warnings == ["stage 'b': 9.5 GB of 10.0 GB per device on gpu (95%)"]
    assert Pipeline(experiment(8), output=str(tmp_path / "out")).check_fit(
        ["b"], load_cluster(tmp_path / "spec.yaml")) == []


def test_the_report_reads_pipeline_json_not_the_experiment(experiment, tmp_path):
    """The report is written from pipeline.json and the artifacts: it works after the experiment file is gone."""
    from solar_ray.report import write_report

    root = tmp_path / "out"
    path = experiment(8)
    Pipeline(path, output=str(root)).run(report=False)
    path.unlink()
    md = (write_report(root) / "report.md").read_text()
    assert "| b | standin | ran |" in md and "a --> b" in md
