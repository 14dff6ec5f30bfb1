"""Sparse serving cases derived from the real traces (issue 16): few requests, long gaps.

A keep-alive only matters where a pool's traffic stops for minutes at a time. The public
traces in ../shared/traces are dense (the Azure LLM traces: 2.6 and 5.5 requests a second)
or are batch jobs (the Alibaba GPU trace), so the sparse cases are derived from them, by
fixed, documented rules with no randomness (the same files give the same trace, bit for
bit):

- `azure-code` -- the Azure LLM code trace (57 min, 8,819 requests) replayed at a tenth of
  its speed (each arrival time x 10: its idle minutes become 10-40 min gaps and its busy
  minutes busy spells of ten), keeping the requests whose timestamp hashes into one share
  of five (`keep(...)`: blake2b of the arrival time in microseconds, salted; one model of
  five behind one endpoint, say). Each kept request keeps its own prompt and output tokens.
  1,822 requests over 9.5 hours: 3.2 a minute on average, up to 50 in a minute, 64 % of
  minutes idle; median gap 2.5 s, 49 gaps over 90 s, 26 over 5 min, 6 over 20 min, the
  longest 36 min (properties: `describe`).
- `alibaba-gpu` -- the submissions of the Alibaba GPU cluster trace v2023 as the requests
  of one serving pool: each GPU task (num_gpu > 0) of the trace's 34-day window is one
  request arriving at its `creation_time`, over the first `ALIBABA_DAYS` (14) days of the
  window. A task's size says nothing about a request's, so request i takes the prompt and
  output tokens of row i of the Azure code trace (cycling). The trace's own daily rhythm
  stays: submissions peak from 09:00 to 17:00 of the trace's clock at about 3x the rate
  of 03:00 to 08:00. 2,487 requests over 14 days: 7.4 an hour, median gap 4.2 min, one gap
  in ten over 20 min, 267 over 20 min, the longest 2 hours.

- `periodic-eval` -- not a real schedule, a demonstration of what the others lack: an
  evaluation job every 30 min (each run starting up to 60 s early or late, by hash of its
  number), sending the next 40 requests of the Azure code trace at their own spacing (their
  tokens kept), for 12 hours: 960 requests in 24 runs. Its idle gaps are peaked (about 29
  min each), so their end can be predicted; the real-derived cases' gaps are not (their
  hazard falls with the time idle: autoscaler/sim/idle_analysis.py).

`sparse_trace("azure-code")` builds one (`read_trace("sparse:azure-code")` too, so every
`--trace` option takes `sparse:NAME`); `python -m autoscaler.sim.sparse NAME` prints its
properties and can write it as a generic CSV (`--csv FILE`). The source traces are looked
for in $AUTOSCALER_TRACES, else ../shared/traces from the working directory, else next to
the project.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .traces import Trace, TraceError, read_trace

AZURE_CODE = "AzureLLMInferenceTrace_code.csv"
ALIBABA_PODS = "alibaba_gpu_v2023/openb_pod_list_default.csv"
AZURE_SLOWDOWN = 10.0
"""The Azure code trace's arrival times are multiplied by this."""
AZURE_SHARES = 5
"""... and one request in this many (by hash of its timestamp) is kept."""
AZURE_SALT = "azure-code/0"
ALIBABA_DAYS = 14
"""Days of the Alibaba window (from its start) whose GPU task submissions are requests."""
DAY = 86_400.0
EVAL_EVERY = 1_800.0
"""periodic-eval: seconds between evaluation runs..."""
EVAL_JITTER = 60.0
"""...each starting up to this many seconds early or late (by hash of its number)..."""
EVAL_BATCH = 40
"""...and sending this many requests of the code trace..."""
EVAL_HOURS = 12.0
"""...over this many hours."""
EVAL_SALT = "periodic-eval/0"


def keep(arrivals: np.ndarray, shares: int, salt: str, share: int = 0) -> np.ndarray:
    """Which requests fall in share `share` of `shares`: blake2b of `salt` and the arrival
    time in whole microseconds, as an integer, modulo `shares`. Deterministic, and
    independent of the order or number of the other requests."""
    micros = np.rint(np.asarray(arrivals, dtype=float) * 1e6).astype(np.int64)
    out = np.empty(len(micros), dtype=bool)
    prefix = salt.encode() + b":"
    for i, us in enumerate(micros.tolist()):
        digest = hashlib.blake2b(prefix + str(us).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") % shares == share
    return out


def azure_code_sparse(
    code: Trace,
    slowdown: float = AZURE_SLOWDOWN,
    shares: int = AZURE_SHARES,
    salt: str = AZURE_SALT,
) -> Trace:
    """The code trace at 1/`slowdown` speed, one share of `shares` of its requests kept."""
    assert code.input_tokens is not None and code.output_tokens is not None
    kept = keep(code.arrivals, shares, salt)
    arrivals = code.arrivals[kept] * slowdown
    return Trace(
        f"sparse:azure-code (x{slowdown:g} slower, 1/{shares} kept)",
        arrivals - arrivals[0],
        None,
        code.input_tokens[kept],
        code.output_tokens[kept],
    )


def alibaba_serving(jobs: Trace, tokens: Trace, days: float = ALIBABA_DAYS) -> Trace:
    """The GPU task submissions of the first `days` days as requests, with the token
    counts of `tokens` (an LLM trace) in order, cycling."""
    assert tokens.input_tokens is not None and tokens.output_tokens is not None
    arrivals = jobs.arrivals[jobs.arrivals < days * DAY]
    rows = np.arange(len(arrivals)) % len(tokens)
    return Trace(
        f"sparse:alibaba-gpu ({days:g} days of GPU task submissions)",
        arrivals - arrivals[0],
        None,
        tokens.input_tokens[rows],
        tokens.output_tokens[rows],
    )


def periodic_eval(
    code: Trace,
    every: float = EVAL_EVERY,
    batch: int = EVAL_BATCH,
    hours: float = EVAL_HOURS,
    salt: str = EVAL_SALT,
) -> Trace:
    """An evaluation job every `every` seconds (started up to `EVAL_JITTER` s early or late,
    by hash), each sending the next `batch` requests of the code trace at their own spacing
    (tokens kept), for `hours` hours. The schedule is invented; the requests are real."""
    assert code.input_tokens is not None and code.output_tokens is not None
    runs = int(hours * 3600 // every)
    arrivals: list[float] = []
    rows: list[int] = []
    for k in range(runs):
        digest = hashlib.blake2b(f"{salt}:{k}".encode(), digest_size=8).digest()
        jitter = (int.from_bytes(digest, "big") / 2**64 * 2 - 1) * EVAL_JITTER
        first = (k * batch) % (len(code) - batch)
        spacing = code.arrivals[first : first + batch] - code.arrivals[first]
        arrivals.extend((k * every + jitter + spacing).tolist())
        rows.extend(range(first, first + batch))
    at = np.asarray(arrivals)
    index = np.asarray(rows)
    order = np.argsort(at, kind="stable")
    return Trace(
        f"sparse:periodic-eval (every {every / 60:g} min, {batch} requests, synthetic schedule)",
        at[order] - at[order][0],
        None,
        code.input_tokens[index[order]],
        code.output_tokens[index[order]],
    )


def traces_dir() -> Path:
    """Where the source traces are: $AUTOSCALER_TRACES, else ../shared/traces from the
    working directory, else next to the project."""
    env = os.environ.get("AUTOSCALER_TRACES")
    if env:
        return Path(env)
    for candidate in (
        Path.cwd().parent / "shared" / "traces",
        Path(__file__).resolve().parents[3] / "shared" / "traces",
    ):
        if (candidate / AZURE_CODE).exists():
            return candidate
    return Path.cwd().parent / "shared" / "traces"


def _source(folder: Path, name: str, fmt: str) -> Trace:
    path = folder / name
    if not path.exists():
        raise TraceError(
            f"{path}: not found; the sparse cases are derived from the public traces "
            "(see ../shared/traces/README.md): set AUTOSCALER_TRACES to their folder"
        )
    return read_trace(str(path), fmt)


@dataclass(frozen=True)
class SparseCase:
    name: str
    summary: str
    build: Callable[[Path], Trace]


CASES: dict[str, SparseCase] = {
    "azure-code": SparseCase(
        "azure-code",
        f"Azure LLM code trace at 1/{AZURE_SLOWDOWN:g} speed, 1 request in {AZURE_SHARES} "
        "kept by hash of its timestamp",
        lambda d: azure_code_sparse(_source(d, AZURE_CODE, "azure-llm")),
    ),
    "alibaba-gpu": SparseCase(
        "alibaba-gpu",
        f"Alibaba GPU v2023 task submissions, first {ALIBABA_DAYS} days of the window, one "
        "request each (tokens of the Azure code trace's rows in order)",
        lambda d: alibaba_serving(
            _source(d, ALIBABA_PODS, "alibaba-gpu"), _source(d, AZURE_CODE, "azure-llm")
        ),
    ),
    "periodic-eval": SparseCase(
        "periodic-eval",
        f"synthetic schedule, real requests: an evaluation run every {EVAL_EVERY / 60:g} "
        f"min (+-{EVAL_JITTER:g} s) sending the next {EVAL_BATCH} requests of the Azure code "
        "trace at their own spacing",
        lambda d: periodic_eval(_source(d, AZURE_CODE, "azure-llm")),
    ),
}


def sparse_trace(name: str, folder: Path | None = None) -> Trace:
    """One of `CASES`, derived from the traces in `folder` (default `traces_dir()`)."""
    case = CASES.get(name)
    if case is None:
        raise TraceError(f"no sparse case {name!r} (have: {', '.join(CASES)})")
    return case.build(folder or traces_dir())


def describe(trace: Trace) -> dict[str, Any]:
    """The properties the cases are documented by: size and span, requests per minute
    (over all minutes, and the busiest), the gaps between arrivals (percentiles and the
    share over each keep-alive baseline's window), and arrivals by hour of the day."""
    a = trace.arrivals
    gaps = np.diff(a)
    minutes = np.bincount((a // 60).astype(np.int64))
    hours = np.bincount(((a % DAY) // 3600).astype(np.int64), minlength=24)
    pct = np.percentile(gaps, [50, 90, 99]) if len(gaps) else np.zeros(3)
    return {
        "name": trace.name,
        "requests": len(a),
        "span_h": round(trace.span_seconds / 3600, 2),
        "per_minute_mean": round(len(a) / max(len(minutes), 1), 2),
        "per_minute_max": int(minutes.max()) if len(minutes) else 0,
        "idle_minutes_share": round(float(np.mean(minutes == 0)), 3),
        "gap_p50_s": round(float(pct[0]), 1),
        "gap_p90_s": round(float(pct[1]), 1),
        "gap_p99_s": round(float(pct[2]), 1),
        "gap_max_s": round(float(gaps.max()), 1) if len(gaps) else 0.0,
        "gaps_over_s": {str(s): int(np.sum(gaps > s)) for s in (90, 300, 600, 1200)},
        "by_hour_of_day": hours.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autoscaler.sim.sparse",
        description="Derive a sparse serving case from the public traces and print its "
        "properties (cases: " + "; ".join(f"{c.name}: {c.summary}" for c in CASES.values()) + ")",
    )
    parser.add_argument("name", choices=sorted(CASES))
    parser.add_argument("--traces", type=Path, help="folder of the source traces")
    parser.add_argument("--csv", type=Path, help="also write it here as a generic CSV")
    args = parser.parse_args(argv)
    try:
        trace = sparse_trace(args.name, args.traces)
    except TraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(describe(trace), indent=2))
    if args.csv:
        assert trace.input_tokens is not None and trace.output_tokens is not None
        rows = zip(trace.arrivals, trace.input_tokens, trace.output_tokens, strict=True)
        lines = ["timestamp,input_tokens,output_tokens"]
        lines += [f"{t:.6f},{int(i)},{int(o)}" for t, i, o in rows]
        args.csv.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
