"""The Auto Scaling group provider against moto: the group's bounds, targeted scale-in,
ownership of the group, and how describe reads lifecycle states."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.stub import Stubber

from autoscaler.clients.aws import AwsClients, Ownership
from autoscaler.clock import FakeClock
from autoscaler.config import Pool
from autoscaler.errors import NotFound, ProviderError, Throttled
from autoscaler.providers.aws_asg import AsgProvider

from .faults import Fault, FaultyMotoServer
from .helpers import INSTALLATION, PREFIX, REGION, World, config, group, make_group, pool_dict

pytestmark = pytest.mark.aws


def asg_pool(name: str = "workers", group_name: str = "gpu-asg", **target: Any) -> Pool:
    spec = {"kind": "asg", "name": group_name, "region": REGION, **target}
    return config(pool_dict(name, spec, max=20)).pools[0]


def provider(clients: AwsClients | None = None) -> AsgProvider:
    return AsgProvider(Ownership(INSTALLATION, PREFIX), FakeClock(), clients)


def in_service(name: str) -> list[str]:
    return sorted(
        i["InstanceId"] for i in group(name)["Instances"] if i["LifecycleState"] == "InService"
    )


def test_scale_sets_the_desired_capacity_of_the_group(world: World) -> None:
    make_group("gpu-asg", world, max=5)
    asg = provider()
    asg.scale(asg_pool(), 3, "req-1")
    assert group("gpu-asg")["DesiredCapacity"] == 3
    capacity = asg.describe(asg_pool())
    assert (capacity.desired, capacity.ready, capacity.pending) == (3, 3, 0)
    assert sorted(m.id for m in capacity.members) == in_service("gpu-asg")


def test_scale_is_clamped_to_the_groups_own_bounds_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    make_group("gpu-asg", world, min=1, max=4, desired=2)
    asg = provider()
    with caplog.at_level(logging.WARNING, logger="autoscaler"):
        asg.scale(asg_pool(), 10, "req-1")
    assert group("gpu-asg")["DesiredCapacity"] == 4
    assert "desired 10 clamped to 4" in caplog.text and "allows [1, 4]" in caplog.text
    asg.scale(asg_pool(), 0, "req-2")
    assert group("gpu-asg")["DesiredCapacity"] == 1


def test_targeted_remove_terminates_those_instances_and_decrements_desired(
    world: World,
) -> None:
    make_group("gpu-asg", world, max=5, desired=3)
    before = in_service("gpu-asg")
    provider().remove(asg_pool(), before[:1], "req-1")
    after = group("gpu-asg")
    assert after["DesiredCapacity"] == 2
    assert in_service("gpu-asg") == before[1:]


def test_remove_below_the_groups_min_size_is_refused_and_changes_nothing(world: World) -> None:
    make_group("gpu-asg", world, min=2, max=5, desired=2)
    members = in_service("gpu-asg")
    with pytest.raises(ProviderError, match="below its MinSize 2") as caught:
        provider().remove(asg_pool(), members[:1], "req-1")
    assert caught.value.code == "BelowMinSize"
    assert in_service("gpu-asg") == members


def test_remove_of_an_instance_outside_the_group_is_not_found(world: World) -> None:
    make_group("gpu-asg", world, max=5, desired=1)
    with pytest.raises(NotFound, match="i-0000000000000dead not in Auto Scaling group"):
        provider().remove(asg_pool(), ["i-0000000000000dead"], "req-1")
    assert group("gpu-asg")["DesiredCapacity"] == 1


def test_a_group_not_tagged_as_ours_is_left_alone(world: World) -> None:
    make_group("theirs", world, max=5, desired=1, owner="someone-else")
    make_group("untagged", world, max=5, desired=1, owner=None)
    asg = provider()
    for name in ("theirs", "untagged"):
        with pytest.raises(ProviderError, match="require_owner_tag") as caught:
            asg.scale(asg_pool(group_name=name), 3, "req-1")
        assert caught.value.code == "NotOwned"
        with pytest.raises(ProviderError, match="not tagged"):
            asg.remove(asg_pool(group_name=name), in_service(name), "req-2")
        assert group(name)["DesiredCapacity"] == 1
    asg.scale(asg_pool(group_name="untagged", require_owner_tag=False), 3, "req-3")
    assert group("untagged")["DesiredCapacity"] == 3


def test_a_missing_group_is_not_found_naming_the_pool(mocked: None) -> None:
    with pytest.raises(NotFound, match="pool workers: Auto Scaling group 'gpu-asg' not found"):
        provider().describe(asg_pool())


def test_describe_counts_in_service_as_ready_and_pending_states_as_pending(
    aws_env: None,
) -> None:
    clients = AwsClients()
    autoscaling = clients.get("autoscaling", REGION, 4)
    answer = {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": "gpu-asg",
                "MinSize": 0,
                "MaxSize": 9,
                "DesiredCapacity": 5,
                "DefaultCooldown": 0,
                "AvailabilityZones": ["us-east-1a"],
                "HealthCheckType": "EC2",
                "CreatedTime": "2024-01-01T00:00:00Z",
                "Instances": [
                    _member("i-1", "InService"),
                    _member("i-2", "InService"),
                    _member("i-3", "Pending"),
                    _member("i-4", "Pending:Wait"),
                    _member("i-5", "Terminating"),
                    _member("i-6", "Warmed:Stopped"),
                ],
            }
        ]
    }
    with Stubber(autoscaling) as stub:
        stub.add_response("describe_auto_scaling_groups", answer)
        capacity = provider(clients).describe(asg_pool())
    assert (capacity.desired, capacity.ready, capacity.pending) == (5, 2, 2)
    assert [(m.id, m.ready) for m in capacity.members] == [
        ("i-1", True),
        ("i-2", True),
        ("i-3", False),
        ("i-4", False),
    ]


def _member(instance_id: str, state: str) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "AvailabilityZone": "us-east-1a",
        "LifecycleState": state,
        "HealthStatus": "Healthy",
        "ProtectedFromScaleIn": False,
    }


def test_a_throttled_set_desired_capacity_raises_throttled(
    server: FaultyMotoServer, server_world: World
) -> None:
    make_group("gpu-asg", server_world, max=5)
    server.injector.add(Fault("SetDesiredCapacity", code="Throttling"))
    pool = asg_pool(retry={"max_attempts": 1, "backoff": 3, "backoff_rounds": 1})
    clock = FakeClock(0.0)
    with pytest.raises(Throttled, match="pool workers: SetDesiredCapacity") as caught:
        AsgProvider(Ownership(INSTALLATION, PREFIX), clock).scale(pool, 2, "req-1")
    assert caught.value.code == "Throttling"
    assert clock.now() == 3.0
    assert group("gpu-asg")["DesiredCapacity"] == 0
