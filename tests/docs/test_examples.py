"""The documented commands cannot drift: every `solar-ray ...` example in the READMEs, the YAML first lines, the
`--help` texts and the docstrings parses with the CLI's own parser, and every config it names validates."""

from __future__ import annotations

import pytest

from tests.docs.examples import REPO, all_examples, forms, is_name_mention, parse, validate_configs

EXAMPLES = all_examples()


def test_examples_are_found_in_every_kind_of_place():
    places = {example.where.split(":")[0].split(" --help")[0] for example in EXAMPLES}
    assert "README.md" in places and "solar_ray/cli.py" in places
    assert any(place.startswith("experiments/tiny/") for place in places)
    assert any(place.startswith("solar-ray ") for place in places)  # a --help text
    texts = {example.text.split()[1] for example in EXAMPLES}
    assert {"tiny", "upscale", "seam", "merge", "eval", "synth-math", "run", "pipeline", "report"} <= texts


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.where} {e.text}"[:120])
def test_documented_command_parses_and_its_config_validates(example, monkeypatch):
    monkeypatch.chdir(REPO)  # configs in examples are named from the repository root
    if is_name_mention(example.text):
        import typer

        from solar_ray.cli import app

        assert example.text.split()[1] in typer.main.get_command(app).commands, example
        return
    for args in forms(example.text):
        try:
            parse(args)
        except Exception as exc:
            pytest.fail(f"{example.where}: `{example.text}` does not parse as `solar-ray {' '.join(args)}`: {exc}")
        try:
            validate_configs(args)
        except Exception as exc:
            pytest.fail(f"{example.where}: `{example.text}`: its config does not validate: {exc}")
