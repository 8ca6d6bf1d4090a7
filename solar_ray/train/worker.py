"""Helpers that run inside Ray Train workers: rank-0 logging, the metrics history, and the final report.

Everything a worker needs arrives through its `config` argument; nothing here reads module state set by the
driver. The metrics history travels inside every checkpoint (`metrics.jsonl`), so a resumed run keeps the
curve of the steps before the failure and the driver reads it back from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger("solar_ray.train")

METRICS_FILE = "metrics.jsonl"
EXPORT_DIR = "export"  # inside the final checkpoint: the consolidated Hugging Face model directory


# DeepSpeed 0.19's ZeRO all-gather calls this torch.distributed function, deprecated in torch 2.13; the warning
# came back at every optimiser step of a multi-worker run and buried the training log.
DEPRECATED_CALL_WARNING = r"`torch\.distributed\.all_gather_into_tensor` is deprecated"


def quiet_known_warnings() -> None:
    """Filter the one library FutureWarning above (by its message) in this worker process; others still show."""
    import warnings

    warnings.filterwarnings("ignore", message=DEPRECATED_CALL_WARNING, category=FutureWarning)


def world_rank() -> int:
    import ray.train

    return ray.train.get_context().get_world_rank()


def log_rank0(message: str) -> None:
    if world_rank() == 0:
        print(f"[solar-ray train] {message}", flush=True)


def read_metrics(directory: str | Path) -> list[dict[str, Any]]:
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(directory: str | Path, history: list[dict[str, Any]]) -> None:
    with (Path(directory) / METRICS_FILE).open("w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")


def report_final(export: Any, history: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
    """Rank 0 reports the exported model dir (+ metrics history) as the run's last checkpoint; others report none.

    `export(dir)` must be called on every rank (ZeRO-3 gathers shards collectively) and write on rank 0 only.
    """
    import ray.train

    with tempfile.TemporaryDirectory(prefix="solar-ray-final-") as tmp:
        export(Path(tmp) / EXPORT_DIR)
        checkpoint = None
        if world_rank() == 0:
            write_metrics(tmp, history)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name="final")


def format_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def is_final(checkpoint: Any) -> bool:
    """Whether a checkpoint is a finished run's final one (it holds the exported model)."""
    with checkpoint.as_directory() as directory:
        return (Path(directory) / EXPORT_DIR).is_dir()


def report_again(checkpoint: Any) -> None:
    """A rerun of a finished run: report a copy of its final checkpoint so the driver gets the same result.

    A copy under a fresh name: reporting the persisted directory itself would copy it onto itself.
    """
    import shutil

    import ray.train

    with checkpoint.as_directory() as directory:
        history = read_metrics(directory)
        with tempfile.TemporaryDirectory(prefix="solar-ray-final-") as tmp:
            again = None
            if world_rank() == 0:
                shutil.copytree(directory, tmp, dirs_exist_ok=True)
                again = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(dict(history[-1]) if history else {}, checkpoint=again)


def save_rng(path: str | Path) -> None:
    """This rank's Python, NumPy and torch RNG states (dropout, sampling) for exact resume."""
    import random

    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    torch.save(state, path)


def load_rng(path: str | Path) -> None:
    import random

    import numpy as np
    import torch

    if not Path(path).is_file():  # a checkpoint from a run with another worker count: keep the fresh seeds
        return
    # Our own checkpoint (written by save_rng above), so unpickling it is trusted.
    state = torch.load(path, weights_only=False)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def maybe_inject_failure(cfg: dict[str, Any], step: int, rank: int) -> None:
    """Fault injection for the resume tests: `cfg["_kill"] = {"step", "rank", "marker"}` kills that worker
    process (os._exit, no cleanup, like an OOM kill) once - the marker file stops it happening again."""
    import os

    kill = cfg.get("_kill")
    if not kill or kill["step"] != step or kill["rank"] != rank or Path(kill["marker"]).exists():
        return
    Path(kill["marker"]).write_text(f"killed rank {rank} at step {step}\n")
    os._exit(1)
