"""A trace's format is detected from its header wherever the trace is named: on the
command line (`--trace`) and in a config file (`simulation.trace`, whose `format` is
optional). An explicit format wins; a header that shows no format is refused, naming the
file and the formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import load_config
from autoscaler.config.simulation import Trace
from autoscaler.sim.run import load_trace
from autoscaler.sim.traces import TraceError, guess_format

CONFIG = """installation: {id: test}
pools:
  - name: p
    target: {kind: simulated}
    min: 0
    max: 10
    startup: 60s
    policy: {type: queue-depth, signal: concurrency, target_per_replica: 8}
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,
                decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
      trace: TRACE
"""
AZURE = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:17:03.9799600,4808,10\n"
    "2023-11-16 18:17:05.0319600,3180,8\n"
)
ALIBABA = "name,creation_time,deletion_time,num_gpu\na,10000000,10000100,1\nb,10000010,10000050,2\n"
GENERIC = "timestamp,input_tokens,output_tokens\n0,100,10\n2.5,200,20\n"
UNKNOWN = "time,prompt,completion\n0,100,10\n"


def write(tmp_path: Path, name: str, text: str, trace: str) -> Path:
    (tmp_path / name).write_text(text)
    config = tmp_path / "pool.yaml"
    config.write_text(CONFIG.replace("TRACE", trace))
    return config


def configured(config_file: Path):  # the trace as `simulate` loads the configured one
    config = load_config(config_file)
    return load_trace(config.pools[0], None, None, None, None, config)


@pytest.mark.parametrize(
    ("text", "fmt"), [(AZURE, "azure-llm"), (ALIBABA, "alibaba-gpu"), (GENERIC, "csv")]
)
def test_the_header_tells_each_format(tmp_path, text, fmt):
    (tmp_path / "t.csv").write_text(text)
    assert guess_format(str(tmp_path / "t.csv")) == fmt


def test_the_config_format_is_optional_and_unset_by_default():
    assert Trace(path="t.csv").format is None
    assert Trace(path="t.csv", format="azure-llm").format == "azure-llm"


def test_a_configured_azure_trace_without_a_format_is_read_as_azure(tmp_path):
    trace = configured(write(tmp_path, "azure.csv", AZURE, "{path: azure.csv}"))
    # read as csv, the TIMESTAMP column would have been refused as unknown
    assert len(trace) == 2
    assert trace.arrivals.tolist() == pytest.approx([0.0, 1.052])
    assert trace.input_tokens.tolist() == [4808, 3180]


def test_the_configured_and_the_command_line_trace_are_read_alike(tmp_path):
    config = write(tmp_path, "azure.csv", AZURE, "{path: azure.csv}")
    from_config = CliRunner().invoke(cli, ["simulate", str(config), "--compare", "none",
                                           "--json", "-"])  # fmt: skip
    from_option = CliRunner().invoke(cli, ["simulate", str(config), "--compare", "none",
                                           "--trace", str(tmp_path / "azure.csv"),
                                           "--json", "-"])  # fmt: skip
    assert from_config.exit_code == 0, from_config.output
    assert from_option.exit_code == 0, from_option.output
    a, b = json.loads(from_config.stdout), json.loads(from_option.stdout)
    assert a["results"] == [{**r, "wall_seconds": a["results"][0]["wall_seconds"]}
                            for r in b["results"]]  # fmt: skip
    assert a["results"][0]["requests"] == 2


def test_an_explicit_format_wins_over_the_header(tmp_path):
    config = write(tmp_path, "azure.csv", AZURE, "{path: azure.csv, format: csv}")
    with pytest.raises(TraceError, match="TIMESTAMP"):  # read as csv: an unknown column
        configured(config)


def test_a_configured_trace_whose_header_shows_no_format_is_refused_naming_it(tmp_path):
    config = write(tmp_path, "odd.csv", UNKNOWN, "{path: odd.csv}")
    result = CliRunner().invoke(cli, ["simulate", str(config), "--compare", "none"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    out = result.output
    assert out.startswith("error: ") and str(tmp_path / "odd.csv") in out
    assert "cannot tell the trace format" in out and "'time,prompt,completion'" in out
    for fmt in ("azure-llm", "alibaba-gpu", "csv"):
        assert fmt in out
    assert "simulation.trace.format" in out and "--trace-format" in out


def test_a_command_line_trace_whose_header_shows_no_format_is_refused_too(tmp_path):
    (tmp_path / "odd.csv").write_text(UNKNOWN)
    config = write(tmp_path, "azure.csv", AZURE, "{path: azure.csv}")
    result = CliRunner().invoke(
        cli, ["simulate", str(config), "--compare", "none", "--trace", str(tmp_path / "odd.csv")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(tmp_path / "odd.csv") in result.output
    assert "cannot tell the trace format" in result.output


def test_naming_the_format_reads_a_header_detection_would_refuse(tmp_path):
    config = write(tmp_path, "odd.csv", UNKNOWN, "{path: odd.csv, format: csv}")
    with pytest.raises(TraceError, match="time") as caught:
        configured(config)
    assert "cannot tell" not in str(caught.value)  # the csv reader's own error


def test_a_sparse_case_is_a_trace_path_in_a_config_file_too(tmp_path):
    # `sparse:NAME` is a name, like `bundled:NAME`: never joined to the config's folder.
    config = write(tmp_path, "unused.csv", GENERIC, "{path: 'sparse:periodic-eval'}")
    assert load_config(config).resolve_path("sparse:periodic-eval") == "sparse:periodic-eval"
    trace = configured(config)
    assert trace.name.startswith("sparse:periodic-eval (")
    assert len(trace.arrivals) > 0
