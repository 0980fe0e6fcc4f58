"""GPU telemetry per request: aggregated from the sampler's NVML readings (read-only)."""

from __future__ import annotations

from edgemaxx.models import Metrics
from sandbox.gpu import ClockSample, Gpu, clock_event_names
from sandbox.sampler import Probe, Sampler


def _sampler(samples: list[ClockSample]) -> Sampler:
    sampler = Sampler(probe=Probe(pids=list, memory=lambda: (0, None)),
                      gpu=Gpu(index=0, handle=None, name="test"), interval_s=0.05)
    sampler._clock_samples.extend(samples)
    return sampler


def test_a_request_gets_the_samples_taken_while_it_ran():
    samples = [ClockSample(at=t, sm_mhz=sm, mem_mhz=2619, power_mw=p, temperature_c=c, events=e)
               for t, sm, p, c, e in [(0.9, 1980, 100_000, 40, 0x1), (1.0, 1875, 560_000, 61, 0x4),
                                      (1.5, 1785, 573_000, 66, 0x4), (2.0, 1830, 540_000, 64, 0x0),
                                      (2.5, 1980, 90_000, 50, 0x1)]]
    telemetry = _sampler(samples).telemetry(1.0, 2.0)
    assert telemetry is not None and telemetry.samples == 3
    assert telemetry.sm_clock_mhz == 1830.0 and telemetry.sm_clock_min_mhz == 1785
    assert telemetry.power_w == 557.7 and telemetry.temperature_c == 66
    assert telemetry.clock_events == ["sw_power_cap"]


def test_a_request_shorter_than_the_interval_gets_the_nearest_sample():
    samples = [ClockSample(at=1.0, sm_mhz=1700, mem_mhz=2619, power_mw=400_000, temperature_c=55, events=0x20),
               ClockSample(at=1.2, sm_mhz=1900, mem_mhz=2619, power_mw=300_000, temperature_c=50, events=0)]
    telemetry = _sampler(samples).telemetry(1.03, 1.05)
    assert telemetry is not None and telemetry.samples == 1 and telemetry.sm_clock_mhz == 1700
    assert telemetry.clock_events == ["sw_thermal_slowdown"]


def test_no_gpu_no_telemetry():
    sampler = Sampler(probe=Probe(pids=list, memory=lambda: (0, None)), gpu=None, interval_s=0.05)
    assert sampler.telemetry(0.0, 1.0) is None
    assert Metrics().telemetry_summary() == {}


def test_clock_event_names_decode_nvml_bits():
    assert clock_event_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert clock_event_names(0) == []
