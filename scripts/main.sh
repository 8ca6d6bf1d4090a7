#!/usr/bin/env bash
# Install solar-ray into .venv and run the main job: the tiny end-to-end SOLAR pipeline on a local Ray.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/solar-ray tiny runs/tiny --force "$@"
