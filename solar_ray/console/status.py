"""`solar-ray status RUN_DIR`: what a running or finished pipeline is doing, read from its files alone (for a
run submitted with `ray job submit`, or one whose terminal was closed)."""

from __future__ import annotations

from pathlib import Path

from solar_ray.console.progress import driver_alive, log_tail, run_state

STATE_STYLE = {"running": "yellow", "done": "green", "cached": "dim", "failed": "red", "waiting": "dim"}


def print_status(root: Path, lines: int = 3) -> None:
    """A table of the run's stages; for a running or failed stage, the last `lines` lines of its log."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    run = run_state(root)
    info, stages = run["info"], run["stages"]
    if info.get("end"):
        where = "finished" if info["end"].get("ok") else "stopped with a failure"
    elif info:
        alive = driver_alive(info)
        where = {True: "running", False: "not running (the driver is gone: killed?)",
                 None: f"running on {info.get('host')} (or killed)"}[alive]
    else:
        where = "from pipeline.json"
    console = Console(highlight=False)
    table = Table(title=f"{info.get('experiment', Path(root).name)}: {where}", title_justify="left")
    for column in ("stage", "kind", "state", "seconds", "progress"):
        table.add_column(column)
    for name, entry in stages.items():
        state = entry.get("state", "?")
        seconds = entry.get("seconds")
        detail = entry.get("error") or entry.get("figure") or ""
        table.add_row(name, entry.get("kind", ""), f"[{STATE_STYLE.get(state, 'white')}]{state}[/]",
                      "" if seconds is None else f"{seconds:.0f}", escape(detail))
    console.print(table)
    for name, entry in stages.items():
        if entry.get("state") in ("running", "failed") and entry["log"].is_file():
            console.print(f"{name}: {entry['log']}", markup=False, soft_wrap=True)
            for line in log_tail(entry["log"], lines):
                console.print(f"  | {line}", markup=False, soft_wrap=True)
