"""Starting contest runs and submitting to them: what the API, the demo and the chain call."""

from __future__ import annotations

import hashlib
import random
import time

from redis import Redis
from rq import Queue, Retry

from edgemaxx import keys
from edgemaxx.contest import Contest
from edgemaxx.inputs import inputs
from edgemaxx.models import SubmissionSource
from edgemaxx.records import ContestRun, SubmissionRecord, SubmissionState
from edgemaxx.settings import Settings
from images.source import parse_source
from worker import jobs, store


def run_id_for(contest: Contest, seed: str) -> str:
    return f"{contest.id}-{hashlib.sha256(seed.encode()).hexdigest()[:10]}"


def start_run(redis: Redis, settings: Settings, contest: Contest, seed: str,
              block: int | None = None) -> ContestRun:
    """Create (or return) the run for this seed, make it current, and prepare its baseline."""
    run_id = run_id_for(contest, seed)
    existing = store.load_run(redis, run_id)
    if existing is not None:
        redis.set(keys.current_run(contest.id), run_id)
        return existing
    run = ContestRun(id=run_id, contest=contest.id, seed=seed, inputs=inputs(contest, seed),
                     block=block, baseline_source=parse_source(contest.baseline.spec()))
    store.save_run(redis, run)
    redis.set(keys.current_run(contest.id), run_id)
    Queue(keys.QUEUE_PREPARE, connection=redis).enqueue(
        jobs.prepare_baseline, run_id, job_id=f"baseline-{run_id}",
        retry=Retry(max=settings.prepare_retries, interval=5), job_timeout=settings.job_timeout_s,
        at_front=True, description="prepare baseline")
    return run


def submit(redis: Redis, settings: Settings, run: ContestRun, hotkey: str,
           source: SubmissionSource, *, uid: int | None = None, block: int | None = None) -> SubmissionRecord:
    """Queue a submission for preparation; a resubmission of the same code is a no-op."""
    current = store.load_record(redis, run.id, hotkey)
    if current is not None and current.source == source:
        return current
    record = SubmissionRecord(hotkey=hotkey, uid=uid, source=source, block=block,
                              state=SubmissionState.QUEUED)
    if current is not None:
        # New code from the same hotkey replaces the old record and any landed result.
        redis.hdel(keys.results(run.id), hotkey)
    store.save_record(redis, run.id, record)
    Queue(keys.QUEUE_PREPARE, connection=redis).enqueue(
        jobs.prepare_submission, run.id, hotkey,
        job_id=f"prepare-{run.id}-{hotkey}-{int(time.time() * 1000)}",
        retry=Retry(max=settings.prepare_retries, interval=5), job_timeout=settings.job_timeout_s,
        description=f"prepare {hotkey}")
    return record


def submit_many(redis: Redis, settings: Settings, run: ContestRun,
                entries: list[tuple[str, SubmissionSource, int | None, int | None]]) -> None:
    """Queue in random order, so preparation (and so benchmark) order says nothing of who's who."""
    shuffled = list(entries)
    random.shuffle(shuffled)
    for hotkey, source, uid, block in shuffled:
        submit(redis, settings, run, hotkey, source, uid=uid, block=block)


def queue_depths(redis: Redis, contest_ids: list[str]) -> dict[str, int]:
    names = [keys.QUEUE_PREPARE, keys.QUEUE_CHECKS, *(keys.queue_gpu(c) for c in contest_ids)]
    return {name: Queue(name, connection=redis).count for name in names}
