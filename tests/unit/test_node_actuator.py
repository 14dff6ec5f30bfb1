"""The actuator carries `plan_nodes`' commands out through the EC2 provider and the drainer
(fakes here: no client), reports what was done, and turns failures into errors."""

from __future__ import annotations

from typing import Any

from autoscaler.config.nodes import NodeProvisioning
from autoscaler.errors import ProviderError
from autoscaler.nodes.actuator import Actuator, NodeTickResult
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
from autoscaler.nodes.inventory import node_pools

CONFIG = NodeProvisioning(image_id="ami-00000001", instance_types=["g6.xlarge"])
POOLS = node_pools(CONFIG, ["g6.xlarge"])


class FakeEc2:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    def scale(self, pool: Any, desired: int, request_id: str) -> None:
        if self.fail:
            raise ProviderError("InsufficientInstanceCapacity")
        self.calls.append(("scale", pool.name, desired, request_id))

    def remove(self, pool: Any, members: list[str], request_id: str) -> None:
        self.calls.append(("remove", pool.name, tuple(members), request_id))


class FakeDrainer:
    """Records calls; `refuse` are pods a PodDisruptionBudget protects, `broken` nodes fail."""

    def __init__(self, refuse: tuple[str, ...] = (), broken: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse, self.broken = set(refuse), set(broken)

    def _call(self, *call: Any) -> None:
        if call[1] in self.broken:
            raise ProviderError("500 etcd is sad")
        self.calls.append(call)

    def cordon(self, name: str) -> None:
        self._call("cordon", name)

    def uncordon(self, name: str, why: str) -> None:
        self._call("uncordon", name)

    def label(self, name: str, labels: Any, add: Any) -> None:
        self._call("label", name)

    def delete_node(self, name: str) -> None:
        self._call("delete", name)

    def evict(self, pod: str) -> str:
        if pod in self.refuse:
            return "blocked"
        self.calls.append(("evict", pod))
        return "evicted"


def run(
    commands: list[Command], ec2: FakeEc2 | None = None, drainer: FakeDrainer | None = None
) -> tuple[NodeTickResult, FakeEc2, FakeDrainer]:
    ec2, drainer = ec2 or FakeEc2(), drainer or FakeDrainer()
    result = NodeTickResult()
    fake: Any = drainer
    Actuator(ec2, fake, POOLS).carry_out(commands, result)
    return result, ec2, drainer


def test_a_launch_raises_the_pool_with_the_plans_request_id() -> None:
    result, ec2, _ = run([Launch("g6.xlarge", 2, 3, "nodes-abc", ("ns/a", "ns/b"))])
    assert ec2.calls == [("scale", "gpu-nodes.g6.xlarge", 3, "nodes-abc")]
    assert result.launched == {"g6.xlarge": 2}


def test_a_failed_command_is_an_error_and_the_others_still_run() -> None:
    commands: list[Command] = [
        Launch("g6.xlarge", 1, 1, "nodes-abc", ("ns/a",)),
        Label("n1", {"pool": "llm"}),
        Cordon("n1"),
        Cordon("n2"),
    ]
    result, _, drainer = run(commands, FakeEc2(fail=True), FakeDrainer(broken=("n1",)))
    assert result.errors == [
        "launch 1 x g6.xlarge: InsufficientInstanceCapacity",
        "500 etcd is sad",  # a label error is the API error alone, as before the split
        "node n1: 500 etcd is sad",
    ]
    assert not result.launched and result.cordoned == ["n2"]
    assert drainer.calls == [("cordon", "n2")]


def test_a_pdb_refusing_an_eviction_holds_the_node_and_the_other_pods_still_go() -> None:
    result, _, drainer = run(
        [Drain("n1", ("ns/a", "ns/b", "ns/c"))], drainer=FakeDrainer(refuse=("ns/b",))
    )
    assert result.evicted == ["ns/a", "ns/c"]
    assert result.held == {
        "n1": "a PodDisruptionBudget allows no eviction of ns/b now; retried next tick"
    }


def test_a_drain_is_called_off_and_held_only_once_the_node_is_uncordoned() -> None:
    why = "pod ns/keeper is annotated do-not-disrupt"
    result, _, _ = run(
        [CallOffDrain("n1", why), CallOffDrain("n2", why)], drainer=FakeDrainer(broken=("n2",))
    )
    assert result.held == {"n1": why}
    assert result.errors == ["node n2: 500 etcd is sad"]


def test_terminating_twice_asks_the_same_thing_twice() -> None:
    commands: list[Command] = [
        Terminate("i-1", "g6.xlarge", "n1", "drained"),
        Terminate("i-2", "g6.xlarge", None, "never became a Ready GPU node"),
    ]
    first, ec2, drainer = run(commands)
    run(commands, ec2, drainer)
    assert first.terminated == ["i-1", "i-2"]
    removes = [c for c in ec2.calls if c[0] == "remove"]
    assert removes[:2] == removes[2:]
    assert removes[0] == (
        "remove",
        "gpu-nodes.g6.xlarge",
        ("i-1",),
        "gpu-nodes.g6.xlarge-retire-i-1",
    )
    assert drainer.calls == [("delete", "n1"), ("delete", "n1")]


def test_holds_and_unplaced_pods_are_only_reported() -> None:
    result, ec2, drainer = run([Hold("n1", "why"), Unplaced("ns/p", "too big")])
    assert result.held == {"n1": "why"} and result.unplaced == {"ns/p": "too big"}
    assert not ec2.calls and not drainer.calls
