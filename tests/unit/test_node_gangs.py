"""Gangs in `plan_nodes`: pods that run together are planned all or nothing, from plain
observed values (no client)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes.binpack import Resources
from autoscaler.nodes.catalog import GIB
from autoscaler.nodes.commands import Command, Launch, Unplaced
from autoscaler.nodes.gangs import GangLaunch, GangTimedOut
from autoscaler.nodes.inventory import Memory, NodeView, Observed, OurInstance, PodView
from autoscaler.nodes.pending import PendingPod
from autoscaler.nodes.plan import plan_nodes

T0 = 1_700_000_000.0
TYPES = ["g6.48xlarge", "p4d.24xlarge", "g6.12xlarge", "g6.xlarge"]


def config(**changes: Any) -> NodeProvisioning:
    fields: dict[str, Any] = {
        "image_id": "ami-00000001",
        "instance_types": TYPES,
        "max_nodes": 10,
        "gang_timeout": 600,
        **changes,
    }
    return NodeProvisioning(**fields)


def member(
    gang: str, index: int, size: int, gpus: int = 8, *, since: float = T0, node: str | None = None
) -> PodView:
    name = f"ns/{gang}-{index}"
    demand = Resources(gpus, 8000, 64 * GIB)
    pod = PendingPod(name, demand, gang=f"ns/job/{gang}", gang_size=size, since=since)
    if node is not None:
        return PodView(name, demand, node=node, placement=pod)
    return PodView(name, demand, pending=pod, placement=pod)


def solo(name: str, gpus: int = 1) -> PodView:
    demand = Resources(gpus, 1000, GIB)
    return PodView(f"ns/{name}", demand, pending=PendingPod(f"ns/{name}", demand))


def observed(
    pods: list[PodView],
    *,
    now: float = T0 + 10,
    instances: tuple[OurInstance, ...] = (),
    nodes: tuple[NodeView, ...] = (),
    exhausted: frozenset[str] = frozenset(),
    **changes: Any,
) -> Observed:
    return Observed(
        config=config(**changes),
        now=now,
        instances=instances,
        nodes=nodes,
        pods=tuple(pods),
        memory=Memory(),
        exhausted=exhausted,
    )


def of(kind: type, commands: tuple[Command, ...]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def test_a_gang_of_four_8_gpu_pods_gets_one_launch_of_four_nodes_of_one_type() -> None:
    plan = plan_nodes(observed([member("train", i, 4) for i in range(4)]))
    [launch] = of(GangLaunch, plan.commands)
    assert (launch.gang, launch.instance_type, launch.count) == ("ns/job/train", "g6.48xlarge", 4)
    assert launch.pods == tuple(f"ns/train-{i}" for i in range(4))
    assert of(Launch, plan.commands) == [] and of(Unplaced, plan.commands) == []
    # The same decision again has the same request id (a retry launches nothing twice).
    again = of(GangLaunch, plan_nodes(observed([member("train", i, 4) for i in range(4)])).commands)
    assert again[0].request_id == launch.request_id


def test_a_gang_whose_pods_do_not_all_exist_yet_launches_nothing() -> None:
    plan = plan_nodes(observed([member("train", i, 4) for i in range(3)]))
    assert of(GangLaunch, plan.commands) == []
    reasons = {c.pod: c.reason for c in of(Unplaced, plan.commands)}
    assert set(reasons) == {f"ns/train-{i}" for i in range(3)}
    assert "3 of its 4 pods exist" in reasons["ns/train-0"]


def test_running_members_count_and_only_the_pending_ones_get_nodes() -> None:
    pods = [member("train", 0, 4, node="n-1"), member("train", 1, 4, node="n-2")]
    pods += [member("train", i, 4) for i in (2, 3)]
    [launch] = of(GangLaunch, plan_nodes(observed(pods)).commands)
    assert launch.count == 2


def test_two_gangs_beyond_max_nodes_one_is_planned_whole_the_other_waits_whole() -> None:
    older = [member("a", i, 4, since=T0) for i in range(4)]
    newer = [member("b", i, 4, since=T0 + 1) for i in range(4)]
    plan = plan_nodes(observed(newer + older, max_nodes=6))
    [launch] = of(GangLaunch, plan.commands)
    assert launch.gang == "ns/job/a" and launch.count == 4
    waiting = {c.pod: c.reason for c in of(Unplaced, plan.commands)}
    assert set(waiting) == {f"ns/b-{i}" for i in range(4)}
    assert "waits whole" in waiting["ns/b-0"]


def test_a_gang_never_takes_part_of_the_room_and_solo_pods_fill_what_is_left() -> None:
    gang = [member("a", i, 4) for i in range(4)]
    plan = plan_nodes(observed([*gang, solo("s1"), solo("s2")], max_nodes=3))
    assert of(GangLaunch, plan.commands) == []
    assert {c.instance_type: c.count for c in of(Launch, plan.commands)} == {"g6.xlarge": 2}


def test_a_gang_on_in_flight_instances_launches_nothing_more() -> None:
    instances = tuple(OurInstance(f"i-{n}", "g6.48xlarge", False, T0) for n in range(4))
    plan = plan_nodes(observed([member("a", i, 4) for i in range(4)], instances=instances))
    assert of(GangLaunch, plan.commands) == [] and of(Unplaced, plan.commands) == []
    assert plan.covered == 4


def test_a_gang_that_fits_only_partly_on_coming_capacity_gets_all_new_nodes() -> None:
    instances = (OurInstance("i-0", "g6.48xlarge", False, T0),)
    plan = plan_nodes(observed([member("a", i, 4) for i in range(4)], instances=instances))
    [launch] = of(GangLaunch, plan.commands)
    assert launch.count == 4


def test_an_exhausted_type_sends_the_gang_to_the_next_type_whole() -> None:
    plan = plan_nodes(
        observed([member("a", i, 2) for i in range(2)], exhausted=frozenset({"g6.48xlarge"}))
    )
    [launch] = of(GangLaunch, plan.commands)
    assert (launch.instance_type, launch.count) == ("p4d.24xlarge", 2)


def test_small_members_share_nodes_of_one_type() -> None:
    plan = plan_nodes(observed([member("a", i, 8, gpus=2) for i in range(8)]))
    [launch] = of(GangLaunch, plan.commands)
    # 16 GPUs: four 4-GPU nodes cost less than two 8-GPU ones; 1-GPU ones cannot take them.
    assert (launch.instance_type, launch.count) == ("g6.12xlarge", 4)


def test_a_gang_past_its_timeout_is_reported_and_queues_behind_gangs_in_time() -> None:
    late = [member("late", i, 4, since=T0 - 1000) for i in range(4)]
    fresh = [member("fresh", i, 4, since=T0) for i in range(4)]
    plan = plan_nodes(observed(late + fresh, max_nodes=4))
    [timed_out] = of(GangTimedOut, plan.commands)
    assert timed_out.gang == "ns/job/late" and timed_out.waited > 600
    [launch] = of(GangLaunch, plan.commands)
    assert launch.gang == "ns/job/fresh"
    reasons = {c.pod: c.reason for c in of(Unplaced, plan.commands)}
    assert "gang_timeout" in reasons["ns/late-0"]
    # Alone, it is still retried.
    [launch] = of(GangLaunch, plan_nodes(observed(late)).commands)
    assert launch.gang == "ns/job/late"


def test_gang_request_ids_differ_from_plain_launches_of_the_same_type() -> None:
    plan = plan_nodes(observed([member("a", i, 2) for i in range(2)] + [solo("s", gpus=8)]))
    [launch] = of(Launch, plan.commands)
    [gang] = of(GangLaunch, plan.commands)
    assert launch.pods == ("ns/s",) and launch.count == 1
    assert gang.request_id != launch.request_id


def test_a_member_no_new_node_takes_holds_the_whole_gang() -> None:
    pods = [member("a", i, 3) for i in range(2)]
    demand = Resources(8, 8000, 64 * GIB)
    odd = PendingPod("ns/a-2", demand, (("disk", "nvme"),), gang="ns/job/a", gang_size=3)
    pods.append(PodView("ns/a-2", demand, pending=odd, placement=odd))
    plan = plan_nodes(observed(pods))
    assert of(GangLaunch, plan.commands) == []
    reasons = {c.pod: c.reason for c in of(Unplaced, plan.commands)}
    assert set(reasons) == {"ns/a-0", "ns/a-1", "ns/a-2"}
    assert "a member cannot run on new nodes" in reasons["ns/a-0"]


# -- reading gangs from API objects (observe_gangs.py) ------------------------------------
def api_pod(
    name: str, labels: dict[str, str], *, node: str | None = None, annotations: Any = None
) -> Any:
    from kubernetes import client as k

    return k.V1Pod(
        metadata=k.V1ObjectMeta(
            name=name,
            namespace="ns",
            labels=labels,
            annotations=annotations,
            creation_timestamp=datetime.fromtimestamp(T0, UTC),
        ),
        spec=k.V1PodSpec(
            node_name=node,
            containers=[
                k.V1Container(
                    name="c",
                    resources=k.V1ResourceRequirements(limits={"nvidia.com/gpu": "8"}),
                )
            ],
        ),
        status=k.V1PodStatus(
            phase="Running" if node else "Pending",
            conditions=None
            if node
            else [k.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable")],
        ),
    )


class FakeBatch:
    reads: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, api_client: Any) -> None:
        pass

    def read_namespaced_job(self, name: str, namespace: str) -> Any:
        from kubernetes import client as k

        FakeBatch.reads.append((namespace, name))
        return k.V1Job(
            spec=k.V1JobSpec(parallelism=4, completions=6, template=k.V1PodTemplateSpec()),
            status=k.V1JobStatus(succeeded=3),
        )


def test_an_indexed_jobs_pods_are_one_gang_sized_by_parallelism_and_completions_left(
    monkeypatch: Any,
) -> None:
    from kubernetes import client as k

    from autoscaler.clients.kube import Labels
    from autoscaler.nodes.observe import pod_view, pod_views
    from autoscaler.nodes.observe_gangs import with_gangs

    monkeypatch.setattr(k, "BatchV1Api", FakeBatch)
    labels = Labels("me", "example.io")
    job = {"batch.kubernetes.io/job-name": "train"}
    raw = [
        api_pod("train-0", {**job, "batch.kubernetes.io/job-completion-index": "0"}),
        api_pod("train-1", {**job, "batch.kubernetes.io/job-completion-index": "1"}, node="x"),
        api_pod(
            "g-0", {"scheduling.x-k8s.io/pod-group": "g"}, annotations={"example.io/gang-size": "5"}
        ),
        api_pod("solo", {}),
    ]
    views = with_gangs(
        type("Core", (), {"api_client": None})(),
        raw,
        pod_views(raw, set(), labels),
        config(),
        labels,
        lambda p: pod_view(p, labels),
    )
    by_name = {v.name: v for v in views}
    # The member bound to a node not ours is kept, to be counted.
    assert set(by_name) == {"ns/train-0", "ns/train-1", "ns/g-0", "ns/solo"}
    train = by_name["ns/train-0"].pending
    assert train is not None and (train.gang, train.gang_size, train.since) == (
        "ns/job/train",
        3,  # parallelism 4, but only 6 - 3 completions are left
        T0,
    )
    assert by_name["ns/train-1"].placement.gang == "ns/job/train"  # type: ignore[union-attr]
    group = by_name["ns/g-0"].pending
    assert group is not None and (group.gang, group.gang_size) == ("ns/group/g", 5)
    assert by_name["ns/solo"].pending.gang is None  # type: ignore[union-attr]
    assert FakeBatch.reads == [("ns", "train")]


# -- the actuator ---------------------------------------------------------------------------
class GangEc2:
    def __init__(self, short: bool = False) -> None:
        self.ownership = type("Ownership", (), {"prefix": "example.io"})()
        self.calls: list[tuple[Any, ...]] = []
        self.short = short

    def launch_gang(
        self, pool: Any, count: int, request_id: str, tags: Any, placement: Any
    ) -> list[str]:
        self.calls.append((pool.name, count, request_id, dict(tags), placement))
        if self.short:
            from autoscaler.errors import CapacityUnavailable

            raise CapacityUnavailable("launched 0 of 4", "InsufficientInstanceCapacity")
        return [f"i-{n}" for n in range(count)]


class NoEvents:
    """A drainer whose client cannot write Events (the actuator logs that and goes on)."""

    core = object()


def carry(commands: list[Any], ec2: GangEc2) -> Any:
    from autoscaler.nodes.actuator import Actuator, NodeTickResult
    from autoscaler.nodes.inventory import node_pools

    cfg = config()
    result = NodeTickResult()
    drainer: Any = NoEvents()
    Actuator(ec2, drainer, node_pools(cfg, cfg_types(cfg))).carry_out(commands, result)
    return result


def cfg_types(cfg: NodeProvisioning) -> list[str]:
    return [t if isinstance(t, str) else t.type for t in cfg.instance_types]


def test_the_actuator_launches_a_gang_with_its_tag_and_placement_group() -> None:
    ec2 = GangEc2()
    launch = GangLaunch("ns/job/a", "g6.48xlarge", 4, "gang-1", ("ns/a-0",), "pg")
    result = carry([launch], ec2)
    assert ec2.calls == [
        ("gpu-nodes.g6.48xlarge", 4, "gang-1", {"example.io/gang": "ns/job/a"}, "pg")
    ]
    assert result.gangs_launched == {"ns/job/a": 4}
    assert result.launched == {"g6.48xlarge": 4} and not result.errors


def test_a_short_gang_launch_is_an_error_saying_nothing_is_left_running() -> None:
    launch = GangLaunch("ns/job/a", "g6.48xlarge", 4, "gang-1", ("ns/a-0",))
    result = carry([launch], GangEc2(short=True))
    assert result.gangs_launched == {} and result.launched == {}
    [error] = result.errors
    assert "gang ns/job/a" in error and "nothing left running" in error


def test_a_timed_out_gang_is_in_the_result() -> None:
    late = GangTimedOut("ns/job/a", 700.0, ("ns/a-0",), "gang ns/job/a not placed")
    result = carry([late], GangEc2())
    assert result.gangs_timed_out == {"ns/job/a": "gang ns/job/a not placed"}
