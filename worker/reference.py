"""The baseline a worker's submissions are scored against: the median of all its measurements.

A baseline's own run-to-run spread is most of the noise in a score's ratios: on an H100 the
full-scale baseline's run medians spread 1.6 % (it collects garbage and empties the CUDA cache
every image, so its time moves with the host), the optimised variant's 0.5 %; against one baseline
measurement the time ratio spreads 1.6 %, against the median of seven 0.52 % (docs/benchmarks.md).
So a worker measures the baseline at the start of a run and again after every
`baseline_every` submissions, and when the run ends every submission it measured is scored again
against the median of all of them — the same reference for all. A re-measurement that differs
from the previous one by more than the contest's noise margin puts the submissions measured
between the two in doubt (the GPU's speed moved around them): each is measured once more, right
away, after that fresh baseline measurement, and the re-measurement is its result.
"""

from __future__ import annotations

import logging

from redis import Redis

from edgemaxx.models import RunResult, RunStatus
from scoring.score import score
from state import runs
from state.records import BaselineMeasurement, ContestRun, Remeasure, SubmissionRecord, SubmissionState
from worker.evaluate import median_run

log = logging.getLogger(__name__)


def pooled(measurements: list[BaselineMeasurement]) -> RunResult:
    """The measurement with the median generation time (metrics and outputs stay together)."""
    return median_run([m.result for m in measurements])


def due(measurements: list[BaselineMeasurement], benchmarked: int, every: int) -> bool:
    """Whether the worker should measure the baseline again before its next submission."""
    if not measurements:
        return True
    return every > 0 and benchmarked - measurements[-1].after_submissions >= every


def drift(previous: BaselineMeasurement, latest: BaselineMeasurement) -> float | None:
    """latest / previous median generation time − 1 (None if either did not run)."""
    a, b = previous.result.metrics.median_generation_time_s, latest.result.metrics.median_generation_time_s
    if not a or not b or previous.result.status is not RunStatus.OK or latest.result.status is not RunStatus.OK:
        return None
    return b / a - 1.0


def in_doubt(records: list[SubmissionRecord], worker: str, previous: BaselineMeasurement,
             latest: BaselineMeasurement) -> list[SubmissionRecord]:
    """The scored submissions `worker` measured between two of its baseline measurements, not
    re-measured yet: what to measure again when the two disagree."""
    return [r for r in records
            if r.worker == worker and r.state is SubmissionState.SCORED and r.remeasure is Remeasure.NONE
            and r.measured_after is not None
            and previous.after_submissions <= r.measured_after < latest.after_submissions]


def drift_note(measurements: list[BaselineMeasurement], position: int, margin: float) -> str:
    """For a submission measured after `position` submissions: the baseline's drift around it, if
    the measurements before and after it disagree by more than `margin`."""
    before = [m for m in measurements if m.after_submissions <= position]
    after = [m for m in measurements if m.after_submissions > position]
    if not before or not after:
        return ""
    moved = drift(before[-1], after[0])
    if moved is None or abs(moved) <= margin:
        return ""
    return (f"the baseline's time moved {moved:+.1%} between its measurements before and after this one "
            f"(more than the ±{margin:.0%} noise margin): scored against the median of all of them")


def rescore_run(redis: Redis, run: ContestRun) -> int:
    """Score every scored submission again against its worker's pooled baseline; returns how many
    scores changed."""
    contest = run.rules()
    pools: dict[str, list[BaselineMeasurement]] = {}
    changed = 0
    for record in runs.records(redis, run.id):
        if record.state is not SubmissionState.SCORED or record.metrics is None or record.worker is None:
            continue
        if record.worker not in pools:
            pools[record.worker] = runs.baseline_measurements(redis, run.id, record.worker)
        pool = pools[record.worker]
        if not pool or record.similarity_mean is None or record.similarity_min is None:
            continue
        reference = pooled(pool)
        breakdown = score(reference.metrics, record.metrics, record.similarity_mean, record.similarity_min, contest)
        if breakdown.score is None:
            continue  # cannot happen for a scored record: similarity does not depend on the baseline's time
        position = record.measured_after
        note = drift_note(pool, position, contest.noise_margin) if position is not None else ""
        if (breakdown.score, len(pool), note) != (record.score, record.baseline_measurements, record.baseline_drift):
            record.score, record.score_terms = breakdown.score, breakdown.terms
            record.baseline_measurements, record.baseline_drift = len(pool), note
            runs.update_result(redis, run.id, record)
            changed += 1
    if changed:
        log.info("run %s: %d score(s) final against the pooled baseline", run.id, changed)
    return changed

