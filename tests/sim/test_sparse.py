"""Sparse serving cases derived from the real traces (issue 16): deterministic, and with the
properties their documentation states."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim import sparse
from autoscaler.sim.sparse import (
    DAY,
    alibaba_serving,
    azure_code_sparse,
    describe,
    keep,
    sparse_trace,
)
from autoscaler.sim.traces import Trace, TraceError, read_trace

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
needs_traces = pytest.mark.skipif(
    not (TRACES / sparse.AZURE_CODE).exists() or not (TRACES / sparse.ALIBABA_PODS).exists(),
    reason="the public traces are not in ../shared/traces",
)


def tokens_trace(n: int, step: float = 1.0) -> Trace:
    a = np.arange(n, dtype=float) * step
    return Trace("t", a, None, np.arange(n) + 1000.0, np.arange(n) + 1.0)


# -- the rules, on made-up traces ------------------------------------------------------
def test_keep_is_a_fixed_share_decided_by_each_timestamp_alone():
    a = np.arange(20_000) * 0.37
    mask = keep(a, 5, "s")
    assert mask.dtype == bool and len(mask) == len(a)
    assert abs(mask.mean() - 0.2) < 0.01
    assert np.array_equal(mask, keep(a, 5, "s"))  # deterministic
    # a request's fate does not depend on the others: any subset keeps the same ones
    assert np.array_equal(keep(a[::3], 5, "s"), mask[::3])
    # the shares partition the requests; another salt draws another share
    shares = [keep(a, 5, "s", share=k) for k in range(5)]
    assert np.array_equal(np.sum(shares, axis=0), np.ones(len(a)))
    assert not np.array_equal(keep(a, 5, "other"), mask)


def test_azure_rule_slows_the_trace_down_and_keeps_each_requests_tokens():
    code = tokens_trace(1000, step=0.5)
    out = azure_code_sparse(code, slowdown=10.0, shares=5, salt="x")
    kept = keep(code.arrivals, 5, "x")
    assert len(out) == kept.sum()
    assert out.arrivals[0] == 0.0
    assert np.allclose(out.arrivals, (code.arrivals[kept] - code.arrivals[kept][0]) * 10.0)
    assert np.array_equal(out.input_tokens, code.input_tokens[kept])
    assert np.array_equal(out.output_tokens, code.output_tokens[kept])


def test_alibaba_rule_takes_the_first_days_submissions_with_cycled_tokens():
    jobs = Trace("jobs", np.array([0.0, 100.0, 5000.0, 2 * DAY - 1, 2 * DAY, 3 * DAY]),
                 np.ones(6), None, None, np.ones(6, dtype=np.int64))  # fmt: skip
    tokens = tokens_trace(3)
    out = alibaba_serving(jobs, tokens, days=2)
    assert out.arrivals.tolist() == [0.0, 100.0, 5000.0, 2 * DAY - 1]
    assert out.input_tokens.tolist() == [1000.0, 1001.0, 1002.0, 1000.0]
    assert out.output_tokens.tolist() == [1.0, 2.0, 3.0, 1.0]
    assert out.service_seconds is None and out.units is None


def test_describe_counts_rates_and_gaps():
    t = Trace("d", np.array([0.0, 10.0, 20.0, 420.0, 430.0, 1800.0]), np.ones(6))
    d = describe(t)
    assert d["requests"] == 6 and d["span_h"] == 0.5
    assert d["per_minute_max"] == 3 and d["per_minute_mean"] == pytest.approx(6 / 31, abs=0.01)
    assert d["gaps_over_s"] == {"90": 2, "300": 2, "600": 1, "1200": 1}
    assert d["gap_max_s"] == 1370.0
    assert sum(d["by_hour_of_day"]) == 6 and len(d["by_hour_of_day"]) == 24


def test_unknown_case_and_missing_traces_are_clear_errors(tmp_path):
    with pytest.raises(TraceError, match="no sparse case 'nope'"):
        sparse_trace("nope", tmp_path)
    with pytest.raises(TraceError, match="AUTOSCALER_TRACES"):
        sparse_trace("azure-code", tmp_path)


# -- on the real traces ----------------------------------------------------------------
@needs_traces
def test_azure_code_case_is_deterministic_and_as_documented():
    a, b = sparse_trace("azure-code", TRACES), sparse_trace("azure-code", TRACES)
    assert np.array_equal(a.arrivals, b.arrivals)
    assert np.array_equal(a.input_tokens, b.input_tokens)
    d = describe(a)
    # the numbers in autoscaler/sim/sparse.py's docstring
    assert d["requests"] == 1822 and d["span_h"] == pytest.approx(9.54, abs=0.01)
    assert d["per_minute_mean"] == pytest.approx(3.2, abs=0.05)  # a few a minute...
    assert d["per_minute_max"] == 50
    assert d["idle_minutes_share"] == pytest.approx(0.64, abs=0.01)  # ... with long gaps
    assert d["gap_p50_s"] == pytest.approx(2.5, abs=0.1)
    assert d["gaps_over_s"] == {"90": 49, "300": 26, "600": 13, "1200": 6}
    assert 30 * 60 < d["gap_max_s"] < 40 * 60
    # every kept request is a real one, with its own tokens, 10x later
    code = read_trace(str(TRACES / sparse.AZURE_CODE), "azure-llm")
    kept = keep(code.arrivals, sparse.AZURE_SHARES, sparse.AZURE_SALT)
    assert np.array_equal(a.output_tokens, code.output_tokens[kept])
    assert np.allclose(np.diff(a.arrivals), np.diff(code.arrivals[kept]) * 10.0)


@needs_traces
def test_alibaba_case_is_deterministic_and_keeps_the_daily_rhythm():
    a, b = sparse_trace("alibaba-gpu", TRACES), sparse_trace("alibaba-gpu", TRACES)
    assert np.array_equal(a.arrivals, b.arrivals)
    d = describe(a)
    assert d["requests"] == 2487 and a.span_seconds < 14 * DAY
    assert d["per_minute_mean"] == pytest.approx(7.4 / 60, abs=0.005)
    assert d["gap_p50_s"] == pytest.approx(253, abs=1)
    assert d["gap_p90_s"] == pytest.approx(1245, abs=1)
    assert d["gaps_over_s"]["1200"] == 267
    hours = np.asarray(d["by_hour_of_day"], float)
    assert hours[9:17].mean() > 2.5 * hours[3:8].mean()  # day ~3x the small hours
    # the arrivals are the GPU tasks' own submission times
    jobs = read_trace(str(TRACES / sparse.ALIBABA_PODS), "alibaba-gpu")
    assert np.array_equal(a.arrivals, jobs.arrivals[: len(a)])
    assert jobs.arrivals[len(a)] >= 14 * DAY


@needs_traces
def test_any_trace_option_takes_a_sparse_name(monkeypatch):
    monkeypatch.setenv("AUTOSCALER_TRACES", str(TRACES))
    t = read_trace("sparse:azure-code", "azure-llm")
    assert t.name.startswith("sparse:azure-code") and len(t) == 1822


@needs_traces
def test_the_command_prints_properties_and_writes_a_csv_that_reads_back(tmp_path, capsys):
    out = tmp_path / "sparse.csv"
    assert sparse.main(["azure-code", "--traces", str(TRACES), "--csv", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["requests"] == 1822
    back = read_trace(str(out), "csv")
    original = sparse_trace("azure-code", TRACES)
    assert np.allclose(back.arrivals, original.arrivals, atol=1e-6)
    assert np.array_equal(back.input_tokens, original.input_tokens)
