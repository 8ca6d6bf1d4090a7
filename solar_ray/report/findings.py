"""Judge the paper's findings from a run's scores, with the right statistics.

A finding is a claim plus a comparison between models' scores on one metric (a task, `h6`, or training `loss`):
- `improves`: the treatment beats the baseline (the best of several baselines, for "merging helps").
- `trade_off`: the treatment beats the baseline on `metric` and loses to it on `against` (OpenOrca's effect).
- `drops_then_recovers`: models [before, after-DUS, after-continued-pretraining]; the second is below the first
  and the third above the second.
- `similar`: every pair of models is within `margin` points of each other ("the merge method matters little").

Benchmark scores are compared pair by pair over the items both models answered (`PairedScores`, the
statistics in evaluate/stats.py), and over several runs of one experiment on the same items (seeds) with each
item's difference averaged over the runs first (`PooledScores`); training losses of different stages are
independent windows of steps (`IndependentScores`: sqrt(se_a^2 + se_b^2)). Verdicts:
- a difference is "reproduced" when its 95% interval (diff +- 1.96 se) excludes zero in the paper's direction,
  "not reproduced" when it excludes zero the other way, else "cannot tell";
- a similarity is "reproduced" when every pair's 90% interval (diff +- 1.645 se: equivalence at the 5% level)
  lies inside +-margin, "not reproduced" when some pair's interval lies wholly outside it, else "cannot tell" -
  so low power (wide intervals) never reads as "similar";
- "error" when a standard error is missing (never taken as zero) or the items do not pair.
A difference that reads "cannot tell" also says how large a true difference this run would have found 4 times
in 5 (80% power: (1.96 + 0.84) se), so a reader can tell a small effect from a run too small to see one, and,
for a difference over several benchmarks (H6), which of them make most of its variance: where more items help.
Scores are higher-is-better except the training `loss`.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from pydantic import Field, model_validator

from solar_ray.config import Strict
from solar_ray.errors import DataError
from solar_ray.evaluate.stats import (
    Z_DIFFERENCE,
    Z_EQUIVALENCE,
    Z_POWER,
    Summary,
    noise_shares,
    paired_difference,
    pooled_difference,
    pooled_score,
)

LOWER_IS_BETTER = {"loss"}
NOISE_SHOWN = 0.2  # an undecided H6 difference names the benchmarks making at least this share of its variance
KINDS = ("improves", "trade_off", "drops_then_recovers", "similar")
VERDICTS = ("reproduced", "not reproduced", "cannot tell")  # and "error", for a finding that cannot be judged

Scores = dict[str, dict[str, tuple[float, float | None]]]  # model -> metric -> (value, stderr or None), in %


class Finding(Strict):
    claim: str = Field(description="The paper's claim, as a sentence.")
    kind: str = Field(description="improves | trade_off | drops_then_recovers | similar")
    eval: str | None = Field(default=None, description="The eval stage whose scores are compared (default: all).")
    metric: str = Field(default="h6", description="A task name of the eval summary, h6, or loss (training loss).")
    against: str | None = Field(default=None, description="trade_off: the metric on which the treatment is worse.")
    models: list[str] = Field(default_factory=list, description="drops_then_recovers / similar: the models, in order.")
    baseline: list[str] = Field(default_factory=list,
                                description="improves / trade_off: baseline model(s); the best is used.")
    treatment: str | None = Field(default=None, description="improves / trade_off: the model expected to be better.")
    margin: float | None = Field(default=None, gt=0, description="similar: the equivalence margin, in score points "
                                 "(%): a gap this large or larger counts as a real difference.")

    @model_validator(mode="after")
    def _complete(self) -> Finding:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind in ("improves", "trade_off") and not (self.treatment and self.baseline):
            raise ValueError(f"kind {self.kind} needs treatment and baseline")
        if self.kind == "trade_off" and not self.against:
            raise ValueError("kind trade_off needs against (the metric the treatment loses on)")
        if self.kind == "drops_then_recovers" and len(self.models) != 3:
            raise ValueError("kind drops_then_recovers needs models: [before, up-scaled, continued]")
        if self.kind == "similar" and (len(self.models) < 2 or self.margin is None):
            raise ValueError("kind similar needs two or more models and a margin (points within which scores "
                             "count as similar), so that low power cannot read as similar")
        return self


# ------------------------------------------------------------------------------------------ evidence


class IndependentScores:
    """Scores without per-item results (training loss windows): a difference's stderr from the two stderrs."""

    how = "independent"

    def __init__(self, scores: Scores):
        self.scores = scores

    def has(self, model: str, metric: str) -> bool:
        return metric in self.scores.get(model, {})

    def value(self, model: str, metric: str) -> float:
        return self.scores[model][metric][0]

    def stderr(self, model: str, metric: str) -> float:
        se = self.scores[model][metric][1]
        if se is None or math.isnan(se):
            raise DataError(f"{model}: no standard error for {metric}")
        return se

    def difference(self, a: str, b: str, metric: str) -> tuple[float, float]:
        return self.value(a, metric) - self.value(b, metric), math.hypot(self.stderr(a, metric), self.stderr(b, metric))

    def noise(self, a: str, b: str, metric: str) -> dict[str, float]:
        """Benchmark -> its share of the variance of a - b; empty where the scores have no per-item results."""
        return {}


class PairedScores(IndependentScores):
    """Eval summaries with per-item results: a difference's stderr from the per-item paired differences."""

    how = "paired over the same items"

    def __init__(self, summaries: dict[str, Summary]):
        self.summaries = summaries
        scores: Scores = {}
        for model, summary in summaries.items():
            scores[model] = {}
            for name, entry in summary.items():
                se = entry.get("stderr")
                scores[model][name.lower()] = (100 * entry["value"], None if se is None else 100 * se)
        super().__init__(scores)

    def difference(self, a: str, b: str, metric: str) -> tuple[float, float]:
        diff, se = paired_difference(self.summaries[a], self.summaries[b], metric, (a, b))
        return 100 * diff, 100 * se

    def noise(self, a: str, b: str, metric: str) -> dict[str, float]:
        return noise_shares([(self.summaries[a], self.summaries[b])], metric, [(a, b)])


class PooledScores(IndependentScores):
    """Eval summaries of several runs that scored the same items (one experiment's seeds): a model's score and a
    difference are averaged over the runs item by item, the error from the items' run-averaged values."""

    def __init__(self, runs: dict[str, dict[str, Summary]]):
        self.runs = runs  # run label -> model -> summary
        self.each = [PairedScores(summaries) for summaries in runs.values()]
        self.how = f"paired over the same items, averaged over {len(runs)} runs"

    def has(self, model: str, metric: str) -> bool:
        return all(scores.has(model, metric) for scores in self.each)

    def _score(self, model: str, metric: str) -> tuple[float, float]:
        value, se = pooled_score([run[model] for run in self.runs.values()], metric,
                                 [f"{model} in {label}" for label in self.runs])
        return 100 * value, 100 * se

    def value(self, model: str, metric: str) -> float:
        return self._score(model, metric)[0]

    def stderr(self, model: str, metric: str) -> float:
        return self._score(model, metric)[1]

    def difference(self, a: str, b: str, metric: str) -> tuple[float, float]:
        diff, se = pooled_difference([(run[a], run[b]) for run in self.runs.values()], metric,
                                     [(f"{a} in {label}", f"{b} in {label}") for label in self.runs])
        return 100 * diff, 100 * se

    def noise(self, a: str, b: str, metric: str) -> dict[str, float]:
        return noise_shares([(run[a], run[b]) for run in self.runs.values()], metric,
                            [(f"{a} in {label}", f"{b} in {label}") for label in self.runs])


# --------------------------------------------------------------------------------------------- judges


def _signed(evidence, a: str, b: str, metric: str, better: int) -> tuple[int, str, dict[str, float]]:
    """Direction of a - b (+1 clearly better, -1 clearly worse, 0 inside the 95% interval) and its text."""
    diff, se = evidence.difference(a, b, metric)
    half = Z_DIFFERENCE * se
    direction = 1 if better * diff > half else -1 if better * diff < -half else 0
    # No power statement where every item pair agrees (se 0, e.g. two models scoring 0 everywhere): it would read
    # "any difference is found", which no item says.
    power = ("" if direction or se == 0
             else f"; 80% power from {(Z_DIFFERENCE + Z_POWER) * se:.2f}{_noise(evidence, a, b, metric)}")
    text = f"{a} - {b} = {diff:+.2f} (± {half:.2f}{power})"
    return direction, text, {"difference": diff, "stderr": se}


def _noise(evidence, a: str, b: str, metric: str) -> str:
    """Where an undecided difference of several benchmarks gets its error: the benchmarks that make most of its
    variance (a fifth or more each), i.e. where more items would narrow it."""
    shares = evidence.noise(a, b, metric)
    if len(shares) < 2:
        return ""
    most = sorted(((share, task) for task, share in shares.items() if share >= NOISE_SHOWN), reverse=True)
    return "; its variance from " + ", ".join(f"{task} {100 * share:.0f}%" for share, task in most)


def _best(evidence, models: list[str], metric: str, better: int) -> str:
    return max(models, key=lambda name: better * evidence.value(name, metric))


def _improves(finding: Finding, evidence, better: int):
    best = _best(evidence, finding.baseline, finding.metric, better)
    direction, text, numbers = _signed(evidence, finding.treatment, best, finding.metric, better)
    return {1: "reproduced", -1: "not reproduced", 0: "cannot tell"}[direction], text, numbers


def _trade_off(finding: Finding, evidence, better: int):
    base = _best(evidence, finding.baseline, finding.metric, better)
    gain, gain_text, numbers = _signed(evidence, finding.treatment, base, finding.metric, better)
    against_better = -1 if finding.against in LOWER_IS_BETTER else 1
    loss, loss_text, _ = _signed(evidence, base, finding.treatment, finding.against, against_better)
    verdict = ("reproduced" if (gain, loss) == (1, 1) else "not reproduced" if -1 in (gain, loss) else "cannot tell")
    return verdict, f"{gain_text}; {finding.against}: {loss_text}", numbers


def _drops_then_recovers(finding: Finding, evidence, better: int):
    before, upscaled, continued = finding.models
    drop, drop_text, numbers = _signed(evidence, upscaled, before, finding.metric, better)
    recover, recover_text, _ = _signed(evidence, continued, upscaled, finding.metric, better)
    if (drop, recover) == (-1, 1):
        verdict = "reproduced"
    elif drop == 1 or recover == -1:
        verdict = "not reproduced"
    else:
        verdict = "cannot tell"
    return verdict, f"{drop_text}; {recover_text}", numbers


def _similar(finding: Finding, evidence, better: int):
    margin = finding.margin
    pairs = [(a, b) for i, a in enumerate(finding.models) for b in finding.models[i + 1:]]
    gaps = []
    for a, b in pairs:
        diff, se = evidence.difference(a, b, finding.metric)
        gaps.append((abs(diff) + Z_EQUIVALENCE * se, abs(diff) - Z_EQUIVALENCE * se, a, b, diff, se))
    widest = max(gaps)  # the pair whose 90% interval reaches furthest from zero
    if widest[0] < margin:
        verdict = "reproduced"
    elif max(g[1] for g in gaps) > margin:
        verdict = "not reproduced"
    else:
        verdict = "cannot tell"
    _, _, a, b, diff, se = widest
    text = (f"widest pair {a} - {b} = {diff:+.2f} (90% interval ± {Z_EQUIVALENCE * se:.2f}) against a margin of "
            f"± {margin:.2f}")
    return verdict, text, {"difference": diff, "stderr": se}


JUDGES = {"improves": _improves, "trade_off": _trade_off, "drops_then_recovers": _drops_then_recovers,
          "similar": _similar}


def judge(finding: Finding, evidence: IndependentScores | Scores, chance: float | None = None) -> dict[str, Any]:
    """The verdict on one finding, with the numbers behind it. "cannot tell" when a model was not scored, and for
    `similar` when every model is within the noise of `chance` (what guessing scores on the metric): models
    that learnt nothing are alike whatever made them, so their likeness shows nothing. "error" when a standard
    error is missing or two models' items do not pair."""
    if not isinstance(evidence, IndependentScores):
        evidence = IndependentScores(evidence)
    metrics = [finding.metric] + ([finding.against] if finding.against else [])
    names = finding.models + finding.baseline + ([finding.treatment] if finding.treatment else [])
    missing = sorted({n for n in names for m in metrics if not evidence.has(n, m)})
    out = {"claim": finding.claim, "kind": finding.kind, "metric": finding.metric}
    if missing:
        return {**out, "verdict": "cannot tell", "evidence": f"no {' / '.join(metrics)} score for {', '.join(missing)}"}
    better = -1 if finding.metric in LOWER_IS_BETTER else 1
    try:
        verdict, text, numbers = JUDGES[finding.kind](finding, evidence, better)
        if finding.kind == "similar" and chance is not None and all(
                abs(evidence.value(n, finding.metric) - chance) <= Z_DIFFERENCE * evidence.stderr(n, finding.metric)
                for n in finding.models):
            verdict, text = "cannot tell", f"{text}; every model within the noise of chance ({chance:.2f})"
    except DataError as exc:
        return {**out, "verdict": "error", "evidence": str(exc)}
    label = f"{finding.metric} (lower is better)" if finding.metric in LOWER_IS_BETTER else finding.metric
    return {**out, "verdict": verdict, "evidence": f"{label}: {text} [{evidence.how}]", **numbers}


def verdict_table(runs: dict[str, list[dict[str, Any]]], pooled: list[dict[str, Any]] | None = None) -> str:
    """Markdown: one row per claim, one column per run (e.g. per seed), each cell the verdict and its difference
    (± one standard error), then the verdict every run agrees on ("differs" where they do not), and with `pooled`
    (the verdicts on the runs' items averaged over the runs) a column of those, each with the standard deviation
    of the runs' own differences: the pooled error treats the runs as fixed, and that spread is how much a whole
    run's effect moved between them. Closing lines count the claims reproduced in every run, and pooled. `runs`
    maps a run's label to its report's findings.json."""
    labels = list(runs)
    claims = list(dict.fromkeys(v["claim"] for verdicts in runs.values() for v in verdicts))
    extra = " pooled |" if pooled is not None else ""
    lines = ["| claim | " + " | ".join(labels) + " | every run |" + extra,
             "|---|" + "---|" * (len(labels) + 1 + (pooled is not None))]
    everywhere, pooled_reproduced = [], []
    for claim in claims:
        found = [next((v for v in runs[label] if v["claim"] == claim), None) for label in labels]
        verdicts = {v["verdict"] if v else "-" for v in found}
        common = verdicts.pop() if len(verdicts) == 1 else "differs"
        if common == "reproduced":
            everywhere.append(claim)
        row = f"| {claim} | " + " | ".join(_cell(v) for v in found) + f" | {common} |"
        if pooled is not None:
            over_runs = next((v for v in pooled if v["claim"] == claim), None)
            if over_runs and over_runs["verdict"] == "reproduced":
                pooled_reproduced.append(claim)
            spread = [v["difference"] for v in found if v and "difference" in v]
            judged = over_runs and "difference" in over_runs and len(spread) > 1
            between = f"; runs' sd {statistics.stdev(spread):.2f}" if judged else ""
            row += f" {_cell(over_runs)}{between} |"
        lines.append(row)
    lines += ["", f"Reproduced in every run: {len(everywhere)} of {len(claims)} claims."]
    if pooled is not None:
        lines.append(f"Reproduced with the runs pooled: {len(pooled_reproduced)} of {len(claims)} claims (the runs "
                     "taken as they are: what they show together, not what another seed would show; runs' sd is "
                     "the spread of their own differences).")
        errors = [v["evidence"] for v in pooled if v["verdict"] == "error"]
        if errors:  # one reason is enough: runs of other items fail every claim the same way
            lines.append(f"Not pooled ({len(errors)} claim{'s' * (len(errors) > 1)}), e.g.: {errors[0]}")
    return "\n".join(lines) + "\n"


def _cell(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "-"
    if "difference" not in verdict:
        return verdict["verdict"]
    return f"{verdict['verdict']} ({verdict['difference']:+.2f} ± {verdict['stderr']:.2f} se)"
