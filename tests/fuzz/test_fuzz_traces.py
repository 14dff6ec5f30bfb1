"""Trace files: a mutated trace in any format either simulates or is refused with exit 2
and one line naming the file (and a line of it, within the file); never a traceback or a
hang. Replays run at an hour's tick, so even a 90-day trace takes well under a second."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from .harness import (
    SPECIAL_FLOATS,
    SPECIAL_INTS,
    SPECIAL_TEXT,
    assert_clean,
    error_lines,
    fuzz_settings,
    invoke,
    mutated_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "simulated.yaml")  # an LLM pool, interval 1s
BATCH = str(ROOT / "examples" / "gpu-batch.yaml")  # a GPU batch pool (packing, 8 GPUs a node)

BASES: dict[str, tuple[str, list[list[str]]]] = {
    "csv-service": (LLM, [["timestamp", "service_seconds"], ["0", "1"], ["5", "2.5"],
                          ["12", "1"]]),
    "csv-tokens": (LLM, [["timestamp", "input_tokens", "output_tokens", "num_gpu", "pool"],
                         ["0", "100", "10", "1", "sim-llm"], ["3", "200", "20", "1", "sim-llm"],
                         ["9", "50", "5", "2", ""]]),
    "csv-iso": (LLM, [["timestamp", "service_seconds"], ["2024-01-01T00:00:00Z", "1"],
                      ["2024-01-01T00:00:05Z", "2"], ["2024-01-01T00:00:07.5+00:00", "1"]]),
    "azure-llm": (LLM, [["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
                        ["2023-11-16 18:17:03.9799600", "100", "10"],
                        ["2023-11-16 18:17:05.0000000", "200", "20"],
                        ["2023-11-16 18:17:09.5", "50", "5"]]),
    "alibaba-gpu": (BATCH, [["name", "num_gpu", "creation_time", "deletion_time", "gpu_milli"],
                            ["a", "1", "9964972", "9964990", "1000"],
                            ["b", "2", "9964975", "9965000", "1000"],
                            ["c", "0", "9964980", "9964990", "0"],
                            ["d", "8", "9964990", "9965100", "1000"]]),
}  # fmt: skip

CELLS = st.one_of(
    st.integers(0, 100).map(str),  # values a trace holds: the replay goes on with them
    st.floats(0, 100).map(str),
    st.integers(min_value=-(10**6), max_value=10**7).map(str),
    SPECIAL_INTS.map(str),
    SPECIAL_FLOATS.map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    SPECIAL_TEXT,
    st.sampled_from(
        ["253402300799", "253402300800", "7776000", "7776001", "9964971", "1e-320", "1" * 5000,
         "2023-11-16 18:17:03", "2023-11-16 18:17:03.", "2023-11-16 18:17:03.x",
         "2023-02-30 00:00:00.0", "9999-12-31 23:59:59.9999999", "0001-01-01 00:00:00.0",
         "2024-02-30T00:00:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00", "2024-01-01",
         "2024-01-01T00:00:00+25:00", "10000-01-01T00:00:00", '"quoted, comma"', '"', 'a"b',
         '""', '"\n"', "sim-llm", "other-pool", "TIMESTAMP", "timestamp"]
    ),
)  # fmt: skip
HEADERS = st.sampled_from(
    ["timestamp", "service_seconds", "input_tokens", "output_tokens", "num_gpu", "pool",
     "TIMESTAMP", "ContextTokens", "GeneratedTokens", "creation_time", "deletion_time", "name",
     "servce_seconds", "", " timestamp", "Timestamp", "\ufefftimestamp", "x" * 100]
)  # fmt: skip


@st.composite
def mutated_rows(draw: st.DrawFn, rows: list[list[str]]) -> list[list[str]]:
    """`rows` (the header first) with 1..3 edits: a cell replaced, a field added or
    dropped, a header renamed, duplicated or dropped, rows swapped (unsorted), repeated,
    dropped, a blank row or a row of random cells."""
    rows = [list(r) for r in rows]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "add_field", "drop_field",
                                   "header", "dup_header", "drop_header", "swap", "repeat",
                                   "drop_row", "blank", "random_row"]))  # fmt: skip
        if not rows:
            rows.append([draw(CELLS)])
            continue
        r = draw(st.integers(0, len(rows) - 1))
        row = rows[r]
        c = draw(st.integers(0, max(0, len(row) - 1)))
        if op == "cell" and row:
            row[c] = draw(CELLS)
        elif op == "add_field":
            row.insert(draw(st.integers(0, len(row))), draw(CELLS))
        elif op == "drop_field" and row:
            del row[c]
        elif op == "header" and rows[0]:
            rows[0][draw(st.integers(0, len(rows[0]) - 1))] = draw(HEADERS)
        elif op == "dup_header" and rows[0]:
            rows[0].append(draw(st.sampled_from(rows[0])))
        elif op == "drop_header" and rows[0]:
            del rows[0][draw(st.integers(0, len(rows[0]) - 1))]
        elif op == "swap" and len(rows) > 2:
            s = draw(st.integers(1, len(rows) - 1))
            rows[r], rows[s] = rows[s], rows[r]
        elif op == "repeat":
            rows.insert(r, list(row))
        elif op == "drop_row":
            del rows[r]
        elif op == "blank":
            rows.insert(r, [])
        elif op == "random_row":
            rows.insert(r + 1, draw(st.lists(CELLS, min_size=1, max_size=6)))
    return rows


@st.composite
def traces(draw: st.DrawFn) -> tuple[str, bytes]:
    """(a configuration to replay it with, a trace file's bytes)."""
    name = draw(st.sampled_from(sorted(BASES)))
    config, rows = BASES[name]
    if draw(st.integers(0, 9)) == 0:  # now and then the other kind of pool
        config = BATCH if config == LLM else LLM
    rows = draw(mutated_rows(rows))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = newline.join(",".join(row) for row in rows)
    if draw(st.booleans()):
        text += newline
    data = text.encode()
    if draw(st.integers(0, 3)) == 0:
        data = draw(mutated_bytes(data))
    return config, data


def check_trace(config: str, data: bytes, folder: Path, fmt: str | None, sweep: bool) -> None:
    trace = folder / "trace.csv"
    trace.write_bytes(data)
    options = ["--trace", str(trace), "--tick", "1h"]
    if fmt:
        options += ["--trace-format", fmt]
    if sweep:
        result = invoke("sweep", config, "--param", "max=4", "--workers", "1", *options)
    else:
        result = invoke("simulate", config, "--compare", "none", *options)
    assert_clean(result)
    if result.exit_code == 0:
        return
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr  # one line
    (line,) = errors
    assert line.startswith("error: ") and str(trace) in line, line
    if ": line " in line:
        number = int(line.split(": line ", 1)[1].split(":", 1)[0].split(" ", 1)[0])
        most = data.count(b"\n") + data.count(b"\r") + 1
        assert 1 <= number <= most, (number, most, line)


TRACE_EXAMPLES = [
    (LLM, b""),
    (LLM, b"\xef\xbb\xbftimestamp,service_seconds\r\n0,1\r\n"),
    (LLM, b"timestamp,service_seconds\n0,1\n0\x00,1\n"),
    (LLM, b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,100,1e308\n"),
    (BATCH, b"name,num_gpu,creation_time,deletion_time\na,9,9964972,9964990\n"),
    (LLM, b"timestamp,service_seconds\n5,1\n0,1\n"),
    (LLM, b'timestamp,service_seconds\n0,"1\n'),
    # found by this fuzzer: a gpu-batch pool's refusals named no file (SimulationError)
    (
        BATCH,
        b"name,num_gpu,creation_time,deletion_time\na,1,9964972,9964990\nb,9,9964973,9964990\n",
    ),
    (BATCH, b"timestamp,input_tokens,output_tokens\n0,10,1\n"),
    # ... and a header with a line break or control character split the one line
    (LLM, b'"\n",num_gpu,creation_time\n1,2,3\n'),
    (LLM, b"\xc2\x80\x0bnum_gpu,creation_time\n1,2\n"),
]


@fuzz_settings(350)
@given(case=traces(), fmt=st.sampled_from([None, None, None, "csv", "azure-llm",
                                           "alibaba-gpu"]))  # fmt: skip
@example(case=TRACE_EXAMPLES[0], fmt=None)
@example(case=TRACE_EXAMPLES[1], fmt=None)
@example(case=TRACE_EXAMPLES[2], fmt=None)
@example(case=TRACE_EXAMPLES[3], fmt=None)
@example(case=TRACE_EXAMPLES[4], fmt=None)
@example(case=TRACE_EXAMPLES[5], fmt=None)
@example(case=TRACE_EXAMPLES[6], fmt=None)
@example(case=TRACE_EXAMPLES[7], fmt=None)
@example(case=TRACE_EXAMPLES[8], fmt=None)
@example(case=TRACE_EXAMPLES[9], fmt=None)
@example(case=TRACE_EXAMPLES[10], fmt=None)
def test_a_mutated_trace_simulates_or_is_refused_naming_the_file(case, fmt, tmp_path_factory):
    config, data = case
    check_trace(config, data, tmp_path_factory.mktemp("trace"), fmt, sweep=False)


@fuzz_settings(100)
@given(case=traces())
@example(case=(LLM, b"timestamp,service_seconds\n0,1\n"))  # the configured format, not the file's
@example(case=TRACE_EXAMPLES[7])
@example(case=TRACE_EXAMPLES[9])
def test_a_sweep_reads_a_mutated_trace_as_simulate_does(case, tmp_path_factory):
    config, data = case
    check_trace(config, data, tmp_path_factory.mktemp("sweep"), None, sweep=True)
