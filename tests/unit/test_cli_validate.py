"""`autoscaler validate` on AutoscalingPool manifests, files of several documents and
folders: each file's result, exit 2 if any fails, errors naming file, field and line."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import yaml
from click.testing import CliRunner

from autoscaler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LLM = ROOT / "examples" / "llm-serving.yaml"
MANIFEST = ROOT / "k8s" / "examples" / "llm-chat.yaml"

POOL = """\
    apiVersion: autoscaling.elastic-autoscaler.io/v1alpha1
    kind: {kind}
    metadata: {{name: {name}}}
    spec:
      target: {{kind: simulated}}
      max: 4
      signals: {{queue: {{source: {{type: static, value: 1}}}}}}
      policy: {{type: queue-depth, target_per_replica: {per_replica}}}
    """


def pool(name: str, per_replica: int = 10, kind: str = "AutoscalingPool") -> str:
    return textwrap.dedent(POOL.format(name=name, per_replica=per_replica, kind=kind))


def invoke(*args: str):
    return CliRunner().invoke(cli, ["validate", *args], catch_exceptions=False)


def test_an_autoscalingpool_manifest_is_validated_as_the_controller_reads_it():
    result = invoke(str(MANIFEST))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{MANIFEST}: ok (1 pool(s): llm-chat)\n"


def test_every_shipped_manifest_and_the_example_overlay_validate():
    result = invoke("--crd-pools", str(ROOT / "k8s"), "-o", "json")
    assert result.exit_code == 0, result.output
    files = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert files["gpu-batch-jobs.yaml"]["pools"] == ["finetune-runners"]
    assert files["deployment.yaml"]["skipped"] == ["Deployment"]  # not ours: said, not failed
    assert files["config.yaml"]["ok"]  # settings for `run --crd-pools`: pools from objects


def test_a_settings_file_without_pools_needs_crd_pools():
    overlay = str(ROOT / "k8s" / "overlays" / "example" / "config.yaml")
    result = invoke(overlay)
    assert result.exit_code == 2
    assert "pools: required field is missing" in result.stderr
    assert "validate --crd-pools" in result.stderr  # says what to do
    assert invoke("--crd-pools", overlay).exit_code == 0


def test_a_bad_manifest_names_the_field_and_its_line_in_the_file(tmp_path):
    text = "# a comment line first\n" + pool("a") + "---\n" + pool("b", per_replica=-1)
    path = tmp_path / "two.yaml"
    path.write_text(text)
    result = invoke(str(path))
    assert result.exit_code == 2
    assert f"{path} (document 2): 1 error(s)" in result.stderr
    line = text.splitlines().index("  policy: {type: queue-depth, target_per_replica: -1}") + 1
    assert f"spec.policy.target_per_replica: must be > 0 (line {line})" in result.stderr
    assert result.stdout == ""  # no `ok` for a failed file


def test_a_misspelt_kind_of_our_group_is_an_error_not_skipped(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(pool("p", kind="AutoScalingPool"))
    result = invoke(str(path))
    assert result.exit_code == 2
    assert (
        "kind: 'AutoScalingPool': the autoscaling.elastic-autoscaler.io kinds are "
        "AutoscalingPool or AutoscalingTrigger (line 2)"
    ) in result.stderr


def test_a_folder_reports_each_file_and_fails_on_a_bad_one(tmp_path):
    shutil.copy(LLM, tmp_path / "config.yaml")
    (tmp_path / "pools").mkdir()
    (tmp_path / "pools" / "many.yml").write_text(
        pool("a") + "---\n# only a comment\n---\n" + pool("b") + "---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
    )
    (tmp_path / "pools" / "broken.json").write_text('{"pools": [{"name": "x"}]}')
    (tmp_path / "notes.txt").write_text("not a configuration")  # not looked at
    result = invoke(str(tmp_path), "-o", "json")
    assert result.exit_code == 2
    by_name = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert set(by_name) == {"config.yaml", "many.yml", "broken.json"}
    assert by_name["config.yaml"] == {
        "file": str(tmp_path / "config.yaml"), "ok": True, "pools": ["llm-chat"]
    }  # fmt: skip
    assert by_name["many.yml"]["pools"] == ["a", "b"]
    assert by_name["many.yml"]["skipped"] == ["Deployment (document 4)"]
    assert not by_name["broken.json"]["ok"]
    assert {e["path"] for e in by_name["broken.json"]["errors"]} >= {"pools[0].target"}
    table = invoke(str(tmp_path))
    assert table.exit_code == 2
    assert f"{tmp_path / 'pools' / 'many.yml'}: ok (2 pool(s): a, b)" in table.stdout
    assert f"{tmp_path / 'pools' / 'broken.json'}: " in table.stderr


def test_a_folder_without_configuration_files_is_one_clear_error(tmp_path):
    (tmp_path / "readme.md").write_text("#")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: validate: folder {str(tmp_path)!r} holds no .yaml, .yml, .json file"
    )
    assert "Traceback" not in result.output


def test_a_configuration_sharing_its_file_with_another_document_is_refused(tmp_path):
    # `run -c` reads one document: validate must not pass what run would refuse.
    path = tmp_path / "two.yaml"
    path.write_text(LLM.read_text() + "\n---\n" + pool("extra"))
    result = invoke(str(path))
    assert result.exit_code == 2
    assert f"{path} (document 1): 1 error(s)" in result.stderr
    assert "a configuration must be the only document in its file" in result.stderr
    assert CliRunner().invoke(cli, ["run", "-c", str(path), "--once"]).exit_code == 2


def test_a_json_manifest_is_recognised(tmp_path):
    path = tmp_path / "p.json"
    data = yaml.safe_load(pool("p"))
    path.write_text(json.dumps(data))
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (1 pool(s): p)\n"


def test_an_autoscalingtrigger_manifest_is_validated_as_the_controller_parses_it(tmp_path):
    triggers = yaml.safe_load((ROOT / "examples" / "triggers.yaml").read_text())["triggers"]
    spec = next(t for t in triggers if t["name"] == "labelled-rows")
    spec = {k: v for k, v in spec.items() if k != "name"}
    spec["condition"]["source"]["url"] = "redis://redis:6379/0"  # objects: no ${VAR}
    good = {
        "apiVersion": "autoscaling.elastic-autoscaler.io/v1alpha1",
        "kind": "AutoscalingTrigger",
        "metadata": {"name": "labelled-rows"},
        "spec": spec,
    }
    bad = {**good, "metadata": {"name": "t"}, "spec": {**spec, "cooldown": "soon"}}
    path = tmp_path / "triggers.yaml"
    path.write_text(yaml.safe_dump(good) + "---\n" + yaml.safe_dump(bad))
    result = invoke(str(path), "-o", "json")
    assert result.exit_code == 2
    (report,) = json.loads(result.stdout)
    (error,) = report["errors"]
    assert error["source"] == f"{path} (document 2)"
    assert error["path"] == "spec.cooldown" and error["line"] is not None
    path.write_text(yaml.safe_dump(good))
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (0 pool(s); 1 trigger(s): labelled-rows)\n"
