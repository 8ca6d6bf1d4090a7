"""The final report of a pipeline run: markdown + HTML + PNG plots under `<output>/report/`.

Sections, each drawn from the stages' own artifacts:
1. Stages: what ran, what was cached, and how long each took (pipeline.json).
2. Tables: the tiny (or full) counterparts of the paper's Tables 2-7, from eval stages' scores.
3. Loss curves: training stages' metrics.jsonl, e.g. continual pretraining after DUS against the base.
4. Data: rows kept, filtered and quarantined per source (data stages' report.json).
5. Findings: for each of the paper's findings, reproduced / not reproduced / cannot tell, with the numbers.
6. Lineage: the artifact graph (PNG + mermaid).
The experiment's `report:` block names the tables, curves and findings; see experiments/tiny/pipeline.yaml.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from solar_ray.artifacts import LINEAGE, atomic_dir, read_lineage  # noqa: E402
from solar_ray.errors import ArtifactError, DataError  # noqa: E402
from solar_ray.evaluate.chance import chance_scores  # noqa: E402
from solar_ray.report.findings import (  # noqa: E402
    LOWER_IS_BETTER,
    IndependentScores,
    PairedScores,
    PooledScores,
    Scores,
    judge,
    verdict_table,
)
from solar_ray.report.html import markdown_to_html  # noqa: E402
from solar_ray.report.lineage_graph import mermaid, plot_lineage  # noqa: E402
from solar_ray.report.spec import EARLIER_RUN, CurveSpec, ReportSpec  # noqa: E402

FINDINGS_SECTION = "The paper's findings at this scale"  # its heading in report.md; a run's console points at it

# ------------------------------------------------------------------------------------------ readers


def load_summaries(eval_dir: Path) -> dict[str, dict[str, Any]]:
    """An eval stage's summary.json: model -> table name -> {"value", "stderr", "items", ...} (fractions)."""
    return json.loads((eval_dir / "summary.json").read_text())


def load_scores(eval_dir: Path) -> Scores:
    """model -> metric -> (value in %, stderr in % or None) from an eval stage's summary.json; metric names
    lower-case (arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k, h6). A missing stderr stays None."""
    return PairedScores(load_summaries(eval_dir)).scores


def read_metrics(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


LOSS_WINDOW = 5  # optimiser steps averaged for a stage's starting and final training loss


def loss_scores(root: Path, kinds: dict[str, str]) -> Scores:
    """Training loss as findings read it: `<stage>` -> mean ± standard error of its last LOSS_WINDOW steps, and
    `<stage>@start` -> of its first ones (for continued pretraining: the up-scaled model before it recovers;
    steps 2-5 have trained a little, so the start reads slightly low, against the drop)."""
    out: Scores = {}
    for name, kind in kinds.items():
        losses = [row["loss"] for row in read_metrics(root / name) if "loss" in row]
        if kind in ("pretrain", "sft", "dpo") and len(losses) >= 2 * LOSS_WINDOW:
            out[name] = {"loss": _mean_and_stderr(losses[-LOSS_WINDOW:])}
            out[f"{name}@start"] = {"loss": _mean_and_stderr(losses[:LOSS_WINDOW])}
    return out


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


# ----------------------------------------------------------------------------------------- sections


def score_table(scores: Scores, models: list[str], chance: dict[str, float] | None = None) -> str:
    """Markdown table: one row per model, one column per task plus H6, best per column in bold; then, given
    `chance` (metric -> % a uniform guess scores), a last row with it to read the scores against."""
    models = [m for m in models if m in scores] or sorted(scores)
    metrics = sorted({k for m in models for k in scores[m] if k != "h6"}) + ["h6"]
    best = {k: (min if k in LOWER_IS_BETTER else max)((scores[m][k][0] for m in models if k in scores[m]),
                                                      default=None) for k in metrics}
    lines = ["| model | " + " | ".join(k.upper() if k == "h6" else k for k in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for model in models:
        cells = []
        for k in metrics:
            if k not in scores[model]:
                cells.append("-")
                continue
            value, stderr = scores[model][k]
            cell = f"{value:.2f} ± {'n/a' if stderr is None else f'{stderr:.2f}'}"
            cells.append(f"**{cell}**" if value == best[k] else cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if chance:
        cells = [f"_{chance[k]:.2f}_" if k in chance else "-" for k in metrics]
        lines.append("| _chance (a uniform guess)_ | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(spec: CurveSpec, root: Path, out: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    offset = 0
    for label, stage in spec.stages.items():
        rows = [r for r in read_metrics(root / stage) if spec.metric in r and "step" in r]
        if rows:
            ax.plot([offset + r["step"] for r in rows], [r[spec.metric] for r in rows], label=label)
            plotted = True
            if spec.sequential:  # the next stage continues training this one's result
                offset += rows[-1]["step"]
    if plotted:
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(spec.metric)
        ax.set_title("\n".join(textwrap.wrap(spec.title, 70)), fontsize=10)  # a long title, wrapped, not cut
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=110)
    plt.close(fig)
    return plotted


def data_section(root: Path, stages: dict[str, str]) -> str:
    """Rows read, invalid, FLAN-filtered, contaminated and used per (data stage, source), then FLAN tasks dropped."""
    rows, dropped = [], {}
    for name, kind in stages.items():
        report_path = root / name / "report.json"
        if kind != "data" or not report_path.is_file():
            continue
        for source, c in json.loads(report_path.read_text()).get("sources", {}).items():
            rejected = c.get("rejected", {})
            contaminated = c.get("contaminated", {})
            detail = ", ".join(f"{bench} {n}" for bench, n in sorted(contaminated.items()))
            rows.append(
                f"| {name} | {source} | {c.get('rows_read', '-')} | {c.get('rows_read', 0) - c.get('valid', 0)} | "
                f"{rejected.get('flan_overlap', 0)} | {sum(contaminated.values())}{f' ({detail})' if detail else ''} | "
                f"{c.get('used', '-')} |"
            )
            for task, counts in c.get("flan", {}).get("tasks", {}).items():
                if counts.get("dropped"):
                    dropped[task] = max(dropped.get(task, 0), counts["dropped"])
    if not rows:
        return "_No data stages in this run._"
    lines = ["| stage | source | read | invalid | FLAN-filtered | contaminated | used |", "|---|---|---|---|---|---|---|"]
    lines += rows
    if dropped:
        lines += ["", "FLAN tasks dropped from OpenOrca (Table 8): " + ", ".join(
            f"`{task}` ({n})" for task, n in sorted(dropped.items())) + "."]
    return "\n".join(lines)


def contamination_section(root: Path, stages: dict[str, str]) -> str:
    parts = []
    for name, kind in stages.items():
        table = root / name / "table.md"
        if kind == "contamination" and table.is_file():
            parts += [f"Stage `{name}` (fraction of examples whose neighbour score is below 0.1, as Table 9 "
                      "prints it; near 1 means likely contaminated):", "", table.read_text().strip(), ""]
    return "\n".join(parts)


def sweeps_section(root: Path, stages: dict[str, str]) -> str:
    """One row per Tune sweep stage: its best configuration, metric and links to its own Tune report."""
    rows = []
    for name, kind in stages.items():
        best_path = root / name / "best.json"
        if kind in ("dpo_sweep", "merge_sweep") and best_path.is_file():
            best = json.loads(best_path.read_text())
            metric = next((k for k in best if k not in ("trial", "config")), "")
            config = ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                               for k, v in best["config"].items())
            value = best.get(metric)
            shown = f"{value:.4g}" if isinstance(value, (int, float)) else "-"
            rows.append(f"| {name} | {kind} | {config} | {metric} = {shown} | "
                        f"[report](../{name}/report.md) ([html](../{name}/report.html)) |")
    if not rows:
        return ""
    return "\n".join(["| sweep | kind | best configuration | best | Tune report |", "|---|---|---|---|---|", *rows])


# ------------------------------------------------------------------------------------------- writer


class RunScores:
    """One pipeline run's scores as its report reads them: each eval stage's summaries (per-item results
    included), what guessing scores on the items a stage scored, and training losses; `verdict` judges a finding."""

    def __init__(self, root: Path):
        self.root = Path(root)
        path = self.root / "pipeline.json"
        if not path.is_file():
            raise DataError(f"{root}: not a pipeline output (no pipeline.json)")
        self.state = json.loads(path.read_text())
        if "graph" not in self.state:
            raise ArtifactError(f"{path}: written by an older solar-ray (no stage graph); "
                                "run the pipeline again to rewrite it")
        self.spec = ReportSpec.model_validate(self.state.get("report", {}))
        self.kinds = {name: entry["kind"] for name, entry in self.state["graph"].items()}
        self._summaries: dict[str, dict[str, Any]] = {}
        self._chance: dict[str, dict[str, float]] = {}

    def summaries_of(self, stage: str | None) -> dict[str, Any]:
        """An eval stage's model -> summary; None: every eval stage's together (model names are unique within a
        pipeline); empty for a stage that has not run."""
        if stage is None:
            merged: dict[str, Any] = {}
            for name, kind in self.kinds.items():
                if kind == "eval":
                    merged.update(self.summaries_of(name))
            return merged
        if stage not in self._summaries:
            scored = self.kinds.get(stage) == "eval" and (self.root / stage / LINEAGE).is_file()
            self._summaries[stage] = load_summaries(self.root / stage) if scored else {}
        return self._summaries[stage]

    def scores_of(self, stage: str | None) -> Scores:
        return PairedScores(self.summaries_of(stage)).scores

    def chance_of(self, stage: str | None) -> dict[str, float]:
        """What guessing scores on the items an eval stage scored; empty unless it is an eval stage with scores."""
        if stage is None or self.kinds.get(stage) != "eval" or not self.scores_of(stage):
            return {}
        if stage not in self._chance:  # a table and the findings on it read the same benchmark files
            config = read_lineage(self.root / stage)["config"]  # the settings the eval stage ran with
            self._chance[stage] = chance_scores(config["data_dir"], config.get("limit"))
        return self._chance[stage]

    def chance_for(self, finding) -> float | None:
        """Chance on a finding's metric, from the eval stage that scored its first model; only a similarity reads
        it (models alike at chance show nothing), so others get None without the benchmark files being read."""
        if finding.kind != "similar":
            return None
        first = (finding.models or [finding.treatment])[0]
        stage = finding.eval or next((n for n, k in self.kinds.items() if k == "eval" and first in self.scores_of(n)),
                                     None)
        return self.chance_of(stage).get(finding.metric)

    def verdict(self, finding) -> dict[str, Any]:
        if finding.metric == "loss":
            return judge(finding, IndependentScores(loss_scores(self.root, self.kinds)))
        return judge(finding, PairedScores(self.summaries_of(finding.eval)), self.chance_for(finding))


def compare_runs(directories: list[Path]) -> str:
    """The verdict table of several pipeline outputs of one experiment (e.g. `--seed` 0, 1, 2), from each one's
    report/findings.json, with a column judging each benchmark finding on the runs pooled: every item's score
    averaged over the runs (they must have scored the same items; training-loss findings do not pool). Each
    column is labelled with the run's directory, as given, and its seed."""
    runs: dict[str, RunScores] = {}
    verdicts = {}
    for directory in directories:
        run = RunScores(directory)
        path = Path(directory) / "report" / "findings.json"
        if not path.is_file():
            raise DataError(f"{path}: no findings (run `solar-ray report {directory}` first)")
        seed = run.state.get("seed")
        label = f"{directory}" + ("" if seed is None else f" (seed {seed})")  # as typed: two runs/.../tiny differ
        runs[label], verdicts[label] = run, json.loads(path.read_text())
    first = next(iter(runs.values()))
    pooled = []
    for finding in first.spec.findings:
        if finding.metric == "loss":
            pooled.append({"claim": finding.claim, "verdict": "-"})
            continue
        evidence = PooledScores({label: run.summaries_of(finding.eval) for label, run in runs.items()})
        pooled.append(judge(finding, evidence, first.chance_for(finding)))
    return verdict_table(verdicts, pooled)


MADE_WITH = ("torch", "transformers", "trl", "deepspeed")


def made_on(lineages: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: the processors and packages that made the artifacts, one row per distinct set. Float
    kernels differ by instruction set, so a seed's models match another run's to the bit only where these do."""
    rows: dict[tuple[str, ...], list[str]] = {}
    kernels: dict[tuple[str, ...], set[str]] = {}
    for name, record in lineages.items():
        machine = record.get("machine")
        if machine:  # artifacts written before lineage recorded it have none
            packages = record.get("packages", {})
            key = (machine.get("cpu", "?"), *(packages.get(p, "-") for p in MADE_WITH))
            rows.setdefault(key, []).append(name)
            # stages that never load torch (the numpy merge) record no kernel level: their machine's row tells it
            kernels.setdefault(key, set()).update(filter(None, [machine.get("torch_cpu_capability")]))
    if not rows:
        return []
    md = ["", "Made on (one row per processor and package set; another row's models differ in their float "
          "rounding):", "", "| processor | torch kernels | " + " | ".join(MADE_WITH) + " | artifacts |",
          "|---" * (len(MADE_WITH) + 3) + "|"]
    return md + [f"| {key[0]} | {', '.join(sorted(kernels[key])) or '-'} | {' | '.join(key[1:])} | "
                 # the usual case, one machine for every artifact: no list of them all
                 f"{f'all {len(names)}' if len(names) == len(lineages) else ', '.join(names)} |"
                 for key, names in rows.items()]


def write_pipeline_report(root: Path) -> Path:
    """Write `<root>/report/` from the pipeline.json a run left there and the stages' artifacts; returns it."""
    run = RunScores(root)
    state, spec, kinds = run.state, run.spec, run.kinds
    order = list(kinds)
    scores_of, chance_of, verdict = run.scores_of, run.chance_of, run.verdict

    with atomic_dir(root / "report", force=True) as out:
        md = [f"# {state['experiment']}: report", "", state.get("description", ""), ""]
        md += ["## Stages", "", "| stage | kind | status | started at (s) | seconds |", "|---|---|---|---|---|"]
        stages = state.get("stages", {})
        for name in sorted(order, key=lambda n: stages.get(n, {}).get("started_at", math.inf)):
            entry = stages.get(name, {})
            done = (root / name / LINEAGE).is_file()
            offset = entry.get("started_at", math.nan) - state.get("started_at", math.nan)
            md.append(f"| {name} | {kinds[name]} | {entry.get('status', 'done' if done else 'missing')} | "
                      f"{'-' if math.isnan(offset) else f'{offset:.0f}'} | {entry.get('seconds', '-')} |")
        if "seconds" in state:
            summed = sum(entry.get("seconds", 0.0) for entry in stages.values() if entry["status"] != EARLIER_RUN)
            parallel = state.get("parallel", 1)
            at_once = f"up to {parallel} stages at once" if parallel > 1 else "one stage at a time"
            md.append(f"\nTotal wall time of the last run: {state['seconds']:.0f} s, for {summed:.0f} s of stage "
                      f"time ({at_once}).")

        md += ["", "## Scores", "", "Scores in %, ± one standard error; best per column in bold. The last row of "
               "each table is what a uniform guess scores on the same items: scores near it mean the task was not "
               "learnt, and differences between such models are noise."]
        for table in spec.tables:
            scores = scores_of(table.eval)
            md += ["", f"### {table.title}", ""]
            if not scores:
                md.append(f"_eval stage '{table.eval}' has not run._")
                continue
            if table.losses:  # each row's training stage's final loss, as a column beside the scores
                trained = loss_scores(root, kinds)
                scores = {model: {**row, **({"loss": trained[table.losses[model]]["loss"]}
                                            if table.losses.get(model) in trained else {})}
                          for model, row in scores.items()}
            md.append(score_table(scores, table.models, chance_of(table.eval)))

        if spec.loss_curves:
            md += ["", "## Training curves"]
            for i, curve in enumerate(spec.loss_curves):
                name = f"curve_{i}.png"
                if plot_curves(curve, root, out / name):
                    md += ["", f"![{curve.title}]({name})"]

        md += ["", "## Data", "", data_section(root, kinds)]
        sweeps = sweeps_section(root, kinds)
        if sweeps:
            md += ["", "## Sweeps (Ray Tune)", "", sweeps]
        contamination = contamination_section(root, kinds)
        if contamination:
            md += ["", "## Contamination test (Table 9)", "", contamination]

        if spec.findings:
            md += ["", f"## {FINDINGS_SECTION}", "",
                   "Benchmark differences are paired: every model answered the same items, so a difference's "
                   "standard error comes from the per-item differences (H6: the six benchmarks' paired differences "
                   "combined), and is smaller than the table's two ± would suggest. Each ± below is the interval "
                   "the verdict uses: a difference is reproduced when its 95% interval (1.96 standard errors) "
                   "excludes zero in the paper's direction; a similarity when every pair's 90% interval (1.645 "
                   "standard errors) lies inside the stated margin. A difference that cannot be told also gives the "
                   "smallest true difference this run would find 4 times in 5 (80% power, 2.80 standard errors): "
                   "an effect below it needs more items, not a different conclusion; for H6 it also names the "
                   "benchmarks whose item flips make most of that difference's variance: more of their items "
                   "would narrow it most. Training losses of different stages are independent windows of steps "
                   "(their standard errors combined).", "",
                   "| finding | verdict | evidence |", "|---|---|---|"]
            verdicts = [verdict(f) for f in spec.findings]
            md += [f"| {v['claim']} | **{v['verdict']}** | {v['evidence']} |" for v in verdicts]
            (out / "findings.json").write_text(json.dumps(verdicts, indent=2) + "\n")
        if spec.limits:
            md += ["", "What this scale cannot show:", ""] + [f"- {limit}" for limit in spec.limits]

        parents = {name: set(state["graph"][name]["parents"]) for name in order}
        plot_lineage(parents, kinds, out / "lineage.png")
        md += ["", "## Lineage", "", "![lineage](lineage.png)", "", mermaid(parents), ""]
        lineages = {name: read_lineage(root / name) for name in order if (root / name / LINEAGE).is_file()}
        hashes = [f"| {name} | `{record.get('content_hash', '')[:16]}` |" for name, record in lineages.items()]
        md += ["| artifact | content hash |", "|---|---|"] + hashes
        md += made_on(lineages)

        text = "\n".join(md) + "\n"
        (out / "report.md").write_text(text)
        (out / "report.html").write_text(markdown_to_html(text, f"{state['experiment']} report"))
    return root / "report"
