"""The plan as rich tables: stages, totals and critical path, warnings, assumptions."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from solar_ray.plan.cluster import GB
from solar_ray.plan.planner import RUNNING, SHORT, Plan

COLUMNS = ("node type", "devices", "GB/device", "parts (GB)", "fits", "work", "hours", "disk GB", "USD")


def _num(value: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def stage_columns(plan: Plan, name: str) -> dict[str, str]:
    """The plan's columns for one stage, as text (also shown by `pipeline --dry-run`)."""
    s = plan.stages[name]
    memory = "-"
    if s.need:
        memory = f"{s.need / GB:.1f}" + (f" / {s.limit / GB:.0f}" if s.limit else "")
    parts = " + ".join(f"{SHORT.get(k, k)} {v / GB:.1f}" for k, v in s.memory.items() if v >= 0.05 * GB) or "-"
    devices = "-"
    n = s.devices or s.workload.devices or "all"
    if s.workload.device == "gpu":
        devices = f"{n} GPU" + (" (or CPU)" if s.workload.gpu_optional and s.node is None else "")
    elif s.workload.device == "cpu":
        devices = f"{n} actor" + ("" if n == 1 else "s")
    fits = {True: "yes", False: "NO", None: "-"}[s.fits] + (" (near)" if s.warning else "")
    return {"node type": f"{s.node.name} x{s.nodes}" if s.node and s.nodes else (s.node.name if s.node else "-"),
            "devices": devices, "GB/device": memory, "parts (GB)": parts, "fits": fits,
            "work": s.workload.work, "hours": _num(s.hours), "disk GB": _num(s.disk / GB if s.disk else None, "{:,.0f}"),
            "USD": _num(s.cost, "{:,.0f}")}


def print_plan(plan: Plan, title: str, console: Console | None = None) -> None:
    console = console or Console(width=220, emoji=False)  # emoji=False: "dataset:train" is no emoji
    table = Table(title=title, show_lines=False)
    for column in ("stage", "kind", *COLUMNS):
        table.add_column(column, no_wrap=True)
    for name in plan.stages:
        row = stage_columns(plan, name)
        table.add_row(name, plan.stages[name].kind, *(row[c] for c in COLUMNS))
    console.print(table)

    running = [s for s in plan.stages.values() if s.status in RUNNING]
    totals = Table(title="totals", show_header=False)
    totals.add_column("what")
    totals.add_column("value")
    stage_hours = sum(s.hours or 0.0 for s in running)
    totals.add_row("stage hours (summed)", f"{stage_hours:,.1f}")
    gpu_hours = sum((s.hours or 0.0) * s.devices for s in running if s.workload.device == "gpu")
    totals.add_row("GPU hours", f"{gpu_hours:,.0f}")
    path_hours = sum(plan.stages[n].hours or 0.0 for n in plan.critical_path)
    totals.add_row("critical path (unlimited nodes)", f"{path_hours:,.1f} h: " + " -> ".join(plan.critical_path))
    if plan.makespan is not None:
        totals.add_row(f"wall time with parallel: {plan.parallel}", f"{plan.makespan:,.1f} h (on the node counts above)")
    cost = sum(s.cost or 0.0 for s in running)
    head = plan.cluster.head if plan.cluster else None
    if head is not None and head.price_per_hour and plan.makespan:
        head_cost = head.price_per_hour * plan.makespan
        totals.add_row("cost", f"${cost + head_cost:,.0f} (stages ${cost:,.0f} + head node ${head_cost:,.0f})")
    else:
        totals.add_row("cost", f"${cost:,.0f}")
    totals.add_row("disk written", f"{sum(s.disk for s in running) / GB:,.0f} GB "
                   "(artifacts, downloads, Ray storage checkpoints kept)")
    unknown = [s.name for s in running if s.workload.device != "driver" and not s.workload.memory]
    if unknown:
        totals.add_row("not estimated", ", ".join(unknown))
    console.print(totals)
    for line in plan.problems():
        console.print(f"[red]does not fit:[/red] {line}")
    for line in plan.warnings():
        console.print(f"[yellow]near a limit:[/yellow] {line}")
    console.print("Memory parts: " + ", ".join(f"{v} = {k}" for k, v in SHORT.items()) + ".")
    console.print("Assumptions:")
    for note in dict.fromkeys(plan.assumptions):
        console.print(f"  - {note}", highlight=False)
