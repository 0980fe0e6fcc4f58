"""HTTP bodies: what the API accepts and returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest
from edgemaxx.models import ContainerRuntime, Metrics, SandboxTier
from scoring.copies import CopyEvidence
from state.preflight import PreflightReport
from state.records import (
    ChainStatus,
    HousekeepingReport,
    JobTimings,
    Progress,
    Remeasure,
    RunState,
    SubmissionState,
    WeightsAttempt,
)


class WorkerPublic(BaseModel):
    name: str
    kind: str
    host: str = Field(default="", description="the box it runs on (EDGEMAXX_HOST)")
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
    elapsed_s: float | None = Field(default=None, description="seconds spent on the job in flight")
    eta_s: float | None = Field(default=None, description="seconds left on it, from measured durations")


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
    waiting: int = Field(default=0, description="submissions not benchmarked yet (queued, preparing, prepared)")
    eta_s: float | None = Field(default=None, description="seconds until the run's last benchmark should be "
                                "done, from measured durations and the live workers serving the contest")
    typical_benchmark_s: float | None = Field(default=None, description="median of recent benchmark durations")


class WeightsStatus(BaseModel):
    """When weights were last set on chain, from which runs, and when the next attempt is due."""

    last_set_at: float | None = None
    last_set_block: int | None = None
    last_set_runs: list[str] = Field(default_factory=list)
    last_set_weights: dict[int, float] = Field(default_factory=dict, description="uid → weight, as set")
    last_attempt_at: float | None = None
    last_attempt_ok: bool | None = None
    last_attempt_message: str = ""
    next_attempt_block: int | None = None
    next_attempt_at: float | None = None
    interval_blocks: int | None = None
    activity_cutoff_blocks: int | None = None


class HostPublic(BaseModel):
    """One box of the validator: its workers, its own queues, its disk and cache."""

    host: str
    alive: bool = Field(description="some worker of it has a fresh heartbeat")
    builders: int = Field(description="live builders")
    gpu_workers: int = Field(description="live GPU workers")
    workers: list[str] = Field(default_factory=list, description="names of its workers, live or not")
    queues: dict[str, int] = Field(default_factory=dict, description="its own queues' depths")
    housekeeping: HousekeepingReport | None = Field(default=None, description="its last pass: disk, model cache")


class StatusPublic(BaseModel):
    healthy: bool
    redis: bool
    generated_at: float | None = Field(default=None, description="when this status was read from Redis")
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
    hosts: list[HostPublic] = Field(default_factory=list, description="the workers grouped by host")
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
    score_terms: dict[str, float] = Field(default_factory=dict,
                                          description="each factor of the score before weighting")
    worker: str | None = Field(default=None, description="the worker that measured it (its baseline is the "
                                                         "reference)")
    block: int | None = Field(default=None, description="the block it was committed at")
    host: str | None = Field(default=None, description="the host that measured it")


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
    host: str | None = Field(default=None, description="the host it was assigned to, then the one that measured it")
    prepared_by_gpu_s: float = Field(default=0.0, description="seconds its GPU worker spent preparing it "
                                     "(its host's build was missing); 0 when prepared ahead")
    baseline_measurements: int | None = Field(
        default=None, description="scored against the median of this many baseline measurements of its worker")
    baseline_drift: str = Field(default="", description="the baseline's drift around this measurement, if notable")
    remeasure: Remeasure = Field(default=Remeasure.NONE, description="measured again because the baseline moved "
                                 "around its first measurement: pending, done (the result is the re-measurement) "
                                 "or abandoned (the first stands)")
    remeasure_note: str = Field(default="", description="why it was measured again, and how that went")
    timings: JobTimings | None = Field(
        default=None, description="its benchmark job's time: the submission's own (load, warm-up, requests) and the "
                                  "validator's (sandbox start and stop, similarity, Redis)")
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


class InputPublic(BaseModel):
    """One request of a run, as every submission and the baseline received it."""

    index: int
    prompt: str
    width: int | None
    height: int | None
    seed: int | None


class RunInputs(BaseModel):
    run_id: str
    inputs: list[InputPublic]


class RunOutputs(BaseModel):
    """Whose output images the run still holds (`GET /v1/runs/{id}/outputs/{name}/{index}`): every
    scored submission's while the run runs; the baseline's and the best few at its end."""

    run_id: str
    outputs: dict[str, list[int]] = Field(description="name (a hotkey, or baseline@worker) → input indices")


class SubmissionDetail(SubmissionPublic):
    """A submission in one run, with what the submission page compares it with."""

    rank: int | None = None
    weight: float | None = None
    flagged: str = ""
    copy_evidence: CopyEvidence | None = None
    block: int | None = None
    run_state: RunState
    rules: Contest | None = Field(description="the contest definition the run started with")
    baseline: BaselinePublic | None = Field(description="the baseline it was scored against (same worker)")
    baseline_outputs: str | None = Field(description="the output name of that baseline's images, if kept")
    inputs: list[InputPublic]
    outputs: list[int] = Field(description="input indices whose output image is kept")


class OwnWeights(BaseModel):
    """The weights this validator set on chain: the last time, and their history."""

    status: WeightsStatus | None
    history: list[WeightsAttempt] = Field(description="each time weights were set, oldest first (the last 100)")


class MinerWeight(BaseModel):
    uid: int
    hotkey: str | None
    weight: float


class ValidatorWeightsPublic(BaseModel):
    uid: int
    hotkey: str
    stake: float
    stake_share: float = Field(description="its share of the stake of the validators listed")
    validator_permit: bool
    last_update: int | None = Field(description="block it last set weights at")
    blocks_since_update: int | None
    weights: dict[int, float] = Field(description="miner uid → fraction of its row")
    top: list[MinerWeight] = Field(description="its largest weights, largest first")
    agreement: float | None = Field(description="1 − half the L1 distance of its row to the stake-weighted "
                                                "consensus: 1 = the same vector, 0 = disjoint")
    this_validator: bool = False


class MinerConsensus(BaseModel):
    uid: int
    hotkey: str | None
    consensus: float = Field(description="stake-weighted mean of the validators' weights")
    min: float
    max: float
    weighted_by: int = Field(description="how many validators give it any weight")


class SubnetWeightsPublic(BaseModel):
    """The weights every validator of the subnet has set, as the chain service last read them."""

    netuid: int
    block: int
    read_at: float
    error: str = ""
    validators: list[ValidatorWeightsPublic] = Field(description="by stake, largest first")
    miners: list[MinerConsensus] = Field(description="by consensus weight, largest first")
