"""Starting contest runs and queueing work: what the API, the demo and the chain service call.

Jobs are named by dotted path, so callers of this module never import the jobs (or what they
need: Docker, the image builders, torch).
"""

from __future__ import annotations

import hashlib
import random
import time

from redis import Redis
from rq import Queue, Retry

from edgemaxx.contest import Contest
from edgemaxx.inputs import inputs
from edgemaxx.models import SubmissionSource
from edgemaxx.settings import Settings
from images.source import parse_source
from state import checks, keys, runs
from state.records import CheckRecord, ContestRun, SubmissionRecord, SubmissionState

_JOBS = "worker.jobs"


def run_id_for(contest: Contest, seed: str) -> str:
    return f"{contest.id}-{hashlib.sha256(seed.encode()).hexdigest()[:10]}"


def start_run(redis: Redis, settings: Settings, contest: Contest, seed: str,
              block: int | None = None) -> ContestRun:
    """Create (or return) the run for this seed, make it current, and prepare its baseline."""
    run_id = run_id_for(contest, seed)
    existing = runs.load_run(redis, run_id)
    if existing is not None:
        runs.set_current(redis, contest.id, run_id)
        return existing
    run = ContestRun(id=run_id, contest=contest.id, seed=seed, inputs=inputs(contest, seed),
                     block=block, baseline_source=parse_source(contest.baseline.spec()))
    runs.save_run(redis, run)
    runs.set_current(redis, contest.id, run_id)
    Queue(keys.QUEUE_PREPARE, connection=redis).enqueue(
        f"{_JOBS}.prepare_baseline", run_id, job_id=f"baseline-{run_id}",
        retry=Retry(max=settings.prepare_retries, interval=5), job_timeout=settings.job_timeout_s,
        at_front=True, description="prepare baseline")
    return run


def submit(redis: Redis, settings: Settings, run: ContestRun, hotkey: str,
           source: SubmissionSource, *, uid: int | None = None, block: int | None = None) -> SubmissionRecord:
    """Queue a submission for preparation; a resubmission of the same code is a no-op."""
    current = runs.load_record(redis, run.id, hotkey)
    if current is not None and current.source == source:
        return current
    record = SubmissionRecord(hotkey=hotkey, uid=uid, source=source, block=block,
                              state=SubmissionState.QUEUED)
    if current is not None:
        runs.replace_record(redis, run.id, record)
    else:
        runs.save_record(redis, run.id, record)
    Queue(keys.QUEUE_PREPARE, connection=redis).enqueue(
        f"{_JOBS}.prepare_submission", run.id, hotkey,
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


def enqueue_benchmark(redis: Redis, settings: Settings, contest_id: str, run_id: str, hotkey: str) -> None:
    queue = Queue(keys.queue_gpu(contest_id), connection=redis)
    # A coin flip for the front or the back: benchmark order is not preparation order, so no
    # miner can count on running first or last (thermal state, a warm page cache).
    queue.enqueue(f"{_JOBS}.benchmark_submission", run_id, hotkey, job_id=f"bench-{run_id}-{hotkey}",
                  retry=Retry(max=settings.benchmark_retries, interval=5), job_timeout=settings.job_timeout_s,
                  at_front=random.random() < 0.5, description=f"benchmark {hotkey}")


def enqueue_check(redis: Redis, settings: Settings, record: CheckRecord) -> None:
    """A miner's pre-commit check, for a builder."""
    checks.save_check(redis, record, settings.check_ttl_s)
    Queue(keys.QUEUE_CHECKS, connection=redis).enqueue(
        f"{_JOBS}.run_check", record.id, job_id=f"check-{record.id}", job_timeout=settings.job_timeout_s,
        description=f"check {record.repository}@{record.revision}")


def queue_depths(redis: Redis, contest_ids: list[str]) -> dict[str, int]:
    names = [keys.QUEUE_PREPARE, keys.QUEUE_CHECKS, *(keys.queue_gpu(c) for c in contest_ids)]
    return {name: Queue(name, connection=redis).count for name in names}
