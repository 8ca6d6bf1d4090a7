#!/usr/bin/env bash
# Prepare one cluster node: install solar-ray into ~/solar-venv and mount the shared file system at /mnt/solar.
# Run by the launcher's setup_commands (cluster/aws/solar-ray.yaml, cluster/gcp/solar-ray.yaml) on every node:
#   bash ~/solar-ray/cluster/setup_node.sh aws|gcp [vllm]
# Idempotent: `ray up` reruns it on every update. Reads only non-secret settings from cluster/<cloud>/cluster.env.
set -euo pipefail
cloud=${1:?usage: setup_node.sh aws|gcp [vllm]}
extra=${2:-}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
set -a; source "$here/$cloud/cluster.env"; set +a

# 1. Python environment with the project. CPU-only nodes take the small CPU torch wheel (the same version as the
#    GPU nodes' CUDA build) instead of a multi-GB CUDA download they cannot use.
[ -x ~/solar-venv/bin/python ] || python3 -m venv ~/solar-venv
~/solar-venv/bin/pip install -q -U pip
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  ~/solar-venv/bin/pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
if [ "$extra" = vllm ]; then
  ~/solar-venv/bin/pip install -q -e "$repo[vllm]"   # CUDA vLLM for eval/synth engines (pins its own torch)
else
  ~/solar-venv/bin/pip install -q -e "$repo"
fi
grep -q 'solar-venv/bin' ~/.bashrc || echo 'export PATH="$HOME/solar-venv/bin:$PATH"' >> ~/.bashrc

# 2. Shared POSIX file system for artifacts (atomic writes rename directories, which object stores cannot).
sudo mkdir -p /mnt/solar
if ! mountpoint -q /mnt/solar; then
  case "$cloud" in
    aws) sudo mount -t nfs4 -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport \
           "$SOLAR_SHARED_FS:/" /mnt/solar ;;
    gcp) sudo mount -t nfs -o hard,timeo=600,retrans=3,rsize=1048576,wsize=1048576 "$SOLAR_SHARED_FS" /mnt/solar ;;
    *) echo "setup_node.sh: unknown cloud '$cloud' (expected aws or gcp)" >&2; exit 2 ;;
  esac
fi
sudo chown "$(id -u):$(id -g)" /mnt/solar || true   # NFS with root squash refuses; the share is then pre-owned
mkdir -p /mnt/solar/runs /mnt/solar/hf-cache
