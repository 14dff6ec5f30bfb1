"""Reading a configuration file: YAML in, a validated Config out, or every error listed.

Errors name the path (`pools[1].policy.target_per_replica`), say what is wrong in plain
words and, when the file is YAML, give the line. Strings may use `${VAR}` or
`${VAR:-default}` for endpoints and names; `$${` writes a literal `${`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .models import Config

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNION_FIELDS = {"policy", "source", "target", "service"}


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}: {self.message}{where}"


class ConfigError(Exception):
    """A configuration that cannot be used; `issues` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        listed = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} error(s)\n{listed}")


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _line_map(
    node: yaml.Node | None, path: Path_, lines: dict[Path_, int], issues: list[ConfigIssue]
) -> None:
    """Record the line of every key and item; report duplicate keys (YAML allows them)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                issues.append(
                    ConfigIssue(
                        format_path((*path, key)), "duplicate key", key_node.start_mark.line + 1
                    )
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _line_map(item, (*path, i), lines, issues)


def interpolate(data: Any, env: Mapping[str, str], path: Path_, issues: list[ConfigIssue]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recording unset variables."""
    if isinstance(data, dict):
        return {k: interpolate(v, env, (*path, k), issues) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, (*path, i), issues) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def substitute(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        issues.append(
            ConfigIssue(
                format_path(path),
                f"environment variable {name} is not set (set it, or write ${{{name}:-default}})",
            )
        )
        return ""

    return _ENV.sub(substitute, data)


def _all_field_names() -> set[str]:
    names: set[str] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            props = schema.get("properties")
            if isinstance(props, dict):
                names.update(props)
            for value in schema.values():
                walk(value)
        elif isinstance(schema, list):
            for value in schema:
                walk(value)

    walk(Config.model_json_schema())
    return names


_FIELD_NAMES: set[str] | None = None


def _tags() -> set[str]:
    import policies

    from .sources import SOURCE_TYPES

    return (
        set(policies.REGISTRY)
        | set(SOURCE_TYPES)
        | {"deployment", "statefulset", "job", "ec2", "asg", "simulated", "llm", "gpu-batch"}
    )


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    """Drop the union tags pydantic inserts (`policy.queue-depth.target` -> `policy.target`)."""
    tags = _tags()
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        in_union = prev in _UNION_FIELDS or (
            isinstance(prev, int) and i >= 2 and loc[i - 2] == "policies"
        )
        if isinstance(part, str) and in_union and part in tags:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _message(err: Any) -> tuple[str, str]:
    """(extra path, plain message) for one pydantic error."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    if kind == "value_error":
        text = str(ctx.get("error", msg))
        if text.startswith("@"):
            sub, _, rest = text[1:].partition("@ ")
            return sub, rest
        return "", text
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "missing": "required field is missing",
        "too_short": "must have at least {min_length} item(s)",
    }
    if kind in simple:
        shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return "", simple[kind].format(**shown)
    if kind == "extra_forbidden":
        global _FIELD_NAMES
        _FIELD_NAMES = _FIELD_NAMES or _all_field_names()
        name = str(err["loc"][-1])
        close = difflib.get_close_matches(name, _FIELD_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return "", f"unknown field{hint}"
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return (
            "",
            f"unknown {ctx.get('discriminator', 'type')} {ctx.get('tag')!r}; "
            f"use one of: {expected}".replace("'", ""),
        )
    if kind == "union_tag_not_found":
        return "", f"missing {ctx.get('discriminator', 'type')!s} (what kind of thing this is)"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return "", f"must be a number, got {err.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return "", f"{err.get('input')!r} does not match the pattern {ctx.get('pattern')}"
    return "", msg


def issues_from(error: ValidationError, lines: Mapping[Path_, int]) -> list[ConfigIssue]:
    out = []
    for err in error.errors():
        loc = _clean_loc(tuple(err["loc"]))
        sub, message = _message(err)
        path = format_path(loc)
        if sub:
            path = path + sub if sub.startswith("[") else f"{path}.{sub}" if loc else sub
        line = None
        probe = loc
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        out.append(ConfigIssue(path, message, line))
    return out


def parse_config(
    text: str, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate configuration text (YAML or JSON); raise ConfigError listing every issue."""
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            source, [ConfigIssue("(file)", f"invalid YAML: {problem}", line)]
        ) from None
    lines: dict[Path_, int] = {}
    issues: list[ConfigIssue] = []
    _line_map(node, (), lines, issues)
    if data is None:
        raise ConfigError(source, [ConfigIssue("(file)", "the file is empty; it needs `pools`")])
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("(file)", "the top level must be a mapping")])
    data = interpolate(data, env, (), issues)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues.extend(issues_from(exc, lines))
    if issues:
        raise ConfigError(source, issues)
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [ConfigIssue("(file)", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), [ConfigIssue("(file)", "not UTF-8 text")]) from None
    config = parse_config(text, str(p), env)
    config._base_dir = p.resolve().parent
    return config


def config_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the configuration file."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "elastic-autoscaler configuration"
    return schema
