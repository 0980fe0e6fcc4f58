"""A run's results as the weights need them (the API shows them, the chain service sets them)."""

from __future__ import annotations

from redis import Redis

from edgemaxx.contest import Contest
from scoring.copies import Reference
from scoring.weights import Entry, Weighting, weights
from state import runs
from state.records import ContestRun, SubmissionRecord, SubmissionState


def placeholder_uids(records: list[SubmissionRecord]) -> dict[str, int]:
    """Hand-submitted records may lack a uid; give each its own negative placeholder."""
    return {r.hotkey: r.uid if r.uid is not None else -(i + 1) for i, r in enumerate(records)}


def run_weights(redis: Redis, run: ContestRun, contest: Contest,
                records: list[SubmissionRecord] | None = None) -> Weighting:
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


def is_finished(redis: Redis, run: ContestRun) -> bool:
    """Every submission has a final state and at least one baseline was measured."""
    records = runs.records(redis, run.id)
    return bool(runs.baselines(redis, run.id)) and all(r.state.final for r in records)
