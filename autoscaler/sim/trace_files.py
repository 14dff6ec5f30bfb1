"""Reading a trace file as CSV rows, refusing what cannot be a trace.

A trace file must be a regular file (not a folder, device or pipe) of UTF-8 text (a
leading byte-order mark, as spreadsheets write, is fine), with a header naming each column
once and rows of one value per column, no line over MAX_LINE_CHARS. UTF-16, gzip, zip and
other binary files are recognised from their first bytes and refused, saying what to do;
a line that is not UTF-8 is named. Every refusal is a TraceError naming the file and, where
there is one, the line. autoscaler/sim/traces.py turns the rows into a Trace.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

FORMATS = ("azure-llm", "alibaba-gpu", "csv")
MAX_LINE_CHARS = 1 << 20
_SNIFF_BYTES = 1 << 16
_SAVE_AS_UTF8 = "save it as UTF-8 text (in a spreadsheet: CSV UTF-8)"


class TraceError(ValueError):
    """A trace that cannot be used; the message names the file and line."""


def not_a_file(file: Path) -> str | None:
    """Why `file` cannot be a trace (missing, a folder, a device or pipe), or None."""
    try:
        mode = os.stat(file).st_mode
    except (OSError, ValueError) as exc:
        return f"cannot read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(mode):
        return "is a folder; give a trace file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, pipe or socket); give a trace file"
    return None


def _sniff(file: Path, head: bytes) -> None:
    """Refuse what is plainly not UTF-8 CSV text, from the file's first bytes."""
    formats = f"give a UTF-8 CSV trace in one of: {', '.join(FORMATS)}"
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        raise TraceError(f"{file}: not a UTF-8 CSV text file but UTF-16 or UTF-32; {_SAVE_AS_UTF8}")
    if head.startswith(b"\x1f\x8b"):
        raise TraceError(f"{file}: is gzip-compressed; decompress it first (gunzip)")
    if head.startswith(b"PK\x03\x04"):
        raise TraceError(
            f"{file}: is a zip archive (a spreadsheet workbook?); unpack it, or export the "
            "sheet as CSV UTF-8"
        )
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise TraceError(
            f"{file}: line {line}: not a UTF-8 CSV text file (a NUL byte: binary, or UTF-16 "
            f"without a byte-order mark); {formats}"
        )


class _Lines:
    """The lines of a text file, each at most MAX_LINE_CHARS (a longer one is no trace
    row); `count`: how many were read so far, for messages."""

    def __init__(self, file: Path, text: io.TextIOBase) -> None:
        self.file, self.text, self.count = file, text, 0

    def __iter__(self) -> Iterator[str]:
        while line := self.text.readline(MAX_LINE_CHARS + 1):
            self.count += 1
            if len(line) > MAX_LINE_CHARS:
                raise _too_long(self.file, self.count)
            yield line


def _too_long(file: Path, line: int) -> TraceError:
    return TraceError(
        f"{file}: line {line}: longer than {MAX_LINE_CHARS:,} characters, so not a trace "
        f"row; give a CSV trace in one of: {', '.join(FORMATS)}"
    )


def _not_utf8(file: Path) -> TraceError:
    """The first line of `file` that is not UTF-8 (read again, line by line, to name it)."""
    limit = 4 * MAX_LINE_CHARS + 1  # bytes: UTF-8 takes up to 4 a character
    with file.open("rb") as handle:
        count = 0
        while raw := handle.readline(limit):
            count += 1
            if len(raw) == limit and not raw.endswith(b"\n"):
                return _too_long(file, count)
            try:
                raw.decode("utf-8-sig" if count == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                return TraceError(
                    f"{file}: line {count}: not a UTF-8 CSV text file (byte "
                    f"0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); {_SAVE_AS_UTF8}"
                )
    return TraceError(f"{file}: not a UTF-8 CSV text file; {_SAVE_AS_UTF8}")


def names(columns: list[str], most: int = 12) -> str:
    """Column names for a message: quoted, cut to 40 characters, at most `most` of them."""
    shown = [repr(c[:40]) if c else "'' (a trailing comma?)" for c in columns[:most]]
    return ", ".join(shown) + (f" and {len(columns) - most} more" if len(columns) > most else "")


def rows(
    file: Path, required: tuple[str, ...], allowed: tuple[str, ...] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file with a header that has the `required` columns, and no
    column outside `allowed` (when given)."""
    problem = not_a_file(file)
    if problem is not None:
        raise TraceError(f"{file}: {problem}")
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise TraceError(f"{file}: cannot read ({exc.strerror})") from None
    with handle:
        _sniff(file, handle.read(_SNIFF_BYTES))
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        lines = _Lines(file, text)
        reader = csv.DictReader(lines)
        try:
            header = reader.fieldnames
            if not header:
                raise TraceError(
                    f"{file}: empty file, or a blank first line (expected a header line)"
                )
            _check_header(file, list(header), required, allowed)
            for row in reader:
                if None in row or None in row.values():  # a field too many, or too few
                    short = list(row.values()).count(None)
                    fields = len(header) + len(row.get(None) or ()) - short
                    raise TraceError(
                        f"{file}: line {reader.line_num}: {fields} field(s), but the header "
                        f"has {len(header)}; give every row one value per column (quote a "
                        "value that contains a comma)"
                    )
                yield reader.line_num, row
        except UnicodeDecodeError:
            raise _not_utf8(file) from None
        except csv.Error as exc:
            raise TraceError(
                f"{file}: line {lines.count}: not a CSV row ({exc}); give a CSV trace in "
                f"one of: {', '.join(FORMATS)}"
            ) from None


def _shown(column: str) -> str:
    """A column name as written, or quoted where it holds a line break or control character
    (a message stays one line)."""
    return column if column.isprintable() else repr(column)


def _check_header(
    file: Path, header: list[str], required: tuple[str, ...], allowed: tuple[str, ...] | None
) -> None:
    twice = [c for c, n in Counter(header).items() if n > 1]
    if twice:
        raise TraceError(
            f"{file}: line 1: column(s) {names(twice)} appear more than once; name each column once"
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise TraceError(
            f"{file}: line 1: missing column(s) {', '.join(missing)} "
            f"(header: {', '.join(_shown(c[:40]) for c in header[:12])}"
            f"{', ...' if len(header) > 12 else ''})"
        )
    unknown = [c for c in header if allowed is not None and c not in allowed]
    if unknown:
        raise TraceError(
            f"{file}: line 1: unknown column(s) {names(unknown)}; a csv trace has only "
            f"{', '.join(allowed or ())}: rename or remove it (a misspelt column would "
            "otherwise be ignored)"
        )


def number(
    file: Path,
    line: int,
    column: str,
    text: str | None,
    integer: bool = False,
    most: float = math.inf,
    why: str = "",
) -> float:
    """A finite number >= 0 (whole where `integer`), at most `most` (`why` says why)."""
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (integer and value != int(value)):
        kind = "a whole number >= 0" if integer else "a number >= 0"
        raise TraceError(f"{file}: line {line}: {column} must be {kind}, got {text!r}")
    if value > most:
        raise TraceError(
            f"{file}: line {line}: {column} {text!r} is over {most:,.0f}, {why}; "
            "check the value and its unit"
        )
    return value
