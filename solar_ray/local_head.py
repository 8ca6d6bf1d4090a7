"""A real, private Ray head on loopback for tests and benches: `ray start --head --block` as a child process we
own (tests/cluster, bench/bench_cluster.py).

Other Ray instances share this machine (the test suite's own Ray, other people's clusters), so this head never
touches them: every port is picked free here, the temp dir is its own, and it is stopped by signalling only the
process group we started (plain `ray stop` would kill every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent  # the project's .venv/bin: holds `ray` and `solar-ray`


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for `ray` CLI calls: no inherited RAY_ADDRESS / auth settings, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra)
    return env


class LocalHead:
    """Start with `with LocalHead(env={...}) as head:`; `head.dashboard_url` is what `ray job submit` needs.

    Token authentication is on (RAY_AUTH_MODE=token) with a fresh random token, like the cloud configs;
    `head.client_env()` is the environment a client needs to talk to it. `env` adds variables to the head's
    environment, which every job on it inherits (the way the cloud configs hand secrets to nodes).
    """

    def __init__(self, num_cpus: int = 1, env: dict[str, str] | None = None, start_timeout_s: float = 90,
                 auth: bool = True):
        self.num_cpus = num_cpus
        self.extra_env = env or {}
        self.start_timeout_s = start_timeout_s
        # auth=False: a plain `ray start --head`, as people start one to watch the dashboard (Ray 2.60 then uses
        # its default token, ~/.ray/auth_token, which a local `ray.init()` finds too).
        self.auth = auth
        self.auth_token = secrets.token_hex(32)
        # Short path: Ray's unix sockets live under the temp dir and must stay under ~107 characters.
        # The head's temp dir is ROOT/ray, where a client with RAY_TMPDIR=ROOT looks for the address file
        # `ray start` writes (ROOT/ray/ray_current_cluster): `client_env(RAY_TMPDIR=str(head.root))` makes a
        # plain `ray.init()` find this head, and nobody else's machine-wide /tmp/ray is touched.
        self.root = Path(tempfile.mkdtemp(prefix="srhead-", dir="/tmp"))
        self.temp_dir = self.root / "ray"
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.process: subprocess.Popen | None = None
        self.log_path = self.temp_dir / "ray_start.log"

    def client_env(self, **extra: str) -> dict[str, str]:
        if not self.auth:
            return clean_env(**extra)
        return clean_env(**{"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.auth_token, **extra})

    def api(self, path: str, token: str | None = None) -> dict:
        """GET a dashboard REST endpoint as an authenticated client (urllib raises HTTPError on 401/403)."""
        if token is None and not self.auth:  # Ray's default: the token it saved for this user's local clusters
            default_token = Path.home() / ".ray" / "auth_token"
            token = default_token.read_text().strip() if default_token.is_file() else ""
        request = urllib.request.Request(
            f"{self.dashboard_url}{path}", headers={"Authorization": f"Bearer {token or self.auth_token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def head_env(self) -> dict[str, str]:
        return self.client_env(**self.extra_env)

    def command(self) -> list[str]:
        ports = {  # every listening port chosen free, so two heads (or the suite's Ray) never collide
            "--port": self.gcs_port,
            "--dashboard-port": self.dashboard_port,
            "--ray-client-server-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
        }
        # A per-process block of worker ports, below Linux's ephemeral range (32768-60999), where free_port() picks
        # the ports above: blocks up to 60,000 sometimes took one of them and `ray start` refused to start.
        worker_base = 10000 + (os.getpid() % 110) * 200
        return [
            str(VENV_BIN / "ray"), "start", "--head", "--block",
            "--node-ip-address", "127.0.0.1",
            "--dashboard-host", "127.0.0.1",
            "--include-dashboard", "true",
            "--num-cpus", str(self.num_cpus), "--num-gpus", "0",
            "--object-store-memory", str(200 * 1024**2),  # 200 MiB: the tiny jobs move kilobytes
            "--temp-dir", str(self.temp_dir),
            "--min-worker-port", str(worker_base), "--max-worker-port", str(worker_base + 199),
            "--disable-usage-stats",
            *[str(x) for pair in ports.items() for x in pair],
        ]

    def __enter__(self) -> LocalHead:
        self.temp_dir.mkdir()
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command(), env=self.head_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals exactly this head and its children
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                self.api("/api/jobs/")  # the job API answers: the head is ready for `ray job submit`
                # ...and `ray start` has finished: its last step records the address a plain ray.init() joins.
                if (self.temp_dir / "ray_current_cluster").is_file():
                    return
                time.sleep(0.5)
            except (OSError, ValueError):
                time.sleep(1)
        raise TimeoutError(f"Ray head not ready after {self.start_timeout_s}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """SIGTERM our process group, then SIGKILL what is left, including strays that name our temp dir."""
        if self.process is not None and self.process.poll() is None:
            with _suppress_lookup():
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                # ray start --block shuts its children down on SIGTERM; a few seconds is plenty for a test head,
                # and anything slower is killed (its children fate-share with it, the strays are swept below).
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Ray workers and job drivers may sit in other process groups; they all carry our unique temp dir
        # (or session dir under it) on their command line, and nobody else's processes do.
        for pid in _pids_mentioning(str(self.temp_dir)):
            with _suppress_lookup():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def task_names(self) -> set[str]:
        """Names of the tasks this head's workers ran (Ray prints `:task_name:<name>` into worker logs)."""
        names = set()
        for log in (self.temp_dir / "session_latest" / "logs").glob("worker-*"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith(":task_name:"):
                    names.add(line.removeprefix(":task_name:"))
        return names


class _suppress_lookup:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, ProcessLookupError)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(proc.name))
    return pids
