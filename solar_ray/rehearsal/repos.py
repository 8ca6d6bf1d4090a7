"""Repository-shaped folders of a local hub mirror (read through `solar_ray.hub`'s SOLAR_RAY_HUB_MIRROR hook).

A dataset repository is laid out as the hub's parquet repositories are: `<config>/<split>-00000-of-00001.parquet`
per config and split, and a README.md whose YAML header declares the configs and their splits' files, so
`datasets.load_dataset(folder, config, split=...)` resolves configs and splits with the same code it runs for
the hub. A model repository is a model directory saved with `save_pretrained` (safetensors, config, tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = "default"


def write_dataset_repo(root: Path, repo_id: str, configs: dict[str | None, dict[str, list[dict[str, Any]]]]) -> Path:
    """Write `root/datasets/<repo_id>/`: {config (None: the default config): {split: rows}} -> parquet + README."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "datasets" / repo_id
    repo.mkdir(parents=True, exist_ok=True)
    declared = []
    for config, splits in configs.items():
        name = config or DEFAULT_CONFIG
        files = []
        for split, rows in splits.items():
            path = Path(name) / f"{split}-00000-of-00001.parquet"
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), repo / path)
            files.append({"split": split, "path": f"{name}/{split}-*"})
        declared.append({"config_name": name, "data_files": files, **({"default": True} if config is None else {})})
    header = yaml.safe_dump({"configs": declared}, sort_keys=False)
    (repo / "README.md").write_text(f"---\n{header}---\n# {repo_id} (local mirror)\n")
    return repo
