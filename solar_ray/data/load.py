"""Ray Data readers: a local json / jsonl / parquet file or directory, else the hub name (streaming).

Every source becomes a Ray Dataset of *adapted* rows with one schema per kind (`processed_schema`): the contract
fields, `source`, and bookkeeping columns the filters fill in (`reason`, `detail`, `benchmark`, `ngram`,
`flan_task`, `upstream_id`, `flan_question`, `row`). A row with a non-null `reason` is quarantined.

A rejected-rows file (`rejected*.parquet`, the quarantine every stage keeps beside its data) is never read as
data: a path to one, or a directory whose data files would include one, is an error.

JSON lines are read as raw text and parsed per row rather than with Arrow's JSON reader, because Arrow fails the
whole block when one row has a different type (a number where text was expected) - and such a row must be
quarantined, not crash the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from solar_ray.data.quarantine import InvalidRow
from solar_ray.data.registry import DatasetSpec, Kind
from solar_ray.errors import DataError

CONTRACT_FIELDS: dict[str, tuple[str, ...]] = {
    "pretrain": ("text",),
    "sft": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
}
BOOKKEEPING = ("reason", "detail", "benchmark", "ngram", "flan_task", "upstream_id", "flan_question", "row")


def processed_schema(kind: Kind):
    import pyarrow as pa

    message_list = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    contract = [(name, pa.string() if kind == "pretrain" else message_list) for name in CONTRACT_FIELDS[kind]]
    return pa.schema([*contract, ("source", pa.string()), *((name, pa.string()) for name in BOOKKEEPING)])


def contract_schema(kind: Kind):
    """Schema of train.parquet / test.parquet rows: the contract fields + source."""
    import pyarrow as pa

    schema = processed_schema(kind)
    return pa.schema([schema.field(name) for name in (*CONTRACT_FIELDS[kind], "source")])


def _json_default(value: Any) -> str:
    return repr(value)


def adapt_batch(batch, *, spec: DatasetSpec, source: str, lines: bool):
    """map_batches fn: upstream rows (pyarrow batch, or raw JSON lines in column `text`) -> processed rows."""
    import pyarrow as pa

    if lines:
        raw_rows: list[Any] = []
        for line in batch.column("text").to_pylist():
            try:
                raw_rows.append(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                raw_rows.append(line)
    else:
        raw_rows = batch.to_pylist()
    out = []
    for raw in raw_rows:
        record: dict[str, Any] = {"source": source}
        try:
            if not isinstance(raw, dict):
                raise InvalidRow("invalid_json", "line is not a JSON object")
            adapted = spec.adapter(raw)
            record.update(adapted)
            record["upstream_id"] = adapted.get("_id")
            record["flan_question"] = adapted.get("_question")
        except InvalidRow as exc:
            record.update(reason=exc.reason, detail=exc.detail, row=json.dumps(raw, default=_json_default)[:10000])
        out.append(record)
    schema = processed_schema(spec.kind)
    return pa.Table.from_pylist(out, schema=schema)


REJECTED_FILES = "rejected*.parquet"


def file_format(path: Path) -> str | None:
    """'parquet', 'jsonl' or 'json' (a JSON array) by the file's suffix and first character; None for others."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".json"):
        with path.open() as fh:
            return "json" if fh.read(1) == "[" else "jsonl"
    return None


def local_files(path: Path, split: str) -> tuple[str, list[str]]:
    """('parquet' | 'jsonl' | 'json', files) for a file, or a directory holding <split>.<ext> or data files."""
    if path.match(REJECTED_FILES):
        raise DataError(f"{path}: a rejected-rows file is not data; point at the dataset (e.g. its train.parquet)")
    if path.is_file():
        fmt = file_format(path)
        if fmt is None:
            raise DataError(f"{path}: unsupported file type '{path.suffix.lower()}' (expected .jsonl, .json or .parquet)")
        return fmt, [str(path)]
    for ext in ("parquet", "jsonl", "json"):
        if (path / f"{split}.{ext}").is_file():
            return local_files(path / f"{split}.{ext}", split)
    for ext in ("parquet", "jsonl"):
        files = sorted(str(p) for p in path.glob(f"*.{ext}"))
        rejected = [name for name in files if Path(name).match(REJECTED_FILES)]
        if rejected:
            raise DataError(f"{path}: no {split}.{ext} here, and its *.{ext} files include the rejected-rows file "
                            f"{Path(rejected[0]).name}; point at the dataset sub-directory (e.g. synth_math/instruct)")
        if files:
            return ext, files
    raise DataError(f"{path}: no {split}.parquet / {split}.jsonl / *.parquet / *.jsonl files in this directory")


def read_files(fmt: str, files: list[str], include_paths: bool = False):
    """(Ray Dataset of the files' upstream rows, is-JSON-lines); `include_paths` adds each row's file as `path`."""
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(files, include_paths=include_paths), False
    if fmt == "json":
        return ray.data.read_json(files, include_paths=include_paths), False
    return ray.data.read_text(files, drop_empty_lines=True, include_paths=include_paths), True


def local_split_files(source: str, subset: str | None, split: str) -> tuple[str, list[str]] | None:
    """(format, files) of a hub dataset's split whose data files are all on this machine (a local mirror), in one
    format Ray reads natively; else None.

    Ray's own parquet and text readers over the files, not a stream through `datasets` inside one Ray read task:
    a source's first read in a fresh Ray takes 1.2-1.4x less (bench/bench_mirror_read.py), and the rehearsal's data
    stages (eight, reading one to seven sources each, beside other stages) took 290 s instead of 687 s. The files and
    their order are the ones `datasets` itself resolves for the split.
    """
    import datasets

    from solar_ray.hub import HUB_OPEN_LOCK

    try:
        with HUB_OPEN_LOCK:
            data_files = datasets.load_dataset_builder(source, subset).config.data_files or {}
    except Exception:  # noqa: BLE001 - a source `datasets` cannot plan ahead is streamed, which reports its error
        return None
    files = [str(name) for name in data_files.get(split, [])]
    if not files or not all(Path(name).is_file() for name in files):
        return None
    formats = {file_format(Path(name)) for name in files}
    return (formats.pop(), files) if len(formats) == 1 and None not in formats else None


def read_raw(spec: DatasetSpec, path: str | None, hub_id: str | None, subset: str | None, split: str):
    """(Ray Dataset of upstream rows, is-JSON-lines). Local `path` wins; else the hub name, streamed."""
    import ray.data

    if path is not None:
        local = Path(path)
        if not local.exists():
            raise DataError(f"{spec.name}.path: {local} not found (a .jsonl/.json/.parquet file or a directory)")
        return read_files(*local_files(local, split))
    hub_id = hub_id or spec.hub_id
    if hub_id is None:
        raise DataError(f"{spec.name}: no hub copy exists for this dataset; set its 'path' to a local file or artifact")
    import datasets

    from solar_ray.hub import HUB_OPEN_LOCK, dataset_source

    def cannot_stream(exc: Exception) -> DataError:
        return DataError(f"{spec.name}: cannot stream '{hub_id}' split '{split}' ({type(exc).__name__}: {exc})")

    try:
        source = dataset_source(hub_id)
    except Exception as exc:  # a repository missing from the mirror; report one line
        raise cannot_stream(exc) from None
    offline = bool(os.environ.get("HF_HUB_OFFLINE")) or Path(source).is_dir()
    if offline and (local := local_split_files(source, subset, split)) is not None:
        return read_files(*local)  # no stream opened: its files are read as they are
    try:
        with HUB_OPEN_LOCK:
            streamed = datasets.load_dataset(source, subset, split=split, streaming=True)
    except Exception as exc:  # the hub raises many types (offline, missing repo, bad split); report one line
        raise cannot_stream(exc) from None
    if offline:
        # ray.data.from_huggingface first asks huggingface.co for the hub's parquet export of the dataset, an HTTP
        # call that ignores HF_HUB_OFFLINE and fails without a network (found by the rehearsal). Offline, or from a
        # local mirror, read the stream itself: Ray's own fallback when that export does not exist.
        # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
        from ray.data._internal.datasource.huggingface_datasource import HuggingFaceDatasource

        return ray.data.read_datasource(HuggingFaceDatasource(dataset=streamed)), False
    return ray.data.from_huggingface(streamed), False


def load_source(source: str, spec: DatasetSpec, path=None, hub_id=None, subset=None, split=None):
    """Ray Dataset of processed rows for one configured source (lazy, streaming)."""
    dataset, lines = read_raw(spec, path, hub_id, subset or spec.subset, split or spec.split)
    return dataset.map_batches(
        adapt_batch,
        batch_format="pyarrow",
        fn_kwargs={"spec": spec, "source": source, "lines": lines},
    )
