"""The `solar-ray` command line: a thin layer from arguments to a stage config and its `run`.

Bad input ends with one line on stderr naming the file, key, row or tensor at fault and a non-zero exit;
`--debug` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

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
    seed: Annotated[int, typer.Option(help="Seed for the synthetic language, data and model init.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Write the offline tiny world: a small Llama base model, its tokenizer, and datasets in every upstream schema."""
    from solar_ray.tiny.stage import Config, run

    path = run(Config(stage="tiny", output=str(out), seed=seed, force=force))
    typer.echo(f"wrote {path}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    config: Annotated[Path, typer.Argument(help="Stage config YAML; its `stage:` key picks the stage.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
) -> None:
    """Run one stage from a config file, e.g. `solar-ray run experiments/tiny/sft_v1.yaml train.epochs=2`."""
    from solar_ray.config import load_config
    from solar_ray.stages import run_stage

    stage_config = load_config(config, overrides or [])
    path = run_stage(stage_config)
    typer.echo(f"wrote {path}")


def _register_stage_commands() -> None:
    """Commands that belong to one stage live with that stage and add themselves here."""


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
    except (typer.BadParameter, Exception) as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, FileNotFoundError) and not debug:
            typer.echo(f"error: {exc.filename}: file not found", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
