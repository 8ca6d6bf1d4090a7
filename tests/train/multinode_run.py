"""Run by test_multinode.py in a subprocess: a simulated two-node Ray cluster (1 CPU per node), so the two
training workers must land on different nodes; pretraining runs and exports. Writes the number of live nodes to
OUT/../nodes.json (a file, not stdout: Ray forwards worker log lines to stdout after anything printed here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(model: str, dataset: str, out: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    try:
        from solar_ray.train import pretrain
        from solar_ray.train.launcher import run

        config = pretrain.Config(
            model=model, dataset=dataset, output=out, scaling={"num_workers": 2, "cpus_per_worker": 1},
            deepspeed={"zero_stage": 2},
            optim={"max_length": 32, "per_device_batch_size": 4, "max_steps": 3, "learning_rate": 3e-3},
            run={"name": "two-nodes", "storage_path": str(Path(out).parent / "ray"), "checkpoint_every": 2},
        )
        run(config)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        (Path(out).parent / "nodes.json").write_text(json.dumps({"nodes": len(nodes)}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
