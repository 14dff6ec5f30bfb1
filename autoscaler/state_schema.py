"""What a state file (`autoscaler run --state`) may hold: the schema and bounds of the planner
memory read back from outside, checked before anything uses it.

A state file is `{pool name: pool memory}`, each pool's memory what `PoolMemory.to_dict`
writes. Anything else is refused with the JSON path of the first bad field, so a damaged or
hand-edited file never reaches the planner: a string where a number belongs would raise
mid-tick, a backoff far in the future would hold a pool forever, a huge action counter
would make request ids longer than a cloud's tag allows.

Two passes:
1. the shape of any JSON (`check_json`): nesting depth, list and object sizes, string
   lengths, finite numbers, so that policy memory this module does not type (a policy's
   own keys) is bounded too;
2. the types (`validate_state`, strict pydantic models): every planner field, and the policy
   keys the built-in policies write, with their bounds. Times are seconds >= 0 and no later
   than the reader's clock plus `CLOCK_SKEW` (a provider backoff: plus the longest backoff
   the controller sets).

The same models check the memory a pool's status holds (`validate_pool_memory`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

from policies.idle_gaps import DAY, StoredModel

from .config import ControllerSettings
from .planner import MAX_ERROR_CHARS
from .scaling import UNLIMITED

CLOCK_SKEW = 600.0
"""Seconds a stored time may lie ahead of the reader's clock (another machine's clock, an
NTP step); a time further ahead is refused, not waited for."""
DEFAULT_BACKOFF_MAX = float(ControllerSettings.model_fields["provider_backoff_max"].default)
MAX_DEPTH = 32
"""Nesting of objects and lists (the built-in policies need about 10, a composite more)."""
MAX_ITEMS = 100_000
"""Items in one list or keys in one object (a history holds one entry a tick at most)."""
MAX_TEXT = 4_096
"""Characters in one string or key."""
MAX_POOLS = 10_000
MAX_POOL_NAME = 253
MAX_ACTIONS = 10**12 - 1
"""The action counter, the sequence in request ids: 12 digits at most (a counter started
from the clock, as one without a state file is, has 10 now)."""
MAX_COUNT = 10**12
"""Other counters (failures in a row, gaps seen)."""
MAX_INT = 2**63 - 1
MAX_TIME = 1e11
"""Seconds since the epoch (the year 5138): a bound for a reader that gives no clock."""


class StateInvalid(ValueError):
    """The state is not what the controller writes: `where` (the JSON path of the first bad
    field) and `message` (what is wrong there)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


# -- pass 1: the shape of any JSON --------------------------------------------------------
def check_json(data: Any, root: tuple[str | int, ...] = ()) -> None:
    """Bounded JSON: depth, sizes, string lengths, finite numbers. Iterative (no recursion,
    however deep the value). Raises StateInvalid."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, root)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if len(path) - len(root) >= MAX_DEPTH:
                raise StateInvalid(format_path(path), f"nested more than {MAX_DEPTH} deep")
            if len(value) > MAX_ITEMS:
                raise StateInvalid(format_path(path), f"{len(value)} items, more than {MAX_ITEMS}")
            if isinstance(value, dict):
                for key, item in value.items():
                    if len(key) > MAX_TEXT:
                        raise StateInvalid(
                            format_path(path), f"a key longer than {MAX_TEXT} characters"
                        )
                    stack.append((item, (*path, key)))
            else:
                stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise StateInvalid(format_path(path), f"a string longer than {MAX_TEXT} characters")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise StateInvalid(format_path(path), f"must be a finite number, got {value}")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise StateInvalid(format_path(path), f"must be at most {MAX_INT} in size")


MAX_PATH_SHOWN = 200
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: tuple[str | int, ...]) -> str:
    """`gpu.recommendations[0]`; a key with other characters as `["llm.v2"]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            text = part if len(part) <= 64 else part[:61] + "..."
            if not text.isprintable():  # a line break or control character: escaped, one line
                out += "[" + json.dumps(text) + "]"
                continue
            out += '["' + text.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    if len(out) > MAX_PATH_SHOWN:  # deep in a deep file: its start and its end
        out = out[: MAX_PATH_SHOWN // 2] + "..." + out[-MAX_PATH_SHOWN // 2 :]
    return out or "(top level)"


# -- pass 2: the types --------------------------------------------------------------------
def _not_ahead(value: float, info: ValidationInfo) -> float:
    context = info.context or {}
    now = context.get("now")
    if now is not None and value > now + CLOCK_SKEW:
        raise ValueError(
            f"{value:.0f} is {value - now:.0f}s ahead of the clock (now {now:.0f}); a time "
            f"read back is at most {CLOCK_SKEW:g}s ahead"
        )
    return value


def _backoff_not_ahead(value: float, info: ValidationInfo) -> float:
    context = info.context or {}
    now = context.get("now")
    longest = max(context.get("backoff_max") or 0.0, DEFAULT_BACKOFF_MAX)
    if now is not None and value > now + longest + CLOCK_SKEW:
        raise ValueError(
            f"the backoff ends {value - now:.0f}s from now, more than the longest the "
            f"controller sets ({longest:g}s, controller.provider_backoff_max)"
        )
    return value


def _day_not_ahead(value: int, info: ValidationInfo) -> int:
    context = info.context or {}
    now = context.get("now")
    if now is not None and value * DAY > now + CLOCK_SKEW:
        raise ValueError(f"day {value} is ahead of the clock (now day {int(now // DAY)})")
    return value


_Seconds = Annotated[StrictFloat, Field(ge=0, le=MAX_TIME)]
Time = Annotated[_Seconds, AfterValidator(_not_ahead)]
"""A time (seconds since the epoch, or since a simulation started) no later than now."""
Number = StrictFloat
"""Any finite number (the models refuse inf and nan)."""
Replicas = Annotated[StrictInt, Field(ge=0, le=UNLIMITED)]
Change = Annotated[StrictInt, Field(ge=-UNLIMITED, le=UNLIMITED)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
History = Annotated[list[tuple[Time, Replicas]], Field(max_length=MAX_ITEMS)]
Changes = Annotated[list[tuple[Time, Change]], Field(max_length=MAX_ITEMS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class IdleModel(StoredModel):
    """The learned idle gaps (policies/idle_gaps.py), its times checked against the clock."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    since: Time | None
    burst_at: Time | None
    last_start: Time | None
    day: Annotated[StrictInt, Field(ge=0), AfterValidator(_day_not_ahead)]


class PolicyMemory(BaseModel):
    """A policy's memory. The keys the built-in policies write are typed (a key means the
    same in every policy that has it), null only where a policy writes null; any other key
    (a policy's own) is plain JSON, bounded by `check_json`. (Only presence is checked: the
    defaults here are never used.)"""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    # queueing
    at: Time = 0.0
    level: Number = 0.0
    trend: Number = 0.0
    idle: IdleModel | None = None
    # composite; keda keeps an hpa's memory under "hpa"
    children: Annotated[list[PolicyMemory], Field(max_length=MAX_ITEMS)] = []
    hpa: PolicyMemory | None = None
    # hpa, keda
    last_sync: Time = 0.0
    recs: History = []
    events: Changes = []
    failures: Annotated[list[Count], Field(max_length=MAX_ITEMS)] = []
    last_active: Time = 0.0
    last_poll: Time = 0.0
    # kpa
    samples: Annotated[list[tuple[Time, Number]], Field(max_length=MAX_ITEMS)] = []
    last_tick: Time = 0.0
    last: Replicas = 0
    panic_time: Time | None = None
    max_panic_pods: Replicas = 0
    zero_since: Time | None = None


class SpendMemory(_Model):
    """What budgets count of a pool (autoscaler/budgets.py `Spend`)."""

    day: Annotated[StrictInt, Field(ge=0), AfterValidator(_day_not_ahead)]
    gpu_hours: Annotated[StrictFloat, Field(ge=0, le=MAX_COUNT)]
    at: Time | None = None
    replicas: Replicas = 0
    gpu_hours_total: Annotated[StrictFloat, Field(ge=0, le=MAX_COUNT)] = 0.0
    """GPU-hours ever, for a `gpu_hours_total` budget (absent in files of older versions)."""


class PoolMemory(_Model):
    """One pool's planner memory, as `autoscaler.planner.PoolMemory.to_dict` writes it (a
    field left out takes its default, as in files from older versions)."""

    recommendations: History = []
    scale_events: Changes = []
    last_scale_at: Time | None = None
    stale_since: Time | None = None
    zero_since: Time | None = None
    backoff_until: Annotated[_Seconds, AfterValidator(_backoff_not_ahead)] | None = None
    backoff_seconds: Annotated[StrictFloat, Field(ge=0, le=MAX_TIME)] = 0.0
    last_error: Annotated[StrictStr, Field(max_length=MAX_ERROR_CHARS)] | None = None
    actions: Annotated[StrictInt, Field(ge=0, le=MAX_ACTIONS)] = 0
    policy: PolicyMemory = Field(default_factory=PolicyMemory)
    started_at: Time | None = None
    started_with: Replicas = 0
    budget: SpendMemory | None = None


PoolName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_POOL_NAME)]
_STATE: TypeAdapter[dict[str, PoolMemory]] = TypeAdapter(
    Annotated[dict[PoolName, PoolMemory], Field(max_length=MAX_POOLS)]
)
_POOL: TypeAdapter[PoolMemory] = TypeAdapter(PoolMemory)


def validate_state(data: Any, now: float | None, backoff_max: float | None = None) -> None:
    """Raise StateInvalid unless `data` is a state file's content: {pool name: memory}.
    `now`: the reader's clock (None: times are only bounded); `backoff_max`: the longest
    provider backoff the controller sets (at least the default is allowed)."""
    check_json(data)
    _check(_STATE, data, (), now, backoff_max)


def validate_pool_memory(
    data: Any, now: float | None, backoff_max: float | None = None, where: str = ""
) -> None:
    """Raise StateInvalid unless `data` is one pool's memory (`where`: its path)."""
    try:
        check_json(data)
        _check(_POOL, data, (), now, backoff_max)
    except StateInvalid as exc:
        if not where:
            raise
        path = "" if exc.where == "(top level)" else exc.where
        path = f"{where}{'' if path.startswith('[') or not path else '.'}{path}"
        raise StateInvalid(path, exc.message) from None


def _check(
    adapter: TypeAdapter[Any],
    data: Any,
    root: tuple[str | int, ...],
    now: float | None,
    backoff_max: float | None,
) -> None:
    try:
        adapter.validate_python(data, context={"now": now, "backoff_max": backoff_max})
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = tuple(p for p in first["loc"] if p != "[key]")
        message = _message(first)
        if "[key]" in first["loc"]:
            message = f"pool name: {message}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        raise StateInvalid(format_path((*root, *loc)), message) from None


def _message(err: Mapping[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    got = _shown(err.get("input"))
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("int_type", "int_from_float"):
        return f"must be a whole number, got {got}"
    if kind in ("float_type", "finite_number"):
        return f"must be a finite number, got {got}"
    if kind == "bool_type":
        return f"must be true or false, got {got}"
    if kind == "string_type":
        return f"must be a string, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a JSON object, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {got}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    bounds = {
        "greater_than_equal": "must be >= {ge}",
        "less_than_equal": "must be <= {le}",
        "too_long": "must have at most {max_length} item(s)",
        "too_short": "must have at least {min_length} item(s)",
        "string_too_long": "must be at most {max_length} characters",
        "string_too_short": "must not be empty",
    }
    if kind in bounds:
        shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        text = bounds[kind].format(**shown)
        return f"{text}, got {got}" if kind in ("greater_than_equal", "less_than_equal") else text
    return str(err["msg"])


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = f"{value:g}" if isinstance(value, float) else json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = [
    "CLOCK_SKEW",
    "StateInvalid",
    "check_json",
    "format_path",
    "validate_pool_memory",
    "validate_state",
]
