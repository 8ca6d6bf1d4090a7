"""`solar-ray synth-math`: the synth_math stage from the command line, for the common settings.

Everything else (decontamination, prompt format, engine options) is in the YAML form:
`solar-ray run experiments/tiny/synth_math.yaml key=value ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solar_ray.synth.engines import SamplingSettings
from solar_ray.synth.stage import Config

_HELP = {name: field.description for name, field in Config.model_fields.items()}
_SAMPLING = {name: field.description for name, field in SamplingSettings.model_fields.items()}


def synth_math(
    seed_data: Annotated[Path, typer.Argument(help=_HELP["seed_data"])],
    model: Annotated[str, typer.Argument(help=_HELP["model"])],
    out: Annotated[Path, typer.Argument(help="Output directory: instruct/ and alignment/ dataset artifacts.")],
    engine: Annotated[str, typer.Option(help=_HELP["engine"])] = "transformers",
    n: Annotated[int, typer.Option(help=_SAMPLING["n"])] = 1,
    temperature: Annotated[float, typer.Option(help=_SAMPLING["temperature"])] = 0.7,
    top_p: Annotated[float, typer.Option(help=_SAMPLING["top_p"])] = 0.95,
    max_tokens: Annotated[int, typer.Option(help=_SAMPLING["max_tokens"])] = 512,
    seed: Annotated[int, typer.Option(help=_SAMPLING["seed"])] = 0,
    actors: Annotated[int, typer.Option(help=_HELP["actors"])] = 2,
    max_seed_rows: Annotated[int | None, typer.Option(help=_HELP["max_seed_rows"])] = None,
    benchmarks_dir: Annotated[Path | None, typer.Option(
        help="Benchmarks directory to decontaminate against (gsm8k), e.g. WORLD/data/benchmarks.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Rephrase MATH problems MetaMath-style; write Synth. Math-Instruct and Synth. Math-Alignment to OUT."""
    from solar_ray.config import validate
    from solar_ray.synth.stage import run

    config = validate(Config, {
        "stage": "synth_math", "seed_data": str(seed_data), "model": model, "output": str(out), "engine": engine,
        "sampling": {"n": n, "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed},
        "actors": actors, "max_seed_rows": max_seed_rows, "force": force,
        "decontamination": {"benchmarks_dir": str(benchmarks_dir) if benchmarks_dir else None},
    }, "command line")
    path = run(config)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("synth-math")(synth_math)
