"""The observer: each source type within its own timeout, one deadline, errors counted.

Fake sources stand in for real ones; the same behaviour against real servers is in
test_servers_controller.py.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest

from autoscaler import telemetry
from autoscaler.observe import Observer
from autoscaler.signals.base import SignalKey, SignalRequest
from autoscaler.types import Reading
from tests.signals.helpers import code_of


class Fixed:
    """Answers every request with `value` after `delay` seconds (or when released)."""

    def __init__(self, value: float | None = 1.0, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0
        self.release = threading.Event()

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        self.calls += 1
        if self.delay:
            self.release.wait(self.delay)
        return {r.key: Reading(self.value, now) for r in requests}


class Broken:
    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        raise RuntimeError("bug in the source")


class Forgetful:
    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        return {}


@pytest.fixture
def observer() -> Iterator[Observer]:
    obs = Observer()
    yield obs
    obs.close()


def kind(name: str) -> str:
    """A source type name of its own, so telemetry counts start from zero."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def reqs(pool: str, n: int = 1) -> list[SignalRequest]:
    return [SignalRequest(pool, f"s{i}", None) for i in range(n)]


def test_a_late_source_is_stale_for_its_own_pools_only(observer: Observer) -> None:
    slow, fast = kind("slow"), kind("fast")
    late = Fixed(delay=5.0)
    t0 = time.monotonic()
    got = observer.read_signals(
        {slow: late, fast: Fixed(7.0)},
        {slow: reqs("a", 2), fast: reqs("b", 2)},
        now=10.0,
        timeouts={slow: 0.3, fast: 5.0},
        deadline_seconds=5.0,
    )
    elapsed = time.monotonic() - t0
    late.release.set()
    assert [got[("b", f"s{i}")].value for i in range(2)] == [7.0, 7.0]
    assert {code_of(got[("a", f"s{i}")].error) for i in range(2)} == {"timeout"}
    assert elapsed < 1.0
    assert telemetry.errors_count(slow, "timeout") == 2
    assert telemetry.errors_count(fast, "timeout") == 0


def test_timeouts_count_from_the_start_of_the_tick_not_one_after_another(
    observer: Observer,
) -> None:
    kinds = [kind(f"hung{i}") for i in range(3)]
    hung = {k: Fixed(delay=5.0) for k in kinds}
    t0 = time.monotonic()
    observer.read_signals(
        hung, {k: reqs(k) for k in kinds}, 0.0, {k: 0.4 for k in kinds}, deadline_seconds=5.0
    )
    elapsed = time.monotonic() - t0
    for source in hung.values():
        source.release.set()
    assert elapsed < 0.9, f"three 0.4s timeouts took {elapsed:.2f}s together"


def test_the_overall_deadline_cuts_a_longer_source_timeout(observer: Observer) -> None:
    k = kind("long")
    source = Fixed(delay=5.0)
    t0 = time.monotonic()
    got = observer.read_signals({k: source}, {k: reqs("a")}, 0.0, {k: 4.0}, deadline_seconds=0.3)
    elapsed = time.monotonic() - t0
    source.release.set()
    assert code_of(got[("a", "s0")].error) == "timeout"
    assert elapsed < 0.8


def test_a_source_still_reading_is_not_asked_again(observer: Observer) -> None:
    k = kind("busy")
    source = Fixed(delay=5.0)
    observer.read_signals({k: source}, {k: reqs("a")}, 0.0, {k: 0.1}, 1.0)
    got = observer.read_signals({k: source}, {k: reqs("a")}, 1.0, {k: 0.1}, 1.0)
    source.release.set()
    assert source.calls == 1
    assert code_of(got[("a", "s0")].error) == "busy"
    assert telemetry.errors_count(k, "busy") == 1


def test_a_source_that_raises_is_stale_for_its_own_pools_only(observer: Observer) -> None:
    bad, good = kind("broken"), kind("good")
    got = observer.read_signals(
        {bad: Broken(), good: Fixed(2.0)}, {bad: reqs("a"), good: reqs("b")}, 0.0, {}, 2.0
    )
    assert code_of(got[("a", "s0")].error) == "source_error"
    assert "bug in the source" in (got[("a", "s0")].error or "")
    assert got[("b", "s0")].value == 2.0


def test_a_signal_the_source_forgot_is_stale_not_zero(observer: Observer) -> None:
    k = kind("forgetful")
    got = observer.read_signals({k: Forgetful()}, {k: reqs("a")}, 0.0, {}, 2.0)
    assert got[("a", "s0")].value is None
    assert code_of(got[("a", "s0")].error) == "missing"


def test_values_read_times_and_empty_results_reach_telemetry(observer: Observer) -> None:
    k = kind("telemetry")
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    observer.read_signals({k: Fixed(4.5)}, {k: reqs(pool)}, 0.0, {}, 2.0)
    registry = telemetry.REGISTRY
    assert (
        registry.get_sample_value("autoscaler_signal_value", {"pool": pool, "signal": "s0"}) == 4.5
    )
    assert registry.get_sample_value("autoscaler_signal_stale", {"pool": pool, "signal": "s0"}) == 0
    assert registry.get_sample_value("autoscaler_signal_read_seconds_count", {"source": k}) == 1
    observer.read_signals({k: Fixed(None)}, {k: reqs(pool)}, 1.0, {}, 2.0)
    value = registry.get_sample_value("autoscaler_signal_value", {"pool": pool, "signal": "s0"})
    assert value is not None and math.isnan(value)
    assert telemetry.errors_count(k, "empty") == 1


@pytest.mark.parametrize(
    ("reading", "code"),
    [
        (Reading(1.0, 0.0), None),
        (Reading(0.0, 0.0), None),
        (Reading(None, 0.0), "empty"),
        (Reading(math.nan, 0.0), "non_finite"),
        (Reading(-1.0, 0.0), "negative"),
        (Reading(None, 0.0, "http_503: pool a signal b: ..."), "http_503"),
        (Reading(None, 0.0, "AccessDenied: not allowed"), "AccessDenied"),
        (Reading(None, 0.0, "connection refused, no code"), "other"),
    ],
)
def test_a_stale_reading_is_counted_by_its_code(reading: Reading, code: str | None) -> None:
    assert telemetry.stale_code(reading) == code
