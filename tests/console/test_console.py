import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solar_ray import stages
from solar_ray.console import pipeline_console
from solar_ray.console.progress import key_figure, run_state
from solar_ray.errors import DataError
from solar_ray.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]
NOISY = "tests.console.noisy_stage"

WIDE = """
name: noisy
parallel: 2
stages:
  first: {config: {stage: noisy, RAY}}
  left: {config: {stage: noisy, RAY}, inputs: {inputs.a: first}}
  right: {config: {stage: noisy, sleep: 0.1, RAY}, inputs: {inputs.a: first}}  # not left's twin: it runs too
  last: {config: {stage: noisy, RAY}, inputs: {inputs.l: left, inputs.r: right}}
"""
# What the console prints off a terminal: one line per stage when it ends, a long stage's heartbeat, the summary.
STAGE_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\w+) \(\w+\): (cached|done in \d+ s \(total \d+ s\)(; .*)?)$")
HEARTBEAT_LINE = re.compile(r"^(\w+) \(\w+\): running for (\d+) s(, .*)?$")
SUMMARY_LINE = re.compile(r"^\w+: \d+ done in \d+ s; logs in \S+$")


def solar_ray(*args, cwd=REPO):
    """The CLI in a subprocess, its stdout and stderr into a pipe (no terminal), with the noisy stage known."""
    launcher = (f"import sys, solar_ray.stages as s; s.STAGES['noisy'] = '{NOISY}';"
                "from solar_ray.cli import main; sys.argv = ['solar-ray'] + sys.argv[1:]; main()")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "local"}  # a Ray of its own, not a shared one
    return subprocess.run([sys.executable, "-c", launcher, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_off_a_terminal_the_console_shows_stage_events_only_and_the_logs_hold_the_rest(tmp_path):
    experiment = tmp_path / "noisy.yaml"
    experiment.write_text(WIDE.replace(", RAY", ""))
    root = tmp_path / "out"
    result = solar_ray("pipeline", str(experiment), "--output", str(root), "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    console = (result.stdout + result.stderr).splitlines()
    assert len(console) <= 4 + 1  # one line per stage as it ends, and the summary
    ended = [STAGE_LINE.match(line) for line in console[:-1]]
    assert all(ended), console  # no line when a stage starts, no worker line, warning or bar
    assert [m[1] for m in ended] == ["1", "2", "3", "4"] and {m[2] for m in ended} == {"4"}  # [k/N]: k ended of N
    assert sorted(m[3] for m in ended) == ["first", "last", "left", "right"]
    assert SUMMARY_LINE.match(console[-1]), console[-1]
    assert "noise" not in result.stdout + result.stderr  # nothing from a Ray task, actor or the driver thread
    assert "\x1b" not in result.stdout + result.stderr  # no escape sequences off a terminal
    logs = {name: (root / "logs" / f"{name}.log").read_text() for name in ("first", "left", "right", "last")}
    for name, text in logs.items():
        for noise in ("a Ray task", "a Ray task's stderr", "a Ray actor", "the driver thread"):
            assert f"noise from {noise} of {name}" in text or f"noise on {noise} of {name}" in text, (name, noise)
        assert f"a library warning in {name}" in text
        assert f"{name}: 64 rows from Ray Data" in text
        others = [other for other in logs if other != name]
        assert not any(f"of {other}\n" in text for other in others)  # left and right ran side by side
    assert (root / "logs" / "driver.log").is_file()

    status = solar_ray("status", str(root))
    assert status.returncode == 0, status.stderr
    assert "noisy: finished" in status.stdout
    assert all(re.search(rf"{name}\s.*\sdone\s", status.stdout) for name in logs)


@pytest.fixture
def quiet_pipeline(tmp_path, monkeypatch):
    """A noisy pipeline without Ray (the stages print and warn in the driver); `right` fails, mid-run."""
    monkeypatch.setitem(stages.STAGES, "noisy", NOISY)
    monkeypatch.setattr("solar_ray.ray_session.init_ray", lambda *a, **k: None)
    monkeypatch.setattr("solar_ray.ray_session.cluster_resources", lambda: {"CPU": 2.0, "GPU": 0.0})
    path = tmp_path / "noisy.yaml"
    text = WIDE.replace("RAY", "ray: false")
    path.write_text(text.replace("right: {config: {stage: noisy, sleep: 0.1, ray: false}",
                                 "right: {config: {stage: noisy, sleep: 0.1, ray: false, fail: true}"))
    return Pipeline(path, output=str(tmp_path / "out"))


def test_a_failing_stage_shows_its_error_its_last_log_lines_and_the_log_path(quiet_pipeline, capfd):
    pipe = quiet_pipeline
    with pytest.raises(DataError, match="bad row 3"):
        with pipeline_console(pipe):
            pipe.run(report=False)
    out, err = capfd.readouterr()
    console = out + err
    log = pipe.root / "logs" / "right.log"
    assert re.search(r"^\[\d/4\] right \(noisy\): failed after \d+ s(, waiting for running stages)?: "
                     r"DataError: .*bad row 3$", console, re.M)
    assert "  | noise from the driver thread of right" in console  # the log's last lines ...
    assert f"  log: {log}" in console  # ... and where the rest is
    assert "noise from the driver thread of left" not in console  # other stages' output stays in their logs
    assert "noise from the driver thread of left" in (pipe.root / "logs" / "left.log").read_text()
    assert " last (noisy)" not in console and not (pipe.root / "last").exists()  # nothing started after the failure
    assert console.splitlines()[-1].startswith("noisy: 2 done, 1 failed, 1 not started in ")

    state = run_state(pipe.root)
    assert state["info"]["end"]["ok"] is False
    assert state["stages"]["right"]["state"] == "failed" and "bad row 3" in state["stages"]["right"]["error"]
    assert state["stages"]["left"]["state"] == "done" and state["stages"]["last"]["state"] == "waiting"


def test_status_of_a_failed_run_names_the_error_and_the_log(quiet_pipeline, capsys):
    from solar_ray.console.status import print_status

    pipe = quiet_pipeline
    with pytest.raises(DataError):
        with pipeline_console(pipe):
            pipe.run(report=False)
    capsys.readouterr()
    print_status(pipe.root)
    out = capsys.readouterr().out
    assert "stopped with a failure" in out
    assert re.search(r"right\s+.*failed", out) and "bad row 3" in out
    assert f"right: {pipe.root / 'logs' / 'right.log'}" in out


def test_the_live_table_shows_running_stages_with_their_key_figure_and_the_waiting_ones(quiet_pipeline):
    from rich.console import Console

    from solar_ray.console.view import StageReporter

    pipe = quiet_pipeline
    logs = pipe.root / "logs"
    logs.mkdir(parents=True)
    (logs / "first.log").write_text("[solar-ray train] step=30  loss=2.71\n:task_name:x\n"
                                    "(noise)\n[solar-ray train] step=40  loss=2.5  lr=0.001\nwarning: x\n")
    reporter = StageReporter(pipe, pipe.order, io.StringIO(), live=False, logs=True)
    reporter.kinds["first"] = "pretrain"  # read its log as a training stage's
    reporter.running("first")
    screen = Console(record=True, width=120, file=io.StringIO())
    screen.print(reporter._table())
    text = screen.export_text()
    assert re.search(r"first\s+│ pretrain\s+│ running\s+│ \d+ s\s+│ step 40, loss 2\.500", text)
    assert "3 waiting" in text and "left, right, last" in text


@pytest.mark.parametrize("kind, lines, figure", [
    ("sft", ["[solar-ray train] step=10  loss=3.1", "[solar-ray train] resuming from x"], "step 10, loss 3.100"),
    ("eval", ["  eval [3/12] base: arc_challenge (8 s)", "other"], "3/12 (model, task) done: base arc_challenge"),
    ("data", ["100.0 ray.data progress: Total Progress: 100/900", "x", "102.0 ray.data progress: Total Progress: 500/900",
              "102.0 ray.data progress:     - ReadText: 500/900"], "500/900 rows, 200 rows/s"),
    ("data", ["100.0 ray.data progress: Total Progress: 0/?"], ""),  # nothing done yet: no figure
    ("merge", ["merged 12 tensors"], ""),
])
def test_key_figure_reads_the_last_progress_line_of_a_stage_log(tmp_path, kind, lines, figure):
    log = tmp_path / "stage.log"
    log.write_text("\n".join(lines) + "\n")
    assert key_figure(kind, log) == figure


def test_the_end_of_a_run_prints_the_final_model_h6_and_the_findings_counted_per_verdict(quiet_pipeline):
    from solar_ray.console.view import StageReporter

    pipe = quiet_pipeline
    table = type(pipe.experiment.report).model_fields["tables"].annotation.__args__[0]
    # A side comparison listed after the final table, with a better model: the final model is still the last
    # stage's (the table whose evaluation has the most stages upstream), not the last table's.
    pipe.experiment.report.tables = [table(title="Merges", eval="last", models=["m1", "m2"]),
                                     table(title="Side", eval="left", models=["s1"])]
    summaries = {"last": {"m1": {"H6": {"value": 0.31, "stderr": 0.02}}, "m2": {"H6": {"value": 0.35, "stderr": 0.03}}},
                 "left": {"s1": {"H6": {"value": 0.50, "stderr": 0.03}}}}
    for stage, summary in summaries.items():
        (pipe.root / stage).mkdir(parents=True)
        (pipe.root / stage / "summary.json").write_text(json.dumps(summary))
    report = pipe.root / "report"
    report.mkdir()
    verdicts = (["cannot tell"] * 9 + ["reproduced"] * 5 + ["not reproduced"] * 2 + ["error"])  # 17, as the main job's
    (report / "findings.json").write_text(json.dumps(
        [{"claim": f"Claim {i} ({v})", "verdict": v, "evidence": ""} for i, v in enumerate(verdicts)]))
    screen = io.StringIO()
    StageReporter(pipe, pipe.order, screen, live=False, logs=True).report(report)
    assert screen.getvalue().splitlines() == [
        f"report: {report / 'report.md'} (and report.html)",
        "final model: m2, H6 35.0 ± 3.0 %, best of 'Merges'",
        "findings: 5 reproduced, 2 not reproduced, 9 cannot tell, 1 error (report.md, 'The paper's findings at "
        "this scale')",
        "reproduced: Claim 9 (reproduced); Claim 10 (reproduced); Claim 11 (reproduced); and 2 more"]


def test_without_reproduced_findings_the_end_of_a_run_counts_them_all_the_same(quiet_pipeline):
    from solar_ray.console.progress import headline

    report = quiet_pipeline.root / "report"
    report.mkdir(parents=True)
    (report / "findings.json").write_text(json.dumps([{"claim": "x", "verdict": "cannot tell", "evidence": ""}]))
    assert headline(quiet_pipeline, report) == [
        "findings: 0 reproduced, 0 not reproduced, 1 cannot tell (report.md, 'The paper's findings at this scale')"]


def test_in_the_live_view_a_failed_stage_shows_its_error_and_log_path_above_the_table(quiet_pipeline):
    from solar_ray.console.view import StageReporter

    pipe = quiet_pipeline
    (pipe.root / "logs").mkdir(parents=True)
    (pipe.root / "logs" / "right.log").write_text("loading [data]\nTraceback ...\nDataError: bad row 3\n")
    screen = io.StringIO()
    reporter = StageReporter(pipe, pipe.order, screen, live=True, logs=True)
    reporter.running("right")
    reporter.failed("right", DataError("data.jsonl: bad row 3"), 2.0)
    reporter.close(DataError("bad row 3"))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "right: failed after 2 s: DataError: data.jsonl: bad row 3" in text
    assert "  | loading [data]" in text  # log lines are shown as written, not read as rich markup
    assert f"  log: {pipe.root / 'logs' / 'right.log'}" in text


def test_verbose_streams_the_stages_output_and_writes_no_stage_logs(quiet_pipeline, capfd):
    pipe = quiet_pipeline
    with pytest.raises(DataError):
        with pipeline_console(pipe, verbose=True):
            pipe.run(report=False)
    out, err = capfd.readouterr()
    assert "noise from the driver thread of left" in out + err
    assert "] right (noisy): failed after" in err
    assert not (pipe.root / "logs" / "left.log").exists()


def test_status_of_a_directory_without_a_run_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "solar_ray.cli", "status", str(tmp_path)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {tmp_path}: not a pipeline run (no logs/events.jsonl or pipeline.json)"


def test_a_finished_data_stage_shows_its_rows_read_and_rows_per_second(tmp_path):
    from solar_ray.console.progress import final_figure

    (tmp_path / "data_sft").mkdir()
    (tmp_path / "data_sft" / "report.json").write_text(json.dumps(
        {"sources": {"a": {"rows_read": 300}, "b": {"rows_read": 100}}, "totals": {"train": 390}}))
    assert final_figure(tmp_path, "data_sft", "data", 8.0) == "400 rows read, 50 rows/s"


def test_an_unexpected_stage_error_ends_the_cli_with_one_line_not_a_traceback(tmp_path):
    experiment = tmp_path / "noisy.yaml"
    experiment.write_text(WIDE.replace("RAY", "ray: false").replace(
        "left: {config: {stage: noisy, ray: false}", "left: {config: {stage: noisy, ray: false, crash: true}"))
    launcher = (f"import sys, solar_ray.stages as s, solar_ray.ray_session as r; s.STAGES['noisy'] = '{NOISY}';"
                "r.init_ray = lambda *a, **k: None; r.cluster_resources = lambda: {'CPU': 2.0, 'GPU': 0.0};"
                "from solar_ray.cli import main; sys.argv = ['solar-ray'] + sys.argv[1:]; main()")
    result = subprocess.run([sys.executable, "-c", launcher, "pipeline", str(experiment), "--output",
                             str(tmp_path / "out"), "--no-report"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    log = tmp_path / "out" / "logs" / "left.log"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stage 'left' failed: RuntimeError: worker died: xxx") and last.endswith(
        f" ... (log: {log})")
    assert len(last) < 240 + 100 + len(str(log))  # the message cut short; the log keeps all of it


def test_off_a_terminal_a_slow_stage_gets_a_heartbeat_line_and_a_fast_one_none(tmp_path, monkeypatch, capfd):
    """Heartbeat every 1.5 s (injected): `left` sleeps 4 s, so two lines (at 1.5 s and 3 s; a third if the machine
    is slow); the others take milliseconds."""
    monkeypatch.setitem(stages.STAGES, "noisy", NOISY)
    monkeypatch.setattr("solar_ray.ray_session.init_ray", lambda *a, **k: None)
    monkeypatch.setattr("solar_ray.ray_session.cluster_resources", lambda: {"CPU": 2.0, "GPU": 0.0})
    path = tmp_path / "noisy.yaml"
    path.write_text(WIDE.replace("RAY", "ray: false").replace("left: {config: {stage: noisy, ray: false}",
                                                                "left: {config: {stage: noisy, ray: false, sleep: 4}"))
    pipe = Pipeline(path, output=str(tmp_path / "out"))
    with pipeline_console(pipe, heartbeat=1.5):
        pipe.run(report=False)
    out, err = capfd.readouterr()
    console = (out + err).splitlines()
    beats = [HEARTBEAT_LINE.match(line) for line in console if HEARTBEAT_LINE.match(line)]
    assert len(beats) >= 2 and {m[1] for m in beats} == {"left"}, console  # the slow stage only, per interval
    assert 1 <= int(beats[0][2]) < int(beats[1][2]) <= 4  # about 1.5 s and 3 s in, as whole seconds
    ended = [m[3] for m in map(STAGE_LINE.match, console) if m]
    assert sorted(ended) == ["first", "last", "left", "right"]
    assert len(console) == len(ended) + len(beats) + 1  # and the summary; nothing else
    assert console.index(beats[-1][0]) < console.index(next(line for line in console if "] left (" in line))


def test_a_heartbeat_carries_the_key_figure_and_stops_when_the_console_closes(quiet_pipeline):
    from solar_ray.console.view import StageReporter

    pipe = quiet_pipeline
    (pipe.root / "logs").mkdir(parents=True)
    (pipe.root / "logs" / "first.log").write_text("[solar-ray train] step=300  loss=2.31\n")
    screen = io.StringIO()
    reporter = StageReporter(pipe, pipe.order, screen, live=False, logs=True, heartbeat=0.2)
    reporter.kinds["first"] = "pretrain"  # read its log as a training stage's
    reporter.running("first")
    deadline = time.monotonic() + 30
    while "first (pretrain): running for" not in screen.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    reporter.close()
    after_close = screen.getvalue()
    time.sleep(0.6)  # three intervals: a thread still beating would add lines
    assert screen.getvalue() == after_close
    assert re.search(r"^first \(pretrain\): running for \d+ s, step 300, loss 2\.310$", after_close, re.M)
    assert not reporter.beats.is_alive()


REFUSED = """
name: standin
stages:
  a: {config: {stage: standin}}
  b: {config: {stage: standin, gpus: 2, gb_per_gpu: 12}, inputs: {source: a}}
"""
SPEC = """
name: two small GPUs
node_types:
  head: {cpus: 4, memory_gb: 16, head: true}
  gpu: {gpu: tiny, gpu_memory_gb: 10, bf16_tflops: 100, gpus: 2, cpus: 8, memory_gb: 32, count: 1}
"""
REFUSAL = "stage 'b': 12.0 GB per GPU (tiny) needed (weights 12.0), limit 10.0 GB"


def test_a_run_the_fit_check_refuses_leaves_no_logs_behind(tmp_path):
    """`--cluster`: the fit check refuses stage b (12 GB per GPU, 10 GB GPUs) before Ray starts. The stand-in stage
    is tests/plan/test_contract.py's."""
    (tmp_path / "standin.yaml").write_text(REFUSED)
    (tmp_path / "spec.yaml").write_text(SPEC)
    root = tmp_path / "out"
    launcher = ("import sys, solar_ray.stages as s; s.STAGES['standin'] = 'tests.plan.test_contract';"
                "from solar_ray.cli import main; sys.argv = ['solar-ray'] + sys.argv[1:]; main()")
    result = subprocess.run([sys.executable, "-c", launcher, "pipeline", str(tmp_path / "standin.yaml"), "--output",
                             str(root), "--cluster", str(tmp_path / "spec.yaml")], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "local"}, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stdout + result.stderr == f"error: {REFUSAL}\n"
    assert sorted(p.name for p in root.iterdir()) == [".solar-ray.lock"]  # no logs/, events.jsonl or stage


def test_a_run_refused_on_the_joined_cluster_leaves_no_logs_and_still_says_which_cluster(tmp_path, monkeypatch,
                                                                                           capfd):
    """Without `--cluster` the check runs on the Ray cluster joined, after Ray starts (here: stand-ins for both)."""
    from solar_ray.errors import ConfigError
    from solar_ray.plan.cluster import load_cluster

    monkeypatch.setitem(stages.STAGES, "standin", "tests.plan.test_contract")
    monkeypatch.setattr("solar_ray.ray_session.init_ray", lambda *a, say, **k: say("solar-ray: joining the cluster"))
    (tmp_path / "spec.yaml").write_text(SPEC)
    monkeypatch.setattr("solar_ray.plan.cluster.live_cluster", lambda: load_cluster(tmp_path / "spec.yaml"))
    (tmp_path / "standin.yaml").write_text(REFUSED)
    pipe = Pipeline(tmp_path / "standin.yaml", output=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=re.escape(REFUSAL)):
        with pipeline_console(pipe):
            pipe.run(report=False)
    out, err = capfd.readouterr()
    assert (out + err).splitlines() == ["solar-ray: joining the cluster"]
    assert not (pipe.root / "logs").exists()
