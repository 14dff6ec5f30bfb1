"""Gang admission (autoscaler/nodes/admission.py): which suspended gangs to unsuspend, as a
pure decision, and `plan_nodes` launching and admitting suspended Jobs' gangs."""

from __future__ import annotations

from typing import Any

from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes.admission import FreeNode, GangAdmission, SuspendedGang, admit_gangs, order
from autoscaler.nodes.binpack import Resources
from autoscaler.nodes.catalog import GIB
from autoscaler.nodes.commands import AdmitGang, Command, Launch
from autoscaler.nodes.gangs import GangLaunch
from autoscaler.nodes.inventory import Memory, NodeView, Observed, OurInstance, PodView
from autoscaler.nodes.pending import PendingPod, Toleration
from autoscaler.nodes.plan import plan_nodes

T0 = 1_700_000_000.0
POD = Resources(8, 8000, 64 * GIB)
NODE = Resources(8, 190_000, 760 * GIB)


def gang(
    name: str, size: int = 4, *, demand: Resources = POD, since: float = T0, priority: int = 0
) -> SuspendedGang:
    gid = f"ns/job/{name}"
    pods = tuple(
        PendingPod(
            f"ns/{name}[{i}]", demand, gang=gid, gang_size=size, since=since, priority=priority
        )
        for i in range(size)
    )
    return SuspendedGang(gid, "ns", name, f"uid-{name}", pods, priority, since)


def free(count: int, room: Resources = NODE, **kw: Any) -> list[FreeNode]:
    return [FreeNode(f"n-{i}", room, **kw) for i in range(count)]


# -- the decision -------------------------------------------------------------------------
def test_a_gang_is_admitted_only_when_all_its_pods_fit() -> None:
    assert admit_gangs(free(4), [gang("a")]) == [gang("a")]
    assert admit_gangs(free(3), [gang("a")]) == []
    half = Resources(4, 95_000, 380 * GIB)
    assert admit_gangs(free(4, half), [gang("a")]) == []


def test_two_gangs_are_never_admitted_beyond_the_free_room_together() -> None:
    assert admit_gangs(free(6), [gang("a"), gang("b")]) == [gang("a")]
    assert admit_gangs(free(8), [gang("a"), gang("b")]) == [gang("a"), gang("b")]
    assert admit_gangs(free(8), [gang("a"), gang("b")], limit=1) == [gang("a")]


def test_the_first_gang_that_does_not_fit_stops_the_line() -> None:
    small = gang("small", 1)
    assert admit_gangs(free(2), [gang("a"), small]) == []


def test_admission_order_is_priority_then_age() -> None:
    old, new = gang("old", since=T0), gang("new", since=T0 + 5)
    urgent = gang("urgent", since=T0 + 9, priority=100)
    assert [g.name for g in order([new, old, urgent])] == ["urgent", "old", "new"]
    assert admit_gangs(free(4), order([new, old])) == [old]


def test_taints_and_selectors_of_free_nodes_are_respected() -> None:
    taint = {"key": "team", "value": "x", "effect": "NoSchedule"}
    assert admit_gangs(free(4, taints=(taint,)), [gang("a")]) == []
    tolerant = gang("a")
    tol = Toleration("team", "Equal", "x", "NoSchedule")
    tolerant = SuspendedGang(
        tolerant.id,
        "ns",
        "a",
        "uid-a",
        tuple(PendingPod(p.name, p.demand, tolerations=(tol,)) for p in tolerant.pods),
    )
    assert admit_gangs(free(4, taints=(taint,)), [tolerant]) == [tolerant]


def test_small_pods_share_nodes() -> None:
    two = Resources(2, 1000, GIB)
    assert admit_gangs(free(2), [gang("a", 8, demand=two)]) == [gang("a", 8, demand=two)]
    assert admit_gangs(free(2), [gang("a", 9, demand=two)]) == []


# -- in plan_nodes ------------------------------------------------------------------------
def config(**changes: Any) -> NodeProvisioning:
    fields: dict[str, Any] = {
        "image_id": "ami-00000001",
        "instance_types": ["g6.48xlarge"],
        "max_nodes": 4,
        **changes,
    }
    return NodeProvisioning(**fields)


def ready_nodes(count: int, start: int = 0) -> tuple[tuple[OurInstance, ...], tuple[NodeView, ...]]:
    instances = tuple(OurInstance(f"i-{n}", "g6.48xlarge", True, T0) for n in range(start, count))
    nodes = tuple(
        NodeView(
            f"node-{n}",
            f"i-{n}",
            True,
            NODE,
            labels={"node.kubernetes.io/instance-type": "g6.48xlarge"},
        )
        for n in range(start, count)
    )
    return instances, nodes


def observed(
    admission: GangAdmission, *, ready: int = 0, in_flight: int = 0, pods: tuple[PodView, ...] = ()
) -> Observed:
    instances, nodes = ready_nodes(ready)
    instances += tuple(OurInstance(f"i-f{n}", "g6.48xlarge", False, T0) for n in range(in_flight))
    return Observed(
        config=config(),
        now=T0 + 10,
        instances=instances,
        nodes=nodes,
        pods=pods,
        memory=Memory(),
        admission=admission,
    )


def of(kind: type, commands: tuple[Command, ...]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def test_a_suspended_gang_gets_its_nodes_all_or_nothing_and_is_not_admitted_yet() -> None:
    plan = plan_nodes(observed(GangAdmission((gang("a"),))))
    [launch] = of(GangLaunch, plan.commands)
    assert (launch.gang, launch.count, launch.instance_type) == ("ns/job/a", 4, "g6.48xlarge")
    assert of(AdmitGang, plan.commands) == [] and of(Launch, plan.commands) == []


def test_in_flight_nodes_are_waited_for() -> None:
    plan = plan_nodes(observed(GangAdmission((gang("a"),)), in_flight=4))
    assert of(GangLaunch, plan.commands) == [] and of(AdmitGang, plan.commands) == []


def test_a_suspended_gang_is_admitted_once_its_nodes_are_ready() -> None:
    plan = plan_nodes(observed(GangAdmission((gang("a"), gang("b", since=T0 + 1))), ready=4))
    assert of(AdmitGang, plan.commands) == [AdmitGang("ns/job/a", "ns", "a", "uid-a")]
    assert of(GangLaunch, plan.commands) == []  # b waits whole: max_nodes is reached
    assert plan.memory.empty_since == {}  # the Ready nodes are planned on, not scaled down


def test_nothing_is_admitted_while_an_admitted_gang_is_settling() -> None:
    settling = {"ns/job/a": "Job ns/a: 2 of 4 pods bound"}
    plan = plan_nodes(observed(GangAdmission((gang("b"),), settling), ready=4))
    assert of(AdmitGang, plan.commands) == []


def test_the_second_gang_is_admitted_when_the_first_is_done() -> None:
    busy = tuple(PodView(f"ns/a-{n}", POD, node=f"node-{n}") for n in range(4))
    waiting = GangAdmission((gang("b", since=T0 + 1),))
    assert of(AdmitGang, plan_nodes(observed(waiting, ready=4, pods=busy)).commands) == []
    plan = plan_nodes(observed(waiting, ready=4))
    assert of(AdmitGang, plan.commands) == [AdmitGang("ns/job/b", "ns", "b", "uid-b")]


# -- the observe step ---------------------------------------------------------------------
def test_observe_reads_suspended_labelled_jobs_as_gangs_and_unbound_ones_as_settling(
    monkeypatch: Any,
) -> None:
    from datetime import UTC, datetime

    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    from autoscaler.clients.kube import Labels
    from autoscaler.nodes.observe import template_pending
    from autoscaler.nodes.observe_gangs import gang_admission

    created = datetime(2026, 1, 1, tzinfo=UTC)
    template = k.V1PodTemplateSpec(
        spec=k.V1PodSpec(
            containers=[
                k.V1Container(
                    name="w",
                    resources=k.V1ResourceRequirements(
                        requests={"cpu": "1", "memory": "1Gi"}, limits={"nvidia.com/gpu": "8"}
                    ),
                )
            ],
            node_selector={"pool": "a"},
        )
    )

    def job(name: str, suspend: bool, parallelism: int = 4) -> Any:
        meta = k.V1ObjectMeta(name=name, namespace="ns", uid=f"u-{name}")
        meta.creation_timestamp = created
        spec = k.V1JobSpec(
            template=template, suspend=suspend, parallelism=parallelism, completions=4
        )
        return k.V1Job(metadata=meta, spec=spec, status=k.V1JobStatus())

    def pod(name: str, jobname: str, node: str | None) -> Any:
        meta = k.V1ObjectMeta(
            name=name, namespace="ns", labels={"batch.kubernetes.io/job-name": jobname}
        )
        return k.V1Pod(metadata=meta, spec=k.V1PodSpec(containers=[], node_name=node))

    calls: list[str] = []

    class Batch:
        forbidden = False

        def __init__(self, client: Any) -> None:
            pass

        def list_job_for_all_namespaces(self, label_selector: str) -> Any:
            calls.append(label_selector)
            if Batch.forbidden:
                raise ApiException(status=403, reason="Forbidden")
            return k.V1JobList(items=[job("a", True), job("b", False), job("c", False)])

    monkeypatch.setattr(k, "BatchV1Api", Batch)
    core = type("Core", (), {"api_client": object()})()
    pods = [pod("b-0", "b", "n1"), pod("b-1", "b", None), pod("c-0", "c", "n2")]
    pods += [pod(f"c-{i}", "c", "n3") for i in (1, 2, 3)]
    cfg = config()
    seen = gang_admission(core, pods, cfg, Labels("me"), template_pending)
    assert calls == ["elastic-autoscaler.io/gang-admission=true"]
    [a] = seen.suspended
    assert (a.id, a.uid, len(a.pods), a.since) == ("ns/job/a", "u-a", 4, created.timestamp())
    assert a.pods[0].demand == Resources(8, 1000, GIB) and a.pods[0].gang_size == 4
    assert a.pods[0].node_selector == (("pool", "a"),) and a.pods[0].name == "ns/a[0]"
    assert seen.settling == {"ns/job/b": "Job ns/b: 1 of 4 pods bound"}
    Batch.forbidden = True  # without the grant: no gang admission, and the tick goes on
    assert gang_admission(core, pods, cfg, Labels("me"), template_pending) == GangAdmission()
