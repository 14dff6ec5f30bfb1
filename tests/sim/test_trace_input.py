"""Bad trace files through the real CLI (issue 19): every one is refused with one line that
names the file, the line and what to do, exit 2, no traceback and no hang; a spreadsheet's
UTF-8 CSV with a byte-order mark just works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")
HEADER = b"timestamp,service_seconds\n"


def simulate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", LLM, "--compare", "none", *args])
    # The result alone on success (notes go to stderr); everything to explain a failure.
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def refused(trace: Path, *needles: str, command: str = "simulate") -> str:
    """Run `command` on `trace`; it must exit 2 with one error naming the file and each
    of `needles`, and no traceback."""
    args = ["--compare", "none"] if command == "simulate" else ["--keepalive", "--workers", "1"]
    result = CliRunner().invoke(cli, [command, LLM, "--trace", str(trace), *args])
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and not isinstance(result.exception, ValueError | TypeError)
    assert out.startswith("error: ") and str(trace) in out, out
    for needle in needles:
        assert needle in out, out
    return out


def write(tmp_path: Path, data: bytes, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_utf8_csv_with_a_byte_order_mark_just_works(tmp_path):
    trace = write(tmp_path, b"\xef\xbb\xbf" + HEADER + b"0,1\n10,1\n20,2\n")
    code, out = simulate("--trace", str(trace), "-o", "json")
    assert code == 0, out
    data = json.loads(out)
    assert data["trace"] == "trace" and data["results"][0]["requests"] == 3


def test_an_azure_trace_with_a_byte_order_mark_is_still_recognised(tmp_path):
    trace = write(tmp_path, b"\xef\xbb\xbfTIMESTAMP,ContextTokens,GeneratedTokens\n"
                  b"2023-11-16 18:17:03.9799600,100,10\n2023-11-16 18:17:05.0,200,20\n")
    code, out = simulate("--trace", str(trace), "-o", "json")
    assert code == 0, out
    assert json.loads(out)["results"][0]["requests"] == 2


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ("timestamp,service_seconds\n0,1\n".encode("utf-16"),
         ("not a UTF-8 CSV text file but UTF-16", "save it as UTF-8")),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),
         ("line 1: not a UTF-8 CSV text file", "NUL byte", "binary")),
        (HEADER + b"0,1\n5,1\n7,caf\xe9\n",
         ("line 4: not a UTF-8 CSV text file", "0xe9", "save it as UTF-8")),
        (b"\x1f\x8b\x08\x00" + bytes(20), ("gzip", "decompress")),
        (b"PK\x03\x04" + bytes(20), ("zip archive", "CSV UTF-8")),
        (HEADER + b"0,1\n" + b"9" * (1 << 21) + b"\n", ("line 3: longer than",)),
    ],
    ids=["utf-16", "binary", "latin-1-line", "gzip", "zip", "huge-line"],
)
def test_files_that_are_no_utf8_text_are_refused_with_what_to_do(tmp_path, data, needles):
    refused(write(tmp_path, data), *needles)


def test_a_folder_or_a_device_is_no_trace(tmp_path):
    refused(tmp_path, "is a folder")
    if Path("/dev/zero").exists():  # read on, it would never end
        result = CliRunner().invoke(cli, ["simulate", LLM, "--trace", "/dev/zero"])
        assert result.exit_code == 2 and "not a regular file" in result.output


def test_an_unknown_column_is_refused_naming_it_and_the_accepted_ones(tmp_path):
    out = refused(write(tmp_path, b"timestamp,service_seconds,servce_seconds\n0,1,2\n"),
                  "line 1: unknown column(s) 'servce_seconds'")
    for column in ("timestamp", "input_tokens", "output_tokens", "service_seconds", "num_gpu",
                   "pool"):
        assert column in out.split("has only", 1)[1]


def test_the_public_formats_may_carry_columns_the_simulator_does_not_use(tmp_path):
    trace = write(tmp_path, b"TIMESTAMP,ContextTokens,GeneratedTokens,Region\n"
                  b"2023-11-16 18:17:03.0,100,10,eu\n2023-11-16 18:17:04.0,100,10,us\n")
    code, out = simulate("--trace", str(trace), "--trace-format", "azure-llm")
    assert code == 0, out


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (b"timestamp,service_seconds,\n0,1,\n", ("unknown column(s) '' (a trailing comma?)",)),
        (b"timestamp,service_seconds,timestamp\n0,1,2\n", ("'timestamp' appear more than once",)),
        (HEADER + b"0,1,3\n", ("line 2: 3 field(s), but the header has 2",)),
        (HEADER + b"0\n", ("line 2: 1 field(s), but the header has 2",)),
        (b"timestamp,service_seconds,input_tokens\n0,1,3\n", ("either `service_seconds` or",)),
        (b"timestamp,service_seconds,pool\n0,1,other\n", ("no usable rows for pool 'llm-chat'",
                                                          "'other'")),
    ],
    ids=["trailing-comma", "duplicate", "too-many-fields", "too-few-fields", "both-kinds",
         "other-pool"],
)
def test_a_malformed_header_or_row_is_refused_naming_the_line(tmp_path, data, needles):
    refused(write(tmp_path, data), *needles)


def test_a_1000_day_trace_is_refused_at_once_not_simulated(tmp_path):
    # Two rows 1,000 days apart used to run for many minutes without a word; it must be
    # refused as the file is read (a refusal, not a timing, is what is asserted).
    trace = write(tmp_path, HEADER + b"0,1\n86400000,1\n")
    refused(trace, "line 3", "1,000.0 days after the first (line 2)", "up to 90 days",
            "cut the file")
    refused(trace, "line 3", "up to 90 days", command="sweep")


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        (b"0,1\n1e9,1\n", ("line 3", "days after the first", "up to 90 days")),
        (b"0,1\n1e18,1\n", ("line 3: timestamp '1e18' is over", "year 9999")),
        (b"2024-01-01T00:00:00Z,1\n2025-01-01T00:00:00Z,1\n", ("line 3", "366.0 days")),
        (b"0,1\ninf,1\n", ("line 3: timestamp must be a number >= 0, got 'inf'",)),
        (b"-5,1\n", ("line 2: timestamp must be a number >= 0, got '-5'",)),
        (b"0,nan\n", ("line 2: service_seconds must be a number >= 0, got 'nan'",)),
        (b"0,-1\n", ("line 2: service_seconds must be a number >= 0",)),
        (b"0,1e9\n", ("line 2: service_seconds '1e9' is over 7,776,000", "90 days")),
    ],
    ids=["1e9-span", "1e18", "iso-span", "inf", "negative", "nan-service", "negative-service",
         "absurd-service"],
)
def test_absurd_times_and_values_are_refused_naming_the_line(tmp_path, rows, needles):
    refused(write(tmp_path, HEADER + rows), *needles)


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (b"timestamp,input_tokens,output_tokens\n0,1e12,5\n",
         ("line 2: input_tokens '1e12' is over 10,000,000",)),
        (b"timestamp,input_tokens,output_tokens\n0,10,2.5\n",
         ("line 2: output_tokens must be a whole number",)),
        (b"timestamp,service_seconds,num_gpu\n0,1,1e30\n",
         ("line 2: num_gpu '1e30' is over 1,000,000",)),
    ],
    ids=["tokens", "fractional-tokens", "gpus"],
)
def test_absurd_work_is_refused_naming_the_line(tmp_path, data, needles):
    refused(write(tmp_path, data), *needles)


def test_the_public_formats_get_the_same_bounds(tmp_path):
    azure = write(tmp_path, b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  b"2023-01-01 00:00:00.0,10,1\n2024-01-01 00:00:00.0,10,1\n", "azure.csv")
    refused(azure, "line 3", "365.0 days after the first")
    alibaba = write(tmp_path, b"name,num_gpu,creation_time,deletion_time\n"
                    b"a,1,9964972,99964972\n", "pods.csv")
    refused(alibaba, "line 2: the task runs 1,041.7 days", "check deletion_time")
    early = write(tmp_path, b"name,num_gpu,creation_time,deletion_time\na,1,5,10\n", "old.csv")
    refused(early, "no usable rows", "window start")


def test_tokens_that_hold_a_slot_past_the_bound_at_the_pools_rates_are_refused(tmp_path):
    config = (ROOT / "examples" / "simulated.yaml").read_text()
    slow = tmp_path / "slow.yaml"
    slow.write_text(config.replace("decode_tokens_per_s: 20", "decode_tokens_per_s: 0.1"))
    trace = write(tmp_path, b"timestamp,input_tokens,output_tokens\n0,10,1\n5,10,9000000\n")
    result = CliRunner().invoke(cli, ["simulate", str(slow), "--trace", str(trace)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{trace}: line 3:" in result.output and "1,041.7 days" in result.output
    assert "decode_tokens_per_s 0.1" in result.output


def test_a_pools_configured_trace_is_checked_alike(tmp_path):
    write(tmp_path, HEADER + b"0,1\n86400000,1\n", "long.csv")
    config = (ROOT / "examples" / "simulated.yaml").read_text()
    own = tmp_path / "own.yaml"
    own.write_text(config.replace('{path: "bundled:azure-llm-code-sample", format: azure-llm}',
                                  '{path: "long.csv", format: csv}'))
    result = CliRunner().invoke(cli, ["simulate", str(own)])
    assert result.exit_code == 2, result.output
    assert "long.csv: line 3" in result.output and "Traceback" not in result.output


def test_the_installed_command_refuses_a_binary_trace_without_a_traceback(tmp_path):
    trace = write(tmp_path, "timestamp,service_seconds\n0,1\n".encode("utf-16-le"))
    run = subprocess.run(
        [sys.executable, "-m", "autoscaler", "simulate", LLM, "--trace", str(trace),
         "--compare", "none"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "NUL byte" in run.stderr
    assert run.stderr.count("\n") == 1  # one line
