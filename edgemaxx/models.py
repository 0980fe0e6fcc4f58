"""Shared domain models: what a submission is and what measuring it produced."""

from __future__ import annotations

import statistics
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field


class Backend(StrEnum):
    """Where a submission runs: a Docker container, or the process sandbox (hosts without Docker)."""

    DOCKER = "docker"
    PROCESS = "process"


class BackendChoice(StrEnum):
    """What an operator asks for: a backend, or `auto` (Docker when reachable)."""

    AUTO = "auto"
    DOCKER = "docker"
    PROCESS = "process"


class SandboxTier(StrEnum):
    """How strongly a submission is held, strongest first. The process backend picks the
    strongest its host allows (`sandbox/tiers.py`); a Docker run is always `container`."""

    CONTAINER = "container"  # Docker: its own root fs, namespaces, cgroup, seccomp
    BWRAP = "bwrap"  # bubblewrap: private filesystem view, network and PID namespaces
    LANDLOCK = "landlock"  # no namespaces allowed: Landlock filesystem view, seccomp network denial


class MemoryGuard(StrEnum):
    """Who stops a submission past its memory limit."""

    KERNEL = "kernel"  # a cgroup: the kernel's OOM killer, at once
    SAMPLER = "sampler"  # the validator's sampler, every sample_interval_s (fallback)


class ContainerRuntime(StrEnum):
    """The OCI runtime Docker runs benchmark containers under: `runc` (the host kernel's namespaces)
    or `runsc` (gVisor: a user-space kernel between the submission and the host)."""

    RUNC = "runc"
    RUNSC = "runsc"


class TextToImageRequest(BaseModel):
    """The inference request, byte-compatible with SN39's `pipelines.models.TextToImageRequest`."""

    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None


class SourceKind(StrEnum):
    LOCAL = "local"
    GIT = "git"


class SubmissionSource(BaseModel):
    """Where a submission's code comes from: a local directory or an https repo at a revision."""

    kind: SourceKind
    path: Path | None = None
    url: str | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        if self.kind is SourceKind.LOCAL:
            return str(self.path)
        return f"{self.url}@{self.revision}"


class ModelSpec(BaseModel):
    """One `[[tool.edge-maxxing.models]]` entry: a Hugging Face repo fetched before the run."""

    repository: str
    revision: str
    include: list[str] | None = None
    exclude: list[str] | None = None


class CheckResult(BaseModel):
    name: str
    ok: bool
    reason: str = ""
    # Could not be decided here (e.g. the hub is unreachable): not a failure, the validator
    # decides when it prepares the submission.
    unknown: bool = False


class CheckReport(BaseModel):
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if not c.ok), None)


class GpuTelemetry(BaseModel):
    """What the GPU was doing while a request ran (read-only NVML samples): why a run was slow."""

    samples: int
    sm_clock_mhz: float  # mean over the request
    sm_clock_min_mhz: int
    mem_clock_mhz: float
    power_w: float  # mean
    temperature_c: int  # highest
    # Clock-event ("throttle") reasons seen during the request, NVML's names (e.g. "sw_power_cap").
    clock_events: list[str] = Field(default_factory=list)


class RequestOutcome(BaseModel):
    """One inference request as the validator saw it."""

    index: int
    generation_time_s: float
    output_bytes: int
    width: int | None = None
    height: int | None = None
    decoded: bool
    error: str = ""
    gpu: GpuTelemetry | None = None  # None where there is no GPU


class Metrics(BaseModel):
    """Everything measured for one run. GPU figures are None where there is no GPU, never 0."""

    load_time_s: float | None = None
    warmup_times_s: list[float] = Field(default_factory=list)  # the unmeasured warm-up requests
    generation_times_s: list[float] = Field(default_factory=list)
    peak_vram_bytes: int | None = None
    vram_method: str | None = None  # "per-process" or "device-delta"
    peak_vram_device_delta_bytes: int | None = None  # device-wide used memory over its start value
    energy_per_image_j: float | None = None
    peak_ram_bytes: int | None = None
    code_bytes: int = 0
    models_bytes: int = 0
    gpu_telemetry: list[GpuTelemetry] = Field(default_factory=list)  # per measured request, on a GPU

    @property
    def size_bytes(self) -> int:
        return self.code_bytes + self.models_bytes

    @property
    def mean_generation_time_s(self) -> float | None:
        return statistics.fmean(self.generation_times_s) if self.generation_times_s else None

    @property
    def median_generation_time_s(self) -> float | None:
        return statistics.median(self.generation_times_s) if self.generation_times_s else None

    @property
    def cv_generation_time(self) -> float | None:
        """Coefficient of variation: how noisy this run's timings were."""
        times = self.generation_times_s
        if len(times) < 2:
            return None
        mean = statistics.fmean(times)
        return statistics.stdev(times) / mean if mean > 0 else None

    def summary(self) -> dict[str, float | int | str | None]:
        return {
            "load_time_s": self.load_time_s,
            "mean_generation_time_s": self.mean_generation_time_s,
            "median_generation_time_s": self.median_generation_time_s,
            "cv_generation_time": self.cv_generation_time,
            "peak_vram_bytes": self.peak_vram_bytes,
            "vram_method": self.vram_method,
            "energy_per_image_j": self.energy_per_image_j,
            "peak_ram_bytes": self.peak_ram_bytes,
            "size_bytes": self.size_bytes,
            **self.telemetry_summary(),
        }

    def telemetry_summary(self) -> dict[str, float | int | str | None]:
        """The GPU's state over the measured requests: median SM clock, mean power, hottest,
        every clock-event reason seen (empty where there is no GPU)."""
        samples = self.gpu_telemetry
        if not samples:
            return {}
        return {
            "sm_clock_mhz_median": statistics.median(t.sm_clock_mhz for t in samples),
            "sm_clock_mhz_min": min(t.sm_clock_min_mhz for t in samples),
            "power_w_mean": round(statistics.fmean(t.power_w for t in samples), 1),
            "temperature_c_max": max(t.temperature_c for t in samples),
            "clock_events": ",".join(sorted({e for t in samples for e in t.clock_events})),
        }


class RunPhases(BaseModel):
    """The validator's own part of a run's wall time (the load, warm-up and requests in `Metrics`
    are the submission's): starting the sandbox before the load clock starts, and stopping it
    once the last request is answered (kill, wait for the exit that frees the GPU's memory,
    remove the run directory)."""

    start_s: float | None = None
    teardown_s: float | None = None


class RunStatus(StrEnum):
    OK = "ok"
    INVALID = "invalid"


class RunResult(BaseModel):
    """One submission run in a sandbox: metrics, per-request outcomes, and the miner's log tail."""

    name: str
    backend: Backend
    status: RunStatus
    runtime: ContainerRuntime | None = None  # the Docker runtime it ran under; None: no container
    reason: str = ""
    tier: SandboxTier | None = None  # None only for a run that never started a sandbox
    memory_guard: MemoryGuard | None = None
    gpu: str | None = None  # the card that measured it, as NVML names it; None: no GPU (CPU)
    metrics: Metrics = Field(default_factory=Metrics)
    phases: RunPhases = Field(default_factory=RunPhases)
    requests: list[RequestOutcome] = Field(default_factory=list)
    log_tail: str = ""
    # Raw image bytes per input; kept out of JSON dumps (use --out to keep them).
    outputs: list[bytes | None] = Field(default_factory=list, exclude=True)


class CodeFingerprint(BaseModel):
    """A submission's Python code, normalised (see images/fingerprint.py): equal digests mean the
    same code up to names, comments and formatting; `statements` are the normalised statements'
    hashes, sorted (a multiset), so a copy that adds or changes a few still shows."""

    digest: str
    statements: list[str] = Field(default_factory=list)


class ModelFile(BaseModel):
    """One weight file a submission's models resolved to, by content."""

    repository: str
    path: str
    size: int
    blob: str  # the hub cache's content hash (sha256 for LFS files)


class PreparedSubmission(BaseModel):
    """A submission ready for a GPU worker: checked, its environment built, models fetched."""

    name: str
    source: SubmissionSource
    code_dir: Path
    backend: Backend
    environment: str  # image tag, or venv directory
    # The host whose Docker engine and disk hold the environment and code_dir (Settings.host);
    # None: prepared before hosts were named (treated as this host's when its files are there).
    host: str | None = None
    models: list[ModelSpec] = Field(default_factory=list)
    code_bytes: int = 0
    models_bytes: int = 0
    checks: CheckReport = Field(default_factory=CheckReport)
    code_fingerprint: CodeFingerprint | None = None
    model_files: list[ModelFile] = Field(default_factory=list)
