"""`solar-ray pipeline EXPERIMENT.yaml`: run an experiment's stages as a DAG on Ray, with caching and resume.

An experiment names its stages; each has a stage config (a file, relative to the experiment, or an inline
mapping), `inputs` (dotted config key -> the artifact of an earlier stage, optionally `stage:sub/path`) and
`overrides` (dotted config key -> value):

    name: tiny
    stages:
      world:   {config: world.yaml}
      base:    {config: pretrain_base.yaml, inputs: {model: "world:base", dataset: data_pretrain}}

Everything lands under one output directory (default `runs/<name>/`): one artifact per stage at
`<output>/<stage>/`, Ray Train/Tune storage at `<output>/ray/`, results stages may reuse at `<output>/cache/`
(an evaluation's scores of a model by its content), `pipeline.json` (state and timings) and the report at
`<output>/report/`.

Features:
1. Order: a stage runs once its inputs are done; a cycle or a reference to an unknown stage is a ConfigError
   naming the stage. Up to `parallel` independent stages run at once, as far as the CPUs/GPUs they ask Ray for
   fit the cluster (each stage's `needs`, solar_ray/contract.py); the tiny experiment runs two, since Ray
   Train's start-up idles a core.
2. Caching: a stage whose artifact exists, with a lineage.json recording the same config and the same parent
   content hashes, is skipped (read where the run folder is now, if it was moved or copied whole). Artifacts are
   written atomically, so an interrupted stage leaves nothing behind and a rerun resumes at the first stage
   without a complete artifact (training stages also resume from their Ray Train checkpoints in `<output>/ray/`,
   but only a run started with the same config and inputs: a stage rerun because either changed starts its Ray
   run afresh, see `reset_stale_ray_state`).
3. Twins: a stage whose effective config (a sweep's best config applied) and inputs' contents equal those of a
   stage already made in the run, differing only in where it writes and what it names its Ray run, makes the same
   artifact (every stage is seeded): it is not run again but links the twin's files (see `recipe`). In the tiny
   experiment, a candidate whose DPO sweep keeps DPO v2's settings is DPO v2's model, and is not trained twice.
4. Selection: `--from STAGE` reruns STAGE and everything downstream; `--only STAGE` runs just STAGE (its inputs
   must exist); `--dry-run` validates every config and prints the plan with each stage's resources.
5. Shared stages: `stages_from: {other.yaml: [world, base]}` takes those stages from another experiment file as
   written there (see `read_experiment`), so experiments that share a prefix of the recipe say it once.
Raises ConfigError / ArtifactError before anything runs when a config is invalid or a needed input is missing.
"""

from __future__ import annotations

import graphlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from solar_ray import contract
from solar_ray.artifacts import LINEAGE, artifact_hash, atomic_dir, read_lineage, write_json, write_lineage
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
from solar_ray.report.spec import EARLIER_RUN, ReportSpec

RAY_STORAGE_DIR = "ray"
CACHE_DIR = "cache"
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
    stages_from: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Another experiment YAML (relative to this one) -> names of its stages to use here as they are "
                    "there (config, overrides and inputs), so two experiments that share stages say them once.",
    )
    parallel: int = Field(
        default=1, ge=1,
        description="Stages run at once, when their inputs are ready and the cluster has the CPUs/GPUs they ask for.",
    )
    seed: int = Field(
        default=0, ge=0,
        description="The experiment's seed: added to every stage's own seeds (data sampling, model init and data "
                    "order, synthetic-data sampling, sweeps, the contamination test's sampling), so one override "
                    "(`seed=1` or --seed 1) re-runs the whole recipe with other randomness on the same data (a tiny "
                    "world's content is its language_seed, which no seed moves).",
    )
    report: ReportSpec = Field(
        default_factory=ReportSpec, description="Report layout: tables, curves and findings (solar_ray.report.spec)."
    )


def offset_seeds(config: Any, offset: int) -> Any:
    """The config with `offset` added to every int field named `seed`, nested settings included (optim.seed,
    engine.seed, search.seed): one experiment seed reaches every stage's randomness, each stage keeping its own
    distinct seed."""
    from pydantic import BaseModel

    def is_seed(name: str, value: Any) -> bool:
        return name == "seed" and isinstance(value, int) and not isinstance(value, bool)

    if not offset:
        return config
    if isinstance(config, dict):  # e.g. a sweep's base config tree: its trials' seeds too
        return {k: v + offset if is_seed(k, v) else offset_seeds(v, offset) for k, v in config.items()}
    if not isinstance(config, BaseModel):
        return config
    update = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if is_seed(name, value):
            update[name] = value + offset
        elif isinstance(value, (BaseModel, dict)):
            update[name] = offset_seeds(value, offset)
    return config.model_copy(update=update)


def read_experiment(path: Path, chain: tuple[Path, ...] = ()) -> Experiment:
    """The experiment at `path`, with the stages it takes from other experiment files (`stages_from`) added: their
    specs as written there, config paths rebased onto this file's folder. A stage named in both, a name the other
    file lacks, or files that take from each other are a ConfigError naming the file."""
    experiment = validate(Experiment, read_yaml(path), str(path))  # type: ignore[arg-type]
    if path.resolve() in chain:
        raise ConfigError(f"{path}: stages_from loops back to itself ({' -> '.join(str(p) for p in chain)})")
    for relative, names in experiment.stages_from.items():
        source = path.parent / relative
        other = read_experiment(source, (*chain, path.resolve()))
        for name in names:
            if name not in other.stages:
                raise ConfigError(f"{path}: stages_from: {source} has no stage '{name}'; its stages: "
                                  f"{', '.join(other.stages)}")
            if name in experiment.stages:
                raise ConfigError(f"{path}: stage '{name}' is both defined here and taken from {source}")
            spec = other.stages[name]
            if isinstance(spec.config, str):  # named relative to the file that wrote it
                spec = spec.model_copy(update={"config": os.path.relpath(source.parent / spec.config, path.parent)})
            experiment.stages[name] = spec
    return experiment


class Pipeline:
    """A loaded experiment: validated stage configs, their dependency graph and output locations."""

    def __init__(self, path: str | Path, output: str | None = None, seed: int | None = None,
                 profile: Any = None):
        self.path = Path(path)
        self.experiment = read_experiment(self.path)
        if seed is not None:
            self.experiment.seed = seed
        # A scale profile (solar_ray.rehearsal.profile, --rehearse): size changes laid over every stage config.
        self.profile = profile
        if profile is not None and profile.parallel:
            self.experiment.parallel = profile.parallel
        default = Path("runs") / (f"{self.experiment.name}_seed{self.experiment.seed}" if self.experiment.seed
                                  else self.experiment.name)  # a run with another seed does not overwrite seed 0's
        # Absolute, because Ray workers do not share the driver's working directory.
        self.root = Path(output or self.experiment.output or default).resolve()
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
        if self.profile is not None:
            self.profile.apply(name, tree)
        for key, ref in spec.inputs.items():
            set_dotted(tree, key, str(self.artifact(ref)))
        tree["output"] = str(self.root / name)
        # Every stage that keeps Ray Train / Tune state keeps it under the experiment's output root, and every
        # stage that caches reusable results (an evaluation's scores per model) shares one cache per stage kind.
        kind = tree.get("stage")
        for key, folder in ((contract.storage_key(kind), self.root / RAY_STORAGE_DIR),
                            (contract.cache_key(kind), self.root / CACHE_DIR / str(kind))):
            if key and key not in spec.overrides:
                set_dotted(tree, key, str(folder))
        return offset_seeds(build_config(tree, source), self.experiment.seed)

    # ------------------------------------------------------------------------------------------ state

    def input_paths(self, name: str) -> dict[str, Path]:
        return {key: self.artifact(ref) for key, ref in self.experiment.stages[name].inputs.items()}

    def is_current(self, name: str) -> bool:
        """True when the stage's artifact exists with the same config and the same parent content hashes."""
        out = self.root / name
        if not (out / LINEAGE).is_file():
            return False
        lineage = _moved_to(read_lineage(out), self.root, name)
        if _comparable(lineage.get("config", {})) != _comparable(dump_config(self.configs[name])):
            return False
        for parent in lineage.get("parents", []):
            if parent.get("content_hash") != artifact_hash(parent["path"]):
                return False
        return True

    def recipe(self, name: str) -> str:
        """What decides a stage's artifact, as one string: its effective config (re-validated now, so a sweep's
        best config written since the experiment was loaded is applied) less the keys that only name or place
        things (`contract.naming_keys`), with each input's content hash in place of its path. Two stages with one
        recipe make the same artifact."""
        config = self.effective_config(name)
        tree = dump_config(config)
        naming = contract.naming_keys(config)
        for key in naming:
            set_dotted(tree, key, None)
        for key, ref in self.experiment.stages[name].inputs.items():
            if key not in naming:
                set_dotted(tree, key, f"{artifact_hash(self.artifact(ref))}")
        return json.dumps(tree, sort_keys=True, default=str)

    def effective_config(self, name: str) -> StageConfig:
        """The stage's config validated again: files it reads values from (a sweep's best config) may have been
        written since the experiment was loaded."""
        config = self.configs[name]
        return type(config).model_validate(config.model_dump())

    def reuse(self, name: str, twin: str) -> None:
        """Make stage `name`'s artifact from its twin's: the same files (hard links; copies across file systems),
        and a lineage of its own naming the twin (`same_as`), so a later run finds `name` current."""
        source = self.root / twin

        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        with atomic_dir(self.root / name, force=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True, copy_function=link_or_copy,
                            ignore=lambda folder, _: [LINEAGE] if Path(folder) == source else [])
            made = read_lineage(source)
            write_lineage(tmp, made["stage"], dump_config(self.effective_config(name)), parents=self.input_paths(name),
                          metrics=made.get("metrics"), same_as=twin)

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

    def selection(self, start: str | None = None, only: str | None = None) -> tuple[list[str], set[str]]:
        """The selected stages (`select`) and those re-made whether current or not: a selection by --from / --only
        names what the user wants run."""
        selected = self.select(start, only)
        return selected, set(selected) if (start or only) else set()

    # ------------------------------------------------------------------------------------------- plan

    def plan(self, start: str | None = None, only: str | None = None, cluster: Any = None) -> list[dict[str, Any]]:
        """One row per stage: inputs, what it reserves, status, and the planner's columns (solar_ray.plan.render:
        devices, memory per device and its parts, work, disk; with a `cluster` spec also fit, hours and cost).
        The selection is `run`'s: with `start` or `only` every selected stage will run, current or not. A current
        stage below one that will run "may run": the run makes it again only if its inputs' new artifacts differ."""
        from solar_ray.plan.planner import CACHED, MAY_RUN, NOT_SELECTED, RUNNING, WILL_RUN, make_plan
        from solar_ray.plan.render import stage_columns

        selected, forced = self.selection(start, only)
        statuses: dict[str, str] = {}
        for name in self.order:  # parents first
            if name not in selected:
                statuses[name] = NOT_SELECTED
            elif name in forced or not self.is_current(name):
                statuses[name] = WILL_RUN
            elif any(statuses[parent] in RUNNING for parent in self.parents[name]):
                statuses[name] = MAY_RUN
            else:
                statuses[name] = CACHED
        planned = make_plan(self, cluster, statuses=statuses)
        rows = []
        for name in self.order:
            config = self.configs[name]
            needs = contract.needs(config)
            rows.append({
                "stage": name,
                "kind": config.stage,
                "inputs": ", ".join(f"{k}<-{v}" for k, v in self.experiment.stages[name].inputs.items()) or "-",
                "resources": needs.what,
                "reserves": contract.describe_demand(needs.demand({"CPU": math.inf, "GPU": math.inf})),
                "status": statuses[name],
                **stage_columns(planned, name),
            })
        return rows

    def check_fit(self, selected: list[str], cluster: Any) -> list[str]:
        """Refuse (ConfigError, one line naming the stage, the figure and the limit) a selected stage that cannot
        fit `cluster` (a solar_ray.plan.cluster.ClusterSpec); returns warnings for figures near a limit."""
        from solar_ray.plan.planner import NOT_SELECTED, WILL_RUN, check, make_plan

        statuses = {name: WILL_RUN if name in selected else NOT_SELECTED for name in self.order}
        return check(make_plan(self, cluster, statuses=statuses), selected)

    def run(self, start: str | None = None, only: str | None = None, report: bool = True,
            parallel: int | None = None, cluster_spec: Any = None) -> dict[str, Any]:
        """Run the selected stages as their inputs become ready; returns the state written to pipeline.json.

        Up to `parallel` stages (default: the experiment's) run at once, each in a driver thread that waits on its
        Ray work. A stage starts only when the CPUs/GPUs it asks for (its `needs`, solar_ray/contract.py) fit
        beside those of the running stages, or when nothing else runs (so a stage larger than the cluster can
        still make an autoscaler grow it). Ready stages start longest downstream chain first. After a failure no new stage
        starts; the running ones finish and the first error is raised. Before any stage runs, each stage's memory
        per device and device count is checked against `cluster_spec` (a ClusterSpec), else against the Ray cluster
        joined (its nodes now); a stage that cannot fit stops the run (ConfigError).
        """
        import queue
        import threading

        from solar_ray.console import console_note, stage_reporter
        from solar_ray.plan.cluster import live_cluster
        from solar_ray.ray_session import cluster_resources, init_ray
        from solar_ray.stages import run_stage

        selected, forced = self.selection(start, only)
        for name in selected:  # inputs of the first selected stages must exist before anything runs
            for key, path in self.input_paths(name).items():
                parent = self.experiment.stages[name].inputs[key].split(":", 1)[0]
                if parent not in selected and not path.exists():
                    raise ArtifactError(f"stage '{name}': input {key} = {path} does not exist; run stage '{parent}' first")
        warnings = self.check_fit(selected, cluster_spec) if cluster_spec is not None else []
        init_ray(say=lambda line: console_note(self, line))
        if cluster_spec is None and (live := live_cluster()) is not None:
            warnings = self.check_fit(selected, live)
        # The run starts: the console (a live view on a terminal, else plain lines) and its logs/, not before, so a
        # run refused above leaves nothing behind.
        reporter = stage_reporter(self, selected)
        self.root.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {**self.description(), "seed": self.experiment.seed, "stages": self._earlier_timings(selected)}
        for warning in warnings:
            reporter.note(f"near a limit: {warning}")
        cluster = cluster_resources()
        limit = parallel or self.experiment.parallel
        if limit > 1:
            import_driver_libraries()
        chain = self._downstream_chain()
        pending = sorted(selected, key=lambda n: (-chain[n], self.order.index(n)))
        finished: set[str] = set()
        running: dict[str, dict[str, float]] = {}  # stage -> the resources it holds
        recipes: dict[str, str] = {}  # stage -> its recipe, once its inputs are made
        made: dict[str, str] = {}  # recipe -> the stage whose artifact has it
        making: set[str] = set()  # recipes of the running stages
        results: queue.Queue = queue.Queue()
        failure: BaseException | None = None
        started = time.monotonic()
        state.update(parallel=limit, started_at=round(time.time(), 2))

        def work(name: str, config: StageConfig) -> None:
            t0 = time.monotonic()
            try:
                run_stage(config)
                results.put((name, None, time.monotonic() - t0))
            except BaseException as exc:  # noqa: BLE001 (re-raised in the driver's main thread)
                results.put((name, exc, time.monotonic() - t0))

        while pending or running:
            # A ready stage that must wait for room holds back every ready stage with a shorter chain behind it:
            # filling the room with those would starve it (the tiny job's DPO sweeps, which take both cores,
            # waited behind four H6 evaluations and ran last, ~150 s late on its critical path).
            held_back_below = 0
            for name in list(pending) if failure is None else []:
                if not all(p in finished or p not in selected for p in self.parents[name]):
                    continue
                if name not in forced and self.is_current(name):
                    pending.remove(name)
                    finished.add(name)
                    made.setdefault(self.recipe(name), name)
                    reporter.cached(name)
                    state["stages"][name] = {"status": "cached", "seconds": 0.0}
                    continue
                if name not in forced:
                    if name not in recipes:
                        recipes[name] = self.recipe(name)
                    twin = made.get(recipes[name])
                    if twin is None and recipes[name] in making:
                        continue  # its twin is being made: wait for it rather than make the artifact twice
                    if twin is not None:
                        t0 = time.monotonic()
                        self.reuse(name, twin)
                        pending.remove(name)
                        finished.add(name)
                        reporter.cached(name, same_as=twin)
                        state["stages"][name] = {"status": "reused", "same_as": twin,
                                                 "seconds": round(time.monotonic() - t0, 1)}
                        continue
                if chain[name] < held_back_below:  # after the cache checks: a cached stage takes no room
                    continue
                demand = contract.needs(self.configs[name]).demand(cluster)
                if running and (len(running) >= limit or not _fits(demand, running.values(), cluster)):
                    held_back_below = max(held_back_below, chain[name])
                    continue
                pending.remove(name)
                config = self.configs[name]
                if (self.root / name).exists():
                    config = type(config).model_validate({**config.model_dump(), "force": True})
                self.reset_stale_ray_state(name, config, fresh=name in forced)
                reporter.running(name)
                running[name] = demand
                if name in recipes:
                    making.add(recipes[name])
                # started_at (unix s): lines the stage up with the per-step timestamps in its metrics.jsonl
                state["stages"][name] = {"status": "running", "started_at": round(time.time(), 2)}
                threading.Thread(target=work, args=(name, config), name=f"stage-{name}", daemon=True).start()
            if not running:
                if pending and failure is None:  # cannot happen: with nothing running, the first ready stage starts
                    raise RuntimeError(f"pipeline stalled with pending stages {pending}")
                break
            name, error, seconds = _next_result(results)
            del running[name]
            making.discard(recipes.get(name, ""))
            if error is not None:
                state["stages"][name] = {**state["stages"][name], "status": "failed", "seconds": round(seconds, 1)}
                reporter.failed(name, error, seconds, waiting=bool(running))
                failure = failure or error
            else:
                finished.add(name)
                if name in recipes:
                    made.setdefault(recipes[name], name)
                state["stages"][name] = {**state["stages"][name], "status": "ran", "seconds": round(seconds, 1)}
                reporter.done(name, seconds)
            write_json(self.root / "pipeline.json", state)
        if failure is not None:
            raise failure
        state["seconds"] = round(time.monotonic() - started, 1)
        write_json(self.root / "pipeline.json", state)
        if report:
            from solar_ray.report import write_pipeline_report

            path = write_pipeline_report(self.root)
            reporter.report(path)
        return state

    def description(self) -> dict[str, Any]:
        """What pipeline.json records of the experiment, for the report (which never loads the experiment)."""
        return {"experiment": self.experiment.name, "description": self.experiment.description,
                "source": str(self.path), "report": self.experiment.report.model_dump(mode="json"),
                "graph": {name: {"kind": self.configs[name].stage, "parents": sorted(self.parents[name])}
                          for name in self.order}}

    def _earlier_timings(self, selected: list[str]) -> dict[str, Any]:
        """Stages this run leaves alone (--from / --only) keep the time of the last run that ran them."""
        path = self.root / "pipeline.json"
        earlier = json.loads(path.read_text()).get("stages", {}) if path.is_file() else {}
        return {name: {"status": EARLIER_RUN, "seconds": entry["seconds"]} for name, entry in earlier.items()
                if name in self.configs and name not in selected and entry.get("status") in ("ran", EARLIER_RUN)}

    def ancestors(self, name: str) -> set[str]:
        """Every stage upstream of `name`."""
        seen: set[str] = set()
        todo = list(self.parents[name])
        while todo:
            parent = todo.pop()
            if parent not in seen:
                seen.add(parent)
                todo.extend(self.parents[parent])
        return seen

    def _downstream_chain(self) -> dict[str, int]:
        """Stages on the longest path from each stage to the end of the DAG (itself included)."""
        children: dict[str, list[str]] = {name: [] for name in self.order}
        for name, parents in self.parents.items():
            for parent in parents:
                children[parent].append(name)
        chain: dict[str, int] = {}
        for name in reversed(self.order):
            chain[name] = 1 + max((chain[child] for child in children[name]), default=0)
        return chain

    def reset_stale_ray_state(self, name: str, config: StageConfig, fresh: bool = False) -> None:
        """Delete the stage's Ray Train / Tune run folders unless they were started with this config and inputs.

        Ray resumes a run by its name, so without this a stage rerun after its data changed would resume the old
        run's finished checkpoints and export the old model. The key of what a run started with is kept beside
        its folders (`.<run>.inputs`); a stage interrupted mid-run finds its own key and resumes. `fresh` (a
        stage chosen by --from / --only) always starts over: resuming would only replay the last checkpoint.
        Runs stored at a cloud URI are left alone (name them per attempt with `run.name` there).
        """
        folders = contract.ray_state(config)
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


def import_driver_libraries() -> None:
    """Import, in the main thread, the libraries that stage drivers import lazily. With `parallel` > 1 the drivers
    run in threads, and two threads importing transformers' modules at once can hand one a half-initialised module:
    "ImportError: cannot import name 'TrainingArguments' from 'transformers'" when SFT v3 and v4 started together
    on a resumed run (seen)."""
    import datasets  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainingArguments  # noqa: F401


def _fits(demand: dict[str, float], held: Any, cluster: dict[str, float]) -> bool:
    held = list(held)
    return all(demand.get(kind, 0.0) + sum(h.get(kind, 0.0) for h in held) <= cluster.get(kind, 0.0) + 1e-9
               for kind in ("CPU", "GPU"))


def _next_result(results: Any) -> tuple[str, BaseException | None, float]:
    """The next finished stage; polls so Ctrl-C reaches the main thread while stages run in theirs."""
    import queue

    while True:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            continue


def _moved_to(lineage: dict[str, Any], root: Path, name: str) -> dict[str, Any]:
    """The lineage of `root/name` as if written there, when it was written by a pipeline whose output folder has
    been moved or copied since (its recorded `output` is another folder's `name`): paths under the old folder
    read as the same paths under `root`, so a run folder synced to another machine or mount, or copied to try a
    change, is current where it lies (and its parents' hashes are read there, not at the old place)."""
    recorded = lineage.get("config", {}).get("output")
    if not isinstance(recorded, str) or Path(recorded).name != name or Path(recorded).parent == root:
        return lineage
    old, new = str(Path(recorded).parent), str(root)

    def moved(value: Any) -> Any:
        if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
            return new + value[len(old):]
        if isinstance(value, dict):
            return {key: moved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [moved(item) for item in value]
        return value

    return moved(lineage)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "force"}
