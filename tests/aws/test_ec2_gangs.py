"""Gang launches on EC2: all instances in one offering (one zone) or none, with capacity
cut short by the fault-injecting proxy in front of the moto server."""

from __future__ import annotations

import pytest

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config import Pool
from autoscaler.config.targets import Ec2Target
from autoscaler.errors import CapacityUnavailable
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.providers.aws_offerings import Offering, offerings
from autoscaler.providers.base import target_of

from .faults import Fault, FaultyMotoServer
from .helpers import INSTALLATION, PREFIX, REQUEST_TAG, World, client, ec2_pool, owned, tags

pytestmark = pytest.mark.aws

GANG_TAG = f"{PREFIX}/gang"


def provider(clock: FakeClock) -> Ec2Provider:
    return Ec2Provider(Ownership(INSTALLATION, PREFIX), clock)


def placed(pool: str) -> list[tuple[str, str]]:
    return sorted((i["InstanceType"], i["SubnetId"]) for i in owned(pool))


def test_a_gang_launches_whole_in_one_zone_with_one_all_or_nothing_call(
    server: FaultyMotoServer, server_world: World
) -> None:
    pool = ec2_pool("gpu", server_world, instance_types=["g6.xlarge"])
    ec2 = provider(FakeClock(0.0))
    ids = ec2.launch_gang(pool, 4, "gang-1", {GANG_TAG: "ns/job/train"}, "train-pg")
    assert len(ids) == 4
    assert placed("gpu") == [("g6.xlarge", server_world.subnet_a)] * 4
    assert {tags(i)[GANG_TAG] for i in owned("gpu")} == {"ns/job/train"}
    [call] = server.injector.calls_to("CreateFleet")
    assert call.params["TargetCapacitySpecification.TotalTargetCapacity"] == "4"
    assert call.params["OnDemandOptions.MinTargetCapacity"] == "4"
    assert call.params["OnDemandOptions.SingleAvailabilityZone"] == "true"
    assert call.params["LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName"] == "train-pg"
    # The same request again launches nothing.
    ec2.launch_gang(pool, 4, "gang-1", {GANG_TAG: "ns/job/train"})
    assert len(server.injector.calls_to("CreateFleet")) == 1


def test_a_short_answer_is_terminated_at_once_and_the_next_zone_gets_the_whole_gang(
    server: FaultyMotoServer, server_world: World
) -> None:
    w = server_world
    server.injector.add(Fault("CreateFleet", instance_type="g6.xlarge", subnet=w.subnet_a, room=2))
    pool = ec2_pool("gpu", w, instance_types=["g6.xlarge"], unavailable_for=180)
    ec2 = provider(FakeClock(0.0))
    ec2.launch_gang(pool, 4, "gang-1")
    assert placed("gpu") == [("g6.xlarge", w.subnet_b)] * 4
    partial = owned("gpu", ("shutting-down", "terminated"))
    assert [i["SubnetId"] for i in partial] == [w.subnet_a] * 2
    offering = next(o for o in _offerings(pool) if o.subnet == w.subnet_a)
    assert ec2.unavailable.get(offering) is not None  # marked short


def test_no_offering_with_room_for_the_whole_gang_leaves_nothing_running(
    server: FaultyMotoServer, server_world: World
) -> None:
    fault = server.injector.add(Fault("CreateFleet", instance_type="g6.xlarge", room=3))
    pool = ec2_pool("gpu", server_world, instance_types=["g6.xlarge"], unavailable_for=180)
    clock = FakeClock(0.0)
    ec2 = provider(clock)
    with pytest.raises(CapacityUnavailable, match="launched 0 of 4"):
        ec2.launch_gang(pool, 4, "gang-1")
    assert owned("gpu") == []
    assert len(owned("gpu", ("shutting-down", "terminated"))) == 3
    # Capacity returns: once the offerings' time is up, the same request gets the gang.
    server.injector.faults.remove(fault)
    clock.advance(181)
    ec2.launch_gang(pool, 4, "gang-1")
    assert len(owned("gpu")) == 4


def test_a_partial_gang_left_by_a_crash_is_terminated_and_launched_again(
    server: FaultyMotoServer, server_world: World
) -> None:
    pool = ec2_pool("gpu", server_world, instance_types=["g6.xlarge"])
    left = client("ec2").run_instances(
        ImageId=server_world.image,
        InstanceType="g6.xlarge",
        MinCount=2,
        MaxCount=2,
        SubnetId=server_world.subnet_b,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": f"{PREFIX}/owner", "Value": INSTALLATION},
                    {"Key": f"{PREFIX}/pool", "Value": "gpu"},
                    {"Key": REQUEST_TAG, "Value": "gang-1"},
                ],
            }
        ],
    )["Instances"]
    provider(FakeClock(0.0)).launch_gang(pool, 4, "gang-1")
    assert placed("gpu") == [("g6.xlarge", server_world.subnet_a)] * 4
    gone = {i["InstanceId"] for i in owned("gpu", ("shutting-down", "terminated"))}
    assert gone == {i["InstanceId"] for i in left}


def test_run_instances_asks_for_all_or_nothing(
    server: FaultyMotoServer, server_world: World
) -> None:
    pool = ec2_pool("gpu", server_world, instance_types=["g6.xlarge"], api="run-instances")
    provider(FakeClock(0.0)).launch_gang(pool, 3, "gang-1")
    [call] = server.injector.calls_to("RunInstances")
    assert (call.params["MinCount"], call.params["MaxCount"]) == ("3", "3")
    assert len(owned("gpu")) == 3


def _offerings(pool: Pool) -> list[Offering]:
    return offerings(target_of(pool, Ec2Target))
