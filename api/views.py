"""Turning stored records into public views (leaderboard, weights, run history)."""

from __future__ import annotations

from collections import Counter

from redis import Redis

from api.schemas import (
    BaselinePublic,
    InputPublic,
    LeaderboardRow,
    RunDetail,
    RunSummary,
    RunWeightsSet,
    SubmissionDetail,
    SubmissionPublic,
)
from edgemaxx.contest import Contest
from state import history, runs
from state.records import ContestRun, SubmissionRecord, SubmissionState
from worker.results import placeholder_uids, weighting_of


def _repository(record: SubmissionRecord) -> tuple[str, str | None]:
    source = record.source
    return (source.url or str(source.path)), source.revision


def leaderboard(redis: Redis, run: ContestRun, contest: Contest,
                records: list[SubmissionRecord] | None = None) -> list[LeaderboardRow]:
    records = records if records is not None else runs.records(redis, run.id)
    uid_of = placeholder_uids(records)
    weighting = weighting_of(redis, run, contest, records)
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
            similarities=record.similarities,
            summary=record.metrics.summary() if record.metrics else None, reason=record.reason,
            weight=weighting.weights.get(uid_of[record.hotkey], 0.0)
            if record.state is SubmissionState.SCORED else None,
            flagged=flagged.get(record.hotkey, ""), copy_evidence=weighting.copies.get(record.hotkey),
            gpu=record.gpu, score_terms=record.score_terms, worker=record.worker, block=record.block,
            host=record.host if record.worker else None,
        ))
    return rows


def baselines(redis: Redis, run: ContestRun) -> list[BaselinePublic]:
    return [BaselinePublic(worker=w, gpu=r.gpu, metrics=r.metrics, summary=r.metrics.summary(),
                           measurements=[m.result.metrics.median_generation_time_s
                                         for m in runs.baseline_measurements(redis, run.id, w)])
            for w, r in sorted(runs.baselines(redis, run.id).items())]


def submission_view(run: ContestRun, record: SubmissionRecord) -> SubmissionPublic:
    return SubmissionPublic(**_submission_fields(run, record))


def _submission_fields(run: ContestRun, record: SubmissionRecord) -> dict:
    repo, rev = _repository(record)
    return dict(
        run_id=run.id, contest=run.contest, hotkey=record.hotkey, uid=record.uid, repository=repo,
        revision=rev, state=record.state, reason=record.reason, score=record.score,
        score_terms=record.score_terms, similarities=record.similarities,
        similarity_mean=record.similarity_mean, similarity_min=record.similarity_min,
        metrics=record.metrics, summary=record.metrics.summary() if record.metrics else None,
        worker=record.worker, gpu=record.gpu, host=record.host, prepared_by_gpu_s=record.prepared_by_gpu_s,
        baseline_measurements=record.baseline_measurements,
        baseline_drift=record.baseline_drift, remeasure=record.remeasure, remeasure_note=record.remeasure_note,
        timings=record.timings, log_tail=record.log_tail,
        attempts=record.attempts,
        updated_at=record.updated_at,
    )


def inputs_of(run: ContestRun) -> list[InputPublic]:
    return [InputPublic(index=i, prompt=r.prompt, width=r.width, height=r.height, seed=r.seed)
            for i, r in enumerate(run.inputs)]


def _rules(run: ContestRun) -> Contest | None:
    try:
        return run.rules()
    except ValueError:  # a run from before definitions were kept, of a contest since removed
        return None


def submission_detail(redis: Redis, run: ContestRun, record: SubmissionRecord) -> SubmissionDetail:
    """The submission page's data: the record, its rank and flags, the baseline it was measured
    against (the same worker's), the inputs, and which output images are kept."""
    rules = _rules(run)
    records = runs.records(redis, run.id)
    board = {row.hotkey: row for row in leaderboard(redis, run, rules, records)} if rules else {}
    row = board.get(record.hotkey)
    measured = runs.baselines(redis, run.id)
    worker = record.worker if record.worker in measured else next(iter(sorted(measured)), None)
    baseline = (BaselinePublic(worker=worker, gpu=measured[worker].gpu, metrics=measured[worker].metrics,
                               summary=measured[worker].metrics.summary()) if worker else None)
    kept = set(runs.output_names(redis, run.id))
    return SubmissionDetail(
        **_submission_fields(run, record), rank=row.rank if row else None, weight=row.weight if row else None,
        flagged=row.flagged if row else "", copy_evidence=row.copy_evidence if row else None, block=record.block,
        run_state=run.state, rules=rules, baseline=baseline,
        baseline_outputs=f"baseline@{worker}" if worker and f"baseline@{worker}" in kept else None,
        inputs=inputs_of(run),
        outputs=runs.output_indices(redis, run.id, record.hotkey) if record.hotkey in kept else [])


def _summary_fields(redis: Redis, run: ContestRun, records: list[SubmissionRecord]) -> dict:
    sets = history.weights_sets(redis, run.id)
    weights = dict(run.end.weights) if run.end else {}
    hotkeys = run.end.hotkeys if run.end else {}
    best = max(weights, key=lambda uid: weights[uid], default=None)
    return {
        "id": run.id, "contest": run.contest, "state": run.state, "seed": run.seed, "block": run.block,
        "started_at": run.started_at, "deadline_at": run.deadline_at,
        "finished_at": run.end.at if run.end else None, "end_reason": run.end.reason if run.end else "",
        "submissions": len(records), "states": dict(Counter(r.state.value for r in records)),
        "weights": weights, "winner": hotkeys.get(best) if best is not None else None,
        "weights_set_count": len(sets),
        "last_weights_set": RunWeightsSet(**sets[-1].model_dump()) if sets else None,
    }


def run_summary(redis: Redis, run: ContestRun) -> RunSummary:
    return RunSummary(**_summary_fields(redis, run, runs.records(redis, run.id)))


def run_detail(redis: Redis, run: ContestRun) -> RunDetail:
    records = runs.records(redis, run.id)
    rules = _rules(run)
    board = leaderboard(redis, run, rules, records) if rules else []
    return RunDetail(**_summary_fields(redis, run, records), rules=rules, inputs=len(run.inputs),
                     baselines=baselines(redis, run), leaderboard=board,
                     weights_sets=[RunWeightsSet(**s.model_dump()) for s in history.weights_sets(redis, run.id)])
