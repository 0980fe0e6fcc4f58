"""A contest run's explicit end, and what happens to work that cannot finish.

A run ends once (`state.runs.end_run`, SET NX): *finished* when every submission is final (and
re-measured where that was queued) and a baseline was measured (or nothing needed one), or when
its deadline passes with a baseline;
*failed* when its baseline cannot be measured (never used for weights). Ending a run lands every
unfinished submission as `error` (the validator's fault, never the miner's), freezes the weights,
drops the run's output images but the best few (`state.runs.retire_outputs`), and cancels or
stops the run's jobs still queued or running.

`settle` decides. It runs after every job, in a `finish_run` job the RQ scheduler enqueues at the
deadline, and on every chain service iteration, so no single missed path leaves a run open.
A job whose retries are exhausted lands its submission as `error` through RQ's failure callback
(`job_failed`; RQ 3 calls it on every failed attempt, so it acts only on the last one) or, when
its work horse died, through the worker's own hook (`horse_died`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING

from redis import Redis

from state import runs
from state.records import ContestRun, Remeasure, RunEnd, RunState, SubmissionRecord, SubmissionState
from worker.reference import rescore_run
from worker.results import placeholder_uids, run_weights

if TYPE_CHECKING:
    from rq.job import Job

log = logging.getLogger(__name__)

REASON_MAX = 600  # characters of an exception kept in a reason


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_prefixes(run_id: str) -> tuple[str, ...]:
    """Every RQ job of a run is named with one of these (see worker.queues)."""
    return (f"baseline-{run_id}", f"prepare-{run_id}-", f"bench-{run_id}-", f"finish-{run_id}")


# ---------------------------------------------------------------- deciding


def settle(redis: Redis, run_id: str, *, now: float | None = None) -> RunEnd | None:
    """End the run if it is over; its end (new or earlier), or None while it runs."""
    run = runs.load_run(redis, run_id)
    if run is None or run.end is not None:
        return run.end if run else None
    now = time.time() if now is None else now
    records = runs.records(redis, run.id)
    measured = bool(runs.baselines(redis, run.id))
    # Only a prepared submission needs the baseline: one invalid at preparation never reaches a GPU.
    needs_baseline = any(r.prepared is not None for r in records)
    if records and all(r.settled for r in records):
        if measured or not needs_baseline:
            return _end(redis, run, RunState.FINISHED, "every submission is final", now=now)
        return _end(redis, run, RunState.FAILED,
                    f"no baseline was measured: {run.baseline_error or 'every benchmark failed before it'}", now=now)
    if run.deadline_at is not None and now >= run.deadline_at:
        when = _when(run.deadline_at)
        unfinished = sum(not r.state.final for r in records)  # a pending re-measurement keeps its first
        if measured or not needs_baseline:
            return _end(redis, run, RunState.FINISHED,
                        f"the deadline ({when}) passed; {unfinished} unfinished submission(s) ended as error",
                        error_reason=f"not finished by the run's deadline ({when})", now=now)
        return _end(redis, run, RunState.FAILED,
                    f"the deadline ({when}) passed before a baseline was measured"
                    + (f": {run.baseline_error}" if run.baseline_error else ""), now=now)
    return None


def fail_run(redis: Redis, run_id: str, reason: str, *, now: float | None = None) -> RunEnd | None:
    """The baseline cannot be measured: the run fails (its weights are never used)."""
    run = runs.load_run(redis, run_id)
    if run is None or run.end is not None:
        return run.end if run else None
    return _end(redis, run, RunState.FAILED, reason, now=time.time() if now is None else now)


def _end(redis: Redis, run: ContestRun, state: RunState, reason: str, *, now: float,
         error_reason: str | None = None) -> RunEnd:
    # 1. Whatever is unfinished ends as the validator's error, with the reason.
    why = error_reason or f"the run {state.value}: {reason}"
    for record in runs.records(redis, run.id):
        if not record.state.final:
            land_error(redis, run.id, record, why)

    # 2. Final scores against each worker's pooled baseline, then the weights, frozen from the
    #    final records (re-read: a result may have landed meanwhile).
    if state is RunState.FINISHED:
        rescore_run(redis, run)
    records = runs.records(redis, run.id)
    end = RunEnd(state=state, at=now, reason=reason)
    if state is RunState.FINISHED:
        weighting = run_weights(redis, run, run.rules(), records)
        uid_of = placeholder_uids(records)
        end.weights = dict(weighting.weights)  # placeholder (negative) uids too: the chain skips them
        end.hotkeys = {uid_of[r.hotkey]: r.hotkey for r in records if uid_of[r.hotkey] in end.weights}
        end.duplicates, end.ties = weighting.duplicates, weighting.ties
        end.copies = {h: evidence.model_dump(mode="json") for h, evidence in weighting.copies.items()}
    if not runs.end_run(redis, run.id, end):
        fresh = runs.load_run(redis, run.id)
        assert fresh is not None and fresh.end is not None
        return fresh.end

    # 3. Nothing of the run runs any more; of its images, only what the dashboard shows stays. A
    #    pending re-measurement will not run: its first measurement stands (swept after the end,
    #    so one queued while the run was ending is caught too).
    for record in runs.records(redis, run.id):
        if record.remeasure is Remeasure.PENDING:
            abandon_remeasure(redis, run.id, record.hotkey, f"the run {state.value} before it was re-measured")
    stop_jobs(redis, run)
    runs.retire_outputs(redis, run.id)
    log.info("run %s %s: %s", run.id, state.value, reason)
    return end


def abandon_remeasure(redis: Redis, run_id: str, hotkey: str, why: str) -> bool:
    """A queued re-measurement will not happen: the first measurement stands, and says why."""
    def abandon(record: SubmissionRecord) -> bool:
        if record.remeasure is not Remeasure.PENDING:
            return False
        record.remeasure = Remeasure.ABANDONED
        record.remeasure_note = f"{record.remeasure_note}; {why[:REASON_MAX]}: scored on its first measurement"
        return True

    if runs.change_result(redis, run_id, hotkey, abandon, while_running=False) is None:
        return False
    log.warning("remeasure %s run=%s outcome=abandoned reason=%r", hotkey, run_id, why)
    return True


def land_error(redis: Redis, run_id: str, record: SubmissionRecord | str, reason: str) -> bool:
    """Land a submission as `error` (ours), keeping what it had (prepared, metrics) for the record."""
    if isinstance(record, str):
        found = runs.load_record(redis, run_id, record)
        if found is None:
            return False
        record = found
    if record.state.final:
        return False
    record.state = SubmissionState.ERROR
    record.reason = reason[:REASON_MAX]
    return runs.land_result(redis, run_id, record)


# ---------------------------------------------------------------- the run's jobs


def stop_jobs(redis: Redis, run: ContestRun) -> int:
    """Cancel the run's queued and scheduled jobs and stop its running ones (not the caller's)."""
    from rq import Queue, get_current_job
    from rq.command import send_stop_job_command
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    current = get_current_job()
    mine = current.id if current else None
    prefixes = job_prefixes(run.id)
    touched = 0
    from worker.queues import all_queue_names

    for name in all_queue_names(redis, [run.contest]):
        queue = Queue(name, connection=redis)
        waiting = [*queue.get_job_ids(), *queue.scheduled_job_registry.get_job_ids()]
        for job_id in waiting:
            if job_id.startswith(prefixes) and job_id != mine:
                try:
                    Job.fetch(job_id, connection=redis).delete()
                    touched += 1
                except NoSuchJobError:
                    continue
        for job_id in queue.started_job_registry.get_job_ids():
            if job_id.startswith(prefixes) and job_id != mine:
                try:
                    send_stop_job_command(redis, job_id)
                    touched += 1
                    log.info("stopped %s: run %s has ended", job_id, run.id)
                except (InvalidJobOperation, NoSuchJobError):
                    continue
    return touched


def _give_up(redis: Redis, job: Job, why: str) -> None:
    """A job of ours will not run again: its submission (or the run, for the baseline) ends."""
    kind = (job.func_name or "").rsplit(".", 1)[-1]
    args = list(job.args or [])
    why = why[:REASON_MAX]
    if kind == "prepare_baseline" and args:
        fail_run(redis, str(args[0]), f"the baseline could not be prepared: {why}")
    elif kind == "remeasure_submission" and len(args) >= 2:
        abandon_remeasure(redis, str(args[0]), str(args[1]), f"its re-measurement could not run: {why}")
        settle(redis, str(args[0]))
    elif kind in ("prepare_submission", "benchmark_submission") and len(args) >= 2:
        run_id, hotkey = str(args[0]), str(args[1])
        what = "prepare" if kind == "prepare_submission" else "benchmark"
        if land_error(redis, run_id, hotkey, f"the validator could not {what} this submission "
                                             f"(its retries ran out): {why}"):
            log.warning("%s %s run=%s outcome=error reason=%r", what, hotkey, run_id, why)
        settle(redis, run_id)


def job_failed(job: Job, connection: Redis, exc_type: type[BaseException] | None,
               exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ's on_failure callback: called on every failed attempt, before RQ decides to retry."""
    from rq.exceptions import AbandonedJobError

    if job.retries_left:
        return  # RQ retries it
    if isinstance(exc_value, AbandonedJobError) or exc_type is AbandonedJobError:
        why = "the worker running it disappeared"
    else:
        why = f"{exc_type.__name__ if exc_type else 'error'}: {exc_value}"
    _give_up(connection, job, why)


def horse_died(redis: Redis, job: Job, why: str) -> None:
    """The work horse was killed (memory, a signal, RQ's own timeout): no failure callback runs."""
    if job.retries_left:
        return
    _give_up(redis, job, why)
