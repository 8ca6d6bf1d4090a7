"""The `report:` block of an experiment: which tables, curves and findings the final report shows."""

from __future__ import annotations

from pydantic import Field

from solar_ray.config import Strict
from solar_ray.report.findings import Finding

# pipeline.json, which the pipeline writes and the report reads (the report never loads the experiment):
#   experiment, description, source, report (this module's ReportSpec), started_at, parallel, seconds,
#   graph: {stage: {"kind", "parents"}} in run order, stages: {stage: {"status", "started_at", "seconds"}}.
EARLIER_RUN = "ran earlier"  # the status of a stage that a --from / --only run did not select


class TableSpec(Strict):
    title: str = Field(description="Caption, e.g. 'Table 3: instruction-tuning ablations'.")
    eval: str = Field(description="The eval stage whose scores fill the table.")
    models: list[str] = Field(default_factory=list, description="Rows, in order (default: every model scored).")
    losses: dict[str, str] = Field(
        default_factory=dict, description="Row -> training stage whose final training loss (mean of its last "
        "steps) fills a `loss` column beside the scores."
    )


class CurveSpec(Strict):
    title: str = Field(description="Plot title.")
    stages: dict[str, str] = Field(description="Legend label -> training stage whose metrics.jsonl is plotted.")
    metric: str = Field(default="loss", description="Which metrics.jsonl field to plot against step.")
    sequential: bool = Field(
        default=False, description="Each stage continues the previous one: plot it after the previous one's last step."
    )


class ReportSpec(Strict):
    tables: list[TableSpec] = Field(default_factory=list, description="Score tables to show.")
    loss_curves: list[CurveSpec] = Field(default_factory=list, description="Training curves to plot.")
    findings: list[Finding] = Field(default_factory=list, description="The paper's findings to judge.")
    limits: list[str] = Field(default_factory=list, description="What this scale cannot show, in sentences.")
