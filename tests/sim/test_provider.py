"""The one simulated provider, over the simulator's cluster: what the controller sees of it
and does to it is what happens to the replicas that run the work."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.clock import FakeClock
from autoscaler.config import parse_config
from autoscaler.errors import NotFound
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.sim.cluster import Cluster

POOL = """installation: {id: test}
pools:
  - name: p
    target: {kind: simulated}
    max: 10
    startup: 30s
    policy: {type: queue-depth, signal: queue, target_per_replica: 1}
"""


@pytest.fixture
def world():
    """Two ready replicas of one slot; a 100 s request runs on the first from t=0."""
    pool = parse_config(POOL, env={}).pools[0]
    cluster = Cluster(np.array([0.0]), np.array([100.0]), np.array([1]), 1, 30.0, name="p")
    cluster.add(2, 0.0, ready=True)
    clock = FakeClock(0.0)
    return pool, cluster, clock, SimulatedProvider(clock, {"p": cluster})


def test_describe_lists_the_cluster_replicas_as_members(world):
    pool, cluster, clock, provider = world
    capacity = provider.describe(pool)
    assert (capacity.desired, capacity.ready, capacity.pending) == (2, 2, 0)
    assert [m.id for m in capacity.members] == ["p-0", "p-1"]


def test_scale_out_starts_replicas_that_become_ready_after_the_startup(world):
    pool, cluster, clock, provider = world
    provider.scale(pool, 3, "r-1")
    assert (provider.describe(pool).desired, provider.describe(pool).ready) == (3, 2)
    clock.advance(30.0)  # the provider catches the cluster up with its clock
    assert provider.describe(pool).ready == 3 and cluster.clock == 30.0


def test_remove_takes_the_named_replicas_out_and_a_busy_one_finishes_its_work(world):
    pool, cluster, clock, provider = world
    provider.remove(pool, ["p-0", "p-1"], "r-1")  # p-0 runs the request
    assert provider.describe(pool).desired == 0
    assert list(cluster.replicas) == [0]  # draining: billed until its request ends
    clock.advance(200.0)
    provider.describe(pool)
    assert cluster.replicas == {} and cluster.start == [0.0]
    assert cluster.billed_replica_seconds(200.0) == pytest.approx(100.0 + 0.0)


def test_remove_of_a_name_not_in_the_pool_removes_nothing(world):
    pool, cluster, clock, provider = world
    with pytest.raises(NotFound, match="p-7"):
        provider.remove(pool, ["p-1", "p-7"], "r-1")
    assert provider.describe(pool).desired == 2


def test_a_repeated_request_id_is_applied_once(world):
    pool, cluster, clock, provider = world
    provider.scale(pool, 5, "r-1")
    provider.scale(pool, 5, "r-1")
    assert provider.describe(pool).desired == 5
    assert provider.calls == [("p", "r-1", 5), ("p", "r-1", 5)]


def test_a_pool_without_a_given_cluster_gets_a_fleet_of_its_own():
    pool = parse_config(POOL, env={}).pools[0]
    clock = FakeClock(0.0)
    provider = SimulatedProvider(clock)
    provider.preset(pool, 2)
    provider.scale(pool, 4, "r-1")
    members = provider.describe(pool).members
    assert [(m.id, m.ready) for m in members] == [
        ("p-0", True), ("p-1", True), ("p-2", False), ("p-3", False)
    ]
    provider.scale(pool, 1, "r-2")  # starting ones go first, then the newest idle one
    assert [m.id for m in provider.describe(pool).members] == ["p-0"]
