"""What the service keeps per contest run: the run, each submission's record, each worker."""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, Field

from edgemaxx.models import (
    CheckReport,
    ContainerRuntime,
    Metrics,
    PreparedSubmission,
    SandboxTier,
    SubmissionSource,
    TextToImageRequest,
)


class SubmissionState(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    PREPARED = "prepared"
    BENCHMARKING = "benchmarking"
    SCORED = "scored"
    INVALID = "invalid"

    @property
    def final(self) -> bool:
        return self in (SubmissionState.SCORED, SubmissionState.INVALID)


class ContestRun(BaseModel):
    id: str
    contest: str
    seed: str
    inputs: list[TextToImageRequest]
    started_at: float = Field(default_factory=time.time)
    block: int | None = None  # the block the seed was taken from, on chain
    baseline_source: SubmissionSource
    baseline_prepared: PreparedSubmission | None = None
    baseline_error: str = ""


class SubmissionRecord(BaseModel):
    hotkey: str
    uid: int | None = None
    source: SubmissionSource
    block: int | None = None
    state: SubmissionState = SubmissionState.QUEUED
    reason: str = ""
    prepared: PreparedSubmission | None = None
    metrics: Metrics | None = None
    similarities: list[float] = Field(default_factory=list)
    similarity_mean: float | None = None
    similarity_min: float | None = None
    score: float | None = None
    score_terms: dict[str, float] = Field(default_factory=dict)
    worker: str | None = None
    log_tail: str = ""
    attempts: int = 0
    updated_at: float = Field(default_factory=time.time)


class Progress(BaseModel):
    phase: str  # cloning, building, loading, request i of N, comparing, idle
    run_id: str | None = None
    hotkey: str | None = None
    current: int | None = None
    total: int | None = None


class WorkerStatus(BaseModel):
    name: str
    kind: str  # gpu or builder
    gpu: int | None = None
    gpu_name: str | None = None
    tier: SandboxTier | None = None  # how its sandboxes hold submissions (GPU workers)
    busy: bool = False
    progress: Progress = Field(default_factory=lambda: Progress(phase="idle"))
    heartbeat: float = Field(default_factory=time.time)
    started_at: float = Field(default_factory=time.time)
    busy_seconds: float = 0.0
    # GPU workers: the runtime benchmark containers run under, and why they can't ("" when they can).
    sandbox_runtime: ContainerRuntime | None = None
    sandbox_problem: str = ""

    def busy_fraction(self, now: float) -> float | None:
        """Share of this worker's uptime spent on jobs; GPU workers only."""
        if self.kind != "gpu":
            return None
        return min(1.0, self.busy_seconds / max(now - self.started_at, 1e-9))


class CheckState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"  # the validator failed, not the submission


class CheckRecord(BaseModel):
    id: str
    repository: str
    revision: str
    contest: str
    state: CheckState = CheckState.QUEUED
    ok: bool | None = None
    report: CheckReport | None = None
    error: str = ""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class WeightsAttempt(BaseModel):
    block: int
    at: float = Field(default_factory=time.time)
    run_id: str | None = None
    ok: bool
    message: str
    version_key: int | None = None
    weights: dict[int, float] = Field(default_factory=dict)


class ChainStatus(BaseModel):
    """What the chain service last saw and did; the API shows it under /v1/status."""

    block: int | None = None
    updated_at: float = Field(default_factory=time.time)
    runs: dict[str, str] = Field(default_factory=dict)  # contest → current run id
    submissions: int = 0
    rejected: dict[str, str] = Field(default_factory=dict)
    dropped: dict[str, str] = Field(default_factory=dict)
    last_weights: WeightsAttempt | None = None
    error: str = ""
    consecutive_errors: int = 0
    wallet_error: str = ""  # why no weights can be set (no hotkey file, ...), while it lasts
