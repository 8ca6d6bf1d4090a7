"""Judge the paper's findings from a run's scores and their standard errors.

A finding is a claim plus a comparison between models' scores on one metric (a task or `h6`):
- `improves`: the treatment beats the baseline (the best of several baselines, for "merging helps").
- `drops_then_recovers`: models [before, after-DUS, after-continued-pretraining]; the second is below the first
  and the third above the second.
- `similar`: every model is within the noise of every other ("the merge method matters little").

A difference counts when it exceeds `Z` combined standard errors: |a - b| > Z * sqrt(se_a^2 + se_b^2). Scores are
higher-is-better except the training `loss` (the report reads it from the stages' metrics.jsonl).
Verdicts: "reproduced", "not reproduced" (a clear difference the wrong way), "cannot tell" (inside the noise).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from solar_ray.config import Strict

Z = 2.0  # about a 95% two-sided band for a difference of two independent means
LOWER_IS_BETTER = {"loss"}

Scores = dict[str, dict[str, tuple[float, float]]]  # model -> metric -> (value, stderr)


class Finding(Strict):
    claim: str = Field(description="The paper's claim, as a sentence.")
    kind: str = Field(description="improves | drops_then_recovers | similar")
    eval: str | None = Field(default=None, description="The eval stage whose scores are compared (default: all).")
    metric: str = Field(default="h6", description="A task name of the eval summary, h6, or loss (training loss).")
    models: list[str] = Field(default_factory=list, description="drops_then_recovers / similar: the models, in order.")
    baseline: list[str] = Field(default_factory=list, description="improves: baseline model(s); the best is used.")
    treatment: str | None = Field(default=None, description="improves: the model expected to be better.")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in JUDGES:
            raise ValueError(f"unknown finding kind {kind!r}; expected one of {', '.join(JUDGES)}")
        return kind


def _difference(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(a - b, combined stderr)."""
    return a[0] - b[0], math.sqrt(a[1] ** 2 + b[1] ** 2)


def _direction(diff: float, se: float, better: int = 1) -> int:
    """+1 clearly better, -1 clearly worse, 0 inside the noise band (`better` -1: lower values are better)."""
    diff *= better
    if diff > Z * se:
        return 1
    if diff < -Z * se:
        return -1
    return 0


def _improves(finding: Finding, values: dict[str, tuple[float, float]], better: int) -> tuple[str, str]:
    best = max(finding.baseline, key=lambda name: better * values[name][0])
    diff, se = _difference(values[finding.treatment], values[best])
    verdict = {1: "reproduced", -1: "not reproduced", 0: "cannot tell"}[_direction(diff, se, better)]
    return verdict, f"{finding.treatment} - {best} = {diff:+.2f} (± {Z * se:.2f})"


def _drops_then_recovers(finding: Finding, values: dict[str, tuple[float, float]], better: int) -> tuple[str, str]:
    before, upscaled, continued = (values[name] for name in finding.models)
    drop, se_drop = _difference(upscaled, before)
    recover, se_recover = _difference(continued, upscaled)
    steps = (_direction(drop, se_drop, better), _direction(recover, se_recover, better))
    if steps == (-1, 1):
        verdict = "reproduced"
    elif steps[0] == 1 or steps[1] == -1:
        verdict = "not reproduced"
    else:
        verdict = "cannot tell"
    a, b, c = finding.models
    return verdict, f"{b} - {a} = {drop:+.2f} (± {Z * se_drop:.2f}); {c} - {b} = {recover:+.2f} (± {Z * se_recover:.2f})"


def _similar(finding: Finding, values: dict[str, tuple[float, float]], better: int) -> tuple[str, str]:
    pairs = [(a, b) for i, a in enumerate(finding.models) for b in finding.models[i + 1:]]
    worst = max(pairs, key=lambda pair: abs(_difference(values[pair[0]], values[pair[1]])[0]))
    diff, se = _difference(values[worst[0]], values[worst[1]])
    verdict = "reproduced" if _direction(diff, se) == 0 else "not reproduced"
    return verdict, f"largest gap {worst[0]} - {worst[1]} = {diff:+.2f} (± {Z * se:.2f})"


JUDGES = {"improves": _improves, "drops_then_recovers": _drops_then_recovers, "similar": _similar}


def judge(finding: Finding, scores: Scores, chance: float | None = None) -> dict[str, Any]:
    """The verdict on one finding, with the numbers behind it; "cannot tell" when a model was not scored, and for
    `similar` when every model is within the noise of `chance` (what guessing scores on the metric): models
    that learnt nothing are alike whatever made them, so their likeness shows nothing."""
    names = finding.models + finding.baseline + ([finding.treatment] if finding.treatment else [])
    missing = [name for name in names if finding.metric not in scores.get(name, {})]
    if missing:
        return {"claim": finding.claim, "verdict": "cannot tell",
                "evidence": f"no {finding.metric} score for {', '.join(missing)}"}
    values = {name: scores[name][finding.metric] for name in names}
    lower = finding.metric in LOWER_IS_BETTER
    verdict, evidence = JUDGES[finding.kind](finding, values, -1 if lower else 1)
    if finding.kind == "similar" and chance is not None and all(
            _direction(value - chance, stderr) == 0 for value, stderr in values.values()):
        verdict, evidence = "cannot tell", f"{evidence}; every model within the noise of chance ({chance:.2f})"
    metric = f"{finding.metric} (lower is better)" if lower else finding.metric
    return {"claim": finding.claim, "verdict": verdict, "evidence": f"{metric}: {evidence}"}
