"""`solar-ray merge OUT --method METHOD --model PATH[:WEIGHT[:DENSITY]] ...` (a config file form: `solar-ray run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solar_ray.errors import ConfigError
from solar_ray.merge.plugin import parameter_help
from solar_ray.merge.schedule import family_schedule
from solar_ray.merge.stage import Config, ModelSpec

HELP = {name: field.description for name, field in Config.model_fields.items()}


def parse_model(text: str) -> tuple[str, float | None, float | None]:
    """'runs/a:0.4:0.5' -> ('runs/a', 0.4, 0.5); 'runs/a:0.4' -> ('runs/a', 0.4, None); 'runs/a' -> ('runs/a',
    None, None). Suffixes that are not numbers belong to the path."""
    numbers: list[float] = []
    path = text
    for _ in range(2):
        head, sep, tail = path.rpartition(":")
        if not (sep and head):
            break
        try:
            numbers.insert(0, float(tail))
        except ValueError:
            break
        path = head
    numbers += [None] * (2 - len(numbers))
    return path, numbers[0], numbers[1]


def parse_t(text: str | None, option: str) -> float | list[float] | None:
    """'0.5' -> 0.5; '0,0.5,1' -> [0, 0.5, 1] (anchors varying linearly over the layers)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option}: expected a number or comma-separated numbers in [0, 1], got {text!r}") from None
    return values[0] if len(values) == 1 else values


def register(app: typer.Typer) -> None:
    @app.command()
    def merge(
        out: Annotated[Path, typer.Argument(help="Directory to write the merged model into.")],
        model: Annotated[list[str], typer.Option(
            "--model", help="PATH[:WEIGHT[:DENSITY]], repeated; the first is the base (config, tokenizer, "
            "SLERP t=0, the origin of task vectors). WEIGHT: see the method; DENSITY, " + (ModelSpec.model_fields["density"].description or ""))],
        method: Annotated[str, typer.Option(help=HELP["method"])] = "linear",
        t: Annotated[str | None, typer.Option(
            "--t", help="SLERP t in [0, 1] (default for every tensor), or anchors over layers '0,0.5,1'.")] = None,
        t_attn: Annotated[str | None, typer.Option(
            "--t-attn", help="SLERP t for attention tensors (self_attn), a value or anchors '0,0.5,1'.")] = None,
        t_mlp: Annotated[str | None, typer.Option(
            "--t-mlp", help="SLERP t for MLP tensors, a value or anchors '1,0.5,0'.")] = None,
        density: Annotated[float | None, typer.Option(help=parameter_help("density"))] = None,
        lambda_: Annotated[float | None, typer.Option("--lambda", help=parameter_help("lambda"))] = None,
        normalize: Annotated[bool | None, typer.Option(
            "--normalize/--no-normalize", help=parameter_help("normalize") + " Default: the method's.")] = None,
        rescale: Annotated[bool | None, typer.Option(
            "--rescale/--no-rescale", help=parameter_help("rescale") + " Default: on.")] = None,
        seed: Annotated[int | None, typer.Option(help=parameter_help("seed"))] = None,
        vocab: Annotated[str, typer.Option(help=HELP["vocab"])] = "error",
        allow_pickle: Annotated[bool, typer.Option(help=HELP["allow_pickle"])] = False,
        threads: Annotated[int | None, typer.Option(help=HELP["threads"])] = None,
        max_shard_mb: Annotated[float, typer.Option(help=HELP["max_shard_mb"])] = 5000,
        force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    ) -> None:
        """Merge models: linear, slerp, task_arithmetic, ties, dare_linear, dare_ties or model_stock."""
        from solar_ray.config import validate
        from solar_ray.merge.stage import run

        models = {}
        for i, item in enumerate(model):
            path, weight, model_density = parse_model(item)
            models[f"model_{i}"] = {"path": path, "weight": weight, "density": model_density}
        schedule = family_schedule(parse_t(t, "--t"), parse_t(t_attn, "--t-attn"), parse_t(t_mlp, "--t-mlp"))
        given = {"t": schedule, "density": density, "lambda": lambda_, "normalize": normalize, "rescale": rescale,
                 "seed": seed}
        tree = {"stage": "merge", "output": str(out), "method": method, "models": models,
                "parameters": {k: v for k, v in given.items() if v is not None}, "vocab": vocab,
                "allow_pickle": allow_pickle, "threads": threads, "max_shard_mb": max_shard_mb, "force": force}
        config = validate(Config, tree, "solar-ray merge")
        typer.echo(f"wrote {run(config)}")
