"""The output convention (autoscaler/cli_output.py): `-o table|json|yaml`, the result alone
on standard output, tables that never cut a number, the deprecated spellings, `version`
and shell completion."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from autoscaler.cli import cli
from autoscaler.cli_output import fit, print_table, stdout_console
from autoscaler.cli_sim import results_table, zero_table
from autoscaler.sim.report_units import duration

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")
SIM = str(ROOT / "examples" / "simulated.yaml")

IAM = [
    "iam-policy",
    "-c",
    str(ROOT / "deploy" / "aws" / "example-config.yaml"),
    "--account",
    "123456789012",
    "--instance-role",
    "arn:aws:iam::123456789012:role/gpu-worker",
]
EXPLAIN = ["explain", LLM, "--signal", "queue=120", "--signal", "in_flight=64", "--replicas", "8"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def long_report():
    """A simulation report whose figures are as long as a month of a big fleet gives."""
    metrics = [
        {"policy": "queueing", "gpu_hours": 23179.123, "cost": 1234567.891, "efficiency": 0.4567,
         "wait_p50_s": 0.0, "wait_p99_s": 21600.25, "wait_max_s": 86400.0 * 3,
         "slo_attainment": 0.987654,
         "scale_actions": 123456},
        {"policy": "keepalive-knative", "gpu_hours": 98765.4, "cost": 7654321.0,
         "efficiency": 0.1, "wait_p50_s": 12.5, "wait_p99_s": 86399.99, "wait_max_s": 90000.0,
         "slo_attainment": 0.5,
         "scale_actions": 7},
    ]  # fmt: skip
    return SimpleNamespace(runs=[SimpleNamespace(metrics=m) for m in metrics])


def cells(report) -> list[str]:
    """Every figure the results table shows, as it shows it."""
    out = []
    for run in report.runs:
        m = run.metrics
        out += [f"{m['gpu_hours']:.2f}", f"{m['cost']:.2f}", f"{m['efficiency']:.1%}",
                f"{m['wait_p50_s']:.2f}s", f"{m['wait_p99_s']:.2f}s", duration(m["wait_max_s"]),
                f"{m['slo_attainment']:.2%}", str(m["scale_actions"]), m["policy"]]  # fmt: skip
    return out


def zero_report(wait: float = 21600.0, count: int = 98765):
    """What happened at zero: long figures, or (small `wait` and `count`) figures shorter
    than their headers ("wait p50/p99/max"), which then wrap between words."""
    metrics = {"policy": "queueing", "at_zero": "lost", "cold_starts": 12, "lost_at_zero": 3,
               "cold_start_requests": count, "cold_start_wait_p50_s": 0.0, "rejected": 0,
               "cold_start_wait_p99_s": wait, "cold_start_wait_max_s": wait,
               "timed_out": count}  # fmt: skip
    return SimpleNamespace(runs=[SimpleNamespace(metrics=metrics)])


TABLES = {
    "results": lambda: results_table(long_report(), "pool p on a month of a large fleet"),
    "zero": lambda: zero_table(zero_report()),
    "zero, short figures": lambda: zero_table(zero_report(wait=0.0, count=0)),
}


@pytest.mark.parametrize("width", [40, 60, 80, 200])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_table_never_cuts_a_number_at_any_width(name, width, capsys):
    table = TABLES[name]()
    buffer = io.StringIO()
    print_table(table, Console(file=buffer, width=width, color_system=None))
    shown = buffer.getvalue()
    assert "…" not in shown
    kept, dropped = fit(table, width)
    # Drawn without a width limit, the fitted table is still no wider than asked: nothing
    # was left for the console to squeeze or crop.
    unlimited = io.StringIO()
    Console(file=unlimited, width=10_000, color_system=None).print(kept)
    assert max(len(line) for line in unlimited.getvalue().splitlines()) <= width
    headers = [str(c.header) for c in kept.columns]
    assert headers[0] == "policy"  # the row label always stays
    figures_by_column = {str(c.header): [str(v) for v in c._cells] for c in table.columns}
    for header in headers:
        for figure in figures_by_column[header]:
            assert re.search(rf"(^|\s){re.escape(figure)}(\s|$)", shown, re.M), (figure, shown)
    note = capsys.readouterr().err
    assert set(headers) | set(dropped) == set(figures_by_column)
    assert bool(dropped) == (width < {"zero, short figures": 80}.get(name, 200))
    if dropped:  # a narrow terminal gets fewer columns, and is told which
        assert note.startswith(f"left out at {width} columns: {', '.join(dropped)}")
    else:
        assert note == ""


def test_a_piped_table_is_printed_whole_without_a_width_limit():
    report = long_report()
    console = stdout_console()  # pytest captures standard output: not a terminal
    assert console.width > 1000
    console.file = buffer = io.StringIO()
    print_table(results_table(report, "t"), console)
    shown = buffer.getvalue()
    for figure in cells(report):
        assert figure in shown, figure
    assert "…" not in shown
    for header in ("p50 wait", "p99 wait", "SLO met", "actions"):
        assert header in shown


def test_simulate_prints_every_figure_of_its_results_whole_when_piped():
    table = invoke("simulate", SIM, "--compare", "hpa")
    data = json.loads(invoke("simulate", SIM, "--compare", "hpa", "-o", "json").stdout)
    assert table.exit_code == 0, table.output
    report = SimpleNamespace(runs=[SimpleNamespace(metrics=m) for m in data["results"]])
    for figure in cells(report):
        assert figure in table.stdout, (figure, table.stdout)
    assert "…" not in table.stdout
    assert "start: warm" in table.stderr and "start: warm" not in table.stdout


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["validate", LLM], lambda d: d == [{"file": LLM, "ok": True, "pools": ["llm-chat"]}]),
        (EXPLAIN, lambda d: d["decision"]["pool"] == "llm-chat"),
        (["simulate", SIM, "--compare", "none"], lambda d: d["results"][0]["policy"]),
        (["run", "-c", SIM, "--once"], lambda d: d["decisions"][0]["pool"] == "sim-llm"),
        (["version"], lambda d: d["autoscaler"] and d["python"] and "click" in d["dependencies"]),
        (["schema"], lambda d: "pools" in d["properties"]),
        (["crd"], lambda d: d["kind"] == "CustomResourceDefinition"),
        (IAM, lambda d: d["Version"] == "2012-10-17" and d["Statement"]),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_o_json_and_yaml_put_only_the_result_on_standard_output(args, check, fmt, tmp_path):
    if args[0] == "run":
        args = [*args, "--state", str(tmp_path / "state.json")]
    result = invoke(*args, "-o", fmt)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
    assert check(data), data
    assert "warning" not in result.stderr
    if args[0] == "iam-policy":  # the notes are for the person, on standard error
        assert "note: cloudwatch:GetMetricData" in result.stderr


def test_the_table_goes_to_standard_output_and_notes_to_standard_error():
    result = invoke(*EXPLAIN)
    assert result.exit_code == 0
    assert "policy recommends" in result.stdout and "pool llm-chat" in result.stdout
    assert result.stderr == ""


def test_run_once_prints_its_tick_as_a_table(tmp_path):
    result = invoke("run", "-c", SIM, "--once", "--state", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    assert "sim-llm" in result.stdout and "recommended" in result.stdout


def test_an_unknown_format_is_refused_naming_the_choices():
    result = CliRunner().invoke(cli, ["validate", LLM, "-o", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'table', 'json', 'yaml'" in result.stderr


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["validate", LLM, "--json"], "--json is deprecated"),
        ([*EXPLAIN, "--json"], "--json is deprecated"),
        (["simulate", SIM, "--compare", "none", "--json", "-"], "--json - is deprecated"),
    ],
)
def test_the_deprecated_json_flag_still_prints_json_and_warns_once(args, warning):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)  # still JSON, and only JSON
    lines = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {warning}")
    assert "use -o json" in lines[0]


@pytest.mark.parametrize("command", ["schema", "crd"])
def test_the_deprecated_o_file_still_writes_the_file_and_warns(command, tmp_path):
    old, new = tmp_path / "old.out", tmp_path / "new.yaml"
    result = invoke(command, "-o", str(old))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "-o FILE" in result.stderr and "use --out FILE" in result.stderr
    assert invoke(command, "--out", str(new)).exit_code == 0
    default = (
        json.loads(old.read_text()) if command == "schema" else yaml.safe_load(old.read_text())
    )
    assert default == yaml.safe_load(new.read_text())


def test_simulate_out_writes_the_results_in_the_format_its_name_says(tmp_path):
    out = tmp_path / "results.yaml"
    result = invoke("simulate", SIM, "--compare", "none", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "queueing" in result.stdout  # the table still prints
    assert f"wrote {out}" in result.stderr and "wrote" not in result.stdout
    assert yaml.safe_load(out.read_text())["results"][0]["policy"] == "queueing"


def test_version_matches_dash_dash_version():
    data = json.loads(invoke("version", "-o", "json").stdout)
    assert invoke("--version").stdout.strip() == f"autoscaler, version {data['autoscaler']}"
    assert data["python"] == ".".join(map(str, sys.version_info[:3]))
    table = invoke("version").stdout
    assert f"autoscaler {data['autoscaler']}" in table and "pydantic" in table


def completion(**env: str) -> subprocess.CompletedProcess[str]:
    # `python -m autoscaler` runs main() as the console script does: prog name autoscaler.
    return subprocess.run([sys.executable, "-m", "autoscaler"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})  # fmt: skip


def test_shell_completion_script_is_produced_and_completes_commands_and_formats():
    script = completion(_AUTOSCALER_COMPLETE="bash_source")
    assert script.returncode == 0, script.stderr
    assert "_autoscaler_completion()" in script.stdout
    assert "complete -o nosort -F _autoscaler_completion autoscaler" in script.stdout
    words = completion(_AUTOSCALER_COMPLETE="bash_complete", COMP_WORDS="autoscaler ver",
                       COMP_CWORD="1")  # fmt: skip
    assert "plain,version" in words.stdout.splitlines()
    formats = completion(_AUTOSCALER_COMPLETE="bash_complete",
                         COMP_WORDS="autoscaler validate -o ", COMP_CWORD="3")  # fmt: skip
    assert {"plain,table", "plain,json", "plain,yaml"} <= set(formats.stdout.splitlines())
    crd = completion(_AUTOSCALER_COMPLETE="bash_complete", COMP_WORDS="autoscaler crd -o j",
                     COMP_CWORD="3")  # fmt: skip
    assert crd.stdout.splitlines() == ["plain,json"]
