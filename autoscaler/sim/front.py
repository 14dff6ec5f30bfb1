"""Summaries of a sweep's results: the cost-vs-SLO Pareto front, one row per distinct
point, and the cheapest setting per family that meets the SLO. Pure functions over the
result dicts `sweep.run_variant` returns (grid and search alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def pareto(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Variants no other beats on both cost and SLO attainment, cheapest first."""
    front = []
    for r in results:
        dominated = any(
            o["cost"] <= r["cost"]
            and o["slo_attainment"] >= r["slo_attainment"]
            and (o["cost"] < r["cost"] or o["slo_attainment"] > r["slo_attainment"])
            for o in results
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r["cost"])


def best_per_family(
    results: Sequence[dict[str, Any]], slo_target: float
) -> dict[str, dict[str, Any]]:
    """Per family, the cheapest variant meeting the SLO target (or, if none does, the one
    closest to it, marked `meets_slo: False`)."""
    best: dict[str, dict[str, Any]] = {}
    for family in dict.fromkeys(r["family"] for r in results):
        mine = [r for r in results if r["family"] == family]
        meeting = [r for r in mine if r["slo_attainment"] >= slo_target]
        if meeting:
            pick = min(meeting, key=lambda r: r["cost"])
            best[family] = {**pick, "meets_slo": True}
        else:
            pick = max(mine, key=lambda r: (r["slo_attainment"], -r["cost"]))
            best[family] = {**pick, "meets_slo": False}
    return best


def distinct(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distinct point (same GPU-hours, cost, p99 wait and SLO attainment),
    cheapest first: the first variant's, with `alike` (the other variants that landed on
    it) and `families` (every family that did)."""
    points: dict[tuple[float, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(
            round(float(r[k]), 9) for k in ("gpu_hours", "cost", "wait_p99_s", "slo_attainment")
        )
        if key in points:
            points[key]["alike"].append(r["variant"])
            if r["family"] not in points[key]["families"]:
                points[key]["families"].append(r["family"])
        else:
            points[key] = {**r, "alike": [], "families": [r["family"]]}
    return sorted(points.values(), key=lambda p: (p["cost"], -p["slo_attainment"]))


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path's last part (`max_utilization`), or more of it where two would clash."""
    names = {}
    for path in paths:
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if not any(o.endswith("." + name) or o == name for o in paths if o != path):
                break
        names[path] = name
    return names


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def settings_text(knobs: dict[str, Any]) -> str:
    """A variant's settings as a row label: `max_utilization=0.8, min=2` (short names,
    four significant digits), or `as configured` for none."""
    names = short_names(list(knobs))
    return ", ".join(f"{names[k]}={_show(v)}" for k, v in knobs.items()) or "as configured"
