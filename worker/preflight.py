"""Start-up checks of a builder or GPU worker: a misconfigured box gets a one-line reason.

Each problem is one line in the service's log and, once Redis answers, in `GET /v1/status` under
`preflight`; the service then waits and checks again (no traceback, no crash loop under
`restart: unless-stopped`), and takes no job until the checks pass:

- Redis unreachable (said in the log and by `edgemaxx healthcheck`: there is nowhere else to say it);
- no Docker engine: the socket is not mounted, or not ours to use;
- a data directory that is not the same path inside the container and on the host: sandbox
  containers bind-mount run directories by their host path (the worker's own container is
  inspected through the Docker API);
- a GPU index that does not exist, no NVIDIA driver in the worker, or an engine that cannot hand a
  container that GPU (no NVIDIA runtime: a probe container asks for it);
- a benchmarking worker that is not root (it hands each run directory to the sandbox user).

Warnings do not stop the service: a contest whose similarity metric cannot run here (LPIPS without
its AlexNet backbone) is named, and its submissions fail as the validator's error, not the miner's.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError

from edgemaxx.contest import SimilarityMetric, all_contests
from edgemaxx.errors import InfrastructureError
from edgemaxx.models import BackendChoice
from edgemaxx.settings import Settings
from state.preflight import PreflightReport, save_preflight

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

RECHECK_S = 30.0
LABEL_PROBE = "edgemaxx.preflight"  # the GPU probe container, removed as soon as it has answered
DOCKER_SOCKET = Path("/var/run/docker.sock")
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # what lpips loads through torchvision (scoring/similarity.py)
_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/hostname /etc/hostname ")


# ------------------------------------------------------------------ the checks, one reason each

def own_container_id(mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The id of the Docker container this process runs in (Docker bind-mounts its /etc/hostname
    from the container's directory), or None outside one."""
    try:
        match = _CONTAINER_ID.search(mountinfo.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def docker_problem(settings: Settings, in_container: bool) -> tuple[DockerClient | None, str]:
    """A client for the engine the sandboxes run on, or the reason there is none."""
    from sandbox.select import connect_docker

    uses_docker = settings.sandbox_backend is BackendChoice.DOCKER or (
        settings.sandbox_backend is BackendChoice.AUTO and in_container)
    if not uses_docker:
        return None, ""
    if not os.environ.get("DOCKER_HOST") and not DOCKER_SOCKET.exists():
        return None, (f"no Docker socket at {DOCKER_SOCKET}: mount the host's "
                      f"(`- {DOCKER_SOCKET}:{DOCKER_SOCKET}` in docker-compose.yml)")
    try:
        return connect_docker(timeout_s=10), ""
    except InfrastructureError as exc:
        if "Permission denied" in str(exc) and DOCKER_SOCKET.exists():
            gid = DOCKER_SOCKET.stat().st_gid
            return None, (f"permission denied on {DOCKER_SOCKET} (group {gid}): run this service as "
                          f"root or in group {gid} (`group_add: [\"{gid}\"]`)")
        return None, str(exc).splitlines()[0]


def data_dir_problem(client: DockerClient, container_id: str, paths: list[Path]) -> str:
    """'' when every path is bind-mounted from the same path on the host."""
    try:
        mounts = client.api.inspect_container(container_id)["Mounts"]
    except Exception as exc:  # noqa: BLE001 - docker.errors.*, requests errors: said in one line
        return f"cannot inspect this container ({container_id[:12]}) to check its mounts: {exc}"
    for path in paths:
        inside = Path(os.path.abspath(path))
        covering = [m for m in mounts if inside == Path(m["Destination"]) or Path(m["Destination"]) in inside.parents]
        if not covering:
            return (f"{inside} is not mounted from the host: sandbox containers bind-mount run directories "
                    f"by their host path, so mount it at the same path (`- {inside}:{inside}`)")
        mount = max(covering, key=lambda m: len(m["Destination"]))
        if mount.get("Type") != "bind":
            return (f"{inside} is a {mount.get('Type')} mount ({mount.get('Name') or mount['Source']}): sandbox "
                    f"containers need a host directory at the same path (`- {inside}:{inside}`)")
        outside = Path(mount["Source"]) / inside.relative_to(mount["Destination"])
        if outside != inside:
            return (f"{inside} is {outside} on the host: sandbox containers bind-mount run directories by "
                    f"their host path, so mount it at the same path inside and out (`- {inside}:{inside}`)")
    return ""


def gpu_problem(index: int) -> str:
    """'' when NVML sees GPU `index` from here."""
    try:
        import pynvml

        pynvml.nvmlInit()
        count = int(pynvml.nvmlDeviceGetCount())
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ImportError
        return (f"GPU {index}: no NVIDIA driver visible here ({type(exc).__name__}: {exc}); the host needs "
                "the NVIDIA driver and the NVIDIA Container Toolkit, and this worker its GPU reservation")
    if index >= count:
        known = f"0–{count - 1}" if count else "none"
        return f"GPU {index} does not exist: this host has {count} GPU(s) ({known})"
    return ""


def gpu_runtime_problem(client: DockerClient, image: str, index: int) -> str:
    """'' when the engine starts a container holding GPU `index`, as it will for every sandbox."""
    import docker.errors
    from docker.types import DeviceRequest

    container = None
    try:
        container = client.containers.create(
            image, entrypoint=["true"], network_mode="none", user="65534", labels={LABEL_PROBE: "1"},
            device_requests=[DeviceRequest(device_ids=[str(index)], capabilities=[["gpu"]])])
        container.start()
        container.wait(timeout=60)
    except docker.errors.DockerException as exc:
        text = str(exc)
        if "could not select device driver" in text:
            return (f"the Docker engine cannot give a container GPU {index} (no NVIDIA runtime: install the "
                    "NVIDIA Container Toolkit and restart dockerd)")
        return f"a test container holding GPU {index} did not start: {text.splitlines()[0]}"
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.DockerException as exc:
                log.warning("could not remove the GPU test container: %s", exc)
    return ""


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def similarity_warnings(contest_ids: list[str] | None) -> list[str]:
    """Contests served here whose similarity metric cannot run in this installation."""
    found = []
    for contest in all_contests():
        if contest_ids and contest.id not in contest_ids:
            continue
        metric = contest.similarity_metric
        package = "lpips" if metric is SimilarityMetric.LPIPS_ALEX else "stlpips_pytorch"
        if importlib.util.find_spec(package) is None:
            found.append(f"{contest.id}: {metric.value} is unavailable ({package} is not installed: "
                         "the `scoring` extra); its submissions cannot be scored here")
            continue
        try:  # installed is not enough: stlpips imports IPython and torchsummary without declaring them
            importlib.import_module("lpips" if metric is SimilarityMetric.LPIPS_ALEX else "stlpips_pytorch.stlpips")
        except ImportError as exc:
            found.append(f"{contest.id}: {metric.value} is unavailable ({package} does not import: {exc}); "
                         "its submissions cannot be scored here")
        if metric is SimilarityMetric.LPIPS_ALEX and not (torch_hub_dir() / "checkpoints" / ALEXNET_FILE).is_file():
            found.append(f"{contest.id}: LPIPS is unavailable (its AlexNet backbone {ALEXNET_FILE} is not in "
                         f"{torch_hub_dir() / 'checkpoints'}; the image was built with FETCH_LPIPS_WEIGHTS=0); "
                         "its submissions cannot be scored here")
    return found


# ------------------------------------------------------------------ running them

def user_problem(settings: Settings, kind: str) -> str:
    """A benchmarking worker hands each run directory to the sandbox user: only root can."""
    if kind == "gpu" and os.geteuid() != 0:
        return (f"this worker runs as uid {os.geteuid()}, but it must be root to hand run directories to the "
                f"sandbox user (uid {settings.sandbox_uid}): `user: \"0:0\"` in docker-compose.yml")
    return ""


def problems(settings: Settings, kind: str, gpu: int | None) -> list[str]:
    """Every fatal problem, in the order an operator should fix them."""
    if user_problem(settings, kind):
        return [user_problem(settings, kind)]
    container = own_container_id()
    client, reason = docker_problem(settings, in_container=container is not None)
    if reason:
        return [reason]
    found = []
    image = settings.base_image
    if client is not None and container is not None:
        found.append(data_dir_problem(client, container, [settings.data_dir, settings.runs_dir,
                                                          settings.models_cache]))
        image = _own_image(client, container) or image
    if gpu is not None:
        found.append(gpu_problem(gpu))
        if client is not None and not found[-1]:
            found.append(gpu_runtime_problem(client, image, gpu))
    return [p for p in found if p]


def _own_image(client: DockerClient, container_id: str) -> str | None:
    """The image this container runs: it is on this engine for sure, so a probe needs no pull."""
    try:
        return str(client.api.inspect_container(container_id)["Image"])
    except Exception:  # noqa: BLE001 - data_dir_problem has said why inspecting fails
        return None


def wait_for_redis(redis: Redis, url: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once Redis answers; until then one log line per new reason, and a growing pause."""
    said, delay = "", 1.0
    while True:
        try:
            redis.ping()
            if said:
                log.info("Redis at %s answers again", url)
            return
        except RedisError as exc:
            reason = f"Redis at {url} unreachable: {exc}"
            if reason != said:
                log.error("%s; retrying (every %d s at most)", reason, int(RECHECK_S))
                said = reason
        sleep(delay)
        delay = min(delay * 2, RECHECK_S)


def ensure_ready(settings: Settings, redis: Redis, kind: str, name: str, gpu: int | None,
                 contests: list[str] | None, *, sleep: Callable[[float], None] = time.sleep,
                 wait: bool = True) -> PreflightReport:
    """Block until every fatal check passes; publish what was found (problems, then warnings).
    With `wait` off (a `--burst` worker), a failing check ends the process with its reasons."""
    said: list[str] = []
    while True:
        wait_for_redis(redis, settings.redis_url_shown, sleep=sleep)
        report = PreflightReport(service=name, kind=kind, problems=problems(settings, kind, gpu),
                                 warnings=similarity_warnings(contests) if kind == "gpu" else [])
        try:
            save_preflight(redis, report)
        except RedisError:
            continue  # gone again: wait_for_redis says so
        if report.ok:
            for warning in report.warnings:
                log.warning("%s", warning)
            if said:
                log.info("start-up checks pass now")
            return report
        if not wait:
            raise SystemExit("cannot start: " + "; ".join(report.problems))
        if report.problems != said:
            for problem in report.problems:
                log.error("cannot start: %s (checking again every %d s)", problem, int(RECHECK_S))
            said = report.problems
        sleep(RECHECK_S)
