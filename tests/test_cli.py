"""Usage errors end with click's usage line and one `Error:` line, exit 2, no traceback."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.parametrize("args, message", [
    (["pipeline", "--bogus"], "No such option: --bogus"),
    (["pipeline", "x.yaml", "--from", "a", "--only", "b"], "use --from or --only, not both"),
    (["upscale"], "Missing"),
])
def test_usage_errors_are_one_line(monkeypatch, capsys, args, message):
    from solar_ray.cli import main

    monkeypatch.setattr(sys, "argv", ["solar-ray", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], err


def test_failed_ray_workers_are_one_line_naming_the_first_error_and_the_trace_file(monkeypatch, capsys):
    from ray.train.v2.api.exceptions import WorkerGroupError

    import solar_ray.cli as cli

    def fails(**_):  # what a training stage raises when its workers fail
        try:
            raise KeyError("'chosen' column missing in runs/x/train.parquet")
        except KeyError as exc:
            raise WorkerGroupError("Training failed due to worker errors", {1: ValueError("rank 1"), 0: exc}) from None

    monkeypatch.setattr(cli, "app", fails)
    monkeypatch.setattr(sys, "argv", ["solar-ray", "run", "x.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: KeyError: \"'chosen' column missing in runs/x/train.parquet\" (full trace: ")
    trace = err.strip().rsplit("full trace: ", 1)[1].rstrip(")")
    assert "WorkerGroupError" in open(trace).read()
