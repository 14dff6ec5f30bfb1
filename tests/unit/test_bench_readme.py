"""The README's performance tables are the benchmarks' last JSON results, not hand-typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_readme", ROOT / "bench" / "readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_match_bench_results() -> None:
    bench = _readme_module()
    text = (ROOT / "README.md").read_text()
    assert bench.updated(text, bench.render()) == text, "run: python bench/readme.py"


def test_generic_result_with_rows_is_rendered(tmp_path: Path) -> None:
    bench = _readme_module()
    (tmp_path / "reaction.json").write_text(json.dumps(
        {"title": "Reaction", "command": "python bench/reaction.py",
         "rows": [{"tick_s": 1, "p50_s": 0.8}]}))  # fmt: skip
    out = bench.render(tmp_path)
    assert "**Reaction** (`python bench/reaction.py`)" in out
    assert "| tick_s | p50_s |" in out and "| 1 | 0.8 |" in out


def test_missing_markers_is_a_clear_error() -> None:
    bench = _readme_module()
    with pytest.raises(SystemExit, match="markers"):
        bench.updated("# no markers here\n", "table")
