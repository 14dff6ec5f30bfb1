"""Kill -9 cycles of `autoscaler run` on an `ec2` pool against moto server, EC2 and SQS
answers delayed 0.4 s so kills land mid-call: no double launch, no orphan, convergence.

The desired count (an SQS backlog) changes between cycles; each process gets SIGKILL a
random fraction of a tick to three ticks after its first call. The audit reads moto's
instances and the ledger of every call that launched or removed one (tests/chaos/delays.py);
`python bench/chaos.py` runs the same with more cycles.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws.helpers import INSTALLATION, OWNER_TAG, POOL_TAG, REGION, REQUEST_TAG
from tests.cluster.wait import wait_for

from .delays import ChaosMotoServer
from .driver import run_chaos, spawn
from .scenarios import POOL, Ec2Chaos

pytestmark = pytest.mark.aws

CYCLES = 8


def test_kill9_cycles_of_an_ec2_pool_never_double_launch_nor_orphan_and_converge(
    chaos_moto: ChaosMotoServer, tmp_path: Path
) -> None:
    result = run_chaos(Ec2Chaos(chaos_moto, tmp_path), CYCLES, seed=19)
    assert result.ok, result.report()
    assert result.doubles == 0 and result.over_removals == 0 and result.orphans == 0
    # The kills hit work: some land while a call is under way, some after a launch.
    assert result.kills_mid_call >= 1 and result.killed_having_acted >= 1, result.report()
    assert result.launches > 0


def test_the_audit_counts_a_double_launch_a_removal_too_many_and_an_orphan(
    chaos_moto: ChaosMotoServer, tmp_path: Path
) -> None:
    """Not vacuous: calls made with a process's key, as a broken controller would make
    them, show up in the figures."""
    scenario = Ec2Chaos(chaos_moto, tmp_path, delay=0.0)
    scenario.setup()
    assert scenario.world is not None
    proc = spawn("p000", [sys.executable, "-c", "pass"], dict(os.environ), tmp_path / "p.log")
    proc.popen.wait(timeout=30)
    proc.desired = 2
    scenario.procs.append(proc)
    ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=chaos_moto.url,
        aws_access_key_id=scenario.key(proc.name),
        aws_secret_access_key="testing",
    )

    def launch(tags: dict[str, str], count: int) -> list[str]:
        spec: dict[str, Any] = {
            "ImageId": scenario.world.image, "MinCount": count, "MaxCount": count,
            "InstanceType": "g6.xlarge", "SubnetId": scenario.world.subnet_a,
        }  # fmt: skip
        if tags:
            spec["TagSpecifications"] = [{
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }]  # fmt: skip
        return [i["InstanceId"] for i in ec2.run_instances(**spec)["Instances"]]

    ours = {OWNER_TAG: INSTALLATION, POOL_TAG: POOL, REQUEST_TAG: "r-1"}
    launched = launch(ours, 2) + launch(ours, 2)  # one request launched twice: 4, wanted 2
    launch({}, 1)  # untagged: nobody will ever count it
    audit = scenario.audit(2)
    assert (audit.launches, audit.doubles, audit.orphans) == (5, 2, 1), audit.problems
    ec2.terminate_instances(InstanceIds=launched[:3])  # 4 -> 1, wanted 2
    audit = scenario.audit(2)
    assert audit.over_removals == 1, audit.problems
    assert any("double launch: RunInstances by p000 (wants 2)" in p for p in audit.problems)


def test_with_ec2_client_tokens_a_killed_launch_retried_for_another_count_converges(
    chaos_moto: ChaosMotoServer, tmp_path: Path
) -> None:
    """moto honouring ClientToken as EC2 does. A process killed after its CreateFleet
    landed but before its state was saved leaves its request id, and so its token, to the
    next one; that one needs another count, and EC2 refuses the token with other
    parameters. The controller then starts a new request (planner.after_superseded), found
    by this test as a strict xfail before it did."""
    scenario = Ec2Chaos(chaos_moto, tmp_path, delay=1.0, client_tokens=True)
    scenario.setup()
    try:
        scenario.set_desired(3)
        first = scenario.start(0)
        first.desired = 3
        wait_for(
            lambda: scenario.changing(first) or not first.alive(),
            timeout=60,
            what="the first process's launch",
            describe=first.tail,
        )
        time.sleep(0.75)  # moto launched at +0.5 s; the answer is held until +1 s
        first.kill9()
        assert len(scenario.active()) == 3
        scenario.set_desired(5)
        second = scenario.start(1)
        second.desired = 5
        try:
            wait_for(
                lambda: len(scenario.active()) == 5,
                timeout=20,
                what="the pool to grow from 3 to 5",
                describe=second.tail,
            )
        finally:
            second.terminate()
    finally:
        scenario.teardown()
    audit = scenario.audit(5)
    assert audit.doubles == 0 and audit.orphans == 0, audit.problems
