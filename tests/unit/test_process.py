"""The process loop without a cluster: the file-driven loop with probes, ticks on a fake
clock, the plug-in protocols (pools, leadership, reporters, chores), AutoscalingPools from a
stand-in lister, clean exits on SIGTERM, and one-line errors for bad setups."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autoscaler import signals
from autoscaler.cli import cli
from autoscaler.cli_run import build_process
from autoscaler.clock import FakeClock
from autoscaler.config.file_settings import FileSettings, load_settings
from autoscaler.kube.pools import CrdPools
from autoscaler.process import Process, ProcessSettings

SIM_POOL = (
    "installation: {id: test}\n"
    "pools:\n  - name: p\n    target: {kind: simulated}\n    max: 5\n"
    "    signals: {queue: {source: {type: static, value: 25}}}\n"
    "    policy: {type: queue-depth, target_per_replica: 10}\n"
)


def spec(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": {"kind": "simulated"},
        "max": 5,
        "signals": {"queue": {"source": source}},
        "policy": {"type": "queue-depth", "target_per_replica": 10},
    }


def obj(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "generation": 1}, "spec": body}


def crd_process(*objects: dict[str, Any]) -> tuple[Process, Lister]:
    """A process whose pools come from a stand-in lister (nothing written back)."""
    lister = Lister(*objects)
    return Process(ProcessSettings(), pools=CrdPools(lister, FileSettings())), lister


class Lister:
    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)

    def list(self) -> list[dict[str, Any]]:
        return self.objects


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_file_driven_loop_ticks_once_and_persists_memory(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    state = tmp_path / "state.json"
    settings = ProcessSettings(file=load_settings(str(config), False), state=state, once=True)
    process = build_process(settings)
    assert process.leadership is None and process.reporters == [] and process.recorders == []
    result = process.run()
    assert result is not None
    assert [(d.pool, d.desired) for d in result.decisions] == [("p", 3)]
    assert json.loads(state.read_text())["p"]["actions"] == 1
    assert process.health.ready.is_set()


def test_crd_pools_join_and_leave_and_memory_survives_a_rebuild(monkeypatch):
    process, lister = crd_process(obj("a", spec({"type": "static", "value": 25})))
    process.load()
    first = process.tick()
    assert first is not None and [d.desired for d in first.decisions] == [3]
    lister.objects.append(obj("b", spec({"type": "static", "value": 45})))
    process.load()
    result = process.tick()
    assert result is not None
    assert {d.pool: d.desired for d in result.decisions} == {"a": 3, "b": 5}
    assert process.controller is not None
    # carried over the rebuild (no --state: the sequence starts at the process start time)
    assert process.controller.memory["a"].actions == process.epoch + 1
    lister.objects.clear()
    process.load()
    assert process.controller is None and process.tick() is None


def test_a_new_process_carries_on_from_the_planner_memory_in_the_pool_status():
    first, _ = crd_process(obj("a", spec({"type": "static", "value": 25})))
    first.load()
    first.tick()
    assert first.controller is not None
    left = first.controller.snapshot()["a"]
    assert left["recommendations"] and left["last_scale_at"] is not None
    # a restart, or another replica taking over: nothing in its own memory
    written = obj("a", spec({"type": "static", "value": 25}))
    written["status"] = {"plannerMemory": json.dumps(left)}
    second, _ = crd_process(written)
    second.epoch = first.epoch + 100  # started later
    second.load()
    assert second.controller is not None
    restored = second.controller.memory["a"]
    assert restored.last_scale_at == left["last_scale_at"]
    assert [list(r) for r in restored.recommendations] == left["recommendations"]
    # request ids go on from the new process's epoch, never repeating one the last used
    assert restored.actions == second.epoch > left["actions"]


def test_unreadable_planner_memory_in_status_is_dropped_and_the_pool_still_runs():
    broken = obj("a", spec({"type": "static", "value": 25}))
    broken["status"] = {"plannerMemory": "{not json"}
    process, _ = crd_process(broken)
    process.load()
    result = process.tick()
    assert result is not None and [d.desired for d in result.decisions] == [3]


def test_a_pool_whose_source_cannot_be_built_here_is_left_out_and_reported(monkeypatch):
    monkeypatch.setitem(signals.SOURCES, "redis", "no.such.module:Source")
    process, _ = crd_process(
        obj("good", spec({"type": "static", "value": 25})),
        obj("odd", spec({"type": "redis", "url": "redis://127.0.0.1:1", "key": "q"})),
    )
    process.load()
    assert process.controller is not None
    assert [p.name for p in process.controller.config.pools] == ["good"]
    [problem] = process.loaded.problems
    assert problem.ref.name == "odd"
    assert problem.message.startswith("spec.signals.queue.source:")
    assert "odd" not in process.loaded.refs


def test_a_bad_file_pool_source_is_an_error_not_a_silent_skip(monkeypatch, tmp_path):
    monkeypatch.setitem(signals.SOURCES, "static", "no.such.module:Source")
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    result = CliRunner().invoke(cli, ["run", "-c", str(config), "--once"])
    assert result.exit_code == 2
    assert "pools[0].signals.queue.source" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "give a configuration file"),
        (["run", "--crd-pools", "--installation-id", "t", "--kubeconfig", "/no/such/file"],
         "/no/such/file: no such file"),
        (["run", "--crd-pools", "--installation-id", "t"], "no Kubernetes credentials"),
        (["run", "--crd-pools"], "without a configuration file give --installation-id"),
        (["run", "--crd-pools", "--installation-id", "a b"], "--installation-id 'a b'"),
        (["run", "--crd-pools", "--installation-id", "t", "--lease-duration", "soon"],
         "--lease-duration"),
        (["run", "-c", "x.yaml", "-n", "ns"], "add --crd-pools"),
    ],
)
def test_bad_setups_exit_2_with_one_clear_line(args, message, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": ""}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") <= 4


def test_a_busy_port_is_a_clear_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli,
            ["run", "-c", str(config), "--once", "--bind", "127.0.0.1", "--health-port", str(port)],
        )
    assert result.exit_code == 2
    assert f"--health-port {port}: cannot listen on 127.0.0.1" in result.output


def test_sigterm_finishes_the_tick_and_exits_0_while_probes_answer(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    state = tmp_path / "state.json"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler.cli", "run", "-c", str(config), "--state", str(state),
         "--interval", "0.2", "--bind", "127.0.0.1", "--health-port", str(port),
         "--metrics-port", str(port), "--json-logs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert 'autoscaler_pool_desired_replicas{pool="p"} 3.0' in resp.read().decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines()]
    assert any("SIGTERM" in line.get("message", "") for line in lines)
    assert lines[-1]["message"].startswith("stopped after")
    assert json.loads(state.read_text())["p"]["actions"] == 1


def test_file_settings_from_a_config_keep_its_folder(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    settings = load_settings(str(config), False)
    assert settings.base_dir == Path(tmp_path).resolve()
    assert FileSettings().pools == ()


# -- the loop on a fake clock, with stand-in plug-ins ----------------------------------------
def file_process(tmp_path: Path, **kwargs: Any) -> Process:
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL)
    settings = ProcessSettings(file=load_settings(str(config), False))
    return Process(settings, clock=FakeClock(1000.0), **kwargs)


class StopAfter:
    """A chore that counts rounds, notes the clock and stops the loop after `rounds`."""

    def __init__(self, process_of: Any, rounds: int) -> None:
        self.process_of, self.rounds = process_of, rounds
        self.seen: list[tuple[float, bool]] = []
        self.closed = False

    def run_round(self, first: bool) -> None:
        process = self.process_of()
        self.seen.append((process.clock.now(), first))
        if len(self.seen) >= self.rounds:
            process.stop.set()

    def close(self) -> None:
        self.closed = True


def test_the_loop_ticks_at_the_configured_interval_on_its_clock(tmp_path):
    holder: list[Process] = []
    chore = StopAfter(lambda: holder[0], rounds=3)
    process = file_process(tmp_path, chores=[chore])
    holder.append(process)
    process.run()
    # the example pool's file has no controller section: the default 15 s interval
    assert chore.seen == [(1000.0, True), (1015.0, False), (1030.0, False)]
    assert process.ticks == 3 and chore.closed


class WakeOnFirst(StopAfter):
    """Wakes the loop from the first round, as the activator's reader does on demand."""

    def run_round(self, first: bool) -> None:
        super().run_round(first)
        if first:
            self.process_of().wake()


def test_a_wake_runs_the_next_round_at_once_and_then_the_interval_resumes(tmp_path):
    holder: list[Process] = []
    chore = WakeOnFirst(lambda: holder[0], rounds=3)
    process = file_process(tmp_path, chores=[chore])
    holder.append(process)
    process.run()
    # round 2 follows round 1 without waiting out the 15 s interval; round 3 waits again
    assert chore.seen == [(1000.0, True), (1000.0, False), (1015.0, False)]
    assert process.wakes == 1


def test_a_wake_from_another_thread_ends_a_real_wait_early(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(SIM_POOL.replace("pools:", "controller: {interval: 60s}\npools:"))
    process = build_process(ProcessSettings(file=load_settings(str(config), False)))
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while process.ticks < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    woken = time.monotonic()
    process.wake()
    while process.ticks < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.ticks == 2, "a wake must start a round long before the 60 s interval"
    assert time.monotonic() - woken < 5
    process.stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


class Standby:
    """Leadership that is won only after `standby_polls` looks."""

    def __init__(self, standby_polls: int) -> None:
        self.polls = standby_polls
        self.known = threading.Event()
        self.started = False

    def start(self, stop: threading.Event) -> threading.Thread:
        self.started = True
        thread = threading.Thread(target=lambda: None)
        thread.start()
        return thread

    def leads(self) -> bool:
        self.known.set()
        self.polls -= 1
        return self.polls < 0


def test_a_standby_is_ready_but_never_ticks_until_it_leads(tmp_path):
    holder: list[Process] = []
    chore = StopAfter(lambda: holder[0], rounds=1)
    leadership = Standby(standby_polls=5)
    process = file_process(tmp_path, chores=[chore], leadership=leadership)
    holder.append(process)
    result = process.run()
    assert leadership.started and process.health.ready.is_set()
    assert process.ticks == 1 and result is not None
    # five standby polls of 0.2 s on the fake clock went by before the first tick
    assert chore.seen == [(pytest.approx(1001.0), True)]


class Reports:
    keeps_memory = True

    def __init__(self) -> None:
        self.problems: list[int] = []
        self.ticks: list[tuple[float, list[str], bool]] = []

    def report_problems(self, loaded: Any, now: float) -> None:
        self.problems.append(len(loaded.problems))

    def report_tick(self, loaded: Any, result: Any, now: float, memory: Any) -> None:
        self.ticks.append((now, [d.pool for d in result.decisions], memory is not None))


def test_reporters_hear_every_load_and_tick_and_get_memory_only_outside_a_dry_run(tmp_path):
    reports = Reports()
    process = file_process(tmp_path, reporters=[reports])
    process.round()
    process.round()
    assert reports.problems == [0, 0]
    assert reports.ticks == [(1000.0, ["p"], True), (1000.0, ["p"], True)]
    dry = Reports()
    process = file_process(tmp_path, reporters=[dry])
    process.settings.dry_run = True
    process.round()
    assert dry.ticks == [(1000.0, ["p"], False)]


def test_a_pool_source_that_cannot_look_keeps_the_pools_the_process_has(tmp_path):
    process, lister = crd_process(obj("a", spec({"type": "static", "value": 25})))
    process.load()
    controller = process.controller
    assert controller is not None

    def broken() -> list[dict[str, Any]]:
        raise ConnectionError("API server down")

    lister.list = broken  # type: ignore[method-assign]
    process.load()
    assert process.controller is controller
    assert [d.pool for d in process.tick().decisions] == ["a"]
