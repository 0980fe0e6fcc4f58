"""Sampling a running submission's resources on a thread: peak RAM, peak VRAM, energy marks, and the
GPU's clocks, power and temperature (so a slow request can say why)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgemaxx.models import GpuTelemetry
from sandbox.gpu import ClockSample, Gpu, clock_event_names

# A long run samples every 50 ms for an hour at most: 72k samples of a few ints.
_MAX_CLOCK_SAMPLES = 100_000


@dataclass
class Probe:
    """How to read one sandbox: its host PIDs and its memory (current, kernel peak or None)."""

    pids: Callable[[], list[int]]
    memory: Callable[[], tuple[int, int | None]]


@dataclass
class Sampler:
    probe: Probe
    gpu: Gpu | None
    interval_s: float
    memory_limit: int | None = None  # bytes; enforced here only when the backend can't
    on_over_limit: Callable[[int], None] | None = None

    peak_ram: int = 0
    peak_vram_process: int | None = None
    peak_vram_device: int | None = None
    vram_per_process_ok: bool = True
    _device_before: int | None = None
    _clock_samples: list[ClockSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.gpu:
            self._device_before = self.gpu.used_memory()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        try:
            current, peak = self.probe.memory()
        except OSError:
            return
        self.peak_ram = max(self.peak_ram, current, peak or 0)
        if self.memory_limit and current > self.memory_limit and self.on_over_limit:
            self.on_over_limit(current)
        if self.gpu:
            self._sample_gpu()

    def _sample_gpu(self) -> None:
        assert self.gpu is not None
        used = self.gpu.process_memory(self.probe.pids())
        if used is None:
            self.vram_per_process_ok = False
        else:
            self.peak_vram_process = max(self.peak_vram_process or 0, used)
        device = self.gpu.used_memory() - (self._device_before or 0)
        self.peak_vram_device = max(self.peak_vram_device or 0, device)
        sample = self.gpu.clocks(time.monotonic())
        if sample is not None and len(self._clock_samples) < _MAX_CLOCK_SAMPLES:
            self._clock_samples.append(sample)

    def telemetry(self, start: float, end: float) -> GpuTelemetry | None:
        """The GPU's state between two `time.monotonic()` marks (the nearest sample if none fell
        inside: a request shorter than the sampling interval)."""
        if self.gpu is None or not self._clock_samples:
            return None
        inside = [s for s in self._clock_samples if start <= s.at <= end]
        if not inside:
            middle = (start + end) / 2
            inside = [min(self._clock_samples, key=lambda s: abs(s.at - middle))]
        events = 0
        for sample in inside:
            events |= sample.events
        return GpuTelemetry(
            samples=len(inside), sm_clock_mhz=round(statistics.fmean(s.sm_mhz for s in inside), 1),
            sm_clock_min_mhz=min(s.sm_mhz for s in inside),
            mem_clock_mhz=round(statistics.fmean(s.mem_mhz for s in inside), 1),
            power_w=round(statistics.fmean(s.power_mw for s in inside) / 1000, 1),
            temperature_c=max(s.temperature_c for s in inside), clock_events=clock_event_names(events))

    def vram(self) -> tuple[int | None, str | None]:
        """Peak VRAM and how it was measured: per process when the driver allows, else device delta."""
        if self.gpu is None:
            return None, None
        if self.vram_per_process_ok and self.peak_vram_process:
            return self.peak_vram_process, "per-process"
        return self.peak_vram_device, "device-delta"

    def energy_mj(self) -> int | None:
        return self.gpu.energy_mj() if self.gpu else None
