"""Configuration files: a mutated example either validates or is refused with exit 2, the
file named and every issue with its path (and its line, where the issue is about a node of
the file), in plain words; never a traceback or a hang. AutoscalingPool specs alike; a
mutated configuration that validates also simulates (or is refused) cleanly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from autoscaler.config import ConfigError, load_config
from autoscaler.config.loader import ConfigIssue, read_yaml
from autoscaler.kube.pools import parse_pool
from autoscaler.pool_sources import PoolProblem
from tests.unit.test_config_bounds import GOOD, NODES, with_ec2

from .harness import (
    assert_clean,
    error_lines,
    fuzz_settings,
    invoke,
    mutated_bytes,
    mutated_tree,
    time_limit,
)

ROOT = Path(__file__).resolve().parents[2]
BASES: dict[str, str] = {
    **{p.name: p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))},
    "good": GOOD,
    "good-ec2": with_ec2(GOOD),
    "good-nodes": GOOD + NODES,
}
PARSED = {name: yaml.safe_load(text) for name, text in BASES.items()}
TINY_TRACE = b"timestamp,service_seconds\n0,1\n5,2\n12,1\n"

# Messages about the whole file, with no node to point at.
WHOLE_FILE = ("the file is empty", "the top level must be a mapping", "not UTF-8 text",
              "cannot read", "larger than", "nested too deeply")  # fmt: skip


# -- text-level YAML edits ------------------------------------------------------------------
_KEY_LINE = re.compile(r"^(\s*-?\s*)([A-Za-z_][\w.-]*):(\s.*)?$")


@st.composite
def yaml_edit(draw: st.DrawFn, text: str) -> str:
    """One YAML-specific edit of `text`: an anchor on one key and an alias (or a merge of
    it, or an alias to nothing) at another, a key written twice, a key that is no text (a
    boolean, null, a number, a list), or a value replaced by a flow collection or a tag."""
    lines = text.split("\n")
    keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    if not keyed:
        return text
    i = draw(st.sampled_from(keyed))
    j = draw(st.sampled_from(keyed))
    indent_i, key_i, rest_i = _KEY_LINE.match(lines[i]).groups()  # type: ignore[union-attr]
    indent_j, key_j, _ = _KEY_LINE.match(lines[j]).groups()  # type: ignore[union-attr]
    pad_j = " " * len(indent_j)
    op = draw(st.sampled_from(["alias", "merge", "dangling", "twice", "flow", "tag", "key"]))
    if op in ("alias", "merge"):
        lines[i] = f"{indent_i}{key_i}: &fz{(rest_i or '').rstrip()}"
        if op == "alias":
            lines[j] = f"{indent_j}{key_j}: *fz"
        else:
            lines.insert(j + 1, f"{pad_j}<<: *fz")
    elif op == "dangling":
        lines[j] = f"{indent_j}{key_j}: *nowhere"
    elif op == "twice":
        lines.insert(j + 1, f"{pad_j}{key_j}: {draw(st.sampled_from(['1', 'x', '[]', '{}']))}")
    elif op == "key":  # a key YAML reads as no text, or a complex one
        key = draw(st.sampled_from(["false", "~", "1.5", "0x10", "? [a]\n" + pad_j, "[a, b]",
                                    "{a: 1}", "!!int x", "? {a: 1}\n" + pad_j]))  # fmt: skip
        lines.insert(j + 1, f"{pad_j}{key}: 1")
    elif op == "flow":
        lines[j] = f"{indent_j}{key_j}: " + draw(
            st.sampled_from(["[", "{a: [1, {b: }", "[1, 2", "{}", "[]", "{? a}", "!!set {a}"])
        )
    else:
        tag = draw(st.sampled_from(["!!str", "!!int", "!!float", "!!binary", "!!timestamp",
                                    "!!python/name:os.system", "!custom", "!!map"]))  # fmt: skip
        lines[j] = f"{indent_j}{key_j}: {tag} {draw(st.sampled_from(['1', 'x', '2024-01-01']))}"
    return "\n".join(lines)


def _render(draw: st.DrawFn, doc: Any) -> str:
    if draw(st.booleans()):
        return json.dumps(doc, allow_nan=True)  # a JSON file is YAML too
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans()), width=4096)


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """A shipped or test configuration with a few edits to its tree, its YAML or its bytes."""
    name = draw(st.sampled_from(sorted(BASES)))
    how = draw(st.sampled_from(["tree", "tree", "yaml", "bytes", "tree+bytes"]))
    if how == "yaml":
        return draw(yaml_edit(BASES[name])).encode()
    text = BASES[name]
    if how.startswith("tree"):
        text = _render(draw, draw(mutated_tree(PARSED[name])))
    data = text.encode()
    if how.endswith("bytes") or how == "bytes":
        data = draw(mutated_bytes(data))
    return data


# -- the property ---------------------------------------------------------------------------
def _top_keys(text: str) -> set[str]:
    """The top-level keys the file has (as the loader reads it), for which issues must
    name a line."""
    lines: dict[Any, int] = {}
    try:
        read_yaml(text, "<fuzz>", lines, [])
    except ConfigError:
        return set()
    return {path[0] for path in lines if len(path) == 1 and isinstance(path[0], str)}


def _head(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def check_issue(issue: ConfigIssue, text: str, top: set[str]) -> None:
    shown = str(issue)
    assert issue.path and issue.message, issue
    assert "pydantic" not in shown.lower(), shown
    lines = max(1, len(text.splitlines()) + 1)
    if issue.line is not None:
        assert 1 <= issue.line <= lines, (issue, lines)
        return
    if issue.path == "(file)":
        assert any(w in issue.message for w in WHOLE_FILE), f"no line for {shown!r}"
    else:  # a field of a node that is in the file: its line (or its parent's) is known
        assert _head(issue.path) not in top, f"no line for {shown!r}"


def check_config(data: bytes, folder: Path) -> None:
    path = folder / "config.yaml"
    path.write_bytes(data)
    text = data.decode("utf-8", "replace")
    with time_limit():
        try:
            load_config(path)
            loaded = None
        except ConfigError as exc:
            loaded = exc
    if loaded is not None:
        assert loaded.source == str(path) and loaded.issues, loaded
        top = _top_keys(text)
        for issue in loaded.issues:
            check_issue(issue, text, top)
    result = invoke("validate", str(path))
    assert_clean(result)
    if loaded is None:
        assert result.exit_code == 0 and result.stdout.startswith(f"{path}: ok"), result.output
        return
    assert result.exit_code == 2, result.output
    shown = result.stderr.rstrip("\n").split("\n")  # one line per issue, whatever the keys hold
    assert shown[0] == f"{path}: {len(loaded.issues)} error(s)", result.stderr
    assert shown[1:] == [f"  {issue}" for issue in loaded.issues], result.stderr


CONFIG_EXAMPLES = [
    b"",
    b"\xef\xbb\xbf" + GOOD.encode(),
    GOOD.replace("id: test", "id: ${FUZZ_UNSET_VARIABLE}").encode(),
    GOOD.replace("max: 4", "max: &fz 4\n    min: *fz").encode(),
    GOOD.replace("cooldown: 30s", "cooldown: 1e400s").encode(),
    GOOD.replace("max: 4", "max: 4\n    max: 5").encode(),
    GOOD.encode()[:100],
    b"pools: [" * 60,
    # found by this fuzzer (each a traceback before its fix):
    GOOD.replace("id: test", "id: !!int x").encode(),  # PyYAML's ValueError
    GOOD.replace("id: test", "id: !!bool maybe").encode(),  # PyYAML's KeyError
    GOOD.replace("id: test", "id: !!timestamp 2024-13-45").encode(),
    b"\x00" + GOOD.encode(),  # PyYAML's ReaderError, raised before the reader's try
    (GOOD + "~: ${FUZZ_UNSET_VARIABLE}\n").encode(),  # a null key in the issue's path
    GOOD.replace(
        "kind: simulated", "kind: job\n      template: {apiVersion: 1" + "0" * 400 + "}"
    ).encode(),  # OverflowError checking an int of 400 digits
    GOOD.replace("id: test", 'id: test\n  "a\\rb": 1').encode(),  # a line break in a key
    (GOOD + "? [a]\n: 1\n").encode(),  # a complex key: TypeError (unhashable)
    (GOOD + "false: null\n1.5: 2\n").encode(),  # keys YAML reads as no text: now with a line
    # an int no float holds: OverflowError from a duration, a share and a price
    GOOD.replace("interval: 15s", "interval: 1" + "0" * 400).encode(),
    GOOD.replace("cost_per_hour: 0.805", "cost_per_hour: 1" + "0" * 400).encode(),
    GOOD.replace(
        "type: queue-depth\n      target_per_replica: 5",
        "type: gpu-utilization\n      target: 1" + "0" * 400,
    ).encode(),
    GOOD.replace("id: test", "id: test\n  null:\n  - - ${A}").encode(),  # unset, below a null key
]


@fuzz_settings(350)
@given(data=config_files())
@example(data=CONFIG_EXAMPLES[0])
@example(data=CONFIG_EXAMPLES[1])
@example(data=CONFIG_EXAMPLES[2])
@example(data=CONFIG_EXAMPLES[3])
@example(data=CONFIG_EXAMPLES[4])
@example(data=CONFIG_EXAMPLES[5])
@example(data=CONFIG_EXAMPLES[6])
@example(data=CONFIG_EXAMPLES[7])
@example(data=CONFIG_EXAMPLES[8])
@example(data=CONFIG_EXAMPLES[9])
@example(data=CONFIG_EXAMPLES[10])
@example(data=CONFIG_EXAMPLES[11])
@example(data=CONFIG_EXAMPLES[12])
@example(data=CONFIG_EXAMPLES[13])
@example(data=CONFIG_EXAMPLES[14])
@example(data=CONFIG_EXAMPLES[15])
@example(data=CONFIG_EXAMPLES[16])
@example(data=CONFIG_EXAMPLES[17])
@example(data=CONFIG_EXAMPLES[18])
@example(data=CONFIG_EXAMPLES[19])
@example(data=CONFIG_EXAMPLES[20])
def test_a_mutated_configuration_validates_or_is_refused_naming_file_path_and_line(
    data, tmp_path_factory
):
    check_config(data, tmp_path_factory.mktemp("config"))


# -- AutoscalingPool objects ----------------------------------------------------------------
def _objects() -> dict[str, dict[str, Any]]:
    out = {}
    for file in sorted((ROOT / "k8s" / "examples").glob("*.yaml")):
        for i, obj in enumerate(yaml.safe_load_all(file.read_text())):
            if isinstance(obj, dict) and obj.get("kind") == "AutoscalingPool":
                out[f"{file.name}#{i}"] = obj
    return out


OBJECTS = _objects()


@st.composite
def pool_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = dict(OBJECTS[draw(st.sampled_from(sorted(OBJECTS)))])
    obj["metadata"] = {**obj.get("metadata", {}), "namespace": "fuzz"}
    obj["spec"] = draw(mutated_tree(obj["spec"]))
    return obj


@pytest.mark.skipif(not OBJECTS, reason="no AutoscalingPool examples")
@fuzz_settings(300)
@given(obj=pool_objects())
@example(obj={"metadata": {"name": "p", "namespace": "ns"}, "spec": {"target": {"kind": []}}})
@example(
    obj={
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "target": {"kind": "job", "template": {"apiVersion": 10**400}},
            "max": 2,
            "policy": {"type": "queue-depth", "target_per_replica": 3},
        },
    }
)
def test_a_mutated_autoscalingpool_spec_is_a_pool_or_a_problem(obj):
    with time_limit():
        parsed = parse_pool(obj)
    if isinstance(parsed, PoolProblem):
        assert parsed.issues
        for issue in parsed.issues:
            shown = str(issue)
            assert issue.path and "pydantic" not in shown.lower(), shown


# -- a configuration that validates also simulates ------------------------------------------
SIMULATED = "simulated.yaml"


@st.composite
def simulated_configs(draw: st.DrawFn) -> bytes:
    doc = draw(mutated_tree(PARSED[SIMULATED], most=2))
    return yaml.safe_dump(doc, sort_keys=False, width=4096).encode()


@pytest.mark.skipif(SIMULATED not in BASES, reason="no examples/simulated.yaml")
@fuzz_settings(200)
@given(data=simulated_configs(), baselines=st.booleans())
def test_a_mutated_configuration_that_validates_simulates_or_is_refused(
    data, baselines, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("sim")
    config = folder / "config.yaml"
    config.write_bytes(data)
    trace = folder / "trace.csv"
    trace.write_bytes(TINY_TRACE)
    try:
        load_config(config)
    except ConfigError:
        return  # the first test checks refusals
    # An hour's tick, the trace once at its own speed: long replays are out of scope here.
    args = ["--tick", "1h", "--repeat", "1", "--speedup", "1"]
    if not baselines:
        args += ["--compare", "none"]
    result = invoke("simulate", str(config), "--trace", str(trace), *args)
    assert_clean(result)
    if result.exit_code == 2:
        assert error_lines(result)[-1].startswith("error: "), result.output
