"""Trace readers: each format, good and bad, with line numbers in every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim.traces import TraceError, read_trace

SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"


def write(tmp_path: Path, text: str, name: str = "t.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_bundled_azure_sample_reads_with_relative_times():
    trace = read_trace("bundled:azure-llm-code-sample")
    assert len(trace) == 5740
    assert trace.arrivals[0] == 0.0 and np.all(np.diff(trace.arrivals) >= 0)
    assert 29 * 60 < trace.span_seconds <= 30 * 60
    assert trace.input_tokens[0] == 4808 and trace.output_tokens[0] == 10


def test_azure_timestamps_keep_their_seven_fractional_digits(tmp_path):
    path = write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:17:03.9799600,10,1\n2023-11-16 18:17:04.0319600,20,2\n")
    trace = read_trace(path)
    assert trace.arrivals[1] == pytest.approx(0.052, abs=1e-6)


@pytest.mark.skipif(not SHARED.exists(), reason="shared traces are not beside the checkout")
def test_the_full_azure_traces_and_alibaba_window_read():
    assert len(read_trace(str(SHARED / "AzureLLMInferenceTrace_conv.csv"))) == 19366
    jobs = read_trace(str(SHARED / "alibaba_gpu_v2023" / "openb_pod_list_default.csv"))
    assert set(np.unique(jobs.units)) <= {1, 2, 4, 8}
    assert jobs.span_seconds < 34.1 * 86400
    assert len(jobs) > 6000


def test_alibaba_reader_keeps_gpu_jobs_in_the_window(tmp_path):
    path = write(tmp_path, "name,num_gpu,creation_time,deletion_time,scheduled_time\n"
                 "a,1,100,200,100\nb,0,10000000,10000100,10000000\n"
                 "c,8,10000000,10000300,10000000\nd,2,10000050,10000050,\n")
    trace = read_trace(path, "alibaba-gpu")
    assert trace.units.tolist() == [8]  # a is before the window, b has no GPU, d never ran
    assert trace.service_seconds.tolist() == [300.0]


def test_generic_csv_with_seconds_and_tokens(tmp_path):
    path = write(tmp_path, "timestamp,input_tokens,output_tokens\n10,100,5\n12.5,200,10\n")
    trace = read_trace(path)
    assert trace.arrivals.tolist() == [0.0, 2.5]
    assert trace.durations(100, 5).tolist() == [2.0, 4.0]


def test_generic_csv_with_iso_times_service_seconds_gpus_and_pools(tmp_path):
    path = write(tmp_path, "timestamp,service_seconds,num_gpu,pool\n"
                 "2024-01-01T00:00:00Z,3,2,a\n2024-01-01T00:00:01Z,4,1,b\n"
                 "2024-01-01T00:00:05+00:00,5,4,a\n")
    trace = read_trace(path, pool="a")
    assert trace.arrivals.tolist() == [0.0, 5.0]
    assert trace.units.tolist() == [2, 4]
    assert trace.service_seconds.tolist() == [3.0, 5.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,service_seconds\n5,1\n3,1\n",
         "line 3: timestamp 3.000 is earlier than the previous row"),
        ("timestamp,service_seconds\n5,abc\n", "line 2: service_seconds must be a number"),
        ("timestamp,service_seconds\n5,-1\n", "line 2: service_seconds must be a number >= 0"),
        ("timestamp,input_tokens,output_tokens\n1,2.5,3\n", "line 2: input_tokens must be a whole"),
        ("timestamp,service_seconds\nyesterday,1\n", "line 2: timestamp 'yesterday' is neither"),
        ("timestamp\n1\n", "line 1: needs `service_seconds`, or both"),
        ("", "empty file"),
        ("timestamp,service_seconds\n", "no usable rows"),
        ("time,x\n1,2\n", "line 1: missing column(s) timestamp"),
    ],
)
def test_bad_generic_csv_gets_the_line_and_the_problem(tmp_path, text, message):
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_trace(write(tmp_path, text), "csv")


def test_azure_rows_out_of_order_are_refused(tmp_path):
    path = write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:17:05.0,10,1\n2023-11-16 18:17:04.0,20,2\n")
    with pytest.raises(TraceError, match="line 3: timestamp"):
        read_trace(path)


def test_a_missing_file_or_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(str(tmp_path / "nope.csv"), "csv")
    with pytest.raises(TraceError, match="unknown trace format 'parquet'"):
        read_trace(str(tmp_path / "x.csv"), "parquet")
    with pytest.raises(TraceError, match="no bundled trace 'nope'"):
        read_trace("bundled:nope")


def test_speedup_compresses_arrivals_and_repeat_concatenates(tmp_path):
    trace = read_trace(write(tmp_path, "timestamp,service_seconds\n0,1\n10,1\n20,1\n"))
    fast = trace.transformed(speedup=2.0)
    assert fast.arrivals.tolist() == [0.0, 5.0, 10.0]
    assert fast.service_seconds.tolist() == [1.0, 1.0, 1.0]
    twice = trace.transformed(repeat=2)
    assert twice.arrivals.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    with pytest.raises(TraceError):
        trace.transformed(speedup=0)
