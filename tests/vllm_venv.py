"""Run `solar-ray run CONFIG key=value ...` in a process of its own in the vLLM venv (.venv-vllm, the Python running
the `vllm`-marked tests): vLLM's spawned engine core needs a guarded `__main__`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(config: str, overrides: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env["RAY_ADDRESS"] = "local"  # a private Ray of this venv's Python: a head started elsewhere lacks vLLM
    return subprocess.run([str(Path(sys.executable).parent / "solar-ray"), "run", str(REPO / config), *overrides],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
