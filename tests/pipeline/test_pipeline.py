import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solar_ray import stages
from solar_ray.errors import ArtifactError, ConfigError, DataError
from solar_ray.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """
name: toy
stages:
  c: {config: {stage: fake, value: 100}, inputs: {inputs.a: a, inputs.b: b}}
  a: {config: {stage: fake, value: 1}}
  b: {config: leaf.yaml, inputs: {inputs.a: a}, overrides: {value: 10}}
"""


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.setitem(stages.STAGES, "fake", "tests.pipeline.fake_stage")
    monkeypatch.setattr("solar_ray.ray_session.init_ray", lambda *a, **k: None)
    monkeypatch.setattr("solar_ray.ray_session.cluster_resources", lambda: {"CPU": 2.0, "GPU": 0.0})
    (tmp_path / "leaf.yaml").write_text("stage: fake\nvalue: 5\n")
    path = tmp_path / "toy.yaml"
    path.write_text(EXPERIMENT)
    return path


def value(root, stage):
    return int((root / stage / "value.txt").read_text())


def mtime(root, stage):
    return (root / stage / "lineage.json").stat().st_mtime_ns


def test_runs_in_dependency_order_with_inputs_and_overrides(experiment, tmp_path):
    pipe = Pipeline(experiment, output=str(tmp_path / "out"))
    assert pipe.order.index("a") < pipe.order.index("b") < pipe.order.index("c")
    pipe.run(report=False)
    root = tmp_path / "out"
    assert (value(root, "a"), value(root, "b"), value(root, "c")) == (1, 11, 112)
    state = json.loads((root / "pipeline.json").read_text())
    assert {name: s["status"] for name, s in state["stages"].items()} == {"a": "ran", "b": "ran", "c": "ran"}


def test_second_run_is_cached_and_config_change_reruns_downstream(experiment, tmp_path):
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    before = {s: mtime(root, s) for s in "abc"}
    state = Pipeline(experiment, output=str(root)).run(report=False)
    assert all(s["status"] == "cached" for s in state["stages"].values())
    assert {s: mtime(root, s) for s in "abc"} == before

    (experiment.parent / "leaf.yaml").write_text("stage: fake\nvalue: 7\n")  # b's config changes ...
    experiment.write_text(EXPERIMENT.replace("overrides: {value: 10}", "overrides: {}"))
    state = Pipeline(experiment, output=str(root)).run(report=False)
    assert [state["stages"][s]["status"] for s in "abc"] == ["cached", "ran", "ran"]  # ... so c reruns too
    assert value(root, "c") == 100 + 1 + 8


def test_the_plan_marks_the_stages_below_a_changed_one_as_running_again(experiment, tmp_path):
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    experiment.write_text(EXPERIMENT.replace("value: 1}", "value: 2}"))  # a changes; b and c take it as input
    pipe = Pipeline(experiment, output=str(root))
    assert {row["stage"]: row["status"] for row in pipe.plan()} == {
        "a": "will run", "b": "may run", "c": "may run"}  # b and c were "cached": the plan left their cost out
    state = pipe.run(report=False)
    assert [state["stages"][s]["status"] for s in "abc"] == ["ran", "ran", "ran"]  # a's value changed: both ran

    statuses = {row["stage"]: row["status"] for row in pipe.plan(start="b")}
    assert statuses == {"a": "not selected", "b": "will run", "c": "will run"}  # --from b re-makes b and c
    statuses = {row["stage"]: row["status"] for row in pipe.plan(only="b")}
    assert statuses == {"a": "not selected", "b": "will run", "c": "not selected"}  # --only b: b alone, current or not


def test_below_a_stage_rebuilt_with_the_same_content_the_plan_says_may_run_and_the_run_keeps_them(
        experiment, tmp_path):
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    experiment.write_text(EXPERIMENT.replace("value: 1}", "value: 1, sleep: 0.01}"))  # a's config, not its output
    pipe = Pipeline(experiment, output=str(root))
    rows = pipe.plan()
    assert {row["stage"]: row["status"] for row in rows} == {"a": "will run", "b": "may run", "c": "may run"}
    state = pipe.run(report=False)
    assert [state["stages"][s]["status"] for s in "abc"] == ["ran", "cached", "cached"]

    from solar_ray.cli import plan_summary

    assert plan_summary([row["status"] for row in rows]).startswith("1 will run, 2 may run (may run: current, ")
    assert plan_summary(["cached", "will run", "not selected"]) == "1 will run, 1 cached, 1 not selected"


def test_a_run_folder_moved_or_copied_whole_stays_current_where_it_lies(experiment, tmp_path):
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "moved"
    Pipeline(experiment, output=str(first)).run(report=False)
    shutil.copytree(first, moved)
    shutil.rmtree(first)  # the parents' recorded paths are gone: they must be read under the new folder
    before = {s: mtime(moved, s) for s in "abc"}
    state = Pipeline(experiment, output=str(moved)).run(report=False)
    assert all(s["status"] == "cached" for s in state["stages"].values())
    assert {s: mtime(moved, s) for s in "abc"} == before

    experiment.write_text(EXPERIMENT.replace("overrides: {value: 10}", "overrides: {value: 20}"))
    state = Pipeline(experiment, output=str(moved)).run(report=False)  # a change still reruns what it touches
    assert [state["stages"][s]["status"] for s in "abc"] == ["cached", "ran", "ran"]
    assert value(moved, "c") == 100 + 1 + 21 and not first.exists()
    lineage = json.loads((moved / "c" / "lineage.json").read_text())
    assert {p["path"] for p in lineage["parents"]} == {str(moved / "a"), str(moved / "b")}


def test_an_only_run_keeps_the_earlier_timings_of_the_stages_it_leaves_alone(experiment, tmp_path):
    root = tmp_path / "out"
    first = Pipeline(experiment, output=str(root)).run(report=False)["stages"]
    state = Pipeline(experiment, output=str(root)).run(only="b", report=False)
    assert state["stages"]["b"]["status"] == "ran"
    for name in "ac":
        assert state["stages"][name] == {"status": "ran earlier", "seconds": first[name]["seconds"]}
    Pipeline(experiment, output=str(root)).run(only="b", report=True)  # still "ran earlier", not "cached"
    state = json.loads((root / "pipeline.json").read_text())
    assert state["stages"]["a"] == {"status": "ran earlier", "seconds": first["a"]["seconds"]}
    report = (root / "report" / "report.md").read_text()
    assert f"| a | fake | ran earlier | - | {first['a']['seconds']} |" in report
    assert f"for {state['stages']['b']['seconds']:.0f} s of stage time" in report  # this run's stages only


def test_from_and_only_select_stages(experiment, tmp_path):
    root = tmp_path / "out"
    pipe = Pipeline(experiment, output=str(root))
    assert pipe.select(start="b") == ["b", "c"]
    assert pipe.select(only="b") == ["b"]
    with pytest.raises(ArtifactError, match="run stage 'a' first"):
        pipe.run(only="b", report=False)
    pipe.run(report=False)
    before = mtime(root, "a")
    state = pipe.run(start="b", report=False)
    assert {name for name, s in state["stages"].items() if s["status"] == "ran"} == {"b", "c"}
    assert state["stages"]["a"]["status"] == "ran earlier" and mtime(root, "a") == before


def test_plan_marks_cached_and_pending(experiment, tmp_path):
    root = tmp_path / "out"
    pipe = Pipeline(experiment, output=str(root))
    pipe.run(only="a", report=False)
    plan = {row["stage"]: row for row in pipe.plan()}
    assert plan["a"]["status"] == "cached" and plan["b"]["status"] == "will run"
    assert plan["c"]["inputs"] == "inputs.a<-a, inputs.b<-b"


def test_bad_experiments_fail_before_running(experiment, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages:\n  a: {config: {stage: fake}, inputs: {inputs.a: nope}}\n")
    with pytest.raises(ConfigError, match="unknown stage 'nope'"):
        Pipeline(bad)
    bad.write_text("name: x\nstages:\n  a: {config: {stage: fake}, inputs: {inputs.b: b}}\n  b: {config: {stage: fake}, inputs: {inputs.a: a}}\n")
    with pytest.raises(ConfigError, match="cycle"):
        Pipeline(bad)
    bad.write_text("name: x\nstages:\n  a: {config: {stage: fake, valeu: 1}}\n")
    with pytest.raises(ConfigError, match="unknown key 'valeu'; did you mean 'value'"):
        Pipeline(bad)


def test_killed_mid_stage_resumes_without_redoing_completed_stages(experiment, tmp_path):
    root = tmp_path / "out"
    experiment.write_text(EXPERIMENT.replace("value: 100}", "value: 100, sleep: 30}"))
    launcher = (
        "import sys, solar_ray.stages as s; s.STAGES['fake'] = 'tests.pipeline.fake_stage';"
        "from solar_ray.cli import main; sys.argv = ['solar-ray'] + sys.argv[1:]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", launcher, "pipeline", str(experiment), "--output", str(root), "--no-report"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".c.tmp-") for p in root.glob(".*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (root / "a").is_dir() and (root / "b").is_dir() and not (root / "c").exists()
    done = {s: mtime(root, s) for s in "ab"}

    experiment.write_text(EXPERIMENT)  # same DAG; c's sleep removed so the rerun is quick
    state = Pipeline(experiment, output=str(root)).run(report=False)
    assert [state["stages"][s]["status"] for s in "abc"] == ["cached", "cached", "ran"]
    assert {s: mtime(root, s) for s in "ab"} == done and value(root, "c") == 112


def test_a_stage_rerun_for_new_inputs_does_not_resume_the_old_run(experiment, tmp_path):
    """Checkpointed runs resume by name: the runner must start a fresh run when the stage's inputs changed."""
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    assert (root / "ray" / "c" / "checkpoint.txt").read_text() == "112"  # the runner put the run under out/ray
    experiment.write_text(EXPERIMENT.replace("value: 1}", "value: 2}"))  # a changes: b and c rerun
    state = Pipeline(experiment, output=str(root)).run(report=False)
    assert [state["stages"][s]["status"] for s in "abc"] == ["ran", "ran", "ran"]
    assert value(root, "c") == 100 + 2 + 12  # not the old run's 112


def test_an_interrupted_run_with_the_same_inputs_resumes(experiment, tmp_path):
    root = tmp_path / "out"
    pipe = Pipeline(experiment, output=str(root))
    pipe.run(report=False)
    checkpoint = root / "ray" / "c" / "checkpoint.txt"
    checkpoint.write_text("7")  # stands for progress an interrupted attempt saved
    shutil.rmtree(root / "c")  # interrupted: no artifact was written
    state = Pipeline(experiment, output=str(root)).run(report=False)
    assert state["stages"]["c"]["status"] == "ran" and value(root, "c") == 7  # resumed from the checkpoint


def test_a_stage_chosen_by_from_or_only_starts_its_run_afresh(experiment, tmp_path):
    """--from / --only mean "run it again": resuming the finished run would only replay its last checkpoint."""
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    (root / "ray" / "c" / "checkpoint.txt").write_text("7")  # what a resume would pick up
    state = Pipeline(experiment, output=str(root)).run(only="c", report=False)
    assert state["stages"]["c"]["status"] == "ran" and value(root, "c") == 112


TWINS = """
name: twins
parallel: 2
stages:
  root: {config: {stage: fake, value: 1}}
  first: {config: {stage: fake, value: 2, sleep: 0.5}, inputs: {inputs.a: root}}
  twin: {config: {stage: fake, value: 2, sleep: 0.5, run: {name: other-run}}, inputs: {inputs.a: root}}
  other: {config: {stage: fake, value: 3}, inputs: {inputs.a: root}}
  after: {config: {stage: fake}, inputs: {inputs.a: twin}}
"""


def test_a_stage_with_a_twins_config_and_inputs_reuses_its_artifact(experiment, tmp_path):
    """`twin` differs from `first` only in its output and its run's name: one of them runs (twin, whose chain is
    longer, starts first), the other links its files. Both are ready together: the second waits for the first
    rather than making the artifact beside it (parallel: 2 has room for both)."""
    path, root = tmp_path / "twins.yaml", tmp_path / "out"
    path.write_text(TWINS)
    state = Pipeline(path, output=str(root)).run(report=False)
    assert state["stages"]["twin"]["status"] == "ran"
    assert state["stages"]["first"]["status"] == "reused" and state["stages"]["first"]["same_as"] == "twin"
    assert state["stages"]["other"]["status"] == "ran" and value(root, "other") == 4  # value 3: not a twin
    assert value(root, "first") == 3 and (root / "first" / "value.txt").samefile(root / "twin" / "value.txt")
    lineage = json.loads((root / "first" / "lineage.json").read_text())
    assert lineage["same_as"] == "twin" and lineage["config"]["output"] == str(root / "first")
    assert value(root, "after") == 3
    again = Pipeline(path, output=str(root)).run(report=False)  # the reused artifact is current on the next run
    assert {s["status"] for s in again["stages"].values()} == {"cached"}
    forced = Pipeline(path, output=str(root)).run(only="first", report=False)  # asked for by name: it runs
    assert forced["stages"]["first"]["status"] == "ran"
    assert not (root / "first" / "value.txt").samefile(root / "twin" / "value.txt")


def test_a_stage_whose_input_content_differs_is_no_twin(experiment, tmp_path):
    path, root = tmp_path / "twins.yaml", tmp_path / "out"
    path.write_text(TWINS.replace("twin: {config: {stage: fake, value: 2", "twin: {config: {stage: fake, value: 2, "
                                  "inputs: {}").replace("inputs: {inputs.a: root}}\n  other", "inputs: {inputs.a: other}}\n  other"))
    state = Pipeline(path, output=str(root)).run(report=False)
    assert state["stages"]["twin"]["status"] == "ran" and value(root, "twin") == 2 + 4


PARALLEL = """
name: wide
parallel: 2
stages:
  root: {config: {stage: fake, value: 1}}
  left: {config: {stage: fake, value: 2, sleep: 1.5, SCALING}, inputs: {inputs.a: root}}
  right: {config: {stage: fake, value: 3, sleep: 1.5, SCALING}, inputs: {inputs.a: root}}
  join: {config: {stage: fake}, inputs: {inputs.l: left, inputs.r: right}}
"""


def overlapped(state, a, b):
    """Ran at the same time for more than pipeline.json's rounding of `seconds` (0.1 s): a stage that starts the
    moment the other ends can look 0.05 s early against its rounded-up time."""
    start_a, start_b = state["stages"][a]["started_at"], state["stages"][b]["started_at"]
    end_a, end_b = start_a + state["stages"][a]["seconds"], start_b + state["stages"][b]["seconds"]
    return min(end_a, end_b) - max(start_a, start_b) > 0.1


@pytest.mark.parametrize("scaling, parallel, together", [
    ("scaling: {num_workers: 2, cpus_per_worker: 0.5}", None, True),   # 1 + 1 CPU of 2: both fit
    ("scaling: {num_workers: 2, cpus_per_worker: 1}", None, False),    # 2 + 2 CPUs of 2: one at a time
    ("scaling: {num_workers: 2, cpus_per_worker: 0.5}", 1, False),     # --parallel 1
])
def test_independent_stages_run_together_when_the_cluster_has_room(experiment, tmp_path, scaling, parallel, together):
    path = tmp_path / "wide.yaml"
    path.write_text(PARALLEL.replace("SCALING", scaling))
    state = Pipeline(path, output=str(tmp_path / "out")).run(report=False, parallel=parallel)
    assert overlapped(state, "left", "right") is together
    assert value(tmp_path / "out", "join") == 1 + 2 + 1 + 3  # join ran after both, with both inputs
    assert state["stages"]["join"]["started_at"] >= max(
        state["stages"][s]["started_at"] + state["stages"][s]["seconds"] for s in ("left", "right")) - 0.1


@pytest.mark.parametrize("parallel", [1, 2])
def test_driver_libraries_are_imported_in_the_main_thread_before_stages_run_side_by_side(
        experiment, tmp_path, monkeypatch, parallel):
    import threading

    import solar_ray.pipeline as pipeline_module
    import solar_ray.stages as stages

    events = []
    monkeypatch.setattr(pipeline_module, "import_driver_libraries",
                        lambda: events.append(("import", threading.current_thread() is threading.main_thread())))
    run_stage = stages.run_stage
    monkeypatch.setattr(stages, "run_stage", lambda config: (events.append(("stage", None)), run_stage(config))[1])
    path = tmp_path / "wide.yaml"
    path.write_text(PARALLEL.replace("SCALING", "scaling: {num_workers: 1, cpus_per_worker: 1}"))
    Pipeline(path, output=str(tmp_path / "out")).run(report=False, parallel=parallel)
    if parallel == 1:  # one stage at a time: no threads race, nothing to import early
        assert ("import", True) not in events
    else:
        assert events[0] == ("import", True) and events.count(("stage", None)) == 4


def test_a_failed_stage_lets_running_stages_finish_and_starts_nothing_after(experiment, tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text(PARALLEL.replace("SCALING", "scaling: {num_workers: 1, cpus_per_worker: 1}")
                    .replace("value: 2, sleep: 1.5", "value: 2, sleep: 0.2, fail: true"))
    root = tmp_path / "out"
    with pytest.raises(DataError, match="bad row 3"):
        Pipeline(path, output=str(root)).run(report=False)
    assert value(root, "right") == 4  # was running when left failed: it finished
    assert not (root / "left").exists() and not (root / "join").exists()
    stages = json.loads((root / "pipeline.json").read_text())["stages"]
    assert stages["left"]["status"] == "failed" and "join" not in stages


def test_ready_stages_start_longest_chain_first(experiment, tmp_path):
    pipe = Pipeline(experiment)
    assert pipe._downstream_chain() == {"a": 3, "b": 2, "c": 1}


STARVING = """
name: starving
parallel: 2
stages:
  root: {config: {stage: fake, value: 1}}
  slow: {config: {stage: fake, value: 1, sleep: 1.0, scaling: {num_workers: 1, cpus_per_worker: 1}}, inputs: {inputs.a: root}}
  gate: {config: {stage: fake, value: 5, sleep: 0.3}, inputs: {inputs.a: root}}
  wide: {config: {stage: fake, value: 2, sleep: 0.2, scaling: {num_workers: 2, cpus_per_worker: 1}}, inputs: {inputs.a: gate}}
  after_wide: {config: {stage: fake, value: 3}, inputs: {inputs.a: wide}}
  short_1: {config: {stage: fake, value: 4, sleep: 1.0, scaling: {num_workers: 1, cpus_per_worker: 1}}, inputs: {inputs.a: root}}
"""


def test_a_stage_waiting_for_room_is_not_starved_by_shorter_chains(experiment, tmp_path):
    """`wide` (both CPUs, a stage after it) becomes ready while `slow` holds one CPU: `short_1` (1 CPU, nothing
    after it) would fit beside `slow`, but starting it would keep `wide` waiting; it waits for `wide` instead."""
    path = tmp_path / "starving.yaml"
    path.write_text(STARVING)
    state = Pipeline(path, output=str(tmp_path / "out")).run(report=False)
    stages = state["stages"]
    assert stages["wide"]["started_at"] < stages["short_1"]["started_at"]
    assert not overlapped(state, "slow", "short_1")


def test_report_lists_stages_lineage_and_unjudgeable_findings(experiment, tmp_path):
    text = EXPERIMENT + """
report:
  findings:
    - {claim: "Merging helps", kind: improves, eval: c, baseline: [a], treatment: b}
  limits: ["Tiny models cannot show emergent abilities."]
"""
    experiment.write_text(text)
    root = tmp_path / "out"
    Pipeline(experiment, output=str(root)).run(report=False)
    from solar_ray.report import write_report

    report = write_report(root)
    md = (report / "report.md").read_text()
    assert "| c | fake | ran |" in md and "a --> b" in md and "b --> c" in md
    assert "s of stage time (one stage at a time)" in md
    assert "| Merging helps | **cannot tell** |" in md
    assert "emergent" in md
    assert (report / "lineage.png").stat().st_size > 1000
    html = (report / "report.html").read_text()
    assert "<table>" in html and "lineage.png" in html


def test_each_stage_declares_what_it_asks_ray_for():
    from solar_ray.contract import describe_demand, needs

    configs = Pipeline(REPO / "experiments" / "solar_10_7b" / "pipeline.yaml").configs
    gpus = {"CPU": 256.0, "GPU": 32.0}
    demand = {name: needs(config).demand(gpus) for name, config in configs.items()}
    assert demand["sft_v1"] == {"CPU": 16 * configs["sft_v1"].scaling.cpus_per_worker, "GPU": 16.0}
    assert demand["eval_dus"] == gpus  # sizes itself to the cluster: runs alone
    assert demand["data_sft_v1"] == {"CPU": 1.0, "GPU": 0.0}
    assert demand["merge_v1"] == {"CPU": 0.0, "GPU": 0.0}
    # 2 vLLM engine actors x tensor_parallel_size 4 = 8 GPUs (was counted as 2: one per actor)
    synth = configs["synth_math"]
    assert demand["synth_math"] == {"CPU": 2 * synth.num_cpus_per_actor, "GPU": 8.0}
    assert describe_demand(needs(configs["eval_dus"]).demand({"CPU": math.inf, "GPU": math.inf})) == "the whole cluster"
    tiny = Pipeline(REPO / "experiments" / "tiny" / "pipeline.yaml").configs
    cpus = {"CPU": 2.0, "GPU": 0.0}
    assert needs(tiny["sft_v1"]).demand(cpus) == {"CPU": 1.0, "GPU": 0.0}  # two SFT runs fit side by side
    assert needs(tiny["eval_sft"]).demand(cpus) == {"CPU": 1.0, "GPU": 0.0}
    assert needs(tiny["contamination"]).demand(cpus) == {"CPU": 1.0, "GPU": 0.0}
    # one trial at a time: the merge sweep runs beside the evaluations instead of after them
    assert needs(tiny["merge_sweep"]).demand(cpus) == {"CPU": 1.0, "GPU": 0.0}
    assert demand["merge_sweep"] == gpus  # no cap on trials: sizes itself to the cluster


def test_the_pipeline_knows_no_stage_by_name_or_field():
    """Everything stage-specific lives in the stage modules' contracts (solar_ray/contract.py)."""
    source = (REPO / "solar_ray" / "pipeline.py").read_text()
    from solar_ray.stages import STAGES

    for stage in STAGES:
        assert f'"{stage}"' not in source and f"'{stage}'" not in source, stage
    for field in ("scaling", "workers", "actors", "num_cpus_per_actor", "engine", "backend", "storage_path", "run"):
        assert not re.search(rf"\.{field}\b|\bgetattr\(\w+, \"{field}\"", source), field


def test_stages_from_another_experiment_run_as_written_there(experiment, tmp_path):
    """An experiment in another folder takes `a` and `b` from toy.yaml: b's config file is found beside toy.yaml,
    its override and inputs kept; its own stage builds on them."""
    (tmp_path / "more").mkdir()
    other = tmp_path / "more" / "more.yaml"
    other.write_text("name: more\nstages_from:\n  ../toy.yaml: [a, b]\n"
                     "stages:\n  d: {config: {stage: fake, value: 1000}, inputs: {inputs.b: b}}\n")
    pipe = Pipeline(other, output=str(tmp_path / "out"))
    assert set(pipe.order) == {"a", "b", "d"}
    pipe.run(report=False)
    root = tmp_path / "out"
    assert (value(root, "a"), value(root, "b"), value(root, "d")) == (1, 11, 1011)


@pytest.mark.parametrize("stages_from, stages, message", [
    ("{../toy.yaml: [z]}", "{}", "more.yaml: stages_from: {dir}/more/../toy.yaml has no stage 'z'; its stages: c, a, b"),
    ("{../toy.yaml: [a]}", "{a: {config: {stage: fake, value: 2}}}",
     "more.yaml: stage 'a' is both defined here and taken from {dir}/more/../toy.yaml"),
    ("{../toy.yaml: [a]}", "{}", "stages_from loops back to itself"),
])
def test_stages_from_errors_name_the_file(experiment, tmp_path, stages_from, stages, message):
    other = tmp_path / "more" / "more.yaml"
    other.parent.mkdir()
    other.write_text(f"name: more\nstages_from: {stages_from}\nstages: {stages}\n")
    if "loops" in message:  # toy.yaml takes from more.yaml in turn
        experiment.write_text(EXPERIMENT + "stages_from: {more/more.yaml: [a]}\n")
    with pytest.raises(ConfigError, match=re.escape(message.format(dir=tmp_path))):
        Pipeline(other, output=str(tmp_path / "out"))


def test_upscaling_experiment_takes_the_main_jobs_stages_unchanged():
    main = Pipeline(REPO / "experiments" / "tiny" / "pipeline.yaml", output="runs/x")
    upscaling = Pipeline(REPO / "experiments" / "tiny" / "pipeline_upscaling.yaml", output="runs/x")
    for name in ("world", "data_pretrain", "base", "dus"):
        assert upscaling.configs[name].model_dump() == main.configs[name].model_dump(), name
        assert upscaling.parents[name] == main.parents[name]
