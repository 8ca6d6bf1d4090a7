"""Cluster round trip on this machine: a private Ray head on loopback (token auth on), then `ray job submit`
with the project's runtime_env. Run by hand from the repository root:

    .venv/bin/python bench/bench_cluster.py [--jobs 3]

Prints a table: head start until the job API answers; the first job (uploads the working dir, sets up the
runtime env) and warm jobs (package cached) from submit to SUCCEEDED, for an entrypoint that only imports
solar_ray. What a user waits for before a stage's own work starts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from solar_ray.local_head import VENV_BIN, LocalHead

REPO = Path(__file__).resolve().parents[1]


def submit_and_wait(head: LocalHead) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [str(VENV_BIN / "ray"), "job", "submit", "--address", head.dashboard_url, "--working-dir", ".",
         "--runtime-env", "cluster/runtime_env.yaml", "--", "python", "-c", "import solar_ray.cli"],
        env=head.client_env(), cwd=REPO, capture_output=True, text=True, check=False,
    )  # without --no-wait, `ray job submit` follows the job and returns when it ends
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or "succeeded" not in result.stdout:
        raise SystemExit(f"job failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="warm jobs to time after the first")
    args = parser.parse_args()
    start = time.perf_counter()
    with LocalHead(num_cpus=1) as head:
        ready = time.perf_counter() - start
        first = submit_and_wait(head)
        warm = [submit_and_wait(head) for _ in range(args.jobs)]
    stopped = time.perf_counter() - start - ready - first - sum(warm)
    rows = [
        ("ray start --head until the job API answers", ready),
        ("first job: upload + runtime env + run", first),
        (f"warm job, median of {len(warm)}", statistics.median(warm)),
        ("stop the head", stopped),
    ]
    print(f"{'step':<48} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:<48} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
