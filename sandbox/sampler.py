"""Sampling a running submission's resources on a thread: peak RAM, peak VRAM, energy marks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.gpu import Gpu


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

    def vram(self) -> tuple[int | None, str | None]:
        """Peak VRAM and how it was measured: per process when the driver allows, else device delta."""
        if self.gpu is None:
            return None, None
        if self.vram_per_process_ok and self.peak_vram_process:
            return self.peak_vram_process, "per-process"
        return self.peak_vram_device, "device-delta"

    def energy_mj(self) -> int | None:
        return self.gpu.energy_mj() if self.gpu else None
