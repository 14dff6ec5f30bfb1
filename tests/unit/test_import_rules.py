"""Layering: policies stay pure; only the adapters import cloud and cluster clients."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_CORE = {"autoscaler.types", "autoscaler.units", "autoscaler.scaling"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("policies"), ids=lambda p: p.name)
def test_policies_import_only_the_pure_core(path):
    for name in imports_of(path):
        if name.startswith("autoscaler"):
            assert name in PURE_CORE, f"{path.name} imports {name}"
        assert not name.startswith(("boto3", "botocore", "kubernetes", "httpx", "redis"))


@pytest.mark.parametrize("path", [ROOT / "autoscaler" / m for m in
                                  ("types.py", "units.py", "scaling.py", "planner.py")],
                         ids=lambda p: p.name)
def test_the_planner_and_core_types_do_no_io(path):
    banned = ("boto3", "botocore", "kubernetes", "httpx", "redis", "socket", "requests",
              "time", "subprocess", "autoscaler.controller", "autoscaler.observe")
    for name in imports_of(path):
        assert not name.startswith(banned), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", modules("autoscaler"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_aws_adapters_import_boto3_and_only_kube_ones_the_kubernetes_client(path):
    rel = path.relative_to(ROOT).as_posix()
    names = imports_of(path)
    if any(n.startswith(("boto3", "botocore")) for n in names):
        assert rel.startswith(("autoscaler/providers/aws_", "autoscaler/signals/sqs",
                               "autoscaler/signals/cloudwatch", "autoscaler/signals/_aws")), rel
    if any(n.startswith("kubernetes") for n in names):
        assert rel.startswith(("autoscaler/kube/", "autoscaler/providers/kube_",
                               "autoscaler/signals/kube")), rel
