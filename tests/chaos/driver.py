"""Kill -9 cycles of the real `autoscaler run` process, then convergence, then an audit of
what the real server holds.

One cycle: set the desired count (a random, seeded number), start `autoscaler run` (a
subprocess, with answers delayed so the kill lands mid-call), wait until it acts, let it run
a random fraction of a tick to a few ticks, SIGKILL it. After the last cycle one run is left
alone until the server holds exactly the desired count, stable for two ticks; then it gets
SIGTERM and must exit 0. A `Scenario` says how to start a process against its target, how
to tell the target what to want, and how to audit the server afterwards (launches past the
desired count, orphans). `run_chaos` drives it; `ChaosResult` holds the figures.

Used by tests/chaos (a CI-sized number of cycles) and bench/chaos.py (more).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.wait import wait_for


@dataclass
class Proc:
    """One `autoscaler run` process of a scenario."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float
    """time.monotonic() just before it was spawned."""
    desired: int | None = None
    """What it was told to want while it acted (None: it never acted, a standby)."""
    ended: float | None = None
    """When it was killed or stopped."""
    mid_call: bool = False
    """A call of it was in flight when it was killed."""
    killed: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        self.ended = time.monotonic()
        self.killed = True
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (finish the tick, exit); the exit status (killed after `timeout`)."""
        self.ended = time.monotonic()
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=30)
            return -9

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, argv: list[str], env: dict[str, str], log: Path) -> Proc:
    """Start `argv` with its output in `log`."""
    started = time.monotonic()
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Proc(name, popen, log, started)


@dataclass
class Audit:
    """What the server shows after the run."""

    launches: int
    """Instances launched (EC2), or replicas added by scale-ups (Kubernetes)."""
    doubles: int
    """Launched past what the acting process wanted, or an action by a standby."""
    over_removals: int
    """Removed below what the acting process wanted."""
    orphans: int
    """Created and neither counted by the pool nor gone; or created without our tags."""
    problems: list[str] = field(default_factory=list)
    """One line per violation (the assertion message)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChaosResult:
    scenario: str
    cycles: int
    seed: int
    delay_s: float
    launches: int
    doubles: int
    over_removals: int
    orphans: int
    converged: bool
    converge_s: float
    kills_mid_call: int
    """Kills that landed while a call of the killed process was under way."""
    killed_having_acted: int
    """Killed processes that had changed the target before they died."""
    wall_s: float
    desired: list[int]
    problems: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.converged and not self.problems

    def report(self) -> str:
        head = (
            f"{self.scenario}: {self.cycles} kill -9 cycles (seed {self.seed}), "
            f"{self.launches} launches, {self.doubles} doubles, {self.over_removals} "
            f"over-removals, {self.orphans} orphans, converged {self.converged}; "
            f"{self.kills_mid_call} kills mid-call, {self.killed_having_acted} after acting; "
            f"desired {self.desired}; {self.extra}"
        )
        return "\n".join([head, *self.problems])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scenario:
    """One target under kill -9. Subclasses fill in the hooks."""

    name = "scenario"
    max = 6
    """The pool's max; the desired count of each cycle is drawn from 0..max."""
    most_ticks = 4.0
    """A process is killed a fraction of a tick to this many ticks after its first call."""

    def __init__(self, workdir: Path, *, delay: float = 0.4, interval: float = 1.0) -> None:
        self.workdir = workdir
        self.delay = delay
        self.interval = interval
        self.procs: list[Proc] = []
        self.desired = 0

    # -- hooks --------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the target and whatever must stay untouched."""

    def teardown(self) -> None:
        """Stop what setup started (processes are stopped by the driver)."""

    def set_desired(self, desired: int) -> None:
        """Make the target's signal ask for `desired` (no process runs, or none leads)."""
        raise NotImplementedError

    def start(self, n: int) -> Proc:
        """Spawn the n-th process."""
        raise NotImplementedError

    def acting(self, proc: Proc) -> bool:
        """It has begun to call the target."""
        raise NotImplementedError

    def in_flight(self, proc: Proc) -> bool:
        """A call of it is under way right now."""
        raise NotImplementedError

    def changing(self, proc: Proc) -> bool:
        """A call of it that launches or removes capacity is under way (False where the
        scenario cannot tell)."""
        return False

    def settled(self, desired: int) -> bool:
        """The server holds exactly `desired`."""
        raise NotImplementedError

    def describe(self) -> str:
        """What the server holds now, for a timeout message."""
        return ""

    def acted(self, proc: Proc) -> bool:
        """It changed the target (a launch, a removal, a replica count)."""
        raise NotImplementedError

    def audit(self, desired: int) -> Audit:
        raise NotImplementedError

    # -- the cycle's shape (single process; the leader scenario overrides these) ---------
    def victim(self, n: int) -> Proc:
        """The process to kill in cycle n, started if need be."""
        proc = self.start(n)
        proc.desired = self.desired
        return proc

    def after_kill(self, n: int, killed: Proc) -> None:
        """After cycle n's kill and the new desired count."""

    def final(self) -> Proc:
        """The process left alone to converge."""
        proc = self.start(len(self.procs))
        proc.desired = self.desired
        return proc


def run_chaos(
    scenario: Scenario,
    cycles: int,
    seed: int = 1,
    *,
    aim_share: float = 0.5,
    converge_timeout: float = 90.0,
) -> ChaosResult:
    """`cycles` kill -9 cycles of `scenario`, then convergence and the audit.

    Each process is killed `run_for` (a fraction of a tick to the scenario's `most_ticks`)
    after its first call; in `aim_share` of the cycles sooner, if a launch or removal of it
    gets under way first: then within that call's delay (before or after the server
    carries it out)."""
    rng = random.Random(seed)
    began = time.monotonic()
    history: list[int] = []

    def want(desired: int) -> None:
        scenario.desired = desired
        scenario.set_desired(desired)
        history.append(desired)

    scenario.setup()
    problems: list[str] = []
    converged, converge_s = False, 0.0
    try:
        want(rng.randint(1, scenario.max))
        for n in range(cycles):
            proc = scenario.victim(n)
            wait_for(
                lambda p=proc: scenario.acting(p) or not p.alive(),
                timeout=60,
                what=f"{scenario.name} process {proc.name} to act",
                describe=proc.tail,
            )
            if not proc.alive():
                problems.append(
                    f"process {proc.name} exited {proc.popen.returncode} before its kill:\n"
                    f"{proc.tail()}"
                )
                break
            # Drawn up front, so a seed gives the same draws however the run goes.
            run_for = rng.uniform(0.1, scenario.most_ticks) * scenario.interval
            aim = rng.random() < aim_share
            offset = rng.uniform(0.0, scenario.delay)
            _wait_to_kill(scenario, proc, run_for, offset if aim else None)
            proc.mid_call = scenario.in_flight(proc)
            proc.kill9()
            want(rng.randint(0, scenario.max))
            scenario.after_kill(n, proc)
        if not problems:
            converged, converge_s, trouble = _converge(scenario, converge_timeout)
            problems += trouble
        audit = scenario.audit(scenario.desired)
    finally:
        for proc in scenario.procs:
            if proc.alive():
                proc.kill9()
        scenario.teardown()
    return ChaosResult(
        scenario=scenario.name,
        cycles=cycles,
        seed=seed,
        delay_s=scenario.delay,
        launches=audit.launches,
        doubles=audit.doubles,
        over_removals=audit.over_removals,
        orphans=audit.orphans,
        converged=converged,
        converge_s=round(converge_s, 2),
        kills_mid_call=sum(p.mid_call for p in scenario.procs if p.killed),
        killed_having_acted=sum(scenario.acted(p) for p in scenario.procs if p.killed),
        wall_s=round(time.monotonic() - began, 1),
        desired=history,
        problems=problems + audit.problems,
        extra=audit.extra,
    )


def _wait_to_kill(scenario: Scenario, proc: Proc, run_for: float, aim: float | None) -> None:
    deadline = time.monotonic() + run_for
    while time.monotonic() < deadline:
        if aim is not None and scenario.changing(proc):
            time.sleep(aim)
            return
        time.sleep(0.01)


def _converge(scenario: Scenario, timeout: float) -> tuple[bool, float, list[str]]:
    """Leave one process alone until the server holds the desired count for two ticks
    (counted from its first call); then SIGTERM every process: each must exit 0 without a
    traceback."""
    proc = scenario.final()
    started = time.monotonic()
    deadline = started + timeout
    stable_since: float | None = None
    converged = False
    while time.monotonic() < deadline and proc.alive():
        if scenario.acting(proc) and scenario.settled(scenario.desired):
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2 * scenario.interval:
                converged = True
                break
        else:
            stable_since = None
        time.sleep(0.1)
    took = (stable_since or time.monotonic()) - started
    problems = []
    if not converged:
        problems.append(
            f"did not converge to {scenario.desired} within {timeout:.0f}s: "
            f"{scenario.describe()}\n{proc.tail()}"
        )
    for p in scenario.procs:
        if p.alive():
            status = p.terminate()
            text = p.log.read_text(errors="replace") if p.log.exists() else ""
            if status != 0 or "Traceback" in text:
                problems.append(f"process {p.name} exited {status} on SIGTERM:\n{p.tail()}")
    return converged, took, problems
