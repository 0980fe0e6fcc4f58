"""What the service keeps per contest run: the run, each submission's record, each worker."""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, Field

from edgemaxx.models import CheckReport, Metrics, PreparedSubmission, SubmissionSource
from sandbox.protocol import TextToImageRequest


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
    baseline_worker: str | None = None
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
    busy: bool = False
    progress: Progress = Field(default_factory=lambda: Progress(phase="idle"))
    heartbeat: float = Field(default_factory=time.time)
    started_at: float = Field(default_factory=time.time)
    busy_seconds: float = 0.0


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
