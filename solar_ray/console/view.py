"""The pipeline's console: what `Pipeline.run` reports per stage event, shown live on a terminal or as lines.

On a terminal (rich.live): a table of the running stages (state, elapsed time, key figure) and the waiting
ones, redrawn twice a second; a stage that finishes collapses into one line above the table. Off a terminal (CI,
`ray job logs`, a pipe), plain lines without escape sequences:
- one line when a stage ends (done, failed or cached): `[k/N] name (kind): done in S s (total T s); figure`,
  k counting the stages ended so far;
- none when a stage starts; a stage still running after HEARTBEAT_S seconds, and after each HEARTBEAT_S more,
  gets one line with its key figure (`base (pretrain): running for 120 s, step 300, loss 2.310`), so CI is
  never silent for long;
- at the end: the report's path, the final model's H6, the findings counted per verdict (and the first reproduced
  ones by name), and a summary line.
Either way a failed stage shows its error, the last lines of its log and the log's path. Every event is also
appended to `<run>/logs/events.jsonl`, which `solar-ray status` reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from solar_ray.console.progress import LOGS_DIR, final_figure, headline, key_figure, log_tail, write_event

TAIL_LINES = 12  # of a failed stage's log, on the console
MESSAGE_CHARS = 240  # of a failed stage's error, on the console
# Off a terminal, a running stage's line every 120 s. The main job's 40 stages, at the times of a run on a loaded
# 2-core machine (1,269 s of pipeline; base 186 s, the three continued pretrainings 151-155 s, 21 stages over 60 s)
# get 6 such lines at 120 s, 24 at 60 s: 40 stage lines + 6 keep the console near 50 lines.
HEARTBEAT_S = 120.0
_session: ConsoleSession | None = None


class StageReporter:
    """The events of one pipeline run. `live` draws the rich view (a terminal only); else plain lines, and a
    running stage's line every `heartbeat` seconds (from a timer thread that ends when no stage runs, or at
    `close`). `logs`: the stages write logs (the console captures output), so their key figures can be read."""

    def __init__(self, pipe: Any, selected: list[str], stream: TextIO, live: bool = False, logs: bool = False,
                 heartbeat: float = HEARTBEAT_S):
        self.pipe, self.selected, self.stream, self.logs = pipe, list(selected), stream, logs
        self.kinds = {name: pipe.configs[name].stage for name in pipe.order}
        self.state: dict[str, dict[str, Any]] = {name: {"state": "waiting"} for name in self.selected}
        self.ended, self.started = 0, time.monotonic()
        self.heartbeat, self.beats, self.closing = heartbeat, None, threading.Event()
        self.lock = threading.RLock()  # the heartbeat thread's lines and the pipeline's, one at a time
        self.live = None
        from rich.console import Console

        self.console = Console(file=stream, force_terminal=live or None, no_color=not live and None,
                               highlight=False, soft_wrap=not live)
        if live:
            from rich.live import Live

            self.live = Live(get_renderable=self._table, console=self.console, refresh_per_second=2,
                             transient=True, redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        write_event(pipe.root, event="start", experiment=pipe.experiment.name, stages=self.selected,
                    kinds={n: self.kinds[n] for n in self.selected}, pid=os.getpid(), host=socket.gethostname())

    # ------------------------------------------------------------------------------------ the events

    def cached(self, name: str, same_as: str | None = None) -> None:
        """The stage's artifact is current, or (`same_as`) a twin stage's artifact was reused for it."""
        what = f"same config and inputs as {same_as}: its artifact reused" if same_as else "cached"
        self.state[name] = {"state": "cached"}
        write_event(self.pipe.root, event="cached", stage=name, **({"same_as": same_as} if same_as else {}))
        self._line(f"{self._ended(name)}: {what}", f"[dim]· {name} ({self.kinds[name]}): {_escape(what)}[/dim]")

    def running(self, name: str) -> None:
        since = time.monotonic()
        write_event(self.pipe.root, event="running", stage=name)
        with self.lock:
            self.state[name] = {"state": "running", "since": since, "beat": since + self.heartbeat}
            if self.live is None and self.beats is None and self.heartbeat > 0:
                self.beats = threading.Thread(target=self._beat, name="console-heartbeat", daemon=True)
                self.beats.start()

    def done(self, name: str, seconds: float) -> None:
        figure = final_figure(self.pipe.root, name, self.kinds[name], seconds) if self.logs else ""
        self.state[name] = {"state": "done", "seconds": seconds, "figure": figure}
        write_event(self.pipe.root, event="done", stage=name, seconds=round(seconds, 1), figure=figure)
        total = time.monotonic() - self.started
        extra = f"; {figure}" if figure else ""
        self._line(f"{self._ended(name)}: done in {seconds:.0f} s (total {total:.0f} s){extra}",
                   f"[green]✓[/green] {name} ({self.kinds[name]}): done in {seconds:.0f} s{extra}")

    def failed(self, name: str, error: BaseException, seconds: float, waiting: bool = False) -> None:
        message = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
        if len(message) > MESSAGE_CHARS:  # Ray's errors run to a paragraph on one line; the log has all of it
            message = message[:MESSAGE_CHARS] + " ..."
        if self.logs:  # the CLI then ends with this line instead of a traceback the console has summed up
            with contextlib.suppress(AttributeError):
                error.solar_ray_reported = f"stage '{name}' failed: {message} (log: {self.log(name)})"
        self.state[name] = {"state": "failed", "seconds": seconds}
        write_event(self.pipe.root, event="failed", stage=name, seconds=round(seconds, 1), error=message)
        wait = ", waiting for running stages" if waiting else ""
        lines = [f"failed after {seconds:.0f} s{wait}: {message}"]
        if self.logs:
            tail = log_tail(self.log(name), TAIL_LINES)
            if tail:
                lines += [f"  last lines of {self.log(name)}:"] + [f"  | {line}" for line in tail]
            lines.append(f"  log: {self.log(name)}")
        self._line(f"{self._ended(name)}: " + "\n".join(lines),
                   f"[red]✗[/red] {_escape(name)}: " + "\n".join(_escape(line) for line in lines))

    def note(self, text: str) -> None:
        """A line of the pipeline's own that is no stage event (e.g. a warning about the plan)."""
        self._line(text, _escape(text))

    def report(self, path: Path) -> None:
        lines = [f"report: {Path(path) / 'report.md'} (and report.html)"] + headline(self.pipe, Path(path))
        self._line("\n".join(lines), "\n".join(_escape(line) for line in lines))

    def close(self, error: BaseException | None = None) -> None:
        self.closing.set()
        with self.lock:
            beats = self.beats
        if beats is not None and beats is not threading.current_thread():
            beats.join()
        if self.live is not None:
            self.live.stop()
            self.live = None
        counts: dict[str, int] = {}
        for entry in self.state.values():
            state = {"waiting": "not started"}.get(entry["state"], entry["state"])  # after a failure
            counts[state] = counts.get(state, 0) + 1
        write_event(self.pipe.root, event="end", ok=error is None, seconds=round(time.monotonic() - self.started, 1))
        if self.logs:
            summary = ", ".join(f"{n} {s}" for s, n in counts.items())
            self.console.print(f"{self.pipe.experiment.name}: {summary} in {time.monotonic() - self.started:.0f} s;"
                               f" logs in {self.pipe.root / LOGS_DIR}", markup=False, highlight=False, soft_wrap=True)

    # ------------------------------------------------------------------------------------ rendering

    def log(self, name: str) -> Path:
        return self.pipe.root / LOGS_DIR / f"{name}.log"

    def _ended(self, name: str) -> str:
        """The label of a stage's last line: how many stages have ended (this one included) of how many."""
        with self.lock:
            self.ended += 1
            return f"[{self.ended}/{len(self.selected)}] {name} ({self.kinds[name]})"

    def _beat(self) -> None:
        """Every second or so (faster for a short `heartbeat`), a line for each stage whose next heartbeat is due;
        ends when no stage runs (the next `running` starts another) or at `close`."""
        while not self.closing.wait(min(1.0, self.heartbeat / 4)):
            with self.lock:  # held from the check to the line: no heartbeat follows its stage's last line
                now = time.monotonic()
                running = {n: e for n, e in self.state.items() if e["state"] == "running"}
                if not running:
                    self.beats = None
                    return
                for name, entry in running.items():
                    if now >= entry["beat"]:
                        while entry["beat"] <= now:  # one line, even when a stall let several come due
                            entry["beat"] += self.heartbeat
                        figure = key_figure(self.kinds[name], self.log(name)) if self.logs else ""
                        self._line(f"{name} ({self.kinds[name]}): running for {now - entry['since']:.0f} s"
                                   + (f", {figure}" if figure else ""), "")

    def _line(self, plain: str, markup: str) -> None:
        with self.lock:
            if self.live is None:
                self.console.print(plain, markup=False, highlight=False)
            elif markup:
                self.console.print(markup, soft_wrap=True)  # a log path stays whole, to copy

    def _table(self) -> Any:
        from rich.table import Table

        now = time.monotonic()
        states = [entry["state"] for entry in self.state.values()]
        finished = sum(s in ("done", "cached") for s in states)
        table = Table(title=f"{self.pipe.experiment.name}: {finished}/{len(self.selected)} stages done, "
                            f"{now - self.started:.0f} s", title_justify="left", expand=False)
        for column in ("stage", "kind", "state", "elapsed", "progress"):
            table.add_column(column, no_wrap=True)
        for name, entry in self.state.items():
            if entry["state"] == "running":
                figure = key_figure(self.kinds[name], self.log(name)) if self.logs else ""
                table.add_row(name, self.kinds[name], "[yellow]running[/yellow]",
                              f"{now - entry['since']:.0f} s", _escape(figure))
        waiting = [name for name, entry in self.state.items() if entry["state"] == "waiting"]
        if waiting:
            shown = ", ".join(waiting[:4]) + (", ..." if len(waiting) > 4 else "")
            table.add_row(f"{len(waiting)} waiting", "", "[dim]waiting[/dim]", "", f"[dim]{shown}[/dim]")
        return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class ConsoleSession:
    """One pipeline run's console: output capture (unless verbose) and the reporter Pipeline.run asks for."""

    def __init__(self, root: Path, stream: TextIO, live: bool, capture: Any, heartbeat: float = HEARTBEAT_S):
        self.root, self.stream, self.live, self.capture, self.heartbeat = root, stream, live, capture, heartbeat
        self.reporter: StageReporter | None = None

    def reporter_for(self, pipe: Any, selected: list[str]) -> StageReporter:
        """The run starts (its checks passed): the logs directory is made now, not before."""
        if self.capture is not None:
            self.capture.open_logs()
        self.reporter = StageReporter(pipe, selected, self.stream, live=self.live, logs=self.capture is not None,
                                      heartbeat=self.heartbeat)
        return self.reporter


@contextlib.contextmanager
def pipeline_console(pipe: Any, verbose: bool = False, heartbeat: float = HEARTBEAT_S) -> Iterator[ConsoleSession]:
    """The console of one `solar-ray pipeline` run: everything but the stage events goes to `<run>/logs/`
    (unless `verbose`, which streams everything as it comes, with plain event lines). `<run>/logs/` is made when
    the run starts: a run the pipeline refuses first leaves none. `heartbeat`: seconds between a running stage's
    lines off a terminal."""
    global _session
    from solar_ray.console.capture import OutputCapture

    terminal = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    capture = None if verbose else OutputCapture(pipe.root / LOGS_DIR, pipe.order)
    stream = capture.start() if capture else sys.stderr
    _session = ConsoleSession(pipe.root, stream, live=terminal and not verbose, capture=capture, heartbeat=heartbeat)
    error: BaseException | None = None
    try:
        yield _session
    except BaseException as exc:
        error = exc
        raise
    finally:
        if _session.reporter is not None:
            _session.reporter.close(error)
        _session = None
        if capture:
            capture.stop()


def stage_reporter(pipe: Any, selected: list[str]) -> StageReporter:
    """The reporter for `Pipeline.run`, asked for when the run starts: the open console's, or plain lines on
    stderr (a library call, a test)."""
    if _session is not None and _session.root == pipe.root:
        return _session.reporter_for(pipe, selected)
    return StageReporter(pipe, selected, sys.stderr)


def console_note(pipe: Any, text: str) -> None:
    """A line of the pipeline's own before its run starts (the Ray cluster it joined): on the open console, else
    stderr. It shows even when the run is then refused."""
    stream = _session.stream if _session is not None and _session.root == pipe.root else sys.stderr
    print(text, file=stream, flush=True)
