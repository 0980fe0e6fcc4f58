"""GET /v1/status: is the service healthy, what are the workers doing, how far is each contest."""

from __future__ import annotations

import time

from fastapi import APIRouter
from redis.exceptions import RedisError

from api.deps import RedisDep
from api.schemas import ContestProgress, StatusPublic, WorkerPublic
from edgemaxx.contest import all_contests
from state import runs, workers
from state.chain import load_chain_status
from state.preflight import list_preflight
from worker.queues import queue_depths

router = APIRouter(tags=["status"])


@router.get("/v1/status", response_model=StatusPublic)
def status(redis: RedisDep) -> StatusPublic:
    try:
        redis.ping()
    except RedisError:
        return StatusPublic(healthy=False, redis=False, workers=[], queues={}, contests=[])
    contest_ids = [c.id for c in all_contests()]
    shown = []
    now = time.time()
    for worker, alive in workers.list_workers(redis):
        shown.append(WorkerPublic(
            name=worker.name, kind=worker.kind, gpu=worker.gpu, gpu_name=worker.gpu_name,
            tier=worker.tier, alive=alive, busy=worker.busy and alive, progress=worker.progress,
            busy_fraction=worker.busy_fraction(now),
            sandbox_runtime=worker.sandbox_runtime, sandbox_problem=worker.sandbox_problem))
    contests = []
    for contest_id in contest_ids:
        run = runs.current_run(redis, contest_id)
        if run is None:
            continue
        contests.append(ContestProgress(
            contest=contest_id, run_id=run.id, seed=run.seed, started_at=run.started_at,
            states=runs.state_counts(redis, run.id), baseline_ready=run.baseline_prepared is not None,
            baseline_error=run.baseline_error))
    return StatusPublic(healthy=any(w.alive for w in shown), redis=True,
                        workers=shown, queues=queue_depths(redis, contest_ids), contests=contests,
                        chain=load_chain_status(redis), preflight=list_preflight(redis))
