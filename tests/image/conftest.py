"""Fixtures for tests/image: the controller image for the current sources (`make image`)."""

from __future__ import annotations

import pytest

from tests.image.engine import ImageUnavailable, image_ref, prerequisite


@pytest.fixture(scope="session")
def image() -> str:
    """The image's reference; a skip where podman or the image is missing (CI: a failure)."""
    problem: ImageUnavailable | None = None
    try:
        return image_ref()
    except ImageUnavailable as e:
        problem = e
    prerequisite(problem)
    raise AssertionError("unreachable")
