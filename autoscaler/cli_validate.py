"""`autoscaler validate`: configuration files and AutoscalingPool manifests, one file, many
documents in a file (`---`), or a folder of them, each file's result reported.

A document with `apiVersion` and `kind` is a Kubernetes object: an AutoscalingPool (or an
AutoscalingTrigger) is checked exactly as the controller reads one (autoscaler.kube.pools:
its spec as a Pool named after metadata.name), any other kind (a Deployment, a
kustomization) is skipped and said so. Any other document is a configuration file, the
only document in its file (as `run -c` reads it). Exit 2 if any file fails, listing every
error as `path: message (line N)`.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from .cli_options import config_errors, fail
from .cli_output import chosen_format, emit, json_flag_alias, output_option
from .config import ConfigError, ConfigIssue
from .config.loader import MAX_BYTES, load_config, read_yaml

SUFFIXES = (".yaml", ".yml", ".json")
"""The files a folder is searched for (recursively)."""

_DOCUMENT_START = re.compile(r"^---(?=\s|$)", re.MULTILINE)


@dataclass
class FileResult:
    """One file's verdict: the pools and AutoscalingTriggers it defines, the other kinds
    skipped, and every error (its source names the document where the file has several)."""

    file: str
    pools: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "ok": self.ok}
        if self.ok:
            out["pools"] = self.pools
            if self.triggers:
                out["triggers"] = self.triggers
        else:
            out["errors"] = [
                {"path": i.path, "message": i.message, "line": i.line}
                # Which document, where the file has several.
                | ({"source": e.source} if e.source != self.file else {})
                for e in self.errors
                for i in e.issues
            ]
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def files_in(paths: tuple[str, ...]) -> list[str]:
    """The files to check: each path as given, a folder as its *.yaml, *.yml and *.json
    files (recursively, sorted). A folder without any is a user error."""
    out: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            out.append(given)
            continue
        found = sorted(str(p) for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not found:
            fail(f"validate: folder {given!r} holds no {', '.join(SUFFIXES)} file")
        out.extend(found)
    return out


def _documents(text: str) -> list[tuple[int, str]]:
    """The YAML documents of `text` with the line (0-based) each starts on; one document
    when there is no `---` line."""
    starts = [m.start() for m in _DOCUMENT_START.finditer(text)]
    if not starts:
        return [(0, text)]
    bounds = ([0] if starts[0] != 0 else []) + starts + [len(text)]
    return [(text.count("\n", 0, a), text[a:b]) for a, b in pairwise(bounds)]


def _shifted(error: ConfigError, source: str, lines: int) -> ConfigError:
    """`error` with its lines counted from the file's start, not the document's."""
    issues = [
        ConfigIssue(i.path, i.message, None if i.line is None else i.line + lines)
        for i in error.issues
    ]
    return ConfigError(source, issues)


def _is_object(data: object) -> bool:
    return isinstance(data, dict) and "apiVersion" in data and "kind" in data


def _trigger_data(obj: dict[str, Any]) -> dict[str, Any]:
    """The Trigger fields of an AutoscalingTrigger, as autoscaler.triggers.objects.parse
    makes them: its spec, named after the object, in the object's namespace."""
    meta = obj["metadata"]
    data: dict[str, Any] = copy.deepcopy(obj["spec"])
    data["name"] = meta["name"]
    data.setdefault("namespace", meta["namespace"])
    return data


def _kinds() -> dict[str, tuple[type[BaseModel], Callable[[dict[str, Any]], dict[str, Any]]]]:
    """Each kind of our API group: the model its spec is, and how the controller turns the
    object into that model's fields."""
    from .config import Pool
    from .config.triggers import Trigger
    from .kube.crd import KIND, TRIGGER_KIND
    from .kube.pools import pool_data

    return {KIND: (Pool, pool_data), TRIGGER_KIND: (Trigger, _trigger_data)}


def check_manifest(data: dict[str, Any], lines: dict[Any, int]) -> tuple[str, list[ConfigIssue]]:
    """An object of our API group (AutoscalingPool, AutoscalingTrigger) as the controller
    validates it (e.g. kube.pools.pool_data then Pool), with the fields the API server
    requires; its name and every issue, paths from the object's top (`spec.policy.type`)."""
    from pydantic import ValidationError

    from .config.loader import issues_from
    from .kube.crd import GROUP, VERSION

    issues: list[ConfigIssue] = []
    kind = str(data["kind"])
    wanted = f"{GROUP}/{VERSION}"
    if data.get("apiVersion") != wanted:
        issues.append(
            ConfigIssue(
                "apiVersion",
                f"{data.get('apiVersion')!r}: an {kind} is apiVersion {wanted}",
                lines.get(("apiVersion",)),
            )
        )
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        issues.append(
            ConfigIssue("metadata.name", "missing: the object's name", lines.get(("metadata",)))
        )
        return "", issues
    if not isinstance(data.get("spec"), dict):
        issues.append(ConfigIssue("spec", "missing: see `autoscaler crd` for its schema"))
        return name, issues
    spec_lines = {key[1:]: line for key, line in lines.items() if key[:1] == ("spec",)}
    if not meta.get("namespace"):
        # `kubectl apply -n NS` gives the namespace; any valid one checks the same.
        data = {**data, "metadata": {**meta, "namespace": "default"}}
    model, fields = _kinds()[kind]
    try:
        model.model_validate(fields(data))
    except ValidationError as exc:
        for issue in issues_from(exc, spec_lines):
            where = "metadata.name" if issue.path == "name" else f"spec.{issue.path}"
            issues.append(ConfigIssue(where, issue.message, issue.line))
    return name, issues


def _read(path: str) -> str | ConfigError:
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            return ConfigError(
                path, [ConfigIssue("(file)", f"larger than {MAX_BYTES // 2**20} MiB")]
            )
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        return ConfigError(path, [ConfigIssue("(file)", f"cannot read: {exc.strerror}")])
    except UnicodeDecodeError:
        return ConfigError(path, [ConfigIssue("(file)", "not UTF-8 text")])


def _peek(text: str, path: str) -> object:
    """The one document's data, or None where it cannot be read (then it is a
    configuration file, and load_config says what is wrong)."""
    try:
        return read_yaml(text, path, {}, [])
    except ConfigError:
        return None


def check_file(path: str, settings_only: bool = False) -> FileResult:
    """One file's verdict: every document in it checked."""
    from .kube.crd import GROUP, KIND

    result = FileResult(path)
    text = _read(path)
    if isinstance(text, ConfigError):
        result.errors.append(text)
        return result
    documents = [(start, doc) for start, doc in _documents(text) if doc.strip("-. \n\t")]
    if len(documents) <= 1 and not _is_object(_peek(text, path)):
        # A plain configuration file: read as `run` reads it (paths relative to it).
        try:
            result.pools = [p.name for p in load_config(path).pools]
        except ConfigError as exc:
            # The settings file of `run --crd-pools` may leave `pools` out.
            if not (settings_only and all(i.path == "pools" for i in exc.issues)):
                result.errors.append(exc)
        return result
    for number, (start, doc) in enumerate(documents, 1):
        source = path if len(documents) == 1 else f"{path} (document {number})"
        lines: dict[Any, int] = {}
        try:
            data = read_yaml(doc, source, lines, [])
            if data is None and len(documents) > 1:
                continue  # a document of comments only
            if not _is_object(data):
                # `run -c` reads one document: a configuration shares its file with none.
                raise ConfigError(source, [ConfigIssue(
                    "(file)", "a configuration must be the only document in its file; put "
                    "it in a file of its own (AutoscalingPool manifests may share one)", 1,
                )])  # fmt: skip
        except ConfigError as exc:
            result.errors.append(_shifted(exc, source, start))
            continue
        kind, api = str(data["kind"]), str(data["apiVersion"])
        ours = _kinds()
        if kind not in ours and not api.startswith(f"{GROUP}/"):
            result.skipped.append(kind + (f" (document {number})" if len(documents) > 1 else ""))
            continue
        if kind not in ours:  # our group, a kind misspelt
            known = " or ".join(ours)
            issue = ConfigIssue("kind", f"{kind!r}: the {GROUP} kinds are {known}",
                                lines.get(("kind",)))  # fmt: skip
            result.errors.append(_shifted(ConfigError(source, [issue]), source, start))
            continue
        name, issues = check_manifest(data, lines)
        if issues:
            result.errors.append(_shifted(ConfigError(source, issues), source, start))
        else:
            (result.pools if kind == KIND else result.triggers).append(name)
    return result


@click.command(name="validate")
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path())
@output_option(what="each file's result")
@click.option(
    "--crd-pools",
    is_flag=True,
    help="configuration files may leave out `pools`: settings for `run --crd-pools`, "
    "whose pools are AutoscalingPool objects",
)
@json_flag_alias()
def validate_cmd(paths: tuple[str, ...], output: str, crd_pools: bool) -> None:
    """Check configuration files and AutoscalingPool manifests (several documents in a file,
    or a folder of *.yaml, *.yml and *.json files); exit 2 listing every error as
    `path: message`."""
    output = chosen_format(output)
    results = [check_file(path, crd_pools) for path in files_in(paths)]
    if output == "table":
        for result in results:
            _print(result)
    else:
        emit([r.to_dict() for r in results], output)
    sys.exit(0 if all(r.ok for r in results) else 2)


def _print(result: FileResult) -> None:
    """A file's verdict: `ok` on standard output, its errors on standard error."""
    for error in result.errors:
        config_errors(error)
    skipped = f"; skipped, not ours: {', '.join(result.skipped)}" if result.skipped else ""
    if result.ok:
        names = f": {', '.join(result.pools)}" if result.pools else ""
        triggers = (
            f"; {len(result.triggers)} trigger(s): {', '.join(result.triggers)}"
            if result.triggers
            else ""
        )
        click.echo(f"{result.file}: ok ({len(result.pools)} pool(s){names}{triggers}){skipped}")
