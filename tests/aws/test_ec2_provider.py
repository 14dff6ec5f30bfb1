"""The EC2 provider against in-process moto: tags, ownership, scale-in order, warm pool,
idempotency across a crash."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from autoscaler.clients.aws import AwsClients, Ownership
from autoscaler.clock import FakeClock
from autoscaler.errors import NotFound, ProviderError
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.providers.aws_instances import Instance, parse_busy, scale_in_order

from .helpers import (
    BUSY_TAG,
    INSTALLATION,
    OWNER_TAG,
    POOL_TAG,
    PREFIX,
    REGION,
    REQUEST_TAG,
    World,
    client,
    ec2_pool,
    launch_foreign,
    owned,
    state_of,
    tags,
)

pytestmark = pytest.mark.aws


def provider(clients: AwsClients | None = None) -> Ec2Provider:
    return Ec2Provider(Ownership(INSTALLATION, PREFIX), FakeClock(1000.0), clients)


def test_launch_tags_every_instance_with_owner_pool_and_request_id(world: World) -> None:
    pool = ec2_pool("gpu", world)
    provider().scale(pool, 2, "req-1")
    found = owned("gpu")
    assert len(found) == 2
    for instance in found:
        assert tags(instance) == {
            OWNER_TAG: INSTALLATION,
            POOL_TAG: "gpu",
            REQUEST_TAG: "req-1",
        }


def test_launch_uses_the_first_offering_in_priority_order(world: World) -> None:
    pool = ec2_pool("gpu", world, instance_types=["g6.xlarge", "g5.xlarge"])
    provider().scale(pool, 2, "req-1")
    placed = {(i["InstanceType"], i["SubnetId"]) for i in owned("gpu")}
    assert placed == {("g6.xlarge", world.subnet_a)}


def test_cheapest_order_launches_the_cheapest_type_first(world: World) -> None:
    types = [{"type": "g6.xlarge", "price": 0.80}, {"type": "g5.xlarge", "price": 1.01}]
    pool = ec2_pool("gpu", world, instance_types=types[::-1], order="cheapest")
    provider().scale(pool, 1, "req-1")
    assert [i["InstanceType"] for i in owned("gpu")] == ["g6.xlarge"]


def test_run_instances_api_launches_an_inline_spec_with_tags(world: World) -> None:
    sg = client("ec2").create_security_group(GroupName="gpu", Description="gpu")["GroupId"]
    pool = ec2_pool(
        "inline",
        world,
        launch_template=None,
        image_id=world.image,
        security_groups=[sg],
        user_data="#!/bin/sh\necho hello\n",
        api="run-instances",
    )
    provider().scale(pool, 2, "req-1")
    found = owned("inline")
    assert len(found) == 2
    assert {i["ImageId"] for i in found} == {world.image}
    assert {g["GroupId"] for i in found for g in i["SecurityGroups"]} == {sg}
    assert all(tags(i)[REQUEST_TAG] == "req-1" for i in found)


def test_spot_market_launches_spot_instances(world: World) -> None:
    pool = ec2_pool("spot", world, market="spot")
    provider().scale(pool, 2, "req-1")
    assert [i.get("InstanceLifecycle") for i in owned("spot")] == ["spot", "spot"]


def test_describe_lists_only_owned_pending_or_running_instances_of_the_pool(
    world: World,
) -> None:
    ec2 = provider()
    pool = ec2_pool("gpu", world)
    ec2.scale(pool, 2, "req-1")
    launch_foreign(world, {})
    launch_foreign(world, {OWNER_TAG: "someone-else", POOL_TAG: "gpu"})
    launch_foreign(world, {OWNER_TAG: INSTALLATION, POOL_TAG: "other-pool"})
    [gone] = launch_foreign(world, {OWNER_TAG: INSTALLATION, POOL_TAG: "gpu"})
    client("ec2").terminate_instances(InstanceIds=[gone])
    capacity = ec2.describe(pool)
    assert (capacity.desired, capacity.ready, capacity.pending) == (2, 2, 0)
    assert {m.id for m in capacity.members} == {i["InstanceId"] for i in owned("gpu")}


def test_instances_owned_by_someone_else_survive_every_scale_in(world: World) -> None:
    foreign = (
        launch_foreign(world, {})
        + launch_foreign(world, {OWNER_TAG: "someone-else", POOL_TAG: "gpu"})
        + launch_foreign(world, {OWNER_TAG: INSTALLATION, POOL_TAG: "other-pool"})
        + launch_foreign(world, {POOL_TAG: "gpu"})
    )
    ec2 = provider()
    for mode in ("terminate", "stop"):
        pool = ec2_pool("gpu", world, scale_in=mode)
        ec2.scale(pool, 3, f"{mode}-up")
        ec2.scale(pool, 1, f"{mode}-down")
        ec2.scale(pool, 0, f"{mode}-zero")
        with pytest.raises(NotFound, match="nothing was removed"):
            ec2.remove(pool, foreign[:1], f"{mode}-remove")
        assert ec2.describe(pool).desired == 0
    assert set(state_of(foreign).values()) == {"running"}


def test_remove_of_a_foreign_instance_with_an_own_one_removes_nothing(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("gpu", world)
    ec2.scale(pool, 2, "req-1")
    ours = [i["InstanceId"] for i in owned("gpu")]
    [foreign] = launch_foreign(world, {OWNER_TAG: "someone-else", POOL_TAG: "gpu"})
    with pytest.raises(NotFound, match=foreign):
        ec2.remove(pool, [ours[0], foreign], "req-2")
    assert set(state_of([*ours, foreign]).values()) == {"running"}


def test_remove_terminates_exactly_the_named_members(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("gpu", world)
    ec2.scale(pool, 4, "req-1")
    ids = sorted(i["InstanceId"] for i in owned("gpu"))
    ec2.remove(pool, ids[1:3], "req-2")
    assert sorted(m.id for m in ec2.describe(pool).members) == [ids[0], ids[3]]
    assert {state_of(ids[1:3])[i] for i in ids[1:3]} == {"terminated"}


def test_scale_in_takes_the_idle_member_when_the_workload_reports_idleness(
    world: World,
) -> None:
    ec2 = provider()
    pool = ec2_pool("gpu", world)
    ec2.scale(pool, 3, "req-1")
    ids = [i["InstanceId"] for i in owned("gpu")]
    client("ec2").create_tags(Resources=ids, Tags=[{"Key": BUSY_TAG, "Value": "0.9"}])
    client("ec2").create_tags(Resources=[ids[1]], Tags=[{"Key": BUSY_TAG, "Value": "idle"}])
    assert {m.id: m.busy for m in ec2.describe(pool).members}[ids[1]] == 0.0
    ec2.scale(pool, 2, "req-2")
    assert state_of(ids)[ids[1]] == "terminated"
    assert sorted(m.id for m in ec2.describe(pool).members) == sorted([ids[0], ids[2]])


def _instance(name: str, state: str = "running", at: float = 0.0, busy: float | None = None):
    return Instance(name, state, "g6.xlarge", None, "on-demand", at, {}, busy)


def test_scale_in_order_is_not_yet_running_then_idle_then_newest() -> None:
    members = [
        _instance("old-busy", at=1, busy=1.0),
        _instance("new-unknown", at=9),
        _instance("old-unknown", at=2),
        _instance("half-idle", at=3, busy=0.5),
        _instance("idle", at=4, busy=0.0),
        _instance("booting", state="pending", at=5),
    ]
    order = [i.id for i in scale_in_order(members)]
    assert order == ["booting", "idle", "half-idle", "new-unknown", "old-unknown", "old-busy"]


@pytest.mark.parametrize(
    ("text", "busy"),
    [("0.25", 0.25), ("true", 1.0), ("IDLE", 0.0), ("1.5", None), ("soon", None), (None, None)],
)
def test_busy_tag_values_parse_to_a_share_or_unknown(text: str | None, busy: float | None) -> None:
    assert parse_busy(text) == busy


def test_scale_in_stop_keeps_a_warm_pool_that_scale_out_starts_first(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("warm", world, scale_in="stop")
    ec2.scale(pool, 3, "req-1")
    first = {i["InstanceId"] for i in owned("warm")}
    ec2.scale(pool, 1, "req-2")
    stopped = {i["InstanceId"] for i in owned("warm", ("stopped",))}
    assert len(stopped) == 2 and stopped < first
    ec2.scale(pool, 4, "req-3")
    running = {i["InstanceId"] for i in owned("warm")}
    assert len(running) == 4
    assert stopped < running  # the warm ones came back ...
    assert len(running - first) == 1  # ... and only the fourth is new
    assert owned("warm", ("stopped",)) == []


def test_warm_pool_keeps_at_most_warm_pool_max_stopped_instances(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("warm", world, scale_in="stop", warm_pool_max=1)
    ec2.scale(pool, 3, "req-1")
    ec2.scale(pool, 0, "req-2")
    states = sorted(i["State"]["Name"] for i in owned("warm", ("stopped", "terminated")))
    assert states == ["stopped", "terminated", "terminated"]


def test_spot_instances_are_terminated_even_with_scale_in_stop(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("warm", world, scale_in="stop", market="spot")
    ec2.scale(pool, 2, "req-1")
    ec2.scale(pool, 0, "req-2")
    assert owned("warm", ("stopped",)) == []


def test_scale_is_a_no_op_when_the_request_id_was_already_applied(world: World) -> None:
    ec2 = provider()
    pool = ec2_pool("gpu", world)
    ec2.scale(pool, 2, "req-1")
    client("ec2").terminate_instances(InstanceIds=[owned("gpu")[0]["InstanceId"]])
    ec2.scale(pool, 2, "req-1")  # the same action again: not a new launch
    assert len(owned("gpu")) == 1
    ec2.scale(pool, 2, "req-2")  # a new action converges
    assert len(owned("gpu")) == 2


class Crash(Exception):
    """The process dies after AWS carried the call out, before the answer is read."""


def _crash_after(clients: AwsClients, operation: str) -> None:
    ec2 = clients.get("ec2", REGION, 1)

    def boom(**_: Any) -> None:
        raise Crash(operation)

    ec2.meta.events.register(f"after-call.ec2.{operation}", boom)


@pytest.mark.parametrize(
    ("api", "operation"), [("fleet", "CreateFleet"), ("run-instances", "RunInstances")]
)
def test_no_double_launch_when_an_action_is_retried_after_a_crash_between_call_and_answer(
    world: World, caplog: pytest.LogCaptureFixture, api: str, operation: str
) -> None:
    pool = ec2_pool("gpu", world, api=api)
    doomed = AwsClients()
    _crash_after(doomed, operation)
    with pytest.raises(Crash):
        provider(doomed).scale(pool, 3, "req-7")
    launched = owned("gpu")
    assert launched  # the call went through; only its answer was lost
    caplog.set_level(logging.INFO, logger="autoscaler")
    restarted = provider()  # a new process: no memory of the first attempt
    restarted.scale(pool, 3, "req-7")
    assert len(owned("gpu")) == 3
    if len(launched) < 3:  # moto's RunInstances launches one per call: a partial action
        assert "request req-7 already launched" in caplog.text


def test_a_missing_launch_template_is_an_error_naming_pool_code_and_fix(world: World) -> None:
    pool = ec2_pool("gpu", world, launch_template="no-such-template")
    with pytest.raises(ProviderError) as caught:
        provider().scale(pool, 1, "req-1")
    assert caught.value.code == "InvalidLaunchTemplateName.NotFoundException"
    assert "pool gpu" in str(caught.value)
    assert "check target.launch_template" in str(caught.value)
    assert owned("gpu") == []
