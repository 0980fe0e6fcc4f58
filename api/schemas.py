"""HTTP bodies: what the API accepts and returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from edgemaxx.models import ContainerRuntime, Metrics, SandboxTier
from scoring.copies import CopyEvidence
from state.preflight import PreflightReport
from state.records import ChainStatus, Progress, SubmissionState


class WorkerPublic(BaseModel):
    name: str
    kind: str
    gpu: int | None
    gpu_name: str | None
    tier: SandboxTier | None = None
    alive: bool
    busy: bool
    progress: Progress
    busy_fraction: float | None
    sandbox_runtime: ContainerRuntime | None = None
    sandbox_problem: str = ""  # non-empty: this worker refuses benchmarks until it is fixed


class ContestProgress(BaseModel):
    contest: str
    run_id: str
    seed: str
    started_at: float
    states: dict[str, int]
    baseline_ready: bool
    baseline_error: str = ""


class StatusPublic(BaseModel):
    healthy: bool
    redis: bool
    workers: list[WorkerPublic]
    queues: dict[str, int]
    contests: list[ContestProgress]
    chain: ChainStatus | None = None
    # Builders' and workers' start-up checks that found something: why a worker never came up
    # (no Docker socket, no such GPU, ...) or what it cannot do (a contest it cannot score).
    preflight: list[PreflightReport] = Field(default_factory=list)


class BaselinePublic(BaseModel):
    worker: str
    metrics: Metrics
    summary: dict


class LeaderboardRow(BaseModel):
    rank: int | None
    hotkey: str
    uid: int | None
    repository: str
    revision: str | None
    state: SubmissionState
    score: float | None
    similarity_mean: float | None
    similarity_min: float | None
    summary: dict | None
    reason: str = ""
    weight: float | None = None
    flagged: str = ""  # duplicate of / copy of / tied with another hotkey, in words
    copy_evidence: CopyEvidence | None = None


class ContestPublic(BaseModel):
    id: str
    description: str
    run_id: str
    seed: str
    inputs: int
    baselines: list[BaselinePublic]
    leaderboard: list[LeaderboardRow]


class SubmissionPublic(BaseModel):
    run_id: str
    contest: str
    hotkey: str
    uid: int | None
    repository: str
    revision: str | None
    state: SubmissionState
    reason: str
    score: float | None
    score_terms: dict[str, float]
    similarities: list[float]
    similarity_mean: float | None
    similarity_min: float | None
    metrics: Metrics | None
    summary: dict | None
    worker: str | None
    log_tail: str
    attempts: int
    updated_at: float


class SubmissionCreate(BaseModel):
    hotkey: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    repository: str = Field(min_length=1, max_length=512)
    revision: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{7,40}$")
    contest: str = Field(min_length=1, max_length=64)
    uid: int | None = Field(default=None, ge=0, le=65535)
    block: int | None = Field(default=None, ge=0)


class SubmissionAccepted(BaseModel):
    run_id: str
    hotkey: str
    state: SubmissionState


class ErrorBody(BaseModel):
    detail: str
