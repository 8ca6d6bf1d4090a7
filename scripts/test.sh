#!/usr/bin/env bash
# Install solar-ray into .venv and run the whole test suite (offline, CPU; with its slow tests, which run the main
# job's rehearsal, the sweep YAMLs after it and the paper rehearsal: 57 minutes on one 2-core AMD EPYC on 2026-12-07,
# from a fresh clone); then the vLLM tests (marker `vllm`) in .venv-vllm, the community CPU build of vLLM, which
# scripts/vllm-venv.sh builds once and caches. Arguments run only that part of the main suite
# (`bash scripts/test.sh -x -q tests/merge`); SOLAR_RAY_VLLM_TESTS=1 adds the vLLM tests to it, 0 leaves them out.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
status=0
.venv/bin/python -m pytest --durations=25 "$@" || status=$?  # the slowest 25: where CI's minutes go
if [ "${SOLAR_RAY_VLLM_TESTS:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  bash scripts/vllm-venv.sh
  .venv-vllm/bin/python -m pytest -m vllm -q || status=$?
fi
exit $status
