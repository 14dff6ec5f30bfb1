"""Where a sweep's simulations run: local processes (the default) or a Ray cluster.

Grid sweeps and searches hand an executor a function and its argument tuples; it returns
the results in the order the jobs were given, whatever order they finished in, and calls
`progress` once per finished job. The function is pure (a variant and a trace in, metrics
out), so the results do not depend on the executor or on how many workers it has: a test
asserts local and Ray results are equal. On any error, Ctrl-C included, the jobs not yet
finished are stopped at once (processes terminated, Ray tasks cancelled) and the error is
raised again.

Ray is an optional extra (`pip install 'elastic-autoscaler[ray]'`); its nodes need the
same version of this package installed, as they import the simulator to run it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

EXECUTORS = ("local", "ray")
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Ray head's port before saying it is unreachable (ray.init would
otherwise retry for about a minute)."""

Progress = Callable[[Any], None]


class ExecutorError(Exception):
    """An executor that cannot start: its extra is missing or its cluster unreachable."""


class Executor:
    """Runs jobs; a context manager that releases its workers on exit."""

    name = "executor"
    workers = 1
    local = True
    """True when the workers share this machine's files (a trace path can be passed);
    False when the data has to be shipped (`put`)."""

    def map(
        self,
        fn: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        progress: Progress | None = None,
    ) -> list[Any]:
        raise NotImplementedError

    def put(self, value: Any) -> Any:
        """`value` as a job argument: itself here, an object-store reference on Ray."""
        return value

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is for the parent, which stops the workers itself (no worker
    prints a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor(Executor):
    """`workers` processes on this machine (1: in this process). The pool is started at
    the first `map` and kept for the next (a search runs many small batches)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(
        self,
        fn: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        progress: Progress | None = None,
    ) -> list[Any]:
        if self.workers <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(fn(*job))
                if progress:
                    progress(results[-1])
            return results
        if self._pool is None:
            context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_ignore_interrupts
            )
        out: list[Any] = [None] * len(jobs)
        try:
            futures: dict[Future[Any], int] = {
                self._pool.submit(fn, *job): i for i, job in enumerate(jobs)
            }
            for future in as_completed(futures):
                out[futures[future]] = future.result()
                if progress:
                    progress(out[futures[future]])
        except BaseException:
            self._stop()
            raise
        return out

    def _stop(self) -> None:
        """Drop the jobs not started and end the running ones now (not after they finish,
        as shutdown alone would)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
        if terminate is not None:
            terminate()
            return
        # Before shutdown, which forgets them.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExecutorError(
            f"--address {address!r}: write the Ray head's HOST:PORT, e.g. 10.0.0.5:6379 "
            "(the address `ray start --head` prints)"
        )
    return host.strip("[]"), int(port)


class RayExecutor(Executor):
    """Jobs as Ray tasks on the cluster at `address` (HOST:PORT of its head), one CPU
    each; the trace is shipped once through the object store (`put`)."""

    name = "ray"
    local = False

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError:
            raise ExecutorError(
                "--executor ray needs Ray: pip install 'elastic-autoscaler[ray]' "
                "(or run without --executor for local processes)"
            ) from None
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), CONNECT_TIMEOUT).close()
        except OSError as exc:
            raise ExecutorError(
                f"--address {address}: no Ray head answers there ({exc.strerror or exc}); "
                "start one with `ray start --head --port PORT` or give its HOST:PORT"
            ) from None
        self._ray = ray
        try:
            ray.init(
                address=f"{host}:{port}",
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:  # ConnectionError, RuntimeError: version mismatch etc.
            raise ExecutorError(
                f"--address {address}: cannot join the Ray cluster: {exc}"
            ) from None
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.workers = max(1, int(resources.get("CPU", 1)))

    def put(self, value: Any) -> Any:
        return self._ray.put(value)

    def map(
        self,
        fn: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        progress: Progress | None = None,
    ) -> list[Any]:
        ray = self._ray
        # A task that fails raises here rather than being retried: the simulation is
        # deterministic, so a retry would fail the same way.
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [remote.remote(*job) for job in jobs]
        where = {ref: i for i, ref in enumerate(refs)}
        out: list[Any] = [None] * len(jobs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    out[where[ref]] = ray.get(ref)
                    if progress:
                        progress(out[where[ref]])
        except BaseException as exc:
            for ref in pending:
                ray.cancel(ref, force=True)
            if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, Exception):
                raise exc.cause from None  # the simulation's own error, as a local run gives
            if isinstance(exc, ray.exceptions.RayError):
                raise ExecutorError(f"the Ray cluster failed a simulation: {exc}") from None
            raise
        return out

    def close(self) -> None:
        self._ray.shutdown()


def executor(name: str, workers: int, address: str | None = None) -> Executor:
    """The executor called `name` (one of EXECUTORS)."""
    if name == "local":
        if address:
            raise ExecutorError("--address is for --executor ray; local processes need none")
        return LocalExecutor(workers)
    if name == "ray":
        if not address:
            raise ExecutorError(
                "--executor ray needs --address HOST:PORT, the head `ray start --head` prints"
            )
        return RayExecutor(address)
    raise ExecutorError(f"--executor {name!r}: use one of {', '.join(EXECUTORS)}")
