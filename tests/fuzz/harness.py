"""What every fuzz test shares: settings, the wall-clock guard, value strategies, mutations
of a parsed document and of its text, and the checks of a command's result."""

from __future__ import annotations

import copy
import math
import os
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from autoscaler.cli import cli

# -- settings -------------------------------------------------------------------------------
DEADLINE = float(os.environ.get("FUZZ_DEADLINE") or 5.0)
"""Seconds one example may take (Hypothesis' deadline); the guard below stops it at 4x."""
GUARD = 4 * DEADLINE


def fuzz_settings(examples: int) -> settings:
    """`examples` cases (FUZZ_EXAMPLES overrides it, for a long campaign), derandomized
    unless FUZZ_RANDOM is set, no example database (nothing written into the checkout)."""
    count = int(os.environ.get("FUZZ_EXAMPLES") or examples)
    return settings(
        max_examples=count,
        deadline=timedelta(seconds=DEADLINE),
        derandomize=not os.environ.get("FUZZ_RANDOM"),
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    )


# -- the wall-clock guard -------------------------------------------------------------------
class Hang(BaseException):
    """Raised in the main thread when an example runs past the guard. A BaseException, so
    neither the command nor CliRunner mistakes it for an error of the code under test."""


@contextmanager
def time_limit(seconds: float = GUARD) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM), then restore any earlier timer (such
    as pytest-timeout's) with what is left of it."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds:g}s: a hang")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    earlier, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier:
            left = max(0.001, earlier - (time.monotonic() - started))
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def invoke(*args: str) -> Result:
    """The real command line, in process (exceptions are caught and kept on the result),
    under the wall-clock guard."""
    with time_limit():
        return CliRunner().invoke(cli, list(args))


def assert_clean(result: Result, ok: tuple[int, ...] = (0,)) -> None:
    """The command ended as a user may see it: an exit status in `ok` or 2, through
    SystemExit (never another exception), no traceback, no pydantic wording or URL."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        shown = "".join(traceback.format_exception(exc))
        raise AssertionError(f"uncaught {type(exc).__name__}:\n{shown}\noutput:\n{result.output}")
    assert result.exit_code in (*ok, 2), f"exit {result.exit_code}:\n{result.output}"
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many worked
    out = result.output
    assert "Traceback" not in out, out
    assert "pydantic" not in out.lower() and "errors.pydantic.dev" not in out, out


def error_lines(result: Result) -> list[str]:
    """The lines of standard error that are not log lines."""
    return [line for line in result.stderr.splitlines() if line.strip()]


# -- values ---------------------------------------------------------------------------------
SPECIAL_INTS = st.sampled_from(
    [0, 1, -1, 2, 7, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
     10**12, 10**30, -(10**30), 10**400]
)  # fmt: skip
SPECIAL_FLOATS = st.sampled_from(
    [0.0, -0.0, 0.5, 1.5, 1e-320, 5e-324, 1e-9, 1e308, -1e308, 1.7976931348623157e308,
     math.inf, -math.inf, math.nan, 1e30, 99.999]
)  # fmt: skip
SPECIAL_TEXT = st.sampled_from(
    ["", " ", "\t", "0", "-0", "1", "-1", "1e999", "-1e999", "nan", "NaN", ".nan", "inf",
     ".inf", "-.inf", "1_000", "0x1F", "0o17", "0b11", "1e3", "١٢", "５", "½", "Ⅻ",
     "true", "false", "yes", "no", "on", "off", "null", "~", "None",
     "15s", "250ms", "5m", "1h", "1d", "2d", "-5s", "0s", "1e400s", "1.5.5s", "PT15S", "s",
     "50%", "150%", "-5%", "%", "nan%", "1e400%",
     "${FUZZ_UNSET_VARIABLE}", "${FUZZ_UNSET_VARIABLE:-7}", "$${x}", "${", "${}",
     "*alias", "&anchor", "!!python/object:os.system", "<<", "- a", "a: b", "{", "[", "'",
     '"', "\\", "#", "|", ">", "@", "`", "\u202e", "\u200b", "\ufeff", "é", "日本語",
     "😀", "x" * 300, "y" * 5000, "a,b", "a\nb", "a\r\nb", "\x7f", "\x01",
     "bundled:azure-llm-code-sample", "bundled:nope", "sparse:azure-code", "../../etc/passwd",
     "/dev/zero", "/proc/self/status", "g5.xlarge", "subnet-0123abcd", "us-east-1"]
)  # fmt: skip
SAFE_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",)), max_size=24
)  # representable in UTF-8 (YAML and JSON text)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    SPECIAL_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    SPECIAL_FLOATS,
    SAFE_TEXT,
    SPECIAL_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT | SPECIAL_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any YAML/JSON value: a scalar, or lists and mappings of them."""

KEYS = st.one_of(
    SAFE_TEXT,
    SPECIAL_TEXT,
    st.none() | st.booleans() | st.integers(-3, 3) | SPECIAL_FLOATS,  # YAML keys need not be text
    st.sampled_from(["name", "type", "min", "max", "policy", "target", "source", "signals",
                     "simulation", "behavior", "pools", "installation", "controller",
                     "nodes", "<<", "kind", "value", "extra", "unknown_field"]),
)  # fmt: skip


# -- mutating a parsed document -------------------------------------------------------------
Path_ = tuple[Any, ...]


def node_paths(doc: Any, path: Path_ = ()) -> list[Path_]:
    """The path of every node below `doc` (mapping keys and list indices), parents first."""
    out: list[Path_] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*path, key))
            out.extend(node_paths(value, (*path, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.append((*path, i))
            out.extend(node_paths(value, (*path, i)))
    return out


def containers(doc: Any, path: Path_ = ()) -> list[Path_]:
    """The path of every mapping or list (the root included)."""
    out: list[Path_] = [path] if isinstance(doc, dict | list) else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(containers(value, (*path, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(containers(value, (*path, i)))
    return out


def at(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated_tree(draw: st.DrawFn, base: Any, most: int = 3) -> Any:
    """`base` (a parsed document, not changed) with 1..`most` edits: a node replaced by
    any value, a key or item deleted, an unknown key added, a node shared with another
    place (YAML writes it as an anchor and alias), a list item duplicated."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, most))):
        paths = node_paths(doc)
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "share",
                                   "duplicate"]))  # fmt: skip
        if not paths or op == "add":
            holders = containers(doc)
            if not holders:
                return draw(VALUES)
            holder = at(doc, draw(st.sampled_from(holders)))
            if isinstance(holder, dict):
                holder[draw(KEYS)] = draw(VALUES)
            else:
                holder.insert(draw(st.integers(0, len(holder))), draw(VALUES))
            continue
        path = draw(st.sampled_from(paths))
        parent, last = at(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(VALUES)
        elif op == "delete":
            del parent[last]
        elif op == "share":
            other = at(doc, draw(st.sampled_from(paths)))
            if other is not parent and not _contains(other, parent):
                parent[last] = other
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
    return doc


def _contains(node: Any, target: Any) -> bool:
    """Whether `target` is `node` or inside it (sharing it there would be a cycle)."""
    if node is target:
        return True
    if isinstance(node, dict):
        return any(_contains(v, target) for v in node.values())
    if isinstance(node, list):
        return any(_contains(v, target) for v in node)
    return False


# -- mutating text --------------------------------------------------------------------------
RANDOM_BYTES = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.sampled_from([b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff", b"\xc3",
                     b"\xe2\x80", b"\r", b"\n", b"\r\n", b"\t", b"\x1b[31m", b"\x0c",
                     b"\xc0\x80", b"\xed\xa0\x80", b"\x85", b"\xe2\x80\xa8"]),
)  # fmt: skip


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one text-level edit: cut at a random point, random bytes (a BOM, a NUL,
    broken UTF-8) inserted or written over, a line deleted or repeated, line endings
    changed, a BOM in front, or emptied."""
    op = draw(st.sampled_from(["truncate", "insert", "overwrite", "bom", "drop_line",
                               "repeat_line", "crlf", "cr", "empty", "swap_lines"]))  # fmt: skip
    if op == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if op in ("insert", "overwrite"):
        where = draw(st.integers(0, len(data)))
        chunk = draw(RANDOM_BYTES)
        end = where + (len(chunk) if op == "overwrite" else 0)
        return data[:where] + chunk + data[end:]
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "empty":
        return b""
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    if op == "cr":
        return data.replace(b"\n", b"\r")
    lines = data.split(b"\n")
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if op == "drop_line":
        del lines[i]
    elif op == "repeat_line":
        lines.insert(i, lines[i])
    else:
        j = draw(st.integers(0, max(0, len(lines) - 1)))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)
