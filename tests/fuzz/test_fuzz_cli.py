"""Command-line options: random values for the numeric, duration, share and path options of
simulate, sweep, explain and run either work (exit 0) or are refused with exit 2 (click's
usage error or one `error:` line), never a traceback or a hang.

Replays that would legitimately run long (a tiny speed-up, thousands of repeats) are kept
out: each case's options are parsed first, as the command parses them, and a case whose
replay would span more than a few thousand ticks is not run. Every command runs in a
folder of its own (relative output paths land there); lone surrogates (a non-UTF-8 byte in
argv) are left out, since CliRunner's streams, unlike a terminal's, cannot print them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from autoscaler.cli_sim import simulate_cmd
from autoscaler.cli_sweep import sweep_cmd
from tests.unit.test_state_file import GPU

from .harness import (
    SPECIAL_FLOATS,
    SPECIAL_INTS,
    Hang,
    assert_clean,
    fuzz_settings,
    invoke,
    time_limit,
)

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = str(ROOT / "examples" / "simulated.yaml")  # pool sim-llm, interval 1s
LLM = str(ROOT / "examples" / "llm-serving.yaml")  # pool llm-chat: a composite, 6 signals
TRACE = b"timestamp,service_seconds\n0,1\n5,2.5\n12,1\n"
TRACE_SPAN = 12.0
MOST_TICKS = 3_000
"""The longest replay a case may ask for (ticks per policy): well under a second."""

# -- option values --------------------------------------------------------------------------
ARG_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
)
SANE = st.one_of(st.integers(1, 50).map(str), st.floats(0.1, 100).map(lambda x: f"{x:.3g}"))
"""Values most options take: every case is not a refusal."""
NUMBERS = st.one_of(
    SANE,
    SANE,
    st.integers(-1000, 10**6).map(str),
    SPECIAL_INTS.map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    SPECIAL_FLOATS.map(lambda x: f"{x:g}"),
    st.sampled_from(["0", "-0", "1e-9", "1e309", "-1e309", "1_000", "0x10", " 5", "5 ", "+5",
                     "５", "٥", "½", "1.", ".5", "1e", "e5", "--1", "NaN", "-inf", "Infinity",
                     "9" * 40, "1" * 5000, "0.00001", "100000", "100001", "65536", "-1"]),
)  # fmt: skip
UNITS = st.sampled_from(["", "ms", "s", "m", "h", "d", "w", "us", "S", " s", "sec", "%", "x"])
DURATIONS = st.one_of(
    st.tuples(st.integers(1, 59).map(str), st.sampled_from(["s", "m", "ms", "00ms", ""])).map(
        "".join
    ),
    NUMBERS,
    st.tuples(NUMBERS, UNITS).map("".join),
    st.sampled_from(["10ms", "1s", "15s", "5m", "1h", "2h", "9ms", "100ms", "1d", "1e400s",
                     "-5s", "PT15S", "1h30m", "s", "ms", "", " "]),
)  # fmt: skip
SHARES = st.one_of(
    st.floats(0.01, 1).map(str),
    st.integers(1, 100).map(lambda n: f"{n}%"),
    NUMBERS,
    st.tuples(NUMBERS, st.just("%")).map("".join),
    st.sampled_from(["0.99", "99%", "100%", "0%", "1e-300%", "%", "99 %", "nan%"]),
)
WILD = st.one_of(NUMBERS, DURATIONS, SHARES, ARG_TEXT)


def paths(kind: str) -> st.SearchStrategy[str]:
    """Where a command may be told to write (`{tmp}`: the case's folder, also the cwd)."""
    common = ["{tmp}/out", "{tmp}/new/out", "{tmp}", "{tmp}/a-file", "out.json", "", " ", "-",
              "/proc/fuzz.json", "{tmp}/" + "x" * 300, "x" * 300 + "/y", ".", "..",
              "{tmp}/a-file/below", "{tmp}/ünï cødé.json", "{tmp}/-"]  # fmt: skip
    if kind == "json":  # a device takes writes: the empty one, the full one
        common += ["/dev/null", "/dev/full"]
    return st.sampled_from(common)


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run in `folder`, with a file `a-file` there."""
    (folder / "a-file").write_text("keep me")
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def filled(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def parsed(command: click.Command, args: list[str]) -> dict[str, Any] | None:
    """The options as the command reads them, or None where it refuses them."""
    try:
        with command.make_context(command.name or "fuzz", list(args)) as ctx:
            return dict(ctx.params)
    except (click.ClickException, click.exceptions.Exit):
        return None


def short_replay(params: dict[str, Any] | None, interval: float = 1.0, span: float = TRACE_SPAN,
                 policies: int = 1) -> bool:  # fmt: skip
    """Whether a replay with these options is short enough for a fuzz case."""
    if params is None:
        return True  # refused before any work
    speed = params.get("speedup") or 1.0
    repeat = params.get("repeat") or 1
    tick = params.get("tick") or interval
    ticks = (span / speed + 5.0) * repeat / tick
    return ticks * policies <= MOST_TICKS and repeat <= 1000


def options(
    names: dict[str, st.SearchStrategy[str]], rare: tuple[str, ...] = ()
) -> st.SearchStrategy[list[str]]:
    """Some of the options `names` (each given half the time, a `rare` one a tenth of the
    time), each with a drawn value."""

    @st.composite
    def draw_options(draw: st.DrawFn) -> list[str]:
        out: list[str] = []
        for name, values in names.items():
            if draw(st.integers(0, 9)) < (1 if name in rare else 5):
                out += [name, draw(values)]
        return out

    return draw_options()


def check(result: Any) -> None:
    assert_clean(result)
    if result.exit_code == 2:
        shown = result.stderr.strip()
        assert shown, result.output
        last = shown.splitlines()[-1]
        assert last.startswith(("error: ", "Error: ", "  ")) or "error(s)" in shown, shown


# -- simulate -------------------------------------------------------------------------------
SIMULATE = {
    "--tick": DURATIONS,
    "--speedup": NUMBERS,
    "--repeat": NUMBERS,
    "--out": paths("json"),
    "--json": paths("json"),  # deprecated, kept one release
    "-o": st.sampled_from(["table", "json", "yaml", "xml", ""]),
    "--report": paths("report"),
    "--compare": st.sampled_from(["none", "hpa", "oracle", "keepalive-45s", "keepalive",
                                  "hpa,,kpa", "keepalive-", "keepalive-0", "keepalive--5s",
                                  "keepalive-1e400s", "keepalive-nan", "bogus", "", " , "]),
    "--trace-format": st.sampled_from(["csv", "azure-llm", "alibaba-gpu", "CSV", ""]),
    "--pool": st.sampled_from(["sim-llm", "", "nope", "SIM-LLM"]),
}  # fmt: skip


@fuzz_settings(250)
@given(args=options(SIMULATE, rare=("--report", "--trace-format", "--pool", "--json")))
@example(args=["--out", "{tmp}/" + "x" * 300])  # a name too long: OSError before the fix
@example(args=["--report", "{tmp}/" + "x" * 300])
@example(args=["--out", "/dev/full", "--compare", "none"])
@example(args=["--json", "/dev/full", "--compare", "none"])
def test_simulate_takes_any_option_values_or_refuses_them(args, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simulate")
    (tmp / "trace.csv").write_bytes(TRACE)
    args = filled(args, tmp)
    if "--report" in args and "--compare" not in args:
        args += ["--compare", "none"]  # a report of one policy: plots take long enough
    with inside(tmp):
        full = [SIMULATED, "--trace", "trace.csv", *args]
        assume(short_replay(parsed(simulate_cmd, full), policies=6))
        check(invoke("simulate", *full))
        if str(tmp / "a-file") not in args:  # written only where it is told to write
            assert (tmp / "a-file").read_text() == "keep me"


# -- sweep ----------------------------------------------------------------------------------
SWEEP = {
    "--workers": NUMBERS,
    "--slo-target": SHARES,
    "--tick": DURATIONS,
    "--speedup": NUMBERS,
    "--repeat": NUMBERS,
    "--json": paths("json"),
    "--floors": st.sampled_from(["0,2", "0", "-1", "99", "a", "", "1,,2", "1e3", "0x1"]),
}
FIELDS = st.sampled_from(
    ["max", "min", "startup", "policy.wait_slo", "policy.service_seconds",
     "policy.slots_per_replica", "behavior.scale_to_zero_after", "simulation.cost_per_hour",
     "simulation.gpus_per_replica", "policy.slo_quantile", "policy", "behavior", "policy.0",
     "a..b", "", "name", "target.kind", "simulation.service.slots_per_replica"]
)  # fmt: skip


@fuzz_settings(200)
@given(args=options(SWEEP), param=st.tuples(FIELDS, WILD), tune=st.sampled_from([0, 0, 0, 1]))
@example(args=["--json", "{tmp}/" + "x" * 300], param=("max", "4"), tune=0)
@example(args=[], param=("max", "1" * 5000), tune=0)  # ValueError from PyYAML before the fix
@example(args=[], param=("max", "!!int x"), tune=0)
def test_sweep_takes_any_option_values_or_refuses_them(args, param, tune, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "trace.csv").write_bytes(TRACE)
    args = filled(args, tmp)
    field, value = param
    # One variant (so the workers, whatever their number, stay in this process), or the
    # pool's keep-alive family on one worker.
    grid = ["--param", f"{field}={value}"] if not tune else ["--keepalive", "--workers", "1"]
    with inside(tmp):
        full = [SIMULATED, "--trace", "trace.csv", *grid, *args]
        if tune:  # the last --workers counts: keep it at one
            full += ["--workers", "1"]
        assume(short_replay(parsed(sweep_cmd, full), policies=10))
        check(invoke("sweep", *full))


# -- explain --------------------------------------------------------------------------------
VALID_NAMES = st.sampled_from(
    ["queue", "in_flight", "arrival_rate", "held", "service_seconds", "gpu_utilization"]
)
SIGNAL_NAMES = VALID_NAMES | VALID_NAMES | st.sampled_from(["nope", "", "queue ", "QUEUE", "a=b"])
SIGNAL_VALUES = st.one_of(SANE, st.floats(0, 1).map(str), SHARES, WILD)
SIGNALS = st.lists(
    st.tuples(SIGNAL_NAMES, SIGNAL_VALUES).map(lambda p: f"{p[0]}={p[1]}"), max_size=4
)


@fuzz_settings(300)
@given(
    replicas=st.integers(0, 20).map(str) | st.integers(0, 20).map(str) | NUMBERS,
    ready=st.none() | st.none() | NUMBERS,
    signals=SIGNALS | st.lists(ARG_TEXT, max_size=2),
    pool=st.sampled_from([None, "llm-chat", "nope", ""]),
    as_json=st.booleans(),
)
def test_explain_takes_any_signal_values_or_refuses_them(replicas, ready, signals, pool, as_json):
    args = [LLM, "--replicas", replicas]
    if ready is not None:
        args += ["--ready", ready]
    for given_signal in signals:
        args += ["--signal", given_signal]
    if pool is not None:
        args += ["--pool", pool]
    if as_json:
        args += ["-o", "json"]
    check(invoke("explain", *args))


# -- run ------------------------------------------------------------------------------------
RUN = {
    "--interval": DURATIONS,
    "--lease-duration": DURATIONS,
    "--state": st.sampled_from(["{tmp}/state.json", "{tmp}/new/state.json", "{tmp}",
                                "{tmp}/a-file", "{tmp}/a-file/state.json", "state.json",
                                "/proc/fuzz-state.json", "{tmp}/" + "x" * 300, ""]),
    "--health-port": st.sampled_from(["-1", "65536", "http", "1e3", "", "99999999999"]),
    "--metrics-port": st.sampled_from(["-1", "65536", "9090x", "", " "]),
    "--namespace": st.sampled_from(["llm", "", "Bad_NS"]),
}  # fmt: skip


@fuzz_settings(120)
@given(
    args=options(RUN, rare=("--health-port", "--metrics-port", "--namespace")),
    as_json=st.booleans(),
)
@example(args=["--state", "{tmp}/" + "x" * 300], as_json=False)
def test_run_once_takes_any_option_values_or_refuses_them(args, as_json, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = tmp / "gpu.yaml"
    config.write_text(GPU)
    args = filled(args, tmp)
    with inside(tmp):
        result = invoke("run", "-c", str(config), "--once", *(["-o", "json"] if as_json else []),
                        *args)  # fmt: skip
        check(result)
        if str(tmp / "a-file") not in args:
            assert (tmp / "a-file").read_text() == "keep me"


# -- the guard itself -----------------------------------------------------------------------
def test_the_wall_clock_guard_stops_a_hang_and_restores_the_earlier_timer():
    earlier = signal.setitimer(signal.ITIMER_REAL, 100.0)  # as pytest-timeout sets one
    try:
        started = time.monotonic()
        with pytest.raises(Hang), time_limit(0.2):
            time.sleep(30)
        assert time.monotonic() - started < 5
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90 < left <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, *earlier)
