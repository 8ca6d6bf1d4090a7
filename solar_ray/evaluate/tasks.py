"""Offline lm-eval tasks: YAMLs that `include` lm-eval's own task YAML and point its dataset at local files.

lm-eval keeps its prompts, few-shot sampling and metrics; we only override `dataset_path: json`,
`dataset_name: null` and `dataset_kwargs.data_files` (measured to work offline with lm-eval 0.4.13).
MMLU's local files hold every subject with a `subject` field; each subject present becomes lm-eval's
`mmlu_<subject>` task over a per-subject copy of the rows, with lm-eval's own description line.

`check_data` reads the files before anything runs, so a missing file or field fails in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from solar_ray.errors import DataError
from solar_ray.evaluate.suites import TASKS, TaskSpec

ROWS_CHECKED = 200  # fields are checked on the first rows of each file: enough to catch a wrong schema, cheap


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON ({exc.msg}); expected one JSON object per line") from None
            if limit and len(rows) >= limit:
                break
    return rows


def split_files(data_dir: Path, spec: TaskSpec) -> dict[str, Path]:
    """Split role -> existing file; raises DataError naming the first missing file the task needs."""
    found = {}
    for role, split in spec.splits.items():
        path = data_dir / spec.folder / f"{split}.jsonl"
        if path.is_file():
            found[role] = path
        elif role in spec.needed and not (role == "training_split" and spec.shots == 0):
            raise DataError(
                f"{path}: file not found; task {spec.name} needs the '{split}' split as "
                f"{spec.folder}/{split}.jsonl under data_dir {data_dir} (the tiny world's data/benchmarks layout)"
            )
    return found


def check_data(data_dir: str | Path, tasks: list[str]) -> dict[str, list[str]]:
    """Check every file the tasks read; returns task key -> lm-eval task names (mmlu -> its subjects)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: benchmark data directory not found (expected e.g. WORLD/data/benchmarks)")
    names = {}
    for key in tasks:
        spec = TASKS[key]
        for path in split_files(data_dir, spec).values():
            rows = read_rows(path, ROWS_CHECKED)
            if not rows:
                raise DataError(f"{path}: no rows; task {spec.name} needs at least one")
            for number, row in enumerate(rows, 1):
                missing = [field for field in spec.fields if field not in row]
                if missing:
                    raise DataError(
                        f"{path}: row {number} lacks field {missing[0]!r} (has {sorted(row)}); "
                        f"lm-eval's {key} reads {list(spec.fields)}"
                    )
        names[key] = [f"mmlu_{s}" for s in mmlu_subjects(data_dir)] if key == "mmlu" else [key]
    return names


def mmlu_subjects(data_dir: Path) -> list[str]:
    rows = read_rows(data_dir / TASKS["mmlu"].folder / "test.jsonl")
    return sorted({str(row["subject"]) for row in rows})


def write_task_dir(data_dir: str | Path, tasks: list[str], out: str | Path, max_gen_toks: int | None = None) -> list[str]:
    """Write the YAMLs (and MMLU's per-subject files) for `tasks` into `out`; returns lm-eval task names.

    `max_gen_toks` caps generation (GSM8K) below lm-eval's 256 tokens: an untrained tiny model never writes the
    stop string, so each answer otherwise costs the full 256 steps.
    """
    data_dir, out = Path(data_dir).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm_tasks = lm_eval_tasks_dir()
    names: list[str] = []
    for key in tasks:
        spec = TASKS[key]
        files = split_files(data_dir, spec)
        base = {"include": str(lm_tasks / spec.lm_eval_yaml), "dataset_path": "json", "dataset_name": None,
                "num_fewshot": spec.shots}
        if key != "mmlu":
            config = {**base, "task": key, **_splits(spec, {role: str(p) for role, p in files.items()})}
            if key == "gsm8k" and max_gen_toks:
                # generation_kwargs replaces the included mapping whole: restate lm-eval's gsm8k values
                config["generation_kwargs"] = {"until": ["Question:", "</s>", "<|im_end|>"], "do_sample": False,
                                               "temperature": 0.0, "max_gen_toks": max_gen_toks}
            (out / f"{key}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            names.append(key)
            continue
        by_subject: dict[str, dict[str, list[dict]]] = {}
        for role, path in files.items():
            for row in read_rows(path):
                by_subject.setdefault(str(row["subject"]), {}).setdefault(role, []).append(row)
        for subject in sorted(s for s, parts in by_subject.items() if "test_split" in parts):
            sub_files = {}
            for role, rows in by_subject[subject].items():
                path = out / "mmlu" / subject / f"{spec.splits[role]}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
                sub_files[role] = str(path)
            words = " ".join(subject.split("_"))  # lm-eval's own description line (mmlu/_generate_configs.py)
            config = {**base, "task": f"mmlu_{subject}", "task_alias": subject, "tag": "solar_mmlu",
                      "description": f"The following are multiple choice questions (with answers) about {words}.\n\n",
                      **_splits(spec, sub_files)}
            (out / f"mmlu_{subject}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            names.append(f"mmlu_{subject}")
    return names


def _splits(spec: TaskSpec, files: dict[str, str]) -> dict:
    """Split roles with no local file are set to null so lm-eval never looks for them."""
    roles = {role: (split if role in files else None) for role, split in spec.splits.items()}
    data_files = {spec.splits[role]: path for role, path in files.items()}
    return {**roles, "dataset_kwargs": {"data_files": data_files}}
