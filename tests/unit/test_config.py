"""Configuration files: the examples load, and bad input gets a clear message with a path."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from autoscaler.config import ConfigError, config_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

GOOD = """installation: {id: test}
pools:
  - name: p
    target: {kind: simulated}
    max: 4
    policy: {type: queue-depth, target_per_replica: 5}
"""


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "<test>", env or {})
    return [str(i) for i in err.value.issues]


def test_there_are_examples_to_check():
    names = {p.name for p in EXAMPLES}
    assert {"llm-serving.yaml", "gpu-batch.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path):
    config = load_config(path, env={})
    assert config.pools


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_matches_the_published_json_schema(path):
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_a_minimal_pool_gets_documented_defaults():
    pool = parse_config(GOOD, env={}).pools[0]
    assert pool.min == 0
    assert pool.effective_behavior.scale_down.stabilization_window == 300.0
    assert pool.effective_behavior.scale_to_zero_after == 300.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("target_per_replica: 0", "pools[0].policy.target_per_replica: must be > 0"),
        ("target_per_replica: -3", "pools[0].policy.target_per_replica: must be > 0"),
        ("target_per_replica: ten", "pools[0].policy.target_per_replica: must be a number"),
        ("target_per_replica: 5, activation: -1", "pools[0].policy.activation: must be >= 0"),
        ("target_per_replica: 5, bogus: 1", "pools[0].policy.bogus: unknown field"),
    ],
)
def test_bad_policy_values_name_the_path(body, expected):
    text = GOOD.replace("target_per_replica: 5", body)
    assert any(i.startswith(expected) for i in issues_of(text)), issues_of(text)


def test_the_second_pool_is_named_by_index():
    text = GOOD + """  - name: q
    target: {kind: simulated}
    max: 4
    policy: {type: queue-depth, target_per_replica: 0}
"""
    assert issues_of(text) == ["pools[1].policy.target_per_replica: must be > 0 (line 10)"]


def test_an_unknown_policy_type_lists_the_known_ones():
    (issue,) = issues_of(GOOD.replace("type: queue-depth", "type: magic"))
    assert issue.startswith("pools[0].policy: unknown type magic; use one of: queue-depth")
    assert "queueing" in issue and "kpa" in issue


def test_min_above_max_is_reported_on_min():
    (issue,) = issues_of(GOOD.replace("max: 4", "min: 6\n    max: 4"))
    assert issue.startswith("pools[0].min: must be <= max (4), got 6")


def test_a_utilization_written_in_percent_units_is_caught():
    text = GOOD.replace("{type: queue-depth, target_per_replica: 5}",
                        "{type: gpu-utilization, target: 70}")
    (issue,) = issues_of(text)
    assert issue.startswith("pools[0].policy.target: 70 is not a fraction")
    assert "'70%'" in issue


def test_a_duration_in_words_is_caught_with_the_accepted_forms():
    text = GOOD + "    behavior: {cooldown: 5 minutes}\n"
    (issue,) = issues_of(text)
    assert issue.startswith("pools[0].behavior.cooldown: '5 minutes' is not a duration")


def test_a_signal_without_a_source_is_an_error():
    text = GOOD.replace("target: {kind: simulated}", "target: {kind: deployment, name: d}")
    text += "    signals:\n      queue: {}\n"
    assert "pools[0].signals.queue.source: required field is missing (line 8)" in issues_of(text)


def test_a_policy_reading_an_undeclared_signal_is_an_error():
    text = GOOD.replace("target: {kind: simulated}", "target: {kind: deployment, name: d}")
    (issue,) = issues_of(text)
    assert issue.startswith("pools[0].policy: policy reads signal 'queue' which this pool")


def test_baselines_refuse_the_generic_behavior_block():
    text = GOOD.replace(
        "{type: queue-depth, target_per_replica: 5}",
        "{type: hpa, metrics: [{signal: queue, target_average_value: 5}]}",
    ) + "    behavior: {cooldown: 10}\n"
    (issue,) = issues_of(text)
    assert issue.startswith("pools[0].behavior: the hpa policy applies its own")


def test_duplicate_pool_names_point_at_the_second():
    text = GOOD + GOOD.split("pools:\n", 1)[1]
    (issue,) = issues_of(text)
    assert issue.startswith("pools[1].name: pool name 'p' is already used by pools[0]")


def test_duplicate_yaml_keys_are_not_silently_merged():
    text = GOOD.replace("max: 4", "max: 4\n    max: 8")
    assert "pools[0].max: duplicate key (line 6)" in issues_of(text)


def test_every_error_is_listed_not_just_the_first():
    text = GOOD.replace("max: 4", "max: 0").replace("target_per_replica: 5",
                                                      "target_per_replica: -1")
    assert len(issues_of(text)) == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("pools: [", "invalid YAML"), ("", "the file is empty"), ("- 1\n- 2", "must be a mapping"),
     ("pools: []", "pools: must have at least 1 item")],
)
def test_broken_files_get_one_clear_message(text, fragment):
    assert any(fragment in i for i in issues_of(text))


def test_environment_variables_are_interpolated_with_defaults():
    text = GOOD.replace("name: p", "name: ${POOL_NAME}").replace(
        "target: {kind: simulated}", "target: {kind: deployment, name: '${DEP:-vllm}'}")
    text += "    signals: {queue: {source: {type: static, value: 1}}}\n"
    config = parse_config(text, env={"POOL_NAME": "chat"})
    assert config.pools[0].name == "chat"
    assert config.pools[0].target.name == "vllm"


def test_an_unset_environment_variable_is_reported_with_its_path():
    text = GOOD.replace("name: p", "name: ${POOL_NAME}")
    assert issues_of(text)[0].startswith(
        "pools[0].name: environment variable POOL_NAME is not set")


def test_a_double_dollar_escapes_interpolation():
    text = GOOD.replace("target: {kind: simulated}", "target: {kind: deployment, name: d}").replace(
        "{type: queue-depth, target_per_replica: 5}",
        "{type: queue-depth, target_per_replica: 5}\n    signals: "
        "{queue: {source: {type: prometheus, url: 'http://p:9090', query: 'a$${b}'}}}")
    assert parse_config(text, env={}).pools[0].signals["queue"].source.query == "a${b}"


def test_a_missing_file_is_a_config_error_not_a_traceback(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_the_schema_is_json_and_names_every_policy():
    text = json.dumps(config_schema())
    for name in ("queue-depth", "gpu-utilization", "composite", "queueing", "hpa", "keda",
                 "kpa"):
        assert f'"{name}"' in text


@pytest.mark.parametrize("bad", ["team-", "team.", "-team", "x" * 64])
def test_an_installation_id_must_be_a_valid_label_value(bad):
    """It becomes the owner label's value on Kubernetes objects (and a tag on AWS)."""
    text = yaml.safe_dump({"installation": {"id": bad}, "pools": [{
        "name": "p", "max": 2, "target": {"kind": "simulated"},
        "signals": {"queue": {"source": {"type": "static", "value": 1}}},
        "policy": {"type": "queue-depth", "target_per_replica": 1}}]})  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert any(issue.path == "installation.id" for issue in info.value.issues), info.value


def test_a_sixty_three_character_installation_id_is_fine():
    """The longest label value is accepted (no ConfigError)."""
    parse_config(yaml.safe_dump({"installation": {"id": "a" * 63}, "pools": [{
        "name": "p", "max": 2, "target": {"kind": "simulated"},
        "signals": {"queue": {"source": {"type": "static", "value": 1}}},
        "policy": {"type": "queue-depth", "target_per_replica": 1}}]}))  # fmt: skip
