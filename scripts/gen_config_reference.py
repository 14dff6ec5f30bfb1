"""Generate docs/config-reference.md from the pydantic models, so the docs match the code.

    python scripts/gen_config_reference.py          # rewrite the file
    python scripts/gen_config_reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import policies  # noqa: E402
from autoscaler.config import activator, budget, models, simulation, sources, targets  # noqa: E402

OUT = ROOT / "docs" / "config-reference.md"

SECTIONS: list[tuple[str, list[type[BaseModel]]]] = [
    ("File", [models.Config, models.Installation, models.ControllerSettings]),
    ("Pool", [models.Pool, budget.Budget]),
    ("Targets (`target.kind`)", [targets.DeploymentTarget, targets.StatefulSetTarget,
                                 targets.JobTarget, targets.Ec2Target, targets.AsgTarget,
                                 targets.SimulatedTarget]),
    ("Signals and sources (`signals.NAME.source.type`)",
     [sources.SignalSpec, *[m for m in typing.get_args(typing.get_args(sources.AnySource)[0])]]),
    ("Policies (`policy.type`)", [policies.REGISTRY[n] for n in policies.REGISTRY]),
    ("Behavior", [models.Behavior, models.DirectionBehavior, models.RateLimit,
                  models.StaleBehavior]),
    ("Activator (`activator`)", [activator.ActivatorSpec, activator.ActivatorBackend]),
    ("Simulation", [simulation.Simulation, simulation.LlmService, simulation.GpuBatchService,
                    simulation.Trace]),
]


def type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner = typing.get_args(annotation)[0]
        meta = typing.get_args(annotation)[1:]
        text = repr(meta)
        if "parse_duration" in text:
            return "duration"
        if "parse_fraction" in text:
            return "fraction"
        return type_name(inner)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in typing.get_args(annotation))
    if origin in (list, dict):
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation)).replace("Config", "")


def field_type(field: object) -> str:
    """pydantic moves Annotated metadata onto the field; look there for our units."""
    meta = repr(getattr(field, "metadata", []))
    base = type_name(field.annotation)  # type: ignore[attr-defined]
    for marker, unit in (("parse_duration", "duration"), ("parse_fraction", "fraction")):
        if marker in meta:
            base = base.replace("float", unit)
            break
    bounds = bounds_of(field)
    return f"{base} ({bounds})" if bounds else base


def _metadata(field: object) -> list[object]:
    """The field's constraints and validators, also those inside `Annotated[...] | None`."""
    found = list(getattr(field, "metadata", []))

    def walk(annotation: object) -> None:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            for meta in typing.get_args(annotation)[1:]:
                found.extend(getattr(meta, "metadata", None) or [meta])
        elif origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(annotation):
                walk(arg)

    walk(field.annotation)  # type: ignore[attr-defined]
    return found


def bounds_of(field: object) -> str:
    """`≥ 1, ≤ 10000` for a bounded number, `≤ 1d` for a bounded duration, else ''."""
    parts = []
    for meta in _metadata(field):
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if isinstance(value, int | float) and type(meta).__name__ == attr.capitalize():
                shown = str(int(value)) if float(value).is_integer() else f"{value:g}"
                parts.append(f"{sign} {shown}")
        schema = getattr(meta, "json_schema", None)  # a duration's WithJsonSchema
        if isinstance(schema, dict) and "at most" in schema.get("description", ""):
            parts.append("≤ " + schema["description"].rsplit("at most ", 1)[1])
    return ", ".join(dict.fromkeys(parts))


def default_of(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if field.is_required():  # type: ignore[attr-defined]
        return "**required**"
    if factory is not None:
        return "(see below)" if isinstance(factory, type) else "(computed)"
    if default is None:
        return "—"
    return f"`{default}`"


def model_table(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"### {model.__name__}", "", doc, "", "| field | type | default | meaning |",
             "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {field_type(field)} | {default_of(field)} "
                     f"| {desc} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models by `scripts/gen_config_reference.py`; a test "
        "fails when it is out of date. The JSON Schema is printed by `autoscaler schema`.",
        "",
        "Units: a *duration* is seconds, or a string such as `30s`, `5m`, `1h`, `250ms`; a "
        "*fraction* is a share between 0 and 1, or a percentage string such as `70%`. "
        "Strings may use `${VAR}` or `${VAR:-default}` (environment variables); `$${` "
        "writes a literal `${`.",
        "",
    ]
    for title, group in SECTIONS:
        parts.append(f"## {title}\n")
        parts.extend(model_table(m) for m in group)
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/gen_config_reference.py")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
