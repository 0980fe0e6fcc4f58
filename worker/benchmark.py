"""Benchmarking prepared submissions: the sandbox chosen per backend, the baseline sets the clock."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from edgemaxx.errors import InfrastructureError
from edgemaxx.models import PreparedSubmission, RunResult, RunStatus
from edgemaxx.settings import Settings
from images.build import venv_launcher, venv_python
from sandbox.base import Limits, Sandbox
from sandbox.docker_backend import DockerSandbox, docker_available, docker_client
from sandbox.gpu import open_gpu
from sandbox.process_backend import ProcessSandbox, process_backend_available
from sandbox.protocol import TextToImageRequest
from sandbox.runner import ProgressFn, no_progress, run_submission
from worker.reaper import run_prefix

log = logging.getLogger(__name__)


def choose_backend(requested: str) -> str:
    """`docker` when reachable (or asked for), else the process sandbox."""
    if requested == "docker":
        docker_client(timeout_s=10).close()
        return "docker"
    if requested == "process" or not docker_available():
        problem = process_backend_available()
        if problem:
            raise InfrastructureError(f"process sandbox unavailable: {problem}")
        return "process"
    if requested != "auto":
        raise ValueError(f"unknown sandbox backend {requested!r} (docker, process or auto)")
    return "docker"


def limits_for(settings: Settings, *, request_timeout_s: float | None = None,
               load_timeout_s: float | None = None, run_timeout_s: float | None = None) -> Limits:
    return Limits(
        load_timeout_s=load_timeout_s or settings.load_timeout_s,
        request_timeout_s=request_timeout_s or settings.request_timeout_s,
        run_timeout_s=run_timeout_s or settings.run_timeout_s,
        warmup_requests=settings.warmup_requests,
        memory_mb=settings.sandbox_memory_mb,
        scratch_mb=settings.sandbox_tmpfs_mb,
        pids=settings.sandbox_pids_limit,
        cpus=settings.sandbox_cpus,
        max_output_bytes=settings.max_output_bytes,
        log_tail_bytes=settings.log_tail_bytes,
    )


def request_timeout_from_baseline(settings: Settings, baseline: RunResult | None,
                                  factor: float | None = None) -> float:
    """2× (by default) the baseline's mean generation time; the fixed default without one."""
    mean = baseline.metrics.mean_generation_time_s if baseline else None
    if mean is None:
        return settings.request_timeout_s
    return max((factor or settings.request_timeout_factor) * mean, settings.request_timeout_floor_s)


def make_sandbox(settings: Settings, prepared: PreparedSubmission, limits: Limits,
                 client=None) -> Sandbox:  # noqa: ANN001
    run_id = run_prefix(settings.owner) + uuid.uuid4().hex[:12]
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    if prepared.backend == "docker":
        return DockerSandbox(client or docker_client(), prepared.environment, prepared.code_dir,
                             settings.models_cache, settings.runs_dir, limits,
                             uid=settings.sandbox_uid, gpu=settings.gpu, owner=settings.owner,
                             run_id=run_id, extra_env=settings.sandbox_extra_env)
    env_dir = Path(prepared.environment)
    return ProcessSandbox(venv_python(env_dir), venv_launcher(env_dir), prepared.code_dir,
                          settings.models_cache, settings.runs_dir, limits,
                          uid=settings.sandbox_uid, gpu=settings.gpu, run_id=run_id,
                          extra_env=settings.sandbox_extra_env)


def benchmark(settings: Settings, prepared: PreparedSubmission, requests: list[TextToImageRequest],
              limits: Limits, client=None, progress: ProgressFn | None = None) -> RunResult:  # noqa: ANN001
    box = make_sandbox(settings, prepared, limits, client)
    result = run_submission(box, prepared.name, requests, limits, open_gpu(settings.gpu),
                            sample_interval_s=settings.sample_interval_s,
                            progress=progress or no_progress)
    result.metrics.code_bytes = prepared.code_bytes
    result.metrics.models_bytes = prepared.models_bytes
    return result


def median_run(runs: list[RunResult]) -> RunResult:
    """Of several runs of the same submission, the one with the median generation time: its
    metrics and outputs stay together, and one slow or fast run cannot move the reference."""
    ok = [r for r in runs if r.status is RunStatus.OK and r.metrics.median_generation_time_s is not None]
    if not ok:
        return runs[-1]
    ranked = sorted(ok, key=lambda r: r.metrics.median_generation_time_s or 0.0)
    return ranked[(len(ranked) - 1) // 2]
