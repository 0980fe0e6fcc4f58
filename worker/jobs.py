"""RQ jobs: plain functions taking IDs. Preparation on the CPU queue, benchmarks on a GPU queue.

A submission's own failures end as `invalid` with a reason and are never retried; anything
else (Docker, Redis, the hub) raises and RQ retries it. Results land once (HSETNX). Each job
logs its outcome once: what, which run, the outcome, the reason, how long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgemaxx.contest import load_contest
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend, RunResult, RunStatus, SourceKind, SubmissionSource
from images.prepare import prepare
from sandbox.runner import ProgressFn
from sandbox.select import choose_backend, docker_client
from state import checks, metrics, runs
from state.records import CheckState, SubmissionState
from worker import context, queues
from worker.evaluate import Outcome, evaluate, measure_baseline

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)


def _backend() -> Backend:
    return choose_backend(context.current().settings.sandbox_backend)


def _client(backend: Backend) -> DockerClient | None:
    return docker_client() if backend is Backend.DOCKER else None


def _phase(run_id: str, hotkey: str) -> Callable[[str], None]:
    ctx = context.current()
    return lambda phase: ctx.progress(phase, run_id=run_id, hotkey=hotkey)


def _request_progress(run_id: str, hotkey: str) -> ProgressFn:
    ctx = context.current()

    def report(phase: str, current: int | None = None, total: int | None = None) -> None:
        ctx.progress(phase, run_id=run_id, hotkey=hotkey, current=current, total=total)

    return report


def prepare_baseline(run_id: str) -> str:
    ctx = context.current()
    run = runs.load_run(ctx.redis, run_id)
    if run is None:
        return "run gone"
    if run.baseline_prepared is not None:
        return "already prepared"
    started = time.monotonic()
    backend = _backend()
    try:
        run.baseline_prepared = prepare(ctx.settings, run.baseline_source, backend, name="baseline",
                                        docker_client=_client(backend), progress=_phase(run_id, "baseline"))
    except SubmissionError as exc:
        run.baseline_error = f"the baseline is broken: {exc.reason}"
        runs.save_run(ctx.redis, run)
        log.error("prepare baseline run=%s outcome=error reason=%r in %.1fs", run_id, run.baseline_error,
                  time.monotonic() - started)
        raise InfrastructureError(run.baseline_error) from exc
    finally:
        ctx.progress("idle")
    runs.save_run(ctx.redis, run)
    log.info("prepare baseline run=%s outcome=prepared in %.1fs", run_id, time.monotonic() - started)
    return "prepared"


def prepare_submission(run_id: str, hotkey: str) -> str:
    ctx = context.current()
    redis = ctx.redis
    run = runs.load_run(redis, run_id)
    record = runs.load_record(redis, run_id, hotkey)
    if run is None or record is None:
        return "gone"
    if record.state.final or runs.has_result(redis, run_id, hotkey):
        return "already final"
    started = time.monotonic()
    record.state = SubmissionState.PREPARING
    record.attempts += 1
    runs.save_record(redis, run_id, record)
    backend = _backend()
    try:
        record.prepared = prepare(ctx.settings, record.source, backend, name=hotkey,
                                  docker_client=_client(backend), progress=_phase(run_id, hotkey))
    except SubmissionError as exc:
        record.state = SubmissionState.INVALID
        record.reason = exc.reason
        record.log_tail = exc.log_tail
        runs.land_result(redis, run_id, record)
        log.info("prepare %s run=%s outcome=invalid reason=%r in %.1fs", hotkey, run_id, exc.reason,
                 time.monotonic() - started)
        return "invalid"
    finally:
        ctx.progress("idle")
    record.state = SubmissionState.PREPARED
    runs.save_record(redis, run_id, record)
    queues.enqueue_benchmark(redis, ctx.settings, run.contest, run_id, hotkey)
    log.info("prepare %s run=%s outcome=prepared in %.1fs", hotkey, run_id, time.monotonic() - started)
    return "prepared"


def _ensure_baseline(run_id: str) -> RunResult:
    """This worker's baseline for the run: measured on this GPU before any submission."""
    ctx = context.current()
    redis = ctx.redis
    run = runs.load_run(redis, run_id)
    if run is None:
        raise InfrastructureError(f"run {run_id} disappeared")
    existing = runs.load_baseline(redis, run_id, ctx.status.name, len(run.inputs))
    if existing is not None:
        return existing
    if run.baseline_prepared is None:
        raise InfrastructureError(run.baseline_error or "the baseline is not prepared yet")
    started = time.monotonic()
    ctx.progress("loading", run_id=run_id, hotkey="baseline", total=len(run.inputs))
    result = measure_baseline(ctx.settings, load_contest(run.contest), run.baseline_prepared, run.inputs,
                              _request_progress(run_id, "baseline"))
    if result.status is not RunStatus.OK:
        run.baseline_error = f"the baseline failed on {ctx.status.name}: {result.reason}"
        runs.save_run(redis, run)
        log.error("baseline run=%s worker=%s outcome=error reason=%r in %.1fs", run_id, ctx.status.name,
                  result.reason, time.monotonic() - started)
        raise InfrastructureError(run.baseline_error)
    runs.save_baseline(redis, run_id, ctx.status.name, result)
    runs.push_order(redis, run_id, f"baseline@{ctx.status.name}")
    log.info("baseline run=%s worker=%s outcome=measured median=%.3fs in %.1fs", run_id, ctx.status.name,
             result.metrics.median_generation_time_s or 0.0, time.monotonic() - started)
    return result


def benchmark_submission(run_id: str, hotkey: str) -> str:
    ctx = context.current()
    redis = ctx.redis
    if runs.has_result(redis, run_id, hotkey):
        return "already landed"
    run = runs.load_run(redis, run_id)
    record = runs.load_record(redis, run_id, hotkey)
    if run is None or record is None or record.prepared is None:
        return "gone"
    contest = load_contest(run.contest)
    started = time.monotonic()
    try:
        # 1. Baseline first, on this worker's GPU, once per run.
        baseline = _ensure_baseline(run_id)
        runs.push_order(redis, run_id, hotkey)
        record.state = SubmissionState.BENCHMARKING
        record.worker = ctx.status.name
        runs.save_record(redis, run_id, record)

        # 2. The submission against it: run, compare, score.
        verdict = evaluate(ctx.settings, contest, baseline, record.prepared, run.inputs,
                           _request_progress(run_id, hotkey))
        record.metrics = verdict.result.metrics
        record.log_tail = verdict.result.log_tail
        if verdict.similarity is not None:
            record.similarities = verdict.similarity.values
            record.similarity_mean = verdict.similarity.mean
            record.similarity_min = verdict.similarity.min
        if verdict.score is not None:
            record.score_terms = verdict.score.terms
        if verdict.outcome is Outcome.SCORED:
            record.state = SubmissionState.SCORED
            record.score = verdict.score.score if verdict.score else None
            runs.save_outputs(redis, run_id, hotkey, verdict.result.outputs)
        else:
            record.state = SubmissionState.INVALID
            record.reason = verdict.reason
        landed = runs.land_result(redis, run_id, record)
        elapsed = time.monotonic() - started
        metrics.record_duration(redis, elapsed)
        if landed:
            log.info("benchmark %s run=%s worker=%s outcome=%s score=%s reason=%r in %.1fs", hotkey, run_id,
                     ctx.status.name, record.state.value,
                     f"{record.score:.4f}" if record.score is not None else "-", record.reason, elapsed)
        return record.state.value
    finally:
        ctx.progress("idle")


def run_check(check_id: str) -> str:
    """A miner's pre-commit check, on a builder: clone, static checks, sandbox build."""
    from images.checks import full_check

    ctx = context.current()
    record = checks.load_check(ctx.redis, check_id)
    if record is None:
        return "gone"
    started = time.monotonic()
    record.state = CheckState.RUNNING
    checks.save_check(ctx.redis, record, ctx.settings.check_ttl_s)
    ctx.progress("checking", run_id=f"check-{check_id}", hotkey=record.repository)
    try:
        backend = _backend()
        source = SubmissionSource(kind=SourceKind.GIT, url=record.repository, revision=record.revision)
        record.report = full_check(ctx.settings, source, backend=backend, docker_client=_client(backend))
        record.ok = record.report.ok
        record.state = CheckState.DONE
    except InfrastructureError as exc:
        record.state = CheckState.ERROR
        record.error = f"the validator could not finish the check: {exc}"
    finally:
        checks.save_check(ctx.redis, record, ctx.settings.check_ttl_s)
        ctx.progress("idle")
    log.info("check %s %s@%s outcome=%s ok=%s in %.1fs", check_id, record.repository, record.revision,
             record.state.value, record.ok, time.monotonic() - started)
    return record.state.value
