"""Evaluating a prepared submission against the baseline: the one code path that both the RQ
jobs and `edgemaxx bench` run, so a miner's local score is the validator's.

Baseline first: its run sets the clock (per-request timeout) and is the reference for
similarity and every score ratio. Nothing here touches Redis.
"""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest
from edgemaxx.models import PreparedSubmission, RunResult, RunStatus, TextToImageRequest
from edgemaxx.settings import Settings
from sandbox.base import Limits
from sandbox.gpu import open_gpu
from sandbox.runner import ProgressFn, no_progress, run_submission
from sandbox.select import make_sandbox
from scoring.score import ScoreBreakdown
from scoring.similarity import SimilarityReport


class Outcome(StrEnum):
    SCORED = "scored"
    INVALID = "invalid"  # the miner's fault, with a reason


class Verdict(BaseModel):
    """A submission's run, its similarity to the baseline and its score, as a validator sets them."""

    outcome: Outcome
    reason: str = ""
    result: RunResult
    similarity: SimilarityReport | None = None
    score: ScoreBreakdown | None = None
    request_timeout_s: float
    notes: list[str] = Field(default_factory=list)
    similarity_s: float = 0.0  # comparing the outputs with the baseline's (model to the GPU included)


def request_timeout(settings: Settings, contest: Contest | None, baseline: RunResult | None) -> float:
    """Factor × the baseline's mean generation time (never under the floor); without a baseline,
    the contest's default."""
    mean = baseline.metrics.mean_generation_time_s if baseline else None
    if mean is None:
        return contest.timeouts.request_default_s if contest else settings.request_timeout_s
    factor = contest.timeouts.request_factor if contest else settings.request_timeout_factor
    return max(factor * mean, settings.request_timeout_floor_s)


def limits_for(settings: Settings, contest: Contest | None = None, baseline: RunResult | None = None) -> Limits:
    """The validator's clock and budgets for one run: load and whole-run limits from the contest
    (the settings' without one), the request timeout from the baseline."""
    return Limits(
        load_timeout_s=contest.timeouts.load_s if contest else settings.load_timeout_s,
        request_timeout_s=request_timeout(settings, contest, baseline),
        run_timeout_s=contest.timeouts.run_s if contest else settings.run_timeout_s,
        warmup_requests=settings.warmup_requests,
        memory_mb=settings.sandbox_memory_mb,
        scratch_mb=settings.sandbox_tmpfs_mb,
        shm_mb=settings.sandbox_shm_mb,
        pids=settings.sandbox_pids_limit,
        cpus=settings.sandbox_cpus,
        max_output_bytes=settings.max_output_bytes,
        log_tail_bytes=settings.log_tail_bytes,
    )


def benchmark(settings: Settings, prepared: PreparedSubmission, requests: list[TextToImageRequest],
              limits: Limits, progress: ProgressFn = no_progress) -> RunResult:
    """One run of `prepared` in its sandbox on this process's GPU (if any)."""
    box = make_sandbox(settings, prepared, limits)
    gpu = open_gpu(settings.gpu)
    result = run_submission(box, prepared.name, requests, limits, gpu,
                            sample_interval_s=settings.sample_interval_s, progress=progress)
    result.gpu = gpu.name if gpu else None  # every result says which card measured it
    result.metrics.code_bytes = prepared.code_bytes
    result.metrics.models_bytes = prepared.models_bytes
    return result


def median_run(runs: list[RunResult]) -> RunResult:
    """Of several runs of the same submission, the one with the median generation time: its
    metrics and outputs stay together, and one slow or fast run cannot move the reference."""
    ok = [r for r in runs if r.status is RunStatus.OK and r.metrics.median_generation_time_s is not None]
    if not ok:
        return runs[-1]
    ranked = sorted(ok, key=lambda r: r.metrics.median_generation_time_s or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def measure_baseline(settings: Settings, contest: Contest, prepared: PreparedSubmission,
                     requests: list[TextToImageRequest], progress: ProgressFn = no_progress) -> RunResult:
    """The baseline, `settings.baseline_runs` times; the median run is the reference."""
    limits = limits_for(settings, contest, None)
    return median_run([benchmark(settings, prepared, requests, limits, progress)
                       for _ in range(settings.baseline_runs)])


def torch_device(gpu: int | None) -> str:
    """Similarity runs on this worker's own GPU, when torch can see it."""
    if gpu is None:
        return "cpu"
    import torch

    return f"cuda:{gpu}" if torch.cuda.is_available() else "cpu"


def evaluate(settings: Settings, contest: Contest, baseline: RunResult, prepared: PreparedSubmission,
             requests: list[TextToImageRequest], progress: ProgressFn = no_progress) -> Verdict:
    """Run `prepared` on the baseline's inputs with the clock the baseline set, compare its
    outputs with the baseline's, and score it. A baseline that did not run is the caller's error."""
    from scoring.score import score
    from scoring.similarity import compare

    if baseline.status is not RunStatus.OK:
        raise ValueError("evaluate() needs a baseline that ran")
    # 1. The submission, on the same inputs, with the clock set by the baseline.
    limits = limits_for(settings, contest, baseline)
    result = benchmark(settings, prepared, requests, limits, progress)
    if result.status is not RunStatus.OK:
        return Verdict(outcome=Outcome.INVALID, reason=result.reason, result=result,
                       request_timeout_s=limits.request_timeout_s)

    # 2. Similarity per input, then the score and its terms.
    progress("comparing", None, None)
    comparing = time.monotonic()
    similarity = compare(baseline.outputs, result.outputs, contest.similarity_metric,
                         device=torch_device(settings.gpu))
    compared_s = time.monotonic() - comparing
    breakdown = score(baseline.metrics, result.metrics, similarity.mean, similarity.min, contest)
    if breakdown.score is None:
        return Verdict(outcome=Outcome.INVALID, reason=breakdown.invalid_reason, result=result,
                       similarity=similarity, score=breakdown, request_timeout_s=limits.request_timeout_s,
                       notes=breakdown.notes, similarity_s=compared_s)
    return Verdict(outcome=Outcome.SCORED, result=result, similarity=similarity, score=breakdown,
                   request_timeout_s=limits.request_timeout_s, notes=breakdown.notes, similarity_s=compared_s)
