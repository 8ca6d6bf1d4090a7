"""`stage: data` - build one dataset artifact from a mixture of registered datasets, on Ray Data.

Features, in the order rows meet them:
1. read each source (local json/jsonl/parquet file or directory, else its hub name, streamed) and adapt it to the
   config's row kind (registry.py); malformed rows are quarantined with a reason (quarantine.py);
2. FLAN-overlap filter on sources that carry FLAN ids (OpenOrca), when `flan_filter` is set (flan_filter.py);
3. n-gram decontamination against the benchmark evaluation splits, when `decontaminate` is set (decontam.py);
4. each source sampled to its cap with the seed, all sources shuffled together (mixture.py);
5. written as train.parquet (+ test.parquet with `test_size` rows), rejected.parquet (every quarantined row with
   `reason`, `detail`, and `benchmark` / `ngram` / `flan_task` where they apply), report.json and lineage.json
   (per-source counts in `metrics.mixture`).

Raises ConfigError for unknown datasets or a source whose kind differs from `kind`; DataError for a missing
path, or a source whose rows are all invalid, or an empty mixture; ArtifactError when the output exists.

Example (experiments/tiny/data_sft_v2.yaml):
    stage: data
    kind: sft
    sources:
      alpaca_gpt4: {path: world/data/alpaca_gpt4, cap: 52000}
      open_orca: {path: world/data/open_orca, cap: 100000}
    flan_filter: {collection: world/data/flan_collection}
    decontaminate: {benchmarks_dir: world/data/benchmarks}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from solar_ray.config import LocalPath, StageConfig, Strict
from solar_ray.data.decontam import DEFAULT_NGRAM
from solar_ray.data.flan_filter import TABLE8_TASKS
from solar_ray.data.registry import REGISTRY
from solar_ray.errors import DataError

TEST_FILE = "test.parquet"  # the held-out rows, beside train.parquet


class SourceConfig(Strict):
    """One dataset in the mixture; the mapping key names it (and is its registry name unless `dataset` is set)."""

    dataset: str | None = Field(default=None, description="Registry name (solar_ray/data/registry.py); default: the key.")
    path: LocalPath | None = Field(
        default=None, description="Local .jsonl/.json/.parquet file, or a directory (dataset artifact or <split>.*)."
    )
    hub_id: str | None = Field(default=None, description="Hub dataset id replacing the registry's default.")
    subset: str | None = Field(default=None, description="Hub subset (config name), when the dataset has several.")
    split: str | None = Field(default=None, description="Split to read; default: the registry's (usually train).")
    cap: int | None = Field(default=None, ge=0, description="At most this many rows (Table 1); null = all rows.")


class FlanFilterConfig(Strict):
    """Drop OpenOrca rows whose FLAN task (recovered by question text) is listed in `drop_tasks`."""

    collection: LocalPath | None = Field(
        default=None,
        description="Directory holding <submix>/train.jsonl|parquet for flan2021, t0, niv2, cot; null = the hub.",
    )
    drop_tasks: list[str] = Field(
        default=list(TABLE8_TASKS), description="FLAN task names to drop (Table 8); punctuation/version-insensitive."
    )


class DecontamConfig(Strict):
    """Quarantine rows sharing a word n-gram with a benchmark's evaluation split (question + gold answer)."""

    benchmarks_dir: LocalPath = Field(description="Directory of <benchmark>/<split>.jsonl files in lm-eval's schemas.")
    benchmarks: list[str] | None = Field(default=None, description="Benchmarks to check; null = every one found.")
    n: int = Field(default=DEFAULT_NGRAM, ge=1, description="N-gram length in words (13 as in GPT-3 / FLAN).")


class Config(StageConfig):
    """A `stage: data` config: sources by name, the row kind they become, filters, seed."""

    stage: Literal["data"] = Field(description="Always 'data'.")
    kind: Literal["pretrain", "sft", "preference"] = Field(
        description="Row kind written: pretrain {text}, sft {messages}, preference {prompt, chosen, rejected}."
    )
    sources: dict[str, SourceConfig | None] = Field(
        description="name -> source; `extends:` merges by name, so a config adds one dataset; null removes one."
    )
    seed: int = Field(default=0, description="Seed of the per-source samples and of the shuffle.")
    test_size: int = Field(default=0, ge=0, description="Rows of the shuffled mixture held out as test.parquet.")
    flan_filter: FlanFilterConfig | None = Field(default=None, description="FLAN-overlap filter; null = off.")
    decontaminate: DecontamConfig | None = Field(default=None, description="N-gram decontamination; null = off.")

    @field_validator("sources")
    @classmethod
    def _drop_removed(cls, sources):
        sources = {name: spec for name, spec in sources.items() if spec is not None}
        if not sources:
            raise ValueError("expected at least one source, e.g. {alpaca_gpt4: {path: data/alpaca.jsonl}}")
        return sources

    @model_validator(mode="after")
    def _check_sources(self):
        for name, source in self.sources.items():
            dataset = source.dataset or name
            if dataset not in REGISTRY:
                raise ValueError(
                    f"sources.{name}: unknown dataset '{dataset}'; set 'dataset' to one of {', '.join(sorted(REGISTRY))}"
                )
            if REGISTRY[dataset].kind != self.kind:
                raise ValueError(
                    f"sources.{name}: dataset '{dataset}' gives {REGISTRY[dataset].kind} rows but kind is '{self.kind}'"
                )
        return self


def _rejected_rows(batch):
    """map_batches fn: the quarantined rows."""
    import pyarrow.compute as pc

    return batch.filter(pc.is_valid(batch.column("reason")))


def _process_source(name: str, source: SourceConfig, config: Config, index, lookup):
    """Lazy Ray Dataset of one source's processed rows (adapted, FLAN-filtered, decontaminated)."""
    from solar_ray.data.decontam import decontaminate_batch
    from solar_ray.data.flan_filter import flan_filter_batch
    from solar_ray.data.load import CONTRACT_FIELDS, load_source
    from solar_ray.data.mixture import add_order_key
    from solar_ray.data.registry import get_spec

    spec = get_spec(source.dataset or name, f"sources.{name}")
    dataset = load_source(name, spec, source.path, source.hub_id, source.subset, source.split)
    if lookup is not None and spec.flan_submix:
        dataset = dataset.map_batches(flan_filter_batch, batch_format="pyarrow", fn_kwargs={"lookup": lookup})
    if index is not None:
        dataset = dataset.map_batches(
            decontaminate_batch,
            batch_format="pyarrow",
            fn_kwargs={"index": index, "columns": CONTRACT_FIELDS[config.kind]},
        )
    dataset = dataset.map_batches(
        add_order_key, batch_format="pyarrow", fn_kwargs={"seed": config.seed, "columns": CONTRACT_FIELDS[config.kind]}
    )
    return dataset, bool(lookup is not None and spec.flan_submix)


def _write_parquet(batches, columns, schema, train_path: Path, test_path: Path | None, test_size: int) -> tuple[int, int]:
    """Stream `batches` (pyarrow tables, in order) into train (and the first `test_size` rows into test).

    Returns the row counts (train, test).
    """
    import pyarrow.parquet as pq

    written = {"train": 0, "test": 0}
    writers = {"train": pq.ParquetWriter(train_path, schema)}
    if test_path is not None and test_size:
        writers["test"] = pq.ParquetWriter(test_path, schema)
    try:
        for batch in batches:
            table = batch.select(list(columns)).cast(schema)
            if written["test"] < test_size and "test" in writers:
                take = min(test_size - written["test"], table.num_rows)
                writers["test"].write_table(table.slice(0, take))
                written["test"] += take
                table = table.slice(take)
            if table.num_rows:
                writers["train"].write_table(table)
                written["train"] += table.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return written["train"], written["test"]


def run(config: Config) -> Path:
    import numpy as np
    import pyarrow as pa
    from ray.data import DataContext

    from solar_ray.artifacts import atomic_dir, write_json, write_lineage
    from solar_ray.config import dump_config
    from solar_ray.data.decontam import build_index
    from solar_ray.data.flan_filter import build_lookup
    from solar_ray.data.load import CONTRACT_FIELDS, processed_schema
    from solar_ray.data.mixture import ORDER, cap_threshold, mix, select_sample
    from solar_ray.data.report import scan, summarise_source
    from solar_ray.ray_session import init_ray

    init_ray()
    context = DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # sorted order must survive iteration (determinism)
    try:
        index = lookup = None
        if config.decontaminate is not None:
            dc = config.decontaminate
            index = build_index(dc.benchmarks_dir, dc.benchmarks, dc.n)
        if config.flan_filter is not None:
            lookup = build_lookup(config.flan_filter.collection, config.flan_filter.drop_tasks)

        columns = (*CONTRACT_FIELDS[config.kind], "source")
        report: dict = {"kind": config.kind, "seed": config.seed, "sources": {}}
        kept, rejected, sampled_keys = [], [], []
        sampled_bytes = 0
        for name, source in config.sources.items():
            processed, flan_filtered = _process_source(name, source, config, index, lookup)
            # Materialised once (object store, spilling to disk when large) so that counting, the kept rows and
            # the quarantined rows do not each re-read and re-filter the source.
            processed = processed.materialize()
            counts, keys = scan(processed, ORDER)
            summary = summarise_source(counts, flan_filtered)
            where = source.path or source.hub_id or REGISTRY[source.dataset or name].hub_id
            if summary["valid"] == 0:
                reasons = ", ".join(f"{r}: {n}" for r, n in summary["rejected"].items()) or "no rows"
                raise DataError(f"sources.{name} ({where}): every row is invalid ({reasons}); see the quarantine reasons")
            used = summary["available"] if source.cap is None else min(source.cap, summary["available"])
            report["sources"][name] = {"dataset": source.dataset or name, "input": where, **summary,
                                       "cap": source.cap, "used": used}
            threshold = cap_threshold(keys, source.cap)
            sampled_keys.append(keys if threshold is None else keys[keys <= threshold])
            sampled_bytes += processed.size_bytes() * len(sampled_keys[-1]) // max(summary["rows_read"], 1)
            kept.append(processed.map_batches(select_sample, batch_format="pyarrow", fn_kwargs={"threshold": threshold}))
            rejected.append(processed.map_batches(_rejected_rows, batch_format="pyarrow"))

        if sum(entry["used"] for entry in report["sources"].values()) == 0:
            raise DataError(f"{config.output}: the mixture is empty after filtering (see the per-source counts)")
        schema = pa.schema([processed_schema(config.kind).field(c) for c in columns])
        with atomic_dir(config.output, config.force) as tmp:
            mixed = mix(kept, np.concatenate(sampled_keys), sampled_bytes)
            n_train, n_test = _write_parquet(mixed, columns, schema, tmp / "train.parquet",
                                             tmp / TEST_FILE, config.test_size)
            rejected_schema = processed_schema(config.kind)
            rejected_all = rejected[0].union(*rejected[1:]) if len(rejected) > 1 else rejected[0]
            n_rejected = sum(sum(entry["rejected"].values()) for entry in report["sources"].values())
            if n_rejected:
                batches = rejected_all.iter_batches(batch_format="pyarrow", batch_size=4096)
                _write_parquet(batches, rejected_schema.names, rejected_schema, tmp / "rejected.parquet", None, 0)
            report["totals"] = {"train": n_train, "test": n_test, "rejected": n_rejected}
            write_json(tmp / "report.json", report)
            mixture = {name: {k: entry[k] for k in ("cap", "available", "used")} for name, entry in report["sources"].items()}
            parents = {f"source:{name}": s.path for name, s in config.sources.items() if s.path}
            if config.decontaminate is not None:
                parents["benchmarks"] = config.decontaminate.benchmarks_dir
            if config.flan_filter is not None and config.flan_filter.collection:
                parents["flan_collection"] = config.flan_filter.collection
            write_lineage(tmp, "data", dump_config(config), parents=parents,
                          metrics={"rows": report["totals"], "mixture": mixture})
    finally:
        context.execution_options.preserve_order = preserve_order
    return Path(config.output)


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def needs(config: Config):
    from solar_ray.contract import StageNeeds

    return StageNeeds(driver_cpus=1.0, what="Ray Data tasks (on free CPUs)")  # they spread over free CPUs


def rows(config: Config, sub: str, models) -> int | None:
    """Training rows: each source's cap (or its input's rows, if fewer), less the held-out test rows; of
    `test.parquet`, the held-out rows."""
    if sub == TEST_FILE:
        return config.test_size
    total = 0
    for source in config.sources.values():
        available = models.rows(source.path) if source.path else None
        counts = [n for n in (source.cap, available) if n is not None]
        if not counts:
            return None
        total += min(counts)
    return max(0, total - config.test_size)


def workload(config: Config, models):
    from solar_ray.contract import Workload

    count = rows(config, "", models)
    return Workload(work=f"<= {count:,} rows" if count is not None else "-")
