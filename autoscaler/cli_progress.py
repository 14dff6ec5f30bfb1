"""Progress with an ETA on standard error for long lab commands, whatever runs the work.

On a terminal a rich bar (done/total and time left); otherwise, as in CI logs and under
`2>file`, one line at every tenth of the work, so logs stay short and readable. Results
never go through it: standard output holds only the result (cli_output.py).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .cli_output import err_console, note


class Progress:
    """Progress with an ETA on standard error, whatever the executor: a bar on a
    terminal, else a line at every tenth of the work (logs stay readable)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None
        self.next_line = 0.1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, total: int, what: str) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            columns = (
                *Progress.get_default_columns()[:1],
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self.bar = Progress(*columns, console=err_console)
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)
        else:
            note(f"{what}: {total} to simulate")

    def advance(self, _result: object = None) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
            return
        share = self.done / self.total if self.total else 1.0
        if share + 1e-9 >= self.next_line or self.done == self.total:
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * (self.total - self.done)
            note(
                f"{self.done}/{self.total} ({share:.0%}) in {elapsed:.0f}s, "
                f"about {math.ceil(eta)}s left"
            )
            while self.next_line <= share + 1e-9:
                self.next_line += 0.1
