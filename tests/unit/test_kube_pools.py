"""Pools from AutoscalingPool objects and the file: validation per object, names, settings."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.config import ConfigError
from autoscaler.config.file_settings import FileSettings, load_settings
from autoscaler.kube.pools import combine, parse_pool
from autoscaler.pool_sources import PoolRef
from tests.unit.conftest import config_from


def obj(name: str, spec: dict[str, Any], namespace: str = "ns", generation: int = 1) -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "generation": generation, "uid": "u"},
        "spec": spec,
    }


GOOD = {
    "target": {"kind": "deployment", "name": "web"},
    "max": 4,
    "signals": {"queue": {"source": {"type": "static", "value": 10}}},
    "policy": {"type": "queue-depth", "target_per_replica": 5},
}


def test_an_object_becomes_a_pool_named_after_it_in_its_namespace():
    pool = parse_pool(obj("chat", GOOD, namespace="serving"))
    assert not isinstance(pool, Exception) and hasattr(pool, "target")
    assert pool.name == "chat"
    assert pool.target.kind == "deployment"
    assert pool.target.namespace == "serving"  # type: ignore[union-attr]


def test_a_bad_object_is_left_out_with_its_spec_paths_and_the_others_still_run():
    bad = {**GOOD, "max": 0, "mxa": 3}
    loaded = combine(FileSettings(), [obj("bad", bad), obj("good", GOOD)])
    assert loaded.config is not None
    assert [p.name for p in loaded.config.pools] == ["good"]
    assert loaded.refs == {"good": PoolRef("ns", "good", 1, "u")}
    [problem] = loaded.problems
    assert problem.ref.name == "bad"
    assert "spec.max:" in problem.message
    assert "spec.mxa:" in problem.message


def test_an_invalid_object_name_is_reported_as_metadata_name():
    [problem] = combine(FileSettings(), [obj("Bad_Name_", GOOD)]).problems
    assert problem.message.startswith("metadata.name:")


def test_a_name_taken_by_the_file_keeps_the_file_pool():
    file = FileSettings.of(
        config_from("""
            installation: {id: prod}
            pools:
              - name: chat
                target: {kind: simulated}
                max: 3
                policy: {type: queue-depth, target_per_replica: 5}
                signals: {queue: {source: {type: static, value: 1}}}
        """)
    )
    loaded = combine(file, [obj("chat", GOOD), obj("other", GOOD)])
    assert loaded.config is not None
    assert loaded.config.installation.id == "prod"
    assert [p.target.kind for p in loaded.config.pools] == ["simulated", "deployment"]
    assert "already used by the configuration file" in loaded.problems[0].message


def test_no_pools_at_all_gives_no_config():
    assert combine(FileSettings(), []).config is None


def test_a_settings_only_file_is_fine_with_crd_pools_and_an_error_without(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("installation: {id: prod}\ncontroller: {interval: 2s}\n")
    settings = load_settings(str(path), pools_optional=True)
    assert settings.installation.id == "prod"
    assert settings.controller.interval == 2.0
    assert settings.pools == ()
    with pytest.raises(ConfigError):
        load_settings(str(path), pools_optional=False)
    path.write_text("installation: {id: 'bad id'}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(str(path), pools_optional=True)
    assert any(i.path == "installation.id" for i in err.value.issues)
