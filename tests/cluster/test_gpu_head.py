"""GPU stages against a real Ray head that declares 2 GPUs (`ray start --num-gpus 2` on this CPU machine), joined
through RAY_ADDRESS as `ray job submit` does, with no autoscaler.

What a CPU machine can show: the stage's resource arithmetic and pre-checks pass on the declared GPUs, and the
GPU code then fails on the worker, in one line; a stage the cluster cannot hold fails at once, in one line, naming
the stage, what it needs and what the cluster has (before, a 4-GPU stage on this head waited forever)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from solar_ray.local_head import VENV_BIN, LocalHead
from solar_ray.tiny.benchmarks import benchmark_corpus, build_benchmarks, build_model
from tests.synth.conftest import MATH_ROWS, write_jsonl
from tests.train import fixtures

REPO = Path(__file__).resolve().parents[2]
NO_AUTOSCALER = "no autoscaler to add nodes; ask for less or add nodes"


class GpuHead(LocalHead):
    """A LocalHead declaring GPUs it does not have; its workers import this checkout's solar_ray."""

    def __init__(self, num_gpus: int, **kwargs):
        super().__init__(**kwargs)
        self.num_gpus = num_gpus

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--num-gpus") + 1] = str(self.num_gpus)
        return command


@pytest.fixture(scope="module")
def gpu_head():
    with GpuHead(num_gpus=2, num_cpus=2, env={"PYTHONPATH": str(REPO)}) as head:
        yield head


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_head")
    bench = build_benchmarks(root / "benchmarks", items=4)
    return {
        "root": root, "bench": bench, "eval_model": build_model(root / "eval_model", benchmark_corpus(bench)),
        "model": fixtures.build_tiny_model(root / "model"),
        "chat": fixtures.write_dataset(root / "chat", fixtures.chat_rows(16)),
        "seeds": write_jsonl(root / "math" / "train.jsonl", MATH_ROWS),
    }


def solar_ray(head: GpuHead, cwd: Path, *args: str, timeout: float = 400) -> tuple[subprocess.CompletedProcess, float]:
    env = head.client_env(RAY_ADDRESS=f"127.0.0.1:{head.gcs_port}", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1",
                          TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    start = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "solar-ray"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc, time.monotonic() - start


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_training_stage_beyond_the_cluster_fails_at_once_in_one_line(gpu_head, inputs):
    out = inputs["root"] / "sft4"
    proc, seconds = solar_ray(
        gpu_head, inputs["root"], "run", str(REPO / "experiments/tiny/sft.yaml"), f"model={inputs['model']}",
        f"dataset={inputs['chat']}", f"output={out}", "scaling.num_workers=4", "scaling.use_gpu=true",
        "optim.global_batch_size=32", "optim.per_device_batch_size=8", "run.name=sft4")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_lines(proc) == [
        "error: stage 'sft' (sft4) needs 4 x {CPU: 1, GPU: 1} (4 GPU, 4 CPU), but the Ray cluster has 2 GPU, 2 CPU on "
        f"1 node(s), the largest with 2 GPU, 2 CPU and {NO_AUTOSCALER}"]
    assert seconds < 300 and not out.exists()  # at once: the CLI start is most of it (on a loaded 2-core box)


def test_training_stage_on_declared_gpus_gets_past_the_pre_checks(gpu_head, inputs):
    """2 GPU workers fit: the pre-checks pass and Ray Train starts the workers on the declared GPUs, whose CUDA
    code then fails (torch here has no CUDA), rather than the driver refusing "no GPU"."""
    out = inputs["root"] / "sft2"
    proc, _ = solar_ray(
        gpu_head, inputs["root"], "run", str(REPO / "experiments/tiny/sft.yaml"), f"model={inputs['model']}",
        f"dataset={inputs['chat']}", f"output={out}", "scaling.num_workers=2", "scaling.use_gpu=true",
        "optim.global_batch_size=16", "optim.per_device_batch_size=8", "run.name=sft2", "run.max_failures=0")
    assert proc.returncode != 0 and not out.exists()
    text = proc.stdout + proc.stderr
    assert "needs" not in "".join(error_lines(proc)) and "no GPU" not in text
    assert any(marker in text for marker in ("CUDA", "cuda", "NCCL", "nccl")), text[-3000:]


def test_eval_on_declared_gpus_runs_to_the_gpu_actor_then_fails_in_one_line(gpu_head, inputs):
    out = inputs["root"] / "eval_gpu"
    proc, _ = solar_ray(
        gpu_head, inputs["root"], "run", str(REPO / "experiments/tiny/eval_h6.yaml"),
        f"models={{m: {inputs['eval_model']}}}", f"data_dir={inputs['bench']}", f"output={out}", "tasks=[arc]",
        "limit=2", "device=cuda", "workers=2", "cpus_per_worker=1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(error_lines(proc)) == 1
    assert error_lines(proc)[0].startswith("error: device cuda: torch ") and "sees no CUDA device" in proc.stderr
    assert not out.exists()


def test_eval_beyond_the_gpus_fails_at_once(gpu_head, inputs):
    proc, _ = solar_ray(
        gpu_head, inputs["root"], "run", str(REPO / "experiments/tiny/eval_h6.yaml"),
        f"models={{m: {inputs['eval_model']}}}", f"data_dir={inputs['bench']}", f"output={inputs['root'] / 'e3'}",
        "tasks=[arc]", "limit=2", "device=cuda", "workers=3", "cpus_per_worker=0.5")
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: stage 'eval' (e3) needs 3 x {CPU: 0.5, GPU: 1} (3 GPU, 1.5 CPU), but the Ray cluster has 2 GPU, "
        f"2 CPU on 1 node(s), the largest with 2 GPU, 2 CPU and {NO_AUTOSCALER}"]


def test_synth_vllm_reserves_engine_gpus_from_the_cluster_not_the_driver(gpu_head, inputs):
    """The driver has no vLLM (like an AWS/GCP head): the engines' GPUs still count, from the cluster's GPUs,
    after Ray is joined. 3 engines x 1 GPU do not fit 2 GPUs: one line naming them (before: 'vllm is not
    installed here', or with vLLM on the driver and no local GPU, 'has 0 GPU')."""
    proc, _ = solar_ray(
        gpu_head, inputs["root"], "run", str(REPO / "experiments/tiny/synth_math.yaml"), "engine=vllm",
        f"seed_data={inputs['seeds']}", f"model={inputs['model']}", f"output={inputs['root'] / 's3'}", "actors=3",
        "num_cpus_per_actor=0.5", "decontamination.benchmarks_dir=null", "decontamination.math_test=null")
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: stage 'synth_math' (s3) needs 3 x {CPU: 0.5, GPU: 1} (3 GPU, 1.5 CPU), but the Ray cluster has 2 GPU, "
        f"2 CPU on 1 node(s), the largest with 2 GPU, 2 CPU and {NO_AUTOSCALER}"]
