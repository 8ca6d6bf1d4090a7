"""solar_ray.capacity: go when the cluster holds a stage, wait for an autoscaler that can grow it, else fail at once
in one line. The decision logic runs against scripted clusters here; tests/cluster/test_gpu_head.py runs it
against a real head with declared GPUs, tests/cluster/test_autoscaler.py against Ray's fake autoscaler."""

from __future__ import annotations

import pytest

from solar_ray import capacity
from solar_ray.capacity import Autoscaler, CapacityError, ensure_capacity, fits

GPU_NODE = {"CPU": 8.0, "GPU": 2.0}


def test_fits_packs_bundles_onto_nodes_not_onto_the_total():
    # 4 GPUs in total, but no node holds a 4-GPU tensor-parallel engine.
    assert not fits([{"GPU": 4}], [GPU_NODE, GPU_NODE])
    assert fits([{"GPU": 2, "CPU": 1}] * 2, [GPU_NODE, GPU_NODE])
    assert not fits([{"GPU": 1, "CPU": 1}] * 5, [GPU_NODE, GPU_NODE])
    assert fits([{"CPU": 1}] * 16, [GPU_NODE, GPU_NODE])


class ScriptedCluster:
    """Node totals that grow after `grow_after` polls, an autoscaler (or none), and the requests it received."""

    def __init__(self, monkeypatch, nodes, autoscaler, grown=None, grow_after=2):
        self.nodes, self.grown, self.polls, self.grow_after = nodes, grown, 0, grow_after
        self.requests: list[list[dict]] = []
        monkeypatch.setattr(capacity, "node_totals", self.node_totals)
        monkeypatch.setattr(capacity, "find_autoscaler", lambda: autoscaler)
        monkeypatch.setattr("ray.autoscaler.sdk.request_resources", lambda bundles: self.requests.append(bundles))

    def node_totals(self):
        self.polls += 1
        return self.grown if self.grown is not None and self.polls > self.grow_after else self.nodes


def test_no_autoscaler_fails_at_once_naming_stage_need_and_cluster(monkeypatch):
    cluster = ScriptedCluster(monkeypatch, [GPU_NODE], autoscaler=None)
    with pytest.raises(CapacityError) as err:
        ensure_capacity("stage 'sft' (sft_v1)", [{"CPU": 1, "GPU": 1}] * 4)
    assert str(err.value) == (
        "stage 'sft' (sft_v1) needs 4 x {CPU: 1, GPU: 1} (4 GPU, 4 CPU), but the Ray cluster has 2 GPU, 8 CPU on "
        "1 node(s), the largest with 2 GPU, 8 CPU and no autoscaler to add nodes; ask for less or add nodes")
    assert cluster.requests == []


def test_beyond_what_the_autoscaler_can_reach_fails_at_once(monkeypatch):
    cluster = ScriptedCluster(monkeypatch, [{"CPU": 4.0}], Autoscaler(limits={"CPU": 68.0, "GPU": 8.0}))
    with pytest.raises(CapacityError, match=r"needs 16 x \{CPU: 1, GPU: 1\} .* can reach \(8 GPU, 68 CPU at most\)"):
        ensure_capacity("stage 'cpt'", [{"CPU": 1, "GPU": 1}] * 16)
    assert cluster.requests == []


def test_autoscaler_is_asked_and_waited_for_then_the_request_is_withdrawn(monkeypatch, capsys):
    need = [{"CPU": 1.0, "GPU": 1.0}] * 2
    cluster = ScriptedCluster(monkeypatch, [{"CPU": 4.0}], Autoscaler(limits=None), grown=[{"CPU": 4.0}, GPU_NODE])
    ensure_capacity("stage 'eval'", need, poll_s=0.01, report_every_s=0.0)
    assert cluster.requests == [need, []]  # asked for the bundles, then withdrew the standing request
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("stage 'eval': waiting for the autoscaler to add nodes: needs 2 x {CPU: 1, GPU: 1} (2 GPU, "
                        "2 CPU); the cluster has 0 GPU, 4 CPU on 1 node(s), the largest with 0 GPU, 4 CPU")
    assert any(line.startswith("stage 'eval': still waiting") for line in lines)
    assert lines[-1].startswith("stage 'eval': the cluster now holds 2 x {CPU: 1, GPU: 1}")


def test_a_cluster_that_holds_the_stage_goes_without_asking(monkeypatch, capsys):
    cluster = ScriptedCluster(monkeypatch, [GPU_NODE], autoscaler=None)
    ensure_capacity("stage 'sft'", [{"CPU": 1, "GPU": 1}] * 2)
    assert cluster.requests == [] and capsys.readouterr().out == ""


def test_parallel_stages_request_the_sum_of_their_bundles(monkeypatch):
    sent = []
    monkeypatch.setattr("ray.autoscaler.sdk.request_resources", lambda bundles: sent.append(bundles))
    capacity._request("a", [{"GPU": 1.0}])
    capacity._request("b", [{"GPU": 2.0}])
    capacity._request("a", None)
    capacity._request("b", None)
    assert sent == [[{"GPU": 1.0}], [{"GPU": 1.0}, {"GPU": 2.0}], [{"GPU": 2.0}], []]


def test_a_plain_heads_readonly_monitor_is_no_autoscaler():
    """Every `ray start --head` runs autoscaler v1's monitor; without an autoscaling config it mirrors the nodes
    (types `node_<id>`) and can launch nothing. Statuses as Ray 2.60 writes them (trimmed)."""
    readonly = {"autoscaler_report": {"active_nodes": {"node_fd31a9": 1}, "node_type_mapping": {"fd31a9": "node_fd31a9"},
                                      "pending_launches": {}, "legacy": True}}
    fake_multinode = {"autoscaler_report": {"active_nodes": {"ray.head.default": 1}, "pending_launches": {},
                                            "node_type_mapping": {"fff00000": "ray.head.default"}, "legacy": True}}
    assert not capacity.v1_can_launch(readonly)
    assert capacity.v1_can_launch(fake_multinode)
