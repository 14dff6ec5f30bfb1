"""Bin packing of pending GPU pods onto instance types (binpack.py): pure, table-sized cases."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoscaler.config.nodes import NodeInstanceType, NodeProvisioning
from autoscaler.nodes.binpack import Bin, PodGroup, Resources, pack
from autoscaler.nodes.catalog import GIB, resolve

G6 = resolve("g6.xlarge")  # 1 GPU, 4 vCPU, 16 GiB, $0.805
G5 = resolve("g5.xlarge")  # 1 GPU, 4 vCPU, 16 GiB, $1.006
G6_4X = resolve("g6.4xlarge")  # 1 GPU, 16 vCPU, 64 GiB, $1.323
G6_12X = resolve("g6.12xlarge")  # 4 GPUs, 48 vCPU, 192 GiB, $4.602
G6_48X = resolve("g6.48xlarge")  # 8 GPUs, 192 vCPU, 768 GiB, $13.35
ALL = [G5, G6, G6_4X, G6_12X, G6_48X]
NAMES = frozenset(t.name for t in ALL)


def pods(label: str, count: int, gpus: int, cpu: float = 1.0, memory_gib: float = 4.0) -> PodGroup:
    demand = Resources(gpus, round(cpu * 1000), round(memory_gib * GIB))
    return PodGroup(label, demand, tuple(f"ns/{label}-{i}" for i in range(count)), NAMES)


def test_one_small_pod_gets_the_cheapest_type_that_fits() -> None:
    plan = pack([pods("a", 1, 1)], ALL, max_new=10)
    assert plan.launches() == {"g6.xlarge": 1}
    assert plan.price_per_hour == pytest.approx(0.805)
    assert not plan.unplaced


def test_four_one_gpu_pods_get_four_small_nodes_when_cheaper_per_gpu() -> None:
    # 4 x g6.xlarge = $3.22/h beats 1 x g6.12xlarge = $4.60/h.
    plan = pack([pods("a", 4, 1)], ALL, max_new=10)
    assert plan.launches() == {"g6.xlarge": 4}


def test_multi_gpu_pods_go_to_the_type_cheapest_per_gpu_used() -> None:
    # 2-GPU pods: a full g6.12xlarge costs $1.15 per GPU, a full g6.48xlarge $1.67.
    plan = pack([pods("b", 4, 2)], ALL, max_new=10)
    assert plan.launches() == {"g6.12xlarge": 2}
    # Made cheap per GPU, the 8-GPU type wins when it can be filled...
    cheap_big = resolve(NodeInstanceType(type="g6.48xlarge", price=8.0))  # $1.00 per GPU
    types = [G6, G6_12X, cheap_big]
    plan = pack([pods("b", 4, 2)], types, max_new=10)
    assert plan.launches() == {"g6.48xlarge": 1}
    # ...but not for a single 2-GPU pod, which would leave it three-quarters empty.
    plan = pack([pods("b", 1, 2)], types, max_new=10)
    assert plan.launches() == {"g6.12xlarge": 1}


def test_mixed_gpu_counts_are_packed_largest_first_and_share_nodes() -> None:
    groups = [pods("one", 3, 1), pods("four", 1, 4), pods("two", 2, 2)]
    plan = pack(groups, ALL, max_new=10)
    assert not plan.unplaced
    placed = sorted(p for n in plan.new_nodes for p in n.pods)
    assert placed == sorted(p for g in groups for p in g.pods)
    # 4 + 2x2 + 3x1 GPUs: the 4-GPU pod fills a g6.12xlarge, the two 2-GPU pods another,
    # and the 1-GPU pods take g6.xlarge nodes (cheapest per GPU at every step).
    assert plan.launches() == {"g6.12xlarge": 2, "g6.xlarge": 3}
    for node in plan.new_nodes:
        spec = resolve(node.instance_type)
        gpus = sum(next(g for g in groups if p in g.pods).demand.gpus for p in node.pods)
        assert gpus <= spec.gpus


def test_memory_decides_the_type_when_gpus_do_not() -> None:
    plan = pack([pods("big", 1, 1, cpu=2, memory_gib=40)], ALL, max_new=10)
    assert plan.launches() == {"g6.4xlarge": 1}


def test_a_pod_bigger_than_every_type_launches_nothing_and_says_why() -> None:
    plan = pack([pods("huge", 1, 16)], ALL, max_new=10)
    assert not plan.new_nodes
    why = plan.unplaced["ns/huge-0"]
    assert "16 GPU" in why and "largest: g6.48xlarge" in why


def test_reserved_capacity_is_kept_off_the_node() -> None:
    # 4 vCPU requested; a g6.xlarge has 4 but 0.1 is reserved, so a 4.xlarge is needed.
    reserved = Resources(0, 100, 0)
    plan = pack([pods("cpu", 1, 1, cpu=4)], ALL, max_new=10, reserved=reserved)
    assert plan.launches() == {"g6.4xlarge": 1}


def test_in_flight_instances_absorb_pending_pods_before_any_launch() -> None:
    coming = Bin("i-inflight", Resources(4, 47_900, 191 * GIB), None, "g6.12xlarge")
    plan = pack([pods("a", 4, 1)], ALL, [coming], max_new=10)
    assert not plan.new_nodes
    assert len(plan.covered["i-inflight"]) == 4
    plan = pack([pods("a", 5, 1)], ALL, [coming], max_new=10)
    assert plan.launches() == {"g6.xlarge": 1}


def test_ready_nodes_take_only_the_groups_they_accept() -> None:
    group = pods("a", 2, 1)
    refusing = Bin("node-x", Resources(8, 64_000, 256 * GIB), frozenset({"other"}))
    accepting = Bin("node-y", Resources(1, 8_000, 32 * GIB), frozenset({"a"}))
    plan = pack([group], ALL, [refusing, accepting], max_new=10)
    assert plan.covered == {"node-y": ("ns/a-0",)}
    assert plan.launches() == {"g6.xlarge": 1}


def test_max_new_nodes_caps_the_launch_and_names_the_limit() -> None:
    plan = pack([pods("a", 5, 1)], ALL, max_new=2)
    assert sum(plan.launches().values()) == 2
    assert len(plan.unplaced) == 3
    assert all("max_nodes" in why for why in plan.unplaced.values())


def test_a_group_limited_to_some_types_never_gets_others() -> None:
    group = PodGroup("a", Resources(1, 1000, GIB), ("ns/a-0",), frozenset({"g5.xlarge"}))
    plan = pack([group], ALL, max_new=10)
    assert plan.launches() == {"g5.xlarge": 1}


def test_two_thousand_pods_pack_quickly_and_completely() -> None:
    groups = [
        pods("one", 1000, 1),
        pods("two", 600, 2),
        pods("four", 300, 4),
        pods("eight", 100, 8),
    ]
    plan = pack(groups, ALL, max_new=5000)
    assert not plan.unplaced
    assert sum(len(n.pods) for n in plan.new_nodes) == 2000


def test_config_names_an_unknown_type_and_what_it_lacks() -> None:
    with pytest.raises(ValidationError) as info:
        NodeProvisioning(image_id="ami-00000001", instance_types=["x9.huge"])
    assert "x9.huge is not in the built-in catalog" in str(info.value)
    assert "gpus, cpu, memory_gib, price" in str(info.value)


def test_config_refuses_a_type_without_gpus_and_a_missing_image() -> None:
    with pytest.raises(ValidationError, match="has no GPUs"):
        NodeProvisioning(
            image_id="ami-00000001",
            instance_types=[
                {"type": "m5.large", "gpus": 0, "cpu": 2, "memory_gib": 8, "price": 0.1}
            ],
        )
    with pytest.raises(ValidationError, match="launch_template` or an inline `image_id"):
        NodeProvisioning(instance_types=["g6.xlarge"])


def test_config_price_overrides_the_catalog() -> None:
    config = NodeProvisioning(
        image_id="ami-00000001", instance_types=[{"type": "g5.xlarge", "price": 0.3}, "g6.xlarge"]
    )
    specs = [resolve(t) for t in config.instance_types]
    plan = pack([pods("a", 1, 1)], specs, max_new=1)
    assert plan.launches() == {"g5.xlarge": 1}
