"""Where a pipeline's output goes: each stage's log file, the driver's log file, and the console.

While an `OutputCapture` is active (a pipeline run without --verbose):
- `<logs>/<stage>.log` gets what a stage prints: in the driver, writes to sys.stdout / sys.stderr and Python
  logging from the stage's thread and the threads it starts (Ray Data's executor, Train's poller); in Ray, the
  stdout / stderr of every worker process its tasks and actors run in (Ray Train workers and their controller,
  Ray Data tasks, eval actors), and of the tasks those start in turn.
- `<logs>/driver.log` gets the rest: Ray's own messages, output from C extensions (file descriptors 1 and 2),
  library warnings outside a stage, and worker output Ray forwards to the driver.
- the console gets only the reporter's lines, through a copy of the terminal's file descriptor taken before
  1 and 2 were pointed at driver.log.

The logs directory is made only when the run starts (`open_logs`, once the pipeline's checks have passed): a run
refused before then (an input missing, a stage that cannot fit the cluster) leaves no logs behind. Until then what
the driver prints (Ray starting up) waits in a temporary file, which `open_logs` moves to the start of driver.log.

Why hand-written: Ray has no per-task log destination. Its workers write to the session's worker-*.out/err
files, which name a process, not the stage that started it (stages run side by side in driver threads). So a
task or actor submitted from a stage's thread carries the stage's log path in its runtime_env's env_vars
(which Ray merges into the job's, and which the tasks it starts inherit), and a worker process setup hook
points the worker's file descriptors 1 and 2 at that file when the process starts. Both go through Ray's
private internals, patched in solar_ray.patches.ray_worker_env. Runtime envs that differ per stage also keep
Ray from reusing one stage's worker processes for another's tasks.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solar_ray.patches.ray_worker_env import add_env_vars_to_submissions, run_job_setup_hook, setup_hook_env

STAGE_LOG_ENV = "SOLAR_RAY_STAGE_LOG"  # in a worker's environment: the stage log file to write into
STAGE_THREAD_PREFIX = "stage-"  # Pipeline.run names each stage's thread stage-<name>
DRIVER_LOG = "driver.log"
RAY_DATA_PROGRESS_LOGGER = "ray.data._internal.progress.logging_progress"
RAY_DATA_PROGRESS_TAG = "ray.data progress:"

_active: OutputCapture | None = None


def current_stage() -> str | None:
    """The stage whose thread (or a thread started from it) is running, while a capture knows that stage."""
    if _active is None:
        return None
    thread = threading.current_thread()
    stage = getattr(thread, "_solar_ray_stage", None)
    if stage is None and thread.name.startswith(STAGE_THREAD_PREFIX):
        stage = thread.name[len(STAGE_THREAD_PREFIX):]
    return stage if stage in _active.stages else None


class StageRouter:
    """Stands in for sys.stdout / sys.stderr: a stage thread's writes go to the stage's log, others to `fallback`."""

    def __init__(self, capture: OutputCapture, fallback: Any):
        self.capture, self.fallback = capture, fallback

    def write(self, text: str) -> int:
        stage = current_stage()
        target = self.capture.stage_file(stage) if stage else self.fallback
        target.write(text)
        if stage:
            target.flush()
        return len(text)

    def flush(self) -> None:
        self.fallback.flush()

    def isatty(self) -> bool:  # progress bars (tqdm, Ray Data) then print plain lines, no redraws
        return False

    def fileno(self) -> int:
        return self.fallback.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


class OutputCapture:
    """Redirects the driver's output into log files under `logs`; `console` writes to the real terminal."""

    def __init__(self, logs: Path, stages: list[str]):
        self.logs, self.stages = Path(logs), set(stages)
        self.files: dict[str, Any] = {}
        self.pending: str | None = None  # the temporary file fds 1 and 2 point at until `open_logs`
        self.lock = threading.Lock()

    def log_path(self, stage: str | None) -> Path:
        return self.logs / (f"{stage}.log" if stage else DRIVER_LOG)

    def stage_file(self, stage: str) -> Any:
        with self.lock:
            if stage not in self.files:
                self.files[stage] = self.log_path(stage).open("a", buffering=1, errors="replace")
            return self.files[stage]

    def start(self) -> Any:
        """Point fds 1 and 2 at a temporary file (driver.log once `open_logs` runs) and sys.stdout / sys.stderr at
        the router; returns the console stream."""
        global _active
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved_fds = os.dup(1), os.dup(2)
        self.console = os.fdopen(os.dup(self.saved_fds[1]), "w", buffering=1, errors="replace")
        pending, self.pending = tempfile.mkstemp(prefix="solar-ray-driver-", suffix=".log")
        _point_output_at(pending)
        self.saved_streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = StageRouter(self, sys.__stdout__), StageRouter(self, sys.__stderr__)
        # Loggers that hold the old streams (Ray's, set up at import) go through the router too.
        self.handlers = [h for h in _stream_handlers() if h.stream in self.saved_streams]
        for handler in self.handlers:
            handler.stream = sys.stderr if handler.stream is self.saved_streams[1] else sys.stdout
        # Ray Data's progress off a terminal: log lines, which its console handler hides; into the stage logs, every
        # 2 s, with a time stamp (the console's rows/s).
        os.environ.setdefault("RAY_DATA_NON_TTY_PROGRESS_LOG_INTERVAL", "2")
        self.progress_logger = logging.getLogger(RAY_DATA_PROGRESS_LOGGER)
        self.progress_handler = logging.StreamHandler(sys.stderr)
        self.progress_handler.setFormatter(logging.Formatter(f"%(created).1f {RAY_DATA_PROGRESS_TAG} %(message)s"))
        self.progress_level = self.progress_logger.level
        self.progress_logger.setLevel(logging.INFO)
        self.progress_logger.addHandler(self.progress_handler)
        _patch_thread_start()
        add_env_vars_to_submissions(_submission_env_vars)
        _active = self
        return self.console

    def stop(self) -> None:
        global _active
        _active = None
        self.progress_logger.removeHandler(self.progress_handler)
        self.progress_logger.setLevel(self.progress_level)
        for handler in self.handlers:
            handler.stream = self.saved_streams[1] if handler.stream is sys.stderr else self.saved_streams[0]
        sys.stdout, sys.stderr = self.saved_streams
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        with self.lock:
            for handle in self.files.values():
                handle.close()
            self.files.clear()
        self.console.close()
        if self.pending is not None:  # the run never started: what Ray printed meanwhile goes with it
            os.unlink(self.pending)
            self.pending = None

    def open_logs(self) -> None:
        """The run starts: make the logs directory, move what the driver printed so far into driver.log, and point
        fds 1 and 2 at driver.log from now on."""
        if self.pending is None:
            return
        self.logs.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()  # the router's fallbacks: sys.__stdout__ / __stderr__, buffered over fds 1 and 2
        sys.stderr.flush()
        with open(self.pending, "rb") as source, self.log_path(None).open("ab") as driver:
            shutil.copyfileobj(source, driver)
        _point_output_at(os.open(self.log_path(None), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        os.unlink(self.pending)
        self.pending = None

    def runtime_env_vars(self, stage: str) -> dict[str, str]:
        """What a task submitted from `stage` adds to its runtime_env's env_vars (Ray Data submits many)."""
        return {STAGE_LOG_ENV: str(self.log_path(stage)), **self.worker_hook_env}

    @functools.cached_property
    def worker_hook_env(self) -> dict[str, str]:
        """Ray's worker setup hook pointed at redirect_worker_output (read once Ray runs: the job's own hook then
        moves aside, and redirect_worker_output runs it last)."""
        return setup_hook_env(f"{__name__}.redirect_worker_output")


@contextlib.contextmanager
def capture_output(logs: Path, stages: list[str]) -> Iterator[Any]:
    capture = OutputCapture(logs, stages)
    console = capture.start()
    capture.open_logs()
    try:
        yield capture
    finally:
        capture.stop()
    del console


def redirect_worker_output() -> None:
    """Worker process setup hook: fds 1 and 2 into the stage's log file (when this node can see it), then the
    job's own setup hook, which this one replaced in the worker's environment."""
    path = os.environ.get(STAGE_LOG_ENV)
    if path and os.path.isdir(os.path.dirname(path)):
        sys.stdout.flush()
        sys.stderr.flush()
        _point_output_at(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    run_job_setup_hook()


def _point_output_at(fd: int) -> None:
    """fds 1 and 2 (C extensions, Ray's own output, sys.__stdout__ / __stderr__) into the file open at `fd`."""
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# ------------------------------------------------------------------------- threads, handlers, submissions


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    return [h for lg in loggers for h in getattr(lg, "handlers", [])
            if type(h) is logging.StreamHandler or (isinstance(h, logging.StreamHandler)
                                                    and not isinstance(h, logging.FileHandler))]


def _patch_thread_start() -> None:
    """A thread started by a stage's thread belongs to the stage (Ray Data runs its executor in one)."""
    if getattr(threading.Thread.start, "_solar_ray", False):
        return
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if not hasattr(self, "_solar_ray_stage"):
            self._solar_ray_stage = current_stage()
        original(self)

    start._solar_ray = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


def _submission_env_vars() -> dict[str, str] | None:
    """What a task or actor submitted now adds to its env_vars: its stage's log and worker hook, if any."""
    stage = current_stage()
    return _active.runtime_env_vars(stage) if stage and _active is not None else None
