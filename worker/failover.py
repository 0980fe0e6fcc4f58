"""A host that disappears: its jobs go to the hosts that remain.

A host is lost, for a job, when the workers that job needs there have no fresh heartbeat any more
(a submission needs the host's builder and a GPU worker of its contest): the box crashed, lost its
network, was shut down, or only its GPU worker died and nobody restarts it. What it held is only
good there (images in its engine, code and models on its disk), so its work is not moved as is
but assigned again: each submission it was to prepare or benchmark is prepared afresh on the least
loaded live host (worker.queues.assign_host) and benchmarked there; the rest (a baseline, a run's
end, a miner's check) goes back to the shared queues, for any builder. Started jobs count too: their
executions are removed from RQ's registry, which would otherwise hold them until the job timeout.

Every worker and builder runs a pass from its heartbeat thread (a lock keeps it to one at a
time), so recovery needs nobody but the surviving hosts. A job that moved and then also lands
from the lost host (a network split, not a crash) lands once: results are written with HSETNX.
A job that can still run on its host (another live GPU worker of its contest there) stays: a
worker's successor of the same name requeues it (worker.process.recover_orphans), or another
worker of that host takes it. So does a job no other host can take (a single box whose worker
restarts): it waits for its host.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry

from edgemaxx.settings import Settings
from state import hosts, keys, runs, workers
from worker import queues

log = logging.getLogger(__name__)


class Liveness:
    """Which hosts can still do what, from the workers' heartbeats."""

    def __init__(self, redis: Redis) -> None:
        self.builders: set[str] = set()  # hosts with a live builder
        self.gpus: dict[str, set[str]] = {}  # host → contests its live GPU workers serve
        self.worker_host: dict[str, tuple[str, str]] = {}  # worker name → (host, kind)
        self.alive: set[str] = set()  # live worker names
        for status, alive in workers.list_workers(redis):
            self.worker_host[status.name] = (status.host, status.kind)
            if not alive or not status.host:
                continue
            self.alive.add(status.name)
            if status.kind == "builder":
                self.builders.add(status.host)
            elif not status.sandbox_problem:
                self.gpus.setdefault(status.host, set()).update(status.contests)
        self.contests = sorted({c for s, _ in workers.list_workers(redis) for c in s.contests})
        self.hosts = sorted(set(hosts.known_hosts(redis)) | {h for h, _ in self.worker_host.values() if h})

    def can_benchmark(self, host: str, contest: str | None) -> bool:
        return contest is not None and contest in self.gpus.get(host, set())

    def lost(self) -> list[str]:
        """Hosts that can no longer take a submission end to end for at least one contest."""
        return [h for h in self.hosts
                if h not in self.builders or any(not self.can_benchmark(h, c) for c in self.contests)]


def _contest_of(redis: Redis, job: Job) -> str | None:
    run = runs.load_run(redis, str(job.args[0])) if job.args else None
    return run.contest if run else None


def _stranded(redis: Redis, live: Liveness, job: Job, host: str) -> bool:
    """Whether a job meant for `host` can no longer run there: a submission needs the host's
    builder and a GPU worker of its contest there; anything else only the builder."""
    kind = (job.func_name or "").rsplit(".", 1)[-1]
    if kind == "remeasure_submission":
        return False  # it waits for its own GPU worker; the run's deadline bounds the wait
    if kind == "benchmark_submission":
        return not live.can_benchmark(host, _contest_of(redis, job))
    if kind == "prepare_submission":
        return host not in live.builders or not live.can_benchmark(host, _contest_of(redis, job))
    return host not in live.builders


def _elsewhere(redis: Redis, live: Liveness, job: Job, host: str) -> bool:
    """Whether another host can take the job now: with none, it waits for its own host to come
    back (one box whose worker restarts must not see its queue shuffled)."""
    kind = (job.func_name or "").rsplit(".", 1)[-1]
    if kind in ("prepare_submission", "benchmark_submission"):
        contest = _contest_of(redis, job)
        return contest is not None and queues.assign_host(redis, contest, exclude=frozenset({host})) is not None
    return bool(live.builders - {host})


def _reassign(redis: Redis, settings: Settings, job: Job, away_from: str) -> str:
    """Put one job of a lost host where it can run; what was done, for the log."""
    kind = (job.func_name or "").rsplit(".", 1)[-1]
    args = [str(a) for a in (job.args or [])]
    if kind in ("prepare_submission", "benchmark_submission") and len(args) >= 2:
        run_id, hotkey = args[0], args[1]
        run = runs.load_run(redis, run_id)
        record = runs.load_record(redis, run_id, hotkey)
        job.delete()
        if run is None or record is None or run.end is not None or runs.has_result(redis, run_id, hotkey):
            return "dropped (nothing left to do)"
        record.host = queues.assign_host(redis, run.contest, exclude=frozenset({away_from}))
        runs.save_record(redis, run_id, record)
        # At the front: it waited on the lost host already.
        queues.enqueue_prepare(redis, settings, run_id, hotkey, record.host, at_front=True)
        return f"to be prepared on {record.host or 'the first free builder'}"
    target = keys.QUEUE_CHECKS if kind == "run_check" else keys.QUEUE_PREPARE
    Queue(target, connection=redis).enqueue_job(job, at_front=True)
    return f"requeued on {target}"


def recover_lost_hosts(redis: Redis, settings: Settings, lock_s: int = 10) -> int:
    """One pass: every job stranded on a host that can no longer run it (queued in that host's
    queues, or started by one of its workers that died), assigned again. Returns how many moved."""
    if not hosts.try_recovery_lock(redis, settings.host, lock_s):
        return 0
    live = Liveness(redis)
    lost = live.lost()
    if not lost:
        return 0
    moved = 0
    for name in queues.all_queue_names(redis, live.contests) + [keys.QUEUE_CHECKS]:
        queue = Queue(name, connection=redis)
        # 1. Started by a worker that died, on a host that can no longer run the job.
        registry = StartedJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=redis)
            except NoSuchJobError:
                continue
            worker = job.worker_name or ""
            host, _kind = live.worker_host.get(worker, ("", ""))
            if (worker in live.alive or host not in lost or not _stranded(redis, live, job, host)
                    or not _elsewhere(redis, live, job, host)):
                continue
            registry.remove_executions(job)
            what = _reassign(redis, settings, job, host)
            moved += 1
            log.warning("%s cannot run on %s any more (started by %s, which died): %s", job_id, host, worker, what)
        # 2. Waiting in the queue of a host that can no longer run it.
        owner = next((h for h in lost if name in queues.host_queue_names(h, live.contests)), None)
        if owner is None:
            continue
        for job_id in queue.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=redis)
            except NoSuchJobError:
                continue
            if not _stranded(redis, live, job, owner) or not _elsewhere(redis, live, job, owner):
                continue
            queue.remove(job_id)
            what = _reassign(redis, settings, job, owner)
            moved += 1
            log.warning("%s cannot run on %s any more: %s", job_id, owner, what)
    if moved:
        log.warning("moved %d job(s) away from %s", moved, ", ".join(lost))
    return moved
