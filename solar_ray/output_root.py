"""Guards a driver takes on the directory it writes into, before any stage starts.

- One driver per output root: two drivers on one run directory would share Ray run names, and one's sweep of
  stale temporary directories (`artifacts.atomic_dir`) would delete the other's work in progress. The pipeline
  locks its root, a single-stage run its output's parent; the lock is advisory (`flock`, which NFS/EFS/Filestore
  honour) and names its holder.
- Under `ray job submit --working-dir`, the driver runs in Ray's unpacked copy of the working directory: a
  node-local folder Ray deletes when its cache fills. Outputs there are lost, so the driver says so in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from solar_ray.errors import ArtifactError

LOCK_FILE = ".solar-ray.lock"
# Set by Ray's job supervisor for a submitted job's driver: the job's runtime_env (with its working_dir).
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


@contextlib.contextmanager
def locked(root: str | Path) -> Iterator[Path]:
    """Hold `<root>/.solar-ray.lock` while the block runs; ArtifactError naming the holder if another has it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    handle = path.open("a+")  # not "w": truncating before holding the lock would erase the holder's name
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ArtifactError(
            f"{root}: in use by {holder} (lock {path}); wait for it to finish or write to another directory"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
        yield root
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def in_job_working_dir(paths: Iterable[str | Path], env: dict[str, str] | None = None,
                       cwd: str | Path | None = None) -> list[str]:
    """The local paths among `paths` inside a submitted Ray job's working directory (empty when not a job)."""
    env = os.environ if env is None else env
    try:
        runtime_env = json.loads(env.get(RAY_JOB_ENV) or "{}").get("runtime_env") or {}
    except ValueError:
        return []
    if not runtime_env.get("working_dir"):
        return []
    here = Path(cwd or os.getcwd()).resolve()
    found = []
    for path in paths:
        if "://" in str(path):
            continue  # a URI (s3://, gs://) is shared storage
        resolved = (here / path).resolve()
        if resolved == here or here in resolved.parents:
            found.append(str(path))
    return found


def warn_if_in_job_working_dir(paths: Iterable[str | Path]) -> None:
    found = in_job_working_dir(paths)
    if found:
        print(f"warning: {', '.join(found)} lies in this Ray job's working directory ({os.getcwd()}), a node-local "
              "copy Ray deletes later; give an absolute path on shared storage (e.g. --output /mnt/solar/runs/NAME)",
              file=sys.stderr, flush=True)


def stage_paths(config: Any) -> list[str]:
    """A stage config's output and Ray storage paths (training `run.storage_path`, sweep `storage_path`)."""
    run = getattr(config, "run", None)
    candidates = (getattr(config, "output", None), getattr(config, "storage_path", None),
                  getattr(run, "storage_path", None))
    return [str(p) for p in candidates if isinstance(p, (str, Path))]


@contextlib.contextmanager
def claim(root: str | Path, paths: Iterable[str | Path]) -> Iterator[Path]:
    """What a driver does before writing: warn about paths Ray will delete, then lock `root`."""
    warn_if_in_job_working_dir(paths)
    with locked(root) as held:
        yield held
