"""Output-root guards: one driver per run directory (a lock naming its holder), and a warning for outputs that
would land in a submitted Ray job's working directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from solar_ray.errors import ArtifactError
from solar_ray.output_root import in_job_working_dir, locked, stage_paths

REPO = Path(__file__).resolve().parents[1]


def hold_lock(root: Path) -> subprocess.Popen:
    """Another driver: a process that takes the lock on `root` and keeps it until its stdin closes."""
    script = textwrap.dedent(f"""
        import sys
        from solar_ray.output_root import locked
        with locked({str(root)!r}):
            print("held", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_driver_is_refused_naming_the_holder_until_it_ends(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(ArtifactError, match=rf"in use by pid {holder.pid} on {socket.gethostname()} "), \
                locked(tmp_path / "run"):
            pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with locked(tmp_path / "run"):  # released when the holder ends
        pass


def test_cli_run_on_a_held_root_is_one_line_and_writes_nothing(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"stage: tiny\noutput: {tmp_path / 'run' / 'world'}\n")
    holder = hold_lock(tmp_path / "run")
    try:
        result = subprocess.run([sys.executable, "-c", "from solar_ray.cli import main; main()", "run", str(config)],
                                capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'run'}: in use by pid {holder.pid} on {socket.gethostname()} "
        f"(lock {tmp_path / 'run' / '.solar-ray.lock'}); wait for it to finish or write to another directory"]
    assert not (tmp_path / "run" / "world").exists()


def job_env(working_dir: str | None) -> dict[str, str]:
    runtime_env = {"working_dir": working_dir} if working_dir else {}
    return {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": runtime_env, "metadata": {}})}


def test_paths_in_a_submitted_jobs_working_dir_are_found(tmp_path):
    job_dir = tmp_path / "session" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    paths = ["runs/tiny", str(job_dir / "runs" / "ray"), "/mnt/solar/runs/x", "s3://bucket/ray", str(job_dir)]
    found = in_job_working_dir(paths, env=job_env("gcs://_ray_pkg_abc.zip"), cwd=job_dir)
    assert found == ["runs/tiny", str(job_dir / "runs" / "ray"), str(job_dir)]
    assert in_job_working_dir(paths, env={}, cwd=job_dir) == []  # not a submitted job
    assert in_job_working_dir(paths, env=job_env(None), cwd=job_dir) == []  # a job without a working_dir


def test_stage_paths_read_output_and_ray_storage():
    from solar_ray.train import sft

    config = sft.Config(model="m", dataset="d", output="runs/x/sft", run={"storage_path": "runs/ray"})
    assert stage_paths(config) == [str(config.output), str(config.run.storage_path)]


def test_driver_in_a_job_working_dir_warns_in_one_line(tmp_path, monkeypatch, capsys):
    from solar_ray.output_root import claim

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", job_env("gcs://_ray_pkg_abc.zip")["RAY_JOB_CONFIG_JSON_ENV_VAR"])
    with claim("runs/tiny", ["runs/tiny", "s3://bucket/ray"]):
        pass
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: runs/tiny lies in this Ray job's working directory ({tmp_path})")
