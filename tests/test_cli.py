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
