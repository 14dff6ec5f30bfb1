"""Sweeps: many variants of a pool's settings, simulated in parallel processes.

`grid` builds variants from `--param PATH=v1,v2` (the cartesian product, paths into the
pool's configuration such as `policy.max_utilization` or `behavior.scale_down.
stabilization_window`). `tuning_variants` builds, for `--tune`, a grid per policy family
(ours and each baseline), so that comparisons are between best-tuned policies. Results are
summarised as the cost-vs-SLO Pareto front and the cheapest setting per family that meets
the SLO. `keepalive_variants` (`--keepalive`) adds a fixed keep-alive family: the pool's own
policy scaled to zero a fixed time after its last work, over `KEEPALIVE_GRID` (30 s to
30 min; issue 16). Every variant is validated as a pool before it runs; a worker never shares state
with another but the traces it caches for itself. `run_all` runs variants on an executor
(executors.py: local processes or a Ray cluster); search.py searches the same knobs with
Optuna instead of walking their grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from autoscaler.config import Pool
from autoscaler.config.loader import issues_from

from .baselines import FAMILIES, KEEPALIVE_GRID, fixed_keepalive, tuning_grid
from .engine import SimulationError, run_policy, workload
from .executors import Executor, LocalExecutor
from .front import best_per_family, pareto  # noqa: F401 - where callers import them
from .traces import Trace, read_trace


@dataclass(frozen=True)
class TraceSpec:
    path: str
    format: str | None
    speedup: float
    repeat: int
    pool: str

    def load(self) -> Trace:
        return read_trace(self.path, self.format, pool=self.pool).transformed(
            self.speedup, self.repeat
        )


@dataclass(frozen=True)
class Variant:
    family: str
    label: str
    pool: dict[str, Any]
    knobs: dict[str, Any] = field(default_factory=dict)
    """What this variant sets, by field path (`min` for a warm floor): the row's label."""


def parse_param(text: str) -> tuple[str, list[Any]]:
    """`PATH=V1,V2,...`: a dotted path into the pool (list items by index) and its values,
    each read as YAML (0.8, 30s, true, null)."""
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path or not values.strip():
        raise SimulationError(
            f"--param {text!r}: write PATH=V1,V2,... e.g. policy.max_utilization=0.7,0.8,0.9"
        )
    if any(not part.strip() for part in path.split(".")):
        raise SimulationError(
            f"--param {text!r}: {path!r} is not a field path; write names joined by dots, "
            "e.g. policy.max_utilization"
        )
    parsed = []
    for v in values.split(","):
        try:
            parsed.append(yaml.safe_load(v))
        except Exception:  # YAMLError; ValueError for `!!int x` or an int of 5,000 digits
            raise SimulationError(
                f"--param {text!r}: {v.strip()!r} is not a value; write numbers, durations "
                "(30s), true/false or words, separated by commas"
            ) from None
    return path, parsed


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        key: Any = _index(path, parts[: i + 1], node) if isinstance(node, list) else part
        try:
            child = node[key]
        except (KeyError, IndexError, TypeError):
            if isinstance(node, dict):
                child = node[key] = {}
            else:
                raise SimulationError(
                    f"--param {path}: {'.'.join(parts[: i + 1])} does not exist"
                ) from None
        if child is None and isinstance(node, dict):
            child = node[key] = {}
        node = child
    last = parts[-1]
    if isinstance(node, list):
        index = _index(path, parts, node)
        if not -len(node) <= index < len(node):
            raise SimulationError(f"--param {path}: {path} does not exist")
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SimulationError(f"--param {path}: cannot set a field on {type(node).__name__}")


def _index(path: str, parts: list[str], node: list[Any]) -> int:
    """A list position in a --param path (`policy.policies.0`)."""
    try:
        return int(parts[-1])
    except ValueError:
        where = ".".join(parts[:-1])
        raise SimulationError(
            f"--param {path}: {where} is a list of {len(node)}; write a position from 0 "
            f"to {len(node) - 1} instead of {parts[-1]!r}"
        ) from None


def plain_error(error: BaseException) -> str:
    """A pool's validation error as `field: problem; ...` in the configuration's own
    words (never pydantic's wording and URLs)."""
    if isinstance(error, ValidationError):
        return "; ".join(f"pool field {issue}" for issue in issues_from(error, {}))
    return str(error)


def _dump(pool: Pool) -> dict[str, Any]:
    """The pool as the simulator runs it: a simulated target reading simulated signals."""
    data = pool.model_dump(mode="json", exclude_none=True)
    data["target"] = {"kind": "simulated"}
    data["signals"] = {}
    return data


def _check(data: dict[str, Any], label: str, what: str = "variant") -> dict[str, Any]:
    """`data` if it is a valid pool; else a SimulationError naming `what` (`--param`,
    `variant`) and `label`, each field and the bound it breaks."""
    try:
        Pool.model_validate(data)
    except Exception as exc:
        raise SimulationError(f"{what} {label}: {plain_error(exc)}") from None
    return data


def grid(
    pool: Pool, params: Sequence[tuple[str, list[Any]]], what: str = "--param"
) -> list[Variant]:
    """Every combination of the parameter values, applied to the pool. `what` names them
    in errors: `--param` (the user's) or `variant` (a built-in grid)."""
    base = _dump(pool)
    variants = []
    for combo in itertools.product(*(values for _, values in params)):
        data = yaml.safe_load(yaml.safe_dump(base))
        label = ", ".join(f"{p}={v}" for (p, _), v in zip(params, combo, strict=True))
        for (path, _), value in zip(params, combo, strict=True):
            set_path(data, path, value)
        named = f"{what} values" if what == "--param" and len(params) > 1 else what
        checked = _check(data, label, named) if params else _check(data, "as configured")
        knobs = {p: v for (p, _), v in zip(params, combo, strict=True)}
        variants.append(Variant(pool.policy.type, label or "as configured", checked, knobs))
    return variants


def _own_knobs(pool: Pool) -> list[tuple[str, list[Any]]]:
    """Default tuning grid for our own policy: utilization headroom, the per-moment SLO
    quantile, forecast trend and scale-down window."""
    policy = pool.policy
    prefix = "policy"
    if policy.type == "composite":
        children = [c.type for c in policy.policies]
        if "queueing" in children:
            prefix = f"policy.policies.{children.index('queueing')}"
            policy = policy.policies[children.index("queueing")]
    knobs: list[tuple[str, list[Any]]] = []
    if policy.type == "queueing":
        knobs.append((f"{prefix}.max_utilization", [0.7, 0.9]))
        # Sizing every moment for P(wait > SLO) <= 1 % over-delivers on the whole run.
        knobs.append((f"{prefix}.slo_quantile", [0.95, 0.99]))
        # A slow trend follows ramps but not the minute-to-minute noise of a steady load.
        knobs.append((f"{prefix}.trend_smoothing", [60, 600]))
    elif policy.type == "packing":
        # How full a new node is planned to be: below 1 leaves room for jobs that pack badly.
        knobs.append((f"{prefix}.fill", [0.5, 0.75, 1.0]))
    elif policy.type == "queue-depth":
        target = policy.target_per_replica
        knobs.append(
            (f"{prefix}.target_per_replica", [round(target * f, 3) for f in (0.5, 0.75, 1.0, 1.5)])
        )
    if not pool.policy.owns_behavior:
        knobs.append(("behavior.scale_down.stabilization_window", [60, 180, 300]))
    return knobs


def warm_floors(pool: Pool) -> list[int]:
    """Minimum replicas `--tune` tries for every family. Where a cold start takes longer
    than the wait SLO, a burst after a quiet spell can only be served by capacity kept
    warm, which is how teams tune such a pool by hand (minReplicas): the pool's own `min`
    and 1/8, 1/4, 3/8 and 1/2 of `max`. Otherwise only `min`. Every family gets the same
    floors, so the comparison stays fair."""
    slo = pool.simulation.wait_slo if pool.simulation is not None else None
    if slo is not None and pool.startup <= slo:
        return [pool.min]
    return sorted({max(pool.min, pool.max * k // 8) for k in range(5)})


def _with_floor(data: dict[str, Any], floor: int) -> dict[str, Any]:
    data = {**data, "min": floor}
    stale = (data.get("behavior") or {}).get("stale") or {}
    if stale.get("fallback_replicas") is not None and stale["fallback_replicas"] < floor:
        data["behavior"] = {**data["behavior"], "stale": {**stale, "fallback_replicas": floor}}
    return data


def tuning_variants(
    pool: Pool, slots_per_replica: int, batch: bool, floors: Sequence[int] | None = None
) -> list[Variant]:
    """A grid per family: ours (its main knobs) and each baseline (its target), each at
    every warm floor (`floors`, default `warm_floors(pool)`)."""
    floors = warm_floors(pool) if floors is None else sorted(set(floors))
    base = _dump(pool)
    variants = []
    for floor in floors:
        note = "" if floor == pool.min else f"min={floor}"
        for v in grid(pool, _own_knobs(pool), what="variant"):
            own = "" if v.label == "as configured" else v.label
            label = ", ".join(x for x in (note, own) if x) or v.label
            floored = _check(_with_floor(v.pool, floor), label)
            variants.append(Variant(v.family, label, floored, {**v.knobs, "min": floor}))
        for family in FAMILIES:
            for config in tuning_grid(family, slots_per_replica, batch):
                data = {**base, "policy": config}
                data.pop("behavior", None)
                knob = {k: v for k, v in config.items() if k != "type"}
                label = f"{family} {knob}" + (f", {note}" if note else "")
                knobs = {**baseline_knobs(family, config, slots_per_replica, batch), "min": floor}
                checked = _check(_with_floor(data, floor), family)
                variants.append(Variant(family, label, checked, knobs))
    return variants


def baseline_knobs(
    family: str, config: dict[str, Any], slots_per_replica: int, batch: bool
) -> dict[str, Any]:
    """The settings of a baseline's `config` that its tuning grid varies, by path in the
    pool (`policy.metrics.0.target_utilization`): what tells its variants apart."""
    return {
        path: value
        for path, value in _leaves(config, "policy")
        if path in baseline_space(family, slots_per_replica, batch)
    }


def baseline_space(
    family: str, slots_per_replica: int, batch: bool
) -> dict[str, tuple[float, float]]:
    """The knobs `tuning_grid` walks for a baseline family, by path in the pool, with the
    lowest and highest value it tries: the bounds a search of that family keeps to."""
    seen: dict[str, list[Any]] = {}
    for config in tuning_grid(family, slots_per_replica, batch):
        for path, value in _leaves(config, "policy"):
            seen.setdefault(path, []).append(value)
    return {
        path: (min(values), max(values))
        for path, values in seen.items()
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        and len(set(values)) > 1
    }


def _leaves(node: Any, prefix: str) -> list[tuple[str, Any]]:
    """Every scalar under `node` with its dotted path (list items by index)."""
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return [(prefix, node)]
    return [leaf for key, child in items for leaf in _leaves(child, f"{prefix}.{key}")]


def keepalive_variants(pool: Pool, seconds: Sequence[float] = KEEPALIVE_GRID) -> list[Variant]:
    """The fixed keep-alive family: the pool's own policy (without a learned `keep_alive`)
    with `behavior.scale_to_zero_after` at each of `seconds`, at the pool's own `min` (a
    warm floor above zero would make the keep-alive moot)."""
    variants = []
    for s in seconds:
        label = f"keepalive {s:g}s"
        try:
            data = fixed_keepalive(pool, float(s))
        except ValueError as exc:
            raise SimulationError(f"{label}: {plain_error(exc)}") from None
        data["target"] = {"kind": "simulated"}
        data["signals"] = {}
        knobs = {"behavior.scale_to_zero_after": float(s)}
        variants.append(Variant("keepalive", label, _check(data, label), knobs))
    return variants


_TRACES: dict[TraceSpec, Trace] = {}


def run_variant(variant: Variant, spec: TraceSpec | Trace, tick: float) -> dict[str, Any]:
    """Simulate one variant (in a worker; a trace given by its spec is read once per
    process and cached, one shipped by a Ray executor arrives read)."""
    if isinstance(spec, Trace):
        trace = spec
    else:
        cached = _TRACES.get(spec)
        trace = _TRACES[spec] = spec.load() if cached is None else cached
    pool = Pool.model_validate(variant.pool)
    run = run_policy(pool, workload(pool, trace), pool.policy, variant.label, tick, timeline=False)
    return {
        **run.metrics,
        "family": variant.family,
        "variant": variant.label,
        "knobs": variant.knobs,
    }


def run_all(
    variants: Sequence[Variant],
    spec: TraceSpec,
    tick: float,
    workers: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Run every variant on `executor` (default: `workers` local processes, 1: in this
    process), results in the order of `variants`. On any error, Ctrl-C included, the
    workers are stopped at once."""
    if executor is None:
        with LocalExecutor(min(workers, len(variants))) as local:
            return run_all(variants, spec, tick, workers, progress, local)
    shipped = spec if executor.local else executor.put(spec.load())
    return executor.map(run_variant, [(v, shipped, tick) for v in variants], progress)
