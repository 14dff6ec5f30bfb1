"""The AutoscalingPool CustomResourceDefinition, generated from the pydantic `Pool` model.

The CRD's OpenAPI v3 schema is derived from `Pool.model_json_schema()` and rewritten into a
*structural* schema the API server accepts: `$ref`s inlined, `Optional` as `nullable`,
number-or-string durations and discriminated unions kept permissive
(`x-kubernetes-preserve-unknown-fields`, with the discriminator itself still checked).
Objects whose model forbids extra fields keep unknown fields too: the API server would
otherwise prune a misspelt field silently, and pydantic could not name it. The API
server's schema is a first line of defence only: the controller validates every pool with
pydantic again (`autoscaler.kube.pools`) and reports what it rejects on the object.
`k8s/base/crd.yaml` and the Helm chart's CRD (`helm/autoscaler/crds/`) are generated from
`crd_yaml()` by scripts/gen_manifests.py.

This module must never talk to a cluster: it only builds plain dicts and text.
"""

from __future__ import annotations

from typing import Any

import yaml

from autoscaler.config import Pool

GROUP = "autoscaling.elastic-autoscaler.io"
VERSION = "v1alpha1"
KIND = "AutoscalingPool"
PLURAL = "autoscalingpools"
SINGULAR = "autoscalingpool"
SHORT_NAMES = ["apool"]
CRD_NAME = f"{PLURAL}.{GROUP}"

_DROPPED = {"title", "default", "discriminator", "$defs", "examples"}
_ANY: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
Schema = dict[str, Any]


def _resolve(ref: str, defs: dict[str, Schema]) -> tuple[str, Schema]:
    name = ref.rsplit("/", 1)[-1]
    return name, defs[name]


def _union(branches: list[Schema], defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    """A structural stand-in for anyOf/oneOf: the one non-null branch as it is; objects
    sharing a `const` discriminator as a permissive object that still checks it; else any."""
    nullable = any(b.get("type") == "null" for b in branches)
    rest = [b for b in branches if b.get("type") != "null"]
    if len(rest) == 1:
        out = convert(rest[0], defs, stack)
    else:
        out = _tagged_union(rest, defs) or dict(_ANY)
    if nullable:
        out["nullable"] = True
    return out


def _tagged_union(branches: list[Schema], defs: dict[str, Schema]) -> Schema | None:
    resolved = [_resolve(b["$ref"], defs)[1] if "$ref" in b else b for b in branches]
    if not all(r.get("type") == "object" for r in resolved):
        return None
    for key in resolved[0].get("properties", {}):
        tags = [r.get("properties", {}).get(key, {}).get("const") for r in resolved]
        if all(isinstance(t, str) for t in tags):
            return {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "required": [key],
                "properties": {key: {"type": "string", "enum": sorted(tags)}},
            }
    return None


def _bounds(schema: Schema) -> Schema:
    """JSON Schema 2020 exclusive bounds (numbers) as OpenAPI v3.0 ones (booleans)."""
    out = dict(schema)
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[inclusive] = value
            out[exclusive] = True
    return out


def convert(schema: Schema, defs: dict[str, Schema], stack: tuple[str, ...] = ()) -> Schema:
    """One pydantic JSON Schema node as a structural OpenAPI v3 schema node."""
    if "$ref" in schema:
        name, target = _resolve(schema["$ref"], defs)
        if name in stack:  # a recursive model: stop describing it and let pydantic check
            return {"type": "object", **_ANY}
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return convert(merged, defs, (*stack, name))
    for junctor in ("anyOf", "oneOf"):
        if junctor in schema:
            union = _union(schema[junctor], defs, stack)
            if "description" in schema:
                union["description"] = schema["description"]
            return union
    out: Schema = {k: v for k, v in schema.items() if k not in _DROPPED}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    out = _bounds(out)
    if "properties" in out:
        out["properties"] = {k: convert(v, defs, stack) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = convert(out["items"], defs, stack)
    extra = out.pop("additionalProperties", None)
    if out.get("type") == "object" and "properties" not in out:
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = convert(extra, defs, stack)
        else:
            out.update(_ANY)
    elif "properties" in out and extra is False:
        # Keep a misspelt field so pydantic names it, rather than the server pruning it.
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        out.update(_ANY)
    return out


def spec_schema() -> Schema:
    """The structural schema of `spec`: a Pool without `name` (metadata.name is the name)."""
    source = Pool.model_json_schema(mode="validation")
    spec = convert(source, source.get("$defs", {}))
    spec["properties"].pop("name", None)
    spec["required"] = [r for r in spec.get("required", []) if r != "name"]
    # What the API server can check beyond types (CEL): the rest is pydantic's job.
    spec["x-kubernetes-validations"] = [
        {"rule": "!has(self.min) || self.min <= self.max", "message": "min must not exceed max"}
    ]
    spec["description"] = (
        "A pool (see `autoscaler schema`); the pool's name is metadata.name and Kubernetes "
        "targets default to the object's namespace."
    )
    return spec


def _condition_schema() -> Schema:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": text,
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": text,
            "message": text,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }


def status_schema() -> Schema:
    """What the controller writes after each tick (see `autoscaler.kube.status`)."""
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "current": {"type": "integer", "description": "replicas the target has now"},
            "desired": {"type": "integer", "description": "replicas the last decision set"},
            "recommended": {"type": "integer", "description": "the policy's recommendation"},
            "direction": {"type": "string", "enum": ["up", "down", "hold"]},
            "reason": {"type": "string", "description": "why, in words"},
            "stale": {"type": "boolean"},
            "lastDecisionTime": {"type": "string", "format": "date-time"},
            "lastActionError": {"type": "string"},
            "signals": {
                "type": "object",
                "description": "the last value of each signal (absent while stale)",
                "additionalProperties": {"type": "number"},
            },
            "staleSignals": {
                "type": "object",
                "description": "signals without a usable value, with why",
                "additionalProperties": {"type": "string"},
            },
            "plannerMemory": {
                "type": "string",
                "description": "the planner's memory for this pool (JSON: stabilization "
                "history, scale events, backoff, the policy's own state), so a restarted "
                "or newly elected controller carries on where the last one stopped",
            },
            "conditions": {
                "type": "array",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


PRINTER_COLUMNS = [
    {"name": "Target", "type": "string", "jsonPath": ".spec.target.name"},
    {"name": "Min", "type": "integer", "jsonPath": ".spec.min"},
    {"name": "Max", "type": "integer", "jsonPath": ".spec.max"},
    {"name": "Current", "type": "integer", "jsonPath": ".status.current"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desired"},
    {
        "name": "Valid",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Valid")].status',
    },
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["autoscaler"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A pool the elastic autoscaler scales.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `autoscaler crd` from autoscaler/config/models.py; do not edit.\n"


class _NoAliases(yaml.SafeDumper):
    """Schema nodes shared by several fields are written out each time: a CRD with YAML
    anchors is valid, but unreadable and unlike what `kubectl get crd -o yaml` shows."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def crd_yaml() -> str:
    """The CRD as YAML text, with a header saying how it was made."""
    return HEADER + yaml.dump(crd(), Dumper=_NoAliases, sort_keys=True, width=100)


# -- AutoscalingTrigger: evaluation triggers (autoscaler/triggers, docs/triggers.md) -------
TRIGGER_KIND = "AutoscalingTrigger"
TRIGGER_PLURAL = "autoscalingtriggers"
TRIGGER_SINGULAR = "autoscalingtrigger"
TRIGGER_SHORT_NAMES = ["atrigger"]
TRIGGER_CRD_NAME = f"{TRIGGER_PLURAL}.{GROUP}"


def trigger_spec_schema() -> Schema:
    """The structural schema of an AutoscalingTrigger's spec: a Trigger without `name`."""
    from autoscaler.config.triggers import Trigger

    source = Trigger.model_json_schema(mode="validation", by_alias=True)
    spec = convert(source, source.get("$defs", {}))
    spec["properties"].pop("name", None)
    spec["required"] = [r for r in spec.get("required", []) if r != "name"]
    spec["description"] = (
        "An evaluation trigger (docs/triggers.md); its name is metadata.name and its Jobs "
        "run in the object's namespace unless `namespace` names another."
    )
    return spec


def trigger_status_schema() -> Schema:
    """What the controller writes each round (see `autoscaler.triggers.objects`)."""
    number, text = {"type": "number"}, {"type": "string"}
    run = {
        "type": "object",
        "properties": {
            "id": text,
            "sequence": {"type": "integer"},
            "firedTime": {"type": "string", "format": "date-time"},
            "step": {"type": "string", "description": "where the run is, or `done`"},
            "outcome": text,
            "detail": text,
            "endedTime": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "state": {
                "type": "string",
                "enum": ["ok", "stale", "pending", "running", "cooldown", "firing"],
            },
            "reason": {"type": "string", "description": "why, in words"},
            "value": {**number, "description": "the condition's last usable value"},
            "threshold": number,
            "heldSeconds": {**number, "description": "how long the breach has lasted"},
            "cooldownLeftSeconds": number,
            "breachedSince": {
                **number,
                "description": "when the current breach began (seconds since the epoch), "
                "so a restarted controller keeps counting `for`",
            },
            "runs": {"type": "array", "items": run, "description": "the latest runs"},
            "conditions": {
                "type": "array",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


TRIGGER_PRINTER_COLUMNS = [
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Value", "type": "number", "jsonPath": ".status.value"},
    {"name": "Threshold", "type": "number", "jsonPath": ".status.threshold"},
    {"name": "Last-Outcome", "type": "string", "jsonPath": ".status.runs[-1].outcome"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def trigger_crd() -> dict[str, Any]:
    """The AutoscalingTrigger CustomResourceDefinition as a plain dict."""
    body = crd()
    version = body["spec"]["versions"][0]
    body["metadata"] = {"name": TRIGGER_CRD_NAME}
    body["spec"]["names"] = {
        "kind": TRIGGER_KIND,
        "listKind": f"{TRIGGER_KIND}List",
        "plural": TRIGGER_PLURAL,
        "singular": TRIGGER_SINGULAR,
        "shortNames": TRIGGER_SHORT_NAMES,
        "categories": ["autoscaler"],
    }
    version["additionalPrinterColumns"] = TRIGGER_PRINTER_COLUMNS
    schema = version["schema"]["openAPIV3Schema"]
    schema["description"] = "An evaluation trigger: a condition that starts evaluation Jobs."
    schema["properties"]["spec"] = trigger_spec_schema()
    schema["properties"]["status"] = trigger_status_schema()
    return body


def trigger_crd_yaml() -> str:
    """The AutoscalingTrigger CRD as YAML text."""
    header = HEADER.replace("models.py", "triggers.py").replace("autoscaler crd", "gen_manifests")
    return header + yaml.dump(trigger_crd(), Dumper=_NoAliases, sort_keys=True, width=100)
