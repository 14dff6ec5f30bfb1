"""The EC2 provider's fallback and throttling paths, with faults injected over HTTP in
front of the moto server: botocore's real retry, parsing and our offering cache."""

from __future__ import annotations

import threading

import pytest

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.controller import Controller
from autoscaler.errors import CapacityUnavailable, ProviderError, Throttled
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.record import ListRecorder

from .faults import Fault, FaultyMotoServer
from .helpers import INSTALLATION, PREFIX, World, config, ec2_pool, ec2_target, owned, pool_dict

pytestmark = pytest.mark.aws


def provider(clock: FakeClock) -> Ec2Provider:
    return Ec2Provider(Ownership(INSTALLATION, PREFIX), clock)


def placed(pool: str) -> list[tuple[str, str]]:
    return sorted((i["InstanceType"], i["SubnetId"]) for i in owned(pool))


def test_ice_on_the_first_offering_lands_capacity_on_the_next_in_the_same_call(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", instance_type="g6.xlarge"))
    pool = ec2_pool("gpu", server_world, unavailable_for=180)
    clock = FakeClock(0.0)
    ec2 = provider(clock)
    ec2.scale(pool, 3, "req-1")
    assert placed("gpu") == [("g5.xlarge", server_world.subnet_a)] * 3
    [call] = server.injector.calls_to("CreateFleet")  # one call offered all four
    assert [kind for kind, _ in call.overrides()] == ["g6.xlarge"] * 2 + ["g5.xlarge"] * 2
    # While g6 is marked unavailable it is not even offered ...
    ec2.scale(pool, 4, "req-2")
    assert {kind for kind, _ in server.injector.calls_to("CreateFleet")[-1].overrides()} == {
        "g5.xlarge"
    }
    # ... and once its time is up, it is offered first again.
    clock.advance(181)
    ec2.scale(pool, 5, "req-3")
    assert server.injector.calls_to("CreateFleet")[-1].overrides()[0][0] == "g6.xlarge"


def test_run_instances_falls_back_offering_by_offering_without_retrying_capacity_errors(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("RunInstances", instance_type="g6.xlarge"))
    pool = ec2_pool(
        "gpu", server_world, api="run-instances", retry={"max_attempts": 4, "backoff_rounds": 0}
    )
    provider(FakeClock()).scale(pool, 1, "req-1")
    tried = [
        (c.params["InstanceType"], c.params["SubnetId"])
        for c in server.injector.calls_to("RunInstances")
    ]
    w = server_world
    # Each refused offering asked exactly once though botocore may make 4 attempts: the
    # next offering is a better bet than the same one again.
    assert tried == [
        ("g6.xlarge", w.subnet_a),
        ("g6.xlarge", w.subnet_b),
        ("g5.xlarge", w.subnet_a),
    ]
    assert placed("gpu") == [("g5.xlarge", w.subnet_a)]


def test_partial_capacity_launches_what_it_can_and_reports_the_rest(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("RunInstances", instance_type="g6.xlarge", room=2))
    server.injector.add(Fault("RunInstances", instance_type="g5.xlarge"))
    pool = ec2_pool("gpu", server_world, api="run-instances")
    with pytest.raises(CapacityUnavailable) as caught:
        provider(FakeClock()).scale(pool, 5, "req-1")
    assert len(owned("gpu")) == 2
    message = str(caught.value)
    assert "pool gpu: launched 2 of 5" in message
    assert "g5.xlarge" in message and "InsufficientInstanceCapacity" in message
    assert caught.value.code == "InsufficientInstanceCapacity"


def test_every_offering_failing_raises_capacity_unavailable_and_skips_them_next_time(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet"))
    pool = ec2_pool("gpu", server_world)
    ec2 = provider(FakeClock())
    with pytest.raises(CapacityUnavailable, match="launched 0 of 2"):
        ec2.scale(pool, 2, "req-1")
    calls = len(server.injector.calls_to("CreateFleet"))
    with pytest.raises(CapacityUnavailable, match="skipped"):
        ec2.scale(pool, 2, "req-1")
    assert len(server.injector.calls_to("CreateFleet")) == calls  # nothing asked in vain
    assert owned("gpu") == []


def test_spot_without_capacity_falls_back_to_on_demand(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", market="spot"))
    pool = ec2_pool("gpu", server_world, market="spot-then-on-demand")
    provider(FakeClock()).scale(pool, 2, "req-1")
    markets = [
        c.params["TargetCapacitySpecification.DefaultTargetCapacityType"]
        for c in server.injector.calls_to("CreateFleet")
    ]
    assert markets == ["spot", "on-demand"]
    assert [i.get("InstanceLifecycle", "on-demand") for i in owned("gpu")] == ["on-demand"] * 2


def test_throttling_backs_off_on_the_clock_then_raises_throttled(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", code="RequestLimitExceeded"))
    pool = ec2_pool(
        "gpu", server_world, retry={"max_attempts": 1, "backoff": 5, "backoff_rounds": 2}
    )
    clock = FakeClock(0.0)
    with pytest.raises(Throttled) as caught:
        provider(clock).scale(pool, 1, "req-1")
    assert caught.value.code == "RequestLimitExceeded"
    assert "pool gpu: CreateFleet" in str(caught.value)
    assert clock.now() == 15.0  # waited 5 s, then 10 s, on the injected clock
    assert len(server.injector.calls_to("CreateFleet")) == 3
    assert owned("gpu") == []


def test_throttling_that_clears_during_the_backoff_launches(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", code="RequestLimitExceeded", times=1))
    pool = ec2_pool(
        "gpu", server_world, retry={"max_attempts": 1, "backoff": 2, "backoff_rounds": 2}
    )
    clock = FakeClock(0.0)
    provider(clock).scale(pool, 2, "req-1")
    assert len(owned("gpu")) == 2
    assert clock.now() == 2.0


def test_botocore_adaptive_retry_absorbs_a_short_throttle_without_our_backoff(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", code="RequestLimitExceeded", times=1))
    pool = ec2_pool(
        "gpu", server_world, retry={"max_attempts": 3, "backoff": 9, "backoff_rounds": 2}
    )
    clock = FakeClock(0.0)
    provider(clock).scale(pool, 1, "req-1")
    assert len(owned("gpu")) == 1
    assert clock.now() == 0.0  # botocore retried inside the call
    assert len(server.injector.calls_to("CreateFleet")) == 2


def test_a_throttled_pool_does_not_stop_another_pool_in_the_same_tick(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("CreateFleet", code="RequestLimitExceeded", contains="alpha"))
    retry = {"max_attempts": 1, "backoff": 1, "backoff_rounds": 1}
    cfg = config(
        pool_dict("alpha", ec2_target(server_world, retry=retry), queue=2),
        pool_dict("beta", ec2_target(server_world, retry=retry), queue=3),
    )
    clock = FakeClock(0.0)
    recorder = ListRecorder()
    controller = Controller(cfg, {"ec2": provider(clock)}, clock=clock, recorder=recorder)
    result = controller.tick()
    actions = {a.pool: a for a in result.actions}
    assert actions["alpha"].error_code == "RequestLimitExceeded" and not actions["alpha"].applied
    assert actions["beta"].applied
    assert (len(owned("alpha")), len(owned("beta"))) == (0, 3)
    # Next tick: alpha waits out the controller's backoff, beta carries on.
    clock.advance(cfg.controller.interval)
    cfg_calls = len(server.injector.calls_to("CreateFleet"))
    controller.tick()
    assert len(server.injector.calls_to("CreateFleet")) == cfg_calls
    controller.close()


def test_pools_scale_concurrently_on_one_provider(
    server: FaultyMotoServer, server_world: World
) -> None:
    ec2 = provider(FakeClock())
    # moto's backends take no locks: a describe racing a launch can answer HTTP 500, which
    # botocore retries (as it would AWS's transient errors).
    retry = {"max_attempts": 3, "backoff_rounds": 0}
    pools = [ec2_pool(f"pool-{n}", server_world, retry=retry) for n in range(4)]
    errors: list[BaseException] = []

    def scale(pool: object, count: int) -> None:
        try:
            ec2.scale(pool, count, f"req-{count}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=scale, args=(p, n + 1)) for n, p in enumerate(pools)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [], [f"{type(e).__name__}: {e}" for e in errors]
    assert [len(owned(p.name)) for p in pools] == [1, 2, 3, 4]


def test_a_denied_terminate_is_an_error_naming_pool_call_code_and_policy(
    server: FaultyMotoServer, server_world: World
) -> None:
    server.injector.add(Fault("TerminateInstances", code="UnauthorizedOperation"))
    pool = ec2_pool("gpu", server_world)
    ec2 = provider(FakeClock())
    ec2.scale(pool, 2, "req-1")
    with pytest.raises(ProviderError) as caught:
        ec2.scale(pool, 0, "req-2")
    assert caught.value.code == "UnauthorizedOperation"
    message = str(caught.value)
    assert message.startswith("pool gpu: TerminateInstances: UnauthorizedOperation")
    assert "deploy/aws/iam-policy.json" in message
    assert len(owned("gpu")) == 2


def test_a_warm_instance_without_capacity_to_start_is_replaced_by_a_launch_elsewhere(
    server: FaultyMotoServer, server_world: World
) -> None:
    pool = ec2_pool("warm", server_world, scale_in="stop")
    ec2 = provider(FakeClock())
    ec2.scale(pool, 2, "req-1")
    ec2.scale(pool, 0, "req-2")
    stopped = sorted(i["InstanceId"] for i in owned("warm", ("stopped",)))
    server.injector.add(Fault("StartInstances"))  # g6.xlarge in subnet a has none left
    ec2.scale(pool, 2, "req-3")
    assert sorted(i["InstanceId"] for i in owned("warm", ("stopped",))) == stopped
    assert placed("warm") == [("g6.xlarge", server_world.subnet_b)] * 2
    assert len(server.injector.calls_to("StartInstances")) == 1
