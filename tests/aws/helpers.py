"""Builders shared by the AWS and contract tests: a small EC2 world in moto, pools, configs.

Test-only. Everything here works the same against in-process moto (`mock_aws`) and against
the moto server (`AWS_ENDPOINT_URL`), because boto3 clients are created after the
environment is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from autoscaler.config import Config, Pool

REGION = "us-east-1"
INSTALLATION = "test-install"
PREFIX = "elastic-autoscaler.io"
OWNER_TAG = f"{PREFIX}/owner"
POOL_TAG = f"{PREFIX}/pool"
REQUEST_TAG = f"{PREFIX}/request-id"
BUSY_TAG = f"{PREFIX}/busy"
TEMPLATE = "gpu-worker"
MOTO_AMI = "ami-12c6146b"


def use_dummy_credentials(monkeypatch: Any, config_file: str) -> None:
    """Dummy credentials and a region; no real account or local AWS profile can leak in."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", config_file)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", config_file)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@dataclass(frozen=True)
class World:
    """A VPC with two subnets in two zones, an image and a launch template."""

    image: str
    subnet_a: str
    subnet_b: str
    template: str = TEMPLATE


def make_world() -> World:
    ec2 = client("ec2")
    # One of moto's built-in AMIs, by id: listing them all costs a second per test.
    image = ec2.describe_images(ImageIds=[MOTO_AMI])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")
    ec2.create_launch_template(
        LaunchTemplateName=TEMPLATE,
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
    )
    return World(image, subnet_a["Subnet"]["SubnetId"], subnet_b["Subnet"]["SubnetId"])


def pool_dict(name: str, target: dict[str, Any], *, queue: float = 0.0, max: int = 10) -> dict:
    """A pool scaled by queue-depth (one replica per queued item) on a static signal."""
    return {
        "name": name,
        "target": target,
        "min": 0,
        "max": max,
        "signals": {"queue": {"source": {"type": "static", "value": queue}}},
        "policy": {"type": "queue-depth", "target_per_replica": 1},
        "behavior": {"scale_down": {"stabilization_window": 0}, "scale_to_zero_after": 0},
    }


def config(*pools: dict[str, Any], installation: str = INSTALLATION) -> Config:
    return Config.model_validate(
        {"installation": {"id": installation, "tag_prefix": PREFIX}, "pools": list(pools)}
    )


def ec2_target(world: World, **overrides: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "kind": "ec2",
        "region": REGION,
        "launch_template": world.template,
        "instance_types": ["g6.xlarge", "g5.xlarge"],
        "subnets": [world.subnet_a, world.subnet_b],
        "retry": {"max_attempts": 1, "backoff": 1, "backoff_rounds": 2},
    }
    target.update(overrides)
    return target


def ec2_pool(name: str, world: World, *, max: int = 10, **target: Any) -> Pool:
    return config(pool_dict(name, ec2_target(world, **target), max=max)).pools[0]


def launch_foreign(world: World, tags: dict[str, str], count: int = 1) -> list[str]:
    """Instances the autoscaler must never touch (or, with our tags, must count)."""
    spec: dict[str, Any] = {
        "ImageId": world.image,
        "MinCount": count,
        "MaxCount": count,
        "InstanceType": "g6.xlarge",
        "SubnetId": world.subnet_a,
    }
    if tags:
        spec["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    return [i["InstanceId"] for i in client("ec2").run_instances(**spec)["Instances"]]


def instances(**filters: str) -> list[dict[str, Any]]:
    """Every instance, optionally filtered by tag (tag key -> value), any state."""
    flt = [{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()]
    pages = client("ec2").describe_instances(Filters=flt)["Reservations"]
    return [i for r in pages for i in r["Instances"]]


def state_of(instance_ids: list[str]) -> dict[str, str]:
    found = client("ec2").describe_instances(InstanceIds=instance_ids)["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def owned(pool: str, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
    """The pool's owned instances in `states`."""
    found = instances(**{OWNER_TAG: INSTALLATION, POOL_TAG: pool})
    return [i for i in found if i["State"]["Name"] in states]


def make_group(
    name: str,
    world: World,
    *,
    min: int = 0,
    max: int = 5,
    desired: int = 0,
    owner: str | None = INSTALLATION,
) -> None:
    """An Auto Scaling group on the world's launch template, tagged as ours by default."""
    group_tags = []
    if owner is not None:
        group_tags.append(
            {
                "Key": OWNER_TAG,
                "Value": owner,
                "PropagateAtLaunch": False,
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
            }
        )
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": world.template, "Version": "$Default"},
        MinSize=min,
        MaxSize=max,
        DesiredCapacity=desired,
        VPCZoneIdentifier=f"{world.subnet_a},{world.subnet_b}",
        Tags=group_tags,
    )


def group(name: str) -> dict[str, Any]:
    found = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return dict(found["AutoScalingGroups"][0])


def to_json(value: Any) -> str:
    return json.dumps(value, default=str)
