"""The container runtime benchmark containers run under: runc, or gVisor's `runsc`.

Under runsc the submission's `inferences.sock` must still be a real host file the validator
connects to, so runsc needs `--host-uds`: `create` is enough from release-20230724.0; older
releases (Debian bookworm's 0.0~20221219) refuse to walk to a host socket unless `open` is on too
(`all`), which breaks the submission's `chmod(SOCKET, 0o777)`. GPUs need nvproxy
(release-20230529.0 on), `--nvproxy-docker` with `docker --gpus` before release-20240305.0, and a
release that lists the host's driver (`runsc nvproxy list-supported-drivers`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from edgemaxx.errors import InfrastructureError
from edgemaxx.models import ContainerRuntime

if TYPE_CHECKING:
    from docker import DockerClient

DAEMON_JSON = Path("/etc/docker/daemon.json")
# Releases by date (YYYYMMDD), from gVisor's history.
HOST_UDS_CREATE_WORKS = 20230724  # ea7cd7184: walking to a host FIFO/UDS no longer needs `open`
NVPROXY_FIRST = 20230529  # e672476d0: nvproxy (experimental)
NVPROXY_DETECTS_DOCKER_HOOK = 20240305  # before it, `docker --gpus` needs --nvproxy-docker
NVPROXY_AUTOMATIC = 20260525  # from it, nvproxy turns itself on for GPU containers


@dataclass(frozen=True, order=True)
class RunscVersion:
    date: int  # YYYYMMDD of the release the build comes from
    patch: int
    text: str

    def __str__(self) -> str:
        return self.text


_VERSION = re.compile(r"runsc version (?:release-|\d+\.\d+~)?(\d{8})(?:\.(\d+))?")


def parse_runsc_version(output: str) -> RunscVersion | None:
    """`runsc --version` → its release date: upstream prints `release-20260608.0`, Debian
    `0.0~20221219.0`. None for builds that carry no date (e.g. built from a source tree)."""
    match = _VERSION.search(output)
    if not match:
        return None
    first_line = output.strip().splitlines()[0].removeprefix("runsc version ").strip()
    return RunscVersion(date=int(match.group(1)), patch=int(match.group(2) or 0), text=first_line)


def runsc_args(version: RunscVersion, *, gpu: bool = False) -> list[str]:
    """The runtime arguments edgemaxx registers runsc with, for this release."""
    # Network-less containers are refused without --network=none (and the sentry then has no
    # network stack to attack at all).
    args = ["--network=none",
            "--host-uds=create" if version.date >= HOST_UDS_CREATE_WORKS else "--host-uds=all"]
    if gpu:
        args.append("--nvproxy")
        if version.date < NVPROXY_DETECTS_DOCKER_HOOK:
            args.append("--nvproxy-docker")
    return args


def _flags(args: list[str]) -> dict[str, str]:
    """`["--host-uds=all", "-nvproxy"]` → {"host-uds": "all", "nvproxy": "true"} (Go's flag syntax)."""
    flags: dict[str, str] = {}
    for arg in args:
        name, _, value = arg.lstrip("-").partition("=")
        flags[name] = value or "true"
    return flags


def _on(flags: dict[str, str], name: str) -> bool:
    return flags.get(name, "false").lower() in ("true", "1", "t")


class RuntimeReport(BaseModel):
    """Whether this host's engine can run benchmark containers under the configured runtime."""

    runtime: ContainerRuntime
    version: str | None = None  # runsc's release, when it could be read
    problem: str = ""  # non-empty: no benchmark may run under it; said in the log and /v1/status
    notes: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


def assess_runsc(entry: dict[str, Any] | None, version: RunscVersion | None, *, gpu: bool,
                 driver: str | None = None, drivers: list[str] | None = None,
                 registered: list[str] | None = None) -> RuntimeReport:
    """Pure: judge the engine's `runsc` registration (docker info → Runtimes) and its release."""
    report = RuntimeReport(runtime=ContainerRuntime.RUNSC, version=str(version) if version else None)
    if entry is None:
        known = ", ".join(sorted(registered or [])) or "none"
        report.problem = ("the Docker engine has no runtime named runsc (registered: "
                          f"{known}); install gVisor and register it (scripts/setup, or README › gVisor)")
        return report
    flags = _flags(list(entry.get("runtimeArgs") or []))
    path = entry.get("path", "runsc")
    if version is None:
        report.notes.append(f"could not read the release of {path}; mount the binary into the worker "
                            "at that path so its version can be checked")
    if flags.get("network") != "none":
        report.problem = ("runsc is registered without --network=none: it refuses network-less "
                          "containers; re-register it (scripts/setup)")
        return report
    host_uds = "all" if _on(flags, "fsgofer-host-uds") else flags.get("host-uds", "none")
    if host_uds not in ("create", "all"):
        report.problem = (f"runsc is registered with --host-uds={host_uds}: the submission's "
                          "inferences.sock would stay inside gVisor; register it with --host-uds=create "
                          "(gVisor release-20230724.0 or later) or --host-uds=all")
        return report
    if host_uds == "create" and version is not None and version.date < HOST_UDS_CREATE_WORKS:
        report.problem = (f"runsc {version} with --host-uds=create cannot chmod the socket a submission "
                          "binds (fixed in release-20230724.0): register it with --host-uds=all")
        return report
    if gpu:
        report.problem = _gpu_problem(flags, version, driver, drivers)
    if gpu and not report.problem and drivers is None:
        report.notes.append(f"could not list the drivers runsc {version} supports; "
                            f"if it does not know driver {driver or '(unknown)'}, GPU containers fail to start")
    return report


def _gpu_problem(flags: dict[str, str], version: RunscVersion | None, driver: str | None,
                 drivers: list[str] | None) -> str:
    if version is None:
        return ("a GPU worker needs to know the runsc release (nvproxy support is per release and per "
                "driver): mount the runsc binary into the worker at the path Docker runs it from")
    if version.date < NVPROXY_FIRST:
        return (f"runsc {version} is too old for GPUs: nvproxy arrived in release-20230529.0, and each "
                "driver needs a release that knows it (driver 580.159.04: release-20260608.0 or later)")
    if not _on(flags, "nvproxy") and version.date < NVPROXY_AUTOMATIC:
        return f"runsc {version} needs --nvproxy in its runtimeArgs for GPUs (scripts/setup on a GPU host adds it)"
    if version.date < NVPROXY_DETECTS_DOCKER_HOOK and not _on(flags, "nvproxy-docker"):
        return (f"runsc {version} needs --nvproxy-docker in its runtimeArgs for `docker --gpus` "
                "(before release-20240305.0)")
    if drivers is not None and driver is not None and driver not in drivers:
        if not _on(flags, "nvproxy-allow-unsupported-driver"):
            return (f"runsc {version} does not support NVIDIA driver {driver} (it knows: "
                    f"{', '.join(drivers) or 'none'}); install a gVisor release that lists it")
    return ""


def runsc_version(path: str, timeout_s: float = 10.0) -> RunscVersion | None:
    """Run `PATH --version`; None where the binary is missing here (a worker in a container) or silent."""
    binary = shutil.which(path)
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_runsc_version(done.stdout) if done.returncode == 0 else None


def supported_drivers(path: str, timeout_s: float = 10.0) -> list[str] | None:
    """The NVIDIA driver versions this runsc's nvproxy knows; None where it cannot say."""
    binary = shutil.which(path)
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "nvproxy", "list-supported-drivers"], capture_output=True,
                              text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.findall(r"^\d+\.\d+(?:\.\d+)?$", done.stdout, flags=re.MULTILINE)
    return found if done.returncode == 0 and found else None


def check_runtime(client: DockerClient, runtime: ContainerRuntime, *, gpu: bool,
                  driver: str | None = None) -> RuntimeReport:
    """Ask the engine whether benchmark containers can run under `runtime` (and on a GPU)."""
    if runtime is ContainerRuntime.RUNC:
        return RuntimeReport(runtime=runtime)
    import docker.errors

    try:
        runtimes: dict[str, Any] = client.info().get("Runtimes") or {}
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"Docker engine unreachable: {exc}") from exc
    entry = runtimes.get(runtime.value)
    path = str(entry.get("path", "runsc")) if entry else "runsc"
    version = runsc_version(path) if entry else None
    drivers = supported_drivers(path) if entry and gpu and version else None
    return assess_runsc(entry, version, gpu=gpu, driver=driver, drivers=drivers, registered=list(runtimes))


# Registering runsc with the engine (scripts/setup).


def merge_runtime(daemon: dict[str, Any], name: str, path: str, args: list[str]) -> dict[str, Any]:
    """`daemon` with runtime `name` set to `path` + `args`; every other key kept as it was."""
    merged = dict(daemon)
    runtimes = dict(merged.get("runtimes") or {})
    runtimes[name] = {"path": path, "runtimeArgs": args}
    merged["runtimes"] = runtimes
    return merged


@dataclass
class Registration:
    path: str
    version: RunscVersion
    args: list[str]
    changed: bool  # the file was rewritten (the engine needs a reload)
    notes: list[str]


def register_runsc(path: str, *, gpu: bool = False, daemon_json: Path = DAEMON_JSON) -> Registration:
    """Merge the runsc runtime into `daemon_json` with the arguments its release needs
    (never overwriting other keys). `gpu` adds nvproxy where the release has it."""
    binary = shutil.which(path)
    version = runsc_version(binary) if binary else None
    if binary is None or version is None:
        raise InfrastructureError(f"cannot read the release of {path} (`{path} --version`): is gVisor installed?")
    notes = []
    if gpu and version.date < NVPROXY_FIRST:
        # An unknown flag would make runsc refuse every container, GPU or not.
        notes.append(f"runsc {version} has no nvproxy (release-20230529.0 or later): registered without "
                     "GPU support; GPU workers under runsc will refuse to start")
        gpu = False
    args = runsc_args(version, gpu=gpu)
    try:
        current = json.loads(daemon_json.read_text()) if daemon_json.exists() else {}
    except (OSError, ValueError) as exc:
        raise InfrastructureError(f"{daemon_json} is not readable JSON, left as it is: {exc}") from exc
    if not isinstance(current, dict):
        raise InfrastructureError(f"{daemon_json} does not hold a JSON object, left as it is")
    merged = merge_runtime(current, ContainerRuntime.RUNSC.value, binary, args)
    if merged == current:
        return Registration(binary, version, args, changed=False, notes=notes)
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: dockerd must never read half a file.
    fd, tmp = tempfile.mkstemp(dir=daemon_json.parent, prefix=".daemon.json.")
    with os.fdopen(fd, "w") as handle:
        json.dump(merged, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, daemon_json)
    return Registration(binary, version, args, changed=True, notes=notes)


def reload_engine() -> int:
    """SIGHUP every dockerd: it rereads its runtimes without a restart. Returns how many."""
    import psutil

    sent = 0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "dockerd":
            try:
                process.send_signal(signal.SIGHUP)
                sent += 1
            except psutil.Error:
                pass
    return sent
