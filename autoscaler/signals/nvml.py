"""The `nvml` source: this node's GPUs through NVML (the optional `nvml` extra, nvidia-ml-py).

`metric: utilization` is the mean over the selected GPUs of the share of the last sample
period in which a kernel ran (NVML's `gpu` utilization, percent -> 0..1); `metric: memory`
is the mean share of GPU memory in use (used / total). `devices` selects GPUs by index;
default: every GPU NVML sees. NVML is initialised on the first read and again after a
failure (a driver reload, a lost GPU).

Importing this module imports `pynvml`, so a missing extra is reported by the source
registry with the install command. This module must never turn an NVML error, a missing
device or an empty device list into a number: each is a stale reading naming the code.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import pynvml

from autoscaler.types import Reading

from ._common import checked_value, failed, where
from .base import SignalKey, SignalRequest


class NvmlFailed(Exception):
    """NVML gave no usable answer; `code` is what telemetry counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NvmlReader:
    """Reads `nvml` signals; one instance per controller (NVML is process-wide)."""

    def __init__(self, nvml: Any = None) -> None:
        """`nvml` replaces the pynvml module (a fake in tests)."""
        self._nvml = nvml if nvml is not None else pynvml
        self._lock = threading.Lock()
        self._initialised = False

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        # NVML calls are fast and local; one lock keeps init/shutdown and reads in order.
        with self._lock:
            try:
                samples = self._sample(requests)
            except NvmlFailed as exc:
                self._initialised = False  # try a fresh nvmlInit next read
                return {r.key: _failed(r, now, exc) for r in requests}
        return {r.key: self._reading(r, samples, now) for r in requests}

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                with contextlib.suppress(self._nvml.NVMLError):
                    self._nvml.nvmlShutdown()
                self._initialised = False

    def _sample(self, requests: Sequence[SignalRequest]) -> dict[int, dict[str, Any]]:
        """Utilization and memory of every GPU any request needs, by index; a GPU whose
        query fails maps to the NvmlFailed that says why."""
        nvml = self._nvml
        try:
            if not self._initialised:
                nvml.nvmlInit()
                self._initialised = True
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise _nvml_error(exc, "cannot initialise NVML or count GPUs") from None
        wanted: set[int] = set()
        for r in requests:
            wanted.update(r.source.devices if r.source.devices is not None else range(count))
        return {i: self._device(i, count) for i in sorted(wanted)}

    def _device(self, index: int, count: int) -> dict[str, Any]:
        nvml = self._nvml
        if index >= count:
            return {"error": NvmlFailed("no_device", f"GPU {index} does not exist ({count} seen)")}
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        except nvml.NVMLError as exc:
            return {"error": _nvml_error(exc, f"GPU {index}")}
        total = float(mem.total)
        return {
            "utilization": float(util.gpu) / 100.0,
            "memory": float(mem.used) / total if total > 0 else float("nan"),
        }

    def _reading(
        self, req: SignalRequest, samples: dict[int, dict[str, Any]], now: float
    ) -> Reading:
        src = req.source
        indices = src.devices if src.devices is not None else sorted(samples)
        if not indices:
            return _failed(req, now, NvmlFailed("no_device", "NVML sees no GPU on this node"))
        values = []
        for i in indices:
            sample = samples[i]
            if "error" in sample:
                return _failed(req, now, sample["error"])
            values.append(sample[src.metric])
        mean = sum(values) / len(values)
        return checked_value(now, mean, f"{where(req)}: nvml {src.metric} of GPUs {indices}")


def _nvml_error(exc: Exception, what: str) -> NvmlFailed:
    # pynvml names each error class NVMLError_<Name>; the name is a stable code.
    name = type(exc).__name__.removeprefix("NVMLError_").removeprefix("NVMLError")
    code = "nvml_" + (_snake(name) if name else "error")
    return NvmlFailed(code, f"{what}: {exc}")


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def _failed(req: SignalRequest, now: float, exc: NvmlFailed) -> Reading:
    return failed(now, exc.code, f"{where(req)}: nvml: {exc.message}")


__all__ = ["NvmlFailed", "NvmlReader"]
