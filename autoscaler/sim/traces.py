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
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

FORMATS = ("azure-llm", "alibaba-gpu", "csv")
ALIBABA_WINDOW_START = 9_964_972.0
BUNDLED = {
    "azure-llm-code-sample": ("azure_llm_code_sample.csv", "azure-llm"),
    "azure-llm-conv-sample": ("azure_llm_conv_sample.csv", "azure-llm"),
}


class TraceError(ValueError):
    """A trace that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    """Arrivals (seconds from the first, sorted) and what each needs.

    For requests, `input_tokens`/`output_tokens` (or `service_seconds`) give the work; for
    jobs, `service_seconds` and `units` (GPUs).
    """

    name: str
    arrivals: np.ndarray
    service_seconds: np.ndarray | None = None
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    units: np.ndarray | None = None

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
        """Arrivals compressed `speedup` times, then the whole trace repeated back to back."""
        if not (math.isfinite(speedup) and speedup > 0) or repeat < 1:
            raise TraceError(f"speedup must be > 0 and repeat >= 1 (got {speedup}, {repeat})")
        arrivals = self.arrivals / speedup
        trace = replace(self, arrivals=arrivals)
        if repeat == 1 or len(arrivals) == 0:
            return trace
        gap = float(np.mean(np.diff(arrivals))) if len(arrivals) > 1 else 1.0
        period = float(arrivals[-1]) + gap

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
        )


def resolve(path: str) -> Path:
    """A trace path, or `bundled:NAME` for a sample shipped with the package."""
    if path.startswith("bundled:"):
        name = path.split(":", 1)[1]
        if name not in BUNDLED:
            raise TraceError(f"no bundled trace {name!r} (have: {', '.join(BUNDLED)})")
        return Path(__file__).resolve().parents[1] / "data" / BUNDLED[name][0]
    return Path(path)


def guess_format(path: str) -> str:
    if path.startswith("bundled:"):
        return BUNDLED.get(path.split(":", 1)[1], ("", "csv"))[1]
    try:
        with resolve(path).open(encoding="utf-8") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError):  # reading it as CSV then says what is wrong
        return "csv"
    if header.startswith("TIMESTAMP,ContextTokens"):
        return "azure-llm"
    if "creation_time" in header and "num_gpu" in header:
        return "alibaba-gpu"
    return "csv"


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
        trace = _read_alibaba(file, ALIBABA_WINDOW_START if window_start is None else window_start)
    else:
        trace = _read_csv(file, pool)
    if len(trace) == 0:
        raise TraceError(f"{file}: no usable rows")
    return trace


def _rows(file: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = file.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{file}: cannot read ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            if not reader.fieldnames:
                raise TraceError(f"{file}: empty file (expected a header line)")
            missing = [c for c in required if c not in reader.fieldnames]
            if missing:
                raise TraceError(
                    f"{file}: line 1: missing column(s) {', '.join(missing)} "
                    f"(header: {', '.join(reader.fieldnames)})"
                )
            for row in reader:
                yield reader.line_num, row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise TraceError(
                f"{file}: line {reader.line_num + 1}: not a UTF-8 CSV text file ({exc}); "
                f"give a trace in one of: {', '.join(FORMATS)}"
            ) from None


def _number(file: Path, line: int, column: str, text: str | None, integer: bool = False) -> float:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (integer and value != int(value)):
        kind = "a whole number >= 0" if integer else "a number >= 0"
        raise TraceError(f"{file}: line {line}: {column} must be {kind}, got {text!r}")
    return value


def _ordered(file: Path, line: int, t: float, last: float) -> None:
    if t < last:
        raise TraceError(
            f"{file}: line {line}: timestamp {t:.3f} is earlier than the "
            f"previous row ({last:.3f}); sort the file by time"
        )


def _azure_seconds(file: Path, line: int, text: str) -> float:
    """'2023-11-16 18:17:03.9799600' (7 fractional digits, no zone) as UTC seconds."""
    head, _, frac = (text or "").strip().partition(".")
    try:
        stamp = datetime.strptime(head, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)
    except ValueError:
        raise TraceError(
            f"{file}: line {line}: TIMESTAMP {text!r} is not 'YYYY-MM-DD HH:MM:SS.fffffff'"
        ) from None


def _read_azure(file: Path) -> Trace:
    times, inputs, outputs = [], [], []
    last = -math.inf
    for line, row in _rows(file, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        t = _azure_seconds(file, line, row["TIMESTAMP"])
        _ordered(file, line, t, last)
        last = t
        times.append(t)
        inputs.append(_number(file, line, "ContextTokens", row["ContextTokens"], True))
        outputs.append(_number(file, line, "GeneratedTokens", row["GeneratedTokens"], True))
    arrivals = np.asarray(times, dtype=float)
    return Trace(
        file.stem,
        arrivals - (arrivals[0] if len(arrivals) else 0.0),
        None,
        np.asarray(inputs),
        np.asarray(outputs),
    )


def _read_alibaba(file: Path, window_start: float) -> Trace:
    times, durations, units = [], [], []
    last = -math.inf
    for line, row in _rows(file, ("creation_time", "deletion_time", "num_gpu")):
        gpus = _number(file, line, "num_gpu", row["num_gpu"], True)
        created = _number(file, line, "creation_time", row["creation_time"])
        _ordered(file, line, created, last)
        last = created
        if gpus == 0 or created < window_start:
            continue
        deleted = _number(file, line, "deletion_time", row["deletion_time"])
        if deleted <= created:
            continue  # never ran: nothing to replay
        times.append(created)
        durations.append(deleted - created)
        units.append(int(gpus))
    arrivals = np.asarray(times, dtype=float)
    return Trace(
        file.stem,
        arrivals - (arrivals[0] if len(arrivals) else 0.0),
        np.asarray(durations, dtype=float),
        None,
        None,
        np.asarray(units, dtype=np.int64),
    )


def _csv_seconds(file: Path, line: int, text: str) -> float:
    try:
        return _number(file, line, "timestamp", text)
    except TraceError:
        pass
    try:
        stamp = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        raise TraceError(
            f"{file}: line {line}: timestamp {text!r} is neither seconds nor ISO 8601"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _read_csv(file: Path, pool: str | None) -> Trace:
    rows = _rows(file, ("timestamp",))
    times: list[float] = []
    services: list[float] = []
    inputs: list[float] = []
    outputs: list[float] = []
    units: list[float] = []
    last = -math.inf
    mode = None
    for line, row in rows:
        if mode is None:
            mode = "service" if "service_seconds" in row else "tokens"
            if mode == "tokens" and not {"input_tokens", "output_tokens"} <= set(row):
                raise TraceError(
                    f"{file}: line 1: needs `service_seconds`, or both "
                    "`input_tokens` and `output_tokens`"
                )
        if pool is not None and row.get("pool") not in (None, "", pool):
            continue
        t = _csv_seconds(file, line, row["timestamp"])
        _ordered(file, line, t, last)
        last = t
        times.append(t)
        if mode == "service":
            services.append(_number(file, line, "service_seconds", row["service_seconds"]))
        else:
            inputs.append(_number(file, line, "input_tokens", row["input_tokens"], True))
            outputs.append(_number(file, line, "output_tokens", row["output_tokens"], True))
        units.append(_number(file, line, "num_gpu", row.get("num_gpu") or "1", True))
    arrivals = np.asarray(times, dtype=float)
    arrivals = arrivals - (arrivals[0] if len(arrivals) else 0.0)
    return Trace(
        file.stem,
        arrivals,
        np.asarray(services) if mode == "service" else None,
        np.asarray(inputs) if mode == "tokens" else None,
        np.asarray(outputs) if mode == "tokens" else None,
        np.asarray(units, dtype=np.int64),
    )
