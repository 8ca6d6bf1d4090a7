"""A GPU stage on a cluster whose GPU node type starts at 0 workers (as every shipped launcher and KubeRay config
does) asks Ray's autoscaler for nodes and waits for them, saying what it waits for, instead of refusing "no GPU".

The cluster is Ray's fake multi-node autoscaler (what Ray's own test_autoscaler_fake_multinode.py uses): a private
head on loopback whose monitor "launches" nodes as local raylets. Not `ray.cluster_utils.AutoscalingCluster`: its
start() and shutdown() run `ray stop --force`, which would stop every Ray on this machine. This head is a
LocalHead (its own temp dir and ports, stopped through its own process group), and the wheel lacks the provider's
example.yaml, so the cluster config is written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solar_ray.local_head import LocalHead
from tests.train import fixtures

REPO = Path(__file__).resolve().parents[2]

DRIVER = """
import sys, time
import ray
from ray.experimental.internal_kv import _internal_kv_get
from solar_ray.config import load_config
from solar_ray.ray_session import init_ray
from solar_ray.train.launcher import hardware

init_ray()
while not _internal_kv_get("__autoscaling_status"):  # the head's monitor is up (ray up returns after that)
    time.sleep(0.5)
print("GPUs before:", ray.cluster_resources().get("GPU", 0), flush=True)
config = load_config(sys.argv[1], sys.argv[2:])
print("hardware:", hardware(config), flush=True)   # the stage's pre-check: waits for the autoscaler
group = ray.util.placement_group([{"CPU": 1, "GPU": 1}])  # what Ray Train then reserves for the worker
ray.get(group.ready(), timeout=120)
print("placed on a GPU node; GPUs now:", ray.cluster_resources().get("GPU", 0), flush=True)
"""


class AutoscalingHead(LocalHead):
    """A private head with Ray's fake multi-node autoscaler: CPU head, a GPU node type from 0 to 1 node."""

    def __init__(self, **kwargs):
        super().__init__(num_cpus=1, **kwargs)
        config = {
            "cluster_name": f"solar-ray-test-{self.gcs_port}", "max_workers": 1,
            "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{self.gcs_port}"},
            "available_node_types": {
                "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
                "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0,
                               "max_workers": 1},
            },
            "head_node_type": "ray.head.default", "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
            "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
            "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
            "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
            "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        }
        self.config_path = self.root / "autoscaling.json"  # beside the head's temp dir, which start creates
        self.config_path.write_text(json.dumps(config))
        self.extra_env.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                               "PYTHONPATH": str(REPO)})

    def command(self) -> list[str]:
        return [*super().command(), f"--autoscaling-config={self.config_path}"]


@pytest.fixture(scope="module")
def autoscaling_head():
    with AutoscalingHead() as head:
        yield head


LIVE = """
import time
from ray.experimental.internal_kv import _internal_kv_get
from solar_ray.plan.cluster import live_cluster
from solar_ray.ray_session import init_ray

init_ray()
while not _internal_kv_get("__autoscaling_status"):
    time.sleep(0.5)
live = live_cluster()
print("GPU nodes:", sum(n.count for n in live.nodes if n.gpus), "adds GPUs:", live.adds_gpus)
"""


def test_the_pipelines_fit_check_knows_the_autoscaler_can_add_gpus(autoscaling_head):
    """`solar-ray pipeline` checks stages against the live cluster; with no GPU node yet, a stage that runs on GPUs
    where the cluster can get them (the contamination test's device auto) must not be sized for CPU actors.
    Runs before the test below brings a GPU node up."""
    env = autoscaling_head.client_env(RAY_ADDRESS=f"127.0.0.1:{autoscaling_head.gcs_port}", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", LIVE], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU nodes: 0 adds GPUs: True" in proc.stdout.splitlines()


def test_gpu_stage_waits_for_then_gets_a_gpu_node_that_started_at_zero(autoscaling_head, tmp_path):
    model = fixtures.build_tiny_model(tmp_path / "model")
    data = fixtures.write_dataset(tmp_path / "chat", fixtures.chat_rows(8))
    env = autoscaling_head.client_env(RAY_ADDRESS=f"127.0.0.1:{autoscaling_head.gcs_port}", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(REPO / "experiments/tiny/sft.yaml"), f"model={model}", f"dataset={data}",
         f"output={tmp_path / 'out'}", "scaling.use_gpu=true", "scaling.num_workers=1", "run.name=autoscaled"],
        env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "GPUs before: 0" in lines
    waiting = [line for line in lines if "waiting for the autoscaler" in line]
    assert waiting == ["stage 'sft' (autoscaled): waiting for the autoscaler to add nodes: needs 1 x {CPU: 1, GPU: 1} "
                       "(1 GPU, 1 CPU); the cluster has 0 GPU, 1 CPU on 1 node(s), the largest with 0 GPU, 1 CPU"]
    assert any(line.startswith("stage 'sft' (autoscaled): the cluster now holds 1 x {CPU: 1, GPU: 1}") for line in lines)
    assert "hardware: {'use_gpu': True, 'bf16': True, 'backend': 'nccl'}" in lines
    assert "placed on a GPU node; GPUs now: 1.0" in lines
