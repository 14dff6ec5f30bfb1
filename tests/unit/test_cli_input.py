"""Every bad command-line input is refused cleanly (issue 19): exit 2, one message naming
the option, the value and what is allowed, no traceback and no pydantic wording or URLs;
output paths are checked before any long work; Ctrl-C is `interrupted` and exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler import cli_sim
from autoscaler.cli import INTERRUPTED, cli
from autoscaler.cli_options import output_file, plain

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")  # pool llm-chat: max 16, a composite
SWEEP = ["--param", "policy.policies.0.max_utilization=0.8"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def refused(result, *fragments: str) -> None:
    """Exit 2 with every fragment in the output, and no traceback or pydantic text."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    assert "pydantic" not in result.output.lower()


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if anything is simulated: bad input must be refused before that."""

    def boom(*args, **kwargs):
        raise AssertionError("simulated despite bad input")

    monkeypatch.setattr(cli_sim, "simulate", boom)
    monkeypatch.setattr("autoscaler.sim.sweep.run_all", boom)


BAD_LAB_OPTIONS = [
    (["--tick", "-5"], ["'--tick'", "'-5' is not a duration", "from 10ms to 1h"]),
    (["--tick", "nan"], ["'--tick'", "'nan' is not a duration", "from 10ms to 1h"]),
    (["--tick", "0"], ["'--tick'", "'0' is out of range", "from 10ms to 1h"]),
    (["--tick", "1ms"], ["'--tick'", "'1ms' is out of range"]),
    (["--tick", "2h"], ["'--tick'", "'2h' is out of range"]),
    (["--speedup", "nan"], ["'--speedup'", "above 0, at most 1,000,000", "'nan'"]),
    (["--speedup", "inf"], ["'--speedup'", "above 0, at most 1,000,000", "'inf'"]),
    (["--speedup", "0"], ["'--speedup'", "above 0", "'0'"]),
    (["--speedup", "-2"], ["'--speedup'", "above 0", "'-2'"]),
    (["--speedup", "1e300"], ["'--speedup'", "at most 1,000,000", "'1e300'"]),
    (["--speedup", "fast"], ["'--speedup'", "'fast' is not a number"]),
    (["--repeat", "0"], ["'--repeat'", "1<=x<=100000"]),
    (["--repeat", "1000000"], ["'--repeat'", "1000000 is not in the range 1<=x<=100000"]),
    (["--repeat", "9" * 40], ["'--repeat'", "1<=x<=100000"]),
    (["--json", "/no/such/dir/x.json"], ["'--json'", "folder '/no/such/dir' does not exist"]),
]


@pytest.mark.parametrize("command", ["simulate", "sweep"])
@pytest.mark.parametrize(("args", "fragments"), BAD_LAB_OPTIONS)
def test_bad_lab_options_are_refused_before_simulating(command, args, fragments, no_simulation):
    extra = SWEEP if command == "sweep" else []
    refused(invoke(command, LLM, *extra, *args), *fragments)


def test_a_json_file_in_a_folder_that_takes_no_files_is_refused_up_front(no_simulation):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    refused(invoke("simulate", LLM, "--out", "/proc/x.json"), "'--out'",
            "cannot write '/proc/x.json'")


def test_a_json_path_that_is_a_folder_is_refused(tmp_path, no_simulation):
    refused(invoke("simulate", LLM, "--out", str(tmp_path)), "'--out'", "is a folder")


def test_a_read_only_folder_is_refused_for_json_and_report(tmp_path, no_simulation):
    # root writes into any mode-0500 folder; /proc/self refuses new files even to root
    locked = tmp_path / "locked" if os.geteuid() != 0 else Path("/proc/self")
    if os.geteuid() != 0:
        locked.mkdir()
        locked.chmod(0o500)
    elif not locked.is_dir():
        pytest.fail("as root this test needs /proc to have a folder nothing can be created in")
    try:
        refused(invoke("simulate", LLM, "--out", str(locked / "x.json")), "'--out'",
                "cannot write")
        refused(invoke("simulate", LLM, "--report", str(locked)), "'--report'",
                "cannot write into folder")
    finally:
        if os.geteuid() != 0:
            locked.chmod(0o700)


def test_report_paths_that_cannot_be_folders_are_refused_up_front(tmp_path, no_simulation):
    a_file = tmp_path / "f"
    a_file.write_text("")
    refused(invoke("simulate", LLM, "--report", str(a_file)), "'--report'", "is a file")
    if Path("/proc/self").is_dir():
        refused(invoke("simulate", LLM, "--report", "/proc/foo"), "'--report'",
                "cannot create folder '/proc/foo'")


def test_checking_an_output_file_leaves_nothing_behind(tmp_path):
    new = tmp_path / "new.json"
    assert output_file(None, None, str(new)) == str(new)  # type: ignore[arg-type]
    assert not new.exists()
    old = tmp_path / "old.json"
    old.write_text("keep me")
    assert output_file(None, None, str(old)) == str(old)  # type: ignore[arg-type]
    assert old.read_text() == "keep me"


def test_a_repeat_that_would_not_fit_in_memory_is_refused_with_the_most_that_fits(
    no_simulation,
):
    # The bundled sample the example replays has thousands of requests: 5,000 copies
    # are more than a run holds; nothing is allocated before the refusal.
    result = invoke("simulate", LLM, "--repeat", "5000")
    refused(result, "error: --repeat 5000:", "more than the 10,000,000 a run can hold",
            "times or fewer")


def test_a_replay_with_too_many_ticks_is_refused_naming_the_options(no_simulation):
    result = invoke("sweep", LLM, *SWEEP, "--tick", "10ms", "--repeat", "1000")
    refused(result, "ticks, more than 20,000,000", "--tick", "--speedup", "--repeat")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--workers", "0"], ["'--workers'", "0 is not in the range"]),
        (["--workers", "100000"], ["'--workers'", "100000 is not in the range"]),
        (["--slo-target", "0"], ["'--slo-target'", "'0' is out of range"]),
        (["--slo-target", "150%"], ["'--slo-target'", "'150%' is out of range"]),
        (["--slo-target", "99"], ["'--slo-target'", "write 0.99 or '99%'"]),
    ],
)
def test_bad_sweep_options_are_refused(args, fragments, no_simulation):
    refused(invoke("sweep", LLM, *SWEEP, *args), *fragments)


@pytest.mark.parametrize(
    ("param", "fragments"),
    [
        ("min=20", ["error: --param min=20: pool field min: must be <= max (16), got 20"]),
        ("max=-1", ["--param max=-1: pool field max: must be >= 1"]),
        ("max=many", ["--param max=many: pool field max: must be a", "'many'"]),
        ("policy.policies.0.max_utilization=5",
         ["pool field policy.policies[0].max_utilization", "between 0 and 1"]),
        ("min=[", ["--param 'min=['", "'[' is not a value"]),
        ("policy.policies.x.max_utilization=0.8",
         ["policy.policies is a list of 3; write a position from 0 to 2 instead of 'x'"]),
        ("policy.policies.7.max_utilization=0.8", ["policy.policies.7 does not exist"]),
        ("policy..x=1", ["is not a field path"]),
        ("min", ["write PATH=V1,V2,..."]),
    ],
)
def test_a_bad_sweep_param_says_which_value_which_field_and_the_bound(
    param, fragments, no_simulation
):
    result = invoke("sweep", LLM, "--param", param)
    refused(result, *fragments)
    assert "@" not in result.output and "http" not in result.output


def test_a_bad_combination_of_params_names_both_values(no_simulation):
    result = invoke("sweep", LLM, "--param", "min=2,20", "--param", "max=3")
    refused(result, "--param values min=20, max=3: pool field min: must be <= max (3), got 20")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--replicas", "9" * 20], ["--replicas must be between 0 and 100,000",
                                    "max 16", "got " + "9" * 20]),
        (["--replicas", "-1"], ["--replicas must be between 0 and 100,000"]),
        (["--replicas", "4", "--signal", "gpu_utilization=5"],
         ["--signal gpu_utilization=5: out of range (0.05 or '5%'?)",
          "write a fraction from 0 to 1, e.g. 0.7, or '70%'"]),
        (["--replicas", "4", "--signal", "gpu_utilization=150%"],
         ["--signal gpu_utilization=150%: out of range"]),
        (["--replicas", "4", "--signal", "gpu_utilization=-0.1"],
         ["--signal gpu_utilization=-0.1: out of range"]),
        (["--replicas", "4", "--signal", "gpu_utilization=nan"],
         ["--signal gpu_utilization=nan: out of range"]),
        (["--replicas", "4", "--signal", "gpu_utilization=busy"],
         ["'busy' is not a number"]),
        (["--replicas", "4", "--signal", "queue=1e13"],
         ["--signal queue: '1e13' must be a finite number >= 0 and at most 1e+12"]),
        (["--replicas", "4", "--signal", "queue=inf"], ["--signal queue: 'inf'"]),
        (["--replicas", "4", "--signal", "queue=-1"], ["--signal queue: '-1'"]),
        (["--replicas", "4", "--signal", "queue=1", "--signal", "queue=2"],
         ["--signal queue: given twice"]),
    ],
)
def test_explain_refuses_values_out_of_bounds(args, fragments):
    refused(invoke("explain", LLM, *args), *fragments)


def test_explain_takes_a_utilization_as_a_fraction_or_a_percentage():
    for text in ("0.5", "50%"):
        result = invoke("explain", LLM, "--replicas", "4", "--signal",
                        f"gpu_utilization={text}", "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["signals"] == {"gpu_utilization": 0.5}


def test_explain_reads_utilization_signals_from_the_policies(tmp_path):
    pool = """\
        pools:
          - name: p
            target: {kind: simulated}
            max: 8
            signals: {busy: {source: {type: static, value: 0.5}}}
            policy: {type: gpu-utilization, signal: busy, target: 0.7}
        """
    config = tmp_path / "c.yaml"
    # With or without an `installation` (required where the configuration has one).
    for text in ("installation: {id: test}\n" + textwrap.dedent(pool), textwrap.dedent(pool)):
        config.write_text(text)
        if invoke("validate", str(config)).exit_code == 0:
            break
    else:
        pytest.skip("the configuration format changed under this test")
    refused(invoke("explain", str(config), "--replicas", "2", "--signal", "busy=70"),
            "--signal busy=70: out of range (0.7 or '70%'?)", "busy is a utilization")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--interval", "0"], ["'--interval'", "from 100ms to 1h"]),
        (["run", "--interval", "nan"], ["'--interval'", "'nan' is not a duration"]),
        (["run", "--lease-duration", "0"], ["'--lease-duration'", "from 1s to 1h"]),
        (["schema", "--out", "/no/such/dir/s.json"], ["'--out'", "does not exist"]),
        (["crd", "--out", "/no/such/dir/crd.yaml"], ["'--out'", "does not exist"]),
        # the deprecated `-o FILE`, checked as before
        (["crd", "-o", "/no/such/dir/crd.yaml"], ["'--output'", "does not exist"]),
        (["schema", "-o", "xml"], ["'--output'", "'xml' is not a format: give json or yaml"]),
    ],
)
def test_other_commands_refuse_bad_options(args, fragments):
    refused(invoke(*args), *fragments)


def test_a_pydantic_error_is_rendered_in_the_configurations_words():
    from pydantic import ValidationError

    from autoscaler.config import Pool

    with pytest.raises(ValidationError) as caught:
        Pool.model_validate({"name": "p", "target": {"kind": "simulated"}, "min": 5, "max": 2,
                             "policy": {"type": "queue-depth", "target_per_replica": 1}})
    text = plain(caught.value)
    assert "min" in text and "max" in text
    assert "pydantic" not in text and "http" not in text and "@" not in text


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_sim, "simulate", interrupted)
    result = invoke("simulate", LLM, "--compare", "none")
    assert result.exit_code == INTERRUPTED == 130
    assert result.output.strip().endswith("interrupted")
    assert "Traceback" not in result.output and "Aborted" not in result.output


# Runs the real CLI in a child process with the simulation replaced by a long wait (so the
# test does not depend on how fast the simulator is); `started` is written once the
# command is past its checks and simulating.
CHILD = """
import os, sys, time
from pathlib import Path
import autoscaler.cli_sim, autoscaler.sim.sweep

MARKER = sys.argv[1]

def slow(*args, **kwargs):
    Path(f"{MARKER}-{os.getpid()}").write_text("")
    Path(MARKER).write_text("")
    time.sleep(120)

autoscaler.cli_sim.simulate = slow
autoscaler.sim.sweep.run_variant = slow
from autoscaler.cli import main
sys.argv = ["autoscaler", *sys.argv[2:]]
main()
"""


def interrupt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI, wait until it simulates, then Ctrl-C it as a terminal would (SIGINT to
    its whole process group); return how it ended."""
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started simulating"
            time.sleep(0.05)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_a_long_simulate_exits_130_without_a_traceback(tmp_path):
    done = interrupt(tmp_path, "simulate", LLM, "--compare", "none")
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in done.stderr + done.stdout


def test_ctrl_c_during_a_parallel_sweep_stops_the_workers_at_once(tmp_path):
    started = time.monotonic()
    done = interrupt(tmp_path, "sweep", LLM, "--workers", "2", "--param",
                     "policy.policies.0.max_utilization=0.7,0.8,0.9")
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in done.stderr + done.stdout  # none from the workers either
    assert time.monotonic() - started < 60  # the workers' 120 s waits were cut short
    workers = [int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("started-*")]
    assert workers
    for pid in workers:  # every worker is gone (or a zombie already reaped)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_an_error_quoting_a_pydantic_error_is_rendered_in_plain_words_too():
    from pydantic import ValidationError

    from autoscaler.config import Pool
    from autoscaler.sim.engine import SimulationError

    try:
        try:
            Pool.model_validate({"name": "p", "target": {"kind": "simulated"}, "max": 0,
                                 "policy": {"type": "queue-depth", "target_per_replica": 1}})
        except ValidationError as exc:
            raise SimulationError(f"keep-alive baseline: {exc}") from None
    except SimulationError as exc:
        text = plain(exc)
    assert text.startswith("keep-alive baseline: max: must be >= 1")
    assert "pydantic" not in text and "http" not in text
