"""Every bad value is refused at load time with its path, its line and a plain message;
every realistic one still loads (issue #19: "every bad input refused cleanly").

Each bad case edits one line of a valid file and expects exactly one issue, on that line.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from autoscaler.config import ConfigError, config_schema, parse_config
from autoscaler.config.file_settings import load_settings
from autoscaler.config.formats import did_you_mean
from autoscaler.kube.crd import crd
from autoscaler.kube.pools import parse_pool
from autoscaler.pool_sources import PoolProblem

GOOD = """\
installation:
  id: test
controller:
  interval: 15s
pools:
  - name: chat
    target:
      kind: simulated
    min: 0
    max: 4
    policy:
      type: queue-depth
      target_per_replica: 5
    signals:
      queue:
        source: {type: static, value: 1}
    behavior:
      cooldown: 30s
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 3000,
                decode_tokens_per_s: 20}
      cost_per_hour: 0.805
      gpus_per_replica: 1
      wait_slo: 2s
"""

EC2 = """\
    target:
      kind: ec2
      region: us-east-1
      launch_template: gpu-worker
      instance_types: [g5.xlarge]
      subnets: [subnet-0123abcd]
      security_groups: [sg-0123abcd]
      api: run-instances
"""

NODES = """\
nodes:
  region: us-east-1
  image_id: ami-0123456789abcdef0
  instance_types: [g6.xlarge]
  subnets: [subnet-0123456789abcdef0]
  labels: {gpu-pool: llm}
  taints: [{key: nvidia.com/gpu, value: present}]
  namespaces: [llm]
"""

PACKING = """\
    policy:
      type: packing
      units_per_replica: 8
"""

BIG = str(2**63)


def with_ec2(text: str) -> str:
    return text.replace("    target:\n      kind: simulated\n", EC2)


def edited(old: str, new: str, base: str = GOOD) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    (number,) = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    return number


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "<test>", {})
    shown = str(info.value)
    assert "pydantic" not in shown and "https://" not in shown, shown
    return info.value


# (old, new, path, message fragment); the issue is expected on the line holding `new`.
BAD: list[tuple[str, str, str, str]] = [
    # replicas: whole numbers, 0..10000, never a boolean
    ("max: 4", f"max: {BIG}", "pools[0].max", "must be <= 10000"),
    ("max: 4", "max: 1.0e+30", "pools[0].max", "must be <= 10000"),
    ("max: 4", "max: 1e30", "pools[0].max", "must be a whole number"),
    ("max: 4", "max: true", "pools[0].max", "must be a whole number, not true"),
    ("max: 4", "max: 4.5", "pools[0].max", "must be a whole number, got 4.5"),
    ("max: 4", "max: .inf", "pools[0].max", "finite"),
    ("max: 4", "max: '-0'", "pools[0].max", "must be a whole number, got '-0'"),
    ("max: 4", "max: 10001", "pools[0].max", "must be <= 10000"),
    ("min: 0", "min: 6", "pools[0].min", "must be <= max (4), got 6"),
    ("min: 0", "min: false", "pools[0].min", "not false"),
    # simulation: GPUs 1..64, a finite cost, a wait SLO of at most a day
    ("gpus_per_replica: 1", f"gpus_per_replica: {BIG}", "pools[0].simulation.gpus_per_replica",
     "must be <= 64"),
    ("gpus_per_replica: 1", "gpus_per_replica: 1.0e+30", "pools[0].simulation.gpus_per_replica",
     "must be <= 64"),
    ("gpus_per_replica: 1", "gpus_per_replica: '-0'", "pools[0].simulation.gpus_per_replica",
     "whole number"),
    ("gpus_per_replica: 1", "gpus_per_replica: 0", "pools[0].simulation.gpus_per_replica",
     "must be >= 1"),
    ("gpus_per_replica: 1", "gpus_per_replica: true", "pools[0].simulation.gpus_per_replica",
     "not true"),
    ("wait_slo: 2s", "wait_slo: 1.0e+30", "pools[0].simulation.wait_slo", "at most 1d"),
    ("wait_slo: 2s", "wait_slo: 2d", "pools[0].simulation.wait_slo", "at most 1d"),
    ("cost_per_hour: 0.805", "cost_per_hour: .inf", "pools[0].simulation.cost_per_hour",
     "finite"),
    ("cost_per_hour: 0.805", "cost_per_hour: inf", "pools[0].simulation.cost_per_hour",
     "finite"),
    ("cost_per_hour: 0.805", "cost_per_hour: .nan", "pools[0].simulation.cost_per_hour",
     "finite"),
    ("cost_per_hour: 0.805", "cost_per_hour: 1.0e+30", "pools[0].simulation.cost_per_hour",
     "must be <= 100000"),
    ("cost_per_hour: 0.805", "cost_per_hour: true", "pools[0].simulation.cost_per_hour",
     "not true"),
    # durations
    ("interval: 15s", "interval: 2h", "controller.interval", "at most 1h"),
    ("cooldown: 30s", "cooldown: 1.0e+30", "pools[0].behavior.cooldown", "at most 1d"),
    # a policy's numbers: no boolean, finite, realistic (the backstop)
    ("target_per_replica: 5", "target_per_replica: true", "pools[0].policy.target_per_replica",
     "not true"),
    # (policy fields carry their own bounds now; the backstop still catches what they lack)
    ("target_per_replica: 5", "target_per_replica: .inf", "pools[0].policy.target_per_replica",
     "must be <= 1e+12"),
    ("target_per_replica: 5", "target_per_replica: 1.0e+30",
     "pools[0].policy.target_per_replica", "must be <= 1e+12"),
    ("target_per_replica: 5", "target_per_replica: 5\n      activation: 1.0e+30",
     "pools[0].policy.activation", "must be <= 1e+12"),
    ("source: {type: static, value: 1}", "source: {type: static, value: .nan}",
     "pools[0].signals.queue.source.value", "finite"),
    # Kubernetes names
    ("kind: simulated", "kind: deployment\n      name: '100%'", "pools[0].target.name",
     "not a valid Kubernetes Deployment name"),
    ("kind: simulated", "kind: statefulset\n      name: Web_0", "pools[0].target.name",
     "not a valid Kubernetes StatefulSet name"),
    ("kind: simulated", "kind: deployment\n      name: web\n      namespace: PT15S",
     "pools[0].target.namespace", "not a valid Kubernetes namespace"),
    ("id: test", "id: 'two words'", "installation.id", "not a valid label value"),
    ("max: 4", "max: 4\n    activator: {backend: {service: web, port: 70000}}",
     "pools[0].activator.backend.port", "must be <= 65535"),
    ("max: 4", "max: 4\n    activator: {backend: {service: web, port: true}}",
     "pools[0].activator.backend.port", "not true"),
]

EC2_BAD: list[tuple[str, str, str, str]] = [
    ("region: us-east-1", "region: PT15S", "pools[0].target.region", "not an AWS region"),
    ("region: us-east-1", "region: us-east", "pools[0].target.region", "not an AWS region"),
    ("subnets: [subnet-0123abcd]", "subnets: [' ']", "pools[0].target.subnets[0]",
     "not a subnet id"),
    ("subnets: [subnet-0123abcd]", "subnets: [subnet-0123abcd, subnet-b]",
     "pools[0].target.subnets[1]", "not a subnet id"),
    ("security_groups: [sg-0123abcd]", "security_groups: [default]",
     "pools[0].target.security_groups[0]", "not a security group id"),
    ("instance_types: [g5.xlarge]", "instance_types: [g5.xlarg]",
     "pools[0].target.instance_types[0]", "did you mean g5.xlarge?"),
    ("instance_types: [g5.xlarge]", "instance_types: [g5.xlarge, {type: G6.XLARGE, price: 1}]",
     "pools[0].target.instance_types[1].type", "did you mean g6.xlarge?"),
    ("launch_template: gpu-worker", "launch_template: lt-zz", "pools[0].target.launch_template",
     "not a launch template id"),
    ("launch_template: gpu-worker", "launch_template: gpu-worker\n      image_id: ami-1",
     "pools[0].target.image_id", "not an AMI id"),
    ("launch_template: gpu-worker",
     "launch_template: gpu-worker\n      spot_max_price: .inf",
     "pools[0].target.spot_max_price", "finite"),
    ("instance_types: [g5.xlarge]", "instance_types: [5]", "pools[0].target.instance_types[0]",
     "must be text, got 5"),
]

NODES_BAD: list[tuple[str, str, str, str]] = [
    ("instance_types: [g6.xlarge]", "instance_types: [g6.xlarg]", "nodes.instance_types[0]",
     "did you mean g6.xlarge?"),
    ("instance_types: [g6.xlarge]",
     "instance_types: [{type: g6.xlarge, gpus: true}]", "nodes.instance_types[0].gpus",
     "not true"),
    ("instance_types: [g6.xlarge]",
     "instance_types: [{type: g6.xlarge, price: .inf}]", "nodes.instance_types[0].price",
     "finite"),
    ("subnets: [subnet-0123456789abcdef0]", "subnets: [' ']", "nodes.subnets[0]",
     "not a subnet id"),
    ("region: us-east-1", "region: PT15S", "nodes.region", "not an AWS region"),
    ("namespaces: [llm]", "namespaces: ['100%']", "nodes.namespaces[0]",
     "not a valid Kubernetes namespace"),
    ("taints: [{key: nvidia.com/gpu, value: present}]", "taints: [{key: 'a b'}]",
     "nodes.taints[0].key", "not a valid label key"),
]


def _check(text: str, new: str, path: str, fragment: str) -> None:
    issues = refused(text).issues
    assert [issue.path for issue in issues] == [path], issues
    (issue,) = issues
    assert fragment in issue.message, issue
    assert issue.line == line_of(text, new.splitlines()[-1]), issue


@pytest.mark.parametrize(("old", "new", "path", "fragment"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_value_is_refused_with_its_path_and_line(old, new, path, fragment):
    _check(edited(old, new), new, path, fragment)


@pytest.mark.parametrize(("old", "new", "path", "fragment"), EC2_BAD,
                         ids=[b[1] for b in EC2_BAD])
def test_a_bad_aws_value_is_refused_with_its_path_and_line(old, new, path, fragment):
    _check(edited(old, new, with_ec2(GOOD)), new, path, fragment)


@pytest.mark.parametrize(("old", "new", "path", "fragment"), NODES_BAD,
                         ids=[b[1] for b in NODES_BAD])
def test_a_bad_node_provisioning_value_is_refused_with_its_path_and_line(
    old, new, path, fragment
):
    _check(edited(old, new, GOOD + NODES), new, path, fragment)


@pytest.mark.parametrize(
    ("units", "fragment"),
    [(BIG, "must be <= 1000000"), ("1.0e+30", "realistic size"),
     ("2000000", "must be <= 1000000"),
     ("true", "not true"), ("0", "must be > 0")],
)
def test_units_per_replica_is_bounded(units, fragment):
    text = edited("    policy:\n      type: queue-depth\n      target_per_replica: 5\n",
                  PACKING.replace("8", units))
    (issue,) = refused(text).issues
    assert issue.path == "pools[0].policy.units_per_replica"
    assert fragment in issue.message and issue.line == line_of(text, "units_per_replica")


def test_min_above_max_points_at_the_min_line_not_the_pool():
    text = edited("min: 0", "min: 9")
    (issue,) = refused(text).issues
    assert str(issue) == "pools[0].min: must be <= max (4), got 9 (line 9)"


def test_max_true_blames_max_not_another_field():
    text = edited("min: 0", "min: 2").replace("max: 4", "max: true")
    assert [str(i) for i in refused(text).issues] == [
        "pools[0].max: must be a whole number, not true (line 10)"
    ]


def test_installation_id_is_required():
    (issue,) = refused(GOOD.replace("installation:\n  id: test\n", "")).issues
    assert issue.path == "installation" and "required" in issue.message
    (issue,) = refused(GOOD.replace("  id: test\n", "  tag_prefix: example.io\n")).issues
    assert issue.path == "installation.id" and issue.line == 1
    assert "installation: {id: <name>}" in issue.message


def test_a_settings_file_without_an_installation_id_is_refused_even_without_pools(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("controller: {interval: 15s}\n")
    with pytest.raises(ConfigError, match="installation: required"):
        load_settings(str(path), pools_optional=True)
    path.write_text("installation: {id: prod}\n")
    assert load_settings(str(path), pools_optional=True).installation.id == "prod"


GOOD_EDITS = [
    ("max: 4", "max: 10000"),
    ("max: 4", "max: '16'"),
    ("max: 4", "max: 16.0"),
    ("gpus_per_replica: 1", "gpus_per_replica: 64"),
    ("gpus_per_replica: 1", "gpus_per_replica: 8"),
    ("wait_slo: 2s", "wait_slo: 1d"),
    ("wait_slo: 2s", "wait_slo: 250ms"),
    ("cost_per_hour: 0.805", "cost_per_hour: 0"),
    ("cost_per_hour: 0.805", "cost_per_hour: 55.04"),
    ("cost_per_hour: 0.805", "cost_per_hour: 8300"),  # a p5.48xlarge-hour in yen
    ("interval: 15s", "interval: 1h"),
    ("target_per_replica: 5", "target_per_replica: 1e+12"),
    ("kind: simulated", "kind: deployment\n      name: vllm.llama-3-8b\n      namespace: llm"),
    ("kind: simulated", "kind: statefulset\n      name: kv-cache"),
    ("id: test", "id: Prod_us-east-1.a"),
]

EC2_GOOD = [
    ("region: us-east-1", f"region: {region}")
    for region in ("eu-central-2", "ap-southeast-4", "us-gov-west-1", "cn-north-1",
                   "us-isob-east-1", "il-central-1")
] + [
    ("subnets: [subnet-0123abcd]", "subnets: [subnet-0123456789abcdef0, subnet-89abcdef]"),
    ("security_groups: [sg-0123abcd]", "security_groups: [sg-0123456789abcdef0]"),
    ("launch_template: gpu-worker", "launch_template: lt-0123456789abcdef0"),
    ("launch_template: gpu-worker", "launch_template: team/gpu_worker(v2).x"),
    ("launch_template: gpu-worker",
     "launch_template: gpu-worker\n      launch_template_version: '$Latest'"),
    ("launch_template: gpu-worker", "launch_template: gpu-worker\n      image_id: ami-12c6146b"),
    ("launch_template: gpu-worker", "launch_template: gpu-worker\n      image_id: "
     "'resolve:ssm:/aws/service/eks/optimized-ami/1.30/amazon-linux-2-gpu/recommended/image_id'"),
] + [
    # Types the catalog lacks, written as EC2 names them.
    ("instance_types: [g5.xlarge]", f"instance_types: [{kind}]")
    for kind in ("g5.16xlarge", "p4de.24xlarge", "u-6tb1.metal", "m7i-flex.large",
                 "mac2-m2pro.metal", "r8g.metal-24xl", "t4g.nano", "inf2.48xlarge")
]


@pytest.mark.parametrize(("old", "new"), GOOD_EDITS, ids=[g[1] for g in GOOD_EDITS])
def test_a_realistic_value_still_loads(old, new):
    parse_config(edited(old, new), "<test>", {})


@pytest.mark.parametrize(("old", "new"), EC2_GOOD, ids=[g[1] for g in EC2_GOOD])
def test_a_realistic_aws_value_still_loads(old, new):
    parse_config(edited(old, new, with_ec2(GOOD)), "<test>", {})


def test_realistic_node_provisioning_still_loads():
    text = (GOOD + NODES).replace(
        "instance_types: [g6.xlarge]",
        "instance_types: [g6.xlarge, {type: g5.16xlarge, gpus: 1, cpu: 64, memory_gib: 256, "
        "price: 4.1}]",
    )
    config = parse_config(text, "<test>", {})
    assert config.nodes is not None and config.nodes.labels == {"gpu-pool": "llm"}


def test_an_interpolated_number_is_read_as_written():
    text = GOOD.replace("max: 4", "max: ${MAX_REPLICAS:-4}")
    assert parse_config(text, "<test>", {}).pools[0].max == 4
    assert parse_config(text, "<test>", {"MAX_REPLICAS": "12"}).pools[0].max == 12
    with pytest.raises(ConfigError, match=r"pools\[0\]\.max: must be a whole number"):
        parse_config(text, "<test>", {"MAX_REPLICAS": "lots"})


def test_the_closest_catalog_type_is_offered():
    assert did_you_mean("g5.xlarg") == "; did you mean g5.xlarge?"
    assert did_you_mean("p5.48xlage") == "; did you mean p5.48xlarge?"
    assert did_you_mean("zzz") == ""


# -- YAML that expands without bound ------------------------------------------------------

def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n" + GOOD


@pytest.mark.timeout(10)
def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_file_and_line():
    text = billion_laughs()
    started = time.perf_counter()
    error = refused(text)
    assert time.perf_counter() - started < 1.0
    (issue,) = error.issues
    assert issue.path == "(file)" and "too many aliases" in issue.message
    assert issue.line is not None and 2 <= issue.line <= 10
    assert str(error).startswith("<test>: 1 error(s)")


@pytest.mark.timeout(10)
def test_an_alias_bomb_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), pools_optional=True)
    assert time.perf_counter() - started < 1.0
    assert str(info.value).startswith(f"{path}: 1 error(s)")
    assert "too many aliases" in str(info.value) and "(line " in str(info.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &a [*a]\n" + GOOD, "refers to the node that contains it"),
        ("a: " + "[" * 200 + "]" * 200 + "\n" + GOOD, "nested more than 100 levels"),
    ],
    ids=["recursive alias", "deep nesting"],
)
def test_other_unbounded_yaml_is_refused_with_a_line(text, fragment):
    (issue,) = refused(text).issues
    assert issue.path == "(file)" and fragment in issue.message and issue.line == 1


def test_ordinary_anchors_and_merges_still_load():
    text = GOOD.replace("    behavior:\n      cooldown: 30s\n",
                        "    behavior: &calm\n      cooldown: 30s\n") + (
        "  - name: other\n    target: {kind: simulated}\n    max: 2\n"
        "    policy: {type: queue-depth, target_per_replica: 5}\n"
        "    behavior: *calm\n"
    )
    config = parse_config(text, "<test>", {})
    assert config.pools[1].effective_behavior.cooldown == 30.0


# -- the CRD path and the published schemas -----------------------------------------------

def test_a_bad_autoscalingpool_object_is_a_problem_naming_the_field():
    spec: dict[str, Any] = yaml.safe_load(GOOD)["pools"][0]
    del spec["name"]
    spec["max"] = True
    obj = {"metadata": {"name": "chat", "namespace": "llm"}, "spec": spec}
    problem = parse_pool(obj)
    assert isinstance(problem, PoolProblem)
    assert [str(i) for i in problem.issues] == ["max: must be a whole number, not true"]
    spec["max"], spec["policy"]["target_per_replica"] = 4, float("inf")
    problem = parse_pool(obj)
    assert isinstance(problem, PoolProblem)
    assert [i.path for i in problem.issues] == ["policy.target_per_replica"]


def _keys(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in _keys(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _keys(v)}
    return set()


def test_the_schemas_write_bounds_as_json_schema_does():
    """Bounds of optional numbers must reach the schemas as minimum/maximum: pydantic's own
    ge/le would be unknown keywords (the API server refuses them in a CRD)."""
    for schema in (config_schema(), crd()):
        assert not _keys(schema) & {"ge", "le", "gt", "lt"}
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["max"]["maximum"] == 10000
    assert spec["properties"]["min"]["maximum"] == 10000
