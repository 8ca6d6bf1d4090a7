"""`solar-ray upscale` and `solar-ray seam`: thin wrappers over the upscale stage and the seam report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solar_ray.upscale.stage import Config

_HELP = {name: field.description for name, field in Config.model_fields.items()}


def upscale(
    base: Annotated[Path, typer.Argument(help=_HELP["base"])],
    out: Annotated[Path, typer.Argument(help="Output model directory (written atomically).")],
    method: Annotated[str, typer.Option("--method", help=_HELP["method"])] = "dus",
    drop: Annotated[int | None, typer.Option("--drop", help=_HELP["drop"])] = None,
    insert: Annotated[int | None, typer.Option("--insert", help=_HELP["insert"])] = None,
    layers: Annotated[int | None, typer.Option("--layers", help=_HELP["layers"])] = None,
    as_llama: Annotated[bool, typer.Option("--as-llama", help=_HELP["as_llama"])] = False,
    max_position_embeddings: Annotated[
        int | None, typer.Option("--max-position-embeddings", help=_HELP["max_position_embeddings"])
    ] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=_HELP["allow_pickle"])] = False,
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help=_HELP["max_shard_size"])] = "5GB",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Up-scale BASE (n layers) into OUT: DUS (2(n-M) layers), DUS with averaged overlap, stacking (2n) or block
    expansion (n+P), streaming tensors by byte range."""
    from solar_ray.config import validate
    from solar_ray.upscale.stage import run

    config = validate(Config, {
        "stage": "upscale", "base": str(base), "output": str(out), "method": method, "drop": drop,
        "insert": insert, "layers": layers,
        "as_llama": as_llama, "max_position_embeddings": max_position_embeddings, "allow_pickle": allow_pickle,
        "max_shard_size": max_shard_size, "force": force,
    }, "command line")
    path = run(config)
    typer.echo(f"wrote {path}")


def seam(
    base: Annotated[Path, typer.Argument(help="Base model directory to diagnose.")],
    out: Annotated[Path, typer.Option("--out", help="Report directory: report.md, seam.csv, seam.png.")],
    text: Annotated[Path | None, typer.Option(
        "--text", help="Calibration texts: one per line, or .jsonl with 'text' (default: the tiny world's "
        "pretrain validation split next to BASE, else built-in sentences).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many calibration texts.")] = 64,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=_HELP["allow_pickle"])] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Seam diagnostics to choose M: hidden-state cosine across the seam and parameter count for each M."""
    from rich.console import Console
    from rich.table import Table

    from solar_ray.upscale.seam import seam_report

    path, rows = seam_report(base, out, text_file=text, limit=limit, force=force, allow_pickle=allow_pickle)
    table = Table(title=f"seam diagnostics: {base}")
    for column in ("M (drop)", "layers", "seam (base layers)", "cosine", "parameters"):
        table.add_column(column, justify="right")
    for row in rows:
        params = "-" if row["params"] is None else f"{row['params']:,}"
        table.add_row(str(row["drop"]), str(row["layers"]), row["seam_layers"], f"{row['cosine']:.4f}", params)
    Console(width=120).print(table)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("upscale")(upscale)
    app.command("seam")(seam)
