"""The configuration reference (docs/config-reference.md) covers the whole config: every
model reachable from the file gets a section, every field a description, every link a
target. tests/unit/test_docs.py holds the file to the generator's output."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel, Field

from autoscaler.config import load_config
from autoscaler.sim.run import load_trace

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "scripts" / "gen_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
TEXT = GEN.render()


def sections(text: str) -> set[str]:
    """The anchors of the text's `### Name` headings."""
    return {name.lower() for name in re.findall(r"^### (\w+)$", text, re.M)}


def dangling(text: str) -> list[str]:
    """Links to a section the text lacks, links to a docs file that does not exist, and
    any "see below" (the reference links instead)."""
    anchors = sections(text)
    found = [f"#{a}" for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in anchors]
    found += [f for f in re.findall(r"\]\(([\w.-]+\.md)\)", text) if not (DOCS / f).is_file()]
    found += re.findall(r"see below", text, re.I)
    return found


def test_every_field_of_every_config_model_has_a_description():
    missing = GEN.missing_descriptions()
    assert not missing, (
        f"{len(missing)} config field(s) have no description (write `description=` in the "
        f"model: a sentence saying what it means, units, default behaviour): {missing}"
    )


def test_every_model_reachable_from_the_config_has_a_section():
    models = GEN.reachable()
    names = [m.__name__ for m in models]
    assert len(set(names)) == len(names), "two config models share a name (and an anchor)"
    assert {n.lower() for n in names} <= sections(TEXT)
    # the ones the issue found referenced with no section, and one from each area
    for name in ("HpaMetric", "KedaTrigger", "HpaScalingRules", "KedaFallback",
                 "InstanceTypeOption", "AwsRetry", "NodeProvisioning", "NodeTaint",
                 "KeepAlive", "Trace", "Budget", "Interruptions"):  # fmt: skip
        assert name in names, name


def test_every_link_in_the_reference_has_a_target_and_nothing_says_see_below():
    assert "](#" in TEXT
    assert dangling(TEXT) == []


def test_the_link_checks_find_what_they_look_for():
    bad = "### Pool\n\n| `x` | [Gone](#gone) | see below | [docs/none.md](none.md) |\n"
    assert dangling(bad) == ["#gone", "none.md", "see below"]

    class Undescribed(BaseModel):
        told: int = Field(1, description="a number")
        untold: int = 2

    assert GEN.missing_descriptions([Undescribed]) == [f"Undescribed.untold ({__name__})"]


def test_a_referenced_model_is_a_link_to_its_section():
    row = next(line for line in TEXT.splitlines() if line.startswith("| `retry` |"))
    assert "[AwsRetry](#awsretry)" in row
    assert (
        "(see below)" not in TEXT and "[ControllerSettings](#controllersettings)'s defaults" in TEXT
    )


def test_every_section_opens_with_its_models_docstring_dedented_onto_one_line():
    for model in GEN.reachable():
        text = GEN.summary(model)
        assert text, f"{model.__name__} ({model.__module__}) has no docstring"
        assert "  " not in text and "\n" not in text, model.__name__
    assert GEN.summary(GEN.reachable()[0]) == "A whole configuration file."
    # LlmService's first paragraph spans two lines, the second indented in the source
    assert "sequences; a request holds one slot for input_tokens / prefill_tokens_per_s" in TEXT


def test_the_trace_path_is_relative_to_the_config_files_folder(tmp_path, monkeypatch):
    description = TEXT.split("### Trace\n", 1)[1].split("| `path` |", 1)[1].split("\n", 1)[0]
    assert "relative to the folder of the config file" in description
    # and it is: the file is found from another working directory
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "t.csv").write_text("timestamp,service_seconds\n0,5\n1,5\n")
    (folder / "pool.yaml").write_text(
        "installation: {id: t}\npools:\n  - name: p\n    target: {kind: simulated}\n"
        "    max: 4\n    policy: {type: queue-depth, signal: queue, target_per_replica: 1}\n"
        "    simulation:\n      service: {type: gpu-batch, gpus_per_node: 1}\n"
        "      cost_per_hour: 1\n      wait_slo: 1s\n      trace: {path: t.csv}\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(str(folder / "pool.yaml"))
    assert len(load_trace(config.pools[0], None, None, None, None, config)) == 2


@pytest.mark.parametrize("section", ["## Pool", "## Simulation (`simulation`)", "## Triggers"])
def test_sections_are_titled_by_area(section):
    assert f"\n{section}" in TEXT
