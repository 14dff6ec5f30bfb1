"""Workload traces: read a file into arrivals and the work each one brings.

Formats:
- `azure-llm`: the Azure LLM inference trace (TIMESTAMP, ContextTokens, GeneratedTokens);
- `alibaba-gpu`: the Alibaba GPU cluster trace v2023 pod list (creation_time,
  deletion_time, num_gpu, ...); each task with num_gpu > 0 is a job arriving at
  creation_time that needs num_gpu GPUs for deletion_time - creation_time seconds, from
  `window_start` (default 9,964,972 s: the last ~34 days, where 8,119 of 8,152 tasks arrive);
- `csv`: a documented generic CSV with a header: `timestamp` (seconds as a float, or ISO
  8601) plus either `input_tokens` and `output_tokens` or `service_seconds`; optional
  `num_gpu` (slots of a replica a job holds, default 1) and `pool`.

`sparse:NAME` is a sparse serving case derived from the public traces (autoscaler/sim/
sparse.py: `sparse:azure-code`, `sparse:alibaba-gpu`); its format is implied.

Every reader reports bad rows with the file and line number and never returns a silently
truncated trace. Times come out relative to the first arrival, in seconds.

What a trace file must be (anything else is a TraceError naming the file, the line and
what to do; the CLI prints it and exits 2):
- a regular file of UTF-8 text (a leading byte-order mark, as spreadsheets write, is
  fine; UTF-16, binary files and lines over 1 MiB are refused);
- a header naming each column once. In `csv` every column must be one of `CSV_COLUMNS`
  (a misspelt one would otherwise be ignored without a word); the public formats
  (`azure-llm`, `alibaba-gpu`) may carry columns the simulator does not use;
- rows with as many fields as the header, sorted by time, the arrivals kept spanning at
  most `MAX_SPAN_DAYS` (90) days from the first (the Alibaba window is 34): the simulator
  ticks through the whole span, so a far longer one would run for hours without a word;
- numbers finite and >= 0; timestamps in seconds at most `MAX_TIMESTAMP` (the end of year
  9999 counted from 1970; further out a float no longer holds time to the millisecond), a
  job's `service_seconds` (or deletion - creation) at most the span bound, token counts at
  most `MAX_TOKENS` per request, `num_gpu` at most `MAX_UNITS`. A request whose tokens
  would hold a slot longer than the span bound at the pool's rates is refused when the
  trace is loaded for a pool (autoscaler/sim/run.py `load_trace`).
`Trace.transformed` keeps a replay within `MAX_REPLAY_ARRIVALS` arrivals; how long a replay
(speed-up, repeats) may run against the tick is bounded where the options are read
(autoscaler/cli_sim.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .trace_files import FORMATS as FORMATS  # re-exported: the CLI and callers take them from here
from .trace_files import MAX_LINE_CHARS, names, not_a_file, number, rows
from .trace_files import TraceError as TraceError

CSV_COLUMNS = ("timestamp", "input_tokens", "output_tokens", "service_seconds", "num_gpu", "pool")
"""Every column a `csv` trace may have; any other is refused, naming it."""
ALIBABA_WINDOW_START = 9_964_972.0
BUNDLED = {
    "azure-llm-code-sample": ("azure_llm_code_sample.csv", "azure-llm"),
    "azure-llm-conv-sample": ("azure_llm_conv_sample.csv", "azure-llm"),
}
DAY = 86_400.0
MAX_SPAN_DAYS = 90
MAX_SPAN_SECONDS = MAX_SPAN_DAYS * DAY
"""The longest trace file (first to last arrival kept) and the longest single job the
simulator replays. It ticks through the whole span, about half a second a simulated day per
policy at a 15 s tick: 90 days take minutes, the 34-day Alibaba window fits, and a 1,000-day
trace (two rows are enough) is refused at once instead of running for an hour unannounced."""
MAX_TIMESTAMP = 253_402_300_799.0
"""9999-12-31T23:59:59Z in seconds since 1970: no trace starts later, and further out a
float no longer holds time to the millisecond."""
MAX_TOKENS = 10_000_000
"""Prompt or generated tokens of one request: ten times the longest context windows."""
MAX_UNITS = 1_000_000
"""GPUs one job needs: the most `simulation.service.gpus_per_node` allows."""
MAX_REPLAY_ARRIVALS = 50_000_000
"""Arrivals of one replay, after repeats (memory: the command line allows fewer)."""


@dataclass(frozen=True)
class Trace:
    """Arrivals (seconds from the first, sorted) and what each needs.

    For requests, `input_tokens`/`output_tokens` (or `service_seconds`) give the work; for
    jobs, `service_seconds` and `units` (GPUs). `lines`: the file line of each arrival,
    where it was read from a file (for messages).
    """

    name: str
    arrivals: np.ndarray
    service_seconds: np.ndarray | None = None
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    units: np.ndarray | None = None
    lines: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.arrivals)

    @property
    def span_seconds(self) -> float:
        return float(self.arrivals[-1]) if len(self.arrivals) else 0.0

    def durations(self, prefill_tokens_per_s: float, decode_tokens_per_s: float) -> np.ndarray:
        """Seconds each request holds a slot (token counts through the service model)."""
        if self.service_seconds is not None:
            return self.service_seconds
        assert self.input_tokens is not None and self.output_tokens is not None
        return self.input_tokens / prefill_tokens_per_s + self.output_tokens / decode_tokens_per_s

    def unit_counts(self) -> np.ndarray:
        return self.units if self.units is not None else np.ones(len(self), dtype=np.int64)

    def transformed(self, speedup: float = 1.0, repeat: int = 1) -> Trace:
        """Arrivals compressed `speedup` times, then the whole trace repeated back to back
        (at most MAX_REPLAY_ARRIVALS arrivals in all). How long a replay may run (its span
        over the tick) is the command line's to bound: autoscaler/cli_sim.py."""
        if not (math.isfinite(speedup) and speedup > 0) or repeat < 1:
            raise TraceError(f"speedup must be > 0 and repeat >= 1 (got {speedup}, {repeat})")
        if len(self.arrivals) * repeat > MAX_REPLAY_ARRIVALS:
            raise TraceError(
                f"trace {self.name}: replayed {repeat} times it would have "
                f"{len(self.arrivals) * repeat:,} arrivals, more than the "
                f"{MAX_REPLAY_ARRIVALS:,} a replay holds; lower the repeat count"
            )
        arrivals = self.arrivals / speedup
        trace = replace(self, arrivals=arrivals)
        if len(arrivals) == 0:
            return trace
        gap = float(np.mean(np.diff(arrivals))) if len(arrivals) > 1 else 1.0
        period = float(arrivals[-1]) + gap
        if repeat == 1:
            return trace

        def tile(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.tile(a, repeat)

        offsets = np.repeat(np.arange(repeat) * period, len(arrivals))
        return Trace(
            f"{self.name} x{repeat}",
            np.tile(arrivals, repeat) + offsets,
            tile(self.service_seconds),
            tile(self.input_tokens),
            tile(self.output_tokens),
            tile(self.units),
            tile(self.lines),
        )


def _days(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "more days than a float holds"
    return f"{seconds / DAY:,.1f} days"


def resolve(path: str) -> Path:
    """A trace path, or `bundled:NAME` for a sample shipped with the package."""
    if path.startswith("bundled:"):
        name = path.split(":", 1)[1]
        if name not in BUNDLED:
            raise TraceError(f"no bundled trace {name!r} (have: {', '.join(BUNDLED)})")
        return Path(__file__).resolve().parents[1] / "data" / BUNDLED[name][0]
    return Path(path)


def guess_format(path: str) -> str:
    """The format a trace's header shows; a TraceError naming the file and the formats
    when it shows none of them."""
    if path.startswith("bundled:"):
        return BUNDLED.get(path.split(":", 1)[1], ("", "csv"))[1]
    file = resolve(path)
    if not_a_file(file) is not None:
        return "csv"  # reading it as CSV then says what is wrong
    try:
        with file.open(encoding="utf-8-sig") as handle:
            header = handle.readline(MAX_LINE_CHARS)
    except (OSError, UnicodeDecodeError):
        return "csv"  # not UTF-8 text: reading it as CSV then says what it is
    if "\x00" in header:
        return "csv"
    if header.startswith("TIMESTAMP,ContextTokens"):
        return "azure-llm"
    if "creation_time" in header and "num_gpu" in header:
        return "alibaba-gpu"
    columns = [c.strip().strip('"').lower() for c in header.split(",")]
    if "timestamp" in columns or not header.strip():
        return "csv"  # an empty file: reading it as CSV then says so
    # Read as csv, a header of some other format would fail on a column it does not know,
    # which hides that the format was only guessed.
    raise TraceError(
        f"{file}: cannot tell the trace format from its header ({header.strip()[:120]!r}): "
        "azure-llm starts TIMESTAMP,ContextTokens; alibaba-gpu has creation_time and "
        f"num_gpu; csv has a timestamp column ({', '.join(CSV_COLUMNS)}); give the format "
        "(--trace-format, or simulation.trace.format in the config) or fix the header"
    )


def read_trace(
    path: str, fmt: str | None = None, pool: str | None = None, window_start: float | None = None
) -> Trace:
    """Read a trace in one of FORMATS (guessed from the header when not given), or derive
    a `sparse:NAME` case."""
    if path.startswith("sparse:"):
        from .sparse import sparse_trace  # it reads the source traces with this module

        return sparse_trace(path.split(":", 1)[1])
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; use one of: {', '.join(FORMATS)}")
    file = resolve(path)
    if fmt == "azure-llm":
        trace = _read_azure(file)
    elif fmt == "alibaba-gpu":
        start = ALIBABA_WINDOW_START if window_start is None else window_start
        if not (math.isfinite(start) and start >= 0):
            raise TraceError(f"window_start must be a number of seconds >= 0, got {start}")
        trace = _read_alibaba(file, start)
    else:
        trace = _read_csv(file, pool)
    if len(trace) == 0:
        raise TraceError(f"{file}: no usable rows")
    return trace


def _timestamp(file: Path, line: int, column: str, text: str | None) -> float:
    why = "the end of year 9999 in seconds since 1970"
    return number(file, line, column, text, most=MAX_TIMESTAMP, why=why)


def _service_seconds(file: Path, line: int, text: str | None) -> float:
    why = f"{MAX_SPAN_DAYS} days, the longest job the simulator replays"
    return number(file, line, "service_seconds", text, most=MAX_SPAN_SECONDS, why=why)


def _tokens(file: Path, line: int, column: str, text: str | None) -> float:
    return number(
        file, line, column, text, True, MAX_TOKENS, "the most tokens one request may have"
    )


def _gpus(file: Path, line: int, text: str | None) -> float:
    return number(file, line, "num_gpu", text, True, MAX_UNITS, "the most GPUs one job may need")


def _ordered(file: Path, line: int, t: float, last: float) -> None:
    if t < last:
        raise TraceError(
            f"{file}: line {line}: timestamp {t:.3f} is earlier than the "
            f"previous row ({last:.3f}); sort the file by time"
        )


class _Kept:
    """The arrivals kept so far and their lines; each within MAX_SPAN_SECONDS of the first."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.times: list[float] = []
        self.lines: list[int] = []

    def add(self, line: int, t: float) -> None:
        if self.times and t - self.times[0] > MAX_SPAN_SECONDS:
            raise TraceError(
                f"{self.file}: line {line}: this row arrives {_days(t - self.times[0])} after "
                f"the first (line {self.lines[0]}); the simulator replays traces of up to "
                f"{MAX_SPAN_DAYS} days: cut the file to the period to study (or split it)"
            )
        self.times.append(t)
        self.lines.append(line)

    def arrivals(self) -> np.ndarray:
        arrivals = np.asarray(self.times, dtype=float)
        return arrivals - (arrivals[0] if len(arrivals) else 0.0)

    def line_numbers(self) -> np.ndarray:
        return np.asarray(self.lines, dtype=np.int64)


def _azure_seconds(file: Path, line: int, text: str) -> float:
    """'2023-11-16 18:17:03.9799600' (7 fractional digits, no zone) as UTC seconds."""
    head, _, frac = (text or "").strip().partition(".")
    try:
        if frac and not (frac.isascii() and frac.isdigit()):
            raise ValueError(frac)
        stamp = datetime.strptime(head, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)
    except ValueError:
        raise TraceError(
            f"{file}: line {line}: TIMESTAMP {text!r} is not 'YYYY-MM-DD HH:MM:SS.fffffff'"
        ) from None


def _read_azure(file: Path) -> Trace:
    kept = _Kept(file)
    inputs, outputs = [], []
    last = -math.inf
    for line, row in rows(file, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        t = _azure_seconds(file, line, row["TIMESTAMP"])
        _ordered(file, line, t, last)
        last = t
        kept.add(line, t)
        inputs.append(_tokens(file, line, "ContextTokens", row["ContextTokens"]))
        outputs.append(_tokens(file, line, "GeneratedTokens", row["GeneratedTokens"]))
    return Trace(
        file.stem,
        kept.arrivals(),
        None,
        np.asarray(inputs),
        np.asarray(outputs),
        lines=kept.line_numbers(),
    )


def _read_alibaba(file: Path, window_start: float) -> Trace:
    kept = _Kept(file)
    durations, units = [], []
    last = -math.inf
    tasks = 0
    for line, row in rows(file, ("creation_time", "deletion_time", "num_gpu")):
        tasks += 1
        gpus = _gpus(file, line, row["num_gpu"])
        created = _timestamp(file, line, "creation_time", row["creation_time"])
        _ordered(file, line, created, last)
        last = created
        if gpus == 0 or created < window_start:
            continue
        deleted = _timestamp(file, line, "deletion_time", row["deletion_time"])
        if deleted <= created:
            continue  # never ran: nothing to replay
        if deleted - created > MAX_SPAN_SECONDS:
            raise TraceError(
                f"{file}: line {line}: the task runs {_days(deleted - created)} "
                "(deletion_time - creation_time), longer than the simulator replays "
                f"({MAX_SPAN_DAYS} days); check deletion_time"
            )
        kept.add(line, created)
        durations.append(deleted - created)
        units.append(int(gpus))
    if tasks and not kept.times:
        raise TraceError(
            f"{file}: no usable rows: none of its {tasks:,} task(s) needs a GPU (num_gpu > 0), "
            f"arrives at or after the window start ({window_start:,.0f} s) and ran "
            "(deletion_time > creation_time)"
        )
    return Trace(
        file.stem,
        kept.arrivals(),
        np.asarray(durations, dtype=float),
        None,
        None,
        np.asarray(units, dtype=np.int64),
        kept.line_numbers(),
    )


def _csv_seconds(file: Path, line: int, text: str) -> float:
    """Seconds (a number) or an ISO 8601 time."""
    try:
        float(text)
    except (TypeError, ValueError):
        pass
    else:
        return _timestamp(file, line, "timestamp", text)
    try:
        stamp = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    except (ValueError, OverflowError):
        raise TraceError(
            f"{file}: line {line}: timestamp {text!r} is neither seconds nor ISO 8601"
        ) from None


def _read_csv(file: Path, pool: str | None) -> Trace:
    records = rows(file, ("timestamp",), CSV_COLUMNS)
    kept = _Kept(file)
    services: list[float] = []
    inputs: list[float] = []
    outputs: list[float] = []
    units: list[float] = []
    last = -math.inf
    mode = None
    pools: set[str] = set()
    for line, row in records:
        if mode is None:
            mode = "service" if "service_seconds" in row else "tokens"
            tokens = {"input_tokens", "output_tokens"} & set(row)
            if mode == "service" and tokens:
                raise TraceError(
                    f"{file}: line 1: has `service_seconds` and {names(sorted(tokens))}; "
                    "give either `service_seconds` or `input_tokens` and `output_tokens`"
                )
            if mode == "tokens" and len(tokens) < 2:
                raise TraceError(
                    f"{file}: line 1: needs `service_seconds`, or both "
                    "`input_tokens` and `output_tokens`"
                )
        if pool is not None and row.get("pool") not in (None, "", pool):
            if len(pools) < 100:
                pools.add(row["pool"])
            continue
        t = _csv_seconds(file, line, row["timestamp"])
        _ordered(file, line, t, last)
        last = t
        kept.add(line, t)
        if mode == "service":
            services.append(_service_seconds(file, line, row["service_seconds"]))
        else:
            inputs.append(_tokens(file, line, "input_tokens", row["input_tokens"]))
            outputs.append(_tokens(file, line, "output_tokens", row["output_tokens"]))
        units.append(_gpus(file, line, row.get("num_gpu") or "1"))
    if pools and not kept.times:
        raise TraceError(
            f"{file}: no usable rows for pool {pool!r}: its `pool` column names only "
            f"{names(sorted(pools))}; rename the pool, or give a trace with its rows"
        )
    return Trace(
        file.stem,
        kept.arrivals(),
        np.asarray(services) if mode == "service" else None,
        np.asarray(inputs) if mode == "tokens" else None,
        np.asarray(outputs) if mode == "tokens" else None,
        np.asarray(units, dtype=np.int64),
        kept.line_numbers(),
    )
