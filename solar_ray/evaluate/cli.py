"""`solar-ray eval OUT --model NAME=PATH ... --data DIR [--tasks h6] [--limit N|TASK=N,...]` (config form: `solar-ray run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solar_ray.errors import ConfigError
from solar_ray.evaluate.stage import Config

HELP = {name: field.description for name, field in Config.model_fields.items()}


def parse_models(items: list[str]) -> dict[str, str]:
    """['base=runs/base', 'runs/sft'] -> {'base': 'runs/base', 'sft': 'runs/sft'} (name defaults to dir name)."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else (Path(item).name, item)
        if not name or not path:
            raise ConfigError(f"--model {item!r}: expected NAME=PATH or PATH")
        if name in models:
            raise ConfigError(f"--model {item!r}: name {name!r} given twice; use NAME=PATH to tell them apart")
        models[name] = path
    return models


def parse_limit(text: str | None) -> int | dict[str, int | None] | None:
    """'30' -> 30; 'all' -> None (every item); 'default=30,gsm8k=all' -> {'default': 30, 'gsm8k': None}: the config's
    per-task mapping."""
    if text is None or text.strip() == "all":
        return None
    try:
        if "=" not in text:
            return int(text)
        return {key.strip(): None if count.strip() == "all" else int(count)
                for key, _, count in (pair.partition("=") for pair in text.split(","))}
    except ValueError:
        raise ConfigError(f"--limit {text!r}: expected N or TASK=N|all,... (e.g. default=30,gsm8k=all)") from None


def register(app: typer.Typer) -> None:
    @app.command(name="eval")
    def eval_command(
        out: Annotated[Path, typer.Argument(help="Artifact directory to write (results, summary, tables).")],
        model: Annotated[list[str], typer.Option("--model", help="NAME=PATH or PATH, repeated: models side by side.")],
        data: Annotated[Path, typer.Option("--data", help=HELP["data_dir"])],
        tasks: Annotated[str, typer.Option(help="Comma-separated suites or tasks, e.g. h6 or arc_challenge,gsm8k.")] = "h6",
        limit: Annotated[str | None, typer.Option(
            help="Items per task (per MMLU subject): N, or `all` (the default). TASK=N pairs set it per task, "
                 "`default` for the others, `all` for every item: --limit default=30,gsm8k=all.")] = None,
        backend: Annotated[str, typer.Option(help=HELP["backend"])] = "hf",
        device: Annotated[str, typer.Option(help=HELP["device"])] = "cpu",
        batch_size: Annotated[int, typer.Option(help=HELP["batch_size"])] = 16,
        workers: Annotated[int | None, typer.Option(help=HELP["workers"])] = None,
        max_gen_toks: Annotated[int | None, typer.Option(help=HELP["max_gen_toks"])] = None,
        force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    ) -> None:
        """Score models on the leaderboard v1 tasks (H6) with lm-eval, offline, spread over Ray actors."""
        from solar_ray.config import validate
        from solar_ray.evaluate.stage import run

        tree = {"stage": "eval", "output": str(out), "models": parse_models(model), "data_dir": str(data),
                "tasks": [t for t in tasks.split(",") if t], "limit": parse_limit(limit), "backend": backend, "device": device,
                "batch_size": batch_size, "workers": workers, "max_gen_toks": max_gen_toks, "force": force}
        path = run(validate(Config, tree, "solar-ray eval"))
        typer.echo(f"wrote {path}")
