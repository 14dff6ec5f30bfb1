"""The report's plots: matplotlib figures drawn as SVG (inlined in the page) and PNG.

Arrivals over time, then one small panel per policy (sharing both axes, so shapes compare
at a glance where one plot of overlapping lines would be unreadable) for replicas ready
and requested, queue length and GPU utilization. A policy gets a panel only where it has
a series, and a note says why it has none; a legend names only what its panel draws. Each
drawn element carries an SVG id (`panel-<figure>-<policy>`, `line-<figure>-<policy>-<key>`
and `legend-<figure>-<policy>-<key>` for the same key) so that a browser test can check
what is drawn. Cold starts are marked ▲ at the foot of the replicas panel; the longest
wait is a red line with its value on the queue panel. It draws what the runs hold and
computes nothing else.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .report_units import TimeUnit, bin_width, binned, duration

PANEL_HEIGHT = 1.5  # inches per small multiple
WIDTH = 10.0


@dataclass
class Series:
    """What one policy's run gives the plots."""

    policy: str
    timeline: dict[str, list[Any]]
    cold_start_times: list[float] = field(default_factory=list)
    worst_wait_at: float | None = None
    wait_max_s: float = 0.0


@dataclass
class Plot:
    name: str
    """File stem: `<name>.svg` and `<name>.png`."""
    svg: str
    caption: str
    notes: list[str] = field(default_factory=list)
    """Why a policy has no panel here, one line each."""


def element_id(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts)


def arrivals_plot(t: list[float], cumulative: list[int], unit: TimeUnit, out: Path) -> Plot:
    """Requests (or jobs) arriving per bin, from the timeline's running count."""
    x = np.asarray(t, dtype=float)
    total = np.asarray(cumulative, dtype=float)
    width = _nice_width(float(x[-1] - x[0]) if len(x) else 0.0)
    index = (x // width).astype(np.int64)
    per_bin = np.bincount(index, weights=np.diff(np.concatenate([[0.0], total])))
    fig, axes = _figure(1)
    ax = axes[0]
    ax.bar(np.arange(len(per_bin)) * width / unit.seconds, per_bin, width=width / unit.seconds,
           align="edge", color="#888")  # fmt: skip
    ax.set_xlabel(f"time ({unit.name})")
    per = BAR_NAMES.get(width, duration(width))
    ax.set_ylabel(f"per {per}")
    ax.set_gid("panel-arrivals")
    caption = f"Arrivals per {per} ({int(total[-1]) if len(total) else 0:,} in all)."
    return _save(fig, "arrivals", out, caption, [])


def replicas_plot(series: list[Series], unit: TimeUnit, out: Path) -> Plot:
    drawn = [s for s in series if _has(s.timeline, "ready")]
    fig, axes = _figure(len(drawn))
    width = _width(drawn)
    for ax, s in zip(axes[: len(drawn)], drawn, strict=True):
        _line(ax, s, "ready", "ready", unit, width, "max", color="C0", linewidth=1.2)
        _line(ax, s, "desired", "requested", unit, width, "max", color="C1", linewidth=1,
              linestyle=":")  # fmt: skip
        if s.cold_start_times:
            x = np.asarray(s.cold_start_times) / unit.seconds
            ax.plot(x, np.zeros_like(x), linestyle="", marker="^", markersize=7, color="C3",
                    clip_on=False, zorder=3, label=f"cold start ({len(x)})",
                    gid=element_id("line", "ready", s.policy, "cold-start"))  # fmt: skip
        _finish(ax, "ready", s.policy, "replicas")
    axes[-1].set_xlabel(f"time ({unit.name})")
    caption = (
        "Replicas ready (solid) and requested (dotted; billed from the request), one panel per "
        "policy, sharing both axes; ▲ a cold start began (a replica requested while the pool "
        "had none). The oracle's are the schedule it bills: each replica requested one "
        "startup ahead of the work that needs it, and, as a bound, not held to the pool's max."
        f"{_binned_note(width)}"
    )
    notes = [f"{s.policy}: no replica timeline" for s in series if s not in drawn]
    return _save(fig, "ready", out, caption, notes)


def queue_plot(series: list[Series], unit: TimeUnit, out: Path, what: str) -> Plot:
    drawn = [s for s in series if _has(s.timeline, "queue")]
    fig, axes = _figure(len(drawn))
    width = _width(drawn)
    for ax, s in zip(axes[: len(drawn)], drawn, strict=True):
        _line(ax, s, "queue", "waiting", unit, width, "max", color="C0", linewidth=1)
        if s.worst_wait_at is not None and s.wait_max_s > 0:
            x = s.worst_wait_at / unit.seconds
            text = f"max wait {duration(s.wait_max_s)}"
            ax.axvline(x, color="C3", linewidth=1.2, linestyle="--", label=text,
                       gid=element_id("line", "queue", s.policy, "worst-wait"))  # fmt: skip
            # Written on the side of the line with room for it: left of a late one.
            late = s.worst_wait_at > 0.7 * float(s.timeline["t"][-1])
            ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-4 if late else 4, -12), textcoords="offset points",
                        ha="right" if late else "left", color="C3", fontweight="bold",
                        gid=element_id("worst-wait", s.policy))  # fmt: skip
        _finish(ax, "queue", s.policy, what)
    axes[-1].set_xlabel(f"time ({unit.name})")
    caption = (
        f"{what.capitalize()} (queued, or held by an activator), one panel per policy; the "
        "dashed red line marks when the request that waited longest arrived, with its wait."
        f"{_binned_note(width)}"
    )
    notes = [
        f"{s.policy}: no queue (a bound, not a replay: it provisions ahead of every arrival)"
        if s.policy == "oracle"
        else f"{s.policy}: no queue series"
        for s in series
        if s not in drawn
    ]
    return _save(fig, "queue", out, caption, notes)


def utilization_plot(series: list[Series], unit: TimeUnit, out: Path) -> Plot:
    drawn = [s for s in series if _has(s.timeline, "gpu_utilization")]
    fig, axes = _figure(len(drawn))
    width = _width(drawn)
    for ax, s in zip(axes[: len(drawn)], drawn, strict=True):
        _line(ax, s, "gpu_utilization", "busy share", unit, width, "mean", color="C2",
              linewidth=1)  # fmt: skip
        ax.set_ylim(0, 1.05)
        _finish(ax, "gpu_utilization", s.policy, "busy share")
    if drawn:
        axes[-1].set_xlabel(f"time ({unit.name})")
    mean = " (each point the mean of its bin)" if width else ""
    caption = (
        f"GPU utilization: the busy share of ready replicas' slots, as the policy saw it{mean}."
    )
    notes = [
        f"{s.policy}: no GPU-utilization series (a bound computed from the trace, not a replay)"
        if s.policy == "oracle"
        else f"{s.policy}: no GPU-utilization series (its policy does not read "
        "gpu_utilization, and the simulator records only the signals a policy reads)"
        for s in series
        if s not in drawn
    ]
    return _save(fig, "gpu_utilization", out, caption, notes)


def _has(line: dict[str, list[Any]], key: str) -> bool:
    return any(v is not None for v in line.get(key, ()))


def _width(drawn: list[Series]) -> float:
    longest = max(drawn, key=lambda s: len(s.timeline["t"]), default=None)
    return bin_width(longest.timeline["t"]) if longest else 0.0


def _binned_note(width: float) -> str:
    return f" Each point is the highest of its {duration(width)} bin." if width else ""


BAR_NAMES = {
    60.0: "minute",
    300.0: "5 minutes",
    600.0: "10 minutes",
    1800.0: "30 minutes",
    3600.0: "hour",
    6 * 3600.0: "6 hours",
    86400.0: "day",
    7 * 86400.0: "week",
}


def _nice_width(span: float) -> float:
    """A bar width a reader knows (a minute, ten minutes, an hour, …) giving ≤ ~400 bars."""
    for width in BAR_NAMES:
        if span / width <= 400:
            return width
    return 7 * 86400.0


def _line(ax: Any, s: Series, key: str, label: str, unit: TimeUnit, width: float, how: str,
          **style: Any) -> None:  # fmt: skip
    if not _has(s.timeline, key):
        return
    x, y = binned(s.timeline["t"], s.timeline[key], width, how)
    ax.plot(x / unit.seconds, y, drawstyle="steps-post", label=label,
            gid=element_id("line", _figure_of(key), s.policy, key), **style)  # fmt: skip


def _figure_of(key: str) -> str:
    return "ready" if key in ("ready", "desired") else key


def _finish(ax: Any, figure: str, policy: str, ylabel: str) -> None:
    ax.set_gid(element_id("panel", figure, policy))
    ax.set_title(policy, loc="left", fontsize="medium", fontweight="bold")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    # Beside the panel, not on it: inside, it covers the lines it names.
    legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                       fontsize="small", frameon=False)  # fmt: skip
    for text, handle in zip(legend.get_texts(), handles, strict=True):
        key = (handle.get_gid() or "").rsplit(f"-{element_id(policy)}-", 1)[-1]
        text.set_gid(element_id("legend", figure, policy, key))


def _figure(panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    n = max(panels, 1)
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT * n + 0.9), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    if panels == 0:
        axes[0].set_axis_off()
        axes[0].text(
            0.5, 0.5, "no policy has this series", ha="center", transform=axes[0].transAxes
        )
    return fig, list(axes)


def _save(fig: Any, name: str, out: Path, caption: str, notes: list[str]) -> Plot:
    """The figure as SVG text (text kept as text, ids unique to this figure) and a PNG."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        fig.savefig(out / f"{name}.png", dpi=80)
    # matplotlib numbers its own ids per figure (line2d_1, axes_1, …); inlined side by side
    # they would repeat, so each gets the figure's name in front.
    svg = re.sub(r'id="([A-Za-z0-9.]+_\d+)"', rf'id="{name}-\1"', buffer.getvalue())
    (out / f"{name}.svg").write_text(svg)
    return Plot(name, svg[svg.index("<svg") :], caption, notes)
