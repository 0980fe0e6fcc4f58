"""GET /v1/status: is the service healthy, what are the workers doing, how far is each contest,
when were weights last set, is any disk running low."""

from __future__ import annotations

import time

from fastapi import APIRouter
from redis.exceptions import RedisError

from api.deps import RedisDep
from api.schemas import ContestProgress, StatusPublic, WeightsStatus, WorkerPublic
from edgemaxx.contest import all_contests
from state import housekeeping, runs, workers
from state.chain import load_chain_status
from state.preflight import list_preflight
from state.records import ChainStatus
from worker.queues import queue_depths

router = APIRouter(tags=["status"])


def weights_status(chain: ChainStatus | None) -> WeightsStatus | None:
    if chain is None:
        return None
    last_set, attempt = chain.last_set, chain.last_weights
    return WeightsStatus(
        last_set_at=last_set.at if last_set else None, last_set_block=last_set.block if last_set else None,
        last_set_runs=(last_set.run_id or "").split(",") if last_set and last_set.run_id else [],
        last_attempt_at=attempt.at if attempt else None, last_attempt_ok=attempt.ok if attempt else None,
        last_attempt_message=attempt.message if attempt else "",
        next_attempt_block=chain.next_weights_block, next_attempt_at=chain.next_weights_at,
        interval_blocks=chain.weights_interval_blocks, activity_cutoff_blocks=chain.activity_cutoff_blocks)


@router.get("/v1/status", response_model=StatusPublic)
def status(redis: RedisDep) -> StatusPublic:
    try:
        redis.ping()
    except RedisError:
        return StatusPublic(healthy=False, redis=False, workers=[], queues={}, contests=[],
                            warnings=["Redis is unreachable"])
    contest_ids = [c.id for c in all_contests()]
    shown = []
    warnings: list[str] = []
    now = time.time()
    for worker, alive in workers.list_workers(redis):
        shown.append(WorkerPublic(
            name=worker.name, kind=worker.kind, gpu=worker.gpu, gpu_name=worker.gpu_name,
            tier=worker.tier, contests=worker.contests, refused=worker.refused, alive=alive,
            busy=worker.busy and alive, progress=worker.progress, busy_fraction=worker.busy_fraction(now),
            sandbox_runtime=worker.sandbox_runtime, sandbox_problem=worker.sandbox_problem))
        if alive:
            warnings += [f"worker {worker.name} refuses contest {c}: {why}" for c, why in worker.refused.items()]
            if worker.sandbox_problem:
                warnings.append(f"worker {worker.name} takes no jobs: {worker.sandbox_problem}")
    contests = []
    for contest_id in contest_ids:
        run = runs.current_run(redis, contest_id)
        if run is None:
            continue
        contests.append(ContestProgress(
            contest=contest_id, run_id=run.id, seed=run.seed, started_at=run.started_at, state=run.state,
            deadline_at=run.deadline_at, finished_at=run.end.at if run.end else None,
            end_reason=run.end.reason if run.end else "",
            states=runs.state_counts(redis, run.id), baseline_ready=run.baseline_prepared is not None,
            baseline_error=run.baseline_error))
    reports = housekeeping.reports(redis)
    disk_low = any(d.low for r in reports for d in r.disk)
    warnings += [f"{r.host}: {w}" for r in reports for w in r.warnings]
    chain = load_chain_status(redis)
    if chain and chain.last_weights and not chain.last_weights.ok:
        warnings.append(f"weights: {chain.last_weights.message}")
    return StatusPublic(healthy=any(w.alive for w in shown), redis=True,
                        workers=shown, queues=queue_depths(redis, contest_ids), contests=contests,
                        chain=chain, weights=weights_status(chain), disk_low=disk_low,
                        housekeeping=reports, warnings=warnings,
                        preflight=list_preflight(redis))
