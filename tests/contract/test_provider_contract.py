"""One contract for every capacity provider, so the simulated one stays honest and the real
ones behave alike: run against SimulatedProvider, the EC2 provider and the Auto Scaling
provider (both on moto). Providers are registered in conftest.py."""

from __future__ import annotations

import pytest

from autoscaler.errors import NotFound

from .conftest import Subject


def member_ids(subject: Subject) -> list[str]:
    return sorted(m.id for m in subject.provider.describe(subject.pool).members)


def test_describe_after_scale_shows_the_requested_count(contract_subject: Subject) -> None:
    contract_subject.provider.scale(contract_subject.pool, 3, "contract-1")
    contract_subject.settle()
    capacity = contract_subject.provider.describe(contract_subject.pool)
    assert (capacity.desired, capacity.ready, capacity.pending) == (3, 3, 0)
    assert len(capacity.members) == 3 and all(m.ready for m in capacity.members)


def test_scale_is_idempotent_by_request_id(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 2, "contract-1")
    first = member_ids(s)
    s.provider.scale(s.pool, 2, "contract-1")
    assert member_ids(s) == first
    assert s.provider.describe(s.pool).desired == 2


def test_a_restarted_provider_does_not_repeat_an_applied_request(
    contract_subject: Subject,
) -> None:
    s = contract_subject
    if s.restart is None:
        pytest.skip("this provider's world lives inside the provider: nothing outlives it")
    s.provider.scale(s.pool, 3, "contract-1")
    first = member_ids(s)
    s.restart().scale(s.pool, 3, "contract-1")
    assert member_ids(s) == first


def test_scale_in_to_zero_leaves_no_owned_members(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 3, "contract-1")
    s.settle()
    s.provider.scale(s.pool, 0, "contract-2")
    capacity = s.provider.describe(s.pool)
    assert (capacity.desired, len(capacity.members)) == (0, 0)


def test_scale_out_after_scale_in_reaches_the_new_count(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 4, "contract-1")
    s.provider.scale(s.pool, 1, "contract-2")
    s.provider.scale(s.pool, 3, "contract-3")
    s.settle()
    assert len(member_ids(s)) == 3 and s.provider.describe(s.pool).desired == 3


def test_remove_of_specific_members_removes_exactly_those(contract_subject: Subject) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 4, "contract-1")
    s.settle()
    before = member_ids(s)
    s.provider.remove(s.pool, before[1:3], "contract-2")
    assert member_ids(s) == [before[0], before[3]]
    assert s.provider.describe(s.pool).desired == 2


def test_remove_of_an_unknown_member_raises_not_found_and_removes_nothing(
    contract_subject: Subject,
) -> None:
    s = contract_subject
    s.provider.scale(s.pool, 2, "contract-1")
    s.settle()
    before = member_ids(s)
    with pytest.raises(NotFound):
        s.provider.remove(s.pool, [before[0], "i-00000000000000000"], "contract-2")
    assert member_ids(s) == before
