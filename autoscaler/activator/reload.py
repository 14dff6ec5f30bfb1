"""Reading the pools again while the activator runs: AutoscalingPool objects come and go.

Why: with `--crd-pools` the pools are objects that people create, edit and delete while the
activator runs, exactly as the controller sees them; an activator that read them once would
silently ignore the new ones. The loader is the controller's pool source (`load()` gives
`LoadedPools`, or None when it could not look: keep what you have, never drop pools on an
API blip). It blocks (the Kubernetes client), so it runs in a worker thread; what it found
is applied on the loop. An object that is not a valid pool is skipped with a warning that
names it and what is wrong, once until it changes; it never stops the activator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from autoscaler.pool_sources import LoadedPools, PoolProblem

log = logging.getLogger("autoscaler.activator")


class PoolLoader(Protocol):
    """Gives the pools now (a `PoolSource`: FilePools, CrdPools)."""

    def load(self) -> LoadedPools | None:
        """The pools now; None when they could not be read (keep the ones you have)."""
        ...


class Reloader:
    """Loads the pools from `loader` on `once()` and every `every` seconds in `run()`, and
    hands each answer to `apply` (on the loop)."""

    def __init__(
        self, loader: PoolLoader, apply: Callable[[LoadedPools], None], every: float
    ) -> None:
        self.loader = loader
        self.every = every
        self._apply = apply
        self._warned: set[tuple[str, str]] = set()

    async def once(self) -> bool:
        """Load and apply now; False when the pools could not be read (nothing changed)."""
        try:
            loaded = await asyncio.to_thread(self.loader.load)
        except Exception as exc:  # a loader should answer None; never let it stop us
            log.warning("activator: reading the pools failed (%s: %s); keeping the ones it "
                        "fronts", type(exc).__name__, exc)  # fmt: skip
            return False
        if loaded is None:
            return False
        self._warn(loaded.problems)
        self._apply(loaded)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.once()
            except Exception:  # applying must never end the reloading
                log.exception("activator: applying the pools failed; retrying in %gs", self.every)

    def _warn(self, problems: list[PoolProblem]) -> None:
        now = {(str(p.ref), p.message) for p in problems}
        for ref, message in sorted(now - self._warned):
            log.warning("activator: AutoscalingPool %s is not a valid pool and is skipped: %s",
                        ref, message)  # fmt: skip
        self._warned = now
