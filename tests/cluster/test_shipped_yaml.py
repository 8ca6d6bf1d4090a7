"""Every YAML under cluster/ parses and starts with the command that uses it; every job config validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from solar_ray.config import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = sorted((REPO / "cluster").rglob("*.yaml"))
JOB_CONFIGS = sorted((REPO / "cluster" / "jobs").glob("*.yaml"))


@pytest.mark.parametrize("path", CLUSTER_YAML, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses_and_opens_with_its_command(path):
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, path
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{path.name}: start with a comment giving the command that runs it"
    assert any(tool in line for line in header for tool in ("ray job submit", "ray up", "kubectl apply")), path.name


def test_the_cluster_ships_job_configs():
    assert JOB_CONFIGS, "cluster/jobs/*.yaml: none found"


@pytest.mark.parametrize("path", JOB_CONFIGS, ids=lambda p: p.name)
def test_job_config_validates_against_its_stage(path):
    config = load_config(path)  # every stage ships: a ConfigError here is a bad key or value in the file
    assert config.stage == yaml.safe_load(path.read_text())["stage"], path.name
    assert config.output, path.name
    assert Path(config.output).is_absolute() or config.stage == "tiny", "cluster outputs live on /mnt/solar"
