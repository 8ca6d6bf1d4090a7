"""The AWS and GCP cluster launcher configs: valid for the autoscaler shipped in the ray package, sized for the
10.7B stages, autoscaling from zero, secure by default."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_CONFIGS = {"aws": REPO / "cluster" / "aws" / "solar-ray.yaml", "gcp": REPO / "cluster" / "gcp" / "solar-ray.yaml"}


def load(cloud: str) -> dict:
    return yaml.safe_load(LAUNCHER_CONFIGS[cloud].read_text())


def workers(config: dict) -> dict[str, dict]:
    return {name: t for name, t in config["available_node_types"].items() if name != config["head_node_type"]}


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_CONFIGS))
def test_config_validates_against_the_autoscaler_schema_in_the_ray_package(cloud):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(cloud)
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the file as written
    # What `ray up` does before touching the cloud: merge the provider's defaults, then validate.
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["provider"]["type"] == cloud


def test_schema_check_is_not_vacuous():
    from ray.autoscaler._private.util import validate_config

    broken = load("aws")
    broken["available_node_types"]["train_8xh100"]["resources"] = {"GPU": "eight"}
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_CONFIGS))
def test_autoscaling_from_zero_with_idle_timeout(cloud):
    config = load(cloud)
    assert 0 < config["idle_timeout_minutes"] <= 30
    for name, node_type in workers(config).items():
        assert node_type["min_workers"] == 0, f"{name}: workers must scale from zero"
        assert node_type["max_workers"] >= 1, name
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert config["max_workers"] >= max(t["max_workers"] for t in workers(config).values())


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_CONFIGS))
def test_gpu_worker_types_fit_the_10_7b_stages(cloud):
    config = load(cloud)
    kinds = {name: t["labels"]["solar-ray/kind"] for name, t in workers(config).items()}
    assert set(kinds.values()) == {"train", "eval", "data"}
    for name, node_type in workers(config).items():
        gpus = node_type["resources"].get("GPU", 0)
        if kinds[name] == "train":
            # ZeRO-3 over one node: 16 B/param x 10.7e9 = 171 GB of states must spread over the node's GPUs.
            assert gpus == 8, f"{name}: training nodes carry 8 GPUs"
        elif kinds[name] == "eval":
            assert gpus == 1, f"{name}: one vLLM engine per single-GPU node"
        else:
            assert gpus == 0, f"{name}: data nodes are CPU-only"
        assert node_type["resources"]["CPU"] >= 8
    markets = {(kinds[name], t["labels"]["market"]) for name, t in workers(config).items()}
    for kind in ("train", "eval"):
        assert {(kind, "spot"), (kind, "on-demand")} <= markets, f"{kind}: both spot and on-demand types"


def spot(cloud: str, node_config: dict) -> bool:
    if cloud == "aws":
        return node_config.get("InstanceMarketOptions", {}).get("MarketType") == "spot"
    return node_config.get("scheduling", {}).get("provisioningModel") == "SPOT"


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_CONFIGS))
def test_spot_label_matches_the_node_config(cloud):
    for name, node_type in workers(load(cloud)).items():
        assert spot(cloud, node_type["node_config"]) == (node_type["labels"]["market"] == "spot"), name
        if cloud == "gcp" and node_type["resources"].get("GPU"):
            assert node_type["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE", name


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_CONFIGS))
def test_nodes_install_the_project_and_start_ray_with_token_auth(cloud):
    config = load(cloud)
    assert any(f"setup_node.sh {cloud}" in cmd for cmd in config["setup_commands"])
    assert config["file_mounts"]["~/solar-ray"] == "."
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the token travels as a file
    assert {".venv", "runs", ".git"} <= set(config["rsync_exclude"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [cmd for cmd in config[key] if "ray start" in cmd]
        assert len(start) == 1 and f"source ~/solar-ray/cluster/node_env.sh {cloud}" in start[0], key
    head_start = next(cmd for cmd in config["head_start_ray_commands"] if "ray start" in cmd)
    assert "--dashboard-host=127.0.0.1" in head_start  # reached only through `ray dashboard` (SSH tunnel)
    node_env = (REPO / "cluster" / "node_env.sh").read_text()
    assert re.search(r"^export RAY_AUTH_MODE=token", node_env, re.M)


def test_aws_opens_no_port_to_the_world_but_ssh():
    config = load("aws")
    rules = config["provider"].get("security_group", {}).get("IpPermissions", [])
    for rule in rules:  # Ray adds SSH (22) from anywhere and intra-cluster traffic itself
        world = any(r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", []))
        assert not world or (rule["FromPort"] == rule["ToPort"] == 22), rule
    assert config["provider"]["cache_stopped_nodes"] is False



def test_gcp_nodes_sit_on_the_ssh_only_vpc_of_the_readme():
    readme = (REPO / "cluster" / "README.md").read_text()
    assert "--network=solar-ray --allow=tcp:22" in readme
    for name, node_type in load("gcp")["available_node_types"].items():
        (nic,) = node_type["node_config"]["networkInterfaces"]
        assert nic["network"] == "global/networks/solar-ray", name
        assert nic["nicType"] == "GVNIC", f"{name}: A3 (H100) VMs require gVNIC"


# EC2 instance types with EFA, and their network cards (one EFA interface each), from the EC2 EFA documentation.
EFA_NETWORK_CARDS = {"p5.48xlarge": 32, "p5e.48xlarge": 32, "p5en.48xlarge": 16, "p4d.24xlarge": 4, "p4de.24xlarge": 4}


def test_aws_efa_interfaces_only_on_efa_types_and_on_every_training_type():
    config = load("aws")
    subnets = set()
    for name, node_type in config["available_node_types"].items():
        node_config = node_type["node_config"]
        interfaces = node_config.get("NetworkInterfaces", [])
        cards = EFA_NETWORK_CARDS.get(node_config["InstanceType"])
        if cards is None:
            assert not interfaces and "Placement" not in node_config, f"{name}: {node_config['InstanceType']} has no EFA"
            continue
        assert node_type["labels"]["solar-ray/kind"] == "train", name
        assert sorted(i["NetworkCardIndex"] for i in interfaces) == list(range(cards)), f"{name}: one EFA per card"
        assert all(i["InterfaceType"] == "efa" for i in interfaces), name
        assert [i["DeviceIndex"] for i in interfaces] == [0] + [1] * (cards - 1), name
        assert node_config["Placement"]["GroupName"] == "solar-ray-efa", name
        subnets |= {i["SubnetId"] for i in interfaces}
        # What Ray's AWS bootstrap requires once NetworkInterfaces is given (its module needs boto3, absent here).
        assert not {"SubnetId", "SubnetIds", "SecurityGroupIds"} & set(node_config), name
        assert all(i["SubnetId"] and i["Groups"] for i in interfaces), name
    assert len(subnets) == 1, "EFA traffic stays in one availability zone: one subnet for every EFA node"
    trained = {n for n, t in workers(config).items() if t["labels"]["solar-ray/kind"] == "train"}
    assert trained and all(config["available_node_types"][n]["node_config"].get("NetworkInterfaces") for n in trained)
    (start,) = [cmd for cmd in config["worker_start_ray_commands"] if "ray start" in cmd]
    assert start.index("cluster/aws/efa_env.sh") < start.index("ray start")  # Ray's workers inherit NCCL's settings


@pytest.mark.parametrize("efa", [True, False])
def test_efa_env_sets_nccl_over_efa_only_where_the_device_is(tmp_path, efa):
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fi_info = bin_dir / "fi_info"  # libfabric's probe; exits non-zero when the node has no EFA device
    fi_info.write_text(f"#!/bin/sh\n[ \"$*\" = '-p efa' ] && exit {0 if efa else 1}\nexit 2\n")
    fi_info.chmod(0o755)
    script = f"source {REPO / 'cluster' / 'aws' / 'efa_env.sh'}; echo \"$FI_PROVIDER|$FI_EFA_FORK_SAFE|$LD_LIBRARY_PATH\""
    result = subprocess.run(["bash", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True,
                            text=True, timeout=30, check=True)
    expected = "efa|1|/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib:" if efa else "||"
    assert result.stdout.strip() == expected
