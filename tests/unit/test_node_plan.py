"""`plan_nodes` decides a node provisioning tick from plain observed values, without any
Kubernetes or EC2 client: scale-up, labels, scale-down, holds and the memory it leaves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes.binpack import Resources
from autoscaler.nodes.catalog import GIB
from autoscaler.nodes.commands import (
    CallOffDrain,
    Command,
    Cordon,
    Drain,
    Hold,
    Label,
    Launch,
    Terminate,
    Unplaced,
)
from autoscaler.nodes.inventory import Memory, NodeView, Observed, OurInstance, PodView
from autoscaler.nodes.pending import PendingPod, Toleration
from autoscaler.nodes.plan import plan_nodes

T0 = 1_700_000_000.0
TTL = 60.0
TYPE_LABEL = "node.kubernetes.io/instance-type"


def config(**changes: Any) -> NodeProvisioning:
    fields: dict[str, Any] = {
        "image_id": "ami-00000001",
        "instance_types": ["g6.xlarge", "g6.12xlarge", "g5.xlarge"],
        "max_nodes": 10,
        "empty_node_ttl": TTL,
        "registration_timeout": 900,
        **changes,
    }
    return NodeProvisioning(**fields)


def pending(name: str, gpus: int = 1, *, tolerations: tuple[Toleration, ...] = ()) -> PodView:
    demand = Resources(gpus, 1000, GIB)
    return PodView(f"ns/{name}", demand, pending=PendingPod(f"ns/{name}", demand, (), tolerations))


def bound(
    name: str,
    node: str,
    *,
    daemon: bool = False,
    do_not_disrupt: bool = False,
    terminating: bool = False,
) -> PodView:
    return PodView(
        f"ns/{name}",
        Resources(1, 1000, GIB),
        node=node,
        workload=not daemon,
        do_not_disrupt=do_not_disrupt,
        terminating=terminating,
    )


def instance(iid: str, kind: str = "g6.xlarge", launched_at: float = T0) -> OurInstance:
    return OurInstance(iid, kind, True, launched_at)


def node(
    iid: str,
    kind: str = "g6.xlarge",
    *,
    gpus: int = 1,
    ready: bool = True,
    cordoned: bool = False,
    labelled: bool = True,
    provider: bool = True,
) -> NodeView:
    """The Node of instance `iid` (named after it), labelled as this provisioner does."""
    return NodeView(
        name=iid,
        instance_id=iid if provider else None,
        ready=ready,
        allocatable=Resources(gpus, 4000, 16 * GIB),
        labels={TYPE_LABEL: kind} if labelled else {},
        cordoned_by_us=cordoned,
    )


def observed(
    *,
    now: float = T0,
    instances: tuple[OurInstance, ...] = (),
    nodes: tuple[NodeView, ...] = (),
    pods: tuple[PodView, ...] = (),
    memory: Memory | None = None,
    exhausted: frozenset[str] = frozenset(),
    **changes: Any,
) -> Observed:
    return Observed(
        config=config(**changes),
        now=now,
        instances=instances,
        nodes=nodes,
        pods=pods,
        memory=memory or Memory(),
        exhausted=exhausted,
    )


def of(kind: type[Command], commands: tuple[Command, ...]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def launches(commands: tuple[Command, ...]) -> dict[str, int]:
    return {c.instance_type: c.count for c in of(Launch, commands)}


# -- scale-up ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "pods", "instances", "nodes", "launched", "covered"),
    [
        ("nothing coming: one node per pod", 3, (), (), {"g6.xlarge": 3}, 0),
        (
            "an in-flight 4-GPU instance takes all three",
            3,
            (instance("i-1", "g6.12xlarge"),),
            (),
            {},
            3,
        ),
        (
            "what the in-flight instance cannot take is launched",
            5,
            (instance("i-1", "g6.12xlarge"),),
            (),
            {"g6.xlarge": 1},
            4,
        ),
        (
            "a Ready node without its GPUs yet is coming capacity, not existing",
            1,
            (instance("i-1"),),
            (node("i-1", gpus=0),),
            {},
            1,
        ),
        (
            "free room on a Ready node of ours is used first",
            2,
            (instance("i-1", "g6.12xlarge"),),
            (node("i-1", "g6.12xlarge", gpus=4),),
            {},
            2,
        ),
    ],
)
def test_pending_pods_fill_in_flight_and_ready_capacity_before_anything_is_launched(
    case: str,
    pods: int,
    instances: tuple[OurInstance, ...],
    nodes: tuple[NodeView, ...],
    launched: dict[str, int],
    covered: int,
) -> None:
    waiting = tuple(pending(f"p{i}") for i in range(pods))
    plan = plan_nodes(observed(instances=instances, nodes=nodes, pods=waiting))
    assert launches(plan.commands) == launched, case
    assert plan.covered == covered and plan.pending == pods, case


@pytest.mark.parametrize(
    ("case", "gpus", "count", "exhausted", "launched"),
    [
        ("four 1-GPU pods: four small nodes, cheaper per GPU", 1, 4, (), {"g6.xlarge": 4}),
        ("a 4-GPU pod: the only type that fits", 4, 1, (), {"g6.12xlarge": 1}),
        ("the cheapest out of capacity: the next", 1, 1, ("g6.xlarge",), {"g5.xlarge": 1}),
    ],
)
def test_new_nodes_are_of_the_type_cheapest_per_gpu_still_available(
    case: str, gpus: int, count: int, exhausted: tuple[str, ...], launched: dict[str, int]
) -> None:
    waiting = tuple(pending(f"p{i}", gpus) for i in range(count))
    plan = plan_nodes(observed(pods=waiting, exhausted=frozenset(exhausted)))
    assert launches(plan.commands) == launched, case


def test_every_type_out_of_capacity_leaves_the_pods_unplaced_with_why() -> None:
    plan = plan_nodes(
        observed(
            pods=(pending("p0"),), exhausted=frozenset({"g6.xlarge", "g6.12xlarge", "g5.xlarge"})
        )
    )
    assert of(Unplaced, plan.commands) == [
        Unplaced("ns/p0", "every allowed instance type is out of capacity")
    ]
    assert not of(Launch, plan.commands)


def test_max_nodes_counts_the_instances_we_have_and_names_the_limit() -> None:
    waiting = tuple(pending(f"p{i}") for i in range(4))
    plan = plan_nodes(observed(pods=waiting, instances=(instance("i-1"),), max_nodes=2))
    # The in-flight instance takes one pod, one launch is allowed, two pods wait.
    assert launches(plan.commands) == {"g6.xlarge": 1}
    unplaced = of(Unplaced, plan.commands)
    assert len(unplaced) == 2 and all("max_nodes" in u.reason for u in unplaced)


def test_only_pending_gpu_pods_in_the_namespaces_count() -> None:
    cpu_only = PodView(
        "ns/cpu", Resources(0, 1000, GIB), pending=PendingPod("ns/cpu", Resources(0, 1000, GIB))
    )
    elsewhere = PodView(
        "other/p", Resources(1, 1000, GIB), pending=PendingPod("other/p", Resources(1, 1000, GIB))
    )
    plan = plan_nodes(observed(pods=(pending("p0"), cpu_only, elsewhere), namespaces=["ns"]))
    assert plan.pending == 1
    assert launches(plan.commands) == {"g6.xlarge": 1}


def test_a_launch_request_id_is_stable_for_one_decision_and_new_for_another() -> None:
    def request(pods: int, instances: tuple[OurInstance, ...] = ()) -> str:
        waiting = tuple(pending(f"p{i}") for i in range(pods))
        (launch,) = of(Launch, plan_nodes(observed(pods=waiting, instances=instances)).commands)
        return str(launch.request_id)

    assert request(2) == request(2)
    assert request(2) != request(3)
    (launch,) = of(Launch, plan_nodes(observed(pods=(pending("p0"),))).commands)
    assert launch.desired == 1 and launch.pods == ("ns/p0",)


def test_a_new_node_gets_the_labels_and_taints_it_lacks_and_a_labelled_one_nothing() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    plan = plan_nodes(
        observed(
            instances=(instance("i-1"), instance("i-2")),
            nodes=(node("i-1", labelled=False), node("i-2")),
            labels={"pool": "llm"},
            taints=[taint],
        )
    )
    labels = {c.node: c for c in of(Label, plan.commands)}
    assert set(labels) == {"i-1", "i-2"}  # i-2 lacks the taint and the pool label
    assert labels["i-1"].labels == {TYPE_LABEL: "g6.xlarge", "pool": "llm"}
    assert labels["i-1"].add_taints == (taint,)


# -- scale-down --------------------------------------------------------------------------
def test_an_empty_node_is_cordoned_after_its_ttl_then_drained_then_terminated() -> None:
    ours = (instance("i-1"),)
    memory = Memory()
    for seconds, expected in ((0, []), (TTL - 1, []), (TTL + 1, [Cordon("i-1")])):
        plan = plan_nodes(
            observed(now=T0 + seconds, instances=ours, nodes=(node("i-1"),), memory=memory)
        )
        assert of(Cordon, plan.commands) == expected, seconds
        memory = plan.memory
    assert memory.empty_since == {"i-1": T0}

    draining = (node("i-1", cordoned=True),)
    late = bound("late", "i-1")
    leaving = bound("leaving", "i-1", terminating=True)
    plan = plan_nodes(observed(instances=ours, nodes=draining, pods=(late, leaving), memory=memory))
    assert of(Drain, plan.commands) == [Drain("i-1", ("ns/late",))]  # "leaving" is waited for
    assert not of(Terminate, plan.commands)

    plan = plan_nodes(observed(instances=ours, nodes=draining, pods=(leaving,), memory=memory))
    assert not plan.commands, "a pod on its way out is neither evicted again nor ignored"

    daemon = bound("agent", "i-1", daemon=True)
    plan = plan_nodes(observed(instances=ours, nodes=draining, pods=(daemon,), memory=memory))
    assert of(Terminate, plan.commands) == [Terminate("i-1", "g6.xlarge", "i-1", "drained")]
    assert not plan.memory.empty_since


@pytest.mark.parametrize(
    ("case", "pods", "covering"),
    [
        ("a workload pod runs there", (bound("w", "i-1"),), ()),
        ("a pending pod is planned onto it", (), (pending("p0"),)),
    ],
)
def test_a_busy_node_restarts_its_empty_clock(
    case: str, pods: tuple[PodView, ...], covering: tuple[PodView, ...]
) -> None:
    memory = Memory(empty_since={"i-1": T0})
    plan = plan_nodes(
        observed(
            now=T0 + 10 * TTL,
            instances=(instance("i-1"),),
            nodes=(node("i-1"),),
            pods=pods + covering,
            memory=memory,
        )
    )
    assert not of(Cordon, plan.commands), case
    assert not plan.memory.empty_since, case


def test_do_not_disrupt_holds_an_empty_node_and_calls_off_a_drain_with_the_reason() -> None:
    keeper = bound("keeper", "i-1", daemon=True, do_not_disrupt=True)
    memory = Memory(empty_since={"i-1": T0})
    ready = observed(
        now=T0 + TTL + 1,
        instances=(instance("i-1"),),
        nodes=(node("i-1"),),
        pods=(keeper,),
        memory=memory,
    )
    plan = plan_nodes(ready)
    assert of(Hold, plan.commands) == [Hold("i-1", "pod ns/keeper is annotated do-not-disrupt")]
    assert not of(Cordon, plan.commands)

    busy = bound("busy", "i-1")
    draining = observed(
        instances=(instance("i-1"),),
        nodes=(node("i-1", cordoned=True),),
        pods=(busy, keeper),
        memory=memory,
    )
    plan = plan_nodes(draining)
    assert plan.commands == (CallOffDrain("i-1", "pod ns/keeper is annotated do-not-disrupt"),)
    assert not plan.memory.empty_since, "the empty clock starts again once un-cordoned"


def test_an_instance_that_never_became_a_ready_gpu_node_is_terminated_after_the_timeout() -> None:
    stuck = instance("i-1", launched_at=T0)
    for seconds, terminated in ((899, False), (901, True)):
        plan = plan_nodes(observed(now=T0 + seconds, instances=(stuck,)))
        expected = [Terminate("i-1", "g6.xlarge", None, "never became a Ready GPU node")]
        assert of(Terminate, plan.commands) == (expected if terminated else []), seconds


def test_a_node_not_matched_to_our_instances_is_never_touched() -> None:
    foreign = (
        node("i-9"),  # an instance of someone else's
        node("i-8", provider=False),  # no EC2 providerID at all
        node("i-7", cordoned=True, labelled=False),  # our taint on it, yet not ours
    )
    pods = (pending("p0"), bound("done", "i-7", daemon=True))
    seen = [
        plan_nodes(observed(now=T0 + n * TTL, nodes=foreign, pods=pods, memory=Memory({"i-9": T0})))
        for n in range(3)
    ]
    for plan in seen:
        named = {getattr(c, "node", None) for c in plan.commands} | {
            c.instance_id for c in of(Terminate, plan.commands)
        }
        assert not named & {"i-9", "i-8", "i-7"}
        assert launches(plan.commands) == {"g6.xlarge": 1}, "a foreign node is no capacity"
        assert not plan.memory.empty_since


# -- memory ------------------------------------------------------------------------------
def test_a_restart_delays_the_cordon_of_an_empty_node_by_one_ttl_never_hastens_it() -> None:
    ours, nodes = (instance("i-1"),), (node("i-1"),)
    remembered = Memory(empty_since={"i-1": T0})
    late = T0 + TTL + 1
    assert of(
        Cordon,
        plan_nodes(observed(now=late, instances=ours, nodes=nodes, memory=remembered)).commands,
    )
    after_restart = plan_nodes(observed(now=late, instances=ours, nodes=nodes))
    assert not after_restart.commands
    assert after_restart.memory.empty_since == {"i-1": late}
    again = plan_nodes(
        observed(now=late + TTL + 1, instances=ours, nodes=nodes, memory=after_restart.memory)
    )
    assert of(Cordon, again.commands) == [Cordon("i-1")]


def test_a_node_seen_ready_is_not_a_failed_boot_and_after_a_restart_its_pods_protect_it() -> None:
    flapping = observed(
        now=T0 + 3600,
        instances=(instance("i-1"),),
        nodes=(node("i-1", ready=False),),
        pods=(bound("w", "i-1"),),
    )
    remembered = Memory(seen_ready=frozenset({"i-1"}))
    for memory in (remembered, Memory()):
        plan = plan_nodes(replace(flapping, memory=memory))
        assert not of(Terminate, plan.commands)
    ready = plan_nodes(observed(instances=(instance("i-1"),), nodes=(node("i-1"),)))
    assert ready.memory.seen_ready == {"i-1"}


def test_memory_forgets_nodes_and_instances_that_are_gone() -> None:
    memory = Memory(empty_since={"gone": T0, "i-1": T0}, seen_ready=frozenset({"i-0", "i-1"}))
    plan = plan_nodes(observed(instances=(instance("i-1"),), nodes=(node("i-1"),), memory=memory))
    assert plan.memory == Memory(empty_since={"i-1": T0}, seen_ready=frozenset({"i-1"}))
