"""The real `autoscaler run -c CONFIG --once` process against the moto server over HTTP,
with faults injected in front of it: launch, fallback, throttling, a crash, dry-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .faults import Fault, FaultyMotoServer
from .helpers import (
    BUSY_TAG,
    INSTALLATION,
    OWNER_TAG,
    POOL_TAG,
    PREFIX,
    REQUEST_TAG,
    World,
    client,
    ec2_target,
    group,
    launch_foreign,
    make_group,
    owned,
    pool_dict,
    state_of,
    tags,
)

pytestmark = pytest.mark.aws

MUTATING = {
    "CreateFleet",
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
    "CreateTags",
    "SetDesiredCapacity",
    "TerminateInstanceInAutoScalingGroup",
}
FAST_RETRY = {"max_attempts": 2, "backoff": 0.1, "backoff_rounds": 1}


def autoscaler() -> list[str]:
    """The installed console script next to this interpreter (.venv/bin/autoscaler)."""
    script = Path(sys.executable).with_name("autoscaler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "autoscaler.cli"]


def write_config(path: Path, *pools: dict[str, Any]) -> Path:
    document = {
        "installation": {"id": INSTALLATION, "tag_prefix": PREFIX},
        "controller": {"interval": "15s"},
        "pools": list(pools),
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def env_for(server: FaultyMotoServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=server.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def run(server: FaultyMotoServer, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """`autoscaler run -c CONFIG --once --json`: exit status, the tick as JSON, stderr."""
    done = subprocess.run(
        [*autoscaler(), "run", "-c", str(config), "--once", "--json", *extra],
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        tick = json.loads(done.stdout) if done.stdout.strip() else {}
    except ValueError:
        pytest.fail(f"not JSON on stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done.returncode, tick, done.stderr


def action_of(tick: dict[str, Any], pool: str) -> dict[str, Any]:
    return next(a for a in tick["actions"] if a["pool"] == pool)


def test_run_once_launches_tagged_instances_for_the_signal(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    target = ec2_target(server_world, retry=FAST_RETRY)
    config = write_config(tmp_path / "c.yaml", pool_dict("gpu", target, queue=3))
    status, tick, stderr = run(server, config)
    assert status == 0, stderr
    assert action_of(tick, "gpu")["applied"] is True
    found = owned("gpu")
    assert len(found) == 3
    request_id = action_of(tick, "gpu")["request_id"]
    assert {tags(i)[REQUEST_TAG] for i in found} == {request_id}


def test_run_once_dry_run_changes_nothing(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    make_group("gpu-asg", server_world, max=5, desired=1)
    config = write_config(
        tmp_path / "c.yaml",
        pool_dict("gpu", ec2_target(server_world, retry=FAST_RETRY), queue=4),
        pool_dict("workers", {"kind": "asg", "name": "gpu-asg"}, queue=3),
    )
    server.injector.calls.clear()
    status, tick, stderr = run(server, config, "--dry-run")
    assert status == 0, stderr
    assert {a["pool"]: (a["desired"], a["applied"]) for a in tick["actions"]} == {
        "gpu": (4, False),
        "workers": (3, False),
    }
    assert owned("gpu") == [] and group("gpu-asg")["DesiredCapacity"] == 1
    assert {c.action for c in server.injector.calls} & MUTATING == set()
    assert {c.action for c in server.injector.calls} >= {"DescribeInstances"}


def test_ice_on_the_first_offering_lands_capacity_on_the_next_in_the_same_tick(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    server.injector.add(Fault("CreateFleet", instance_type="g6.xlarge"))
    target = ec2_target(server_world, retry=FAST_RETRY)
    config = write_config(tmp_path / "c.yaml", pool_dict("gpu", target, queue=2))
    status, tick, stderr = run(server, config)
    assert status == 0, stderr
    assert sorted(i["InstanceType"] for i in owned("gpu")) == ["g5.xlarge", "g5.xlarge"]
    assert "g6.xlarge" in stderr and "InsufficientInstanceCapacity" in stderr


def test_no_capacity_anywhere_fails_the_action_with_the_aws_code(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    server.injector.add(Fault("CreateFleet"))
    target = ec2_target(server_world, retry=FAST_RETRY)
    config = write_config(tmp_path / "c.yaml", pool_dict("gpu", target, queue=2))
    status, tick, _ = run(server, config)
    assert status == 1
    action = action_of(tick, "gpu")
    assert action["error_code"] == "InsufficientInstanceCapacity"
    assert "pool gpu: launched 0 of 2" in action["error"]


def test_throttling_slows_one_pool_but_does_not_stop_the_other(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    server.injector.add(Fault("CreateFleet", code="RequestLimitExceeded", contains="alpha"))
    config = write_config(
        tmp_path / "c.yaml",
        pool_dict("alpha", ec2_target(server_world, retry=FAST_RETRY), queue=2),
        pool_dict("beta", ec2_target(server_world, retry=FAST_RETRY), queue=3),
    )
    started = time.monotonic()
    status, tick, _ = run(server, config)
    assert time.monotonic() - started < 60
    assert status == 1  # one action failed
    alpha, beta = action_of(tick, "alpha"), action_of(tick, "beta")
    assert (alpha["applied"], alpha["error_code"]) == (False, "RequestLimitExceeded")
    assert beta["applied"] is True
    assert (len(owned("alpha")), len(owned("beta"))) == (0, 3)
    # botocore's attempts (2) in each of our rounds (1 + 1): all went over HTTP.
    alpha_calls = [
        c for c in server.injector.calls_to("CreateFleet") if "alpha" in c.params.values()
    ]
    assert len(alpha_calls) == 4


def test_no_double_launch_when_the_process_dies_between_the_call_and_its_answer(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    lost = server.injector.add(Fault("CreateFleet", lose_answer=True, times=1))
    target = ec2_target(server_world, retry=FAST_RETRY)
    config = write_config(tmp_path / "c.yaml", pool_dict("gpu", target, queue=3))
    state = tmp_path / "state.json"
    command = [*autoscaler(), "run", "-c", str(config), "--once", "--state", str(state)]
    process = subprocess.Popen(
        command, env=env_for(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while len(owned("gpu")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(owned("gpu")) == 3  # AWS launched; the answer never arrived
    finally:
        process.kill()  # the crash
        process.wait(timeout=30)
        lost.release()
    assert not state.exists()  # it died mid-tick: the retry repeats the same request id
    status, tick, stderr = run(server, config, "--state", str(state))
    assert status == 0, stderr
    assert len(owned("gpu")) == 3
    assert [a for a in tick["actions"] if a["pool"] == "gpu"] == []  # nothing left to do
    assert len(server.injector.calls_to("CreateFleet")) == 1


def test_sqs_backlog_drives_the_pool_through_the_cli(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="gpu-jobs")["QueueUrl"]
    for n in range(7):
        sqs.send_message(QueueUrl=url, MessageBody=f"job-{n}")
    pool = pool_dict("gpu", ec2_target(server_world, retry=FAST_RETRY))
    pool["signals"] = {"queue": {"source": {"type": "sqs", "queue_url": url}}}
    pool["policy"] = {"type": "queue-depth", "target_per_replica": 2}
    status, tick, stderr = run(server, write_config(tmp_path / "c.yaml", pool))
    assert status == 0, stderr
    assert action_of(tick, "gpu")["desired"] == 4
    assert len(owned("gpu")) == 4


def test_scale_in_through_the_cli_never_touches_foreign_instances(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    foreign = launch_foreign(server_world, {}) + launch_foreign(
        server_world, {OWNER_TAG: "someone-else", POOL_TAG: "gpu"}
    )
    ours = launch_foreign(server_world, {OWNER_TAG: INSTALLATION, POOL_TAG: "gpu"}, count=2)
    target = ec2_target(server_world, retry=FAST_RETRY)
    config = write_config(tmp_path / "c.yaml", pool_dict("gpu", target, queue=0))
    status, tick, stderr = run(server, config)
    assert status == 0, stderr
    assert action_of(tick, "gpu")["desired"] == 0
    assert set(state_of(ours).values()) == {"terminated"}
    assert set(state_of(foreign).values()) == {"running"}


def test_an_auto_scaling_group_is_clamped_to_its_own_bounds_through_the_cli(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    make_group("gpu-asg", server_world, max=3)
    pool = pool_dict("workers", {"kind": "asg", "name": "gpu-asg", "retry": FAST_RETRY}, queue=8)
    status, tick, stderr = run(server, write_config(tmp_path / "c.yaml", pool))
    assert status == 0, stderr
    assert action_of(tick, "workers")["desired"] == 8
    assert group("gpu-asg")["DesiredCapacity"] == 3
    assert "desired 8 clamped to 3" in stderr


def test_packing_through_the_cli_removes_the_idle_instance_and_keeps_those_running_jobs(
    server: FaultyMotoServer, server_world: World, tmp_path: Path
) -> None:
    # three owned 8-GPU workers; two tag themselves busy, one idle. The job dispatcher's
    # gauges (static here) say two instances run jobs and nothing waits.
    ids = launch_foreign(server_world, {OWNER_TAG: INSTALLATION, POOL_TAG: "gpu"}, count=3)
    client("ec2").create_tags(Resources=[ids[0], ids[2]], Tags=[{"Key": BUSY_TAG, "Value": "true"}])
    client("ec2").create_tags(Resources=[ids[1]], Tags=[{"Key": BUSY_TAG, "Value": "false"}])
    pool = pool_dict("gpu", ec2_target(server_world, retry=FAST_RETRY))
    pool["signals"] = {
        "busy_replicas": {"source": {"type": "static", "value": 2}},
        "pending_gpus": {"source": {"type": "static", "value": 0}},
    }
    pool["policy"] = {"type": "packing", "units_per_replica": 8}
    status, tick, stderr = run(server, write_config(tmp_path / "c.yaml", pool))
    assert status == 0, stderr
    assert action_of(tick, "gpu")["desired"] == 2
    assert state_of(ids) == {ids[0]: "running", ids[1]: "terminated", ids[2]: "running"}

    # nine GPUs' worth of jobs arrive: two busy instances + ceil(9 / 8) new ones
    pool["signals"]["pending_gpus"] = {"source": {"type": "static", "value": 9}}
    status, tick, stderr = run(server, write_config(tmp_path / "c.yaml", pool))
    assert status == 0, stderr
    assert action_of(tick, "gpu")["desired"] == 4
    assert len(owned("gpu")) == 4 and {ids[0], ids[2]} <= {i["InstanceId"] for i in owned("gpu")}
