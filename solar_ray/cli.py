"""The `solar-ray` command line: a thin layer from arguments to a stage config and its `run`.

Bad input ends with one line on stderr naming the file, key, row or tensor at fault and a non-zero exit;
`--debug` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from solar_ray.errors import SolarRayError

app = typer.Typer(
    name="solar-ray",
    help="Grow and tune language models the SOLAR 10.7B way, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def tiny(
    out: Annotated[Path, typer.Argument(help="Directory to write the tiny world into.")],
    seed: Annotated[int, typer.Option(help="Seed for the base model's initialisation.")] = 0,
    language_seed: Annotated[int, typer.Option(
        help="Seed for the world itself: its language, datasets, benchmark items and tokenizer.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Write the offline tiny world: a small Llama base model, its tokenizer, and datasets in every upstream schema."""
    from solar_ray.tiny.stage import Config, run

    path = run(Config(stage="tiny", output=str(out), seed=seed, language_seed=language_seed, force=force))
    typer.echo(f"wrote {path}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    config: Annotated[Path, typer.Argument(help="Stage config YAML; its `stage:` key picks the stage.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
) -> None:
    """Run one stage from a config file, e.g. `solar-ray run experiments/tiny/sft.yaml optim.epochs=2`."""
    from solar_ray.config import load_config
    from solar_ray.output_root import claim, stage_paths
    from solar_ray.stages import run_stage

    stage_config = load_config(config, overrides or [])
    output = getattr(stage_config, "output", None)
    with claim(Path(output).parent, stage_paths(stage_config)) if output else contextlib.nullcontext():
        path = run_stage(stage_config)
    typer.echo(f"wrote {path}")


@app.command()
def pipeline(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML naming its stages, configs and inputs.")],
    start: Annotated[str | None, typer.Option("--from", help="Rerun this stage and everything downstream.")] = None,
    only: Annotated[str | None, typer.Option("--only", help="Run just this stage (its inputs must exist).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate every config and print the plan.")] = False,
    output: Annotated[str | None, typer.Option(help="Output root (default: the experiment's, or runs/<name>).")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the final report.")] = False,
    parallel: Annotated[int | None, typer.Option(
        min=1, help="Stages at once, as the cluster's CPUs/GPUs allow (default: the experiment's `parallel`).")] = None,
    cluster: Annotated[Path | None, typer.Option(
        "--cluster", help="Cluster spec (as for `solar-ray plan`): the dry-run adds fit, hours and cost; a run "
                          "checks each stage fits it before starting (default: the Ray cluster joined).")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Stream all output (Ray workers, libraries) instead of writing it to <output>/logs/.")] = False,
    seed: Annotated[int | None, typer.Option(
        min=0, help="The experiment's seed, added to every stage's seeds (default: the experiment's `seed`, 0).")] = None,
    rehearse: Annotated[bool, typer.Option("--rehearse", help="Run the experiment offline on this machine with only "
                                           "its sizes changed (rehearsal.yaml beside it; a local stand-in hub).")] = False,
) -> None:
    """Run a whole experiment as a DAG of stages; completed stages with unchanged inputs are skipped."""
    import time

    from solar_ray.pipeline import Pipeline

    if start and only:
        raise typer.BadParameter("use --from or --only, not both")
    profile = None
    if rehearse:
        from solar_ray.rehearsal.session import prepare

        profile, output = prepare(experiment, output)
    started = time.monotonic()
    pipe = Pipeline(experiment, output=output, seed=seed, profile=profile)
    spec = None
    if cluster is not None:
        from solar_ray.plan.cluster import load_cluster

        spec = load_cluster(cluster)
    if dry_run:
        from rich.console import Console
        from rich.table import Table

        from solar_ray.plan.render import COLUMNS

        table = Table(title=f"{pipe.experiment.name}: plan ({pipe.root})")
        columns = ("stage", "kind", "inputs", "resources", "reserves", "status", *COLUMNS)
        for column in columns:
            table.add_column(column, overflow="fold")
        rows = pipe.plan(start, only, spec)
        for row in rows:
            table.add_row(*(str(row[c]) for c in columns))
        console = Console(width=260, emoji=False)
        console.print(table)
        console.print(plan_summary([row["status"] for row in rows]), highlight=False)
        return
    from solar_ray.console import pipeline_console
    from solar_ray.output_root import claim

    with claim(pipe.root, [pipe.root]), pipeline_console(pipe, verbose=verbose):
        pipe.run(start=start, only=only, report=not no_report, parallel=parallel, cluster_spec=spec)
    if rehearse:
        typer.echo(f"rehearsal of {experiment}: every stage ran, in {time.monotonic() - started:.0f} s ({pipe.root})")


def plan_summary(statuses: list[str]) -> str:
    """The dry-run's last line: how many stages will run, may run, are cached."""
    from solar_ray.plan.planner import CACHED, MAY_RUN, NOT_SELECTED, WILL_RUN

    counts = {status: statuses.count(status) for status in (WILL_RUN, MAY_RUN, CACHED, NOT_SELECTED)}
    line = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    if counts[MAY_RUN]:
        line += (f" ({MAY_RUN}: current, below a stage that will run; made again only if that stage's new artifact "
                 "differs, else cached)")
    return line


@app.command()
def plan(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML naming its stages, configs and inputs.")],
    cluster: Annotated[Path, typer.Option(
        "--cluster", help="Cluster spec: a small node_types YAML, a Ray launcher YAML (cluster/aws, cluster/gcp) "
                          "or a KubeRay RayCluster.")],
    mfu: Annotated[float, typer.Option(min=0.01, max=1.0, help="Training model-FLOPs utilisation.")] = 0.4,
    inference_mfu: Annotated[float, typer.Option(
        min=0.01, max=1.0, help="Inference (generation, scoring) model-FLOPs utilisation.")] = 0.15,
    spot: Annotated[bool, typer.Option(help="Also place stages on spot node types.")] = False,
    output: Annotated[str | None, typer.Option(help="Output root (default: the experiment's, or runs/<name>).")] = None,
) -> None:
    """Plan an experiment on a cluster: per stage memory per device, fit, work, hours, disk and cost; totals."""
    from solar_ray.pipeline import Pipeline
    from solar_ray.plan.cluster import load_cluster
    from solar_ray.plan.planner import make_plan
    from solar_ray.plan.render import print_plan

    pipe = Pipeline(experiment, output=output)
    spec = load_cluster(cluster)
    result = make_plan(pipe, spec, mfu=mfu, inference_mfu=inference_mfu, spot=spot)
    print_plan(result, f"{pipe.experiment.name} on {spec.name} ({cluster})")


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="A pipeline's output directory (runs/<experiment>).")],
    lines: Annotated[int, typer.Option(help="Log lines shown per running or failed stage.")] = 3,
) -> None:
    """What a running or finished pipeline is doing, read from its files (stage states, times, progress, logs)."""
    from solar_ray.console.status import print_status

    print_status(run_dir, lines=lines)


@app.command()
def report(
    directories: Annotated[list[Path], typer.Argument(
        help="A pipeline output, sweep or eval artifact directory; several pipeline outputs: compare their findings.")],
) -> None:
    """Write tables and plots (markdown, HTML, PNG) for a pipeline, sweep or evaluation directory.

    Given several pipeline outputs of one experiment (other seeds), print their findings side by side instead,
    and each benchmark finding judged on the runs pooled (every item's score averaged over the runs):

        solar-ray report runs/tiny runs/tiny_seed1 runs/tiny_seed2
    """
    if len(directories) > 1:
        from solar_ray.report.pipeline_report import compare_runs

        typer.echo(compare_runs(directories), nl=False)
        return
    from solar_ray.report import write_report

    typer.echo(f"wrote {write_report(directories[0])}")


def _register_stage_commands() -> None:
    """Commands that belong to one stage live with that stage and add themselves here."""
    from solar_ray.evaluate.cli import register as register_evaluate
    from solar_ray.merge.cli import register as register_merge
    from solar_ray.synth.cli import register as register_synth_math
    from solar_ray.upscale.cli import register as register_upscale

    for register in (register_merge, register_upscale, register_evaluate, register_synth_math):
        register(app)


_register_stage_commands()


def main() -> None:
    debug = "--debug" in sys.argv[1:] or os.environ.get("SOLAR_RAY_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except SolarRayError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:  # click.exceptions.Exit
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, _USAGE_ERRORS):  # bad arguments: click prints its usage line and "Error: ..."
            exc.show()
            sys.exit(exc.exit_code)
        reported = getattr(exc, "solar_ray_reported", None)  # a failed pipeline stage the console has shown
        if reported and not debug:
            typer.echo(f"error: {reported}", err=True)
            sys.exit(1)
        if not debug and type(exc).__module__.startswith("ray."):  # work on Ray failed: a worker, trial, actor
            from solar_ray.errors import root_cause

            trace = _write_trace(exc)
            typer.echo(f"error: {root_cause(exc)} (full trace: {trace})", err=True)
            sys.exit(1)
        if isinstance(exc, FileNotFoundError) and not debug:
            typer.echo(f"error: {exc.filename}: file not found", err=True)
            sys.exit(2)
        raise


def _write_trace(exc: BaseException) -> str:
    """The whole traceback, workers' included, in a file of its own: the console keeps one line."""
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="solar-ray-error-", suffix=".txt", delete=False) as handle:
        handle.write("".join(traceback.format_exception(exc)))
    return handle.name


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's exception base, and typer's own copy of it: recent typer vendors click as `typer._click`."""
    import click

    vendored = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return tuple({click.ClickException, vendored})


_USAGE_ERRORS = _usage_errors()


if __name__ == "__main__":
    main()
