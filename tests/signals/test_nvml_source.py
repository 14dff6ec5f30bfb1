"""The NVML reader with a fake NVML module injected: no GPU and no driver needed.

The fake offers the pynvml functions the reader calls, with pynvml's error class layout
(NVMLError and NVMLError_<Name> subclasses). The real module is imported only where the
`nvml` extra is installed; without it the reader's module is loaded against a stand-in, so
these tests run either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.signals.helpers import code_of, req


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # pynvml names its errors this way
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


@dataclass
class Util:
    gpu: int
    memory: int = 0


@dataclass
class Memory:
    used: int
    total: int
    free: int = 0


class FakeNvml:
    """GPUs given as (utilization percent, used bytes, total bytes); errors on demand."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[tuple[int, int, int]]) -> None:
        self.gpus = gpus
        self.inits = 0
        self.init_error: Exception | None = None
        self.device_errors: dict[int, Exception] = {}

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index in self.device_errors:
            raise self.device_errors[index]
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Util:
        return Util(self.gpus[handle][0])

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Memory:
        return Memory(self.gpus[handle][1], self.gpus[handle][2])


@pytest.fixture
def nvml_module() -> Iterator[Any]:
    """autoscaler.signals.nvml, imported against a stand-in pynvml if the extra is absent."""
    if importlib.util.find_spec("pynvml") is not None:
        yield importlib.import_module("autoscaler.signals.nvml")
        return
    saved = sys.modules.pop("autoscaler.signals.nvml", None)
    sys.modules["pynvml"] = types.ModuleType("pynvml")
    try:
        yield importlib.import_module("autoscaler.signals.nvml")
    finally:
        # Leave no stand-in behind: the registry must still report the extra as missing.
        sys.modules.pop("pynvml", None)
        sys.modules.pop("autoscaler.signals.nvml", None)
        if saved is not None:
            sys.modules["autoscaler.signals.nvml"] = saved


GIB = 1 << 30


def test_utilization_is_the_mean_over_every_gpu_as_a_fraction(nvml_module: Any) -> None:
    fake = FakeNvml([(100, 0, GIB), (50, 0, GIB), (0, 0, GIB), (30, 0, GIB)])
    r = req("nvml", metric="utilization")
    reading = nvml_module.NvmlReader(nvml=fake).read([r], now=3.0)[r.key]
    assert reading.value == pytest.approx(0.45)
    assert reading.observed_at == 3.0


def test_memory_is_the_mean_share_in_use_over_the_selected_gpus(nvml_module: Any) -> None:
    fake = FakeNvml([(0, GIB, 4 * GIB), (0, 3 * GIB, 4 * GIB), (0, 4 * GIB, 4 * GIB)])
    r = req("nvml", metric="memory", devices=[0, 1])
    assert nvml_module.NvmlReader(nvml=fake).read([r], now=1.0)[r.key].value == pytest.approx(0.5)


def test_a_gpu_that_does_not_exist_is_stale_with_no_device(nvml_module: Any) -> None:
    fake = FakeNvml([(10, 0, GIB)])
    r = req("nvml", devices=[0, 3])
    reading = nvml_module.NvmlReader(nvml=fake).read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "no_device"
    assert "GPU 3" in (reading.error or "")


def test_a_node_without_gpus_is_stale_not_zero(nvml_module: Any) -> None:
    r = req("nvml")
    reading = nvml_module.NvmlReader(nvml=FakeNvml([])).read([r], now=1.0)[r.key]
    assert reading.value is None
    assert code_of(reading.error) == "no_device"


def test_a_failing_gpu_fails_only_the_signals_that_read_it(nvml_module: Any) -> None:
    fake = FakeNvml([(10, 0, GIB), (90, 0, GIB)])
    fake.device_errors[1] = NVMLError_NotSupported("Not Supported")
    first = req("nvml", signal="first", devices=[0])
    both = req("nvml", signal="both")
    got = nvml_module.NvmlReader(nvml=fake).read([first, both], now=1.0)
    assert got[first.key].value == pytest.approx(0.1)
    assert code_of(got[both.key].error) == "nvml_not_supported"


def test_a_failed_init_is_stale_and_retried_on_the_next_read(nvml_module: Any) -> None:
    fake = FakeNvml([(40, 0, GIB)])
    fake.init_error = NVMLError_DriverNotLoaded("Driver Not Loaded")
    source = nvml_module.NvmlReader(nvml=fake)
    r = req("nvml")
    assert code_of(source.read([r], now=1.0)[r.key].error) == "nvml_driver_not_loaded"
    fake.init_error = None
    assert source.read([r], now=2.0)[r.key].value == pytest.approx(0.4)
    source.read([r], now=3.0)
    assert fake.inits == 2, "NVML is initialised once after it succeeds"
