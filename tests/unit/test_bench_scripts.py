"""Every benchmark script still starts: `--help` imports it and parses its options, so a
rename elsewhere (a module, a class) cannot leave a script broken until someone runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if "__main__" in p.read_text())
"""The runnable ones (bench/machine.py is a module the others import)."""


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 7, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_imports_and_answers_help(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
