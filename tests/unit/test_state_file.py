"""The state file (`run --state`, `explain --state`): anything but what the controller writes
is refused through the real command line with exit 2, the file, the JSON path of the bad
field and "move it away to start fresh", no traceback, the file untouched and nothing done;
what the current code writes keeps loading (a round trip over every built-in policy, the
learned idle gaps and a provider backoff included)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.cli import cli
from autoscaler.clock import FakeClock
from autoscaler.config.file_settings import FileSettings, load_settings
from autoscaler.errors import CapacityUnavailable
from autoscaler.kube.pools import CrdPools
from autoscaler.planner import MAX_ERROR_CHARS, PlanSpec, PoolMemory, plan
from autoscaler.process import Process, ProcessSettings
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.signals.static import StaticReader
from autoscaler.state import load_state
from autoscaler.state_schema import CLOCK_SKEW, MAX_ACTIONS, MAX_DEPTH, MAX_ITEMS
from autoscaler.types import Reading, Recommendation
from policies.idle_gaps import BINS, fresh

FRESH = "move it away to start fresh"
INSTALLATION = "installation: {id: test}\n"
GPU = (
    INSTALLATION + "pools:\n  - name: gpu\n    target: {kind: simulated}\n    max: 5\n"
    "    signals: {queue: {source: {type: static, value: 25}}}\n"
    "    policy: {type: queue-depth, target_per_replica: 10}\n"
)


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))  # exceptions are caught: a traceback shows


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def memory(**fields: Any) -> dict[str, Any]:
    """A pool's memory as the controller writes it, with some fields changed."""
    return {**PoolMemory().to_dict(), **fields}


def idle_model(**fields: Any) -> dict[str, Any]:
    return {**fresh(1000.0, True), **fields}


NOW = time.time()
# (state file text, the path of the bad field, what the message says)
BAD: dict[str, tuple[str, str, str]] = {
    "pool is a string": ('{"gpu": "x"}', "gpu", "must be a JSON object"),
    "pool is a list": ('{"gpu": [1, 2]}', "gpu", "must be a JSON object"),
    "history of numbers": (
        json.dumps({"gpu": memory(recommendations=[1, 2, 3])}),
        "gpu.recommendations[0]",
        "must be a list, got 1",
    ),
    "history entry too long": (
        json.dumps({"gpu": memory(scale_events=[[NOW - 10, 1, 2]])}),
        "gpu.scale_events[0]",
        "at most 2 item(s)",
    ),
    "replicas a float": (
        json.dumps({"gpu": memory(recommendations=[[NOW - 10, 2.5]])}),
        "gpu.recommendations[0][1]",
        "must be a whole number, got 2.5",
    ),
    "time a string": (
        json.dumps({"gpu": memory(last_scale_at="yesterday")}),
        "gpu.last_scale_at",
        'must be a finite number, got "yesterday"',
    ),
    "time NaN": ('{"gpu": {"recommendations": [[NaN, 1]]}}', "gpu.recommendations[0][0]", "nan"),
    "time negative": (json.dumps({"gpu": memory(zero_since=-5)}), "gpu.zero_since", ">= 0"),
    "time ahead of the clock": (
        json.dumps({"gpu": memory(last_scale_at=NOW + 10 * CLOCK_SKEW)}),
        "gpu.last_scale_at",
        "ahead of the clock",
    ),
    "policy is a list": (json.dumps({"gpu": memory(policy=[1, 2])}), "gpu.policy", "JSON object"),
    "backoff freezes the pool": (
        json.dumps({"gpu": memory(backoff_until=NOW + 1e9, backoff_seconds=600.0)}),
        "gpu.backoff_until",
        "more than the longest the controller sets (600s",
    ),
    "actions 1e308": (json.dumps({"gpu": memory(actions=1e308)}), "gpu.actions", "whole number"),
    "actions beyond 12 digits": (
        json.dumps({"gpu": memory(actions=MAX_ACTIONS + 1)}),
        "gpu.actions",
        f"must be <= {MAX_ACTIONS}",
    ),
    "actions true": (json.dumps({"gpu": memory(actions=True)}), "gpu.actions", "got true"),
    "actions null": (json.dumps({"gpu": memory(actions=None)}), "gpu.actions", "got null"),
    "unknown field": (
        json.dumps({"gpu": {"recomendations": []}}),
        "gpu.recomendations",
        "unknown field",
    ),
    "error too long": (
        json.dumps({"gpu": memory(last_error="x" * (MAX_ERROR_CHARS + 1))}),
        "gpu.last_error",
        f"longer than {MAX_ERROR_CHARS} characters",
    ),
    "empty pool name": ('{"": {}}', '[""]', "pool name: must not be empty"),
    "a pool name with dots": (
        json.dumps({"llm.v2": memory(policy={"children": [{}, {"at": "x"}]})}),
        '["llm.v2"].policy.children[1].at',
        "must be a finite number",
    ),
    "deeply nested JSON": (nested(100_000), "(top level)", "nested more than"),
    "nested past the bound": (
        '{"gpu": {"policy": {"own": ' + nested(MAX_DEPTH) + "}}}",
        "",  # the path goes on down: gpu.policy.own[0][0]...
        "gpu.policy.own[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
    ),
    "a list past the bound": (
        json.dumps({"gpu": memory(policy={"own": [0] * (MAX_ITEMS + 1)})}),
        "gpu.policy.own",
        f"more than {MAX_ITEMS}",
    ),
    "a huge integer in a policy's own key": (
        json.dumps({"gpu": memory(policy={"own": 10**30})}),
        "gpu.policy.own",
        "must be at most",
    ),
    "idle gaps of another shape": (
        json.dumps({"gpu": memory(policy={"idle": idle_model(bins=[0] * (BINS - 1))})}),
        "gpu.policy.idle.bins",
        f"at least {BINS} item(s)",
    ),
    "idle gaps with a string count": (
        json.dumps({"gpu": memory(policy={"idle": idle_model(gaps="3")})}),
        "gpu.policy.idle.gaps",
        "whole number",
    ),
    "idle gaps with a missing field": (
        json.dumps({"gpu": memory(policy={"idle": {"bins": [0] * BINS}})}),
        "gpu.policy.idle.gaps",
        "required field is missing (and ",
    ),
    "kpa window ahead of the clock": (
        json.dumps({"gpu": memory(policy={"samples": [[NOW + 1e6, 1.0]]})}),
        "gpu.policy.samples[0][0]",
        "ahead of the clock",
    ),
    "keda memory under hpa": (
        json.dumps({"gpu": memory(policy={"hpa": {"recs": [["a", 1]]}})}),
        "gpu.policy.hpa.recs[0][0]",
        "finite number",
    ),
    "not an object": ("[1, 2]", "", "not a JSON object"),
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(GPU)
    return path


def assert_refused(result: Any, state: Path, where: str, what: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert f"state file {state}: " in line
    if where:
        assert f": {where}: " in line, line
    assert what in line, line
    assert line.endswith(FRESH), line


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_run_refuses_a_bad_state_file_and_touches_nothing(case, config, tmp_path):
    text, where, what = BAD[case]
    state = tmp_path / "state.json"
    state.write_text(text)
    before = state.stat().st_mtime_ns
    result = run_cli("run", "-c", str(config), "--once", "--json", "--state", str(state))
    assert_refused(result, state, where, what)
    assert result.stdout == ""  # no tick, so no action
    assert state.read_text() == text and state.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "state.json"]


EXPLAINED = ["pool is a list", "history of numbers", "backoff freezes the pool"]
EXPLAINED += ["deeply nested JSON"]


@pytest.mark.parametrize("case", EXPLAINED)
def test_explain_refuses_the_same_state_files(case, config, tmp_path):
    text, where, what = BAD[case]
    state = tmp_path / "state.json"
    state.write_text(text)
    result = run_cli("explain", str(config), "--replicas", "1", "--state", str(state))
    assert_refused(result, state, where, what)
    assert "--state: state file" in result.stderr
    assert state.read_text() == text


def test_a_configured_longer_backoff_is_allowed(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("controller: {provider_backoff_max: 2h}\n" + GPU)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"gpu": memory(backoff_until=time.time() + 5000.0)}))
    result = run_cli("run", "-c", str(config), "--once", "--json", "--state", str(state))
    assert result.exit_code == 0, result.output
    (decision,) = json.loads(result.stdout)["decisions"]
    assert "provider backoff" in decision["reason"]  # held, as the file said
    result = run_cli("explain", str(config), "--replicas", "0", "--json", "--state", str(state))
    assert result.exit_code == 0, result.output
    # the default config's longest backoff is 600s: the same file is refused there
    config.write_text(GPU)
    state.write_text(json.dumps({"gpu": memory(backoff_until=time.time() + 5000.0)}))
    result = run_cli("run", "-c", str(config), "--once", "--state", str(state))
    assert_refused(result, state, "gpu.backoff_until", "600s")


def test_a_missing_state_file_starts_fresh_and_is_written(config, tmp_path):
    state = tmp_path / "state.json"
    first = run_cli("run", "-c", str(config), "--once", "--json", "--state", str(state))
    assert first.exit_code == 0, first.output
    assert json.loads(state.read_text())["gpu"]["actions"] == 1
    again = run_cli("run", "-c", str(config), "--once", "--json", "--state", str(state))
    assert again.exit_code == 0, again.output
    # the counter went on from the file: the request id of the second action is the next
    assert json.loads(state.read_text())["gpu"]["actions"] == 2
    (action,) = json.loads(again.stdout)["actions"]
    assert action["request_id"].endswith("-00000002")


# -- a round trip over every built-in policy ---------------------------------------------
SIGNALS = (
    "    signals:\n"
    "      queue: {source: {type: static, value: 25}}\n"
    "      in_flight: {source: {type: static, value: 4}}\n"
    "      arrival_rate: {source: {type: static, value: 2}}\n"
    "      concurrency: {source: {type: static, value: 6}}\n"
)
QUEUEING = (
    "{type: queueing, service_seconds: 2, slots_per_replica: 8, wait_slo: 1s, "
    "keep_alive: {replica_cost_per_hour: 4}}"
)
POLICIES = {
    "depth": "{type: queue-depth, target_per_replica: 10}",
    "llm": QUEUEING,
    "hpa": "{type: hpa, metrics: [{signal: queue, target_average_value: 5}]}",
    "keda": "{type: keda, triggers: [{signal: queue, target: 5}]}",
    "kpa": "{type: kpa}",
    "mixed": "{type: composite, policies: [{type: queue-depth, target_per_replica: 10}, "
    + QUEUEING
    + "]}",
}
CYCLE, BUSY, TICK = 300.0, 60.0, 15.0


def every_policy(tmp_path: Path) -> Path:
    text = INSTALLATION + "controller: {interval: 15s}\npools:\n"
    for name, policy in POLICIES.items():
        text += (
            f"  - name: {name}\n    target: {{kind: simulated}}\n    max: 8\n"
            f"    min: {1 if name in ('hpa', 'keda') else 0}\n"  # an HPA does not act at 0
            f"    startup: 60s\n{SIGNALS}    policy: {policy}\n"
        )
    path = tmp_path / "all.yaml"
    path.write_text(text)
    return path


def test_what_the_controller_writes_loads_again(tmp_path, monkeypatch):
    # Signals that come and go (busy the first minute of every five), so every policy
    # keeps memory of substance: windows, panic state, learned idle gaps.
    start = float(int(time.time()) - 4_000)

    def scripted(self: Any, requests: Any, now: float) -> dict[Any, Reading]:
        busy = (now - start) % CYCLE < BUSY
        return {r.key: Reading(float(r.source.value) if busy else 0.0, now) for r in requests}

    monkeypatch.setattr(StaticReader, "read", scripted)
    config = every_policy(tmp_path)
    state = tmp_path / "state.json"
    clock = FakeClock(start)
    provider = SimulatedProvider(clock)
    settings = ProcessSettings(file=load_settings(str(config), False), state=state)
    process = Process(settings, clock=clock, providers=lambda c, k: {"simulated": provider})
    process.load()
    assert process.controller is not None
    depth = process.controller.config.pool("depth")
    provider.fail_next(depth, *[CapacityUnavailable("no room", "Insufficient")] * 100)
    while clock.now() < start + 12 * CYCLE:
        process.round()
        clock.advance(TICK)
    process.close()
    written = json.loads(state.read_text())
    assert set(written) == set(POLICIES)
    assert written["depth"]["last_error"] and written["depth"]["backoff_seconds"] > 0
    assert written["llm"]["policy"]["idle"]["gaps"] > 0
    assert written["mixed"]["policy"]["children"][1]["idle"]["gaps"] > 0
    assert written["hpa"]["policy"]["recs"] and written["kpa"]["policy"]["samples"]
    assert written["keda"]["policy"]["hpa"]["recs"]
    # a restarted process (same clock) reads it as it was written
    again = Process(settings, clock=FakeClock(clock.now()))
    assert again.memory == written
    # and so do the commands, on the system clock
    text = state.read_text()
    result = run_cli("run", "-c", str(config), "--once", "--json", "--state", str(state))
    assert result.exit_code == 0, result.output
    assert json.loads(state.read_text())["keda"]["policy"]  # rewritten after its tick
    state.write_text(text)
    result = run_cli(
        "explain", str(config), "--pool", "llm", "--replicas", "1", "--json", "--state", str(state)
    )
    assert result.exit_code == 0, result.output
    (learned,) = json.loads(result.stdout)["keep_alive"]
    assert learned["learned"]["gaps"] > 0


def test_a_long_provider_error_is_cut_to_what_the_reader_takes():
    long = PoolMemory(last_error="x" * (3 * MAX_ERROR_CHARS))
    assert len(long.to_dict()["last_error"]) == MAX_ERROR_CHARS


# -- the memory in an AutoscalingPool's status -------------------------------------------
class Lister:
    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)

    def list(self) -> list[dict[str, Any]]:
        return self.objects


def pool_object(name: str, planner_memory: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {
            "target": {"kind": "simulated"},
            "max": 5,
            "signals": {"queue": {"source": {"type": "static", "value": 25}}},
            "policy": {"type": "queue-depth", "target_per_replica": 10},
        },
        "status": {"plannerMemory": json.dumps(planner_memory)},
    }


def test_bad_planner_memory_in_a_pool_status_is_dropped_and_the_pool_runs(caplog):
    lister = Lister(
        pool_object("a", memory(recommendations=[1, 2, 3])),
        pool_object("b", memory(backoff_until=time.time() + 1e9)),
        pool_object("c", memory(actions=7)),
    )
    process = Process(ProcessSettings(), pools=CrdPools(lister, FileSettings()))
    with caplog.at_level(logging.WARNING, logger="autoscaler.process"):
        process.load()
    result = process.tick()
    assert result is not None
    assert {d.pool: d.desired for d in result.decisions} == {"a": 3, "b": 3, "c": 3}
    assert process.controller is not None
    assert process.controller.memory["b"].backoff_until is None  # not frozen
    warned = caplog.text
    assert "status.plannerMemory.recommendations[0]: must be a list" in warned
    assert "status.plannerMemory.backoff_until" in warned
    assert "AutoscalingPool c" not in warned  # good memory is kept
    process.close()


# -- whatever the file holds: a clean error or a state ----------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
FIELDS = st.sampled_from([*PoolMemory().to_dict(), "idle", "children", "recs", "samples"])


def near_valid() -> st.SearchStrategy[dict[str, Any]]:
    """A written memory with a field (top level or in the policy's memory) made anything."""
    base = memory(policy={"idle": fresh(1000.0, False), "children": [{}]})
    return st.builds(
        lambda where, key, value: {
            "gpu": {**base, key: value}
            if where
            else {**base, "policy": {**base["policy"], key: value}}
        },
        st.booleans(),
        FIELDS,
        JSON,
    )


@settings(max_examples=300, deadline=None)
@given(data=JSON | near_valid())
def test_any_json_is_a_state_or_a_clean_refusal(data, tmp_path_factory):
    state = tmp_path_factory.mktemp("fuzz") / "state.json"
    state.write_text(json.dumps(data))
    try:
        loaded = load_state(state, now=NOW)
    except ValueError as exc:
        assert str(exc).endswith(FRESH) and f"state file {state}: " in str(exc)
        return
    for name, entry in loaded.items():  # what passed converts and plans without error
        remembered = PoolMemory.from_dict(entry)
        rec = Recommendation(2, "test", remembered.policy)
        plan(name, PlanSpec(0, 5), rec, 1, NOW, remembered)
