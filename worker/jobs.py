"""RQ jobs: plain functions taking IDs. Preparation on the CPU queue, benchmarks on a GPU queue.

A submission's own failures end as `invalid` with a reason and are never retried; anything
else (Docker, Redis, the hub) raises and RQ retries it, and once its retries are exhausted the
submission ends as `error` (worker.lifecycle). Results land once (HSETNX). Jobs of a run that
has ended do nothing. After each job the run is settled (it may have just ended). Each job logs
its outcome once: what, which run, the outcome, the reason, how long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rq import Retry

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend, PreparedSubmission, RunResult, RunStatus, SourceKind, SubmissionSource
from images.prepare import prepare
from sandbox.runner import ProgressFn
from sandbox.select import choose_backend, docker_client
from state import checks, hosts, housekeeping, metrics, runs
from state.records import (
    BaselineMeasurement,
    CheckState,
    ContestRun,
    JobTimings,
    Remeasure,
    SubmissionRecord,
    SubmissionState,
)
from worker import context, lifecycle, queues, reference
from worker.evaluate import Outcome, Verdict, benchmark, evaluate, limits_for
from worker.housekeeping import model_dir_name, touch_models

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


def _note_used(prepared: PreparedSubmission) -> None:
    """Housekeeping keeps what the current and previous runs use, and evicts models by last use."""
    ctx = context.current()
    housekeeping.note_environments(ctx.redis, [prepared.environment])
    touch_models(ctx.settings.models_cache, prepared.models)


def _here(prepared: PreparedSubmission) -> bool:
    """Whether this host holds what `prepared` names: its own preparation, code and environment."""
    settings = context.current().settings
    if prepared.host is not None and prepared.host != settings.host:
        return False
    if not prepared.code_dir.exists():
        return False
    if prepared.backend is not Backend.DOCKER:
        return Path(prepared.environment).exists()
    import docker.errors

    try:
        docker_client().images.get(prepared.environment)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"Docker engine unreachable: {exc}") from exc
    return True


def _prepare_baseline_here(run_id: str) -> PreparedSubmission | str:
    """Prepare the run's baseline on this host; a reason string when the run cannot use it."""
    ctx = context.current()
    run = runs.load_run(ctx.redis, run_id)
    if run is None:
        return "run gone"
    if run.end is not None:
        return "run ended"
    prepared = hosts.load_baseline_prepared(ctx.redis, run_id, ctx.settings.host)
    if prepared is not None and _here(prepared):
        return prepared
    backend = _backend()
    try:
        prepared = prepare(ctx.settings, run.baseline_source, backend, name="baseline",
                           docker_client=_client(backend), progress=_phase(run_id, "baseline"))
    except SubmissionError as exc:
        # The baseline's own fault: deterministic, so no retry can help. The run fails.
        run.baseline_error = f"the baseline is broken: {exc.reason}"
        runs.save_run(ctx.redis, run)
        lifecycle.fail_run(ctx.redis, run_id, run.baseline_error)
        return "baseline broken"
    hosts.save_baseline_prepared(ctx.redis, run_id, prepared)
    fresh = runs.load_run(ctx.redis, run_id)  # the first host to prepare it marks the run's baseline ready
    if fresh is not None and fresh.baseline_prepared is None:
        fresh.baseline_prepared = prepared
        runs.save_run(ctx.redis, fresh)
    _note_used(prepared)
    return prepared


def prepare_baseline(run_id: str) -> str:
    """On a builder: the run's baseline, on this host (each host that benchmarks needs its own)."""
    started = time.monotonic()
    try:
        outcome = _prepare_baseline_here(run_id)
    finally:
        context.current().progress("idle")
    if isinstance(outcome, str):
        level = logging.ERROR if outcome == "baseline broken" else logging.INFO
        log.log(level, "prepare baseline run=%s outcome=%s in %.1fs", run_id, outcome, time.monotonic() - started)
        return outcome
    log.info("prepare baseline run=%s host=%s outcome=prepared in %.1fs", run_id, outcome.host,
             time.monotonic() - started)
    return "prepared"


def prepare_submission(run_id: str, hotkey: str) -> str:
    ctx = context.current()
    redis = ctx.redis
    run = runs.load_run(redis, run_id)
    record = runs.load_record(redis, run_id, hotkey)
    if run is None or record is None:
        return "gone"
    if run.end is not None:
        return "run ended"
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
        lifecycle.settle(redis, run_id)
        return "invalid"
    finally:
        ctx.progress("idle")
    _note_used(record.prepared)
    record.state = SubmissionState.PREPARED
    record.host = ctx.settings.host  # prepared here, so benchmarked here
    runs.save_record(redis, run_id, record)
    queues.enqueue_benchmark(redis, ctx.settings, run.contest, run_id, hotkey, ctx.settings.host)
    log.info("prepare %s run=%s host=%s outcome=prepared in %.1fs", hotkey, run_id, ctx.settings.host,
             time.monotonic() - started)
    return "prepared"


# A benchmark that finds the baseline not prepared yet (several builders, one slower) waits for it
# instead of burning its retries; the run's deadline bounds the wait.
_WAIT_FOR_BASELINE = Retry(max=10_000, interval=15)


def _benchmarked_here(run_id: str) -> int:
    """How many submissions this worker has benchmarked in the run so far."""
    ctx = context.current()
    return sum(1 for r in runs.records(ctx.redis, run_id) if r.worker == ctx.status.name and r.metrics is not None)


def _ensure_baseline(run_id: str) -> RunResult | None:
    """This worker's baseline for the run: measured on this GPU before any submission, and again
    after every `baseline_every` submissions; the reference is the median of its measurements
    (worker.reference). None while the baseline is still being prepared."""
    ctx = context.current()
    redis = ctx.redis
    me = ctx.status.name
    run = runs.load_run(redis, run_id)
    if run is None:
        raise InfrastructureError(f"run {run_id} disappeared")
    pool = runs.baseline_measurements(redis, run_id, me)
    first = not pool
    benchmarked = _benchmarked_here(run_id)
    if not reference.due(pool, benchmarked, ctx.settings.baseline_every):
        existing = runs.load_baseline(redis, run_id, me, len(run.inputs))
        if existing is not None:
            return existing
    if run.baseline_prepared is None:
        if run.baseline_error:
            raise InfrastructureError(run.baseline_error)
        return None
    # Prepared on some host; this one's builder may not have (it died, or this host joined late).
    here = hosts.load_baseline_prepared(redis, run_id, ctx.settings.host)
    if here is None or not _here(here):
        log.warning("baseline run=%s is not prepared on %s: preparing it here", run_id, ctx.settings.host)
        outcome = _prepare_baseline_here(run_id)
        if isinstance(outcome, str):
            raise InfrastructureError(f"the baseline could not be prepared on {ctx.settings.host}: {outcome}")
        here = outcome
    ctx.progress("loading", run_id=run_id, hotkey="baseline", total=len(run.inputs))
    _note_used(here)
    contest = run.rules()
    limits = limits_for(ctx.settings, contest, None)
    for _ in range(ctx.settings.baseline_runs if not pool else 1):
        started = time.monotonic()
        result = benchmark(ctx.settings, here, run.inputs, limits,
                           _request_progress(run_id, "baseline"))
        seconds = time.monotonic() - started
        if result.status is not RunStatus.OK:
            run.baseline_error = f"the baseline failed on {me}: {result.reason}"
            runs.save_run(redis, run)
            log.error("baseline run=%s worker=%s outcome=error reason=%r in %.1fs", run_id, me, result.reason, seconds)
            # As many tries as a submission gets: past them the baseline cannot be measured, the run fails.
            if runs.note_baseline_failure(redis, run_id, run.baseline_error) > ctx.settings.benchmark_retries:
                lifecycle.fail_run(redis, run_id, f"the baseline could not be measured: {result.reason}")
            raise InfrastructureError(run.baseline_error)
        measurement = BaselineMeasurement(result=result, after_submissions=benchmarked, seconds=seconds)
        previous = pool[-1] if pool else None
        moved = reference.drift(previous, measurement) if previous else None
        pool.append(measurement)
        runs.add_baseline_measurement(redis, run_id, me, measurement)
        runs.push_order(redis, run_id, f"baseline@{me}")
        log.info("baseline run=%s worker=%s outcome=measured median=%.3fs measurement=%d%s in %.1fs", run_id, me,
                 result.metrics.median_generation_time_s or 0.0, len(pool),
                 f" drift={moved:+.2%}" if moved is not None else "", seconds)
        if previous is not None and moved is not None and abs(moved) > contest.noise_margin:
            _queue_remeasures(run, previous, measurement, moved)
    pooled = reference.pooled(pool)
    if not first:  # the reference images are the first measurement's, stored once (the baseline is deterministic)
        stored = runs.load_baseline(redis, run_id, me, len(run.inputs))
        pooled = pooled.model_copy(update={"outputs": stored.outputs if stored else pooled.outputs})
    runs.save_baseline(redis, run_id, me, pooled, outputs=first)
    return pooled


def _queue_remeasures(run: ContestRun, previous: BaselineMeasurement, latest: BaselineMeasurement,
                      moved: float) -> None:
    """This worker's baseline moved past the contest's noise margin between two measurements: the
    submissions it measured between them are measured again, once each, next on this GPU."""
    ctx = context.current()
    margin = run.rules().noise_margin
    note = (f"the baseline's time moved {moved:+.1%} between its measurements before and after this one "
            f"(more than the ±{margin:.0%} noise margin): measured again")

    def mark(record: SubmissionRecord) -> bool:
        if record.remeasure is not Remeasure.NONE or record.state is not SubmissionState.SCORED:
            return False
        record.remeasure, record.remeasure_note = Remeasure.PENDING, note
        return True

    for record in reference.in_doubt(runs.records(ctx.redis, run.id), ctx.status.name, previous, latest):
        # The job first: one that finds its record not pending (the run ended, a resubmission
        # replaced it) does nothing, where a pending record without a job would hold the run.
        queues.enqueue_remeasure(ctx.redis, ctx.settings, run.contest, run.id, record.hotkey, ctx.status.name)
        if runs.change_result(ctx.redis, run.id, record.hotkey, mark) is not None:
            log.info("remeasure %s run=%s worker=%s queued: the baseline moved %+.2f%%", record.hotkey, run.id,
                     ctx.status.name, 100 * moved)


def _models_here(prepared: PreparedSubmission) -> bool:
    """Whether the models it declared are still in this host's cache (the cap may have evicted them)."""
    cache = context.current().settings.models_cache
    return all((cache / model_dir_name(spec.repository)).is_dir() for spec in prepared.models)


def _prepare_here(run_id: str, hotkey: str, record: SubmissionRecord) -> tuple[PreparedSubmission | None, float]:
    """The fallback: this GPU worker prepares the submission on its own host (None: it is invalid,
    and landed as such), with the seconds it took."""
    ctx = context.current()
    started = time.monotonic()
    log.warning("benchmark %s run=%s: not prepared on %s (prepared on %s): preparing it here", hotkey, run_id,
                ctx.settings.host, record.prepared.host if record.prepared else None)
    backend = _backend()
    try:
        prepared = prepare(ctx.settings, record.source, backend, name=hotkey, docker_client=_client(backend),
                           progress=_phase(run_id, hotkey))
    except SubmissionError as exc:
        record.state = SubmissionState.INVALID
        record.reason = exc.reason
        record.log_tail = exc.log_tail
        runs.land_result(ctx.redis, run_id, record)
        lifecycle.settle(ctx.redis, run_id)
        return None, time.monotonic() - started
    return prepared, time.monotonic() - started


def benchmark_submission(run_id: str, hotkey: str) -> str | Retry:
    ctx = context.current()
    redis = ctx.redis
    if runs.has_result(redis, run_id, hotkey):
        return "already landed"
    run = runs.load_run(redis, run_id)
    record = runs.load_record(redis, run_id, hotkey)
    if run is None or record is None or record.prepared is None:
        return "gone"
    if run.end is not None:
        return "run ended"
    contest = run.rules()
    started = time.monotonic()
    try:
        # 1. Baseline first, on this worker's GPU (prepared on this host), once per run.
        baseline = _ensure_baseline(run_id)
        baseline_s = time.monotonic() - started
        if baseline is None:
            log.info("benchmark %s run=%s waits for the baseline to be prepared", hotkey, run_id)
            return _WAIT_FOR_BASELINE
        # 2. The submission's build on this host: normally its builder's; else made here, now.
        prepared_here_s = 0.0
        if not _here(record.prepared):
            record.prepared, prepared_here_s = _prepare_here(run_id, hotkey, record)
            if record.prepared is None:
                return "invalid"
            record.prepared_by_gpu_s += prepared_here_s
        runs.push_order(redis, run_id, hotkey)
        record.measured_after = _benchmarked_here(run_id)
        record.state = SubmissionState.BENCHMARKING
        record.worker = ctx.status.name
        record.gpu = ctx.status.gpu_name
        record.host = ctx.settings.host
        runs.save_record(redis, run_id, record)
        _note_used(record.prepared)

        # 3. The submission against it: run, compare, score.
        verdict = evaluate(ctx.settings, contest, baseline, record.prepared, run.inputs,
                           _request_progress(run_id, hotkey))
        record.baseline_measurements = len(runs.baseline_measurements(redis, run_id, ctx.status.name))
        _take_verdict(record, verdict)
        if verdict.outcome is Outcome.SCORED:
            runs.save_outputs(redis, run_id, hotkey, verdict.result.outputs)
        record.timings = _timings(verdict, time.monotonic() - started, baseline_s, prepared_here_s)
        landed = runs.land_result(redis, run_id, record)
        elapsed = time.monotonic() - started
        metrics.record_duration(redis, elapsed)
        if landed:
            share = record.timings.validator_share
            log.info("benchmark %s run=%s worker=%s outcome=%s score=%s reason=%r in %.1fs "
                     "(own %.1fs, validator %.1fs%s)", hotkey, run_id, ctx.status.name, record.state.value,
                     f"{record.score:.4f}" if record.score is not None else "-", record.reason, elapsed,
                     record.timings.own_s, record.timings.validator_s, f" = {share:.1%}" if share is not None else "")
        else:
            # The run ended while this ran (its deadline): the error stands, the images go.
            runs.delete_outputs(redis, run_id, [hotkey])
        lifecycle.settle(redis, run_id)
        return record.state.value
    finally:
        ctx.progress("idle")


def remeasure_submission(run_id: str, hotkey: str) -> str:
    """A scored submission measured again on the GPU whose baseline moved around its first
    measurement, right after that baseline's fresh measurement: the re-measurement is its result,
    invalid included (the miner's, as any run is). When the validator cannot take it (the run is
    over, its build or models are gone from this host), the first measurement stands."""
    ctx = context.current()
    redis = ctx.redis
    run = runs.load_run(redis, run_id)
    record = runs.load_record(redis, run_id, hotkey)
    if run is None or record is None or record.prepared is None:
        return "gone"
    if record.remeasure is not Remeasure.PENDING:
        return "nothing to re-measure"
    if run.end is not None:
        lifecycle.abandon_remeasure(redis, run_id, hotkey, "the run ended before it was re-measured")
        return "run ended"
    started = time.monotonic()
    try:
        baseline = _ensure_baseline(run_id)
        if baseline is None:  # it was scored against this run's baseline: it cannot be unprepared now
            raise InfrastructureError(f"run {run_id} has no baseline to re-measure {hotkey} against")
        baseline_s = time.monotonic() - started
        if not _here(record.prepared) or not _models_here(record.prepared):
            lifecycle.abandon_remeasure(redis, run_id, hotkey,
                                        f"its build or models are not on {ctx.settings.host} any more")
            lifecycle.settle(redis, run_id)
            return Remeasure.ABANDONED.value
        first = record.metrics.median_generation_time_s if record.metrics else None
        measured_after = _benchmarked_here(run_id)
        _note_used(record.prepared)
        verdict = evaluate(ctx.settings, run.rules(), baseline, record.prepared, run.inputs,
                           _request_progress(run_id, hotkey))
        second = verdict.result.metrics.median_generation_time_s
        timings = _timings(verdict, time.monotonic() - started, baseline_s, 0.0)

        def take(fresh: SubmissionRecord) -> bool:
            if fresh.remeasure is not Remeasure.PENDING:
                return False  # abandoned meanwhile (the run ended): the first measurement stands
            fresh.remeasure, fresh.timings, fresh.measured_after = Remeasure.DONE, timings, measured_after
            fresh.baseline_measurements = len(runs.baseline_measurements(redis, run_id, ctx.status.name))
            _take_verdict(fresh, verdict, "measured again (the baseline had moved around its first run): ")
            if verdict.outcome is Outcome.SCORED and first is not None and second is not None:
                fresh.remeasure_note += f"; median time {first:.4f} s at first, {second:.4f} s now (its result)"
            return True

        outputs = verdict.result.outputs if verdict.outcome is Outcome.SCORED else []
        written = runs.change_result(redis, run_id, hotkey, take, outputs=outputs)
        outcome = written.state.value if written else "abandoned meanwhile"
        log.info("remeasure %s run=%s worker=%s outcome=%s median=%s→%s score=%s reason=%r in %.1fs", hotkey, run_id,
                 ctx.status.name, outcome, f"{first:.4f}s" if first is not None else "-",
                 f"{second:.4f}s" if second is not None else "-",
                 f"{written.score:.4f}" if written and written.score is not None else "-",
                 written.reason if written else "", time.monotonic() - started)
        lifecycle.settle(redis, run_id)
        return outcome
    finally:
        ctx.progress("idle")


def _take_verdict(record: SubmissionRecord, verdict: Verdict, reason_prefix: str = "") -> None:
    """A benchmark's verdict on the record: its metrics and similarity, its score and terms when
    scored, the reason when invalid."""
    record.metrics, record.gpu, record.log_tail = verdict.result.metrics, verdict.result.gpu, verdict.result.log_tail
    if verdict.similarity is not None:
        record.similarities = verdict.similarity.values
        record.similarity_mean, record.similarity_min = verdict.similarity.mean, verdict.similarity.min
    record.score_terms = verdict.score.terms if verdict.score is not None else {}
    if verdict.outcome is Outcome.SCORED:
        record.state, record.score = SubmissionState.SCORED, verdict.score.score if verdict.score else None
    else:
        record.state, record.score = SubmissionState.INVALID, None
        record.reason = reason_prefix + verdict.reason


def _timings(verdict: Verdict, held_s: float, baseline_s: float, prepared_here_s: float) -> JobTimings:
    """The job's time so far, split between the submission's own work and the validator's."""
    result = verdict.result
    return JobTimings(held_s=held_s, baseline_s=baseline_s, prepared_here_s=prepared_here_s,
                      sandbox_start_s=result.phases.start_s or 0.0, load_s=result.metrics.load_time_s or 0.0,
                      warmup_s=sum(result.metrics.warmup_times_s), requests_s=sum(result.metrics.generation_times_s),
                      teardown_s=result.phases.teardown_s or 0.0, similarity_s=verdict.similarity_s)


def finish_run(run_id: str) -> str:
    """Enqueued by the RQ scheduler at the run's deadline: end it if it has not ended yet."""
    ctx = context.current()
    end = lifecycle.settle(ctx.redis, run_id)
    if end is not None:
        return end.state.value
    run = runs.load_run(ctx.redis, run_id)
    if run is None or run.deadline_at is None:
        return "gone"
    # This host's clock is behind the one that set the deadline: come back when it has passed here.
    queues.schedule_finish(ctx.redis, ctx.settings, run_id, max(run.deadline_at, time.time() + 1))
    return "early"


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
