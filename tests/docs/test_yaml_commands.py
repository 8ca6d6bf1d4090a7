"""Every shipped tiny YAML whose first line is a command a user runs on its own works exactly as written, after the
main job, from a fresh folder: a copy of experiments/ and the main job's runs/tiny, as a new clone has them after
`bash scripts/main.sh`.

Which first lines: those in experiments/tiny/ with no placeholder (`A`, `...`) whose YAML is not a stage config
of a pipeline. A pipeline's stage configs take their inputs from the pipeline, which runs them: the main job
(`solar-ray pipeline experiments/tiny/pipeline.yaml`, pipeline.yaml's own first line) is run exactly as written
by `main_job_runs` below. experiments/solar_10_7b/ needs GPUs and the model hub; tests/docs/test_examples.py
checks its commands against the parser and the validator.

The main job's output: the repository's runs/tiny if `bash scripts/main.sh` wrote it. Else its rehearsal, run
exactly as experiments/tiny/rehearsal.yaml's first line says (every stage of the main job, wired as in it, a few
steps and items each: 8-10 min on 2 cores where the main job takes 20-25), in a cache folder (SOLAR_RAY_MAIN_JOB_CACHE,
default ~/.cache/solar-ray/main-job-rehearsal) whose later runs only check that its stages are current. The
commands below need the main job's artifacts to exist, not to be good; the main job at full size (22 min inside CI
on 2 cores) is `bash scripts/main.sh`'s. SOLAR_RAY_MAIN_JOB=full runs it in the cache instead
(~/.cache/solar-ray/main-job).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solar_ray.config import load_config, read_yaml
from tests.docs.examples import PLACEHOLDER, forms

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "tiny"
SOLAR_RAY = Path(sys.executable).parent / "solar-ray"


def first_line_command(path: Path) -> list[str]:
    """The first line's command as a user types it (its trailing `(remark)` left out)."""
    (args,) = {tuple(form) for form in forms(path.read_text().splitlines()[0].removeprefix("# "))}
    return ["solar-ray", *args]


def pipeline_stage_configs() -> set[str]:
    return {stage["config"] for pipeline in TINY.glob("pipeline*.yaml")
            for stage in read_yaml(pipeline)["stages"].values()}


# Stage configs of the pipeline whose first line is also a command users run on the main job's output.
ALSO_RUN_ALONE = {"merge_sweep.yaml"}


def standalone_commands() -> list[Path]:
    stages = pipeline_stage_configs()
    return [path for path in sorted(TINY.glob("*.yaml"))
            if "stage" in read_yaml(path) and (path.name not in stages or path.name in ALSO_RUN_ALONE)
            and not any(PLACEHOLDER.match(token) or "=" in token and PLACEHOLDER.match(token.split("=", 1)[1])
                        for token in first_line_command(path))]


def main_job_runs() -> Path:
    """runs/tiny of a finished main job (the repository's), else the output of the main job's rehearsal, or with
    SOLAR_RAY_MAIN_JOB=full of the main job, made (or brought up to date) in a cache folder here."""
    cached = os.environ.get("SOLAR_RAY_MAIN_JOB_CACHE")
    if (REPO / "runs" / "tiny" / "pipeline.json").is_file() and cached is None:
        return REPO / "runs" / "tiny"
    full = os.environ.get("SOLAR_RAY_MAIN_JOB") == "full"
    cache = Path(cached or Path.home() / ".cache" / "solar-ray" / ("main-job" if full else "main-job-rehearsal"))
    cache.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache / "experiments", ignore_errors=True)
    shutil.copytree(REPO / "experiments", cache / "experiments")
    command = first_line_command(TINY / ("pipeline.yaml" if full else "rehearsal.yaml"))
    started = time.monotonic()
    result = subprocess.run([str(SOLAR_RAY), *command[1:]], cwd=cache, capture_output=True, text=True, check=False)
    print(f"`{shlex.join(command)}` in {cache}: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, f"`{shlex.join(command)}` failed in {cache}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return cache / "runs" / ("tiny" if full else "tiny-rehearsal")


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A folder like a clone after the main job: experiments/ copied, runs/tiny holding links to the main job's
    artifacts (a commands' output under runs/tiny lands in this folder, never in the cached run)."""
    runs = main_job_runs()
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(REPO / "experiments", root / "experiments")
    (root / "runs" / "tiny").mkdir(parents=True)
    for entry in runs.iterdir():
        if entry.name != "ray":
            (root / "runs" / "tiny" / entry.name).symlink_to(entry.resolve())
    return root


def test_the_selection_is_what_a_user_runs_alone():
    names = {path.name for path in standalone_commands()}
    assert {"merge_sweep.yaml", "dpo_sweep.yaml"} <= names and "rehearsal.yaml" not in names  # a profile, no stage
    assert not names & (pipeline_stage_configs() - ALSO_RUN_ALONE) and "merge_slerp.yaml" not in names  # placeholders A, B


@pytest.mark.slow
@pytest.mark.timeout(2700)  # the first one also runs the main job's rehearsal (fixture) where no main job ran
@pytest.mark.parametrize("path", standalone_commands(), ids=lambda path: path.name)
def test_first_line_command_runs_as_written_after_the_main_job(path, fresh_clone):
    command = first_line_command(path)
    started = time.monotonic()
    result = subprocess.run([str(SOLAR_RAY), *command[1:]], cwd=fresh_clone, capture_output=True, text=True,
                            check=False, timeout=1800)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{shlex.join(command)}` failed after {seconds:.0f} s:\n{output[-4000:]}"
    # No traceback of solar-ray's own (Ray's actors log theirs prefixed with "(Name pid=...)": on a machine with
    # several Rays, Train's placement-group cleaner logs one each time it cannot tell which state API to ask).
    assert not any(line.startswith("Traceback") for line in output.splitlines()), output[-4000:]
    cwd = Path.cwd()
    try:
        os.chdir(fresh_clone)
        artifact = Path(load_config(path.relative_to(REPO), command[3:]).output)
    finally:
        os.chdir(cwd)
    assert artifact.is_relative_to(fresh_clone.resolve()), artifact
    assert (artifact / "lineage.json").is_file(), f"{artifact} has no lineage.json"
    assert f"wrote {artifact}" in result.stdout
    print(f"{shlex.join(command)}: {seconds:.0f} s")
