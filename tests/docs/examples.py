"""Every `solar-ray ...` command the project documents, found where a user reads it: the README files and docs/, the
first line of every shipped YAML, the `--help` texts and the package's docstrings.

A documented command is often a usage form (`solar-ray upscale BASE OUT --drop M [--layers L]`): optional
`[...]` parts are tried both left out and filled in, `...` repeats are dropped and ALL-CAPS words are
placeholders. `parse` runs each form through the CLI's own click parser; `validate_configs` loads the configs
it names with the config validator (placeholder overrides left out).
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"^(\.\.\.|[A-Z][A-Z0-9_]*(\.\.\.|\.yaml)?|.*<[^>]*>.*|[\w.]*=(\.\.\.|[A-Z][A-Z0-9_]*)|key=value)$")
SPAN = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Example:
    where: str  # file:line, or the command whose --help shows it
    text: str   # the command as documented, from `solar-ray` on


def _from_text(where: str, text: str, first_line: int = 1) -> list[Example]:
    """Commands in backticks, and lines of code blocks / indented examples that start with `solar-ray`."""
    found = []
    joined = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
    for number, line in enumerate(joined.splitlines(), first_line):
        spans = SPAN.findall(line)
        for i, span in enumerate(spans):
            if span.startswith("solar-ray "):
                found.append(Example(f"{where}:{number}", span))
            elif span.startswith("--") and i and spans[i - 1].startswith("solar-ray ") and " / `" in line:
                # a table cell's alternative form: `solar-ray merge OUT --method linear ...` / `--method slerp ...`
                found.append(Example(f"{where}:{number}", " ".join(spans[i - 1].split()[:3]) + " " + span))
        if not spans and "solar-ray " in line:
            # a command line: at the start, after a prompt or comment sign, or after `ray job submit ... --`
            before = line[: line.index("solar-ray ")].rstrip()
            if before in ("", "#", "$", "-") or before.endswith(" --"):
                found.append(Example(f"{where}:{number}", line[line.index("solar-ray "):]))
    return found


def readme_examples() -> list[Example]:
    examples = []
    for readme in (REPO / "README.md", REPO / "cluster" / "README.md", *sorted((REPO / "docs").glob("*.md"))):
        examples += _from_text(str(readme.relative_to(REPO)), readme.read_text())
    return examples


def yaml_first_lines() -> list[Example]:
    examples = []
    for path in sorted((REPO / "experiments").rglob("*.yaml")):
        first = path.read_text().splitlines()[0]
        if first.startswith("# solar-ray "):
            examples.append(Example(f"{path.relative_to(REPO)}:1", first.removeprefix("# ")))
    return examples


def help_examples() -> list[Example]:
    import typer

    from solar_ray.cli import app

    group = typer.main.get_command(app)
    examples = []
    for name, command in group.commands.items():
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        for text in texts:
            examples += _from_text(f"solar-ray {name} --help", text)
    return examples


def docstring_examples() -> list[Example]:
    examples = []
    for path in sorted((REPO / "solar_ray").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    line = node.body[0].lineno if node.body else 1
                    examples += _from_text(str(path.relative_to(REPO)), doc, line)
    return examples


def all_examples() -> list[Example]:
    return readme_examples() + yaml_first_lines() + help_examples() + docstring_examples()


def forms(text: str) -> list[list[str]]:
    """The argument lists a usage form stands for: optional [...] parts left out, and all filled in."""
    text = re.sub(r"\s+\(.*\)\s*$", "", text.split("  #")[0]).strip()  # a trailing (remark) or # comment
    text = re.sub(r"\s+#.*$", "", text)
    variants = {re.sub(r"\[[^\[\]]*\]", "", text), re.sub(r"\[([^\[\]]*)\]", r"\1", text)}
    result = []
    for variant in sorted(variants):
        tokens = shlex.split(variant)
        assert tokens[0] == "solar-ray", variant
        if len(tokens) > 2 and tokens[2] == "...":
            tokens[2] = "ARGS"  # `solar-ray pipeline ... --output DIR`: "..." stands for the arguments
        tokens = [token.split("|")[0] for token in tokens]  # `--method linear|slerp`: either
        # "..." repeats what precedes it, except after an option, where it stands for the option's value
        result.append([token for i, token in enumerate(tokens) if i and token != "--debug"
                       and (token != "..." or tokens[i - 1].startswith("--"))])
    return result


def is_name_mention(text: str) -> bool:
    """`solar-ray run` in prose names a command; it is no example of calling it."""
    return len(text.split()) == 2


def parse(args: list[str]):
    """The click context of `solar-ray ARGS` (click raises UsageError for an unknown command, unknown option,
    missing or extra argument); placeholder option values (`--drop M`) become 1, which every option type takes."""
    import click
    import typer

    from solar_ray.cli import app

    group = typer.main.get_command(app)
    parent = group.make_context("solar-ray", [], resilient_parsing=True)
    if not args:
        raise click.UsageError("no command")
    command = group.get_command(parent, args[0])
    if command is None:
        raise click.UsageError(f"No such command '{args[0]}'")
    takes_value = {opt for param in command.params if param.opts[0].startswith("-")
                   and not getattr(param, "is_flag", False) for opt in param.opts}
    args = [("1" if i and args[i - 1] in takes_value and PLACEHOLDER.match(token) else token)
            for i, token in enumerate(args)]
    return command.make_context(args[0], list(args[1:]), parent=parent)


def validate_configs(args: list[str], cwd: Path = REPO) -> str | None:
    """Load the config a `run` / `pipeline` example names (if it names a real file rather than a placeholder)
    with the validator; returns what was validated, or None."""
    from solar_ray.config import load_config
    from solar_ray.pipeline import Pipeline

    if args[0] not in ("run", "pipeline") or len(args) < 2 or PLACEHOLDER.match(args[1]):
        return None
    path = cwd / args[1]
    if args[0] == "pipeline":
        Pipeline(path)
    else:
        overrides = [token for token in args[2:] if "=" in token and not PLACEHOLDER.match(token)]
        load_config(path, overrides)
    return str(path)
