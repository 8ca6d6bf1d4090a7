#!/usr/bin/env bash
# Install solar-ray into .venv and run the main job: the tiny end-to-end SOLAR pipeline on a local Ray.
# Output: runs/tiny/ (report: runs/tiny/report/report.html). Extra arguments go to `solar-ray pipeline`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/solar-ray pipeline experiments/tiny/pipeline.yaml "$@"
