"""Generate docs/config-reference.md from the pydantic models, so the docs match the code.

    python scripts/gen_config_reference.py          # rewrite the file
    python scripts/gen_config_reference.py --check  # exit 1 if it is out of date

Every model reachable from `Config` (the file; an AutoscalingPool's `spec` is a `Pool`)
gets a section: the walk follows each field's type through unions, lists, dicts and
`Annotated`, so a model added anywhere under the config is documented without being
listed here. A referenced model is a link to its section. tests/unit/test_config_reference.py
holds every field to a description and every link to a section.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.config import models  # noqa: E402

OUT = ROOT / "docs" / "config-reference.md"
ROOTS: list[type[BaseModel]] = [models.Config]

GROUPED: dict[str, str] = {
    "Config": "File",
    "Installation": "File",
    "ControllerSettings": "File",
    "Pool": "Pool",
    "Behavior": "Behavior",
    "DirectionBehavior": "Behavior",
    "RateLimit": "Behavior",
    "StaleBehavior": "Behavior",
}
"""Sections of the models in models.py, which holds several; the rest go by module."""
MODULES: dict[str, str] = {
    "autoscaler.config.budget": "Pool",
    "autoscaler.config.targets": "Targets (`target.kind`)",
    "autoscaler.config.sources": "Signals and sources (`signals.NAME.source.type`)",
    "autoscaler.config.experiments": "Signals and sources (`signals.NAME.source.type`)",
    "policies": "Policies (`policy.type`)",
    "autoscaler.config.activator": "Activator (`activator`)",
    "autoscaler.config.simulation": "Simulation (`simulation`)",
    "autoscaler.config.nodes": "GPU nodes (`nodes`)",
    "autoscaler.config.interruptions": "GPU nodes (`nodes`)",
    "autoscaler.config.triggers": "Triggers (`triggers`)",
}
"""A section per module (a package's name stands for its modules); a module not named here
gets one titled by its own name."""
INTRO: dict[str, str] = {
    "Pool": "A Kubernetes `AutoscalingPool`'s `spec` is a Pool without `name` (the "
    "object's `metadata.name` is the pool's name).",
}


def anchor(model: type[BaseModel]) -> str:
    """The section's anchor as GitHub and most renderers make it from `### Name`."""
    return model.__name__.lower()


def link(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{anchor(model)})"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models a field's type names, in order: through Annotated, unions, list, dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def reachable(roots: list[type[BaseModel]] | None = None) -> list[type[BaseModel]]:
    """Every model reachable from `roots` through their fields, depth first in field order."""
    seen: dict[type[BaseModel], None] = {}

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen[model] = None
        for field in model.model_fields.values():
            for found in _models_in(field.annotation):
                visit(found)

    for root in roots or ROOTS:
        visit(root)
    return list(seen)


def section_of(model: type[BaseModel]) -> str:
    if model.__name__ in GROUPED and model.__module__ == models.__name__:
        return GROUPED[model.__name__]
    module = model.__module__
    for name, title in MODULES.items():
        if module == name or module.startswith(name + "."):
            return title
    return module.rsplit(".", 1)[-1].replace("_", " ").capitalize()


def missing_descriptions(found: list[type[BaseModel]] | None = None) -> list[str]:
    """`Model.field` for every field of a reachable model that has no description."""
    return [
        f"{model.__name__}.{name} ({model.__module__})"
        for model in found or reachable()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def summary(model: type[BaseModel]) -> str:
    """The docstring's first paragraph on one line, its indentation removed."""
    doc = inspect.cleandoc(model.__doc__ or "")
    return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())


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
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return link(annotation)
    return getattr(annotation, "__name__", str(annotation))


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


UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


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
            most = schema["description"].rsplit("at most ", 1)[1]
            # `≤ 1h` says what `le=3600` on the same duration says: show it once
            short = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", most)
            if short:
                seconds = float(short[1]) * UNIT_SECONDS[short[2]]
                parts = [p for p in parts if p != f"≤ {seconds:g}"]
            parts.append("≤ " + most)
    return ", ".join(dict.fromkeys(parts))


def default_of(field: object) -> str:
    factory = getattr(field, "default_factory", None)
    if field.is_required():  # type: ignore[attr-defined]
        return "**required**"
    if factory is not None:
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return f"{link(factory)}'s defaults"
        value = factory()
        if isinstance(value, BaseModel):
            return f"{link(type(value))}'s defaults"
        return f"`{json.dumps(value)}`"
    default = getattr(field, "default", PydanticUndefined)
    if default is None:
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"  # as YAML writes it
    if default == "":
        return '`""`'
    return f"`{default}`"


DOC_PATH = re.compile(r"\bdocs/([\w.-]+\.md)\b")


def _cell(text: str) -> str:
    """A description as one table cell; `docs/x.md` becomes a link (this file is in docs/)."""
    text = " ".join(text.split()).replace("|", "\\|")
    return DOC_PATH.sub(r"[docs/\1](\1)", text)


def model_table(model: type[BaseModel]) -> str:
    lines = [f"### {model.__name__}", "", summary(model), "", "| field | type | default | "
             "meaning |", "|---|---|---|---|"]  # fmt: skip
    for name, field in model.model_fields.items():
        lines.append(f"| `{name}` | {field_type(field)} | {default_of(field)} "
                     f"| {_cell(field.description or '')} |")  # fmt: skip
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
        "writes a literal `${`. A type that links to a section is an object described there.",
        "",
    ]
    sections: dict[str, list[type[BaseModel]]] = {}
    # A section opens with the models it is named for (Pool before its Budget), then the
    # rest in the order the walk found them.
    found = reachable()
    for model in sorted(found, key=lambda m: (m.__name__ not in GROUPED, found.index(m))):
        sections.setdefault(section_of(model), []).append(model)
    order = {section_of(m): i for i, m in reversed(list(enumerate(found)))}
    sections = dict(sorted(sections.items(), key=lambda item: order[item[0]]))
    for title, group in sections.items():
        parts.append(f"## {title}\n")
        if title in INTRO:
            parts.append(INTRO[title] + "\n")
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
    missing = missing_descriptions()
    if missing:
        print(f"{len(missing)} field(s) have no description: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
