"""`stage: fetch` - bring a hub model, or the six H6 benchmarks, into a local artifact directory.

Everything downstream reads local directories (streaming up-scaling, merges, lm-eval's redirected tasks), so a
run on a cluster starts by fetching once to shared storage:
- `kind: model` downloads a model repository's safetensors weights, config, tokenizer and generation config at a
  pinned revision (pickle weights are not even downloaded unless `allow_pickle`); no remote code is fetched.
- `kind: dataset` writes one split of a hub dataset as `<output>/<split>.jsonl` in its upstream schema; with
  `subsets`, the split of each listed config, concatenated (MATH's train split is seven subject configs of
  EleutherAI/hendrycks_math, the source lm-eval's MATH tasks read; it seeds Synth. Math).
- `kind: benchmarks` writes the H6 evaluation sets in the layout eval and decontamination read:
  `<output>/<benchmark>/<split>.jsonl` with lm-eval's field names (the upstream datasets' own columns).
Raises ArtifactError (one line naming the repository) when the hub cannot be reached or the repository is missing.

Every hub read of the project resolves a repository id here (`mirror_repo`, `dataset_source`): the hub itself,
or, when SOLAR_RAY_HUB_MIRROR names a folder, `<folder>/models/<org>/<name>` and `<folder>/datasets/<org>/<name>`:
repository-shaped copies (a dataset's README.md declares its configs and splits, as on the hub) that the same
loading code reads offline. The rehearsal (solar_ray.rehearsal) builds one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from solar_ray.config import StageConfig, dump_config
from solar_ray.errors import ArtifactError

MIRROR_ENV = "SOLAR_RAY_HUB_MIRROR"
# A pipeline runs stages in threads; two of them opening hub datasets at once failed in datasets' tqdm progress
# bars ("'tqdm' object has no attribute '_lock'", found by the rehearsal), so datasets open one at a time.
HUB_OPEN_LOCK = threading.Lock()

MODEL_FILES = ["*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
               "tokenizer*", "special_tokens_map.json", "*.model", "chat_template.jinja"]
PICKLE_FILES = ["*.bin", "*.bin.index.json"]

# benchmark dir -> (hub dataset, subset, splits): the sources the Open LLM Leaderboard v1 tasks read.
BENCHMARKS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", ("train", "validation", "test")),
    "hellaswag": ("Rowan/hellaswag", None, ("train", "validation")),
    "mmlu": ("cais/mmlu", "all", ("dev", "validation", "test")),
    "truthfulqa_mc": ("truthfulqa/truthful_qa", "multiple_choice", ("validation",)),
    "winogrande": ("allenai/winogrande", "winogrande_xl", ("train", "validation")),
    "gsm8k": ("openai/gsm8k", "main", ("train", "test")),
}


class Config(StageConfig):
    stage: Literal["fetch"] = Field(default="fetch", description="Always 'fetch'.")
    kind: Literal["model", "dataset", "benchmarks"] = Field(
        description="model: a model repository; dataset: one split of a dataset; benchmarks: the H6 sets."
    )
    repo_id: str | None = Field(default=None, description="Hub repository, e.g. mistralai/Mistral-7B-v0.1.")
    subset: str | None = Field(default=None, description="kind dataset: the dataset's config name, if any.")
    subsets: list[str] = Field(default_factory=list, description="kind dataset: several config names whose "
                               "split is written as one file, in this order (e.g. MATH's seven subjects).")
    split: str = Field(default="train", description="kind dataset: the split to write.")
    revision: str = Field(default="main", description="Branch, tag or commit to pin (a commit hash is reproducible).")
    allow_pickle: bool = Field(default=False, description="Also download pickle (.bin) weights; they can run code.")

    @model_validator(mode="after")
    def _one_subset_field(self) -> Config:
        if self.subset is not None and self.subsets:
            raise ValueError("give subset (one config) or subsets (several), not both")
        return self


def run(config: Config) -> Path:
    from solar_ray.artifacts import atomic_dir, write_lineage

    out = Path(config.output or "runs/fetch")
    with atomic_dir(out, force=config.force) as tmp:
        if config.kind != "benchmarks" and not config.repo_id:
            raise ArtifactError(f"fetch: kind {config.kind} needs repo_id, e.g. repo_id=mistralai/Mistral-7B-v0.1")
        if config.kind == "model":
            counts = {"files": _fetch_model(config, tmp)}
        elif config.kind == "dataset":
            counts = _write_splits(config.repo_id, config.subsets or [config.subset], config.split,
                                   tmp / f"{config.split}.jsonl")
        else:
            counts = _fetch_benchmarks(tmp)
        write_lineage(tmp, "fetch", dump_config(config), metrics=counts)
    return out


def _fetch_model(config: Config, out: Path) -> int:
    from huggingface_hub import snapshot_download

    patterns = MODEL_FILES + (PICKLE_FILES if config.allow_pickle else [])
    try:
        mirror = mirror_repo(config.repo_id, "model")
        if mirror is not None:
            _copy_repo(mirror, out, patterns)
        else:
            snapshot_download(config.repo_id, revision=config.revision, local_dir=out, allow_patterns=patterns)
    except Exception as exc:  # the hub client raises many types (offline, gated, missing): one line for all
        raise ArtifactError(f"fetch {config.repo_id}@{config.revision}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'download failed'}") from None
    if not any(out.glob("*.safetensors")) and not config.allow_pickle:
        raise ArtifactError(f"fetch {config.repo_id}: the repository has no safetensors weights "
                            "(pass allow_pickle=true if you trust its pickle files)")
    return sum(1 for p in out.rglob("*") if p.is_file())


def _write_split(repo_id: str, subset: str | None, split: str, path: Path) -> int:
    return _write_splits(repo_id, [subset], split, path)[split]


def _write_splits(repo_id: str, subsets: list[str | None], split: str, path: Path) -> dict[str, int]:
    """Write `split` of each config in `subsets` to one JSON-lines file; {split: rows, <subset>: rows, ...}."""
    from datasets import load_dataset

    counts: dict[str, int] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for subset in subsets:
            # Streamed: nothing goes through datasets' prepared-dataset cache, which offline (HF_DATASETS_OFFLINE)
            # hands back an earlier copy of a dataset with the same name whatever its files now hold (seen).
            try:
                with HUB_OPEN_LOCK:
                    rows = load_dataset(dataset_source(repo_id), subset, split=split, streaming=True)
                written = 0
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
                    written += 1
            except Exception as exc:  # offline, gated, missing: one line naming the dataset
                raise ArtifactError(f"fetch {repo_id} ({subset}, {split}): {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else 'download failed'}") from None
            if len(subsets) > 1:
                counts[str(subset)] = written
            counts[split] = counts.get(split, 0) + written
    return counts


# ------------------------------------------------------------------------------------ where ids resolve


def mirror_repo(repo_id: str, repo_type: str) -> Path | None:
    """The mirror's copy of a repository when SOLAR_RAY_HUB_MIRROR is set (None: use the hub itself)."""
    root = os.environ.get(MIRROR_ENV)
    if not root:
        return None
    path = Path(root) / f"{repo_type}s" / repo_id
    if not path.is_dir():
        raise ArtifactError(f"{repo_id}: no {repo_type} repository at {path} in the hub mirror {MIRROR_ENV}={root}")
    return path


def dataset_source(repo_id: str) -> str:
    """What `datasets.load_dataset` should open for a hub dataset id: the id, or the mirror's folder."""
    mirror = mirror_repo(repo_id, "dataset")
    return str(mirror) if mirror is not None else repo_id


def _copy_repo(source: Path, out: Path, patterns: list[str]) -> None:
    """Copy a mirrored repository's files matching `patterns`, with the hub client's own pattern filter."""
    import shutil

    from huggingface_hub.utils import filter_repo_objects

    files = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    for name in filter_repo_objects(files, allow_patterns=patterns):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, out / name)


def _fetch_benchmarks(out: Path) -> dict[str, int]:
    return {
        f"{name}/{split}": _write_split(hub_id, subset, split, out / name / f"{split}.jsonl")
        for name, (hub_id, subset, splits) in BENCHMARKS.items()
        for split in splits
    }


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def model_config(config: Config, sub: str, models) -> dict | None:
    """Before the download: the architecture from the hub config shipped with the planner (solar_ray/plan/hub/)."""
    return models.config(config.repo_id) if config.kind == "model" and config.repo_id else None


def rows(config: Config, sub: str, models) -> int | None:
    if config.kind != "dataset" or not config.repo_id:
        return None
    key = f"{config.repo_id}:{config.split}"
    known = models.assume.get("hub_rows", {})
    if key in known:
        models.used[f"rows {key}"] = f"{key}: {known[key]:,} rows (facts.yaml)"
    return known.get(key)


def workload(config: Config, models):
    from solar_ray.contract import Workload

    shape = models.shape(config.repo_id) if config.kind == "model" and config.repo_id else None
    return Workload(disk={"download": 2 * shape.params}) if shape else Workload()
