"""The bounds and formats configuration values are checked against, with plain messages.

Every number has a realistic range and every name its real format, so that a slip (a
`max` of 2^63, `max: true`, a region of `PT15S`, a subnet of `' '`, a misspelt instance
type) is refused at load time, naming the field, instead of reaching a cloud API or the
planner. Numbers must be numbers: `true` is not 1, `inf` is not a price. Quoted numbers
(what `${VAR}` interpolation gives) are read when written plainly (`"10"`, not `"-0"`).

The limits (docs/config-reference.md shows each field's):
  replicas (`min`, `max`, fallback, warm pool, nodes): 0..10000
  GPUs per replica or node: 1..64;  units (slots) per replica: 1..1000000
  instance prices (USD per hour): 0..1000;  simulated cost per replica-hour: 0..100000
  durations: a timeout at most 1 hour, a window or wait at most 1 day, an idle time or
  look-back at most 7 days (each field says which)
  any other number in a pool (policy settings): finite, and at most 1e15 in size

Names: Kubernetes names and namespaces are DNS-1123 labels or subdomains as the API server
requires; AWS regions, subnet, security group, AMI and launch template ids their AWS form.
Instance types: the built-in catalog's, or any other written as EC2 names types
(family.size, with a real size such as xlarge, 12xlarge, metal): the catalog holds only
common GPU types, so a real type it lacks must still load; a misspelt one (`g5.xlarg`) is
refused with the closest catalog type offered.

Pure: pydantic, the standard library and autoscaler.units.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
)

from autoscaler.units import parse_duration

from .catalog import CATALOG

MAX_REPLICAS = 10_000
MAX_GPUS = 64
MAX_UNITS = 1_000_000
MAX_PRICE = 1_000.0
"""USD per hour of one instance (the largest EC2 instances cost a few hundred)."""
MAX_COST_PER_HOUR = 100_000.0
"""Per replica-hour in any currency: room for several dear nodes in yen or rupees."""
ANY_NUMBER = 1e15
"""No setting in a pool is larger; beyond it integers stop being exact as floats."""

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 7 * 86400.0


def at(subpath: str, message: str) -> ValueError:
    """An error for a field below the validated model; the loader appends `subpath` to
    the path it reports, and gives that field's line (pydantic gives model validators no
    way to set one)."""
    return ValueError(f"@{subpath}@ {message}")


# --- numbers ----------------------------------------------------------------------------

_PLAIN_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")


def whole_number(value: Any) -> Any:
    """An integer from an int, an integral float, or a plainly written numeric string;
    never from a boolean (YAML `true` is not 1). Other types go on to pydantic's check."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite whole number, got {value}")
        if not value.is_integer():
            raise ValueError(f"must be a whole number, got {value:g}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_INT.match(text) or text == "-0":
            raise ValueError(f"must be a whole number, got {value!r}")
        return int(text)
    return value


def real_number(value: Any) -> Any:
    """A finite float from a number or a numeric string; never from a boolean."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {value!r}") from None
        value = number
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > 1e300:  # no float holds it (OverflowError)
        raise ValueError("must be a finite number, got one of 300 digits or more")
    return value


Whole = Annotated[int, BeforeValidator(whole_number)]
"""An integer; bound it with Field(ge=..., le=...) where it is used. (In a union, such as
`| None`, put the bounds inside instead, before the validator, as `ReplicaCount` does:
pydantic's JSON Schema then writes them as minimum/maximum, which the CRD needs.)"""
Real = Annotated[float, BeforeValidator(real_number)]
"""A finite float; bound it with Field(ge=..., le=...) where it is used (see `Whole`)."""
ReplicaCount = Annotated[int, Field(ge=0, le=MAX_REPLICAS), BeforeValidator(whole_number)]
"""A number of replicas (or nodes, or instances): 0..10000."""
Price = Annotated[float, Field(ge=0, le=MAX_PRICE), BeforeValidator(real_number)]
"""USD per hour of one instance: 0..1000."""


def positive(value: float) -> float:
    """For a bounded duration that must also be > 0 (bounds outside its type would not
    reach the JSON Schema)."""
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _seconds_text(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _at_most(limit: float) -> Callable[[float], float]:
    def check(seconds: float) -> float:
        if seconds > limit:
            raise ValueError(
                f"must be at most {_seconds_text(limit)} ({limit:g} seconds), got {seconds:g}s"
            )
        return seconds

    return check


def _duration_schema(limit: float) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": limit},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": f"seconds, or a string such as '30s', '5m', '1h'; at most "
            f"{_seconds_text(limit)}",
        }
    )


Timeout = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_at_most(HOUR)), _duration_schema(HOUR)
]
"""A duration of at most 1 hour: timeouts, deadlines, tick intervals."""
Window = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_at_most(DAY)), _duration_schema(DAY)
]
"""A duration of at most 1 day: windows, waits, backoffs, startup times."""
LongWindow = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_at_most(WEEK)), _duration_schema(WEEK)
]
"""A duration of at most 7 days: idle times, look-back windows."""


def odd_numbers(value: Any, raw: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, message) for each number of a validated model that its input wrote oddly: a
    boolean read as a number, a non-finite float, or a magnitude beyond ANY_NUMBER. The
    backstop for models that do not bound their own numbers (the policies')."""
    if isinstance(value, BaseModel):
        if not isinstance(raw, dict):
            return
        for name, field in type(value).model_fields.items():
            keys: list[str] = [name]
            alias = field.validation_alias
            if isinstance(alias, str):
                keys.append(alias)
            elif isinstance(alias, AliasChoices):
                keys.extend(c for c in alias.choices if isinstance(c, str))
            for key in dict.fromkeys(keys):
                if key in raw:
                    sub = f"{path}.{key}" if path else key
                    yield from odd_numbers(getattr(value, name), raw[key], sub)
    elif isinstance(value, list | tuple):
        if isinstance(raw, list) and len(raw) == len(value):
            for i, (item, raw_item) in enumerate(zip(value, raw, strict=True)):
                yield from odd_numbers(item, raw_item, f"{path}[{i}]")
    elif isinstance(value, dict):
        if isinstance(raw, dict):
            for key, item in value.items():
                if key in raw:
                    yield from odd_numbers(item, raw[key], f"{path}.{key}" if path else key)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(raw, bool):
            yield path, f"must be a number, not {str(raw).lower()}"
        elif isinstance(value, float) and not math.isfinite(value):
            yield path, f"must be a finite number, got {value}"
        elif abs(value) > ANY_NUMBER:  # an int of any size: no float conversion (overflow)
            shown = f"{value:g}" if abs(value) < 1e300 else "a number of 300 digits or more"
            yield path, f"{shown} is beyond any realistic setting (at most {ANY_NUMBER:g})"


# --- names ------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_LAUNCH_TEMPLATE_ID = re.compile(r"^lt-[0-9a-f]{8,17}$")
_LAUNCH_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9().\-/_]{3,128}$")
_LAUNCH_TEMPLATE_VERSION = re.compile(r"^(\$Default|\$Latest|[1-9][0-9]{0,9})$")
_SSM_PARAMETER = re.compile(r"^resolve:ssm:[A-Za-z0-9_.\-/:]{1,2048}$")
_INSTANCE_TYPE = re.compile(
    r"^[a-z](?=[a-z0-9-]*[0-9])[a-z0-9-]*[a-z0-9]"  # family: g5, p4de, u-6tb1, mac2-m2pro
    r"\.(nano|micro|small|medium|large|xlarge|[1-9][0-9]*xlarge|metal|metal-[1-9][0-9]*xl)$"
)
_KUBE_NAME_RULES = (
    "lower case letters, digits and '-', starting and ending with a letter or digit"
)


def dns_label(value: str, what: str = "name") -> str:
    """A Kubernetes name that must be a DNS-1123 label (namespaces, Services, StatefulSets)."""
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes {what}: {_KUBE_NAME_RULES}, at most 63 "
            "characters"
        )
    return value


def dns_subdomain(value: str, what: str = "name") -> str:
    """A Kubernetes object name that must be a DNS-1123 subdomain (Deployments, ...)."""
    labels = value.split(".")
    if len(value) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes {what}: {_KUBE_NAME_RULES}, in "
            "'.'-separated parts, at most 253 characters"
        )
    return value


def qualified_name(value: str, what: str = "label key") -> str:
    """A label or taint key, or an extended resource name: [prefix/]name."""
    prefix, slash, name = value.rpartition("/")
    ok = bool(_QUALIFIED_NAME.match(name)) and (not slash or _is_subdomain(prefix))
    if not ok:
        raise ValueError(
            f"{value!r} is not a valid {what}: an optional DNS subdomain prefix and '/', "
            "then at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit"
        )
    return value


def _is_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_DNS_LABEL.match(label) for label in value.split("."))


def label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(
            f"{value!r} is not a valid label value: at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit"
        )
    return value


def aws_region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region (e.g. us-east-1, eu-west-2)")
    return value


def subnet_id(value: str) -> str:
    if not _SUBNET.match(value):
        raise ValueError(f"{value!r} is not a subnet id (subnet- and 8 or 17 hex digits)")
    return value


def security_group_id(value: str) -> str:
    if not _SECURITY_GROUP.match(value):
        raise ValueError(f"{value!r} is not a security group id (sg- and 8 or 17 hex digits)")
    return value


def image_id(value: str) -> str:
    if not (_AMI.match(value) or _SSM_PARAMETER.match(value)):
        raise ValueError(
            f"{value!r} is not an AMI id (ami- and 8 or 17 hex digits) or "
            "resolve:ssm:<parameter>"
        )
    return value


def launch_template(value: str) -> str:
    if value.startswith("lt-") and not _LAUNCH_TEMPLATE_ID.match(value):
        raise ValueError(
            f"{value!r} is not a launch template id (lt- and 17 hex digits); a name "
            "must not start with lt-"
        )
    if not (_LAUNCH_TEMPLATE_ID.match(value) or _LAUNCH_TEMPLATE_NAME.match(value)):
        raise ValueError(
            f"{value!r} is not a launch template id (lt-...) or name (3 to 128 letters, "
            "digits and ( ) . - / _)"
        )
    return value


def launch_template_version(value: str) -> str:
    if not _LAUNCH_TEMPLATE_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a launch template version: $Default, $Latest or 1, 2, ..."
        )
    return value


def aws_name(value: str) -> str:
    """An AWS resource name given by the user (Auto Scaling group, key pair, profile)."""
    if not value.strip() or value != value.strip() or len(value) > 255 or not value.isprintable():
        raise ValueError(
            f"{value!r} is not a usable name: 1 to 255 printable characters, no leading or "
            "trailing spaces"
        )
    return value


def instance_type(value: str) -> str:
    """An EC2 instance type: one the built-in catalog knows, or one written as EC2 names
    them (family.size, e.g. g6.16xlarge), since the catalog holds only common GPU types.
    Anything else is refused, with the closest catalog type offered."""
    if value in CATALOG or _INSTANCE_TYPE.match(value):
        return value
    raise ValueError(f"{value!r} is not an EC2 instance type (family.size, e.g. g5.xlarge)"
                     f"{did_you_mean(value)}")  # fmt: skip


def did_you_mean(value: str) -> str:
    """'; did you mean g5.xlarge?' for the closest catalog type, or ''."""
    close = difflib.get_close_matches(value.strip().lower(), list(CATALOG), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


TEXT, MAPPING, NUMBER = "<text>", "<mapping>", "<number>"
SHAPE_TAGS = frozenset({TEXT, MAPPING, NUMBER})
"""Tags of the unions below; the loader leaves them out of the paths it reports."""


def text_or_mapping(value: Any) -> str:
    """Which branch of a text-or-mapping union a value takes, by its shape: a bad value
    then gets the one error of its branch, not one per branch."""
    return MAPPING if isinstance(value, dict) else TEXT


def number_or_text(value: Any) -> str:
    """As `text_or_mapping`, for a number or a name (booleans: the number branch refuses
    them)."""
    return TEXT if isinstance(value, str) else NUMBER


Spec = TypeVar("Spec")
TextOr = Annotated[
    Annotated[str, Tag(TEXT)] | Annotated[Spec, Tag(MAPPING)], Discriminator(text_or_mapping)
]
"""`TextOr[Model]`: a name, or the model written out (instance types)."""


def check(validator: Callable[[str], str], *args: str) -> AfterValidator:
    """An AfterValidator calling `validator(value, *args)`."""
    return AfterValidator(lambda value: validator(value, *args))


Namespace = Annotated[str, check(dns_label, "namespace")]
Region = Annotated[str, AfterValidator(aws_region)]
SubnetId = Annotated[str, AfterValidator(subnet_id)]
SecurityGroupId = Annotated[str, AfterValidator(security_group_id)]
ImageId = Annotated[str, AfterValidator(image_id)]
LaunchTemplate = Annotated[str, AfterValidator(launch_template)]
LaunchTemplateVersion = Annotated[str, AfterValidator(launch_template_version)]
AwsName = Annotated[str, AfterValidator(aws_name)]
ROLE_ARN = r"^arn:(aws|aws-cn|aws-us-gov):iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$"
RoleArn = Annotated[str, StringConstraints(pattern=ROLE_ARN)]
"""An IAM role's ARN, no wildcards: what `autoscaler iam-policy` lets iam:PassRole pass."""
LabelKey = Annotated[str, check(qualified_name, "label key")]
LabelValue = Annotated[str, AfterValidator(label_value)]
