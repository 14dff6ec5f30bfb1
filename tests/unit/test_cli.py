"""The command line: exit codes, messages without tracebacks, JSON for programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")
SIM = str(ROOT / "examples" / "simulated.yaml")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_validate_accepts_every_example():
    result = invoke("validate", *map(str, sorted((ROOT / "examples").glob("*.yaml"))))
    assert result.exit_code == 0, result.output
    assert "llm-serving.yaml: ok (1 pool(s): llm-chat)" in result.output


def test_validate_lists_every_error_as_path_and_message_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "installation: {id: test}\n"
        "pools:\n"
        "  - name: a\n    target: {kind: simulated}\n    max: 2\n"
        "    policy: {type: queue-depth, target_per_replica: 3}\n"
        "  - name: b\n    target: {kind: simulated}\n    max: 2\n"
        "    policy: {type: queue-depth, target_per_replica: 0, activation: -1}\n"
    )
    result = invoke("validate", str(bad))
    assert result.exit_code == 2
    assert "pools[1].policy.target_per_replica: must be > 0" in result.output
    assert "pools[1].policy.activation: must be >= 0" in result.output
    assert "Traceback" not in result.output


def test_validate_json_output_is_machine_readable(tmp_path):
    result = invoke("validate", "-o", "json", LLM)
    assert json.loads(result.output) == [{"file": LLM, "ok": True, "pools": ["llm-chat"]}]


def test_schema_prints_a_json_schema(tmp_path):
    out = tmp_path / "schema.json"
    assert invoke("schema", "--out", str(out)).exit_code == 0
    schema = json.loads(out.read_text())
    assert schema["$schema"].endswith("2020-12/schema")
    assert "pools" in schema["properties"]


def test_explain_shows_decision_and_reason():
    result = invoke("explain", LLM, "--pool", "llm-chat", "--signal", "queue=120",
                    "--signal", "in_flight=64", "--signal", "arrival_rate=12",
                    "--signal", "service_seconds=10", "--signal", "gpu_utilization=0.97",
                    "--signal", "held=0", "--replicas", "8", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # Erlang C: 12/s x 10 s = 120 slots of load -> 134 slots -> 17 replicas, capped at 16
    assert data["recommendation"]["desired"] == 17
    assert data["decision"]["desired"] == 16
    assert data["decision"]["direction"] == "up"
    assert data["decision"]["reason"].startswith("composite: queueing wins")
    assert data["decision"]["reason"].endswith("bounds [0, 16] -> 16")


def test_explain_marks_a_missing_signal_stale_and_holds():
    result = invoke("explain", LLM, "--signal", "queue=0", "--signal", "in_flight=0",
                    "--signal", "gpu_utilization=0.1", "--replicas", "3", "-o", "json")
    data = json.loads(result.output)
    assert data["stale"] == {
        "arrival_rate": "not given on the command line",
        "held": "not given on the command line",
    }
    assert data["decision"]["desired"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signal", "queue"], "write NAME=VALUE"),
        (["--signal", "queue=abc"], "'abc' is not a number"),
        (["--signal", "queue=nan"], "must be a finite number >= 0"),
        (["--signal", "tokens=3"], "pool 'llm-chat' has no signal 'tokens'"),
        (["--pool", "nope"], "no pool named 'nope'"),
        (["--ready", "9"], "--ready must be between 0 and --replicas (4)"),
    ],
)
def test_explain_rejects_bad_input_with_a_clear_message(args, message):
    result = CliRunner().invoke(cli, ["explain", LLM, "--replicas", "4", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_once_on_a_simulated_pool_prints_the_tick(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "installation: {id: test}\n"
        "pools:\n  - name: p\n    target: {kind: simulated}\n    max: 5\n"
        "    signals: {queue: {source: {type: static, value: 25}}}\n"
        "    policy: {type: queue-depth, target_per_replica: 10}\n"
    )
    state = tmp_path / "state.json"
    result = invoke("run", "-c", str(config), "--once", "-o", "json", "--state", str(state))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["decisions"][0]["desired"] == 3
    assert data["actions"][0]["applied"] is True
    assert json.loads(state.read_text())["p"]["actions"] == 1


def test_run_refuses_a_corrupt_state_file(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    result = CliRunner().invoke(cli, ["run", "-c", SIM, "--once", "--state", str(state)])
    assert result.exit_code == 2
    assert "move it away to start fresh" in result.output


def test_the_installed_console_script_runs():
    exe = Path(sys.executable).with_name("autoscaler")
    proc = subprocess.run([str(exe), "validate", LLM], capture_output=True, text=True,
                          env={**os.environ}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("autoscaler, version ")
