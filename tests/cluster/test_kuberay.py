"""KubeRay manifests: structure (apiVersion ray.io/v1, kinds, required fields), resources consistent with the
stage configs their RayJobs run, token auth on, nothing exposed outside the cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import ray
import yaml

from solar_ray.config import load_config

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "cluster" / "kuberay"
IMAGE_ROOT = "/home/ray/solar-ray/"  # WORKDIR of cluster/docker/Dockerfile: the checkout inside the image
RAYJOB_KINDS = ("train", "eval", "synth", "data")


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def cluster_specs() -> list[tuple[str, dict]]:
    specs = []
    for name, doc in documents():
        if doc["kind"] == "RayCluster":
            specs.append((name, doc["spec"]))
        elif doc["kind"] == "RayJob":
            specs.append((name, doc["spec"]["rayClusterSpec"]))
    return specs


def rayjob(kind: str) -> dict:
    return yaml.safe_load((KUBERAY / f"rayjob-{kind}.yaml").read_text())


def containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def gpus(group: dict) -> int:
    return sum(int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) for c in containers(group))


def job_config(kind: str):
    """The stage config a RayJob's entrypoint runs (`solar-ray run CONFIG [overrides]`), loaded from this repo."""
    argv = shlex.split(rayjob(kind)["spec"]["entrypoint"])
    assert argv[:2] == ["solar-ray", "run"], argv
    assert argv[2].startswith(IMAGE_ROOT), f"config path inside the image: {argv[2]}"
    return REPO / argv[2][len(IMAGE_ROOT):], argv[3:]


def test_every_manifest_has_the_expected_kinds_and_api_versions():
    kinds = {}
    for name, doc in documents():
        for key in ("apiVersion", "kind", "metadata", "spec"):
            assert key in doc, f"{name}: missing {key}"
        assert doc["metadata"]["name"], name
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1", name
        kinds.setdefault(doc["kind"], []).append(name)
    assert kinds["RayCluster"] == ["raycluster.yaml"]
    assert sorted(kinds["RayJob"]) == sorted(f"rayjob-{k}.yaml" for k in RAYJOB_KINDS)
    assert kinds["PersistentVolumeClaim"] == ["storage.yaml"]
    assert not {"Ingress", "Secret"} & set(kinds), "no Ingress; Secrets are created with kubectl, never committed"


@pytest.mark.parametrize(("name", "spec"), cluster_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_cluster_spec_required_fields_and_ray_version(name, spec):
    assert spec["rayVersion"] == ray.__version__, f"{name}: rayVersion must match the ray the project pins"
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert head["rayStartParams"]["num-cpus"] == "0", f"{name}: keep tasks off the head"
    assert containers(head)[0]["name"] == "ray-head"
    assert {p["containerPort"] for p in containers(head)[0]["ports"]} >= {6379, 8265}
    assert spec["workerGroupSpecs"], name
    for group in spec["workerGroupSpecs"]:
        for key in ("groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"):
            assert key in group, f"{name}: worker group missing {key}"
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
        for container in [*containers(head), *containers(group)]:
            assert container["image"].endswith(":0.1.0"), container["image"]
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert limits.get("nvidia.com/gpu") == requests.get("nvidia.com/gpu"), "GPU requests must equal limits"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/mnt/solar" in mounts, f"{name}: every pod sees the shared artifacts volume"
        if gpus(group):
            tolerations = group["template"]["spec"]["tolerations"]
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), group["groupName"]


def test_long_lived_cluster_autoscales_from_zero():
    spec = yaml.safe_load((KUBERAY / "raycluster.yaml").read_text())["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert 0 < spec["autoscalerOptions"]["idleTimeoutSeconds"] <= 1800
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    for group in groups.values():
        assert group["minReplicas"] == 0 and group["replicas"] == 0, group["groupName"]
    assert gpus(groups["train-8xh100"]) == gpus(groups["train-8xh100-spot"]) == 8
    assert gpus(groups["infer-1xgpu"]) == 1 and gpus(groups["data-cpu"]) == 0
    spot_selector = groups["train-8xh100-spot"]["template"]["spec"]["nodeSelector"]
    assert any("spot" in key.lower() for key in spot_selector)


def test_train_rayjob_gpus_match_the_stage_config_workers():
    path, overrides = job_config("train")
    config = load_config(path, overrides)
    assert config.stage in ("pretrain", "sft", "dpo")
    (group,) = rayjob("train")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    per_pod = gpus(group)
    assert config.scaling.use_gpu is True
    assert config.scaling.num_workers == group["replicas"] * per_pod, "one Ray Train worker per GPU, all GPUs used"
    cpu = float(containers(group)[0]["resources"]["limits"]["cpu"])
    assert config.scaling.cpus_per_worker * per_pod <= cpu, "the node's workers fit its CPUs"
    assert config.deepspeed.zero_stage == 3 and config.deepspeed.bf16 is True
    # Preemption: retries inside the run, resubmission by KubeRay, checkpoints on storage every pod shares.
    assert config.run.max_failures >= 1 and rayjob("train")["spec"]["backoffLimit"] >= 1
    assert config.run.storage_path.startswith(("/mnt/solar/", "s3://", "gs://"))
    assert config.output.startswith("/mnt/solar/")


def test_synth_rayjob_gpus_match_actors_times_tensor_parallel():
    path, overrides = job_config("synth")
    config = load_config(path, overrides)
    assert config.stage == "synth_math" and config.engine == "vllm"
    (group,) = rayjob("synth")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert gpus(group) == config.engine_options.tensor_parallel_size
    assert config.actors * config.engine_options.tensor_parallel_size == group["replicas"] * gpus(group)
    assert config.num_cpus_per_actor <= float(containers(group)[0]["resources"]["limits"]["cpu"])


def test_data_rayjob_is_cpu_only():
    path, overrides = job_config("data")
    config = load_config(path, overrides)
    assert config.stage == "data" and config.output.startswith("/mnt/solar/")
    for group in rayjob("data")["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        assert gpus(group) == 0


def test_eval_rayjob_runs_an_eval_config_on_single_gpu_pods():
    path, overrides = job_config("eval")
    config = load_config(path, overrides)
    assert config.stage == "eval" and config.backend == "vllm" and config.tasks == ["h6"]
    groups = rayjob("eval")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    for group in groups:
        assert gpus(group) == 1, "one engine per GPU (10.7B in bf16 is 21.4 GB)"
    assert config.workers == sum(group.get("maxReplicas", group.get("replicas", 0)) for group in groups)


@pytest.mark.parametrize("kind", RAYJOB_KINDS)
def test_rayjobs_clean_up_and_retry(kind):
    spec = rayjob(kind)["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["backoffLimit"] >= 1
    assert spec["submissionMode"] == "K8sJobMode"


@pytest.mark.parametrize(("name", "spec"), cluster_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_token_auth_on_and_nothing_exposed(name, spec):
    assert spec["authOptions"] == {"mode": "token", "secretName": "solar-ray-auth"}, name
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP", f"{name}: reach it with kubectl port-forward"
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert not pod.get("hostNetwork"), f"{name}: hostNetwork would expose Ray ports on the node"
        for container in pod["containers"]:
            assert all("hostPort" not in port for port in container.get("ports", [])), name
