"""Gang admission: a suspended Job is let run only once all its pods fit on Ready nodes.

The kube-scheduler binds pods one at a time, so two gangs whose pods fit the same new
nodes (two 4 x 8-GPU Jobs of one instance type) can each take part of the nodes launched
for one of them, and wait for each other forever. Kueue's answer is admission: the Job is
created suspended (`spec.suspend: true`, no pods) and unsuspended only when its whole
capacity is there. For a Job labelled `<prefix>/gang-admission: "true"`:

1. while suspended, it is a gang whose pods do not exist yet (observe_gangs.py): its
   `parallelism` pods of the pod template's requests, nodeSelector and tolerations are
   packed like any gang's pending pods, so its nodes are launched all or nothing;
2. `admit_gangs` (here, pure) decides which suspended gangs to let run: in order (pod
   priority, then creation), a gang is admitted when every one of its pods fits on the
   free room of our Ready nodes, first fit, after the gangs admitted before it; the first
   that does not fit stops the line (no later gang overtakes it);
3. the plan admits at most one gang per tick, and none while a Job admitted earlier (or
   any running labelled Job) still has fewer pods bound than its size: its pods are on
   their way to the room it was admitted for, and another gang must not take it;
4. `AdmitGang` unsuspends the Job (`spec.suspend: false`, actuator.py). An unsuspended
   Job is never suspended again.

Pure: this module must never import a Kubernetes or AWS client, read a clock or do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .binpack import Resources
from .pending import PendingPod

ADMISSION_LABEL = "gang-admission"
"""`<prefix>/gang-admission: "true"` on a Job: admit it (unsuspend it) only whole."""


@dataclass(frozen=True, slots=True)
class SuspendedGang:
    """A suspended Job labelled for gang admission: its pods-to-be, as pending pods."""

    id: str
    """`<namespace>/job/<name>`, the id its pods' gang will have (gangs.py)."""
    namespace: str
    name: str
    uid: str
    pods: tuple[PendingPod, ...]
    priority: int = 0
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class GangAdmission:
    """What the observe step saw of gang admission."""

    suspended: tuple[SuspendedGang, ...] = ()
    settling: Mapping[str, str] = field(default_factory=dict)
    """labelled, unsuspended Job (gang id) -> why it is not settled (pods still unbound)."""


@dataclass(frozen=True, slots=True)
class FreeNode:
    """Free room on one of our Ready nodes, with the labels and taints pods must accept."""

    name: str
    room: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()


def order(gangs: Sequence[SuspendedGang]) -> list[SuspendedGang]:
    """Admission order: higher pod priority first, then older, then by id."""
    return sorted(gangs, key=lambda g: (-g.priority, g.since, g.id))


def fits(pods: Sequence[PendingPod], free: dict[str, Resources], nodes: Sequence[FreeNode]) -> bool:
    """Place every pod first fit (largest first) on `free` (node -> room), in place;
    False (and `free` unchanged) when one does not fit."""
    trial = dict(free)
    for pod in sorted(pods, key=lambda p: (-p.demand.gpus, -p.demand.cpu_millis, p.name)):
        for node in nodes:
            if trial[node.name].room_for(pod.demand) >= 1 and pod.can_run_on(
                node.labels, node.taints
            ):
                trial[node.name] = trial[node.name].minus(pod.demand)
                break
        else:
            return False
    free.update(trial)
    return True


def admit_gangs(
    nodes: Sequence[FreeNode], gangs: Sequence[SuspendedGang], *, limit: int | None = None
) -> list[SuspendedGang]:
    """The gangs to unsuspend, in order: each fits whole on the room left by those before
    it; the first that does not fit stops the line; at most `limit` (None: no limit)."""
    free = {n.name: n.room for n in nodes}
    out: list[SuspendedGang] = []
    for gang in gangs:
        if limit is not None and len(out) >= limit:
            break
        if not gang.pods or not fits(gang.pods, free, nodes):
            break
        out.append(gang)
    return out
