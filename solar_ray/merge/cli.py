"""`solar-ray merge OUT --method linear|slerp --model PATH[:WEIGHT] ...` (a config file form: `solar-ray run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solar_ray.errors import ConfigError
from solar_ray.merge.stage import Config

HELP = {name: field.description for name, field in Config.model_fields.items()}


def parse_model(text: str) -> tuple[str, float]:
    """'runs/a:0.4' -> ('runs/a', 0.4); 'runs/a' -> ('runs/a', 1.0). A suffix that is not a number is path."""
    path, sep, weight = text.rpartition(":")
    if sep and path:
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 1.0


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
            "--model", help="PATH[:WEIGHT], repeated; the first is the base (config, tokenizer, SLERP t=0).")],
        method: Annotated[str, typer.Option(help=HELP["method"])] = "linear",
        t: Annotated[str | None, typer.Option(
            "--t", help="SLERP t in [0, 1] (default for every tensor), or anchors over layers '0,0.5,1'.")] = None,
        t_attn: Annotated[str | None, typer.Option(
            "--t-attn", help="SLERP t for attention tensors (self_attn), a value or anchors '0,0.5,1'.")] = None,
        t_mlp: Annotated[str | None, typer.Option(
            "--t-mlp", help="SLERP t for MLP tensors, a value or anchors '1,0.5,0'.")] = None,
        no_normalize: Annotated[bool, typer.Option(
            "--no-normalize", help="Use linear weights as given instead of dividing them by their sum.")] = False,
        vocab: Annotated[str, typer.Option(help=HELP["vocab"])] = "error",
        allow_pickle: Annotated[bool, typer.Option(help=HELP["allow_pickle"])] = False,
        threads: Annotated[int | None, typer.Option(help=HELP["threads"])] = None,
        max_shard_mb: Annotated[float, typer.Option(help=HELP["max_shard_mb"])] = 5000,
        force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    ) -> None:
        """Merge models: weighted average (--method linear) or spherical interpolation (--method slerp)."""
        from solar_ray.config import validate
        from solar_ray.merge.stage import run

        models = {}
        for i, item in enumerate(model):
            path, weight = parse_model(item)
            models[f"model_{i}"] = {"path": path, "weight": weight}
        schedule = parse_t(t, "--t")
        by_family = {k: v for k, v in (("self_attn", parse_t(t_attn, "--t-attn")),
                                       ("mlp", parse_t(t_mlp, "--t-mlp"))) if v is not None}
        if by_family:
            if schedule is None:
                raise ConfigError("--t: missing; --t-attn/--t-mlp set some tensors, --t gives the rest")
            schedule = {**by_family, "default": schedule}
        tree = {"stage": "merge", "output": str(out), "method": method, "models": models, "t": schedule,
                "normalize": not no_normalize, "vocab": vocab, "allow_pickle": allow_pickle, "threads": threads,
                "max_shard_mb": max_shard_mb, "force": force}
        config = validate(Config, tree, "solar-ray merge")
        typer.echo(f"wrote {run(config)}")
