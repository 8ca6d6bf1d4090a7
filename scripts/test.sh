#!/usr/bin/env bash
# Install solar-ray into .venv and run the whole test suite (offline, CPU, about 11-12 minutes on 2 cores from a
# fresh clone).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/python -m pytest "$@"
