"""One name for a replica's slot count, `slots_per_replica`; the old names still load."""

from __future__ import annotations

import jsonschema
import yaml

from autoscaler.config import config_schema, parse_config

OLD = """installation: {id: test}
pools:
  - name: b
    target: {kind: simulated}
    max: 4
    startup: 60s
    policy: {type: packing, units_per_replica: 8}
    simulation:
      service: {type: llm, slots: 4, prefill_tokens_per_s: 1000, decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
"""


def test_old_field_names_load_as_slots_per_replica():
    pool = parse_config(OLD, env={}).pools[0]
    assert pool.policy.slots_per_replica == 8
    assert pool.simulation is not None
    assert pool.simulation.service.slots_per_replica == 4


def test_the_json_schema_accepts_old_and_new_names_and_requires_one():
    schema = config_schema()
    jsonschema.validate(yaml.safe_load(OLD), schema)
    new = OLD.replace("units_per_replica", "slots_per_replica").replace("slots: 4",
                                                                        "slots_per_replica: 4")
    jsonschema.validate(yaml.safe_load(new), schema)
    neither = yaml.safe_load(OLD.replace("units_per_replica: 8", "fill: 1.0"))
    try:
        jsonschema.validate(neither, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("a packing policy without its slot count passed the schema")


def test_kpa_names_knative_container_concurrency_the_replica_slot_count():
    text = OLD.replace("{type: packing, units_per_replica: 8}",
                       "{type: kpa, container_concurrency: 6}")
    assert parse_config(text, env={}).pools[0].policy.slots_per_replica == 6
