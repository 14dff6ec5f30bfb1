"""One contract for every capacity provider, so the simulated one stays honest and the real
ones behave alike: run against SimulatedProvider, the EC2 and Auto Scaling providers (moto),
and the Deployment, StatefulSet and Job providers (the test cluster). Providers and the
traits that adapt a clause to a kind are registered in conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autoscaler.errors import NotFound, ProviderError
from autoscaler.providers.base import CapacityProvider
from autoscaler.types import Capacity
from tests.cluster.wait import wait_for

from .subjects import Subject

CONTROLLER_CALLS = ("describe", "scale", "remove", "begin_tick", "tidy", "close")
"""What the controller calls on a provider."""

HOOKS = ("begin_tick", "tidy", "close")


def member_ids(subject: Subject) -> list[str]:
    return sorted(m.id for m in subject.provider.describe(subject.pool).members)


def seen(subject: Subject) -> tuple[int, int, list[str]]:
    """What describe says: requested, ready, and the members' ids."""
    capacity = subject.provider.describe(subject.pool)
    return capacity.desired, capacity.ready, sorted(m.id for m in capacity.members)


def hook(provider: CapacityProvider, name: str) -> Callable[..., Any]:
    method: Callable[..., Any] | None = getattr(provider, name, None)
    if not callable(method):
        pytest.fail(
            f"{type(provider).__name__} has no {name}(): the controller calls it on every "
            "provider, so every provider must have it (CapacityProvider declares it)",
            pytrace=False,
        )
    return method


def test_describe_after_scale_shows_the_requested_count(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 3, "contract-1")
    s.settle()
    capacity = s.provider.describe(s.pool)
    assert (capacity.desired, len(capacity.members)) == (3, 3)
    assert capacity.ready == sum(1 for m in capacity.members if m.ready)
    assert capacity.pending == 3 - capacity.ready
    if s.traits.ready_when_settled:
        assert (capacity.ready, capacity.pending) == (3, 0)


def test_scale_is_idempotent_by_request_id(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    first = member_ids(s)
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    assert member_ids(s) == first
    assert s.provider.describe(s.pool).desired == 2


def test_a_restarted_provider_does_not_repeat_an_applied_request(
    restartable_subject: Subject,
) -> None:
    s = restartable_subject
    assert s.restart is not None
    s.provider.scale(s.pool, 3, "contract-1")
    s.settle()
    first = member_ids(s)
    s.restart().scale(s.pool, 3, "contract-1")
    s.settle()
    assert member_ids(s) == first


def test_scale_in_to_zero_leaves_no_owned_members(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 3, "contract-1")
    s.settle()
    before = member_ids(s)
    s.provider.scale(s.pool, 0, "contract-2")
    s.settle()
    if not s.traits.scale_in_ends_members:
        # Members are never ended (nor any created): the pool comes down as they finish.
        assert member_ids(s) == before and s.provider.describe(s.pool).desired == 3
        assert s.finish is not None
        s.finish()
    capacity = s.provider.describe(s.pool)
    assert (capacity.desired, len(capacity.members)) == (0, 0)


def test_scale_out_after_scale_in_reaches_the_new_count(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 4, "contract-1")
    s.provider.scale(s.pool, 1, "contract-2")
    if not s.traits.scale_in_ends_members:
        assert s.provider.describe(s.pool).desired == 4  # none ended
        assert s.finish is not None
        s.finish()
    s.provider.scale(s.pool, 3, "contract-3")
    s.settle()
    assert len(member_ids(s)) == 3 and s.provider.describe(s.pool).desired == 3


def test_remove_of_specific_members_removes_exactly_those(removing_subject: Subject) -> None:
    s = removing_subject
    s.provider.scale(s.pool, 4, "contract-1")
    s.settle()
    before = member_ids(s)
    chosen = s.removable(before, 2)
    assert len(set(chosen)) == 2 and set(chosen) <= set(before)
    s.provider.remove(s.pool, chosen, "contract-2")
    s.settle()
    assert member_ids(s) == [m for m in before if m not in chosen]
    assert s.provider.describe(s.pool).desired == 2


def test_remove_of_a_member_the_kind_must_keep_is_refused_and_removes_nothing(
    refusing_subject: Subject,
) -> None:
    s = refusing_subject
    assert s.unremovable is not None
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    before = member_ids(s)
    kept = s.unremovable(before)
    assert kept and set(kept) <= set(before)
    with pytest.raises(ProviderError) as refused:
        s.provider.remove(s.pool, kept, "contract-2")
    assert refused.value.code == "Unsupported"
    s.settle()
    assert member_ids(s) == before and s.provider.describe(s.pool).desired == 2


def test_remove_of_an_unknown_member_raises_not_found_and_removes_nothing(
    contract_subject: Subject,
) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    before = member_ids(s)
    with pytest.raises(NotFound):
        s.provider.remove(s.pool, [before[0], "i-00000000000000000"], "contract-2")
    s.settle()
    assert member_ids(s) == before and s.provider.describe(s.pool).desired == 2


def test_the_provider_protocol_declares_every_method_the_controller_calls() -> None:
    undeclared = [name for name in CONTROLLER_CALLS if not hasattr(CapacityProvider, name)]
    assert not undeclared, f"CapacityProvider does not declare {', '.join(undeclared)}"


def test_every_provider_has_the_hooks_the_controller_calls(contract_subject: Subject) -> None:
    provider = contract_subject.provider
    missing = [name for name in HOOKS if not callable(getattr(provider, name, None))]
    assert not missing, (
        f"{type(provider).__name__} has no {', '.join(f'{m}()' for m in missing)}: the "
        "controller calls them on every provider (CapacityProvider declares them)"
    )


def test_describe_after_begin_tick_answers_as_before_and_the_next_tick_sees_a_change(
    contract_subject: Subject,
) -> None:
    s = contract_subject
    begin_tick = hook(s.provider, "begin_tick")
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    before = seen(s)

    begin_tick()
    assert seen(s) == before

    s.provider.scale(s.pool, 3, "contract-2")
    s.settle()

    def next_tick() -> Capacity | None:
        begin_tick()
        capacity = s.provider.describe(s.pool)
        return capacity if (capacity.desired, len(capacity.members)) == (3, 3) else None

    wait_for(
        next_tick,
        timeout=30,
        what="a tick's describe to show the 3 members asked for in the tick before",
        describe=lambda: str(seen(s)),
    )


def test_tidy_of_a_pool_at_its_desired_count_changes_nothing(contract_subject: Subject) -> None:
    s = contract_subject
    tidy = hook(s.provider, "tidy")
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    before = seen(s)
    tidy(s.pool)
    s.settle()
    assert seen(s) == before


def test_close_can_be_called_twice(contract_subject: Subject) -> None:
    s = contract_subject
    close = hook(s.provider, "close")
    hook(s.provider, "begin_tick")()  # a provider under a controller: watches may be open
    s.provider.scale(s.pool, 1, "contract-1")
    assert s.provider.describe(s.pool).desired == 1
    close()
    close()
