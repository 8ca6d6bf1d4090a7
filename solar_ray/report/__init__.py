"""Reports people compare: tables and plots in markdown, HTML and PNG, for pipelines, sweeps and evaluations."""

from __future__ import annotations

from pathlib import Path

from solar_ray.errors import ArtifactError


def write_pipeline_report(root: str | Path) -> Path:
    """Report on a pipeline output directory from its pipeline.json and artifacts."""
    from solar_ray.report.pipeline_report import write_pipeline_report as write

    return write(Path(root))


def write_report(directory: str | Path) -> Path:
    """Report on a pipeline output directory (pipeline.json), a Tune sweep, or an eval artifact."""
    directory = Path(directory)
    if (directory / "pipeline.json").is_file():
        return write_pipeline_report(directory)
    if (directory / "best.json").is_file() and (directory / "lineage.json").is_file():  # a sweep artifact
        from solar_ray.tune.report import report_sweep_artifact

        return report_sweep_artifact(directory)
    raise ArtifactError(f"{directory}: nothing to report on (expected a pipeline output with pipeline.json)")
