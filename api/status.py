"""The validator's state for an operator: is the service healthy, what is each worker doing and
when will it be done, how far is each contest and when will its run be done, when were weights
last set, is any disk running low. `GET /v1/status` serves it; `edgemaxx status` prints it.

Times to come are estimated from measured durations: the median of the last benchmark durations
(`state.metrics`) less what the job in flight has already spent, and for a run, the submissions
still waiting for a GPU shared among the live workers that serve its contest.
"""

from __future__ import annotations

import math
import statistics
import time

from redis import Redis
from redis.exceptions import RedisError

from api.schemas import ContestProgress, HostPublic, StatusPublic, WeightsStatus, WorkerPublic
from edgemaxx.contest import all_contests
from state import housekeeping, metrics, runs, workers
from state.chain import load_chain_status
from state.hosts import known_hosts
from state.preflight import list_preflight
from state.records import ChainStatus, HousekeepingReport, RunState, SubmissionState
from worker.queues import host_queue_depths, queue_depths

DURATIONS_USED = 50  # the newest benchmark durations the estimates come from
WAITING = (SubmissionState.QUEUED, SubmissionState.PREPARING, SubmissionState.PREPARED)


def weights_status(chain: ChainStatus | None) -> WeightsStatus | None:
    if chain is None:
        return None
    last_set, attempt = chain.last_set, chain.last_weights
    return WeightsStatus(
        last_set_at=last_set.at if last_set else None, last_set_block=last_set.block if last_set else None,
        last_set_runs=(last_set.run_id or "").split(",") if last_set and last_set.run_id else [],
        last_set_weights=dict(last_set.weights) if last_set else {},
        last_attempt_at=attempt.at if attempt else None, last_attempt_ok=attempt.ok if attempt else None,
        last_attempt_message=attempt.message if attempt else "",
        next_attempt_block=chain.next_weights_block, next_attempt_at=chain.next_weights_at,
        interval_blocks=chain.weights_interval_blocks, activity_cutoff_blocks=chain.activity_cutoff_blocks)


def typical_duration(redis: Redis) -> float | None:
    """The median of the newest benchmark durations (None before the first)."""
    recent = metrics.durations(redis, DURATIONS_USED)
    return statistics.median(recent) if recent else None


def _worker_eta(worker: WorkerPublic, typical: float | None, now: float) -> tuple[float | None, float | None]:
    """(seconds spent, seconds left) on the job in flight."""
    started = worker.progress.started_at
    if not worker.busy or started is None:
        return None, None
    elapsed = max(0.0, now - started)
    if worker.kind != "gpu" or typical is None:
        return elapsed, None
    return elapsed, max(0.0, typical - elapsed)


def _run_eta(states: dict[str, int], serving: list[WorkerPublic], typical: float | None,
             run_id: str) -> tuple[int, float | None]:
    """(submissions still waiting for a GPU, seconds until the last of them should be done)."""
    waiting = sum(states.get(s.value, 0) for s in WAITING)
    in_flight = [w.eta_s or 0.0 for w in serving if w.busy and w.progress.run_id == run_id]
    if typical is None or not serving:
        return waiting, None if waiting or states.get(SubmissionState.BENCHMARKING.value) else 0.0
    rounds = math.ceil(waiting / len(serving))
    return waiting, max(in_flight, default=0.0) + rounds * typical


def host_views(redis: Redis, shown: list[WorkerPublic], reports: list[HousekeepingReport],
               contest_ids: list[str]) -> list[HostPublic]:
    """The workers grouped by host, with each host's own queues and its last housekeeping report."""
    names = {w.host for w in shown if w.host} | set(known_hosts(redis))
    by_report = {r.host: r for r in reports}
    out = []
    for host in sorted(names):
        mine = [w for w in shown if w.host == host]
        out.append(HostPublic(
            host=host, alive=any(w.alive for w in mine),
            builders=sum(w.alive and w.kind == "builder" for w in mine),
            gpu_workers=sum(w.alive and w.kind == "gpu" for w in mine),
            workers=[w.name for w in mine], queues=host_queue_depths(redis, host, contest_ids),
            housekeeping=by_report.get(host)))
    return out


def build_status(redis: Redis) -> StatusPublic:
    try:
        redis.ping()
    except RedisError:
        return StatusPublic(healthy=False, redis=False, workers=[], queues={}, contests=[],
                            warnings=["Redis is unreachable"])
    contest_ids = [c.id for c in all_contests()]
    shown = []
    warnings: list[str] = []
    now = time.time()
    typical = typical_duration(redis)
    for worker, alive in workers.list_workers(redis):
        public = WorkerPublic(
            name=worker.name, kind=worker.kind, host=worker.host, gpu=worker.gpu, gpu_name=worker.gpu_name,
            tier=worker.tier, contests=worker.contests, refused=worker.refused, alive=alive,
            busy=worker.busy and alive, progress=worker.progress, busy_fraction=worker.busy_fraction(now),
            sandbox_runtime=worker.sandbox_runtime, sandbox_problem=worker.sandbox_problem)
        public.elapsed_s, public.eta_s = _worker_eta(public, typical, now)
        shown.append(public)
        if alive:
            warnings += [f"worker {worker.name} refuses contest {c}: {why}" for c, why in worker.refused.items()]
            if worker.sandbox_problem:
                warnings.append(f"worker {worker.name} takes no jobs: {worker.sandbox_problem}")
    contests = []
    for contest_id in contest_ids:
        run = runs.current_run(redis, contest_id)
        if run is None:
            continue
        states = runs.state_counts(redis, run.id)
        serving = [w for w in shown if w.kind == "gpu" and w.alive and not w.sandbox_problem
                   and contest_id in w.contests]
        waiting, eta = _run_eta(states, serving, typical, run.id) if run.state is RunState.RUNNING else (0, None)
        contests.append(ContestProgress(
            contest=contest_id, run_id=run.id, seed=run.seed, started_at=run.started_at, state=run.state,
            deadline_at=run.deadline_at, finished_at=run.end.at if run.end else None,
            end_reason=run.end.reason if run.end else "",
            states=states, baseline_ready=run.baseline_prepared is not None,
            baseline_error=run.baseline_error, waiting=waiting, eta_s=eta,
            typical_benchmark_s=typical))
    reports = housekeeping.reports(redis)
    disk_low = any(d.low for r in reports for d in r.disk)
    warnings += [f"{r.host}: {w}" for r in reports for w in r.warnings]
    chain = load_chain_status(redis)
    if chain and chain.last_weights and not chain.last_weights.ok:
        warnings.append(f"weights: {chain.last_weights.message}")
    hosts = host_views(redis, shown, reports, contest_ids)
    warnings += [f"host {h.host}: no live worker" for h in hosts if not h.alive and h.workers]
    return StatusPublic(healthy=any(w.alive for w in shown), redis=True, generated_at=now, hosts=hosts,
                        workers=shown, queues=queue_depths(redis, contest_ids), contests=contests,
                        chain=chain, weights=weights_status(chain), disk_low=disk_low,
                        housekeeping=reports, warnings=warnings, preflight=list_preflight(redis))
