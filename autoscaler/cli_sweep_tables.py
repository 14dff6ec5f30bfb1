"""The tables `autoscaler sweep` prints: the cost-vs-SLO front, one row per distinct point
labelled by family (`ours (composite)`, hpa, keda, kpa, keepalive) and its settings, and
the cheapest setting per family that meets the SLO. Printed through cli_output.py, so
numbers are never cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from .sim.front import distinct, settings_text


def result_tables(
    summary: dict[str, Any],
    results: Sequence[dict[str, Any]],
    front: Sequence[dict[str, Any]],
    ours: str,
    show_all: bool,
) -> list[Any]:
    """The front (with `show_all`, every distinct point, the front's marked), the best per
    family when the summary has one, and how many dominated points were left out."""
    shown = distinct(results if show_all else front)
    title = "cost-vs-SLO Pareto front" + (" and the points it beats" if show_all else "")
    built: list[Any] = [points_table(title, shown, ours, front=front if show_all else None)]
    if "best" in summary:
        built.append(
            points_table(
                f"cheapest per family meeting {summary['slo_target']:.0%} within the wait SLO",
                list(summary["best"].values()),
                ours,
                mark=True,
            )
        )
    hidden = len(distinct(results)) - len(shown)
    if hidden:
        built.append(f"{hidden} dominated point(s) not shown (--all lists them)")
    return built


def _family(name: str, ours: str) -> str:
    return f"ours ({name})" if name == ours else name


def _settings(row: dict[str, Any]) -> str:
    alike = len(row.get("alike", ()))
    return settings_text(row.get("knobs") or {}) + (f" (+{alike} alike)" if alike else "")


def points_table(
    title: str,
    rows: Sequence[dict[str, Any]],
    ours: str,
    mark: bool = False,
    front: Sequence[dict[str, Any]] | None = None,
) -> Table:
    table = Table(title=title)
    table.add_column("family", no_wrap=True)
    table.add_column("settings", overflow="fold")
    for column in ("GPU-h", "cost", "p99 wait", "SLO met"):
        table.add_column(column, justify="right", no_wrap=True)
    if mark:
        table.add_column("meets SLO", justify="center")
    if front is not None:
        table.add_column("on front", justify="center")
        on_front = {r["variant"] for r in front}
    for r in rows:
        families = r.get("families") or [r["family"]]
        cells = [
            " / ".join(_family(f, ours) for f in families),
            _settings(r),
            f"{r['gpu_hours']:.2f}",
            f"{r['cost']:.2f}",
            f"{r['wait_p99_s']:.2f}s",
            f"{r['slo_attainment']:.2%}",
        ]
        if mark:
            cells.append("yes" if r["meets_slo"] else "NO")
        if front is not None:
            cells.append("yes" if r["variant"] in on_front else "")
        table.add_row(*cells)
    return table
