"""RQ jobs: plain functions taking IDs. Preparation on the CPU queue, benchmarks on a GPU queue.

A submission's own failures end as `invalid` with a reason and are never retried; anything
else (Docker, Redis, the hub) raises and RQ retries it. Results land once (HSETNX).
"""

from __future__ import annotations

import logging
import random
import time
from functools import cache

from rq import Queue, Retry

from edgemaxx import keys
from edgemaxx.contest import load_contest
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import RunResult, RunStatus, SourceKind, SubmissionSource
from edgemaxx.records import SubmissionRecord, SubmissionState
from images.prepare import prepare
from worker import context, store
from worker.benchmark import benchmark, limits_for, median_run, request_timeout_from_baseline

log = logging.getLogger(__name__)


def _docker_client(backend: str):  # noqa: ANN202
    return _shared_docker_client() if backend == "docker" else None


@cache
def _shared_docker_client():  # noqa: ANN202
    # One per work horse (jobs run in a fresh fork), not one per sandbox.
    from sandbox.docker_backend import docker_client

    return docker_client()


def _backend() -> str:
    from worker.benchmark import choose_backend

    return choose_backend(context.current().settings.sandbox_backend)


def prepare_baseline(run_id: str) -> str:
    ctx = context.current()
    run = store.load_run(ctx.redis, run_id)
    if run is None:
        return "run gone"
    if run.baseline_prepared is not None:
        return "already prepared"
    backend = _backend()
    try:
        run.baseline_prepared = prepare(
            ctx.settings, run.baseline_source, backend, name="baseline", docker_client=_docker_client(backend),
            progress=lambda phase: ctx.progress(phase, run_id=run_id, hotkey="baseline"))
    except SubmissionError as exc:
        run.baseline_error = f"the baseline is broken: {exc.reason}"
        store.save_run(ctx.redis, run)
        raise InfrastructureError(run.baseline_error) from exc
    finally:
        ctx.progress("idle")
    store.save_run(ctx.redis, run)
    return "prepared"


def prepare_submission(run_id: str, hotkey: str) -> str:
    ctx = context.current()
    redis = ctx.redis
    run = store.load_run(redis, run_id)
    record = store.load_record(redis, run_id, hotkey)
    if run is None or record is None:
        return "gone"
    if record.state.final or store.has_result(redis, run_id, hotkey):
        return "already final"
    record.state = SubmissionState.PREPARING
    record.attempts += 1
    store.save_record(redis, run_id, record)
    backend = _backend()
    try:
        record.prepared = prepare(ctx.settings, record.source, backend, name=hotkey,
                                  docker_client=_docker_client(backend),
                                  progress=lambda phase: ctx.progress(phase, run_id=run_id, hotkey=hotkey))
    except SubmissionError as exc:
        record.state = SubmissionState.INVALID
        record.reason = exc.reason
        record.log_tail = exc.log_tail
        store.land_result(redis, run_id, record)
        return "invalid"
    finally:
        ctx.progress("idle")
    record.state = SubmissionState.PREPARED
    store.save_record(redis, run_id, record)
    enqueue_benchmark(redis, run.contest, run_id, hotkey, ctx.settings.benchmark_retries,
                      ctx.settings.job_timeout_s)
    return "prepared"


def enqueue_benchmark(redis, contest_id: str, run_id: str, hotkey: str, retries: int,  # noqa: ANN001
                      timeout_s: int) -> None:
    queue = Queue(keys.queue_gpu(contest_id), connection=redis)
    # A coin flip for the front or the back: benchmark order is not preparation order, so no
    # miner can count on running first or last (thermal state, a warm page cache).
    queue.enqueue(benchmark_submission, run_id, hotkey, job_id=f"bench-{run_id}-{hotkey}",
                  retry=Retry(max=retries, interval=5), job_timeout=timeout_s,
                  at_front=random.random() < 0.5, description=f"benchmark {hotkey}")


def _ensure_baseline(run_id: str) -> RunResult:
    """This worker's baseline for the run: measured on this GPU before any submission."""
    ctx = context.current()
    redis = ctx.redis
    run = store.load_run(redis, run_id)
    assert run is not None
    existing = store.load_baseline(redis, run_id, ctx.status.name, len(run.inputs))
    if existing is not None:
        return existing
    if run.baseline_prepared is None:
        raise InfrastructureError(run.baseline_error or "the baseline is not prepared yet")
    contest = load_contest(run.contest)
    ctx.progress("loading", run_id=run_id, hotkey="baseline", total=len(run.inputs))
    limits = limits_for(ctx.settings, request_timeout_s=contest.timeouts.request_default_s,
                        load_timeout_s=contest.timeouts.load_s, run_timeout_s=contest.timeouts.run_s)
    runs = [benchmark(ctx.settings, run.baseline_prepared, run.inputs, limits,
                      client=_docker_client(run.baseline_prepared.backend),
                      progress=_request_progress(run_id, "baseline"))
            for _ in range(ctx.settings.baseline_runs)]
    result = median_run(runs)
    if result.status is not RunStatus.OK:
        run.baseline_error = f"the baseline failed on {ctx.status.name}: {result.reason}"
        store.save_run(redis, run)
        raise InfrastructureError(run.baseline_error)
    store.save_baseline(redis, run_id, ctx.status.name, result)
    redis.rpush(keys.order(run_id), f"baseline@{ctx.status.name}")
    return result


def _request_progress(run_id: str, hotkey: str):  # noqa: ANN202
    ctx = context.current()

    def report(phase: str, current: int | None = None, total: int | None = None) -> None:
        ctx.progress(phase, run_id=run_id, hotkey=hotkey, current=current, total=total)

    return report


def benchmark_submission(run_id: str, hotkey: str) -> str:
    ctx = context.current()
    redis = ctx.redis
    if store.has_result(redis, run_id, hotkey):
        return "already landed"
    run = store.load_run(redis, run_id)
    record = store.load_record(redis, run_id, hotkey)
    if run is None or record is None or record.prepared is None:
        return "gone"
    contest = load_contest(run.contest)
    started = time.monotonic()
    try:
        # 1. Baseline first, on this worker's GPU, once per run.
        baseline = _ensure_baseline(run_id)
        redis.rpush(keys.order(run_id), hotkey)
        record.state = SubmissionState.BENCHMARKING
        record.worker = ctx.status.name
        store.save_record(redis, run_id, record)

        # 2. The submission, on the same inputs, with the clock set by the baseline.
        timeout = request_timeout_from_baseline(ctx.settings, baseline, contest.timeouts.request_factor)
        limits = limits_for(ctx.settings, request_timeout_s=timeout,
                            load_timeout_s=contest.timeouts.load_s, run_timeout_s=contest.timeouts.run_s)
        result = benchmark(ctx.settings, record.prepared, run.inputs, limits,
                           client=_docker_client(record.prepared.backend),
                           progress=_request_progress(run_id, hotkey))
        record.metrics = result.metrics
        record.log_tail = result.log_tail
        record.baseline_worker = ctx.status.name
        if result.status is not RunStatus.OK:
            record.state = SubmissionState.INVALID
            record.reason = result.reason
        else:
            # 3. Compare and score.
            ctx.progress("comparing", run_id=run_id, hotkey=hotkey)
            _score(record, baseline, result, contest)
            store.save_outputs(redis, run_id, hotkey, result.outputs)
        store.land_result(redis, run_id, record)
        store.record_duration(redis, time.monotonic() - started)
        return record.state.value
    finally:
        ctx.progress("idle")


def _torch_device(gpu: int | None) -> str | None:
    """LPIPS runs on this worker's own GPU, when torch can see it."""
    if gpu is None:
        return "cpu"
    import torch

    return f"cuda:{gpu}" if torch.cuda.is_available() else "cpu"


def _score(record: SubmissionRecord, baseline: RunResult, result: RunResult, contest) -> None:  # noqa: ANN001
    from scoring.score import score
    from scoring.similarity import compare

    gpu = context.current().settings.gpu
    similarity = compare(baseline.outputs, result.outputs, contest.similarity_metric,
                         device=_torch_device(gpu))
    record.similarities = similarity.values
    record.similarity_mean = similarity.mean
    record.similarity_min = similarity.min
    breakdown = score(baseline.metrics, result.metrics, similarity.mean, similarity.min, contest)
    record.score_terms = breakdown.terms
    if breakdown.score is None:
        record.state = SubmissionState.INVALID
        record.reason = breakdown.invalid_reason
    else:
        record.state = SubmissionState.SCORED
        record.score = breakdown.score


def run_check(check_id: str) -> str:
    """A miner's pre-commit check, on a builder: clone, static checks, sandbox build."""
    from edgemaxx.records import CheckRecord, CheckState
    from images.checks import full_check

    ctx = context.current()
    raw = ctx.redis.get(keys.check(check_id))
    if raw is None:
        return "gone"
    record = CheckRecord.model_validate_json(raw)

    def save() -> None:
        record.updated_at = time.time()
        ctx.redis.set(keys.check(check_id), record.model_dump_json(), ex=ctx.settings.check_ttl_s)

    record.state = CheckState.RUNNING
    save()
    ctx.progress("checking", run_id=f"check-{check_id}", hotkey=record.repository)
    try:
        backend = _backend()
        source = SubmissionSource(kind=SourceKind.GIT, url=record.repository, revision=record.revision)
        record.report = full_check(ctx.settings, source, build=True, backend=backend,
                                   docker_client=_docker_client(backend))
        record.ok = record.report.ok
        record.state = CheckState.DONE
    except InfrastructureError as exc:
        record.state = CheckState.ERROR
        record.error = f"the validator could not finish the check: {exc}"
    finally:
        save()
        ctx.progress("idle")
    return record.state.value
