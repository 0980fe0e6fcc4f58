"""A run's results as the weights need them (the API shows them, the chain service sets them)."""

from __future__ import annotations

from redis import Redis

from edgemaxx.contest import Contest
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
    entries = []
    for r in records:
        if r.state is SubmissionState.SCORED:
            repository = r.source.url or str(r.source.path)
            entries.append(Entry(hotkey=r.hotkey, uid=uid_of[r.hotkey], repository=repository,
                                 revision=r.source.revision or repository, block=r.block or 0, score=r.score,
                                 outputs=runs.load_outputs(redis, run.id, r.hotkey, len(run.inputs))))
    return weights(entries, contest)


def is_finished(redis: Redis, run: ContestRun) -> bool:
    """Every submission has a final state and at least one baseline was measured."""
    records = runs.records(redis, run.id)
    return bool(runs.baselines(redis, run.id)) and all(r.state.final for r in records)
