"""Acceptance: a real Ray head on loopback, a small data stage submitted with the real `ray job submit` CLI and
the project's runtime_env, token authentication on, and no secret in the job's logs, job info or artifact."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest

from solar_ray.local_head import VENV_BIN, LocalHead

REPO = Path(__file__).resolve().parents[2]
RUNTIME_ENV = REPO / "cluster" / "runtime_env.yaml"
# Secrets as a cloud node would hold them (fetched from a secret manager into the node's environment).
NODE_SECRETS = {"HF_TOKEN": f"hf_{secrets.token_hex(20)}", "WANDB_API_KEY": secrets.token_hex(20)}


def ray_cli(head: LocalHead, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [str(VENV_BIN / "ray"), *args], env=env or head.client_env(), cwd=REPO,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def wait_for_job(head: LocalHead, job_id: str, timeout_s: float = 300) -> str:
    """Poll the job API (the same endpoint `ray job status` reads; polling it directly saves a CLI start each time)."""
    deadline = time.monotonic() + timeout_s
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        status = head.api(f"/api/jobs/{job_id}")["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(1)
    return f"TIMEOUT (last status {status})"


@pytest.fixture(scope="module")
def head():
    with LocalHead(num_cpus=1, env=NODE_SECRETS) as running:
        yield running


@pytest.fixture(scope="module")
def stage_job(head, tmp_path_factory):
    """Submit a small `stage: data` run (Ray Data on the cluster it was submitted to) and wait for it.

    A data stage rather than `stage: tiny`: its Ray Data tasks join the cluster through the RAY_ADDRESS that
    `ray job submit` sets, so the test covers a stage really using the cluster, in about a minute on one CPU.
    """
    work = tmp_path_factory.mktemp("cluster_job")
    rows = [{"instruction": f"Name the colour of thing {i}.", "input": "", "output": f"Thing {i} is blue."}
            for i in range(40)]
    (work / "alpaca.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = work / "data.yaml"
    config.write_text(
        f"stage: data\nkind: sft\nsources:\n  alpaca_gpt4: {{path: {work / 'alpaca.jsonl'}}}\ntest_size: 4\n"
    )
    artifact = work / "sft_data"
    job_id = f"solar-ray-test-{secrets.token_hex(4)}"
    # `test -n` proves the job really inherited the node's secret, so the leak checks below are not vacuous.
    script = (
        'test -n "$HF_TOKEN" && python -c "import solar_ray; print(\'solar_ray imported from\', solar_ray.__file__)" && '
        f"solar-ray run {config} output={artifact}"
    )
    submit = ray_cli(
        head, "job", "submit", "--address", head.dashboard_url, "--submission-id", job_id, "--no-wait",
        "--working-dir", ".", "--runtime-env", str(RUNTIME_ENV.relative_to(REPO)), "--", "sh", "-c", script,
    )
    assert submit.returncode == 0, f"ray job submit failed:\n{submit.stdout}\n{submit.stderr}"
    status = wait_for_job(head, job_id)
    logs = ray_cli(head, "job", "logs", "--address", head.dashboard_url, job_id)
    job_list = ray_cli(head, "job", "list", "--address", head.dashboard_url)
    return {"id": job_id, "status": status, "artifact": artifact, "logs": logs.stdout + logs.stderr,
            "submit": submit, "job_list": job_list.stdout + job_list.stderr}


def test_stage_submitted_with_ray_job_submit_succeeds(stage_job):
    assert stage_job["status"] == "SUCCEEDED", f"job {stage_job['id']} ended {stage_job['status']}:\n{stage_job['logs']}"
    import pyarrow.parquet as pq

    artifact = stage_job["artifact"]
    assert pq.read_metadata(artifact / "train.parquet").num_rows == 36
    assert pq.read_metadata(artifact / "test.parquet").num_rows == 4
    lineage = json.loads((artifact / "lineage.json").read_text())
    assert lineage["stage"] == "data" and lineage["config"]["output"] == str(artifact)
    assert f"wrote {artifact}" in stage_job["logs"]  # the CLI's last line reached `ray job logs`


def test_stage_work_ran_on_the_cluster_it_was_submitted_to(head, stage_job):
    # init_ray joined the head through the RAY_ADDRESS `ray job submit` set: the stage's Ray Data tasks ran
    # in this head's workers rather than in a private local Ray started by the driver.
    ray_data_tasks = [name for name in head.task_names() if name.startswith(("ReadText", "MapBatches"))]
    assert ray_data_tasks, f"no Ray Data task in the head's worker logs: {sorted(head.task_names())}"


def test_job_ran_the_uploaded_working_dir_not_the_checkout(head, stage_job):
    # The runtime_env zips the working dir and runs the job inside the unpacked copy on the head, ahead of the
    # solar-ray installed on the node.
    assert "runtime_resources/working_dir_files/_ray_pkg_" in stage_job["logs"]
    job_list = stage_job["job_list"]  # `ray job list`
    assert stage_job["id"] in job_list
    assert "gcs://" in job_list  # working_dir was uploaded as a package, with the runtime_env's excludes
    assert ".venv/" in job_list and "runs/" in job_list


def test_no_secret_in_job_logs_job_info_or_artifact(head, stage_job):
    assert stage_job["status"] == "SUCCEEDED", stage_job["logs"]
    secret_values = [*NODE_SECRETS.values(), head.auth_token]
    texts = {"ray job logs": stage_job["logs"], "ray job list": stage_job["job_list"],
             "ray job submit output": stage_job["submit"].stdout + stage_job["submit"].stderr}
    for path in stage_job["artifact"].rglob("*"):
        if path.is_file():  # lineage.json, report.json and the parquet files themselves
            texts[str(path)] = path.read_bytes().decode(errors="replace")
    assert any(name.endswith("lineage.json") for name in texts)
    for where, text in texts.items():
        for value in secret_values:
            assert value not in text, f"a secret value leaked into {where}"


def test_token_auth_refuses_clients_without_the_token(head):
    no_token = head.client_env(RAY_AUTH_MODE="disabled")
    no_token.pop("RAY_AUTH_TOKEN")
    refused = ray_cli(head, "job", "submit", "--address", head.dashboard_url, "--no-wait", "--", "true",
                      env=no_token, timeout=60)
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr or "Unauthorized" in refused.stdout + refused.stderr

    with pytest.raises(urllib.error.HTTPError) as wrong_token:
        head.api("/api/jobs/", token=secrets.token_hex(32))
    assert wrong_token.value.code == 403
    assert isinstance(head.api("/api/jobs/"), list)  # the right token is let in
