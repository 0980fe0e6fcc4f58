"""NVML readings for one GPU: per-process memory, device memory, the energy counter, clocks.

Everything here only reads: the validator never changes a GPU's clocks or limits.

`nvidia-ml-py` imports without a GPU; `open_gpu` returns None where NVML or the device is
missing, so GPU metrics stay None (never 0) on CPU-only hosts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


# NVML's clock-event reason bits (nvmlClocksEventReason*, formerly "throttle reasons").
CLOCK_EVENTS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}


@dataclass(frozen=True)
class ClockSample:
    at: float  # time.monotonic()
    sm_mhz: int
    mem_mhz: int
    power_mw: int
    temperature_c: int
    events: int  # bitmask of CLOCK_EVENTS


def clock_event_names(mask: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENTS.items() if mask & bit]


@dataclass
class Gpu:
    index: int
    handle: Any
    name: str

    def process_memory(self, pids: Iterable[int]) -> int | None:
        """Bytes used on this GPU by `pids`; None when the driver does not report per process."""
        import pynvml

        wanted = set(pids)
        try:
            procs = list(pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle))
            procs += list(pynvml.nvmlDeviceGetGraphicsRunningProcesses(self.handle))
        except pynvml.NVMLError:
            return None
        used = [p.usedGpuMemory for p in procs if p.pid in wanted]
        if any(u is None for u in used):
            return None
        return int(sum(used))

    def used_memory(self) -> int:
        import pynvml

        return int(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def clocks(self, at: float) -> ClockSample | None:
        """SM and memory clocks, power, temperature and clock-event reasons now; None if NVML can't say."""
        import pynvml

        try:
            reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
            return ClockSample(
                at=at, sm_mhz=int(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM)),
                mem_mhz=int(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_MEM)),
                power_mw=int(pynvml.nvmlDeviceGetPowerUsage(self.handle)),
                temperature_c=int(pynvml.nvmlDeviceGetTemperature(self.handle, pynvml.NVML_TEMPERATURE_GPU)),
                events=int(reasons(self.handle)))
        except pynvml.NVMLError:
            return None

    def energy_mj(self) -> int | None:
        import pynvml

        try:
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except pynvml.NVMLError:
            return None


def open_gpu(index: int | None) -> Gpu | None:
    if index is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
    except Exception as exc:  # noqa: BLE001 - NVMLError, ImportError, library missing
        log.warning("GPU %s not usable through NVML: %s", index, exc)
        return None
    return Gpu(index=index, handle=handle, name=name if isinstance(name, str) else name.decode())


def gpu_name(index: int) -> str | None:
    gpu = open_gpu(index)
    return gpu.name if gpu else None


def device_identity(index: int) -> tuple[int | None, str | None]:
    """GPU `index`'s device-node minor (/dev/nvidia<minor>; not always the index, e.g. in a
    container given one GPU) and its UUID (what CUDA_VISIBLE_DEVICES names unambiguously however
    a sandbox's view makes CUDA number its GPUs). (None, None) without NVML."""
    gpu = open_gpu(index)
    if gpu is None:
        return None, None
    import pynvml

    try:
        minor = int(pynvml.nvmlDeviceGetMinorNumber(gpu.handle))
    except pynvml.NVMLError:
        minor = None
    try:
        uuid = pynvml.nvmlDeviceGetUUID(gpu.handle)
    except pynvml.NVMLError:
        uuid = None
    return minor, uuid if isinstance(uuid, str) or uuid is None else uuid.decode()


def driver_version() -> str | None:
    """The NVIDIA driver's version (e.g. 580.159.04); None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001 - NVMLError, ImportError, library missing
        return None
    return version if isinstance(version, str) else version.decode()
