#!/usr/bin/env bash
# Create .venv and install solar-ray into it. Sourced by main.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
GPU=0; command -v nvidia-smi >/dev/null 2>&1 && GPU=1
# CPU machine: take the CPU wheel first so the project's torch range does not pull a multi-GB CUDA build.
[ "$GPU" = 1 ] || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
if [ "$GPU" = 0 ]; then
  # On CPU, DeepSpeed all-reduces through its shared-memory op, a C++ extension compiled on first use (about
  # 45 s on 2 cores, cached under ~/.cache/torch_extensions). Build it here, not silently in the first stage.
  echo "DeepSpeed's CPU shared-memory all-reduce: building once (cached) ..."
  DS_ACCELERATOR=cpu .venv/bin/python -c "from deepspeed.accelerator import get_accelerator
get_accelerator().create_op_builder('ShareMemCommBuilder').load(verbose=False)"
fi
