"""Gangs: pods that must run together (a distributed training job), planned all or nothing.

A distributed job is useless until every worker runs: three nodes of four are pure cost,
and two half-launched gangs can hold capacity against each other forever. A *gang* is:

- the pods of an Indexed Job (`batch.kubernetes.io/job-completion-index`), keyed by the
  Job, sized by its parallelism (at most its completions);
- the pods of a JobSet (`jobset.sigs.k8s.io/jobset-name`), keyed by the JobSet, sized by
  the parallelism of all its Jobs;
- pods sharing a value of the configured `gang_label` (default
  `scheduling.x-k8s.io/pod-group`), sized by the annotation `<prefix>/gang-size`.

The observe step writes each pod's gang and size into its PendingPod (`gang`,
`gang_size`); here, purely:

1. a gang is placeable only when all its members exist (pending, or bound to a node):
   one with fewer is left waiting whole (every pending member `Unplaced`);
2. packing (binpack.py) places a gang whole: on capacity that exists or is coming, or on
   new nodes of one type launched together by one `GangLaunch` (one request, one zone,
   all or nothing: provider `launch_gang`), or not at all. Older gangs go first, so two
   gangs never split capacity between them;
3. a gang waiting longer than `gang_timeout` is reported (`GangTimedOut`: tick result,
   metric, Event) and releases its turn: it goes behind every gang still in time, so it
   never blocks them; it keeps being retried.

Scale-in only ever drains an empty node (or one EC2 takes anyway), so a node holding a
running gang member is never drained by scale-down.

Pure: this module must never import a Kubernetes or AWS client, read a clock or do I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .binpack import Packing
from .inventory import Observed, PodView, pool_name
from .pending import PendingPod

JOB_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
GANG_TAG = "gang"
"""`<prefix>/gang` on a gang's instances: the gang's id, hashed to fit a tag value."""

LAST = float("inf")


@dataclass(frozen=True, slots=True)
class GangLaunch:
    """Launch `count` instances of `instance_type` for one gang, all or nothing, in one
    zone; `request_id` is stable for the same decision (a retry launches nothing twice)."""

    gang: str
    instance_type: str
    count: int
    request_id: str
    pods: tuple[str, ...]
    placement_group: str | None = None


@dataclass(frozen=True, slots=True)
class GangTimedOut:
    """A gang not placed within `gang_timeout` (reported; it keeps being retried, last)."""

    gang: str
    waited: float
    pods: tuple[str, ...]
    reason: str


@dataclass(slots=True)
class Gang:
    """What the tick sees of one gang."""

    id: str
    size: int
    since: float
    pending: list[PendingPod] = field(default_factory=list)
    bound: list[str] = field(default_factory=list)

    @property
    def present(self) -> int:
        return len(self.pending) + len(self.bound)


def gangs_of(pending: Iterable[PendingPod], pods: Iterable[PodView]) -> dict[str, Gang]:
    """Every gang with a pending member: its size, pending and bound members."""
    out: dict[str, Gang] = {}
    for pod in pending:
        if pod.gang is None:
            continue
        gang = out.setdefault(pod.gang, Gang(pod.gang, pod.gang_size, pod.since))
        gang.pending.append(pod)
        gang.size = max(gang.size, pod.gang_size)
        gang.since = min(gang.since, pod.since)
    for view in pods:
        place = view.placement
        if view.node and place is not None and place.gang in out and not view.terminating:
            out[place.gang].bound.append(view.name)
    return out


def admit(
    observed: Observed, pending: Sequence[PendingPod]
) -> tuple[list[PendingPod], dict[str, str], list[GangTimedOut]]:
    """The pending pods to pack (gang members of complete gangs, timed-out gangs last),
    the gang members held back (with why), and the gangs past `gang_timeout`."""
    gangs = gangs_of(pending, observed.pods)
    held: dict[str, str] = {}
    late: list[GangTimedOut] = []
    out: list[PendingPod] = []
    timeout = observed.config.gang_timeout
    for pod in pending:
        gang = gangs.get(pod.gang) if pod.gang is not None else None
        if gang is None:
            out.append(pod)
            continue
        if gang.present < gang.size:
            held[pod.name] = (
                f"gang {gang.id}: {gang.present} of its {gang.size} pods exist; "
                "nothing is launched until all do"
            )
            continue
        waited = observed.now - gang.since
        out.append(replace(pod, since=LAST) if waited > timeout else pod)
    for gang in gangs.values():
        waited = observed.now - gang.since
        if waited > timeout and gang.present >= gang.size:
            late.append(
                GangTimedOut(
                    gang.id,
                    waited,
                    tuple(sorted(p.name for p in gang.pending)),
                    f"gang {gang.id} not placed within gang_timeout "
                    f"({timeout:g}s; waiting {waited:.0f}s): retried behind other gangs",
                )
            )
    return out, held, late


def gang_launches(observed: Observed, packing: Packing) -> list[GangLaunch]:
    """One `GangLaunch` per gang that gets new nodes."""
    out = []
    for gang, nodes in sorted(packing.gang_nodes().items()):
        kind = nodes[0].instance_type
        pods = tuple(sorted(p for n in nodes for p in n.pods))
        pool = pool_name(observed.config, kind)
        digest = hashlib.sha256("\n".join([pool, gang, str(len(nodes)), *pods]).encode())
        request_id = f"gang-{digest.hexdigest()[:16]}"
        placement = observed.config.gang_placement_group
        out.append(GangLaunch(gang, kind, len(nodes), request_id, pods, placement))
    return out


def timed_out_reasons(late: Sequence[GangTimedOut], unplaced: dict[str, str]) -> None:
    """Say in each unplaced member's reason that its gang is past `gang_timeout`."""
    for gang in late:
        for pod in gang.pods:
            if pod in unplaced:
                unplaced[pod] = f"{unplaced[pod]}; {gang.reason}"


def gang_tag_value(gang: str) -> str:
    """A gang id as a tag value (EC2 allows 256 characters; a long id is shortened)."""
    if len(gang) <= 200:
        return gang
    return f"{gang[:180]}-{hashlib.sha256(gang.encode()).hexdigest()[:16]}"
