"""Ray Data's two parquet readers side by side: V1, which solar-ray sets (solar_ray.ray_session.configure_ray_data),
against DataSourceV2, Ray 2.60's default, on the reads a data stage makes.

    .venv/bin/python bench/bench_parquet_reader.py [--files 4] [--rows 100] [--repeat 2]

Each measurement runs in a process of its own with a fresh local Ray (RAY_ADDRESS=local), the reader chosen by
RAY_DATA_USE_DATASOURCE_V2; Ray's start and one warm-up read of another file are not timed. Timed, each mapped
batch by batch and materialised as a data stage does: one file; the union of one read per file (a data stage
unions its sources; the FLAN lookup its four sub-mixtures); one read of all the files. Both readers must give the
same row count. The table shows the median of `--repeat` runs in seconds, and V2 / V1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("one file", "union of one read per file", "one read of every file")


def write_files(root: Path, files: int, rows: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for number in range(files + 1):  # the last one is the warm-up's
        path = root / f"part-{number}.parquet"
        ids = range(number * rows, (number + 1) * rows)
        pq.write_table(pa.table({"id": [f"flan.{i}" for i in ids],
                                 "question": [f"Question {i}: what follows {i}?" for i in ids],
                                 "response": [f"{i + 1}, because counting goes up by one." for i in ids]}), path)
        paths.append(str(path))
    return paths


def measure_here(paths: list[str]) -> None:
    """In this process: prints `case seconds rows` for each case."""
    import ray
    import ray.data

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    *files, warm_up = paths

    def identity(batch):
        return batch

    def timed(make) -> tuple[float, int]:
        started = time.perf_counter()
        rows = make().map_batches(identity, batch_format="pyarrow").materialize().count()
        return time.perf_counter() - started, rows

    timed(lambda: ray.data.read_parquet(warm_up))
    reads = {CASES[0]: lambda: ray.data.read_parquet(files[0]),
             CASES[1]: lambda: (lambda d: d[0].union(*d[1:]))([ray.data.read_parquet(f) for f in files]),
             CASES[2]: lambda: ray.data.read_parquet(files)}
    for case, make in reads.items():
        seconds, rows = timed(make)
        print(f"{case}\t{seconds}\t{rows}", flush=True)


def measure(paths: list[str], v2: bool) -> dict[str, tuple[float, int]]:
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_DATA_USE_DATASOURCE_V2": "1" if v2 else "0"}
    out = subprocess.run([sys.executable, __file__, "--child", *paths], env=env, capture_output=True, text=True,
                         check=True).stdout
    return {case: (float(seconds), int(rows)) for case, seconds, rows in
            (line.split("\t") for line in out.splitlines() if line.count("\t") == 2)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        measure_here(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100, help="rows per file")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files, args.rows)
        runs = {"V1": [], "V2": []}
        for _ in range(args.repeat):  # interleaved, so a busy spell of the machine hits both
            for name in runs:
                runs[name].append(measure(paths, v2=name == "V2"))
    print(f"{args.files} parquet files of {args.rows} rows; median of {args.repeat} runs, seconds\n")
    print("| read | rows | V1 | V2 | V2 / V1 |\n|---|---|---|---|---|")
    for case in CASES:
        v1, v2 = ([run[case][0] for run in runs[name]] for name in ("V1", "V2"))
        rows = {run[case][1] for name in runs for run in runs[name]}
        assert len(rows) == 1, f"{case}: the readers gave different row counts {rows}"
        print(f"| {case} | {rows.pop()} | {statistics.median(v1):.1f} | {statistics.median(v2):.1f} | "
              f"{statistics.median(v2) / statistics.median(v1):.1f}x |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
