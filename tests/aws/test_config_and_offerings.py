"""The EC2 and ASG target models and the pure offering order and unavailable cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.clock import FakeClock
from autoscaler.config import load_config
from autoscaler.config.targets import AsgTarget, Ec2Target
from autoscaler.providers.aws_offerings import Offering, UnavailableOfferings, offerings

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]


def target(**fields: Any) -> Ec2Target:
    base: dict[str, Any] = {"launch_template": "gpu-worker", "instance_types": ["g6.xlarge"]}
    return Ec2Target.model_validate(base | fields)


def test_the_gpu_batch_example_is_a_valid_ec2_pool() -> None:
    cfg = load_config(ROOT / "examples" / "gpu-batch.yaml", env={})
    ec2 = cfg.pools[0].target
    assert isinstance(ec2, Ec2Target) and ec2.uses_fleet
    assert ec2.market == "spot-then-on-demand"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"launch_template": None}, "set `launch_template` or an inline `image_id`"),
        ({"launch_template": None, "image_id": "ami-0000000a", "api": "fleet"}, "only from a"),
        ({"security_groups": ["sg-00000001"]}, "CreateFleet takes security_groups"),
        ({"instance_types": ["g6.xlarge", "g6.xlarge"]}, "listed twice: g6.xlarge"),
        ({"order": "cheapest"}, "missing: g6.xlarge.price"),
        (
            {
                "order": "cheapest",
                "market": "spot",
                "instance_types": [{"type": "g6.xlarge", "price": 1}],
            },
            "missing: g6.xlarge.spot_price",
        ),
        ({"instance_types": []}, "at least 1"),
    ],
)
def test_an_ec2_target_that_cannot_launch_is_rejected_with_what_to_change(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        target(**fields)


def test_an_inline_spec_launches_through_run_instances_by_default() -> None:
    inline = target(launch_template=None, image_id="ami-00000001", security_groups=["sg-00000001"])
    assert not inline.uses_fleet
    assert target().uses_fleet
    assert not target(api="run-instances").uses_fleet


def test_an_asg_target_needs_a_group_name() -> None:
    with pytest.raises(ValidationError):
        AsgTarget.model_validate({"kind": "asg"})
    assert AsgTarget(name="gpu").require_owner_tag is True


def test_offerings_go_market_then_type_then_subnet_in_priority_order() -> None:
    t = target(
        instance_types=["g6.xlarge", "g5.xlarge"],
        subnets=["subnet-0000000a", "subnet-0000000b"],
        market="spot-then-on-demand",
    )
    assert [str(o) for o in offerings(t)] == [
        "g6.xlarge/subnet-0000000a/spot",
        "g6.xlarge/subnet-0000000b/spot",
        "g5.xlarge/subnet-0000000a/spot",
        "g5.xlarge/subnet-0000000b/spot",
        "g6.xlarge/subnet-0000000a/on-demand",
        "g6.xlarge/subnet-0000000b/on-demand",
        "g5.xlarge/subnet-0000000a/on-demand",
        "g5.xlarge/subnet-0000000b/on-demand",
    ]


def test_cheapest_order_sorts_each_market_by_its_own_price() -> None:
    t = target(
        instance_types=[
            {"type": "g6.xlarge", "price": 0.8, "spot_price": 0.5},
            {"type": "g5.xlarge", "price": 1.0, "spot_price": 0.3},
            {"type": "g4dn.xlarge", "price": 0.5, "spot_price": 0.4},
        ],
        order="cheapest",
        market="spot-then-on-demand",
    )
    assert [(o.market, o.instance_type) for o in offerings(t)] == [
        ("spot", "g5.xlarge"),
        ("spot", "g4dn.xlarge"),
        ("spot", "g6.xlarge"),
        ("on-demand", "g4dn.xlarge"),
        ("on-demand", "g6.xlarge"),
        ("on-demand", "g5.xlarge"),
    ]


def _offer(kind: str = "g6.xlarge", subnet: str = "subnet-a", market: str = "spot") -> Offering:
    return Offering("us-east-1", kind, subnet, market)


def test_an_offering_out_of_capacity_is_hidden_until_its_time_is_up() -> None:
    clock = FakeClock(100.0)
    cache = UnavailableOfferings(clock)
    cache.mark(_offer(), "InsufficientInstanceCapacity", 180)
    assert cache.get(_offer()) is not None
    assert cache.get(_offer(subnet="subnet-b")) is None
    assert cache.get(_offer(market="on-demand")) is None
    clock.advance(179)
    assert cache.get(_offer()) is not None
    clock.advance(1)
    assert cache.get(_offer()) is None


@pytest.mark.parametrize(
    ("code", "hidden", "visible"),
    [
        (
            "InsufficientFreeAddressesInSubnet",
            _offer("g5.xlarge", market="on-demand"),
            _offer(subnet="subnet-b"),
        ),
        ("InstanceLimitExceeded", _offer(subnet="subnet-b"), _offer("g5.xlarge")),
        (
            "MaxSpotInstanceCountExceeded",
            _offer("g5.xlarge", "subnet-b"),
            _offer(market="on-demand"),
        ),
    ],
)
def test_some_errors_hide_a_whole_subnet_type_or_market(
    code: str, hidden: Offering, visible: Offering
) -> None:
    cache = UnavailableOfferings(FakeClock())
    cache.mark(_offer(), code, 60)
    entry = cache.get(hidden)
    assert entry is not None and entry.code == code
    assert cache.get(visible) is None
