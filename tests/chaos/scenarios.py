"""The targets put under kill -9 by tests/chaos and bench/chaos.py.

- `Ec2Chaos`: an `ec2` pool (CreateFleet) sized by an SQS backlog, against the moto server
  with EC2 and SQS answers delayed; one process at a time, with a state file (a restarted
  process retries the killed one's request id).
- `DeploymentChaos`: a `deployment` pool on the real API server, its traffic through a TCP
  proxy that delays it; one process at a time, with a state file.
- `LeaderChaos`: the `ec2` pool with two `autoscaler run` replicas electing a leader on a
  real Lease; the leader is killed each cycle, a new standby started, the other takes over.

The audits read the real servers: every instance moto holds (with the ledger of which
process's call created or removed which), the Deployment's every replica count (a watch).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from tests.aws.conftest import _reset
from tests.aws.helpers import (
    INSTALLATION,
    OWNER_TAG,
    POOL_TAG,
    PREFIX,
    REQUEST_TAG,
    World,
    client,
    ec2_target,
    launch_foreign,
    make_world,
    pool_dict,
)
from tests.aws.test_cli_run import FAST_RETRY, autoscaler, env_for, write_config

from .delays import (
    ACTIVE,
    LAUNCHES,
    PROCESS_KEY,
    REMOVALS,
    ChaosMotoServer,
    DelayProxy,
    Seen,
    moto_instances,
)
from .driver import Audit, Proc, Scenario, spawn

POOL = "chaos"


# -- EC2 against moto server ------------------------------------------------------------
class Ec2Chaos(Scenario):
    """An `ec2` pool, 0..6 instances, one replica per SQS message."""

    name = "ec2"

    def __init__(
        self, server: ChaosMotoServer, workdir: Path, *, client_tokens: bool = False, **kwargs: Any
    ) -> None:
        """`client_tokens`: moto honours ClientToken as EC2 does (tests/chaos/delays.py)."""
        super().__init__(workdir, **kwargs)
        self.server = server
        self.client_tokens = client_tokens
        self.config = workdir / "chaos.yaml"
        self.state = workdir / "state.json"
        self.queue = ""
        self.foreign: list[str] = []
        self.before: set[str] = set()
        self.world: World | None = None

    def setup(self) -> None:
        if os.environ.get("AWS_ENDPOINT_URL") != self.server.url:
            raise RuntimeError("AWS_ENDPOINT_URL must point at the chaos moto server")
        _reset(self.server)
        self.server.chaos.clear()
        self.world = world = make_world()
        self.queue = client("sqs").create_queue(QueueName=f"{POOL}-jobs")["QueueUrl"]
        # Never to be touched: an untagged instance and another installation's.
        self.foreign = launch_foreign(world, {}) + launch_foreign(
            world, {OWNER_TAG: "someone-else", POOL_TAG: POOL}
        )
        self.before = set(moto_instances())
        pool = pool_dict(POOL, ec2_target(world, retry=FAST_RETRY), max=self.max)
        pool["signals"] = {"queue": {"source": {"type": "sqs", "queue_url": self.queue}}}
        write_config(self.config, pool)
        self.server.chaos.watched = _ours
        self.server.chaos.delay = self.delay
        self.server.chaos.client_tokens = self.client_tokens

    def teardown(self) -> None:
        self.server.chaos.delay = 0.0
        self.server.chaos.client_tokens = False

    def set_desired(self, desired: int) -> None:
        """The backlog becomes `desired` messages in one call (no reading in between)."""
        sqs = client("sqs")
        have = _backlog(sqs, self.queue)
        if desired > have:
            sqs.send_message_batch(
                QueueUrl=self.queue,
                Entries=[{"Id": str(i), "MessageBody": f"job {i}"} for i in range(desired - have)],
            )
        elif desired < have:
            found = sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=have - desired, VisibilityTimeout=3600
            ).get("Messages", [])
            sqs.delete_message_batch(
                QueueUrl=self.queue,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                         for i, m in enumerate(found)],
            )  # fmt: skip
        got = _backlog(sqs, self.queue)
        if got != desired:
            raise RuntimeError(f"backlog is {got}, wanted {desired}")

    def key(self, proc_name: str) -> str:
        return f"{PROCESS_KEY}{proc_name.upper()}"

    def argv(self, n: int) -> list[str]:
        return [*autoscaler(), "run", "-c", str(self.config), "--interval",
                f"{self.interval}s", "--state", str(self.state)]  # fmt: skip

    def env(self, name: str) -> dict[str, str]:
        env = env_for(self.server)
        env["AWS_ACCESS_KEY_ID"] = self.key(name)
        env.pop("KUBECONFIG", None)
        return env

    def start(self, n: int) -> Proc:
        name = f"p{n:03d}"
        proc = spawn(name, self.argv(n), self.env(name), self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def acting(self, proc: Proc) -> bool:
        return self.server.chaos.first_call(self.key(proc.name)) is not None

    def in_flight(self, proc: Proc) -> bool:
        return self.server.chaos.busy(self.key(proc.name))

    def changing(self, proc: Proc) -> bool:
        return self.server.chaos.changing(self.key(proc.name))

    def acted(self, proc: Proc) -> bool:
        key = self.key(proc.name)
        return any(m.key == key for m in self.server.chaos.ledger)

    def active(self) -> list[str]:
        return [i for i, s in moto_instances().items() if s.state in ACTIVE and _ours(s)]

    def settled(self, desired: int) -> bool:
        return len(self.active()) == desired

    def describe(self) -> str:
        return f"{len(self.active())} active instances of the pool"

    def audit(self, desired: int) -> Audit:
        """From moto's instances and the ledger of every call that changed them."""
        ledger = list(self.server.chaos.ledger)
        by_key = {self.key(p.name): p for p in self.procs}
        seen = moto_instances()
        problems: list[str] = []
        doubles = over = 0
        created: dict[str, Proc | None] = {}
        for m in ledger:
            proc = by_key.get(m.key)
            who = proc.name if proc else m.key
            for i in m.created:
                created[i] = proc
            if proc is None or proc.desired is None:  # a standby, or nobody we started
                doubles += len(m.started) + len(m.removed)
                problems.append(f"{m.action} by {who}, which never led: {m.started or m.removed}")
                continue
            if m.action in LAUNCHES and m.after > proc.desired:
                doubles += min(len(m.started), m.after - proc.desired)
                problems.append(
                    f"double launch: {m.action} by {who} (wants {proc.desired}) took the "
                    f"pool from {m.before} to {m.after} active"
                )
            if m.action in REMOVALS and m.after < proc.desired:
                over += min(len(m.removed), proc.desired - m.after)
                problems.append(
                    f"over-removal: {m.action} by {who} (wants {proc.desired}) took the pool "
                    f"from {m.before} to {m.after} active"
                )
        orphans = []
        for i, s in sorted(seen.items()):
            if i in self.before:
                continue
            if i not in created:
                orphans.append(f"{i} ({s.state}): created by no recorded call")
            elif not (_ours(s) and s.tags.get(REQUEST_TAG)):
                orphans.append(f"{i} ({s.state}): missing our tags: {s.tags}")
            elif s.state not in (*ACTIVE, "terminated"):
                orphans.append(f"{i} ({s.state}): neither counted by the pool nor gone")
        problems += [f"orphan {o}" for o in orphans]
        for i in self.foreign:
            if seen[i].state != "running":
                problems.append(f"foreign instance {i} touched: {seen[i].state}")
        if len(self.active()) != desired:
            problems.append(f"{len(self.active())} active at the end, desired {desired}")
        launched = sum(len(m.created) for m in ledger if m.action in LAUNCHES)
        return Audit(
            launches=launched,
            doubles=doubles,
            over_removals=over,
            orphans=len(orphans),
            problems=problems,
            extra={
                "mutating_calls": dict(Counter(m.action for m in ledger)),
                "client_token_replays": self.server.chaos.replays,
                "client_token_mismatches": self.server.chaos.mismatches,
                "instances_created": len(created),
                "request_ids": len({seen[i].tags.get(REQUEST_TAG) for i in created}),
                "most_launch_calls_per_request": max(
                    Counter(
                        seen[m.created[0]].tags.get(REQUEST_TAG, "")
                        for m in ledger
                        if m.action in LAUNCHES and m.created
                    ).values(),
                    default=0,
                ),
            },
        )


def _ours(seen: Seen) -> bool:
    return seen.tags.get(OWNER_TAG) == INSTALLATION and seen.tags.get(POOL_TAG) == POOL


def _backlog(sqs: Any, queue: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(found[n]) for n in names)


# -- leader handover: two replicas, the leader killed ----------------------------------------
class LeaderChaos(Ec2Chaos):
    """The `ec2` pool with `--leader-elect`: two replicas; each cycle kills the leader and
    starts a new standby; the survivor must take over without acting twice."""

    name = "leader"
    lease = "chaos-leader"
    lease_duration = 2.0

    def __init__(
        self,
        server: ChaosMotoServer,
        workdir: Path,
        *,
        kube_api: Any,
        kubeconfig: Path,
        namespace: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(server, workdir, **kwargs)
        self.api = kube_api
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.leader: Proc | None = None
        self.takeovers: list[float] = []

    def argv(self, n: int) -> list[str]:
        # No state file: each replica starts its request ids from its own start time.
        election = ["--leader-elect", "--lease-name", self.lease, "--lease-namespace",
                    self.namespace, "--lease-duration", f"{self.lease_duration}s"]  # fmt: skip
        return [*autoscaler(), "run", "-c", str(self.config), "--interval",
                f"{self.interval}s", "--kubeconfig", str(self.kubeconfig), *election,
                "--identity", f"p{n:03d}"]  # fmt: skip

    def env(self, name: str) -> dict[str, str]:
        return {**super().env(name), "POD_NAMESPACE": self.namespace}

    def holder(self) -> str | None:
        from kubernetes import client as k

        try:
            lease = k.CoordinationV1Api(self.api).read_namespaced_lease(self.lease, self.namespace)
        except k.exceptions.ApiException:
            return None
        return lease.spec.holder_identity or None

    def _await_leader(self, candidates: list[Proc], timeout: float) -> Proc:
        names = {p.name: p for p in candidates if p.alive()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            who = self.holder()
            if who in names:
                return names[who]
            time.sleep(0.05)
        tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in candidates)
        raise TimeoutError(f"no new leader among {sorted(names)} (holder {self.holder()})\n{tails}")

    def victim(self, n: int) -> Proc:
        if self.leader is None:
            first = self.start(len(self.procs))
            self.leader = self._await_leader([first], 60)
            self.leader.desired = self.desired
            self.start(len(self.procs))  # the standby
        return self.leader

    def after_kill(self, n: int, killed: Proc) -> None:
        self.start(len(self.procs))  # the next standby
        alive = [p for p in self.procs if p.alive()]
        self.leader = self._await_leader(alive, self.lease_duration + 30)
        assert killed.ended is not None
        self.takeovers.append(time.monotonic() - killed.ended)
        self.leader.desired = self.desired  # set after the kill, read by the new leader

    def final(self) -> Proc:
        assert self.leader is not None
        return self.leader

    def audit(self, desired: int) -> Audit:
        audit = super().audit(desired)
        if self.takeovers:
            audit.extra["takeover_s"] = {
                "median": round(sorted(self.takeovers)[len(self.takeovers) // 2], 2),
                "max": round(max(self.takeovers), 2),
            }
        audit.extra["replicas_started"] = len(self.procs)
        return audit


# -- a Deployment on the real API server ----------------------------------------------------
class DeploymentChaos(Scenario):
    """A `deployment` pool of 0..6 replicas (static signal, rewritten for each process),
    its API traffic delayed by a TCP proxy."""

    name = "deployment"
    deployment = POOL
    most_ticks = 6.0  # its first tick, TLS handshakes and lists through the delay, is slow

    def __init__(
        self, workdir: Path, *, kube_api: Any, kubeconfig: Path, namespace: str, **kwargs: Any
    ) -> None:
        super().__init__(workdir, **kwargs)
        self.api = kube_api
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.proxy: DelayProxy | None = None
        self.proxied = workdir / "proxied.kubeconfig"
        self.state = workdir / "state.json"
        self.writes: list[tuple[float, int]] = []
        """(when seen, spec.replicas) for every change of the Deployment's replica count."""
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._accepted: list[float] = []
        self.next_config = workdir / "config.yaml"

    # -- setup ----------------------------------------------------------------------------
    def _apps(self) -> Any:
        from kubernetes import client as k

        return k.AppsV1Api(self.api)

    def _core(self) -> Any:
        from kubernetes import client as k

        return k.CoreV1Api(self.api)

    def setup(self) -> None:
        labels = {"app": self.deployment}
        never = {"autoscaler-test/chaos": "no-such-node"}  # pods stay Pending: no kubelet
        self._apps().create_namespaced_deployment(self.namespace, {
            "metadata": {"name": self.deployment, "labels": {f"{PREFIX}/owner": INSTALLATION}},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "nodeSelector": never, "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}},
        })  # fmt: skip
        self._apps().create_namespaced_deployment(self.namespace, {
            "metadata": {"name": "not-ours"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "not-ours"}},
                     "template": {"metadata": {"labels": {"app": "not-ours"}}, "spec": {
                         "nodeSelector": never,
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}},
        })  # fmt: skip
        doc = yaml.safe_load(self.kubeconfig.read_text())
        for cluster in doc["clusters"]:
            server = urlparse(cluster["cluster"]["server"])
            host, port = server.hostname or "127.0.0.1", server.port or 443
            if self.proxy is None:
                self.proxy = DelayProxy((host, port), self.delay).start()
                self.proxy.on_accept = lambda: self._accepted.append(time.monotonic())
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.proxy.port}"
            if host != "127.0.0.1":
                cluster["cluster"]["tls-server-name"] = host
        self.proxied.write_text(yaml.safe_dump(doc))
        self.proxied.chmod(0o600)
        self._watcher = threading.Thread(target=self._watch, name="chaos-watch", daemon=True)
        self._watcher.start()
        wait_until = time.monotonic() + 10
        while not self.writes and time.monotonic() < wait_until:
            time.sleep(0.05)
        if not self.writes:
            raise RuntimeError(f"no watch event for Deployment {self.deployment} within 10s")

    def teardown(self) -> None:
        self._stop.set()
        if self.proxy is not None:
            self.proxy.stop()

    def _watch(self) -> None:
        """Every value the Deployment's spec.replicas takes, as the API server has it."""
        from kubernetes import watch

        apps = self._apps()
        version = ""
        last: int | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(
                    apps.list_namespaced_deployment, self.namespace,
                    field_selector=f"metadata.name={self.deployment}",
                    resource_version=version or None, timeout_seconds=5,
                ):  # fmt: skip
                    obj = event["object"]
                    version = obj.metadata.resource_version
                    replicas = obj.spec.replicas or 0
                    if replicas != last:
                        self.writes.append((time.monotonic(), replicas))
                        last = replicas
                    if self._stop.is_set():
                        break
            except Exception:  # a dropped watch: start again from the last version seen
                version = ""
                time.sleep(0.1)
            finally:
                w.stop()

    # -- the hooks ------------------------------------------------------------------------
    def set_desired(self, desired: int) -> None:
        self.next_config = self.workdir / f"config-{len(self.procs):03d}.yaml"
        target = {"kind": "deployment", "namespace": self.namespace, "name": self.deployment}
        write_config(self.next_config, pool_dict(POOL, target, queue=desired, max=self.max))

    def start(self, n: int) -> Proc:
        name = f"p{n:03d}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.pop("KUBECONFIG", None)
        env["POD_NAMESPACE"] = self.namespace
        argv = [*autoscaler(), "run", "-c", str(self.next_config), "--kubeconfig",
                str(self.proxied), "--interval", f"{self.interval}s", "--state",
                str(self.state)]  # fmt: skip
        proc = spawn(name, argv, env, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def acting(self, proc: Proc) -> bool:
        return any(t >= proc.started for t in self._accepted)

    def in_flight(self, proc: Proc) -> bool:
        return self.proxy is not None and self.proxy.in_flight()

    def acted(self, proc: Proc) -> bool:
        """A replica count changed while it lived (or within the delay after its kill)."""
        end = (proc.ended or time.monotonic()) + self.delay + 1.0
        return any(proc.started <= at <= end for at, _ in self.writes[1:])

    def _live_pods(self) -> list[Any]:
        pods = (
            self._core()
            .list_namespaced_pod(self.namespace, label_selector=f"app={self.deployment}")
            .items
        )
        return [p for p in pods if p.metadata.deletion_timestamp is None]

    def _replicas(self) -> int:
        return (
            self._apps()
            .read_namespaced_deployment_scale(self.deployment, self.namespace)
            .spec.replicas
            or 0
        )

    def settled(self, desired: int) -> bool:
        return self._replicas() == desired and len(self._live_pods()) == desired

    def describe(self) -> str:
        return f"replicas {self._replicas()}, live pods {len(self._live_pods())}"

    def audit(self, desired: int) -> Audit:
        """Every replica count the Deployment took must be the desired count of a process
        alive (or killed within the delay) when it was written."""
        late = self.delay + 1.0
        problems: list[str] = []
        doubles = 0
        launches = 0
        previous = 0
        for at, replicas in self.writes[1:] if self.writes else []:
            launches += max(0, replicas - previous)
            previous = replicas
            allowed = {
                p.desired for p in self.procs
                if p.desired is not None and p.started <= at <= (p.ended or at) + late
            }  # fmt: skip
            if replicas not in allowed:
                doubles += 1
                problems.append(
                    f"replicas set to {replicas} at +{at - self.writes[0][0]:.1f}s; the "
                    f"processes alive then wanted {sorted(allowed)}"
                )
        pods = self._live_pods()
        sets = (
            self._apps()
            .list_namespaced_replica_set(self.namespace, label_selector=f"app={self.deployment}")
            .items
        )
        ours = {
            rs.metadata.name for rs in sets
            if any(o.kind == "Deployment" and o.name == self.deployment
                   for o in rs.metadata.owner_references or [])
        }  # fmt: skip
        orphans = [
            p.metadata.name for p in pods
            if not any(o.kind == "ReplicaSet" and o.name in ours
                       for o in p.metadata.owner_references or [])
        ]  # fmt: skip
        extra_pods = max(0, len(pods) - desired)
        problems += [f"orphan pod {name}" for name in orphans]
        if extra_pods:
            problems.append(f"{len(pods)} live pods at the end, desired {desired}")
        foreign = self._apps().read_namespaced_deployment_scale("not-ours", self.namespace)
        if foreign.spec.replicas != 1:
            problems.append(f"foreign Deployment scaled to {foreign.spec.replicas}")
        return Audit(
            launches=launches,
            doubles=doubles,
            over_removals=0,
            orphans=len(orphans) + extra_pods,
            problems=problems,
            extra={"replica_writes": max(0, len(self.writes) - 1)},
        )
