"""The controller tick: observe -> decide -> plan -> act -> record, with injected parts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from autoscaler.clock import FakeClock
from autoscaler.controller import Controller
from autoscaler.errors import CapacityUnavailable, ProviderError, SourceUnavailable, Throttled
from autoscaler.providers import SimulatedProvider
from autoscaler.record import ListRecorder
from autoscaler.types import Reading

from .conftest import config_from

CONFIG = """installation: {id: test}
controller: {interval: 15s, observe_deadline: 1s, source_timeout: 0.5s}
pools:
  - name: chat
    target: {kind: simulated}
    max: 10
    startup: 60s
    signals:
      queue: {source: {type: static, value: 0}}
    policy: {type: queue-depth, target_per_replica: 10}
    behavior:
      scale_down: {stabilization_window: 0}
      scale_to_zero_after: 0
"""


class Scripted:
    """A signal source whose values and failures the test sets; `hang()` makes its reads
    block until `release()` (a source that stopped answering)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float | None] = {}
        self.fail: Exception | None = None
        self.calls = 0
        self._answering = threading.Event()
        self._answering.set()

    def hang(self) -> None:
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    def read(self, requests, now):
        self.calls += 1
        self._answering.wait(10)
        if self.fail is not None:
            raise self.fail
        return {r.key: Reading(self.values.get(r.key), now) for r in requests}


@pytest.fixture
def rig():
    clock = FakeClock(1000.0)
    provider = SimulatedProvider(clock)
    source = Scripted()
    recorder = ListRecorder()

    def make(text: str = CONFIG, **kw) -> Controller:
        config = config_from(text)
        kw.setdefault("recorder", recorder)
        return Controller(config, {"simulated": provider}, {"static": source}, clock, **kw)

    yield clock, provider, source, recorder, make


def test_a_backlog_scales_the_pool_up_and_replicas_become_ready_after_startup(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 45
    result = controller.tick()
    assert [d.desired for d in result.decisions] == [5]
    assert result.actions[0].applied
    pool = controller.config.pools[0]
    assert provider.describe(pool).ready == 0
    clock.advance(60)
    assert provider.describe(pool).ready == 5
    assert recorder.entries[0][0].reason == "queue-depth: backlog 45 / 10 per replica -> 5"


def test_a_failing_source_holds_capacity_instead_of_scaling_down(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 45
    controller.tick()
    source.fail = ConnectionError("prometheus down")
    clock.advance(15)
    result = controller.tick()
    (decision,) = result.decisions
    assert decision.desired == 5 and decision.stale
    assert "ConnectionError: prometheus down" in decision.reason
    assert not result.actions


def test_an_empty_reading_is_missing_not_zero(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 45
    controller.tick()
    source.values[("chat", "queue")] = None
    clock.advance(15)
    (decision,) = controller.tick().decisions
    assert decision.desired == 5 and "no value (empty result)" in decision.reason


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -3.0])
def test_non_finite_or_negative_readings_are_stale(rig, bad):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 45
    controller.tick()
    source.values[("chat", "queue")] = bad
    clock.advance(15)
    (decision,) = controller.tick().decisions
    assert decision.desired == 5 and decision.stale


def test_a_slow_source_is_cut_off_at_its_timeout_and_its_pool_held(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 45
    controller.tick()
    source.hang()
    try:
        started = time.monotonic()
        (decision,) = controller.tick().decisions
        assert time.monotonic() - started < 1.5
        assert decision.stale and "timeout" in decision.reason
        # the hung read is still running: the next tick does not pile another one on it
        calls = source.calls
        (decision,) = controller.tick().decisions
        assert source.calls == calls and "previous read is still running" in decision.reason
    finally:
        source.release()


def test_a_slow_source_does_not_hold_pools_of_other_sources(rig):
    clock, provider, source, recorder, make = rig
    text = CONFIG + """
  - name: batch
    target: {kind: simulated}
    max: 10
    signals:
      queue: {source: {type: prometheus, url: "http://127.0.0.1:9", query: q}}
    policy: {type: queue-depth, target_per_replica: 10}
"""
    slow, fast = Scripted(), Scripted()
    slow.values[("chat", "queue")] = 45
    fast.values[("batch", "queue")] = 30
    controller = Controller(
        config_from(text), {"simulated": provider}, {"static": slow, "prometheus": fast}, clock
    )
    slow.hang()
    try:
        started = time.monotonic()
        result = controller.tick()
        assert time.monotonic() - started < 1.5  # cut at the slow source's 0.5 s timeout
    finally:
        slow.release()
    by_pool = {d.pool: d for d in result.decisions}
    assert by_pool["chat"].stale and "timeout" in by_pool["chat"].reason
    assert by_pool["chat"].desired == by_pool["chat"].current == 0  # held
    assert not by_pool["batch"].stale and by_pool["batch"].desired == 3
    assert [(a.pool, a.desired, a.applied) for a in result.actions] == [("batch", 3, True)]


def test_capacity_errors_back_off_and_retry_after_the_backoff(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    pool = controller.config.pools[0]
    provider.fail_next(pool, CapacityUnavailable("no GPUs", "InsufficientInstanceCapacity"))
    source.values[("chat", "queue")] = 45
    result = controller.tick()
    assert result.actions[0].error_code == "InsufficientInstanceCapacity"
    clock.advance(15)
    (decision,) = controller.tick().decisions
    assert decision.desired == 0 and "provider backoff" in decision.reason
    clock.advance(20)
    result = controller.tick()
    assert result.actions[0].applied and provider.describe(pool).desired == 5


def test_a_request_id_spent_on_other_parameters_starts_a_new_request_at_once(rig):
    """EC2's IdempotentParameterMismatch: the id's earlier attempt landed (a process killed
    after its call, before saving); retrying under it is refused forever, so the id moves
    on and nothing backs off (tests/chaos found the stall)."""
    clock, provider, source, recorder, make = rig
    controller = make()
    pool = controller.config.pools[0]
    provider.fail_next(pool, ProviderError("token used", "IdempotentParameterMismatch"))
    source.values[("chat", "queue")] = 45
    first = controller.tick().actions[0]
    assert first.error_code == "IdempotentParameterMismatch" and not first.applied
    clock.advance(15)
    retry = controller.tick().actions[0]
    assert retry.applied and retry.request_id != first.request_id
    assert retry.request_id.endswith("-00000002")
    assert provider.describe(pool).desired == 5


def test_a_capacity_limit_launches_what_it_can_and_backs_off(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    pool = controller.config.pools[0]
    provider.set_limit(pool, 3)
    source.values[("chat", "queue")] = 100
    result = controller.tick()
    assert result.actions[0].error_code == "InsufficientInstanceCapacity"
    assert provider.describe(pool).desired == 3


def test_one_pools_provider_failure_does_not_stop_the_others(rig):
    clock, provider, source, recorder, make = rig
    text = CONFIG + CONFIG.split("pools:\n", 1)[1].replace("name: chat", "name: other")
    controller = make(text)
    provider.fail_next(controller.config.pools[0], Throttled("slow down", "RequestLimitExceeded"))
    source.values[("chat", "queue")] = 20
    source.values[("other", "queue")] = 20
    result = controller.tick()
    assert {a.pool: a.applied for a in result.actions} == {"chat": False, "other": True}


def test_a_slow_provider_does_not_delay_other_pools_actions(rig):
    clock, provider, source, recorder, make = rig
    text = CONFIG + CONFIG.split("pools:\n", 1)[1].replace("name: chat", "name: other")
    release = threading.Event()

    class Slow(SimulatedProvider):
        def scale(self, pool, desired, request_id):
            if pool.name == "chat":
                release.wait(5)
            super().scale(pool, desired, request_id)

    slow = Slow(clock)
    config = config_from(text.replace("interval: 15s", "interval: 15s, act_deadline: 0.5s"))
    controller = Controller(config, {"simulated": slow}, {"static": source}, clock)
    source.values[("chat", "queue")] = 20
    source.values[("other", "queue")] = 20
    result = controller.tick()
    by_pool = {a.pool: a for a in result.actions}
    assert by_pool["other"].applied
    assert by_pool["chat"].error_code == "Timeout"
    assert controller.tick().skipped == {"chat": "previous action still running"}
    release.set()


def test_a_restarted_controller_reuses_the_request_id_of_an_unfinished_action(rig):
    """A crash between the provider call and saving memory must not double the action."""
    clock, provider, source, recorder, make = rig
    first = make()
    source.values[("chat", "queue")] = 45
    saved = json.loads(json.dumps(first.snapshot()))  # memory before the action
    result = first.tick()
    request_id = result.actions[0].request_id
    # crash: the action happened but the memory after it was lost, and the provider's
    # answer (the new replicas) is not visible yet to the restarted controller
    second = make()
    second.restore(saved)
    state = provider._pools["chat"]
    launched, state.replicas = list(state.replicas), []
    result = second.tick()
    assert result.actions[0].request_id == request_id
    assert state.replicas == []  # recognised as already done: nothing launched twice
    state.replicas = launched
    assert provider.describe(second.config.pools[0]).desired == 5


def test_dry_run_decides_but_changes_nothing(rig):
    clock, provider, source, recorder, make = rig
    controller = make(dry_run=True)
    source.values[("chat", "queue")] = 45
    result = controller.tick()
    assert result.decisions[0].desired == 5
    assert not result.actions[0].applied
    assert provider.calls == []


def test_an_unknown_capacity_skips_the_pool_with_a_reason(rig):
    clock, provider, source, recorder, make = rig

    class Broken(SimulatedProvider):
        def describe(self, pool):
            raise Throttled("describe throttled", "RequestLimitExceeded")

    controller = Controller(config_from(CONFIG), {"simulated": Broken(clock)},
                            {"static": source}, clock)
    result = controller.tick()
    assert result.skipped == {"chat": "capacity unknown: RequestLimitExceeded: describe throttled"}
    assert result.decisions == []


def test_a_policy_bug_holds_its_pool_and_the_tick_goes_on(rig):
    clock, provider, source, recorder, make = rig
    controller = make()

    class Boom:
        def recommend(self, observation, memory):
            raise ZeroDivisionError("bug")

    controller.policies["chat"] = Boom()
    source.values[("chat", "queue")] = 45
    (decision,) = controller.tick().decisions
    assert decision.direction == "hold" and "policy queue-depth failed" in decision.reason


def test_a_broken_recorder_does_not_stop_scaling(rig):
    clock, provider, source, recorder, make = rig

    class BadRecorder:
        def record(self, decision, action):
            raise OSError("disk full")

    controller = make(recorder=BadRecorder())
    source.values[("chat", "queue")] = 45
    assert controller.tick().actions[0].applied


def test_readings_older_than_max_age_are_stale(rig):
    clock, provider, source, recorder, make = rig
    controller = make(CONFIG.replace("{source: {type: static, value: 0}}",
                                     "{source: {type: static, value: 0}, max_age: 30s}"))

    class Old:
        def read(self, requests, now):
            return {r.key: Reading(10.0, now - 120) for r in requests}

    controller.sources["static"] = Old()
    (decision,) = controller.tick().decisions
    assert decision.stale and "120s old (max_age 30s)" in decision.reason


def test_a_polled_reading_stays_usable_until_its_next_read_is_due(rig):
    """An SQS queue read every 60 s (poll_interval) with a 15 s tick: a reading 70 s old is
    still fresh by the default max_age (the interval plus 3 ticks); 110 s old is stale."""
    clock, provider, source, recorder, make = rig
    sqs = "{type: sqs, queue_url: 'https://sqs.us-east-1.amazonaws.com/1/q', poll_interval: 60s}"
    controller = make(CONFIG.replace("{source: {type: static, value: 0}}", f"{{source: {sqs}}}"))
    age = {"s": 70.0}

    class Polled:
        def read(self, requests, now):
            return {r.key: Reading(45.0, now - age["s"]) for r in requests}

    controller.sources["sqs"] = Polled()
    (decision,) = controller.tick().decisions
    assert not decision.stale and decision.desired == 5, decision.reason
    age["s"] = 110.0
    (decision,) = controller.tick().decisions
    assert decision.stale and "110s old (max_age 105s)" in decision.reason


def test_the_static_source_reads_configured_values():
    clock = FakeClock()
    provider = SimulatedProvider(clock)
    controller = Controller(config_from(CONFIG.replace("value: 0", "value: 31")),
                            {"simulated": provider}, clock=clock)
    assert controller.tick().decisions[0].desired == 4


def test_a_source_type_without_a_reader_is_refused_by_name(monkeypatch):
    from autoscaler import signals

    monkeypatch.setitem(signals.SOURCES, "nvml", "autoscaler.signals.not_written_yet:X")
    config = config_from(CONFIG.replace("type: static, value: 0", "type: nvml"))
    clock = FakeClock()
    with pytest.raises(SourceUnavailable,
                       match=r"pools\[0\]\.signals\.queue\.source: signal source 'nvml' is not"):
        Controller(config, {"simulated": SimulatedProvider(clock)}, clock=clock)


def test_a_reader_whose_dependency_is_missing_names_the_package(monkeypatch, tmp_path):
    from autoscaler import signals

    (tmp_path / "needs_missing_dep.py").write_text("import surely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(signals.SOURCES, "nvml", "needs_missing_dep:X")
    config = config_from(CONFIG.replace("type: static, value: 0", "type: nvml"))
    clock = FakeClock()
    with pytest.raises(SourceUnavailable, match="surely_not_installed_pkg"):
        Controller(config, {"simulated": SimulatedProvider(clock)}, clock=clock)


class Tidying(SimulatedProvider):
    """A simulated provider with housekeeping (like the job provider's finished-Job cleanup)."""

    has_housekeeping = True

    def __init__(self, clock):
        super().__init__(clock)
        self.tidied: list[str] = []

    def tidy(self, pool):
        self.tidied.append(pool.name)
        if len(self.tidied) == 2:
            raise RuntimeError("API blip")  # must not fail the tick, and is retried


def test_housekeeping_runs_on_ticks_without_an_action_never_in_a_dry_run(rig):
    clock, _, source, recorder, _ = rig
    provider = Tidying(clock)
    config = config_from(CONFIG)

    def controller(**kw):
        return Controller(config, {"simulated": provider}, {"static": source}, clock,
                          recorder=recorder, **kw)  # fmt: skip

    shadow = controller(dry_run=True)
    source.values[("chat", "queue")] = 0
    shadow.tick()
    shadow.close()
    assert provider.tidied == [], "a dry run changes nothing, housekeeping included"

    live = controller()
    source.values[("chat", "queue")] = 45
    live.tick()  # acts: no housekeeping on the same tick
    live._acting["chat"].result(timeout=5)
    assert provider.tidied == []
    source.values[("chat", "queue")] = 50  # still 5 replicas: holds, so it tidies
    for _ in range(3):
        clock.advance(15)
        result = live.tick()
        assert not result.actions
        live._acting["chat"].result(timeout=5)
    assert provider.tidied == ["chat", "chat", "chat"], "the failed one was retried"
    live.close()


def test_without_persisted_memory_request_ids_do_not_repeat_after_a_restart(rig):
    """A provider takes a reused request id for a retry and does nothing (EC2's ClientToken,
    the job provider's request label): a process that keeps no memory must not reuse ids."""
    clock, provider, source, recorder, make = rig
    source.values[("chat", "queue")] = 45
    before = make(request_epoch=1_795_990_000).tick().actions[0].request_id
    clock.advance(60)
    source.values[("chat", "queue")] = 95
    after = make(request_epoch=1_795_990_060).tick().actions[0].request_id
    assert before != after
    assert before.endswith("-1795990001") and after.endswith("-1795990061")
    fresh = make()
    source.values[("chat", "queue")] = 10  # 10 -> 1 replica: an action
    assert fresh.tick().actions[0].request_id.endswith("-00000001")


def test_a_provider_without_housekeeping_never_holds_its_pool_for_it(rig):
    clock, provider, source, recorder, make = rig
    controller = make()
    source.values[("chat", "queue")] = 0
    for _ in range(3):  # held ticks: nothing to tidy, nothing submitted in the background
        result = controller.tick()
        assert result.skipped == {} and controller._acting == {}
        clock.advance(15)


FROM_PODS = """installation: {id: test}
controller: {interval: 15s, observe_deadline: 1s, source_timeout: 0.5s}
pools:
  - name: chat
    target: {kind: simulated}
    max: 10
    startup: 60s
    signals:
      queue: {source: {type: static, value: 0}, from_pods: true}
    policy: {type: queue-depth, target_per_replica: 10}
    behavior:
      scale_down: {stabilization_window: 0}
      scale_to_zero_after: 0
      stale: {fallback_after: 60s, fallback_replicas: 2}
"""


def test_a_from_pods_signal_with_no_series_at_zero_reads_as_zero_and_no_fallback_fires(rig):
    clock, provider, source, recorder, make = rig
    controller = make(FROM_PODS)
    source.values[("chat", "queue")] = None  # no pods, so no series
    for _ in range(10):  # 150 s: well past fallback_after
        (decision,) = controller.tick().decisions
        assert decision.desired == 0 and not decision.stale, decision.reason
        clock.advance(15)


def test_a_failing_from_pods_source_still_holds_and_its_fallback_still_fires(rig):
    clock, provider, source, recorder, make = rig
    controller = make(FROM_PODS)
    source.fail = ConnectionError("prometheus down")
    decisions = []
    for _ in range(6):
        (decision,) = controller.tick().decisions
        decisions.append(decision)
        clock.advance(15)
    assert all(d.stale for d in decisions)
    assert decisions[0].desired == 0 and decisions[-1].desired == 2  # after 60 s stale


def test_a_from_pods_signal_with_no_series_while_replicas_are_ready_is_stale(rig):
    clock, provider, source, recorder, make = rig
    controller = make(FROM_PODS)
    source.values[("chat", "queue")] = 25
    controller.tick()
    clock.advance(60)  # the 3 replicas are ready now: their metrics vanishing is an outage
    source.values[("chat", "queue")] = None
    (decision,) = controller.tick().decisions
    assert decision.stale and decision.desired == 3


class Empty:
    """Prometheus with no series for anything: what it answers while a pool has no pods."""

    def read(self, requests, now):
        return {r.key: Reading(None, now) for r in requests}


def test_the_shipped_llm_example_stays_at_zero_until_the_activator_holds_a_request():
    """examples/llm-serving.yaml at 0 replicas: its pod metrics have no series and the
    activator counts nothing; no capacity nobody asked for (no stale fallback) for an hour,
    then one held request wakes it."""
    from pathlib import Path

    from autoscaler.config import load_config
    from autoscaler.config.targets import SimulatedTarget

    example = Path(__file__).resolve().parents[2] / "examples" / "llm-serving.yaml"
    config = load_config(str(example))
    pool = config.pools[0].model_copy(update={"target": SimulatedTarget()})
    config = config.model_copy(update={"pools": [pool]})
    clock = FakeClock(1000.0)
    activator = Scripted()
    activator.values = {("llm-chat", "arrival_rate"): 0.0, ("llm-chat", "held"): 0.0}
    controller = Controller(config, {"simulated": SimulatedProvider(clock)},
                            {"prometheus": Empty(), "activator": activator}, clock)  # fmt: skip
    for _ in range(240):  # an hour at 15 s
        (decision,) = controller.tick().decisions
        assert decision.desired == 0 and not decision.stale, decision.reason
        clock.advance(15)
    activator.values[("llm-chat", "held")] = 1.0
    (decision,) = controller.tick().decisions
    assert decision.desired == 1, decision.reason
    assert "queue-depth wins" in decision.reason
