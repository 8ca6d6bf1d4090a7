"""solar-ray on a machine where a local Ray is already running (`ray start --head`, recorded in Ray's address file)
joins it, saying so; when the recorded cluster is gone (a stale address file) it starts its own, saying so.

Each test isolates itself from the machine's /tmp/ray: Ray looks for the address file under $RAY_TMPDIR/ray, so
the head writes its address file into its own temp dir and the commands run with RAY_TMPDIR pointing there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from solar_ray.local_head import VENV_BIN, LocalHead, clean_env, free_port

REPO = Path(__file__).resolve().parents[2]


def solar_ray(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "solar-ray"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_a_stage_joins_the_local_cluster_that_ray_start_recorded(tmp_path):
    rows = [{"instruction": f"Name the colour of thing {i}.", "input": "", "output": f"Thing {i} is blue."}
            for i in range(40)]
    (tmp_path / "alpaca.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    # Relative paths, as a user writes them: the head's workers run in the head's directory, not this one.
    (tmp_path / "data.yaml").write_text(
        "stage: data\nkind: sft\nsources:\n  alpaca_gpt4: {path: alpaca.jsonl}\ntest_size: 4\noutput: out/sft_data\n")
    with LocalHead(num_cpus=1, auth=False) as head:
        recorded = (head.temp_dir / "ray_current_cluster").read_text().strip()  # what a plain ray.init() finds
        result = solar_ray("run", "data.yaml", env=head.client_env(RAY_TMPDIR=str(head.root)), cwd=tmp_path)
        tasks = head.task_names()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    assert f"joining the local Ray cluster at {recorded}" in result.stderr
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "out" / "sft_data" / "train.parquet").num_rows == 36
    # The stage's Ray Data tasks ran in the head's workers, not in a private Ray the command started.
    assert any(name.startswith(("ReadText", "ReadJSON", "MapBatches")) for name in tasks), sorted(tasks)


@pytest.mark.slow
def test_a_stale_address_file_starts_a_local_ray():
    # The address file a head that has since died left behind: nothing listens at its port any more.
    # A short temp dir: Ray's unix sockets live under it and must stay under ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="srstale-", dir="/tmp"))
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    script = ("from solar_ray.ray_session import init_ray; import ray; init_ray(num_cpus=1); "
              "print('cpus', ray.cluster_resources()['CPU']); ray.shutdown()")
    try:
        result = subprocess.run([str(VENV_BIN / "python"), "-c", script], env=clean_env(RAY_TMPDIR=str(root)),
                                cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "is gone; starting a local Ray" in result.stderr
    assert "cpus 1.0" in result.stdout  # our own Ray, sized as asked (a joined one ignores num_cpus)
