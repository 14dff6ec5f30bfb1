"""The `ec2` provider: a pool of EC2 instances the autoscaler launches and retires itself.

Every instance is tagged at launch with `<prefix>/owner` (the installation id), `<prefix>/
pool` and `<prefix>/request-id` (the action that launched it). `describe` counts only
owned, pending or running instances of the pool. Scale-out first starts the pool's stopped
instances (the warm pool), then launches through CreateFleet (or RunInstances), offering
after offering until the count is met; offerings that ran out of capacity are skipped for
`unavailable_for` seconds. Scale-in picks members in the order of `aws_instances` and
terminates them, or stops them to keep a warm pool.

This provider must never stop or terminate an instance it does not own: every destructive
call is made on instances found by the ownership tag filter, and their tags are checked
again just before the call (the IAM policy in deploy/aws enforces the same at AWS). It
must never launch twice for one request id: instances already tagged with the request id
count toward the target, and every launch call carries a ClientToken.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from autoscaler.clients.aws import (
    CAPACITY_CODES,
    AwsClients,
    Ownership,
    aws_error,
    client_token,
    error_code,
    error_message,
    translated,
)
from autoscaler.clock import Clock
from autoscaler.config import Pool
from autoscaler.config.targets import AwsRetry, Ec2Target
from autoscaler.errors import CapacityUnavailable, NotFound, ProviderError
from autoscaler.types import Capacity

from .aws_base import AwsProvider
from .aws_instances import ACTIVE_STATES, WARM_STATES, Instance, Inventory, scale_in_order
from .aws_launch import (
    FLEET_MAX_OVERRIDES,
    Failure,
    LaunchOutcome,
    fleet_outcome,
    fleet_request,
    gang_fleet_request,
    gang_run_instances_request,
    run_instances_outcome,
    run_instances_request,
)
from .aws_offerings import Offering, UnavailableOfferings, markets, offerings
from .base import target_of

log = logging.getLogger("autoscaler.aws.ec2")
T = TypeVar("T")


class Ec2Provider(AwsProvider):
    """EC2 instances of every `ec2` pool; one instance of this class serves them all."""

    def __init__(self, ownership: Ownership, clock: Clock, clients: AwsClients | None = None):
        super().__init__(ownership, clock, clients)
        self.unavailable = UnavailableOfferings(clock)

    # -- the provider protocol -----------------------------------------------------------
    def describe(self, pool: Pool) -> Capacity:
        with translated(f"pool {pool.name}: DescribeInstances"):
            active = self._inventory(pool).active
        members = tuple(i.member() for i in active)
        ready = sum(1 for m in members if m.ready)
        return Capacity(len(members), ready, len(members) - ready, members)

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        with self._locks.hold(pool.name), translated(f"pool {pool.name}"):
            if self._applied.get(pool.name, request_id) == desired:
                return
            inventory = self._inventory(pool)
            have = len(inventory.active)
            if desired > have:
                self._scale_out(pool, desired - have, inventory, request_id)
            elif desired < have:
                victims = scale_in_order(inventory.active)[: have - desired]
                self._retire(pool, victims, inventory)
            self._applied.put(pool.name, request_id, desired)

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        with self._locks.hold(pool.name), translated(f"pool {pool.name}"):
            if not members or self._applied.get(pool.name, request_id) == tuple(members):
                return
            found = {i.id: i for i in self._instances(pool, members=members)}
            unknown = [m for m in members if m not in found]
            if unknown:
                raise NotFound(
                    f"pool {pool.name}: {', '.join(unknown)} not instances of this pool "
                    f"(tagged {self.ownership.owner_key}={self.ownership.owner}, "
                    f"{self.ownership.pool_key}={pool.name}); nothing was removed"
                )
            live = [found[m] for m in members if found[m].state in ACTIVE_STATES]
            if len(live) < len(members):
                log.info(
                    "%s: %d member(s) already on their way out", pool.name, len(members) - len(live)
                )
            if live:
                self._retire(pool, live, self._inventory(pool))
            self._applied.put(pool.name, request_id, tuple(members))

    def launch_gang(
        self,
        pool: Pool,
        count: int,
        request_id: str,
        tags: Mapping[str, str] | None = None,
        placement_group: str | None = None,
    ) -> list[str]:
        """Launch `count` instances for a gang, all in one offering (one zone), or none.

        Offerings are tried in order, one call each, asking for all or nothing; an answer
        with fewer instances is terminated at once and its offering marked short. Instances
        already tagged with `request_id` count: all of them, and nothing is launched; fewer
        (a crash mid-launch), and they are terminated first. Raises CapacityUnavailable
        when no offering gave all of them; nothing launched is then left running.
        """
        with self._locks.hold(pool.name), translated(f"pool {pool.name}: gang launch"):
            if self._applied.get(pool.name, request_id) == count:
                return []
            key = self.ownership.request_key
            earlier = [i for i in self._inventory(pool).active if i.tags.get(key) == request_id]
            if len(earlier) >= count:
                self._applied.put(pool.name, request_id, count)
                return [i.id for i in earlier]
            attempt = 0
            if earlier:
                log.warning(
                    "%s: gang request %s left %d of %d instance(s) (a crash mid-launch?); "
                    "terminating them and launching again",
                    pool.name,
                    request_id,
                    len(earlier),
                    count,
                )
                self._terminate_now(pool, earlier)
                attempt = 1000  # new tokens: the old ones would answer the partial launch
            extra = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
            all_tags = self.ownership.launch_tags(pool.name, request_id) + extra
            failures: list[Failure] = []
            for offering in offerings(_target(pool)):
                if self.unavailable.get(offering):
                    continue
                outcome = self._launch_gang_once(
                    pool,
                    offering,
                    count,
                    all_tags,
                    client_token(request_id, attempt),
                    placement_group,
                )
                attempt += 1
                ids = outcome.instance_ids
                if len(ids) >= count:
                    log.info(
                        "%s: launched gang of %d in %s: %s (request %s)",
                        pool.name,
                        count,
                        offering,
                        ", ".join(ids),
                        request_id,
                    )
                    self._applied.put(pool.name, request_id, count)
                    return ids
                if ids:
                    log.warning(
                        "%s: %s gave %d of the gang's %d instance(s); terminating them",
                        pool.name,
                        offering,
                        len(ids),
                        count,
                    )
                    # Ours: the answer to our own launch, tagged by it (a describe right
                    # after launching may not list them yet).
                    self._terminate_ids(pool, ids)
                short = outcome.failures or [
                    Failure(offering, "InsufficientInstanceCapacity", f"{len(ids)} of {count}")
                ]
                for failure in short:
                    failures.append(failure)
                    self._mark(pool, failure)
            raise self._shortfall(pool, count, 0, failures)

    def _launch_gang_once(
        self,
        pool: Pool,
        offering: Offering,
        count: int,
        tags: Sequence[Mapping[str, str]],
        token: str,
        placement_group: str | None,
    ) -> LaunchOutcome:
        target = _target(pool)
        client = self._ec2(pool)
        if target.uses_fleet:
            params = gang_fleet_request(target, offering, count, tags, token, placement_group)
            try:
                answer = self._call(pool, "CreateFleet", lambda: client.create_fleet(**params))
            except ClientError as exc:
                return _refused(pool, "CreateFleet", [offering], exc)
            return fleet_outcome(answer, [offering])
        params = gang_run_instances_request(target, offering, count, tags, token, placement_group)
        try:
            answer = self._call(pool, "RunInstances", lambda: client.run_instances(**params))
        except ClientError as exc:
            return _refused(pool, "RunInstances", [offering], exc)
        return run_instances_outcome(answer)

    def _terminate_now(self, pool: Pool, instances: Sequence[Instance]) -> None:
        """Terminate (never stop) our `instances`, after checking their tags again."""
        if not instances:
            return
        self._check_owned(pool, instances)
        self._terminate_ids(pool, [i.id for i in instances])

    def _terminate_ids(self, pool: Pool, ids: Sequence[str]) -> None:
        client = self._ec2(pool)
        self._call(pool, "TerminateInstances", lambda: client.terminate_instances(InstanceIds=ids))
        log.info("%s: terminated %s (partial gang)", pool.name, ", ".join(ids))

    # -- reading -------------------------------------------------------------------------
    def _ec2(self, pool: Pool) -> Any:
        return self._clients.get("ec2", _target(pool).region, _target(pool).retry.max_attempts)

    def _retry(self, pool: Pool) -> AwsRetry:
        return _target(pool).retry

    def _instances(
        self,
        pool: Pool,
        states: Iterable[str] = ACTIVE_STATES + WARM_STATES,
        members: Sequence[str] | None = None,
    ) -> list[Instance]:
        """Owned instances of the pool (in `states`, or all states when `members` given)."""
        filters = self.ownership.filters(pool.name)
        if members is not None:
            filters.append({"Name": "instance-id", "Values": list(members)})
        else:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        client = self._ec2(pool)
        out: list[Instance] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters, "MaxResults": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self._call(pool, "DescribeInstances", _bind(client.describe_instances, kwargs))
            for reservation in page.get("Reservations", ()):
                for item in reservation.get("Instances", ()):
                    out.append(Instance.from_api(item, self.ownership))
            token = page.get("NextToken")
            if not token:
                break
        return [i for i in out if self._is_owned(pool, i)]

    def _is_owned(self, pool: Pool, instance: Instance) -> bool:
        if self.ownership.owns(instance.tags, pool.name):
            return True
        log.error(
            "%s: ignoring %s: the tag filter returned an instance we do not own",
            pool.name,
            instance.id,
        )
        return False

    def _inventory(self, pool: Pool) -> Inventory:
        return Inventory.of(self._instances(pool))

    # -- scale-out -----------------------------------------------------------------------
    def _scale_out(self, pool: Pool, need: int, inventory: Inventory, request_id: str) -> None:
        earlier = [
            i for i in inventory.everything if i.tags.get(self.ownership.request_key) == request_id
        ]
        if earlier:
            # A retry after a crash or a lost answer: those instances already count.
            log.info(
                "%s: request %s already launched %s; launching only what is missing",
                pool.name,
                request_id,
                ", ".join(i.id for i in earlier),
            )
        need -= self._start_warm(pool, need, inventory.stopped)
        if need <= 0:
            return
        launched, failures = self._launch(pool, need, request_id)
        if launched < need:
            raise self._shortfall(pool, need, launched, failures)

    def _start_warm(self, pool: Pool, need: int, stopped: Sequence[Instance]) -> int:
        """Start up to `need` stopped instances of the pool; how many were started."""
        if not stopped or need <= 0:
            return 0
        rank = {o: n for n, o in enumerate(offerings(_target(pool)))}
        groups: dict[Offering, list[Instance]] = {}
        for instance in sorted(stopped, key=lambda i: -i.launched_at):
            groups.setdefault(instance.offering(_target(pool).region), []).append(instance)
        started = 0
        # Offerings the target no longer lists (the config changed) go last.
        for offering in sorted(groups, key=lambda o: rank.get(o, len(rank))):
            if started >= need:
                break
            if self.unavailable.get(offering):
                continue
            batch = groups[offering][: need - started]
            if self._start(pool, offering, batch):
                started += len(batch)
        return started

    def _start(self, pool: Pool, offering: Offering, batch: Sequence[Instance]) -> bool:
        self._check_owned(pool, batch)
        ids = [i.id for i in batch]
        client = self._ec2(pool)
        try:
            self._call(pool, "StartInstances", lambda: client.start_instances(InstanceIds=ids))
        except ClientError as exc:
            code = error_code(exc)
            if code in CAPACITY_CODES:
                self._mark(pool, Failure(offering, code, error_message(exc)))
                return False
            if code == "IncorrectInstanceState":
                log.info("%s: could not start %s yet: %s", pool.name, ids, error_message(exc))
                return False
            raise
        log.info(
            "%s: started %d warm instance(s) of %s: %s",
            pool.name,
            len(ids),
            offering,
            ", ".join(ids),
        )
        return True

    def _launch(self, pool: Pool, need: int, request_id: str) -> tuple[int, list[Failure]]:
        """Launch up to `need` instances, offering after offering; (launched, failures)."""
        target = _target(pool)
        per_call = FLEET_MAX_OVERRIDES if target.uses_fleet else 1
        launched = 0
        attempt = 0
        failures: list[Failure] = []
        tried: set[Offering] = set()
        for market in markets(target):
            in_market = [o for o in offerings(target) if o.market == market]
            while launched < need:
                batch = [o for o in in_market if o not in tried and not self.unavailable.get(o)]
                if not batch:
                    break
                batch = batch[:per_call]
                outcome = self._launch_batch(pool, batch, need - launched, request_id, attempt)
                attempt += 1
                launched += len(outcome.instance_ids)
                for failure in outcome.failures:
                    failures.append(failure)
                    tried.add(failure.offering)
                    self._mark(pool, failure)
                if not outcome.instance_ids:
                    tried.update(batch)  # never ask the same batch twice in one action
                else:
                    log.info(
                        "%s: launched %s (request %s)",
                        pool.name,
                        ", ".join(outcome.instance_ids),
                        request_id,
                    )
        return launched, failures

    def _launch_batch(
        self, pool: Pool, batch: Sequence[Offering], count: int, request_id: str, attempt: int
    ) -> LaunchOutcome:
        target = _target(pool)
        client = self._ec2(pool)
        tags = self.ownership.launch_tags(pool.name, request_id)
        token = client_token(request_id, attempt)
        if target.uses_fleet:
            params = fleet_request(target, batch, count, tags, token)
            try:
                answer = self._call(pool, "CreateFleet", lambda: client.create_fleet(**params))
            except ClientError as exc:
                return _refused(pool, "CreateFleet", batch, exc)
            return fleet_outcome(answer, batch)
        params = run_instances_request(target, batch[0], count, tags, token)
        try:
            answer = self._call(pool, "RunInstances", lambda: client.run_instances(**params))
        except ClientError as exc:
            return _refused(pool, "RunInstances", batch, exc)
        return run_instances_outcome(answer)

    def _mark(self, pool: Pool, failure: Failure) -> None:
        if failure.code not in CAPACITY_CODES:
            log.warning(
                "%s: %s refused: %s: %s", pool.name, failure.offering, failure.code, failure.message
            )
            return
        seconds = _target(pool).unavailable_for
        self.unavailable.mark(failure.offering, failure.code, seconds)
        log.warning(
            "%s: %s: %s; skipping it for %gs and trying the next offering",
            pool.name,
            failure.offering,
            failure.code,
            seconds,
        )

    def _shortfall(
        self, pool: Pool, need: int, launched: int, failures: Sequence[Failure]
    ) -> ProviderError:
        """The error for a scale-out that fell short: which offerings failed and why."""
        failed = {f.offering for f in failures}
        skipped = [
            (o, why)
            for o in offerings(_target(pool))
            if o not in failed and (why := self.unavailable.get(o)) is not None
        ]
        now = self.clock.now()
        detail = "; ".join(
            [f"{f.offering}: {f.code}" for f in failures]
            + [f"{o}: skipped ({why.code}, {why.until - now:.0f}s left)" for o, why in skipped]
        )
        head = f"pool {pool.name}: launched {launched} of {need} instance(s)"
        other = [f for f in failures if f.code not in CAPACITY_CODES]
        if other:
            return ProviderError(
                f"{head}; EC2 refused the request: {detail}. Fix the target's launch "
                "settings (template, subnets, image, IAM)",
                other[0].code,
            )
        codes = Counter([f.code for f in failures] + [why.code for _, why in skipped])
        return CapacityUnavailable(
            f"{head}; no capacity in any offering: {detail or 'none configured'}. Offerings "
            f"that ran out are skipped for {_target(pool).unavailable_for:g}s; add instance "
            "types or subnets, or allow on-demand (market: spot-then-on-demand)",
            codes.most_common(1)[0][0] if codes else "InsufficientInstanceCapacity",
        )

    # -- scale-in ------------------------------------------------------------------------
    def _check_owned(self, pool: Pool, instances: Iterable[Instance]) -> None:
        """The second look before a destructive call: every instance must carry our tags."""
        strangers = [i.id for i in instances if not self.ownership.owns(i.tags, pool.name)]
        if strangers:
            raise ProviderError(
                f"pool {pool.name}: refusing to touch {', '.join(strangers)}: not tagged "
                f"{self.ownership.owner_key}={self.ownership.owner} and "
                f"{self.ownership.pool_key}={pool.name} (a bug: please report it)",
                "NotOwned",
            )

    def _retire(self, pool: Pool, victims: Sequence[Instance], inventory: Inventory) -> None:
        """Stop (warm pool) or terminate `victims`, after checking their tags again."""
        self._check_owned(pool, victims)
        target = _target(pool)
        stop: list[Instance] = []
        if target.scale_in == "stop":
            limit = target.warm_pool_max if target.warm_pool_max is not None else pool.max
            room = max(0, limit - len(inventory.stopped) - len(inventory.stopping))
            # A pending instance cannot be stopped yet, a one-time spot instance never.
            stoppable = [v for v in victims if v.state == "running" and v.market != "spot"]
            stop = stoppable[:room]
        terminate = [v for v in victims if v not in stop]
        client = self._ec2(pool)
        if stop:
            ids = [i.id for i in stop]
            self._call(pool, "StopInstances", lambda: client.stop_instances(InstanceIds=ids))
            log.info("%s: stopped %s (warm pool)", pool.name, ", ".join(ids))
        if terminate:
            ids = [i.id for i in terminate]
            self._call(
                pool, "TerminateInstances", lambda: client.terminate_instances(InstanceIds=ids)
            )
            log.info("%s: terminated %s", pool.name, ", ".join(ids))


def _bind(call: Callable[..., T], kwargs: dict[str, Any]) -> Callable[[], T]:
    return lambda: call(**kwargs)


def _refused(
    pool: Pool, operation: str, batch: Sequence[Offering], exc: ClientError
) -> LaunchOutcome:
    """A launch call refused as a whole: a capacity error fails its offerings, others raise."""
    code = error_code(exc)
    if code not in CAPACITY_CODES:
        raise aws_error(f"pool {pool.name}: {operation}", exc) from None
    message = error_message(exc)
    return LaunchOutcome([], [Failure(o, code, message) for o in batch])


def _target(pool: Pool) -> Ec2Target:
    return target_of(pool, Ec2Target)
