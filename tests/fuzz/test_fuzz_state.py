"""State files: a mutated state file the controller wrote either carries on (`run --once`
then writes a file that loads again) or is refused with exit 2, one line naming the file
and "move it away to start fresh", the file untouched and nothing else written; `explain
--state` alike. Never a traceback or a hang."""

from __future__ import annotations

import atexit
import functools
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoscaler.clock import FakeClock
from autoscaler.config.file_settings import load_settings
from autoscaler.process import Process, ProcessSettings
from autoscaler.signals.static import StaticReader
from autoscaler.state import load_state
from autoscaler.types import Reading
from tests.unit.test_state_file import BUSY, CYCLE, FRESH, GPU, POLICIES, TICK, every_policy

from .harness import (
    assert_clean,
    error_lines,
    fuzz_settings,
    invoke,
    mutated_bytes,
    mutated_tree,
)


@functools.cache
def bases() -> dict[str, tuple[str, str]]:
    """{name: (configuration file, the state file text the controller wrote for it)}: the
    one-pool queue-depth configuration after one `run --once`, and one pool of every
    built-in policy after half an hour of busy and idle minutes (windows, panic state,
    learned idle gaps). Made once, in a folder of its own removed at exit."""
    base = Path(tempfile.mkdtemp(prefix="fuzz-state-"))
    atexit.register(shutil.rmtree, base, True)
    gpu = base / "gpu.yaml"
    gpu.write_text(GPU)
    state = base / "gpu.json"
    result = invoke("run", "-c", str(gpu), "--once", "--state", str(state))
    assert result.exit_code == 0, result.output
    out = {"gpu": (str(gpu), state.read_text())}

    start = float(int(time.time()) - 2_000)

    def scripted(self: Any, requests: Any, now: float) -> dict[Any, Reading]:
        busy = (now - start) % CYCLE < BUSY
        return {r.key: Reading(float(r.source.value) if busy else 0.0, now) for r in requests}

    config = every_policy(base)
    state = base / "all.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StaticReader, "read", scripted)
        clock = FakeClock(start)
        settings = ProcessSettings(file=load_settings(str(config), False), state=state)
        process = Process(settings, clock=clock)
        process.load()
        while clock.now() < start + 6 * CYCLE:
            process.round()
            clock.advance(TICK)
        process.close()
    out["all"] = (str(config), state.read_text())
    return out


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
NUMBER_TOKENS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "-0", "0.0", "1e308", "5e-324", "1E400",
     "9" * 30, "9" * 5000, "-9", "1.5", "true", "null", '"1"', "[]", "{}", "1" * 4301]
)  # fmt: skip


@st.composite
def json_edit(draw: st.DrawFn, text: str) -> str:
    """`text` with a number replaced by an odd JSON token, a key written twice, or a value
    nested deep."""
    op = draw(st.sampled_from(["number", "number", "twice", "deep"]))
    if op == "number":
        numbers = list(_NUMBER.finditer(text))
        if not numbers:
            return text
        m = draw(st.sampled_from(numbers))
        return text[: m.start()] + draw(NUMBER_TOKENS) + text[m.end() :]
    if op == "twice":
        keys = list(re.finditer(r'"[^"]*": ', text))
        if not keys:
            return text
        m = draw(st.sampled_from(keys))
        return text[: m.start()] + m.group(0) + "0, " + text[m.start() :]
    depth = draw(st.sampled_from([31, 32, 33, 100, 5000]))
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return "[" * depth + "]" * depth
    m = draw(st.sampled_from(numbers))
    return text[: m.start()] + "[" * depth + "]" * depth + text[m.end() :]


EDITS = st.sampled_from(["tree", "tree", "tree", "json", "bytes"])


@st.composite
def state_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(the base's name, its state file mutated)."""
    name = draw(st.sampled_from(["gpu", "all", "all"]))
    text = bases()[name][1]
    how = draw(EDITS)
    if how == "tree":
        return name, json.dumps(draw(mutated_tree(json.loads(text)))).encode()
    if how == "json":
        return name, draw(json_edit(text)).encode()
    return name, draw(mutated_bytes(text.encode()))


def check_run(config: str, state: Path, data: bytes) -> None:
    state.write_bytes(data)
    before = state.stat().st_mtime_ns
    result = invoke("run", "-c", config, "--once", "--json", "--state", str(state))
    assert_clean(result)
    if result.exit_code == 2:
        line = error_lines(result)[-1]
        assert line.startswith(f"error: state file {state}: "), result.stderr
        assert line.endswith(FRESH), line
        assert result.stdout == ""  # no tick
        assert state.read_bytes() == data and state.stat().st_mtime_ns == before
        assert [p.name for p in state.parent.iterdir()] == [state.name]
        return
    # It carried on: the tick was taken and what it wrote back loads again.
    assert json.loads(result.stdout)["decisions"], result.stdout
    load_state(state)


def check_explain(config: str, pool: str, state: Path, data: bytes) -> None:
    state.write_bytes(data)
    result = invoke(
        "explain", config, "--pool", pool, "--replicas", "1", "--json", "--state", str(state)
    )
    assert_clean(result)
    assert state.read_bytes() == data
    if result.exit_code == 2:
        line = error_lines(result)[-1]
        assert line.startswith(f"error: --state: state file {state}: "), result.stderr
        assert line.endswith(FRESH), line


STATE_EXAMPLES = [
    ("gpu", b""),
    ("gpu", b"\xef\xbb\xbf{}"),
    ("gpu", b'{"gpu": {"actions": ' + b"9" * 5000 + b"}}"),
    ("gpu", b'{"gpu": {"last_scale_at": 1e999}}'),
    ("gpu", b"[" * 100_000),
    ("gpu", b'{"gpu": {}, "gpu": []}'),
    ("gpu", b'{"gpu": {"actions": 1}}\x00'),
    # found by this fuzzer: a key with a line break or control character split the one line
    ("gpu", b'{"gpu": {"\\u001e": null}, "\\r": null}'),
]


@fuzz_settings(120)
@given(case=state_files())
@example(case=STATE_EXAMPLES[0])
@example(case=STATE_EXAMPLES[1])
@example(case=STATE_EXAMPLES[2])
@example(case=STATE_EXAMPLES[3])
@example(case=STATE_EXAMPLES[4])
@example(case=STATE_EXAMPLES[5])
@example(case=STATE_EXAMPLES[6])
@example(case=STATE_EXAMPLES[7])
def test_a_mutated_state_file_carries_on_or_is_refused_untouched(case, tmp_path_factory):
    name, data = case
    config = bases()[name][0]
    check_run(config, tmp_path_factory.mktemp("state") / "state.json", data)


@fuzz_settings(80)
@given(case=state_files(), pool=st.sampled_from(sorted(POLICIES)))
@example(case=STATE_EXAMPLES[2], pool="depth")
@example(case=STATE_EXAMPLES[4], pool="depth")
@example(case=STATE_EXAMPLES[7], pool="depth")
def test_explain_reads_a_mutated_state_file_or_refuses_it(case, pool, tmp_path_factory):
    name, data = case
    config = bases()[name][0]
    pool = "gpu" if name == "gpu" else pool
    check_explain(config, pool, tmp_path_factory.mktemp("explain") / "state.json", data)
