"""EC2 interruption notices for node provisioning, without AWS or Kubernetes: the
EventBridge events (real samples in tests/fixtures/eventbridge) parsed, bad ones refused,
the configuration, what `plan_nodes` decides for a leaving instance, and what the handler
takes in from a queue (fakes) and deletes when."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.clock import FakeClock
from autoscaler.config.interruptions import Interruptions
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes.actuator import NodeTickResult
from autoscaler.nodes.binpack import Resources
from autoscaler.nodes.catalog import GIB
from autoscaler.nodes.commands import (
    CallOffDrain,
    Command,
    Cordon,
    Drain,
    Hold,
    Launch,
    Terminate,
)
from autoscaler.nodes.interruptions import (
    SPOT_NOTICE_SECONDS,
    BadMessage,
    InterruptionHandler,
    Received,
    classify_message,
    parse,
)
from autoscaler.nodes.inventory import (
    Leaving,
    Memory,
    NodeView,
    Observed,
    OurInstance,
    PodView,
    node_pools,
)
from autoscaler.nodes.pending import PendingPod
from autoscaler.nodes.plan import plan_nodes
from autoscaler.providers.aws_offerings import Offering, UnavailableOfferings
from tests.fixtures import SAMPLE_INSTANCE, eventbridge_event

T0 = 1_715_000_000.0
IID = SAMPLE_INSTANCE
EVENT_TIME = 1_714_998_896.0  # 2024-05-06T12:34:56Z, the spot sample's `time`


# -- parsing ------------------------------------------------------------------------------
def test_a_spot_interruption_warning_leaves_two_minutes_after_its_time() -> None:
    notice = parse(eventbridge_event("spot-interruption-warning"))
    assert notice is not None
    assert (notice.kind, notice.instance_ids, notice.detail) == (
        "spot-interruption",
        (IID,),
        "terminate",
    )
    assert notice.time == EVENT_TIME
    assert notice.deadline == EVENT_TIME + SPOT_NOTICE_SECONDS


@pytest.mark.parametrize(
    ("sample", "kind", "detail", "deadline"),
    [
        ("rebalance-recommendation", "rebalance-recommendation", "", None),
        ("state-change-stopping", "state-change", "stopping", 1_714_999_018.0),
        ("state-change-shutting-down", "state-change", "shutting-down", 1_714_999_018.0),
        ("state-change-terminated", "state-change", "terminated", None),
        (
            "health-scheduled-change",
            "scheduled-change",
            "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
            1_716_206_400.0,  # startTime: Mon, 20 May 2024 12:00:00 GMT
        ),
    ],
)
def test_every_kind_karpenter_acts_on_is_read(
    sample: str, kind: str, detail: str, deadline: float | None
) -> None:
    notice = parse(eventbridge_event(sample, "i-0abc1234def567890"))
    assert notice is not None
    assert notice.kind == kind and notice.instance_ids == ("i-0abc1234def567890",)
    assert notice.detail == detail and notice.deadline == deadline
    assert notice.forget == (sample == "state-change-terminated")


@pytest.mark.parametrize("sample", ["state-change-running", "health-other-service"])
def test_events_that_ask_nothing_are_ignored(sample: str) -> None:
    assert parse(eventbridge_event(sample)) is None
    assert classify_message(eventbridge_event(sample))[0] == "ignored"


def test_other_detail_types_and_health_events_about_no_instance_are_ignored() -> None:
    other = json.loads(eventbridge_event("spot-interruption-warning"))
    other["detail-type"] = "EC2 Fast Launch State-change Notification"
    assert parse(json.dumps(other)) is None
    health = json.loads(eventbridge_event("health-scheduled-change"))
    health["detail"]["affectedEntities"] = [{"entityValue": "h-0123456789abcdef0"}]
    assert parse(json.dumps(health)) is None


def test_a_notice_through_an_sns_topic_is_opened() -> None:
    inner = eventbridge_event("spot-interruption-warning")
    envelope = {"Type": "Notification", "MessageId": "m", "Message": inner}
    notice = parse(json.dumps(envelope))
    assert notice is not None and notice.kind == "spot-interruption"


def _changed(sample: str, path: tuple[str, ...], value: Any) -> str:
    event = json.loads(eventbridge_event(sample))
    where = event
    for key in path[:-1]:
        where = where[key]
    if value is DELETE:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return json.dumps(event)


DELETE = object()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("", "not JSON"),
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON list"),
        ('"spot"', "a JSON str"),
        ('{"Type": "Notification", "Message": 3}', "without a Message"),
        ('{"hello": "world"}', "not an EventBridge event"),
        (_changed("spot-interruption-warning", ("detail",), DELETE), "no `detail`"),
        (_changed("spot-interruption-warning", ("detail",), "i-1"), "no `detail`"),
        (
            _changed("spot-interruption-warning", ("detail", "instance-id"), "i-; rm -rf"),
            "not an instance id",
        ),
        (_changed("rebalance-recommendation", ("detail", "instance-id"), 42), "not an instance"),
        (_changed("state-change-stopping", ("detail", "state"), None), "no `detail.state`"),
        (
            _changed("health-scheduled-change", ("detail", "affectedEntities"), "i-1"),
            "affectedEntities",
        ),
    ],
)
def test_malformed_messages_are_refused_with_why(body: str, why: str) -> None:
    with pytest.raises(BadMessage, match=re.escape(why)):
        parse(body)
    kind, notice, reason = classify_message(body)
    assert (kind, notice) == ("malformed", None) and why in reason


def test_an_unreadable_time_is_no_error() -> None:
    notice = parse(_changed("spot-interruption-warning", ("time",), "yesterday"))
    assert notice is not None and notice.time is None and notice.deadline is None


# -- configuration ------------------------------------------------------------------------
def nodes_config(**changes: Any) -> NodeProvisioning:
    fields: dict[str, Any] = {
        "image_id": "ami-0123456789abcdef0",
        "region": "us-east-1",
        "instance_types": ["g6.xlarge", "g6.12xlarge"],
        "empty_node_ttl": 60,
        "market": "spot-then-on-demand",
        **changes,
    }
    return NodeProvisioning(**fields)


def test_interruptions_are_off_unless_configured_and_take_a_url_or_a_name() -> None:
    assert nodes_config().interruptions is None
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/gpu-interruptions"
    on = nodes_config(interruptions={"queue": url})
    assert on.interruptions == Interruptions(queue=url)
    assert on.interruptions.rebalance == "ignore" and on.interruptions.wait_seconds == 1
    assert nodes_config(interruptions={"queue": "gpu-interruptions"}).interruptions is not None
    assert nodes_config().ec2_target("g6.xlarge").market == "spot-then-on-demand"
    assert (
        NodeProvisioning(image_id="ami-0123456789abcdef0", instance_types=["g6.xlarge"])
        .ec2_target("g6.xlarge")
        .market
        == "on-demand"
    ), "on-demand stays the default"


@pytest.mark.parametrize(
    ("interruptions", "error"),
    [
        ({"queue": "https://sqs.us-east-1.amazonaws.com/q"}, "not an SQS queue URL"),
        ({"queue": "ftp://x/123456789012/q"}, "not an SQS queue URL"),
        ({"queue": "jobs.txt"}, "not an SQS queue name"),
        ({"queue": ""}, "not an SQS queue name"),
        ({"queue": "q", "rebalance": "cordon"}, "rebalance"),
        ({"queue": "q", "wait_seconds": 21}, "wait_seconds"),
        ({"queue": "q", "receives": 0}, "receives"),
        ({"queue": "q", "region": "mars-1"}, "not an AWS region"),
        ({"queue": "q", "delay": 1}, "delay"),
    ],
)
def test_bad_interruption_settings_are_refused(interruptions: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        nodes_config(interruptions=interruptions)


# -- planning -----------------------------------------------------------------------------
def gpu_pod(name: str, node: str | None = None, **flags: Any) -> PodView:
    demand = Resources(1, 1000, GIB)
    placement = PendingPod(f"ns/{name}", demand)
    pending = placement if node is None else None
    return PodView(f"ns/{name}", demand, node, pending=pending, placement=placement, **flags)


def ready_node(iid: str, reason: str = "", gpus: int = 1) -> NodeView:
    return NodeView(
        name=iid,
        instance_id=iid,
        ready=True,
        allocatable=Resources(gpus, 4000, 16 * GIB),
        labels={"node.kubernetes.io/instance-type": "g6.xlarge"},
        cordoned_by_us=bool(reason),
        cordon_reason=reason,
    )


def spot(iid: str = IID, deadline: float | None = T0 + 100) -> Memory:
    return Memory(leaving={iid: Leaving("spot-interruption", T0, deadline)})


def observe(
    *nodes: NodeView, pods: tuple[PodView, ...] = (), memory: Memory | None = None, **changes: Any
) -> Observed:
    ids = [n.instance_id for n in nodes if n.instance_id] + changes.pop("bare", [])
    return Observed(
        config=nodes_config(**changes),
        now=T0,
        instances=tuple(OurInstance(i, "g6.xlarge", True, T0 - 3600) for i in ids),
        nodes=nodes,
        pods=pods,
        memory=memory or Memory(),
    )


def of(kind: type[Command], commands: tuple[Command, ...]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def test_a_spot_interrupted_node_is_no_capacity_replaced_at_once_cordoned_and_drained() -> None:
    plan = plan_nodes(observe(ready_node(IID), pods=(gpu_pod("llm", IID),), memory=spot()))
    (launch,) = of(Launch, plan.commands)
    assert (launch.instance_type, launch.count, launch.desired) == ("g6.xlarge", 1, 2)
    assert launch.pods == ("ns/llm",)
    assert of(Cordon, plan.commands) == [Cordon(IID, "spot-interruption")]
    assert of(Drain, plan.commands) == [Drain(IID, ("ns/llm",))]
    assert not of(Terminate, plan.commands), "not before its pods are out"
    assert plan.ready == () and plan.in_flight == ()
    assert plan.leaving == {IID: "spot interruption: EC2 takes it in 100s"}
    assert plan.memory.leaving == spot().leaving


def test_room_on_a_ready_node_takes_the_displaced_pod_without_a_launch() -> None:
    other = "i-0fedcba9876543210"
    plan = plan_nodes(
        observe(ready_node(IID), ready_node(other), pods=(gpu_pod("llm", IID),), memory=spot())
    )
    assert not of(Launch, plan.commands) and plan.covered == 1


def test_after_a_restart_the_taint_says_it_leaves_and_do_not_disrupt_never_uncordons() -> None:
    keeper = gpu_pod("keeper", IID, do_not_disrupt=True)
    plan = plan_nodes(observe(ready_node(IID, "spot-interruption"), pods=(keeper,)))
    assert plan.leaving == {IID: "spot interruption"}
    assert not of(Cordon, plan.commands), "already cordoned, with the kind"
    assert not of(CallOffDrain, plan.commands) and not of(Drain, plan.commands)
    assert not of(Terminate, plan.commands)
    (hold,) = of(Hold, plan.commands)
    assert "do-not-disrupt" in hold.reason and "kept cordoned" in hold.reason
    assert [c.pods for c in of(Launch, plan.commands)] == [("ns/keeper",)]
    # A cordon of our own for an empty node ("true") is no notice.
    ttl = plan_nodes(observe(ready_node(IID, "true"), pods=(keeper,)))
    assert not ttl.leaving and of(CallOffDrain, ttl.commands)


def test_a_leaving_instance_without_a_node_or_without_workload_is_terminated() -> None:
    bare = plan_nodes(observe(bare=[IID], memory=spot()))
    assert [c.instance_id for c in of(Terminate, bare.commands)] == [IID]
    assert "before it registered a Node" in of(Terminate, bare.commands)[0].reason
    daemon = gpu_pod("agent", IID, workload=False)
    empty = plan_nodes(observe(ready_node(IID), pods=(daemon,), memory=spot()))
    assert of(Cordon, empty.commands) == [Cordon(IID, "spot-interruption")]
    assert [(c.instance_id, c.reason) for c in of(Terminate, empty.commands)] == [
        (IID, "drained (spot interruption)")
    ]
    assert not of(Launch, empty.commands), "a DaemonSet pod needs no replacement"


def test_an_evicted_pod_on_its_way_out_is_waited_for_and_not_replaced_twice() -> None:
    going = gpu_pod("llm", IID, terminating=True)
    again = gpu_pod("llm-2")  # its ReplicaSet's new pod, pending
    in_flight = OurInstance("i-0aaaaaaaaaaaaaaaa", "g6.xlarge", False, T0 - 10)
    obs = observe(ready_node(IID, "spot-interruption"), pods=(going, again), memory=spot())
    obs = replace(obs, instances=(*obs.instances, in_flight))
    plan = plan_nodes(obs)
    assert not of(Launch, plan.commands) and plan.covered == 1
    assert not of(Drain, plan.commands) and not of(Terminate, plan.commands)


def test_leaving_instances_do_not_count_against_max_nodes() -> None:
    plan = plan_nodes(
        observe(ready_node(IID), pods=(gpu_pod("llm", IID),), memory=spot(), max_nodes=1)
    )
    assert [c.count for c in of(Launch, plan.commands)] == [1]


def test_the_memory_forgets_instances_that_are_gone() -> None:
    gone = Memory(leaving={"i-0bbbbbbbbbbbbbbbb": Leaving("scheduled-change", T0)})
    assert plan_nodes(observe(ready_node(IID), memory=gone)).memory.leaving == {}


# -- taking notices in and deleting messages ----------------------------------------------
@dataclass
class FakeQueue:
    """The queue's receive and delete, in memory."""

    messages: list[Received] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    name: str = "gpu-interruptions"

    def receive(self) -> list[Received]:
        return list(self.messages)

    def delete(self, messages: list[Received]) -> list[str]:
        self.deleted += [m.message_id for m in messages]
        return []


class FakeEc2:
    def __init__(self, clock: FakeClock) -> None:
        self.unavailable = UnavailableOfferings(clock)


def handler(queue: FakeQueue, **changes: Any) -> tuple[InterruptionHandler, FakeEc2]:
    config = nodes_config(interruptions={"queue": "gpu-interruptions", **changes})
    ec2 = FakeEc2(FakeClock(T0))
    pools = node_pools(config, ["g6.xlarge", "g6.12xlarge"])
    return InterruptionHandler(config, ec2, pools, queue), ec2  # type: ignore[arg-type]


def message(n: int, body: str) -> Received:
    return Received(f"m{n}", f"receipt-{n}", body)


def test_take_records_only_our_instances_and_marks_their_spot_offering_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    foreign = "i-0ffffffffffffffff"
    queue = FakeQueue(
        [
            message(1, eventbridge_event("spot-interruption-warning")),
            message(2, eventbridge_event("spot-interruption-warning", foreign)),
            message(3, "{not json"),
            message(4, eventbridge_event("state-change-running")),
        ]
    )
    h, ec2 = handler(queue)
    result = NodeTickResult()
    caplog.set_level(logging.INFO, logger="autoscaler.nodes.interruptions")
    observed, intake = h.take(h.receive(result), observe(ready_node(IID)), result)
    assert result.interruptions == {"spot-interruption": 2, "malformed": 1, "ignored": 1}
    assert set(observed.memory.leaving) == {IID}
    assert observed.memory.leaving[IID].deadline == EVENT_TIME + SPOT_NOTICE_SECONDS
    assert [m.message_id for m in intake.done] == ["m2", "m3", "m4"]
    assert [(m.message_id, ids) for m, ids in intake.waiting] == [("m1", (IID,))]
    assert "m3 deleted, unreadable: not JSON" in caplog.text
    short = ec2.unavailable.get(Offering("us-east-1", "g6.xlarge", "subnet-0a", "spot"))
    assert short is not None and short.code == "SpotInterruption"
    assert ec2.unavailable.get(Offering("us-east-1", "g6.xlarge", None, "on-demand")) is None
    assert ec2.unavailable.get(Offering("us-east-1", "g6.12xlarge", None, "spot")) is None
    assert not observed.exhausted, "on-demand is still there for g6.xlarge"


def test_settle_deletes_a_notice_only_once_its_action_is_recorded() -> None:
    queue = FakeQueue([message(1, eventbridge_event("spot-interruption-warning"))])
    h, _ = handler(queue)
    result = NodeTickResult()
    observed, intake = h.take(h.receive(result), observe(ready_node(IID)), result)
    failed = NodeTickResult(errors=["node i-...: cordon: 500"])
    h.settle(intake, observed, failed)
    assert queue.deleted == [], "the cordon failed: the message must come back"
    done = NodeTickResult(cordoned=[IID])
    h.settle(intake, observed, done)
    assert queue.deleted == ["m1"]
    # Delivered again after a crash: the node already carries the kind; deleted at once.
    queue.deleted.clear()
    marked = observe(ready_node(IID, "spot-interruption"))
    again, intake = h.take(h.receive(result), marked, NodeTickResult())
    h.settle(intake, again, NodeTickResult())
    assert queue.deleted == ["m1"]


def test_rebalance_is_counted_only_unless_drain_is_configured() -> None:
    body = eventbridge_event("rebalance-recommendation")
    for setting, leaving in (("ignore", set()), ("drain", {IID})):
        queue = FakeQueue([message(1, body)])
        h, ec2 = handler(queue, rebalance=setting)
        result = NodeTickResult()
        observed, intake = h.take(h.receive(result), observe(ready_node(IID)), result)
        assert result.interruptions == {"rebalance-recommendation": 1}
        assert set(observed.memory.leaving) == leaving
        assert bool(intake.done) == (setting == "ignore")
        marked = ec2.unavailable.get(Offering("us-east-1", "g6.xlarge", None, "spot"))
        assert (marked is not None) == (setting == "drain")


def test_a_terminated_instance_is_forgotten_and_a_spot_warning_beats_a_rebalance() -> None:
    queue = FakeQueue([message(1, eventbridge_event("state-change-terminated"))])
    h, _ = handler(queue)
    earlier = Memory(leaving={IID: Leaving("rebalance-recommendation", T0 - 60)})
    observed, intake = h.take(h.receive(NodeTickResult()), observe(ready_node(IID), memory=earlier),
                              NodeTickResult())  # fmt: skip
    assert observed.memory.leaving == {} and len(intake.done) == 1
    queue.messages = [message(2, eventbridge_event("spot-interruption-warning"))]
    observed, _ = h.take(h.receive(NodeTickResult()), observe(ready_node(IID), memory=earlier),
                         NodeTickResult())  # fmt: skip
    assert observed.memory.leaving[IID].kind == "spot-interruption"


def test_a_spot_only_type_whose_spot_is_short_is_exhausted_so_another_type_is_planned() -> None:
    queue = FakeQueue([message(1, eventbridge_event("spot-interruption-warning"))])
    config_changes = {"market": "spot"}
    config = nodes_config(interruptions={"queue": "q"}, **config_changes)
    ec2 = FakeEc2(FakeClock(T0))
    h = InterruptionHandler(config, ec2, node_pools(config, ["g6.xlarge", "g6.12xlarge"]), queue)  # type: ignore[arg-type]
    obs = observe(ready_node(IID), pods=(gpu_pod("llm", IID),), market="spot")
    observed, _ = h.take(h.receive(NodeTickResult()), obs, NodeTickResult())
    assert observed.exhausted == {"g6.xlarge"}
    assert [c.instance_type for c in of(Launch, plan_nodes(observed).commands)] == ["g6.12xlarge"]
