"""Sweep reports: the trial table, the best configuration, objective-vs-parameter plots and learning curves.

Written as markdown + HTML + CSV + PNG. Reads Tune's own experiment directory (ExperimentAnalysis), so
`solar-ray report` works on any sweep, finished or interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from solar_ray.report.html import markdown_to_html  # noqa: E402


def _trials(experiment_dir: str) -> list[dict[str, Any]]:
    """Per trial: config, last metrics and the per-report history, from Tune's experiment directory."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment_dir)
    trials = []
    for trial in analysis.trials:
        # Keyed by trial id (Ray 2.60); `trial.local_path` would need a running Ray, which a report does not.
        history = analysis.trial_dataframes.get(trial.trial_id)
        trials.append({
            "trial": trial.trial_id,
            "status": trial.status,
            "config": dict(trial.config),
            "last": dict(trial.last_result or {}),
            "history": history.to_dict("list") if history is not None else {},
        })
    return trials


def write_sweep_report(experiment_dir: str, out: Path, metric: str, mode: str) -> dict[str, Any]:
    """Write the report files into `out`; returns {"best": {...}, "trials": n}."""
    trials = _trials(experiment_dir)
    # In trial-id order (the order Tune generated them): max/min keep the first of tied trials, and Tune's own
    # listing order varies between runs, so a tie between two trials picked either one (seen in the DPO sweeps).
    scored = sorted((t for t in trials if isinstance(t["last"].get(metric), (int, float))), key=lambda t: t["trial"])
    if not scored:
        from solar_ray.errors import ArtifactError

        raise ArtifactError(f"{experiment_dir}: no trial reported metric '{metric}'")
    best = (max if mode == "max" else min)(scored, key=lambda t: t["last"][metric])
    params = sorted({key for t in trials for key in t["config"]})

    lines = ["| trial | status | " + " | ".join(params) + f" | {metric} | iterations |",
             "|---" * (len(params) + 4) + "|"]
    csv = ["trial,status," + ",".join(params) + f",{metric},iterations"]
    for t in sorted(trials, key=lambda t: t["trial"]):
        values = [_fmt(t["config"].get(p)) for p in params]
        score = t["last"].get(metric)
        shown = _fmt(score) if score is not None else "-"
        mark = "**" if t is best else ""
        lines.append(f"| {mark}{t['trial']}{mark} | {t['status']} | " + " | ".join(values)
                     + f" | {mark}{shown}{mark} | {t['last'].get('training_iteration', 0)} |")
        csv.append(",".join([t["trial"], t["status"], *values, shown, str(t["last"].get("training_iteration", 0))]))
    (out / "trials.csv").write_text("\n".join(csv) + "\n")

    plots = []
    for param in params:
        xs = [t["config"][param] for t in scored if isinstance(t["config"].get(param), (int, float))]
        if len(xs) != len(scored):
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(xs, [t["last"][metric] for t in scored])
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} against {param}")
        fig.tight_layout()
        name = f"objective_vs_{param.replace('.', '_').replace('/', '_')}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        plots.append(name)

    fig, ax = plt.subplots(figsize=(6, 4))
    for t in trials:
        steps, values = t["history"].get("training_iteration"), t["history"].get(metric)
        if steps and values:
            ax.plot(steps, values, marker="o", ms=3, label=t["trial"])
    ax.set_xlabel("report (training_iteration)")
    ax.set_ylabel(metric)
    ax.set_title("Learning curves of the trials")
    if len(trials) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)

    best_record = {"trial": best["trial"], "config": best["config"], metric: best["last"][metric]}
    (out / "best.json").write_text(json.dumps(best_record, indent=2) + "\n")
    md = [
        f"# Sweep report: {Path(experiment_dir).name}", "",
        f"Objective: **{mode} {metric}** over {len(trials)} trials ({len(scored)} reported it). "
        f"Tune experiment directory: `{experiment_dir}` (open with `ray.tune.ExperimentAnalysis`).", "",
        "## Best configuration", "", "```json", json.dumps(best_record, indent=2), "```", "",
        "## Trials", "", *lines, "",
        "## Objective against each parameter", "", *[f"![{p}]({p})" for p in plots], "",
        "## Learning curves", "", "![learning curves](learning_curves.png)", "",
    ]
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(markdown_to_html(text, "sweep report"))
    return {"best": best_record, "trials": len(trials)}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report_sweep_artifact(directory: Path) -> Path:
    """Rewrite a sweep artifact's report from its Tune experiment (lineage names it); returns report.md."""
    lineage = json.loads((directory / "lineage.json").read_text())
    search = lineage["config"]["search"]
    write_sweep_report(lineage["experiment"], directory, search["metric"], search.get("mode", "max"))
    return directory / "report.md"
