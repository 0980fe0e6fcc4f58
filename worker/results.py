"""A run's results as the weights need them (the API shows them, the chain service sets them)."""

from __future__ import annotations

from redis import Redis

from edgemaxx.contest import Contest
from scoring.copies import CopyEvidence, Reference
from scoring.weights import Entry, Weighting, weights
from state import runs
from state.records import ContestRun, SubmissionRecord, SubmissionState


def placeholder_uids(records: list[SubmissionRecord]) -> dict[str, int]:
    """Hand-submitted records may lack a uid; give each its own negative placeholder."""
    return {r.hotkey: r.uid if r.uid is not None else -(i + 1) for i, r in enumerate(records)}


def run_weights(redis: Redis, run: ContestRun, contest: Contest,
                records: list[SubmissionRecord] | None = None) -> Weighting:
    """Computed from the records and their output images (copies are found by comparing them)."""
    records = records if records is not None else runs.records(redis, run.id)
    uid_of = placeholder_uids(records)
    count = len(run.inputs)
    baselines: dict[str, list[bytes | None]] = {}  # worker → its baseline outputs
    entries = []
    for r in records:
        if r.state is not SubmissionState.SCORED:
            continue
        worker = r.worker or ""
        if worker not in baselines:
            baselines[worker] = runs.load_outputs(redis, run.id, f"baseline@{worker}", count)
        repository = r.source.url or str(r.source.path)
        prepared = r.prepared
        entries.append(Entry(hotkey=r.hotkey, uid=uid_of[r.hotkey], repository=repository,
                             revision=r.source.revision or repository, block=r.block or 0, score=r.score,
                             outputs=runs.load_outputs(redis, run.id, r.hotkey, count),
                             baseline_outputs=baselines[worker],
                             code=prepared.code_fingerprint if prepared else None,
                             model_files=prepared.model_files if prepared else []))
    reference = Reference(code=run.baseline_prepared.code_fingerprint if run.baseline_prepared else None,
                          model_files=run.baseline_prepared.model_files if run.baseline_prepared else [])
    return weights(entries, contest, reference)


def weighting_of(redis: Redis, run: ContestRun, contest: Contest,
                 records: list[SubmissionRecord] | None = None) -> Weighting:
    """The run's weights: frozen at its end (its images are gone by then), live while it runs."""
    if run.end is not None:
        return Weighting(weights=dict(run.end.weights), duplicates=dict(run.end.duplicates), ties=dict(run.end.ties),
                         copies={h: CopyEvidence.model_validate(e) for h, e in run.end.copies.items()})
    return run_weights(redis, run, contest, records)
