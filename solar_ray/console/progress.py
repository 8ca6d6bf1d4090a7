"""What a run's files say about it: per-stage events, each stage's key figure from its log, the headline numbers.

The console writes `<run>/logs/events.jsonl` (one JSON object per stage event, appended as it happens);
`solar-ray status RUN_DIR` and the live view both read a running stage's key figure from the tail of its log:
- training (pretrain, sft, dpo): the last `[solar-ray train] step=N loss=X ...` line rank 0 printed;
- evaluation: the last `eval [k/N] model: task` line (the (model, task) pairs done of total);
- Ray Data stages: rows done of total and rows per second, from Ray Data's progress lines (capture.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

LOGS_DIR = "logs"
EVENTS = "events.jsonl"
RAY_MARKERS = (":job_id:", ":task_name:", ":actor_name:")  # Ray's log-attribution lines in worker output

TRAIN_LINE = re.compile(r"\[solar-ray train\] (?:.*\s)?step=(\d+)(?:.*\sloss=([-\d.e+na]+))?")
EVAL_LINE = re.compile(r"eval \[(\d+)/(\d+)\] (\S+): (\S+)")
NAMED_FINDINGS = 3  # reproduced findings named at the end of a run (each a sentence); the report has every one
ROWS_LINE = re.compile(r"^([\d.]+) ray\.data progress: Total Progress: (\d+)/(\d+|\?)")  # capture.py writes these


def write_event(root: Path, **event: Any) -> None:
    """Append one event (one short line, so concurrent appends stay whole) to `<root>/logs/events.jsonl`."""
    path = root / LOGS_DIR / EVENTS
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": round(time.time(), 2), **event}) + "\n"
    with path.open("a") as handle:
        handle.write(line)


def read_events(root: Path) -> list[dict[str, Any]]:
    path = Path(root) / LOGS_DIR / EVENTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def log_tail(path: Path, lines: int = 10, max_bytes: int = 65536) -> list[str]:
    """The last `lines` lines of a log, without Ray's attribution markers; a progress bar's redraws (\\r) count
    as their last state."""
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - max_bytes))
        text = handle.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        line = line.rsplit("\r", 1)[-1].rstrip()
        if line and not line.startswith(RAY_MARKERS) and "RAW: " not in line:  # abseil's mutex tracing
            out.append(line)
    return out[-lines:]


def key_figure(kind: str, log: Path) -> str:
    """The one number that says how far a running stage is, from the tail of its log ('' when none yet)."""
    for line in reversed(log_tail(log, lines=200)):
        if kind in ("pretrain", "sft", "dpo", "tune"):
            match = TRAIN_LINE.search(line)
            if match:
                step, loss = match.groups()
                return f"step {step}" + (f", loss {float(loss):.3f}" if loss else "")
        elif kind in ("eval", "contamination"):
            match = EVAL_LINE.search(line)
            if match:
                done, total, model, task = match.groups()
                return f"{done}/{total} (model, task) done: {model} {task}"
        else:
            match = ROWS_LINE.search(line)
            if match:
                return _rows_figure(match, log)
    return ""


def _rows_figure(last: re.Match, log: Path) -> str:
    """'rows done/total, rows per second' from the last two of Ray Data's progress lines of the current dataset."""
    when, done, total = float(last.group(1)), int(last.group(2)), last.group(3)
    if done == 0:  # a small dataset's progress says 0/? until it is done
        return ""
    figure = f"{done}/{total} rows"
    earlier = [m for m in map(ROWS_LINE.search, log_tail(log, lines=200)) if m and int(m.group(2)) < done]
    if earlier and when > float(earlier[-1].group(1)):
        figure += f", {(done - int(earlier[-1].group(2))) / (when - float(earlier[-1].group(1))):.0f} rows/s"
    return figure


def final_figure(root: Path, name: str, kind: str, seconds: float) -> str:
    """A finished stage's figure: a data stage's rows read and rows per second (its report.json), else the last
    key figure of its log."""
    report = Path(root) / name / "report.json"
    if kind == "data" and report.is_file():
        rows = sum(source.get("rows_read", 0) for source in json.loads(report.read_text()).get("sources", {}).values())
        return f"{rows} rows read, {rows / max(seconds, 1e-9):.0f} rows/s"
    return key_figure(kind, Path(root) / LOGS_DIR / f"{name}.log")


def driver_alive(start: dict[str, Any]) -> bool | None:
    """Whether the driver that wrote a run's `start` event still runs (None: it ran on another host)."""
    if start.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(start["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(root: Path) -> dict[str, Any]:
    """Stage -> {state, kind, seconds/started, error, log} for the last run recorded in a run directory, from its
    events.jsonl, else (a run from before the console) its pipeline.json."""
    root = Path(root)
    events = read_events(root)
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    stages: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {}
    if starts:
        events = events[starts[-1]:]
        info = events[0]
        for name in info.get("stages", []):
            stages[name] = {"state": "waiting", "kind": info.get("kinds", {}).get(name, "")}
    else:
        path = root / "pipeline.json"
        if not path.is_file():
            from solar_ray.errors import ArtifactError

            raise ArtifactError(f"{root}: not a pipeline run (no {LOGS_DIR}/{EVENTS} or pipeline.json)")
        for name, entry in json.loads(path.read_text()).get("stages", {}).items():
            stages[name] = {"state": {"ran": "done"}.get(entry["status"], entry["status"]),
                            "seconds": entry.get("seconds")}
    for event in events[1:]:
        entry = stages.setdefault(event.get("stage", ""), {})
        if event["event"] == "running":
            entry.update(state="running", started=event["time"])
        elif event["event"] in ("done", "cached", "failed"):
            entry.update(state=event["event"], seconds=event.get("seconds", 0.0), error=event.get("error"),
                         figure=event.get("figure", ""))
        elif event["event"] == "end":
            info["end"] = event
    stages.pop("", None)
    for name, entry in stages.items():
        entry["log"] = root / LOGS_DIR / f"{name}.log"
        if entry.get("state") == "running":
            entry["seconds"] = time.time() - entry["started"]
            entry["figure"] = key_figure(entry.get("kind", ""), entry["log"])
    return {"info": info, "stages": stages}


def headline(pipe: Any, report_dir: Path) -> list[str]:
    """The final model's H6 (the best model of the table furthest down the recipe: the one whose evaluation has the
    most stages upstream, e.g. the merges, not a side comparison listed after them) and the findings counted
    per verdict, with the first reproduced ones by name (the report lists them all), read from the report's
    findings.json and the eval stage's summary.json."""
    from solar_ray.report.findings import VERDICTS
    from solar_ray.report.pipeline_report import FINDINGS_SECTION, load_scores

    lines = []
    tables = [t for t in pipe.experiment.report.tables if (pipe.root / t.eval / "summary.json").is_file()]
    if tables:
        table = max(tables, key=lambda t: len(pipe.ancestors(t.eval)))  # the first of equals
        scores = load_scores(pipe.root / table.eval)
        models = [m for m in (table.models or scores) if "h6" in scores.get(m, {})]
        if models:
            best = max(models, key=lambda m: scores[m]["h6"][0])
            value, stderr = scores[best]["h6"]
            chance = _chance(pipe, table.eval)
            lines.append(f"final model: {best}, H6 {value:.1f} ± {stderr:.1f} %"
                         + (f" (a uniform guess: {chance:.1f} %)" if chance is not None else "")
                         + f", best of '{table.title}'")
    findings = report_dir / "findings.json"
    if findings.is_file():
        verdicts = json.loads(findings.read_text())
        counts = dict.fromkeys(VERDICTS, 0)  # each verdict counted, even at 0 ("0 reproduced" is news too)
        for verdict in verdicts:
            counts[verdict["verdict"]] = counts.get(verdict["verdict"], 0) + 1
        lines.append("findings: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n or v in VERDICTS)
                     + f" (report.md, '{FINDINGS_SECTION}')")
        reproduced = [v["claim"] for v in verdicts if v["verdict"] == "reproduced"]
        if reproduced:
            more = len(reproduced) - NAMED_FINDINGS
            lines.append("reproduced: " + "; ".join(reproduced[:NAMED_FINDINGS])
                         + (f"; and {more} more" if more > 0 else ""))
    return lines


def _chance(pipe: Any, stage: str) -> float | None:
    from solar_ray.evaluate.chance import chance_scores

    config = pipe.configs[stage]
    try:
        return chance_scores(config.data_dir, config.limit).get("h6")
    except (OSError, ValueError, KeyError, AttributeError):
        return None
