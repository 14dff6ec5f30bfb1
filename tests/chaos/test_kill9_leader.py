"""Leader handover under kill -9: two `autoscaler run` replicas elect a leader on a real
Lease (2 s) and scale an `ec2` pool on moto server (answers delayed 0.4 s). Each cycle
kills the leader a random moment after it starts acting, changes the desired count and
starts a new standby; the other replica must take over, and no replica may act twice:
nothing launched past what the acting leader wanted, nothing done by a standby, no orphan,
convergence. `python bench/chaos.py` runs more cycles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.session import KubeCluster

from .delays import ChaosMotoServer
from .driver import run_chaos
from .scenarios import LeaderChaos

pytestmark = [pytest.mark.kube, pytest.mark.aws]

CYCLES = 8


def test_kill9_of_the_leader_hands_over_without_a_double_action(
    chaos_moto: ChaosMotoServer,
    kube_cluster: KubeCluster,
    kube_api: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    scenario = LeaderChaos(
        chaos_moto,
        tmp_path,
        kube_api=kube_api,
        kubeconfig=kube_cluster.kubeconfig,
        namespace=kube_namespace,
    )
    result = run_chaos(scenario, CYCLES, seed=19)
    assert result.ok, result.report()
    assert result.doubles == 0 and result.over_removals == 0 and result.orphans == 0
    assert len(scenario.takeovers) == CYCLES
    # A new leader waits out the dead one's lease (2 s) and not much longer.
    assert max(scenario.takeovers) < scenario.lease_duration + 10, scenario.takeovers
    assert result.killed_having_acted >= 1, result.report()
