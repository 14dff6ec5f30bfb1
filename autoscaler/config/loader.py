"""Reading a configuration file: YAML in, a validated Config out, or every error listed.

Errors name the path (`pools[1].policy.target_per_replica`), say what is wrong in plain
words and, when the file is YAML, give the line. Strings may use `${VAR}` or
`${VAR:-default}` for endpoints and names; `$${` writes a literal `${`.

The YAML reader is bounded: aliases may not expand the document beyond MAX_VALUES values
(a "billion laughs" file is refused while it is read, naming the line), nor refer to the
node that holds them, and nesting stops at MAX_DEPTH levels.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .formats import SHAPE_TAGS
from .models import Config

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNION_FIELDS = {"policy", "source", "target", "service"}
_SUBPATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

MAX_BYTES = 16 * 1024 * 1024
"""Largest configuration file read (a large one with 1000 pools is well under 1 MiB)."""
MAX_VALUES = 200_000
"""Most values (scalars, lists, mappings) a document may hold with its aliases expanded."""
MAX_ALIASES = 10_000
MAX_DEPTH = 100


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
        elif not isinstance(part, str) or not part.isprintable():
            out += f"[{part!r}]"  # a key YAML read as null, a number, or with a line break
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


class _Refused(yaml.YAMLError):
    """A YAML document the reader will not expand; `problem_mark` is where it noticed."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting as it composes: every node's size with its aliases
    expanded (aliases share nodes, so a tiny file can stand for billions of values that
    every later walk would visit), the aliases, and the nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _Refused(f"too many aliases (more than {MAX_ALIASES})", event.start_mark)
                if id(target) not in self._sizes:
                    raise _Refused(
                        f"alias *{event.anchor} refers to the node that contains it",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is None:
            return None
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > MAX_VALUES:
            raise _Refused(
                f"too many aliases: with them expanded this value holds more than {MAX_VALUES} "
                "values (a YAML alias bomb?); write the values out, or alias less",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value as PyYAML builds it; one it cannot build (`!!int x`, `!!timestamp
        2024-13-45`) is refused at its line instead of raising ValueError."""
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:  # ValueError, KeyError, AttributeError: whatever the tag's reader
            tag = str(node.tag).rsplit(":", 1)[-1]
            shown = repr(node.value)[:40] if isinstance(node, yaml.ScalarNode) else "the value"
            problem = f"invalid YAML: {shown} is not a valid !!{tag}"
            raise _Refused(problem, node.start_mark) from None


def read_yaml(
    text: str, source: str, lines: dict[Path_, int], issues: list[ConfigIssue]
) -> Any:
    """The document's data, recording the line of every key and item in `lines` and any
    duplicate key in `issues`; ConfigError naming the line if it cannot be read."""
    try:
        loader = _BoundedLoader(text)  # refuses characters YAML does not allow (a NUL)
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        problem = (
            f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML text "
            "(a control character: a binary file?)"
        )
        raise ConfigError(source, [ConfigIssue("(file)", problem, at)]) from None
    try:
        node = loader.get_single_node()
        # Lines from the tree as written, before the constructor flattens `<<` merges.
        _line_map(node, (), lines, issues)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        word = "" if isinstance(exc, _Refused) else "invalid YAML: "
        raise ConfigError(source, [ConfigIssue("(file)", f"{word}{problem}", line)]) from None
    except RecursionError:
        raise ConfigError(
            source, [ConfigIssue("(file)", "invalid YAML: nested too deeply")]
        ) from None
    finally:
        loader.dispose()
    return data


def _named_key(node: yaml.Node) -> str | int:
    """A key that YAML reads as no text (`false:`, `1.5:`, `~:`) as pydantic names it in
    the error it raises (a whole number as itself, anything else as its text)."""
    try:
        key = yaml.constructor.SafeConstructor().construct_object(node)
    except Exception:  # a tagged value PyYAML cannot read: the constructor reports it
        return str(node.value)
    return int(key) if isinstance(key, bool | int) else str(key)


def _line_map(
    node: yaml.Node | None, path: Path_, lines: dict[Path_, int], issues: list[ConfigIssue]
) -> None:
    """Record the line of every key and item; report duplicate keys (YAML allows them)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            # A complex key (`? [a]`) by its kind: the constructor refuses it at its line.
            scalar = isinstance(key_node, yaml.ScalarNode)
            key = key_node.value if scalar else f"<{key_node.id}>"
            if key in seen:
                issues.append(
                    ConfigIssue(
                        format_path((*path, key)), "duplicate key", key_node.start_mark.line + 1
                    )
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            if scalar and key_node.tag != "tag:yaml.org,2002:str":
                lines.setdefault((*path, _named_key(key_node)), key_node.start_mark.line + 1)
            _line_map(value_node, (*path, key), lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _line_map(item, (*path, i), lines, issues)


def interpolate(
    data: Any,
    env: Mapping[str, str],
    path: Path_,
    issues: list[ConfigIssue],
    lines: Mapping[Path_, int] | None = None,
) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recording unset variables (at
    their line, from `lines`)."""
    if isinstance(data, dict):
        return {k: interpolate(v, env, (*path, k), issues, lines) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, (*path, i), issues, lines) for i, v in enumerate(data)]
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
                _line_of(path, lines or {}),
            )
        )
        return ""

    return _ENV.sub(substitute, data)


def _line_of(path: Path_, lines: Mapping[Path_, int]) -> int | None:
    """The line of `path`, else of the nearest node above it that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


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
        if isinstance(part, str) and (part.startswith("function-") or part in SHAPE_TAGS):
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
    if kind == "missing" and tuple(err["loc"]) in (("installation",), ("installation", "id")):
        return "", (
            "required: the id this installation's resources are tagged with, unique among "
            "installations that share a cloud account or cluster (write "
            "`installation: {id: <name>}`)"
        )
    if kind == "missing" and tuple(err["loc"]) == ("pools",):
        return "", (
            "required field is missing (only settings for `run --crd-pools`, whose pools are "
            "AutoscalingPool objects, leave it out: check those with `validate --crd-pools`)"
        )
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "missing": "required field is missing",
        "too_short": "must have at least {min_length} item(s)",
        "too_long": "must have at most {max_length} item(s)",
        "string_too_short": "must have at least {min_length} character(s)",
        "string_too_long": "must have at most {max_length} characters",
    }
    if kind in simple:
        shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return "", simple[kind].format(**shown)
    if kind == "invalid_key":
        key = json.dumps(err.get("input"), default=str)
        return "", f"a key must be text, got {key}; quote it ('{key}')"
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
    if kind == "int_from_float":
        return "", f"must be a whole number, got {err.get('input')!r}"
    if kind == "int_parsing_size":
        return "", f"must be a whole number of realistic size, got {err.get('input')!r}"
    if kind == "finite_number":
        return "", f"must be a finite number, got {err.get('input')!r}"
    if kind in ("bool_type", "bool_parsing"):
        return "", f"must be true or false, got {err.get('input')!r}"
    if kind == "string_type":
        return "", f"must be text, got {err.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return "", f"{err.get('input')!r} does not match the pattern {ctx.get('pattern')}"
    return "", msg


def _subpath(sub: str) -> Path_:
    """`[1].name` or `behavior.stale.fallback_replicas` as path parts."""
    return tuple(int(i) if i else name for i, name in _SUBPATH.findall(sub))


def issues_from(error: ValidationError, lines: Mapping[Path_, int]) -> list[ConfigIssue]:
    out = []
    for err in error.errors():
        loc = _clean_loc(tuple(err["loc"]))
        sub, message = _message(err)
        path = format_path(loc)
        if sub:
            path = path + sub if sub.startswith("[") else f"{path}.{sub}" if loc else sub
            loc = (*loc, *_subpath(sub))
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
    lines: dict[Path_, int] = {}
    issues: list[ConfigIssue] = []
    data = read_yaml(text, source, lines, issues)
    if data is None:
        raise ConfigError(source, [ConfigIssue("(file)", "the file is empty; it needs `pools`")])
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("(file)", "the top level must be a mapping")])
    data = interpolate(data, env, (), issues, lines)
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
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            raise ConfigError(
                str(p), [ConfigIssue("(file)", f"larger than {MAX_BYTES // 2**20} MiB")]
            )
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
