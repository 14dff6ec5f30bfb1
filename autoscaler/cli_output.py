"""The command line's one output convention, as kubectl's: `-o/--output table|json|yaml`.

- A command that prints a result takes `@output_option()`; `emit(data, fmt, table)` prints
  the result in that format on **standard output, and nothing else goes there**: progress,
  logs, warnings, notes and "wrote FILE" go to standard error (`note()`, `err_console`), so
  `autoscaler simulate x.yaml -o json | jq` and `> result.json` always hold just the
  document.
- `print_table(table)` prints a rich Table so that **numbers are never cut**: every
  column is printed whole (no ellipsis, no folding) unless its caller opted in to folding
  long text (`Column(overflow="fold")`, e.g. a variant label). On a narrow terminal the
  rightmost columns are dropped, and a note on standard error names them, rather than
  cutting values. When standard output is not a terminal (piped, redirected, captured)
  the full table is printed with no width limit.
- Writing results to a file: redirect standard output, or where a file is genuinely useful
  besides the table (a simulation's results) the command's `--out FILE`.
- Old spellings stay one release, each printing a one-line deprecation warning on standard
  error (`deprecated`): the `--json` flag (`json_flag_alias` with `chosen_format`), `-o
  FILE` where `-o` once named a file (`legacy_output_option`), `simulate --json FILE|-`.

Use from a command:

    @click.command()
    @output_option()
    def cmd(output: str) -> None:
        data = {...}
        emit(data, output, lambda: my_table(data))   # table: built only when asked for
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from .cli_options import fail, output_file

FORMATS = ("table", "json", "yaml")
"""The result formats every command offers; `table` is for people, the others for tools."""

UNLIMITED_WIDTH = 100_000
"""The width a table may take when standard output is not a terminal: in effect none."""

err_console = Console(stderr=True)
"""Progress, notes and warnings: standard error, never mixed into a result."""


def output_option(
    default: str = "table", formats: tuple[str, ...] = FORMATS, what: str = "the result"
) -> Callable[[Any], Any]:
    """The `-o/--output FORMAT` option (value passed as `output`)."""
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(formats),
        default=default,
        show_default=True,
        help=f"print {what} as {', '.join(formats[:-1])} or {formats[-1]} on standard output "
        "(logs and notes go to standard error)",
    )


def note(message: str) -> None:
    """A line for the person at the terminal (progress, 'wrote FILE', a warning): stderr."""
    click.echo(message, err=True)


def dumps(data: object, fmt: str) -> str:
    """`data` as JSON (indented) or YAML (block style, keys in their order), ending in a
    newline."""
    if fmt == "yaml":
        import yaml

        # Through JSON first: tuples, numpy scalars and dataclass-ish values become plain.
        plain = json.loads(json.dumps(data, default=str))
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
    return json.dumps(data, indent=2, default=str) + "\n"


def emit(
    data: object,
    fmt: str,
    table: Callable[[], RenderableType | list[RenderableType]] | None = None,
) -> None:
    """Print a command's result on standard output: `data` as JSON or YAML, or with `table`
    the renderables it builds (rich Tables printed with `print_table`, text as it is).
    Without a `table`, `table` format prints YAML, as the most readable of the two."""
    if fmt in ("json", "yaml") or table is None:
        click.echo(dumps(data, "yaml" if fmt == "table" else fmt), nl=False)
        return
    built = table()
    for item in built if isinstance(built, list) else [built]:
        if isinstance(item, Table):
            print_table(item)
        else:
            stdout_console().print(item)


def stdout_console() -> Console:
    """A console on standard output: the terminal's width on a terminal, else no limit (a
    piped table is never wrapped to 80 columns)."""
    console = Console()
    if not console.is_terminal:
        return Console(width=UNLIMITED_WIDTH, color_system=None)
    return console


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return ""


FOLDED_WIDTH = 12
"""The narrowest a column that folds by choice is made (its long words broken there)."""


def _folds(column: Column) -> bool:
    """Whether the table's author let the column fold long text (a variant label)."""
    return column.overflow == "fold" and not column.no_wrap


def _widths(column: Column) -> tuple[int, int]:
    """(least, natural): the narrowest the column may be without cutting a value (a whole
    cell; the header may wrap between words, never inside one) and its width with every
    cell and the header on one line."""
    cells = [_plain(c) for c in column._cells]
    lines = [line for cell in cells for line in cell.split("\n")]
    header = _plain(column.header)
    widest = max((cell_len(line) for line in lines), default=0)
    natural = max(widest, *(cell_len(line) for line in header.split("\n")), 1)
    least = max((cell_len(word) for word in header.split()), default=1)
    if _folds(column):
        longest_word = max((cell_len(w) for line in lines for w in line.split()), default=0)
        least = max(least, min(longest_word, FOLDED_WIDTH))
    else:
        least = max(least, widest)
    least = max(least, column.min_width or 0)
    return least, max(natural, least)


def _overhead(table: Table) -> int:
    """The columns' padding and the borders: what the table takes beyond its cells."""
    probe = copy.copy(table)
    probe.columns = [copy.copy(c) for c in table.columns]
    for column in probe.columns:
        column.width, column.min_width, column.max_width = 1, None, None
    console = Console(width=UNLIMITED_WIDTH)
    measured = Measurement.get(console, console.options, probe).maximum
    return measured - len(probe.columns)


def fit(table: Table, width: int) -> tuple[Table, list[str]]:
    """A copy of `table` whose every column has a fixed width that shows each value whole,
    fitting `width` if it can, and the headers of the columns left out to make it fit
    (rightmost first; the first column, the row label, always stays). Columns get their
    natural width, left to right, as far as the space allows, else their least."""
    table = copy.copy(table)
    table.columns = [copy.copy(c) for c in table.columns]
    needs = [_widths(c) for c in table.columns]
    dropped: list[str] = []
    while len(table.columns) > 1 and (sum(least for least, _ in needs) + _overhead(table) > width):
        dropped.insert(0, _plain(table.columns.pop().header))
        needs.pop()
    spare = width - sum(least for least, _ in needs) - _overhead(table)
    for column, (least, natural) in zip(table.columns, needs, strict=True):
        grow = max(0, min(spare, natural - least))
        spare -= grow
        column.width, column.min_width, column.max_width = least + grow, None, None
        if not _folds(column):
            column.no_wrap = True
        # A header may wrap between words ("p99 / wait"), never inside one.
        if isinstance(column.header, str):
            column.header = Text.from_markup(column.header)
        if isinstance(column.header, Text):
            column.header.no_wrap, column.header.overflow = False, "fold"
    return table, dropped


def print_table(table: Table, console: Console | None = None) -> None:
    """Print `table` without cutting a value (see the module docstring): on `console`
    (default: standard output), dropping columns that do not fit its width, named in a
    note on standard error."""
    console = console or stdout_console()
    fitted, dropped = fit(table, console.width)
    console.print(fitted)
    if dropped:
        note(
            f"left out at {console.width} columns: {', '.join(dropped)} "
            "(widen the terminal, pipe the output, or use -o json)"
        )


def deprecated(old: str, new: str) -> None:
    """The one-line deprecation warning on standard error."""
    note(f"warning: {old} is deprecated and will be removed in the next release; use {new}")


_LEGACY_JSON = "autoscaler.legacy_json"


def json_flag_alias() -> Callable[[Any], Any]:
    """The old on/off `--json` flag, hidden: it warns and makes `chosen_format` say json."""

    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            deprecated("--json", "-o json")
            ctx.meta[_LEGACY_JSON] = True

    return click.option("--json", is_flag=True, hidden=True, expose_value=False, callback=remember)


def chosen_format(output: str) -> str:
    """The format asked for: `-o`'s, or json after the deprecated `--json` flag."""
    ctx = click.get_current_context(silent=True)
    return "json" if ctx is not None and ctx.meta.get(_LEGACY_JSON) else output


def format_or_legacy_file(
    formats: tuple[str, ...],
) -> Callable[[click.Context, click.Parameter, str | None], tuple[str, str | None]]:
    """A callback for an `-o` that once took a file (schema, crd, iam-policy): a format
    name is the format; anything else is the old `-o FILE` (warned, checked writable) and
    gives (the first format, FILE); '-' was standard output."""

    def check(
        ctx: click.Context, param: click.Parameter, value: str | None
    ) -> tuple[str, str | None]:
        if value is None:
            return formats[0], None
        if value in formats:
            return value, None
        if value == "-":
            deprecated("-o -", "-o FORMAT (standard output is the default)")
            return formats[0], None
        if "." not in value and "/" not in value:  # a format misspelt, not a file name
            raise click.BadParameter(
                f"{value!r} is not a format: give {' or '.join(formats)} (a file: --out FILE)"
            )
        deprecated(f"-o FILE ({value!r} is not one of {', '.join(formats)})", "--out FILE")
        return formats[0], output_file(ctx, param, value)

    return check


def legacy_output_option(formats: tuple[str, ...], what: str) -> Callable[[Any], Any]:
    """`-o/--output FORMAT` for a command whose `-o` once named a file (see
    `format_or_legacy_file`); the value passed as `output` is (format, legacy file)."""
    return click.option(
        "-o",
        "--output",
        "output",
        metavar="[" + "|".join(formats) + "]",
        callback=format_or_legacy_file(formats),
        shell_complete=lambda ctx, param, incomplete: [
            f for f in formats if f.startswith(incomplete)
        ],
        help=f"print {what} as {' or '.join(formats)} (default: {formats[0]}) on standard output",
    )


def out_option(what: str, instead: bool = False) -> Callable[[Any], Any]:
    """`--out FILE`: also write the result to FILE (YAML if it ends in .yaml or .yml, else
    JSON), checked writable before any work starts."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value == "-":
            raise click.BadParameter("'-' is standard output: give -o json or -o yaml")
        return output_file(ctx, param, value)

    return click.option(
        "--out",
        "out_file",
        metavar="FILE",
        callback=check,
        help=("write" if instead else "also write")
        + f" {what} to FILE"
        + (" instead of standard output" if instead else "")
        + " (YAML if FILE ends in .yaml or .yml, else JSON)",
    )


def format_of(path: str) -> str:
    """The format a file's name asks for: yaml for .yaml and .yml, else json."""
    return "yaml" if path.endswith((".yaml", ".yml")) else "json"


def write_result(path: str, data: object) -> None:
    """`data` into `path` in the format its name says; a file that cannot be written is one
    line on standard error and exit 2; 'wrote PATH' on standard error."""
    try:
        Path(path).write_text(dumps(data, format_of(path)), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    note(f"wrote {path}")
