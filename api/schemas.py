"""HTTP bodies: what the API accepts and returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest
from edgemaxx.models import ContainerRuntime, Metrics, SandboxTier
from scoring.copies import CopyEvidence
from state.preflight import PreflightReport
from state.records import ChainStatus, HousekeepingReport, Progress, RunState, SubmissionState


class WorkerPublic(BaseModel):
    name: str
    kind: str
    gpu: int | None
    gpu_name: str | None
    tier: SandboxTier | None = None
    contests: list[str] = Field(default_factory=list, description="contests it benchmarks")
    refused: dict[str, str] = Field(default_factory=dict,
                                    description="contest → why this worker refuses it (another GPU)")
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
    state: RunState = RunState.RUNNING
    deadline_at: float | None = None
    finished_at: float | None = None
    end_reason: str = ""
    states: dict[str, int]
    baseline_ready: bool
    baseline_error: str = ""


class WeightsStatus(BaseModel):
    """When weights were last set on chain, from which runs, and when the next attempt is due."""

    last_set_at: float | None = None
    last_set_block: int | None = None
    last_set_runs: list[str] = Field(default_factory=list)
    last_attempt_at: float | None = None
    last_attempt_ok: bool | None = None
    last_attempt_message: str = ""
    next_attempt_block: int | None = None
    next_attempt_at: float | None = None
    interval_blocks: int | None = None
    activity_cutoff_blocks: int | None = None


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
    weights: WeightsStatus | None = None
    disk_low: bool = False
    housekeeping: list[HousekeepingReport] = Field(default_factory=list, description="each host's last pass")
    warnings: list[str] = Field(default_factory=list, description="what an operator should look at")


class BaselinePublic(BaseModel):
    worker: str
    gpu: str | None = Field(default=None, description="the card that measured it; null: no GPU")
    metrics: Metrics = Field(description="the reference: the median of the worker's measurements")
    summary: dict
    measurements: list[float | None] = Field(
        default_factory=list, description="every measurement's median generation time (s), oldest first")


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
    similarities: list[float] = Field(default_factory=list, description="per input, in input order")
    summary: dict | None
    reason: str = ""
    weight: float | None = None
    flagged: str = ""  # duplicate of / copy of / tied with another hotkey, in words
    copy_evidence: CopyEvidence | None = None
    gpu: str | None = Field(default=None, description="the card that measured it; null: no GPU")


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
    gpu: str | None = Field(default=None, description="the card that measured it; null: no GPU")
    baseline_measurements: int | None = Field(
        default=None, description="scored against the median of this many baseline measurements of its worker")
    baseline_drift: str = Field(default="", description="the baseline's drift around this measurement, if notable")
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


class RunWeightsSet(BaseModel):
    """Weights set on chain from a run: the block, when, and this run's uid → weight."""

    block: int
    at: float
    weights: dict[int, float]


class RunSummary(BaseModel):
    """One contest run, as the history lists it."""

    id: str
    contest: str
    state: RunState
    seed: str
    block: int | None = Field(description="the block its inputs seed was taken from (null off chain)")
    started_at: float
    deadline_at: float | None
    finished_at: float | None = Field(description="when it ended (finished or failed); null while running")
    end_reason: str
    submissions: int
    states: dict[str, int] = Field(description="submission state → count")
    weights: dict[int, float] = Field(description="uid → weight earned, frozen when the run finished")
    winner: str | None = Field(description="the hotkey with the largest weight")
    weights_set_count: int = Field(description="how many times weights were set on chain from it")
    last_weights_set: RunWeightsSet | None


class RunPage(BaseModel):
    runs: list[RunSummary] = Field(description="newest first")
    total: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class RunDetail(RunSummary):
    """A run in full: the rules it ran under, baselines, leaderboard, every weights set."""

    rules: Contest | None = Field(description="the contest definition the run started with")
    inputs: int
    baselines: list[BaselinePublic]
    leaderboard: list[LeaderboardRow]
    weights_sets: list[RunWeightsSet] = Field(description="oldest first, the last 100")
