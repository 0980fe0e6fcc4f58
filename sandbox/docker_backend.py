"""The Docker sandbox: no network, read-only root, no capabilities, limits, one GPU at most."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemaxx.constants import (
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_SANDBOX,
    SANDBOX_APP_DIR,
    SANDBOX_LAUNCHER,
    SANDBOX_MODELS_DIR,
    SANDBOX_VENV,
)
from edgemaxx.errors import InfrastructureError
from edgemaxx.models import Backend, ContainerRuntime, MemoryGuard, SandboxTier
from sandbox.base import Limits, describe_exit, tree_pids, tree_rss
from sandbox.cgroup import cgroup_memory
from sandbox.sampler import Probe
from sandbox.workspace import Workspace, create_workspace, remove_workspace

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)


def reap(client: DockerClient, owner: str | None = None) -> int:
    """Remove sandbox containers left by a crash (all of them, or one owner's)."""
    filters = {"label": [LABEL_SANDBOX] + ([f"{LABEL_OWNER}={owner}"] if owner else [])}
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True)
            removed += 1
        except Exception as exc:  # noqa: BLE001 - already gone, or the engine hiccuped
            log.warning("could not remove leftover %s: %s", container.name, exc)
    return removed


def gpu_environment(gpu: int | None, runtime: ContainerRuntime) -> dict[str, str]:
    """What a GPU container needs beyond its device request. Under gVisor: nvproxy serves the
    compute and utility driver capabilities unless widened, and CUDA images often ask for `all`;
    asking for exactly those two gives the submission what CUDA needs and nothing nvproxy refuses."""
    if gpu is None or runtime is not ContainerRuntime.RUNSC:
        return {}
    return {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}


class DockerSandbox:
    backend = Backend.DOCKER
    tier = SandboxTier.CONTAINER
    memory_guard = MemoryGuard.KERNEL

    def __init__(self, client: DockerClient, image: str, code_dir: Path, models_dir: Path, runs_dir: Path,
                 limits: Limits, *, uid: int, gpu: int | None, owner: str, run_id: str,
                 extra_env: dict[str, str] | None = None,
                 runtime: ContainerRuntime = ContainerRuntime.RUNC) -> None:
        self.client = client
        self.image = image
        self.code_dir = code_dir
        self.models_dir = models_dir
        self.runs_dir = runs_dir
        self.limits = limits
        self.uid = uid
        self.gpu = gpu
        self.owner = owner
        self.run_id = run_id
        self.extra_env = extra_env or {}
        self.runtime = runtime
        self.container: Any = None
        self.workspace: Workspace | None = None
        self._killed_for: str | None = None
        self._pid: int | None = None
        self._logs = ""

    @property
    def socket_path(self) -> Path:
        assert self.workspace is not None
        return self.workspace.socket

    @property
    def scratch_dir(self) -> Path:
        assert self.workspace is not None
        return self.workspace.app

    def container_options(self, app_dir: Path) -> dict[str, Any]:
        """Everything `containers.create` is given, with the run's code copy at `app_dir`."""
        from docker.types import DeviceRequest, LogConfig, Mount

        limits = self.limits
        return dict(
            command=[f"{SANDBOX_VENV}/bin/python", SANDBOX_LAUNCHER, SANDBOX_APP_DIR],
            name=f"edgemaxx-{self.run_id}",
            user=f"{self.uid}:{self.uid}",
            working_dir=SANDBOX_APP_DIR,
            # Only these: no validator variables, no secrets.
            environment={
                **self.extra_env,
                **gpu_environment(self.gpu, self.runtime),
                "HF_HUB_OFFLINE": "1",
                "HF_HUB_CACHE": SANDBOX_MODELS_DIR,
                "HOME": "/tmp",
                "USER": "sandbox",
                "LOGNAME": "sandbox",
                "TMPDIR": "/tmp",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{SANDBOX_VENV}/bin:/usr/local/bin:/usr/bin:/bin",
            },
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"size={limits.scratch_mb}m,mode=1777,nosuid,nodev"},
            mounts=[
                Mount(SANDBOX_APP_DIR, str(app_dir), type="bind", read_only=False),
                Mount(SANDBOX_MODELS_DIR, str(self.models_dir), type="bind", read_only=True),
            ],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",  # equal: no swap to hide in
            nano_cpus=int(limits.cpus * 1e9) if limits.cpus else None,
            shm_size=f"{limits.shm_mb}m",
            init=True,
            ipc_mode="private",
            # The same request under runc and runsc: with `--nvproxy`, gVisor serves the devices
            # the NVIDIA hook sets up.
            device_requests=(
                [DeviceRequest(device_ids=[str(self.gpu)], capabilities=[["gpu"]])]
                if self.gpu is not None else None
            ),
            labels={LABEL_SANDBOX: "1", LABEL_OWNER: self.owner, LABEL_RUN: self.run_id},
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
            runtime=self.runtime.value,
            detach=True,
        )

    def __enter__(self) -> DockerSandbox:
        import docker.errors

        try:
            self.workspace = create_workspace(self.runs_dir, self.code_dir, self.uid, self.run_id)
            self.models_dir.mkdir(parents=True, exist_ok=True)
            self.container = self.client.containers.create(self.image,
                                                           **self.container_options(self.workspace.app))
            self.container.start()
            self.container.reload()
            self._pid = self.container.attrs["State"]["Pid"] or None
        except docker.errors.APIError as exc:
            self._cleanup()
            raise InfrastructureError(f"starting the sandbox container failed: {exc}") from exc
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.container is not None:
            try:
                self._logs = self._read_logs()
                self.container.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - the reaper gets it at next start-up
                log.warning("removing container %s failed: %s", self.run_id, exc)
            self.container = None
        if self.workspace is not None:
            remove_workspace(self.workspace)
            self.workspace = None

    def _read_logs(self) -> str:
        assert self.container is not None
        raw = self.container.logs(stdout=True, stderr=True, tail=400)
        return raw.decode("utf-8", errors="replace")

    def exit_reason(self) -> str | None:
        if self._killed_for:
            return self._killed_for
        if self.container is None:
            return "stopped"
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001
            return "disappeared"
        state = self.container.attrs["State"]
        if state.get("Running"):
            return None
        return describe_exit(state.get("ExitCode"), bool(state.get("OOMKilled")), self.limits.memory_mb)

    def kill(self, reason: str) -> None:
        self._killed_for = reason
        if self.container is not None:
            try:
                self.container.kill()
            except Exception:  # noqa: BLE001 - already dead
                pass

    def probe(self) -> Probe:
        if self.runtime is ContainerRuntime.RUNSC:
            # The container's "init" is gVisor's sandbox process: its tree is the sentry and its
            # helper stubs, whose resident sets say little about the submission's memory (which
            # lives in the sentry's memory file). The container's cgroup holds all of it; the tree
            # is the fallback where the cgroup is out of view (a worker inside a container).
            # The PIDs are the ones NVML reports under nvproxy: GPU work is issued by the sentry.
            return Probe(pids=lambda: tree_pids(self._pid),
                         memory=lambda: cgroup_memory(self._pid) or tree_rss(self._pid))
        return Probe(pids=lambda: tree_pids(self._pid), memory=lambda: tree_rss(self._pid))

    def log_tail(self) -> str:
        if self.container is not None:
            try:
                return self._read_logs()
            except Exception:  # noqa: BLE001
                return self._logs
        return self._logs
