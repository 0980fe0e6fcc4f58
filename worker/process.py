"""Worker processes: `edgemaxx builder` (CPU, preparation) and `edgemaxx worker --gpu N`."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import now

from edgemaxx.contest import Contest, all_contests, load_contest
from edgemaxx.errors import InfrastructureError
from edgemaxx.settings import Settings
from sandbox.gpu import gpu_name
from sandbox.select import check_sandbox_runtime, sandbox_tier
from state import keys, workers
from state.records import WorkerStatus
from worker import context, failover, housekeeping, lifecycle, preflight, warm
from worker.reaper import WORKER_ENV, reap_leftovers, reap_sandboxes

log = logging.getLogger(__name__)

_RUNTIME_RECHECK_S = 60.0  # runsc can be registered while a refusing worker waits (dockerd reloads on SIGHUP)


def worker_name(kind: str, gpu: int | None, name: str | None = None, host: str | None = None) -> str:
    if name:
        return name
    where = f"gpu{gpu}" if gpu is not None else ("cpu" if kind == "gpu" else kind)
    return f"{host or socket.gethostname()}-{where}"


def gpu_mismatch(contest: Contest, card: str | None) -> str | None:
    """Why results of this card would not be the contest's, or None when it is the contest's card
    (a contest without a `gpu` runs anywhere)."""
    if contest.gpu is None or card == contest.gpu:
        return None
    return f"it is measured on {contest.gpu}; this worker has {card or 'no GPU'}"


def choose_contests(settings: Settings, card: str | None,
                    requested: list[str] | None) -> tuple[list[Contest], dict[str, str]]:
    """The contests this worker serves, and those it refuses (by id) with the reason."""
    contests = [load_contest(c) for c in requested] if requested else all_contests()
    served: list[Contest] = []
    refused: dict[str, str] = {}
    for contest in contests:
        why = gpu_mismatch(contest, card)
        if why and not settings.allow_gpu_mismatch:
            refused[contest.id] = f"{why} (EDGEMAXX_ALLOW_GPU_MISMATCH=1 benchmarks it anyway)"
            log.warning("refusing contest %s: %s", contest.id, refused[contest.id])
            continue
        if why:
            log.warning("benchmarking contest %s anyway (EDGEMAXX_ALLOW_GPU_MISMATCH): %s; every result "
                        "records the card that measured it", contest.id, why)
        served.append(contest)
    return served, refused


def recover_orphans(redis: Redis, queue_names: list[str], name: str) -> int:
    """Requeue jobs a previous process of this name was running when it died (kill -9).

    Names are one per GPU (or per builder slot), so a STARTED job carrying this name can only
    belong to a dead predecessor; waiting for RQ's heartbeat expiry would cost minutes.
    """
    recovered = 0
    stale = Worker.redis_worker_namespace_prefix + name
    if redis.exists(stale) and not redis.hexists(stale, "death"):
        redis.hset(stale, "death", now().isoformat())
    for queue_name in queue_names:
        queue = Queue(queue_name, connection=redis)
        registry = StartedJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            if not redis.exists(Job.key_for(job_id)):
                continue
            job = Job.fetch(job_id, connection=redis)
            if job.worker_name != name:
                continue
            registry.remove_executions(job)
            queue.enqueue_job(job, at_front=True)
            recovered += 1
            log.warning("requeued %s, orphaned by a dead %s", job_id, name)
    return recovered


def sandbox_ready(settings: Settings, status: WorkerStatus) -> bool:
    """Whether benchmark containers can run under the configured runtime; the answer goes to the
    log and into `status` (so /v1/status shows why a worker takes no jobs)."""
    report = check_sandbox_runtime(settings)
    status.sandbox_runtime, status.sandbox_problem = report.runtime, report.problem
    for note in report.notes:
        log.warning("sandbox runtime %s: %s", report.runtime, note)
    if report.problem:
        log.error("taking no benchmark jobs: sandbox runtime %s: %s", report.runtime, report.problem)
    else:
        log.info("benchmark containers run under %s%s", report.runtime,
                 f" ({report.version})" if report.version else "")
    return report.ok


class EdgeWorker(Worker):
    """RQ's forking worker with edgemaxx's ends.

    - SIGTERM/SIGINT: the job in flight is stopped at once (its work horse killed), its sandbox
      removed, and the job requeued at the front for another worker; RQ would otherwise wait for
      the job to finish (hours) or, on a second signal, fail it.
    - After every job, whatever its end: this worker's sandboxes and run directories are removed.
    - A work horse that died (memory, a signal, RQ's timeout) on its last attempt ends its
      submission as `error`: RQ runs no failure callback on that path.
    - Housekeeping between jobs, every `housekeeping_interval_s`.
    """

    def __init__(self, *args: Any, edge_settings: Settings, **kwargs: Any) -> None:
        kwargs["work_horse_killed_handler"] = self._horse_killed
        super().__init__(*args, **kwargs)
        self.edge_settings = edge_settings
        self.shutting_down = False
        self.next_housekeeping = time.monotonic() + edge_settings.housekeeping_interval_s

    def handle_warm_shutdown_request(self) -> None:
        self.shutting_down = True
        # A bound on the whole stop, whatever hangs (Docker, Redis): exit regardless past it.
        watchdog = threading.Timer(self.edge_settings.shutdown_timeout_s, _exit_now, args=(self.name,))
        watchdog.daemon = True
        watchdog.start()
        if self.horse_pid:
            log.warning("%s: shutting down; stopping the job in flight to requeue it", self.name)
            self.kill_horse()
        else:
            log.info("%s: shutting down", self.name)

    def _horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        if self.shutting_down:
            return
        signal_note = f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
        lifecycle.horse_died(self.connection, job, f"the process running it died{signal_note}")

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Any = None) -> None:
        if not self.shutting_down or self.is_horse:
            super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                       exc_string=exc_string, execution=execution)
            return
        # Stopped by our own shutdown, not failed: no retry spent, first in line for the next worker.
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.execute()
        queue.enqueue_job(job, at_front=True)
        log.warning("%s: requeued %s", self.name, job.id)

    def execute_job(self, job: Job, queue: Queue) -> None:
        _best_effort("checking the disk", housekeeping.check_disk, self.connection, self.edge_settings)
        try:
            super().execute_job(job, queue)
        finally:
            _best_effort("reaping sandboxes", reap_sandboxes, self.edge_settings, self.name)
            # A killed horse (a stop, RQ's timeout) could not say it is idle: say it for it.
            _best_effort("publishing status", context.current().progress, "idle")

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        if time.monotonic() >= self.next_housekeeping:
            self.next_housekeeping = time.monotonic() + self.edge_settings.housekeeping_interval_s
            run_housekeeping_safely(self.connection, self.edge_settings, self.name)


def _best_effort(what: str, fn: Callable[..., object], *args: Any) -> None:
    """Around each job: a failure here (Redis or Docker hiccup) must not end the worker's loop."""
    try:
        fn(*args)
    except Exception:  # logged with its traceback; the next job tries again
        log.exception("%s failed", what)


def _exit_now(name: str) -> None:
    log.error("%s did not stop within its shutdown timeout; exiting now", name)
    os._exit(1)


def run_housekeeping_safely(redis: Redis, settings: Settings, owner: str) -> None:
    """A failed pass must not stop the worker: it is logged, and the next pass tries again."""
    from sandbox.select import docker_client

    try:
        try:
            client = docker_client()
        except InfrastructureError:
            client = None
        housekeeping.run_housekeeping(redis, settings, client, owner=owner)
    except Exception:  # housekeeping is best effort (logged with its traceback); jobs come first
        log.exception("housekeeping failed")


def run_worker(settings: Settings, kind: str, *, gpu: int | None = None, name: str | None = None,
               contests: list[str] | None = None, burst: bool = False) -> None:
    if not settings.redis_url:
        raise SystemExit("EDGEMAXX_REDIS_URL is not set")
    redis = Redis.from_url(settings.redis_url)
    name = worker_name(kind, gpu, name, settings.host)
    settings = settings.model_copy(update={"gpu": gpu, "owner": name})
    # First: a misconfigured box says why in one line and waits (before anything probes the GPU).
    preflight.ensure_ready(settings, redis, kind, name, gpu, contests, wait=not burst)
    card = gpu_name(gpu) if gpu is not None else None
    serving, refused = choose_contests(settings, card, contests) if kind == "gpu" else ([], {})
    served = [c.id for c in serving]
    # Its own queue first (re-measurements), then its host's (what the host was assigned), then the
    # shared one (anything unassigned).
    host = settings.host
    queue_names = ([keys.queue_prepare_on(host), keys.QUEUE_PREPARE, keys.QUEUE_CHECKS] if kind == "builder" else
                   [*(keys.queue_gpu_of(c, name) for c in served), *(keys.queue_gpu_on(c, host) for c in served),
                    *(keys.queue_gpu(c) for c in served)])

    # 1. Clean up after a predecessor of this name: its horse, containers, processes, run dirs,
    #    jobs. Then mark our own processes (work horses inherit it) for our successor.
    reap_leftovers(settings, name)
    os.environ[WORKER_ENV] = name
    recover_orphans(redis, queue_names, name)

    # 2. Publish status, with a heartbeat the API reads.
    status = WorkerStatus(name=name, kind=kind, host=host, gpu=gpu, gpu_name=card, contests=served, refused=refused,
                          tier=sandbox_tier(settings) if kind == "gpu" else None)
    workers.reset_busy(redis, name)
    ctx = context.WorkerContext(settings=settings, redis=redis, status=status)
    context.configure(ctx)
    ready = kind == "builder" or sandbox_ready(settings, status)
    ctx.progress("idle")
    if kind == "gpu" and not served:
        workers.mark_stopped(redis, name)
        raise SystemExit(f"{name} serves no contest: " + "; ".join(refused.values()))
    run_housekeeping_safely(redis, settings, name)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(1, settings.worker_heartbeat_ttl_s // 3)):
            ctx.heartbeat()
            _best_effort("recovering lost hosts", failover.recover_lost_hosts, redis, settings,
                         max(1, settings.worker_heartbeat_ttl_s // 3))

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    if kind == "gpu":  # seconds of imports: alive meanwhile (the heartbeat runs)
        warm.warm_up(serving)
    while not ready:  # refuse jobs until the runtime is fixed, saying why in /v1/status
        if burst:
            raise SystemExit(f"sandbox runtime {status.sandbox_runtime}: {status.sandbox_problem}")
        time.sleep(_RUNTIME_RECHECK_S)
        ready = sandbox_ready(settings, status)
        ctx.progress("idle")

    # 3. Take jobs, one at a time. RQ forks a work horse per job and kills it past its timeout.
    worker = EdgeWorker([Queue(q, connection=redis) for q in queue_names], connection=redis, name=name,
                        edge_settings=settings)
    try:
        worker.work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
        workers.mark_stopped(redis, name)
        log.info("%s stopped", name)
