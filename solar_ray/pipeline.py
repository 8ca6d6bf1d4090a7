"""`solar-ray pipeline EXPERIMENT.yaml`: run an experiment's stages as a DAG on Ray, with caching and resume.

An experiment names its stages; each has a stage config (a file, relative to the experiment, or an inline
mapping), `inputs` (dotted config key -> the artifact of an earlier stage, optionally `stage:sub/path`) and
`overrides` (dotted config key -> value):

    name: tiny
    stages:
      world:   {config: world.yaml}
      base:    {config: pretrain_base.yaml, inputs: {model: "world:base", dataset: data_pretrain}}

Everything lands under one output directory (default `runs/<name>/`): one artifact per stage at
`<output>/<stage>/`, Ray Train/Tune storage at `<output>/ray/`, `pipeline.json` (state and timings) and the
report at `<output>/report/`.

Features:
1. Order: stages run in topological order of their inputs; a cycle or a reference to an unknown stage is a
   ConfigError naming the stage.
2. Caching: a stage whose artifact exists, with a lineage.json recording the same config and the same parent
   content hashes, is skipped. Artifacts are written atomically, so an interrupted stage leaves nothing behind
   and a rerun resumes at the first stage without a complete artifact (training stages also resume from their
   Ray Train checkpoints in `<output>/ray/`, but only a run started with the same config and inputs: a stage
   rerun because either changed starts its Ray run afresh, see `reset_stale_ray_state`).
3. Selection: `--from STAGE` reruns STAGE and everything downstream; `--only STAGE` runs just STAGE (its inputs
   must exist); `--dry-run` validates every config and prints the plan with each stage's resources.
Raises ConfigError / ArtifactError before anything runs when a config is invalid or a needed input is missing.
"""

from __future__ import annotations

import graphlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from solar_ray.artifacts import LINEAGE, artifact_hash, read_lineage, write_json
from solar_ray.config import (
    StageConfig,
    Strict,
    build_config,
    deep_merge,
    dump_config,
    read_yaml,
    resolve_extends,
    set_dotted,
    validate,
)
from solar_ray.errors import ArtifactError, ConfigError
from solar_ray.report.spec import ReportSpec

RAY_STORAGE_DIR = "ray"
REPORT_DIR = "report"


class StageSpec(Strict):
    config: str | dict[str, Any] = Field(
        description="Stage config: a YAML path relative to the experiment file, or an inline mapping."
    )
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Dotted config key -> artifact of an earlier stage, as `stage` or `stage:sub/path`.",
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted config key -> value.")


class Experiment(Strict):
    name: str = Field(description="Experiment name; the default output directory is runs/<name>.")
    description: str = Field(default="", description="What the experiment reproduces, for the report.")
    output: str | None = Field(default=None, description="Output root (local path). Default: runs/<name>.")
    stages: dict[str, StageSpec] = Field(description="Stage name -> spec, in any order (the DAG orders them).")
    report: ReportSpec = Field(
        default_factory=ReportSpec, description="Report layout: tables, curves and findings (solar_ray.report.spec)."
    )


class Pipeline:
    """A loaded experiment: validated stage configs, their dependency graph and output locations."""

    def __init__(self, path: str | Path, output: str | None = None):
        self.path = Path(path)
        self.experiment = validate(Experiment, read_yaml(self.path), str(self.path))  # type: ignore[arg-type]
        # Absolute, because Ray workers do not share the driver's working directory.
        self.root = Path(output or self.experiment.output or Path("runs") / self.experiment.name).resolve()
        self.parents = self._dependency_graph()
        self.order = self._topological_order()
        self.configs = {name: self._stage_config(name) for name in self.order}

    # --------------------------------------------------------------------------------------- building

    def _dependency_graph(self) -> dict[str, set[str]]:
        graph = {}
        for name, spec in self.experiment.stages.items():
            deps = set()
            for key, ref in spec.inputs.items():
                parent = ref.split(":", 1)[0]
                if parent not in self.experiment.stages:
                    raise ConfigError(
                        f"{self.path}: stage '{name}' input '{key}' refers to unknown stage '{parent}'; "
                        f"stages: {', '.join(self.experiment.stages)}"
                    )
                deps.add(parent)
            graph[name] = deps
        return graph

    def _topological_order(self) -> list[str]:
        try:
            return list(graphlib.TopologicalSorter(self.parents).static_order())
        except graphlib.CycleError as exc:
            raise ConfigError(f"{self.path}: stages form a cycle: {' -> '.join(exc.args[1])}") from None

    def artifact(self, ref: str) -> Path:
        stage, _, sub = ref.partition(":")
        return self.root / stage / sub if sub else self.root / stage

    def _stage_config(self, name: str) -> StageConfig:
        spec = self.experiment.stages[name]
        source = f"{self.path} stage '{name}'"
        if isinstance(spec.config, str):
            tree = resolve_extends(self.path.parent / spec.config)
            source = f"{self.path.parent / spec.config} (stage '{name}' of {self.path})"
        else:
            tree = deep_merge({}, spec.config)
        for key, value in spec.overrides.items():
            set_dotted(tree, key, value)
        for key, ref in spec.inputs.items():
            set_dotted(tree, key, str(self.artifact(ref)))
        tree["output"] = str(self.root / name)
        # Every stage that keeps Ray Train / Tune state keeps it under the experiment's output root.
        key = _storage_key(tree.get("stage"))
        if key and key not in spec.overrides:
            set_dotted(tree, key, str(self.root / RAY_STORAGE_DIR))
        return build_config(tree, source)

    # ------------------------------------------------------------------------------------------ state

    def input_paths(self, name: str) -> dict[str, Path]:
        return {key: self.artifact(ref) for key, ref in self.experiment.stages[name].inputs.items()}

    def is_current(self, name: str) -> bool:
        """True when the stage's artifact exists with the same config and the same parent content hashes."""
        out = self.root / name
        if not (out / LINEAGE).is_file():
            return False
        lineage = read_lineage(out)
        if _comparable(lineage.get("config", {})) != _comparable(dump_config(self.configs[name])):
            return False
        for parent in lineage.get("parents", []):
            if parent.get("content_hash") != artifact_hash(parent["path"]):
                return False
        return True

    def select(self, start: str | None = None, only: str | None = None) -> list[str]:
        """Stages to run, in order: all, `start` and its descendants, or just `only`."""
        for chosen in (start, only):
            if chosen is not None and chosen not in self.configs:
                raise ConfigError(f"{self.path}: no stage named '{chosen}'; stages: {', '.join(self.order)}")
        if only:
            return [only]
        if start:
            downstream = {start}
            for name in self.order:
                if self.parents[name] & downstream:
                    downstream.add(name)
            return [name for name in self.order if name in downstream]
        return list(self.order)

    # ------------------------------------------------------------------------------------------- plan

    def plan(self, selected: list[str]) -> list[dict[str, Any]]:
        rows = []
        for name in self.order:
            config = self.configs[name]
            if name not in selected:
                status = "not selected"
            elif self.is_current(name):
                status = "cached"
            else:
                status = "will run"
            rows.append({
                "stage": name,
                "kind": config.stage,
                "inputs": ", ".join(f"{k}<-{v}" for k, v in self.experiment.stages[name].inputs.items()) or "-",
                "resources": stage_resources(config),
                "status": status,
            })
        return rows

    def run(self, start: str | None = None, only: str | None = None, report: bool = True) -> dict[str, Any]:
        """Run the selected stages in order; returns the state written to pipeline.json."""
        from rich.console import Console

        from solar_ray.ray_session import init_ray
        from solar_ray.stages import run_stage

        console = Console(stderr=True)
        selected = self.select(start, only)
        forced = set(selected) if (start or only) else set()
        for name in selected:  # inputs of the first selected stages must exist before anything runs
            for key, path in self.input_paths(name).items():
                parent = self.experiment.stages[name].inputs[key].split(":", 1)[0]
                if parent not in selected and not path.exists():
                    raise ArtifactError(f"stage '{name}': input {key} = {path} does not exist; run stage '{parent}' first")
        self.root.mkdir(parents=True, exist_ok=True)
        state = {"experiment": self.experiment.name, "source": str(self.path), "stages": {}}
        init_ray()
        started = time.monotonic()
        for index, name in enumerate(selected, 1):
            label = f"[{index}/{len(selected)}] {name} ({self.configs[name].stage})"
            if name not in forced and self.is_current(name):
                console.print(f"{label}: cached")
                state["stages"][name] = {"status": "cached", "seconds": 0.0}
                continue
            console.print(f"{label}: running")
            config = self.configs[name]
            if (self.root / name).exists():
                config = type(config).model_validate({**config.model_dump(), "force": True})
            self.reset_stale_ray_state(name, config, fresh=name in forced)
            t0, wall_start = time.monotonic(), time.time()
            run_stage(config)
            seconds = round(time.monotonic() - t0, 1)
            console.print(f"{label}: done in {seconds:.0f} s (total {time.monotonic() - started:.0f} s)")
            # started_at (unix s): lines the stage up with the per-step timestamps in its metrics.jsonl
            state["stages"][name] = {"status": "ran", "seconds": seconds, "started_at": round(wall_start, 2)}
            write_json(self.root / "pipeline.json", state)
        state["seconds"] = round(time.monotonic() - started, 1)
        write_json(self.root / "pipeline.json", state)
        if report:
            from solar_ray.report import write_pipeline_report

            path = write_pipeline_report(self)
            console.print(f"report: {path}")
        return state

    def reset_stale_ray_state(self, name: str, config: StageConfig, fresh: bool = False) -> None:
        """Delete the stage's Ray Train / Tune run folders unless they were started with this config and inputs.

        Ray resumes a run by its name, so without this a stage rerun after its data changed would resume the old
        run's finished checkpoints and export the old model. The key of what a run started with is kept beside
        its folders (`.<run>.inputs`); a stage interrupted mid-run finds its own key and resumes. `fresh` (a
        stage chosen by --from / --only) always starts over: resuming would only replay the last checkpoint.
        Runs stored at a cloud URI are left alone (name them per attempt with `run.name` there).
        """
        folders = ray_run_folders(config)
        if not folders:
            return
        parents = {ref: artifact_hash(self.root / ref.split(":", 1)[0])
                   for ref in self.experiment.stages[name].inputs.values()}
        key = json.dumps({"config": _comparable(dump_config(config)), "parents": parents}, sort_keys=True, default=str)
        marker = folders[0].parent / f".{folders[0].name}.inputs"
        if fresh or not (marker.is_file() and marker.read_text() == key):
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(key)


def ray_run_folders(config: StageConfig) -> list[Path]:
    """The local folders where a stage's Ray Train run or Tune experiment keeps its state (none for a URI)."""
    key = _storage_key(getattr(config, "stage", None))
    if key == "run.storage_path":  # a training stage: <storage>/<run name>/
        storage, names = config.run.storage_path, [config.run_name()]
    elif key == "storage_path":  # a sweep: <storage>/<experiment>/ and its trials' training runs
        storage, names = config.storage_path, [config.experiment_name(), f"{config.experiment_name()}-train"]
    else:
        return []
    if "://" in storage:
        return []
    return [Path(storage) / name for name in names]


def stage_resources(config: StageConfig) -> str:
    """A short description of what a stage asks of the cluster, read from its config's common fields."""
    scaling = getattr(config, "scaling", None)
    if scaling is not None:
        workers = getattr(scaling, "num_workers", 1)
        gpu = getattr(scaling, "use_gpu", False)
        unit = "GPU" if gpu is True else "CPU" if gpu is False else "GPU if present"
        zero = getattr(getattr(config, "deepspeed", None), "zero_stage", None)
        return f"{workers} x {unit} worker" + ("s" if workers != 1 else "") + (f", ZeRO-{zero}" if zero is not None else "")
    for field in ("actors", "workers", "num_actors"):
        if field in type(config).model_fields:
            value = getattr(config, field)
            count = f"{value} Ray actor" + ("s" if value != 1 else "") if isinstance(value, int) else "Ray actors"
            gpu = "GPU" if getattr(config, "backend", None) == "vllm" or getattr(config, "engine", None) == "vllm" else "CPU"
            return f"{count} ({gpu})" if isinstance(value, int) else f"{count}, one per {gpu}"
    if getattr(config, "stage", None) == "data":
        return "Ray Data tasks (all CPUs)"
    return "driver (1 CPU)"


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "force"}


def _storage_key(stage: Any) -> str | None:
    """The dotted key of a stage config's Ray storage path (`storage_path` or `run.storage_path`), if any."""
    from solar_ray.stages import STAGES, stage_module

    if stage not in STAGES:
        return None  # build_config reports the unknown stage
    fields = stage_module(stage).Config.model_fields
    if "storage_path" in fields:
        return "storage_path"
    run = fields.get("run")
    if run is not None and "storage_path" in getattr(run.annotation, "model_fields", {}):
        return "run.storage_path"
    return None
