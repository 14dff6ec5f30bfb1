"""Typed errors that every layer may raise or catch: providers, signal sources, kube, nodes.

They live here, below every adapter, so that a signal source, a provider and the kube
plug-ins can share them without importing each other. This module must never import
anything but the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ProviderError(Exception):
    """A provider could not do what was asked; `code` is the cloud's error code if any."""

    code = "ProviderError"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class CapacityUnavailable(ProviderError):
    """The cloud has no capacity for this request now (InsufficientInstanceCapacity...)."""

    code = "CapacityUnavailable"


class Throttled(ProviderError):
    """The API asked us to slow down (RequestLimitExceeded, 429)."""

    code = "Throttled"


class NotFound(ProviderError):
    """The scaled object does not exist (a deleted Deployment, an unknown ASG)."""

    code = "NotFound"


class ProviderUnavailable(Exception):
    """No provider can be built for a target kind; the message names the pool."""


class SourceUnavailable(Exception):
    """A configured source type has no reader in this build (or its extra is missing)."""


# snake_case codes from the signal readers; CamelCase AWS error codes from the AWS readers.
_CODE = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]{0,63}): ")


def reading_error_code(error: str) -> str:
    """The code a failed reading's error starts with (`timeout`, `AccessDenied`); `other`
    when it carries none. Readings fail as "<code>: <message>" (signals/_common.py)."""
    m = _CODE.match(error)
    return m.group(1) if m else "other"


@contextmanager
def translated_by(translate: Callable[[Exception], ProviderError | None]) -> Iterator[None]:
    """Turn a client library's exceptions escaping the block into typed provider errors:
    `translate` gives the error to raise instead, or None to let the exception through.
    A ProviderError passes as it is."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from None
