"""Launch requests for EC2: CreateFleet (type instant) and RunInstances, built and read.

CreateFleet is preferred because one call offers EC2 many offerings in priority order and
answers per offering: the instances it launched and, for the others, the error code (an
InsufficientInstanceCapacity there is not an exception but an entry in `Errors`).
RunInstances tries one offering per call; `MinCount=1` lets it launch fewer than asked when
capacity is short instead of nothing.

Pure: builds request parameters and reads responses; it must never call AWS itself (the
provider makes the calls, with its throttling backoff) and never drop the ownership tags
from a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.config.targets import Ec2Target

from .aws_offerings import Offering

FLEET_MAX_OVERRIDES = 50
"""Offerings per CreateFleet call; more are tried in the next call of the same action."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One offering EC2 refused, with its error code and message."""

    offering: Offering
    code: str
    message: str


@dataclass
class LaunchOutcome:
    """What one launch call did: instances started, and offerings that failed."""

    instance_ids: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _template_spec(target: Ec2Target) -> dict[str, str]:
    """Called only for targets with a launch template (the config checks one of a launch
    template and an inline image is set)."""
    name = target.launch_template
    assert name is not None
    key = "LaunchTemplateId" if name.startswith("lt-") else "LaunchTemplateName"
    return {key: name, "Version": target.launch_template_version}


def _instance_tags(tags: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    return [{"ResourceType": "instance", "Tags": [dict(t) for t in tags]}]


def fleet_request(
    target: Ec2Target,
    batch: Sequence[Offering],
    count: int,
    tags: Sequence[Mapping[str, str]],
    token: str,
) -> dict[str, Any]:
    """CreateFleet parameters: `count` instances from `batch` (one market), by priority."""
    market = batch[0].market
    if any(o.market != market for o in batch):
        raise ValueError("one CreateFleet call launches in one market")
    overrides = []
    for priority, offering in enumerate(batch):
        override: dict[str, Any] = {
            "InstanceType": offering.instance_type,
            "Priority": float(priority),
        }
        if offering.subnet:
            override["SubnetId"] = offering.subnet
        if target.image_id:
            override["ImageId"] = target.image_id
        if market == "spot" and target.spot_max_price is not None:
            override["MaxPrice"] = f"{target.spot_max_price:g}"
        overrides.append(override)
    params: dict[str, Any] = {
        "Type": "instant",
        "ClientToken": token,
        "LaunchTemplateConfigs": [
            {"LaunchTemplateSpecification": _template_spec(target), "Overrides": overrides}
        ],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": count,
            "DefaultTargetCapacityType": market,
        },
        "TagSpecifications": _instance_tags(tags),
    }
    if market == "spot":
        # Honours our Priority while still steering toward pools less likely interrupted.
        params["SpotOptions"] = {
            "AllocationStrategy": "capacity-optimized-prioritized",
            "InstanceInterruptionBehavior": "terminate",
        }
    else:
        params["OnDemandOptions"] = {"AllocationStrategy": "prioritized"}
    return params


def _offering_of(entry: Mapping[str, Any], batch: Sequence[Offering]) -> Offering | None:
    overrides = (entry.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
    kind = overrides.get("InstanceType") or entry.get("InstanceType")
    subnet = overrides.get("SubnetId") or entry.get("SubnetId")
    for offering in batch:
        if offering.instance_type == kind and (offering.subnet or None) == (subnet or None):
            return offering
    for offering in batch:  # an answer without a subnet: the first of that type
        if offering.instance_type == kind and not subnet:
            return offering
    return None


def fleet_outcome(response: Mapping[str, Any], batch: Sequence[Offering]) -> LaunchOutcome:
    """Instances launched and per-offering failures from a CreateFleet (instant) answer.

    An error EC2 could not pin to an offering is charged to every offering of the batch,
    so the caller never asks the same batch again within one action.
    """
    outcome = LaunchOutcome()
    for entry in response.get("Instances") or ():
        outcome.instance_ids.extend(entry.get("InstanceIds") or ())
    seen: set[Offering] = set()
    for entry in response.get("Errors") or ():
        code = str(entry.get("ErrorCode") or "UnknownError")
        message = str(entry.get("ErrorMessage") or "")
        offering = _offering_of(entry, batch)
        for failed in [offering] if offering is not None else list(batch):
            if failed not in seen:
                seen.add(failed)
                outcome.failures.append(Failure(failed, code, message))
    return outcome


def run_instances_request(
    target: Ec2Target,
    offering: Offering,
    count: int,
    tags: Sequence[Mapping[str, str]],
    token: str,
) -> dict[str, Any]:
    """RunInstances parameters: up to `count` instances of one offering (at least one)."""
    params: dict[str, Any] = {
        "MinCount": 1,
        "MaxCount": count,
        "InstanceType": offering.instance_type,
        "ClientToken": token,
        "TagSpecifications": _instance_tags(tags),
    }
    if target.launch_template:
        params["LaunchTemplate"] = _template_spec(target)
    if target.image_id:
        params["ImageId"] = target.image_id
    if offering.subnet:
        params["SubnetId"] = offering.subnet
    if target.security_groups:
        params["SecurityGroupIds"] = list(target.security_groups)
    if target.instance_profile:
        profile = target.instance_profile
        params["IamInstanceProfile"] = {"Arn" if profile.startswith("arn:") else "Name": profile}
    if target.key_name:
        params["KeyName"] = target.key_name
    if target.user_data:
        params["UserData"] = target.user_data  # botocore base64-encodes it for RunInstances
    if offering.market == "spot":
        spot: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if target.spot_max_price is not None:
            spot["MaxPrice"] = f"{target.spot_max_price:g}"
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
    return params


def run_instances_outcome(response: Mapping[str, Any]) -> LaunchOutcome:
    return LaunchOutcome([str(i["InstanceId"]) for i in response.get("Instances") or ()])


# -- gangs: all or nothing, one zone ------------------------------------------------------
def gang_fleet_request(
    target: Ec2Target,
    offering: Offering,
    count: int,
    tags: Sequence[Mapping[str, str]],
    token: str,
    placement_group: str | None = None,
) -> dict[str, Any]:
    """CreateFleet (instant) for a gang: `count` instances of one offering or none.

    `MinTargetCapacity` = `count` with `SingleAvailabilityZone` asks EC2 for all of them in
    one zone or nothing; the caller still counts what came back and terminates a partial
    answer (an emulator, or EC2 itself for spot, may not honour the minimum).
    """
    params = fleet_request(target, [offering], count, tags, token)
    if placement_group:
        for override in params["LaunchTemplateConfigs"][0]["Overrides"]:
            override["Placement"] = {"GroupName": placement_group}
    options = "SpotOptions" if offering.market == "spot" else "OnDemandOptions"
    params[options] = {
        **params[options],
        "SingleInstanceType": True,
        "SingleAvailabilityZone": True,
        "MinTargetCapacity": count,
    }
    return params


def gang_run_instances_request(
    target: Ec2Target,
    offering: Offering,
    count: int,
    tags: Sequence[Mapping[str, str]],
    token: str,
    placement_group: str | None = None,
) -> dict[str, Any]:
    """RunInstances for a gang: `MinCount` = `MaxCount` = `count`, so all or nothing."""
    params = run_instances_request(target, offering, count, tags, token)
    params["MinCount"] = count
    if placement_group:
        params["Placement"] = {"GroupName": placement_group}
    return params
