"""The import contracts in pyproject.toml (checked by `make lint`) hold on this tree, and
they do catch a broken layer: the same check on a copy with one upward import fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("autoscaler", "policies"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_import_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_controller_that_imports_the_process_loop_breaks_the_layers(tmp_path):
    tree = copy_tree(tmp_path)
    controller = tree / "autoscaler" / "controller.py"
    controller.write_text(controller.read_text() + "\nfrom . import process  # noqa\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "autoscaler.controller is not allowed to import autoscaler.process" in result.stdout


def test_a_policy_that_imports_boto3_breaks_the_purity_contract(tmp_path):
    tree = copy_tree(tmp_path)
    policy = tree / "policies" / "queue_depth.py"
    policy.write_text(policy.read_text() + "\nimport boto3  # noqa\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "Policies are pure" in result.stdout and "BROKEN" in result.stdout


def test_a_provider_that_imports_a_signal_source_breaks_adapter_independence(tmp_path):
    tree = copy_tree(tmp_path)
    provider = tree / "autoscaler" / "providers" / "aws_asg.py"
    provider.write_text(provider.read_text() + "\nimport autoscaler.signals.sqs  # noqa\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "autoscaler.providers is not allowed to import autoscaler.signals" in result.stdout
