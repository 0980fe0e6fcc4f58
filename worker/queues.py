"""Starting contest runs and queueing work: what the API, the demo and the chain service call.

Jobs are named by dotted path, so callers of this module never import the jobs (or what they
need: Docker, the image builders, torch).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
import time
from typing import Any

from redis import Redis
from rq import Callback, Queue, Retry

from edgemaxx.contest import Contest
from edgemaxx.inputs import inputs
from edgemaxx.models import SubmissionSource
from edgemaxx.settings import Settings
from images.source import parse_source
from state import checks, history, hosts, keys, runs, workers
from state.records import CheckRecord, ContestRun, SubmissionRecord, SubmissionState

_JOBS = "worker.jobs"
# Called by RQ when a job fails: on its last attempt the submission (or the run) ends as `error`.
_ON_FAILURE = Callback("worker.lifecycle.job_failed", timeout=1800)  # ending a run compares outputs


def _job_options(settings: Settings, retries: int) -> dict[str, Any]:
    """Queue options shared by a run's jobs: retries, the failure callback, and failed jobs kept
    only as long as the run's history (RQ keeps them a year by default)."""
    return {"retry": Retry(max=retries, interval=5), "on_failure": _ON_FAILURE,
            "job_timeout": settings.job_timeout_s, "failure_ttl": int(settings.history_days * 86400)}


def run_id_for(contest: Contest, seed: str) -> str:
    return f"{contest.id}-{hashlib.sha256(seed.encode()).hexdigest()[:10]}"


def start_run(redis: Redis, settings: Settings, contest: Contest, seed: str, block: int | None = None, *,
              started_at: float | None = None, ends_by: float | None = None) -> ContestRun:
    """Create (or return) the run for this seed, make it current, prepare its baseline, and
    schedule its end: `run_deadline_h` after it started, or `ends_by` (the next run's start)."""
    run_id = run_id_for(contest, seed)
    existing = runs.load_run(redis, run_id)
    if existing is not None:
        runs.set_current(redis, contest.id, run_id)
        return existing
    started_at = time.time() if started_at is None else started_at
    deadline = started_at + contest.timeouts.run_deadline_h * 3600
    if ends_by is not None:
        deadline = min(deadline, ends_by)
    run = ContestRun(id=run_id, contest=contest.id, seed=seed, inputs=inputs(contest, seed), block=block,
                     started_at=started_at, deadline_at=deadline, definition=contest,
                     baseline_source=parse_source(contest.baseline.spec()))
    runs.save_run(redis, run)
    history.index_run(redis, run)
    runs.set_current(redis, contest.id, run_id)
    # Every host that benchmarks needs the baseline in its own engine and on its own disk: each live
    # host's builder prepares it ahead (a host that joins later: its GPU worker prepares it itself).
    targets: list[str | None] = [*sorted(live_hosts(redis, contest.id))] or [None]
    for host in targets:
        suffix = f"-on-{_job_safe(host)}" if host else ""
        Queue(keys.queue_prepare_on(host) if host else keys.QUEUE_PREPARE, connection=redis).enqueue(
            f"{_JOBS}.prepare_baseline", run_id, job_id=f"baseline-{run_id}{suffix}", at_front=True,
            description="prepare baseline", **_job_options(settings, settings.prepare_retries))
    schedule_finish(redis, settings, run_id, deadline)
    return run


def _job_safe(text: str) -> str:
    """RQ job ids take letters, digits, `_` and `-` only (host names may hold dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def schedule_finish(redis: Redis, settings: Settings, run_id: str, at: float) -> None:
    """A `finish_run` job the RQ scheduler (every worker runs one) enqueues once `at` has passed:
    RQ keeps whole seconds, so a second is added. `settle` also runs after every job and in the
    chain service, so a busy builder only delays it."""
    when = dt.datetime.fromtimestamp(math.ceil(at) + 1, dt.UTC)
    Queue(keys.QUEUE_PREPARE, connection=redis).enqueue_at(
        when, f"{_JOBS}.finish_run", run_id, job_id=f"finish-{run_id}-{time.time_ns()}", at_front=True,
        job_timeout=3600, description="finish run", failure_ttl=int(settings.history_days * 86400))


def submit(redis: Redis, settings: Settings, run: ContestRun, hotkey: str,
           source: SubmissionSource, *, uid: int | None = None, block: int | None = None) -> SubmissionRecord:
    """Queue a submission for preparation; a resubmission of the same code is a no-op."""
    current = runs.load_record(redis, run.id, hotkey)
    if current is not None and current.source == source:
        return current
    record = SubmissionRecord(hotkey=hotkey, uid=uid, source=source, block=block,
                              state=SubmissionState.QUEUED)
    record.host = assign_host(redis, run.contest)
    if current is not None:
        runs.replace_record(redis, run.id, record)
    else:
        runs.save_record(redis, run.id, record)
    enqueue_prepare(redis, settings, run.id, hotkey, record.host)
    return record


def enqueue_prepare(redis: Redis, settings: Settings, run_id: str, hotkey: str, host: str | None,
                    *, at_front: bool = False) -> None:
    """On `host`'s builder queue, or the shared one (any builder; it keeps it on its host)."""
    Queue(keys.queue_prepare_on(host) if host else keys.QUEUE_PREPARE, connection=redis).enqueue(
        f"{_JOBS}.prepare_submission", run_id, hotkey,
        job_id=f"prepare-{run_id}-{hotkey}-{int(time.time() * 1000)}", at_front=at_front,
        description=f"prepare {hotkey}" + (f" on {host}" if host else ""),
        **_job_options(settings, settings.prepare_retries))


def live_hosts(redis: Redis, contest_id: str) -> dict[str, int]:
    """Hosts that can take a submission of the contest end to end: a live builder and live GPU
    workers serving the contest (whose sandbox runtime works), with how many of those."""
    builders: set[str] = set()
    gpus: dict[str, int] = {}
    for status, alive in workers.list_workers(redis):
        if not alive or not status.host:
            continue
        if status.kind == "builder":
            builders.add(status.host)
        elif contest_id in status.contests and not status.sandbox_problem:
            gpus[status.host] = gpus.get(status.host, 0) + 1
    return {host: n for host, n in gpus.items() if host in builders}


def host_load(redis: Redis, contest_id: str, host: str) -> int:
    """Submissions waiting for or in preparation or a benchmark on `host`."""
    total = 0
    for name in (keys.queue_prepare_on(host), keys.queue_gpu_on(contest_id, host)):
        queue = Queue(name, connection=redis)
        total += queue.count + queue.started_job_registry.count
    return total


def assign_host(redis: Redis, contest_id: str, *, exclude: frozenset[str] = frozenset()) -> str | None:
    """The least loaded live host per GPU (ties at random), or None when no host can take it yet:
    the shared queue then lets the first builder free keep it on its own host."""
    candidates = {h: n for h, n in live_hosts(redis, contest_id).items() if h not in exclude}
    if not candidates:
        return None
    loads = {h: host_load(redis, contest_id, h) / n for h, n in candidates.items()}
    least = min(loads.values())
    return random.choice(sorted(h for h, load in loads.items() if load == least))


def submit_many(redis: Redis, settings: Settings, run: ContestRun,
                entries: list[tuple[str, SubmissionSource, int | None, int | None]]) -> None:
    """Queue in random order, so preparation (and so benchmark) order says nothing of who's who."""
    shuffled = list(entries)
    random.shuffle(shuffled)
    for hotkey, source, uid, block in shuffled:
        submit(redis, settings, run, hotkey, source, uid=uid, block=block)


def enqueue_benchmark(redis: Redis, settings: Settings, contest_id: str, run_id: str, hotkey: str,
                      host: str | None = None) -> None:
    """On the GPU queue of the host it was prepared on while that host has a live GPU worker for
    the contest; else the shared one (whichever GPU worker takes it prepares it on its own host)."""
    here = host is not None and host in live_hosts(redis, contest_id)
    queue = Queue(keys.queue_gpu_on(contest_id, host) if here and host else keys.queue_gpu(contest_id),
                  connection=redis)
    # A coin flip for the front or the back: benchmark order is not preparation order, so no
    # miner can count on running first or last (thermal state, a warm page cache).
    queue.enqueue(f"{_JOBS}.benchmark_submission", run_id, hotkey, job_id=f"bench-{run_id}-{hotkey}",
                  at_front=random.random() < 0.5, description=f"benchmark {hotkey}",
                  **_job_options(settings, settings.benchmark_retries))


def enqueue_remeasure(redis: Redis, settings: Settings, contest_id: str, run_id: str, hotkey: str,
                      worker: str) -> None:
    """Measure a scored submission again on the same GPU worker, next: close to the baseline
    measurement that found its GPU's speed had moved around the first one (worker/reference.py)."""
    Queue(keys.queue_gpu_of(contest_id, worker), connection=redis).enqueue(
        f"{_JOBS}.remeasure_submission", run_id, hotkey, job_id=f"bench-{run_id}-{hotkey}-again", at_front=True,
        description=f"re-measure {hotkey}", **_job_options(settings, settings.benchmark_retries))


def enqueue_check(redis: Redis, settings: Settings, record: CheckRecord) -> None:
    """A miner's pre-commit check, for a builder."""
    checks.save_check(redis, record, settings.check_ttl_s)
    Queue(keys.QUEUE_CHECKS, connection=redis).enqueue(
        f"{_JOBS}.run_check", record.id, job_id=f"check-{record.id}", job_timeout=settings.job_timeout_s,
        description=f"check {record.repository}@{record.revision}")


def queue_depths(redis: Redis, contest_ids: list[str]) -> dict[str, int]:
    """The shared queues' depths (each host's own: host_queue_depths)."""
    names = [keys.QUEUE_PREPARE, keys.QUEUE_CHECKS, *(keys.queue_gpu(c) for c in contest_ids)]
    return {name: Queue(name, connection=redis).count for name in names}


def host_queue_names(host: str, contest_ids: list[str]) -> list[str]:
    return [keys.queue_prepare_on(host), *(keys.queue_gpu_on(c, host) for c in contest_ids)]


def host_queue_depths(redis: Redis, host: str, contest_ids: list[str]) -> dict[str, int]:
    return {name: Queue(name, connection=redis).count for name in host_queue_names(host, contest_ids)}


def all_queue_names(redis: Redis, contest_ids: list[str]) -> list[str]:
    """Every queue a run's jobs can be in: the shared ones, every known host's, every GPU worker's."""
    names = [keys.QUEUE_PREPARE, *(keys.queue_gpu(c) for c in contest_ids)]
    for host in hosts.known_hosts(redis):
        names += host_queue_names(host, contest_ids)
    for status, _alive in workers.list_workers(redis):
        names += [keys.queue_gpu_of(c, status.name) for c in contest_ids if c in status.contests]
    return names
