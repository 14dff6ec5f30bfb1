"""The `asg` provider: an existing EC2 Auto Scaling group, scaled through its desired count.

`scale` sets DesiredCapacity clamped into the group's own MinSize..MaxSize (and says so in
the log when it clamps: the group's bounds win over the pool's); the group then chooses
which instances to launch or terminate by its own policies. `remove` terminates chosen
instances with TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=True),
so the group does not replace them. `describe` reports the group's DesiredCapacity, its
InService instances as ready and its Pending ones as pending.

This provider must never change a group that is not tagged as this installation's
(`<prefix>/owner` = installation id) unless the target opts out with
`require_owner_tag: false`, and never take a group below its MinSize by `remove`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from autoscaler.clients.aws import (
    tags_of,
    translated,
)
from autoscaler.config import Pool
from autoscaler.config.targets import AsgTarget, AwsRetry
from autoscaler.errors import NotFound, ProviderError
from autoscaler.types import Capacity, Member

from .aws_base import AwsProvider
from .base import target_of

log = logging.getLogger("autoscaler.aws.asg")
T = TypeVar("T")

READY_STATES = frozenset({"InService"})
PENDING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})
"""Lifecycle states that count as pending capacity (warm-pool states do not)."""


class AsgProvider(AwsProvider):
    """Auto Scaling groups of every `asg` pool; one instance of this class serves them all."""

    # -- the provider protocol -----------------------------------------------------------
    def describe(self, pool: Pool) -> Capacity:
        with translated(f"pool {pool.name}: DescribeAutoScalingGroups"):
            group = self._group(pool)
        members = tuple(
            Member(str(i["InstanceId"]), i.get("LifecycleState") in READY_STATES)
            for i in group.get("Instances") or ()
            if i.get("LifecycleState") in READY_STATES | PENDING_STATES
        )
        ready = sum(1 for m in members if m.ready)
        return Capacity(int(group["DesiredCapacity"]), ready, len(members) - ready, members)

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        with self._locks.hold(pool.name), translated(f"pool {pool.name}"):
            if self._applied.get(pool.name, request_id) == desired:
                return
            group = self._group(pool)
            self._check_owned(pool, group)
            target = _clamp(pool, group, desired)
            if int(group["DesiredCapacity"]) != target:
                client = self._autoscaling(pool)
                self._call(
                    pool,
                    "SetDesiredCapacity",
                    lambda: client.set_desired_capacity(
                        AutoScalingGroupName=_target(pool).name,
                        DesiredCapacity=target,
                        HonorCooldown=False,
                    ),
                )
                log.info(
                    "%s: %s desired capacity %s -> %d (request %s)",
                    pool.name,
                    _target(pool).name,
                    group["DesiredCapacity"],
                    target,
                    request_id,
                )
            self._applied.put(pool.name, request_id, desired)

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        with self._locks.hold(pool.name), translated(f"pool {pool.name}"):
            if self._applied.get(pool.name, request_id) == tuple(members):
                return
            group = self._group(pool)
            self._check_owned(pool, group)
            live = self._live_members(pool, group, members)
            floor = int(group["MinSize"])
            if int(group["DesiredCapacity"]) - len(live) < floor:
                raise ProviderError(
                    f"pool {pool.name}: removing {len(live)} instance(s) would take Auto "
                    f"Scaling group {_target(pool).name} below its MinSize {floor}; lower the "
                    "group's MinSize or remove fewer",
                    "BelowMinSize",
                )
            client = self._autoscaling(pool)
            for instance_id in live:
                self._call(
                    pool,
                    "TerminateInstanceInAutoScalingGroup",
                    _bind(
                        client.terminate_instance_in_auto_scaling_group,
                        InstanceId=instance_id,
                        ShouldDecrementDesiredCapacity=True,
                    ),
                )
            log.info(
                "%s: terminated %s in %s (desired decremented)",
                pool.name,
                ", ".join(live) or "nothing",
                _target(pool).name,
            )
            self._applied.put(pool.name, request_id, tuple(members))

    # -- helpers -------------------------------------------------------------------------
    def _autoscaling(self, pool: Pool) -> Any:
        target = _target(pool)
        return self._clients.get("autoscaling", target.region, target.retry.max_attempts)

    def _retry(self, pool: Pool) -> AwsRetry:
        return _target(pool).retry

    def _group(self, pool: Pool) -> Mapping[str, Any]:
        client = self._autoscaling(pool)
        name = _target(pool).name
        answer = self._call(
            pool,
            "DescribeAutoScalingGroups",
            lambda: client.describe_auto_scaling_groups(AutoScalingGroupNames=[name]),
        )
        groups = answer.get("AutoScalingGroups") or []
        if not groups:
            where = _target(pool).region or "the default region"
            raise NotFound(
                f"pool {pool.name}: Auto Scaling group {name!r} not found in {where}; check "
                "target.name and target.region"
            )
        return dict(groups[0])

    def _check_owned(self, pool: Pool, group: Mapping[str, Any]) -> None:
        if not _target(pool).require_owner_tag or self.ownership.owns(tags_of(group)):
            return
        raise ProviderError(
            f"pool {pool.name}: Auto Scaling group {_target(pool).name} is not tagged "
            f"{self.ownership.owner_key}={self.ownership.owner}, so this installation leaves "
            "it alone; tag the group (the IAM policy in deploy/aws expects the tag too) or "
            "set `require_owner_tag: false` in the target",
            "NotOwned",
        )

    def _live_members(
        self, pool: Pool, group: Mapping[str, Any], members: Sequence[str]
    ) -> list[str]:
        """The members still to remove; NotFound if any is not in the group at all."""
        states = {
            str(i["InstanceId"]): str(i.get("LifecycleState", ""))
            for i in group.get("Instances") or ()
        }
        unknown = [m for m in members if m not in states]
        if unknown:
            raise NotFound(
                f"pool {pool.name}: {', '.join(unknown)} not in Auto Scaling group "
                f"{_target(pool).name}; nothing was removed"
            )
        # Already terminating (an earlier attempt of this request): nothing left to do.
        return [m for m in members if not states[m].startswith("Terminat")]


def _clamp(pool: Pool, group: Mapping[str, Any], desired: int) -> int:
    """`desired` within the group's MinSize..MaxSize; logs when the group's bounds bite."""
    low, high = int(group["MinSize"]), int(group["MaxSize"])
    target = min(max(desired, low), high)
    if target != desired:
        log.warning(
            "%s: desired %d clamped to %d: Auto Scaling group %s allows [%d, %d]; widen the "
            "group's MinSize/MaxSize to match the pool's bounds [%d, %d]",
            pool.name,
            desired,
            target,
            _target(pool).name,
            low,
            high,
            pool.min,
            pool.max,
        )
    return target


def _bind(call: Callable[..., T], **kwargs: Any) -> Callable[[], T]:
    return lambda: call(**kwargs)


def _target(pool: Pool) -> AsgTarget:
    return target_of(pool, AsgTarget)
