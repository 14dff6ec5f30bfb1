"""The AutoscalingPool CRD generated from the Pool model: structural, and the CLI prints it."""

from __future__ import annotations

from typing import Any

import yaml
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import Pool
from autoscaler.kube import crd


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return out


def _root() -> dict[str, Any]:
    return crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_schema_node_is_structural():
    for path, node in _nodes(_root()):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "$defs", "const"} & set(node), path
        typed = "type" in node or node.get("x-kubernetes-preserve-unknown-fields")
        assert typed, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert bound not in node or isinstance(node[bound], bool), path


def test_the_spec_is_a_pool_without_its_name():
    spec = _root()["properties"]["spec"]
    pool_fields = set(Pool.model_fields) - {"name"}
    assert set(spec["properties"]) == pool_fields
    assert set(spec["required"]) == {"target", "max", "policy"}
    assert spec["properties"]["max"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10000,
        "description": "most replicas",
    }
    kinds = spec["properties"]["target"]["properties"]["kind"]["enum"]
    assert {"deployment", "statefulset", "simulated", "ec2"} <= set(kinds)
    assert spec["x-kubernetes-validations"][0]["rule"].endswith("self.min <= self.max")


def test_objects_that_forbid_extra_fields_keep_them_for_pydantic_to_name():
    spec = _root()["properties"]["spec"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["behavior"]["x-kubernetes-preserve-unknown-fields"] is True


def test_the_status_has_the_decision_signals_and_conditions():
    root = _root()
    status = root["properties"]["status"]["properties"]
    assert {"current", "desired", "reason", "signals", "conditions", "lastDecisionTime"} <= set(
        status
    )
    version = crd.crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd.crd()["spec"]["scope"] == "Namespaced"


def test_autoscaler_crd_prints_the_yaml_that_crd_yaml_returns(tmp_path):
    result = CliRunner().invoke(cli, ["crd"])
    assert result.exit_code == 0, result.output
    assert result.output == crd.crd_yaml()
    assert yaml.safe_load(result.output)["metadata"]["name"] == crd.CRD_NAME
    out = tmp_path / "crd.yaml"
    assert CliRunner().invoke(cli, ["crd", "-o", str(out)]).exit_code == 0
    assert out.read_text() == crd.crd_yaml()
