"""Leader election on a coordination.k8s.io/v1 Lease, so two replicas never act at once.

The holder renews the Lease every `retry_period` seconds; another candidate takes it only
once `lease_duration` seconds have passed since the last renewal. Every write carries the
Lease's resourceVersion, so of two candidates racing for an expired Lease exactly one wins
(the other gets 409 Conflict). A leader that cannot renew within `renew_deadline` seconds
stops acting (`is_leader` turns False) *before* its Lease can expire, and a leader shutting
down releases the Lease so a standby takes over at once.

This module must never act on pools; it only says who may.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler import telemetry
from autoscaler.clients.kube import error_code
from autoscaler.clock import Clock, SystemClock

log = logging.getLogger("autoscaler.kube.leader")




class LeaderElector:
    """Campaigns for one Lease; `is_leader` is set while this process may act."""

    def __init__(
        self,
        api_client: Any,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        monotonic: Callable[[], float] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "leader election needs retry_period < renew_deadline < lease_duration "
                f"(got {retry_period:g}, {renew_deadline:g}, {lease_duration:g} seconds)"
            )
        self.api = k.CoordinationV1Api(api_client)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock or SystemClock()
        self.monotonic = monotonic or self.clock.monotonic
        self.is_leader = threading.Event()
        self.known = threading.Event()
        """Set after the first attempt: this process knows whether it leads."""
        self._observed: tuple[str, float] | None = None  # (record, when we first saw it)
        self.holder = ""
        """The holder seen at the last attempt ("" when none or unknown)."""
        self._last_renew = 0.0

    def _wall(self) -> datetime:
        """Now, as the Lease's times are written (UTC)."""
        return datetime.fromtimestamp(self.clock.now(), UTC)

    # -- one attempt -------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create()
        spec = lease.spec or k.V1LeaseSpec()
        record = f"{spec.holder_identity}|{spec.renew_time}|{spec.lease_transitions}"
        now = self.monotonic()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        holder = spec.holder_identity or ""
        self.holder = holder
        expired = now - self._observed[1] >= float(spec.lease_duration_seconds or 0)
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = self._wall()
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = math.ceil(self.lease_duration)
        spec.renew_time = self._wall()
        lease.spec = spec
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first
                return False
            raise
        self.holder = self.identity
        return True

    def _create(self) -> bool:
        now = self._wall()
        body = k.V1Lease(
            metadata=k.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=k.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=math.ceil(self.lease_duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self.api.create_namespaced_lease(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self.holder = self.identity
        return True

    def leads(self) -> bool:
        """May this process act now? Also False when the last renewal is older than the
        renew deadline, even if the campaign thread has not run since (a paused process)."""
        fresh = self.monotonic() - self._last_renew < self.renew_deadline
        return self.is_leader.is_set() and fresh

    # -- the loop ------------------------------------------------------------------------
    def step(self) -> None:
        """One attempt, updating `is_leader`; errors count as a failed renewal."""
        try:
            held = self.try_acquire_or_renew()
        except Exception as exc:
            telemetry.record_error("lease", error_code(exc))
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            held = False
        now = self.monotonic()
        if held:
            if not self.is_leader.is_set():
                log.info("lease %s/%s: leading as %s", self.namespace, self.name, self.identity)
            self._last_renew = now
            self.is_leader.set()
        elif self.is_leader.is_set() and self.holder not in ("", self.identity):
            # Someone else holds it (our Lease expired unseen): stop at once.
            log.warning(
                "lease %s/%s: now held by %s; stop acting", self.namespace, self.name, self.holder
            )
            self.is_leader.clear()
        elif self.is_leader.is_set() and now - self._last_renew >= self.renew_deadline:
            # Stop before the Lease can expire, so two replicas never act at once.
            log.warning(
                "lease %s/%s: not renewed for %.0fs; stop acting",
                self.namespace,
                self.name,
                now - self._last_renew,
            )
            self.is_leader.clear()
        self.known.set()

    def run(self, stop: threading.Event) -> None:
        """Campaign until `stop` is set, then release the Lease if held."""
        while not stop.is_set():
            self.step()
            stop.wait(self.retry_period)
        self.release()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="leader", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the Lease up (if held) so a standby takes over without waiting it out."""
        was_leader = self.is_leader.is_set()
        self.is_leader.clear()
        if not was_leader:
            return
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = self._wall()
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("lease %s/%s: released", self.namespace, self.name)
        except Exception as exc:  # best effort: the Lease expires on its own
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, exc)
