"""What the service keeps per contest run: the run, each submission's record, each worker."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

from edgemaxx.contest import Contest, load_contest
from edgemaxx.models import (
    CheckReport,
    ContainerRuntime,
    Metrics,
    PreparedSubmission,
    RunResult,
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
    INVALID = "invalid"  # the miner's fault, with a reason
    ERROR = "error"  # ours (retries exhausted, the run's deadline, a failed run): never the miner's

    @property
    def final(self) -> bool:
        return self in (SubmissionState.SCORED, SubmissionState.INVALID, SubmissionState.ERROR)


class Remeasure(StrEnum):
    """A scored submission measured again because its worker's baseline moved by more than the
    contest's noise margin around it (worker/reference.py)."""

    NONE = "none"
    PENDING = "pending"  # queued; the run waits for it (until its deadline)
    DONE = "done"  # its result is the re-measurement's
    ABANDONED = "abandoned"  # it could not be re-measured: its first measurement stands


class RunState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # every submission final, or the deadline passed; weights come from it
    FAILED = "failed"  # the baseline could not be measured: never used for weights


class RunEnd(BaseModel):
    """How a run ended, written once. The weights are frozen here: they never change afterwards,
    and the run's output images are no longer needed."""

    state: RunState
    at: float
    reason: str
    weights: dict[int, float] = Field(default_factory=dict)  # uid → weight (empty when failed)
    hotkeys: dict[int, str] = Field(default_factory=dict)  # uid → the hotkey that earned it
    duplicates: dict[str, str] = Field(default_factory=dict)  # hotkey → earlier hotkey
    ties: dict[str, str] = Field(default_factory=dict)  # hotkey → "baseline" or the earlier hotkey
    # hotkey → scoring.copies.CopyEvidence as JSON (state sits beside scoring, not above it;
    # worker.results reads them back)
    copies: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ContestRun(BaseModel):
    id: str
    contest: str
    seed: str
    inputs: list[TextToImageRequest]
    started_at: float = Field(default_factory=time.time)
    deadline_at: float | None = None
    block: int | None = None  # the block the seed was taken from, on chain
    # The contest's rules as they were when the run started (a contest file may be edited later).
    definition: Contest | None = None
    baseline_source: SubmissionSource
    baseline_prepared: PreparedSubmission | None = None
    baseline_error: str = ""
    # Kept under its own key (written once) and merged in on load; never saved with the run.
    end: RunEnd | None = Field(default=None, exclude=True)

    @property
    def state(self) -> RunState:
        return self.end.state if self.end else RunState.RUNNING

    def rules(self) -> Contest:
        return self.definition.model_copy(deep=True) if self.definition else load_contest(self.contest)


class JobTimings(BaseModel):
    """Where a benchmark job's time went, in seconds on its worker's clock. The submission's own
    work is its load, warm-up and requests; the rest of what the job held the GPU for (starting
    and stopping the sandbox, comparing images, Redis) is the validator's. Baseline measurements
    and builds made inside the job are counted apart: they are other runs, not this one's cost."""

    held_s: float
    baseline_s: float = 0.0  # the baseline measured first (when due), or read from Redis
    prepared_here_s: float = 0.0  # a build this GPU worker had to make itself
    sandbox_start_s: float = 0.0
    load_s: float = 0.0
    warmup_s: float = 0.0
    requests_s: float = 0.0
    teardown_s: float = 0.0
    similarity_s: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def own_s(self) -> float:
        return self.load_s + self.warmup_s + self.requests_s

    @computed_field  # type: ignore[prop-decorator]
    @property
    def validator_s(self) -> float:
        return max(self.held_s - self.baseline_s - self.prepared_here_s - self.own_s, 0.0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def validator_share(self) -> float | None:
        """The validator's part of the job's time on this submission; None when it never ran."""
        total = self.validator_s + self.own_s
        return self.validator_s / total if self.own_s > 0 and total > 0 else None


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
    gpu: str | None = None  # the card it was measured on (NVML name); None: measured without a GPU
    # The host it is assigned to (prepared and benchmarked there; Settings.host), then the one that
    # measured it. None: not assigned yet (any builder takes it and keeps it on its own host).
    host: str | None = None
    # Seconds its GPU worker spent preparing it itself (its host's build was missing: a builder
    # died, or it moved from a host that disappeared); 0: prepared ahead, as it should be.
    prepared_by_gpu_s: float = 0.0
    # Scored against the median of this many baseline measurements of its worker (the pooled
    # reference, final at the run's end), and what the baseline did around it.
    baseline_measurements: int | None = None
    baseline_drift: str = ""
    measured_after: int | None = None  # submissions its worker had benchmarked in the run before it
    remeasure: Remeasure = Remeasure.NONE
    remeasure_note: str = ""  # why it was measured again, and how that went
    timings: JobTimings | None = None  # its benchmark job's time, the validator's own part apart
    log_tail: str = ""
    attempts: int = 0
    updated_at: float = Field(default_factory=time.time)

    @property
    def settled(self) -> bool:
        """Final, with nothing left to do for it: no re-measurement queued."""
        return self.state.final and self.remeasure is not Remeasure.PENDING


class BaselineMeasurement(BaseModel):
    """One measurement of a run's baseline on one worker (outputs are kept once, with the reference)."""

    result: RunResult
    after_submissions: int  # how many submissions this worker had benchmarked in the run before it
    at: float = Field(default_factory=time.time)
    seconds: float  # GPU time it took, sandbox start to stop


class Progress(BaseModel):
    phase: str  # cloning, building, loading, request i of N, comparing, idle
    run_id: str | None = None
    hotkey: str | None = None
    current: int | None = None
    total: int | None = None
    started_at: float | None = None  # when the job in flight began (None when idle)


class WorkerStatus(BaseModel):
    name: str
    kind: str  # gpu or builder
    host: str = ""  # Settings.host of the box it runs on ("" from workers older than hosts)
    gpu: int | None = None
    gpu_name: str | None = None
    tier: SandboxTier | None = None  # how its sandboxes hold submissions (GPU workers)
    contests: list[str] = Field(default_factory=list)  # the contests it benchmarks
    refused: dict[str, str] = Field(default_factory=dict)  # contest → why this worker does not serve it
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


class WeightsSet(BaseModel):
    """Weights set on chain from one run (its contest's share of the vector)."""

    block: int
    at: float
    weights: dict[int, float]  # uid → weight, as the run earned them (before contests are combined)


class ChainStatus(BaseModel):
    """What the chain service last saw and did; the API shows it under /v1/status."""

    block: int | None = None
    updated_at: float = Field(default_factory=time.time)
    runs: dict[str, str] = Field(default_factory=dict)  # contest → current run id
    submissions: int = 0
    rejected: dict[str, str] = Field(default_factory=dict)
    dropped: dict[str, str] = Field(default_factory=dict)
    last_weights: WeightsAttempt | None = None  # the last attempt, whatever came of it
    last_set: WeightsAttempt | None = None  # the last attempt that set weights
    weights_interval_blocks: int | None = None  # the interval in use (within the activity cutoff)
    activity_cutoff_blocks: int | None = None
    activity_cutoff_source: str = ""  # where the cutoff came from: the chain, or the settings
    next_weights_block: int | None = None  # the next attempt is due at this block
    next_weights_at: float | None = None  # ... which is expected around this time
    error: str = ""
    consecutive_errors: int = 0
    wallet_error: str = ""  # why no weights can be set (no hotkey file, ...), while it lasts


class ValidatorWeights(BaseModel):
    """One validator's row of the subnet's weights matrix, as the chain holds it."""

    uid: int
    hotkey: str
    stake: float  # total stake, in the subnet's units
    validator_permit: bool
    last_update: int | None = None  # the block it last set weights at (None: never)
    weights: dict[int, float] = Field(default_factory=dict)  # miner uid → fraction (the row sums to 1)


class SubnetWeights(BaseModel):
    """The weights every validator of the subnet has set, read from chain by the chain service."""

    netuid: int
    block: int
    read_at: float = Field(default_factory=time.time)
    hotkeys: list[str] = Field(default_factory=list)  # uid order
    validators: list[ValidatorWeights] = Field(default_factory=list)  # rows with weights or a permit
    own_hotkey: str | None = None  # this validator's hotkey (the chain service's wallet)
    error: str = ""  # the last read failed (the previous matrix is kept, with this reason)


class DiskUsage(BaseModel):
    path: str
    free_bytes: int
    total_bytes: int
    low: bool  # under the operator's floor (disk_min_free_gb)


class HousekeepingReport(BaseModel):
    """One host's last housekeeping pass (or disk check): what it found and removed."""

    host: str
    at: float = Field(default_factory=time.time)
    disk: list[DiskUsage] = Field(default_factory=list)
    models_bytes: int = 0
    models_cap_bytes: int = 0
    evicted_models: list[str] = Field(default_factory=list)
    removed_environments: list[str] = Field(default_factory=list)
    removed_run_dirs: int = 0
    pruned_runs: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
