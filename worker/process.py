"""Worker processes: `edgemaxx builder` (CPU, preparation) and `edgemaxx worker --gpu N`."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import now

from edgemaxx.contest import all_contests
from edgemaxx.settings import Settings
from sandbox.gpu import gpu_name
from sandbox.select import check_sandbox_runtime, sandbox_tier
from state import keys, workers
from state.records import WorkerStatus
from worker import context, preflight
from worker.reaper import WORKER_ENV, reap_leftovers
from worker.shutdown import StoppingWorker

log = logging.getLogger(__name__)

_RUNTIME_RECHECK_S = 60.0  # runsc can be registered while a refusing worker waits (dockerd reloads on SIGHUP)


def worker_name(kind: str, gpu: int | None, name: str | None = None) -> str:
    if name:
        return name
    where = f"gpu{gpu}" if gpu is not None else ("cpu" if kind == "gpu" else kind)
    return f"{socket.gethostname()}-{where}"


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


def run_worker(settings: Settings, kind: str, *, gpu: int | None = None, name: str | None = None,
               contests: list[str] | None = None, burst: bool = False) -> None:
    if not settings.redis_url:
        raise SystemExit("EDGEMAXX_REDIS_URL is not set")
    redis = Redis.from_url(settings.redis_url)
    name = worker_name(kind, gpu, name)
    settings = settings.model_copy(update={"gpu": gpu, "owner": name})
    queue_names = ([keys.QUEUE_PREPARE, keys.QUEUE_CHECKS] if kind == "builder" else
                   [keys.queue_gpu(c) for c in (contests or [c.id for c in all_contests()])])

    preflight.ensure_ready(settings, redis, kind, name, gpu, contests)  # misconfigured: one-line reason, wait
    # 1. Clean up after a predecessor of this name: its horse, containers, processes, run dirs,
    #    jobs. Then mark our own processes (work horses inherit it) for our successor.
    reap_leftovers(settings, name)
    os.environ[WORKER_ENV] = name
    recover_orphans(redis, queue_names, name)

    # 2. Publish status, with a heartbeat the API reads.
    status = WorkerStatus(name=name, kind=kind, gpu=gpu, gpu_name=gpu_name(gpu) if gpu is not None else None,
                          tier=sandbox_tier(settings) if kind == "gpu" else None)
    workers.reset_busy(redis, name)
    ctx = context.WorkerContext(settings=settings, redis=redis, status=status)
    context.configure(ctx)
    ready = kind == "builder" or sandbox_ready(settings, status)
    ctx.progress("idle")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(1, settings.worker_heartbeat_ttl_s // 3)):
            ctx.heartbeat()

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    while not ready:  # refuse jobs until the runtime is fixed, saying why in /v1/status
        if burst:
            raise SystemExit(f"sandbox runtime {status.sandbox_runtime}: {status.sandbox_problem}")
        time.sleep(_RUNTIME_RECHECK_S)
        ready = sandbox_ready(settings, status)
        ctx.progress("idle")

    # 3. Take jobs, one at a time. RQ forks a work horse per job and kills it past its timeout.
    worker = StoppingWorker([Queue(q, connection=redis) for q in queue_names], connection=redis, name=name)
    try:
        worker.work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
