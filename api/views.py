"""Turning stored records into public views (leaderboard, weights)."""

from __future__ import annotations

from redis import Redis

from api.schemas import LeaderboardRow, SubmissionPublic
from edgemaxx.contest import Contest
from state import runs
from state.records import ContestRun, SubmissionRecord, SubmissionState
from worker.results import placeholder_uids, run_weights


def _repository(record: SubmissionRecord) -> tuple[str, str | None]:
    source = record.source
    return (source.url or str(source.path)), source.revision


def leaderboard(redis: Redis, run: ContestRun, contest: Contest) -> list[LeaderboardRow]:
    records = runs.records(redis, run.id)
    uid_of = placeholder_uids(records)
    weighting = run_weights(redis, run, contest, records)
    flagged = {**{h: f"tied with {o} (within the contest's tie margin)" for h, o in weighting.ties.items()},
               **{h: f"duplicate of {o}" for h, o in weighting.duplicates.items()},
               **{h: evidence.summary() for h, evidence in weighting.copies.items()}}
    ordered = sorted(records, key=lambda r: (r.score is None, -(r.score or 0), r.hotkey))
    rows = []
    rank = 0
    for record in ordered:
        repo, rev = _repository(record)
        if record.score is not None:
            rank += 1
        rows.append(LeaderboardRow(
            rank=rank if record.score is not None else None, hotkey=record.hotkey, uid=record.uid,
            repository=repo, revision=rev, state=record.state, score=record.score,
            similarity_mean=record.similarity_mean, similarity_min=record.similarity_min,
            summary=record.metrics.summary() if record.metrics else None, reason=record.reason,
            weight=weighting.weights.get(uid_of[record.hotkey], 0.0)
            if record.state is SubmissionState.SCORED else None,
            flagged=flagged.get(record.hotkey, ""), copy_evidence=weighting.copies.get(record.hotkey),
        ))
    return rows


def submission_view(run: ContestRun, record: SubmissionRecord) -> SubmissionPublic:
    repo, rev = _repository(record)
    return SubmissionPublic(
        run_id=run.id, contest=run.contest, hotkey=record.hotkey, uid=record.uid, repository=repo,
        revision=rev, state=record.state, reason=record.reason, score=record.score,
        score_terms=record.score_terms, similarities=record.similarities,
        similarity_mean=record.similarity_mean, similarity_min=record.similarity_min,
        metrics=record.metrics, summary=record.metrics.summary() if record.metrics else None,
        worker=record.worker, log_tail=record.log_tail, attempts=record.attempts,
        updated_at=record.updated_at,
    )
