"""Secrets (hub token, cloud keys, tracking keys, the Ray token) reach nodes from the environment, a secret
manager or a Kubernetes Secret, and never sit in a committed config. The job-level check (logs, job info,
lineage of a real submitted job) is in test_job_submit.py."""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from solar_ray.artifacts import is_secret_name, secret_values

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LITERAL_SECRET_PATTERNS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{20,}\b",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "W&B key / long hex token": r"\b[0-9a-f]{32,}\b",
    "GCP service account key": r"\"private_key_id\"",
}


def looks_secret(name: str) -> bool:
    return is_secret_name(name)


SECRET_NAMES = ["HF_TOKEN", "DB_PASSWD", "PGPASSWORD", "MYSQL_PWD", "SMTP_PASS", "GITHUB_AUTH", "OPENAI_KEY",
                "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "GPG_PASSPHRASE", "GITHUB_PAT", "GOOGLE_CREDENTIALS"]
NOT_SECRET_NAMES = ["PWD", "OLDPWD", "TOKENIZERS_PARALLELISM", "KEYBOARD_LAYOUT", "PASSTHROUGH_MODE", "PATH",
                    "PYTHONPATH", "HOME"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_redacted(name, monkeypatch):
    value = f"v{secrets.token_hex(8)}"
    monkeypatch.setenv(name, value)
    assert is_secret_name(name)
    assert value in secret_values()


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_ordinary_names_are_not_redacted(name, monkeypatch):
    value = f"/v{secrets.token_hex(8)}"
    monkeypatch.setenv(name, value)
    assert not is_secret_name(name)
    assert value not in secret_values()


def cluster_files() -> list[Path]:
    return [p for p in CLUSTER.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_no_literal_secret_in_any_cluster_file():
    files = cluster_files()
    assert len(files) >= 15
    for path in files:
        text = path.read_text()
        for what, pattern in LITERAL_SECRET_PATTERNS.items():
            assert not re.search(pattern, text), f"{path.relative_to(REPO)}: looks like a {what}"


def test_literal_secret_scan_is_not_vacuous():
    planted = f"HF_TOKEN=hf_{secrets.token_hex(16)}"
    assert re.search(LITERAL_SECRET_PATTERNS["Hugging Face token"], planted)


def k8s_env_entries(node):
    if isinstance(node, dict):
        if "env" in node and isinstance(node["env"], list):
            yield from node["env"]
        for value in node.values():
            yield from k8s_env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from k8s_env_entries(value)


def test_kuberay_secrets_come_from_secret_refs_only():
    seen = set()
    for path in (CLUSTER / "kuberay").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for entry in k8s_env_entries(doc):
                if looks_secret(entry["name"]):
                    seen.add(entry["name"])
                    assert "value" not in entry, f"{path.name}: {entry['name']} has a literal value"
                    assert entry["valueFrom"]["secretKeyRef"]["name"] == "solar-ray-secrets", path.name
    assert {"HF_TOKEN", "WANDB_API_KEY"} <= seen


def test_runtime_env_and_launcher_configs_hold_no_secret_values():
    runtime_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    # runtime_env is stored with the job and shown by `ray job list`: secrets must not travel in it.
    assert not [name for name in runtime_env.get("env_vars", {}) if looks_secret(name)]
    for cloud in ("aws", "gcp"):
        text = (CLUSTER / cloud / "solar-ray.yaml").read_text()
        assert "RAY_AUTH_TOKEN=" not in text and "HF_TOKEN=" not in text, cloud
        settings = (CLUSTER / cloud / "cluster.env").read_text()
        assert "HF_TOKEN" in settings  # by name only: which secrets node_env.sh fetches
        assert not re.search(r"^(HF_TOKEN|WANDB_API_KEY|RAY_AUTH_TOKEN)=", settings, re.M), cloud


def fake_cli(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\necho \"$*\" >> {bin_dir}/{name}.calls\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_node_env_exports_secrets_from_the_cloud_secret_manager(tmp_path, cloud):
    """cluster/node_env.sh with stand-ins for the aws/gcloud CLIs: the hub token stored in the secret manager
    becomes HF_TOKEN for `ray start`, a missing secret is skipped, and nothing is echoed."""
    hf_token = f"hf_{secrets.token_hex(16)}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Only HF_TOKEN exists in the (fake) secret manager; asking for anything else fails like the real CLI does.
    fake_cli(bin_dir, "aws" if cloud == "aws" else "gcloud",
             f'case "$*" in *HF_TOKEN*) echo "{hf_token}";; *) echo "ResourceNotFound" >&2; exit 254;; esac')
    script = (f"source {CLUSTER / 'node_env.sh'} {cloud} && "
              'echo "mode=$RAY_AUTH_MODE hf_len=${#HF_TOKEN} wandb=${WANDB_API_KEY-unset} hf_home=$HF_HOME"; '
              '[ "$HF_TOKEN" = "$EXPECTED" ] && echo same')
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), "EXPECTED": hf_token}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert f"mode=token hf_len={len(hf_token)} wandb=unset hf_home=/mnt/solar/hf-cache" in result.stdout
    assert "same" in result.stdout
    assert hf_token not in result.stdout + result.stderr
    calls = (bin_dir / f"{'aws' if cloud == 'aws' else 'gcloud'}.calls").read_text()
    prefix = "solar-ray/" if cloud == "aws" else "solar-ray-"
    assert f"{prefix}HF_TOKEN" in calls and f"{prefix}WANDB_API_KEY" in calls


def test_shell_scripts_parse():
    for script in ("setup_node.sh", "node_env.sh"):
        result = subprocess.run(["bash", "-n", str(CLUSTER / script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
