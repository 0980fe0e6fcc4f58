"""The one place that picks a sandbox backend and builds a sandbox; it owns the process's Docker client."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from edgemaxx.constants import ENV_LAUNCHER, ENV_VENV_PYTHON
from edgemaxx.errors import InfrastructureError
from edgemaxx.models import Backend, BackendChoice, ContainerRuntime, PreparedSubmission, SandboxTier
from edgemaxx.settings import Settings
from sandbox.base import Limits, Sandbox

if TYPE_CHECKING:
    from docker import DockerClient

    from sandbox.runtime import RuntimeReport
    from sandbox.tiers import TierReport

_clients: dict[int, DockerClient] = {}


def connect_docker(timeout_s: float = 60.0) -> DockerClient:
    """A new client for the local engine, or InfrastructureError saying it is unreachable."""
    try:
        import docker
        import docker.errors
    except ImportError as exc:  # a process-sandbox-only host may not have the SDK at all
        raise InfrastructureError(f"the docker Python package is not installed ({exc})") from exc

    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"Docker engine unreachable: {exc}") from exc
    return client


def docker_client() -> DockerClient:
    """This process's Docker client, made on first use. Keyed by pid: RQ forks a work horse per
    job, and a client (its connection pool) must not be shared across a fork."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = connect_docker()
    return _clients[pid]


def docker_available() -> bool:
    try:
        connect_docker(timeout_s=5).close()
    except InfrastructureError:
        return False
    return True


def choose_backend(requested: BackendChoice) -> Backend:
    """Docker when asked for (it must answer) or reachable under `auto`; else the process sandbox."""
    from sandbox.process_backend import process_backend_available

    if requested is BackendChoice.DOCKER:
        docker_client()
        return Backend.DOCKER
    if requested is BackendChoice.AUTO and docker_available():
        return Backend.DOCKER
    problem = process_backend_available()
    if problem:
        raise InfrastructureError(f"process sandbox unavailable: {problem}")
    return Backend.PROCESS


def check_sandbox_runtime(settings: Settings) -> RuntimeReport:
    """Start-up check of a worker: can benchmark containers run under the configured runtime here
    (on its GPU, if it has one)? The report's problem says why not."""
    from sandbox.gpu import driver_version
    from sandbox.runtime import RuntimeReport, check_runtime

    runtime = settings.sandbox_runtime
    if runtime is ContainerRuntime.RUNC:
        return RuntimeReport(runtime=runtime)
    if settings.sandbox_backend is BackendChoice.PROCESS:
        return RuntimeReport(runtime=runtime, problem=f"{runtime} runs Docker containers, but "
                             "EDGEMAXX_SANDBOX_BACKEND is process")
    try:
        client = connect_docker(timeout_s=30)
    except InfrastructureError as exc:
        return RuntimeReport(runtime=runtime, problem=str(exc))
    try:
        gpu = settings.gpu is not None
        return check_runtime(client, runtime, gpu=gpu, driver=driver_version() if gpu else None)
    except InfrastructureError as exc:
        return RuntimeReport(runtime=runtime, problem=str(exc))
    finally:
        client.close()


def run_prefix(owner: str) -> str:
    """Run directories are named `<owner>-<id>`, so each owner's reaper finds only its own."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", owner) + "-"


def make_sandbox(settings: Settings, prepared: PreparedSubmission, limits: Limits) -> Sandbox:
    """A sandbox for `prepared`, not yet started (enter it to start)."""
    run_id = run_prefix(settings.owner) + uuid.uuid4().hex[:12]
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    if prepared.backend is Backend.DOCKER:
        from sandbox.docker_backend import DockerSandbox

        return DockerSandbox(docker_client(), prepared.environment, prepared.code_dir,
                             settings.models_cache, settings.runs_dir, limits,
                             uid=settings.sandbox_uid, gpu=settings.gpu, owner=settings.owner,
                             run_id=run_id, extra_env=settings.sandbox_extra_env,
                             runtime=settings.sandbox_runtime)
    from sandbox.gpu import device_identity
    from sandbox.process_backend import ProcessSandbox
    from sandbox.view import gpu_device_nodes

    minor, gpu_uuid = device_identity(settings.gpu) if settings.gpu is not None else (None, None)
    env_dir = Path(prepared.environment)
    return ProcessSandbox(env_dir / ENV_VENV_PYTHON, env_dir / ENV_LAUNCHER, prepared.code_dir,
                          settings.models_cache, settings.runs_dir, limits,
                          uid=settings.sandbox_uid, gpu=settings.gpu, run_id=run_id,
                          extra_env=settings.sandbox_extra_env,
                          report=tier_report(settings),
                          gpu_devices=gpu_device_nodes(settings.gpu, settings.sandbox_gpu_devices, minor),
                          gpu_uuid=gpu_uuid,
                          extra_ro=settings.sandbox_extra_ro_paths)


def tier_report(settings: Settings) -> TierReport:
    """The process sandbox's tier on this host for these settings (probed once per process)."""
    from sandbox.tiers import process_tier

    return process_tier(settings.sandbox_tier, settings.sandbox_cgroup_parent, settings.sandbox_bwrap)


def sandbox_tier(settings: Settings) -> SandboxTier | None:
    """The tier this process's sandboxes run at (for status pages), None where none can run."""
    try:
        backend = choose_backend(settings.sandbox_backend)
    except InfrastructureError:
        return None
    if backend is Backend.DOCKER:
        return SandboxTier.CONTAINER
    return tier_report(settings).tier


def reap_cgroups(settings: Settings, owner: str) -> int:
    """Remove the process sandbox's run cgroups a crashed `owner` left (their tasks killed)."""
    from sandbox.cgroup import detect, remove_leftovers

    host, _why = detect(settings.sandbox_cgroup_parent)
    return remove_leftovers(host, run_prefix(owner)) if host else 0
