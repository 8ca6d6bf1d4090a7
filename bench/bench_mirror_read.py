"""Reading a hub dataset from a local mirror (SOLAR_RAY_HUB_MIRROR, the rehearsal's hub): Ray's own readers over
the split's files against streaming them through `datasets` in a Ray read task, as solar-ray did before.

    .venv/bin/python bench/bench_mirror_read.py [--rows 400 50000] [--files 2] [--repeat 2]

A mirror of OpenOrca-shaped rows (id, system prompt, question, response) in the hub's layout (`default/train-*`
parquet files and a README naming the config) is read by `solar_ray.data.load.load_source` both ways, every
row adapted to the processed schema as a data stage does, and materialised. Both must give the same row count.
Each read runs in a process of its own with a fresh local Ray, as a data stage meets its first source (its
workers still to start, `datasets` still to import in them); Ray's start is not timed. The table shows the
median of `--repeat` reads. The 400-row size is a rehearsal source's. The load average is printed at the end.
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
from unittest import mock


def write_mirror(root: Path, rows: int, files: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "datasets" / "Open-Orca" / "OpenOrca"
    (repo / "default").mkdir(parents=True)
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                    "    path: default/train-*\n---\n")
    per_file = -(-rows // files)
    for number in range(files):
        ids = range(number * per_file, min(rows, (number + 1) * per_file))
        pq.write_table(pa.table({
            "id": [f"flan.{i}" for i in ids],
            "system_prompt": ["You are an AI assistant."] * len(ids),
            "question": [f"Question {i}: what follows {i}, in a few words of explanation?" for i in ids],
            "response": [f"{i + 1}, because counting goes up by one each time." for i in ids],
        }), repo / "default" / f"train-{number:05d}-of-{files:05d}.parquet")


def read_once(stream: bool) -> None:
    """In this process: start Ray, then time one read of the mirror's OpenOrca; prints `seconds rows`."""
    from solar_ray.data import load
    from solar_ray.data.registry import get_spec
    from solar_ray.ray_session import init_ray

    init_ray()
    started = time.perf_counter()
    with mock.patch.object(load, "local_split_files", return_value=None) if stream else mock.MagicMock():
        rows = load.load_source("open_orca", get_spec("open_orca")).materialize().count()
    print(f"{time.perf_counter() - started} {rows}")


def timed_read(mirror: str, stream: bool) -> tuple[float, int]:
    env = {**os.environ, "SOLAR_RAY_HUB_MIRROR": mirror, "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": "local"}
    result = subprocess.run([sys.executable, __file__, "--one", "stream" if stream else "files"], env=env,
                            capture_output=True, text=True, check=True)
    seconds, rows = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[400, 50_000])
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--one", choices=["stream", "files"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        read_once(args.one == "stream")
        return

    print(f"{'rows':>7} {'files':>5} {'way':<28} {'seconds':>8} {'rows/s':>9} {'speed-up':>8}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as mirror:
            write_mirror(Path(mirror), rows, args.files)
            medians = {}
            for stream in (True, False):
                runs = [timed_read(mirror, stream) for _ in range(args.repeat)]
                assert {count for _, count in runs} == {rows}, runs
                medians[stream] = statistics.median(seconds for seconds, _ in runs)
            for stream, way in ((True, "streamed through datasets"), (False, "Ray's reader on the files")):
                print(f"{rows:>7} {args.files:>5} {way:<28} {medians[stream]:>8.2f} {rows / medians[stream]:>9.0f} "
                      f"{medians[True] / medians[stream]:>7.1f}x")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
