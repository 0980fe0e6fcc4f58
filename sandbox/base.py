"""What every sandbox backend provides to the runner, and the limits it runs under."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import psutil
from pydantic import BaseModel

from edgemaxx.models import Backend, ContainerRuntime, MemoryGuard, SandboxTier
from sandbox.sampler import Probe


class Limits(BaseModel):
    """The validator's clock and budgets for one run."""

    load_timeout_s: float = 240.0
    request_timeout_s: float = 120.0
    run_timeout_s: float = 1800.0
    warmup_requests: int = 1
    memory_mb: int = 16384
    scratch_mb: int = 2048
    shm_mb: int = 1024
    pids: int = 1024
    cpus: float | None = None
    max_output_bytes: int = 16 * 1024 * 1024
    log_tail_bytes: int = 16 * 1024


class Sandbox(Protocol):
    backend: Backend

    @property
    def tier(self) -> SandboxTier: ...
    @property
    def memory_guard(self) -> MemoryGuard:
        """KERNEL: a cgroup stops it past the limit (Docker's, or the process sandbox's);
        SAMPLER: the runner's sampler must."""

    @property
    def runtime(self) -> ContainerRuntime | None:
        """The OCI runtime of a container; None for the process sandbox."""
    @property
    def socket_path(self) -> Path: ...
    @property
    def scratch_dir(self) -> Path: ...

    def __enter__(self) -> Sandbox: ...
    def __exit__(self, *exc: object) -> None: ...
    def exit_reason(self) -> str | None:
        """None while running; else why it stopped, in words for the miner. Raises
        InfrastructureError when the sandbox itself failed before the submission started."""
    def kill(self, reason: str) -> None: ...
    def probe(self) -> Probe: ...
    def log_tail(self) -> str: ...


def tree_pids(pid: int | None) -> list[int]:
    if not pid:
        return []
    try:
        root = psutil.Process(pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


def tree_rss(pid: int | None) -> tuple[int, int | None]:
    total = 0
    for child in tree_pids(pid):
        try:
            total += psutil.Process(child).memory_info().rss
        except psutil.Error:
            pass
    return total, None


def describe_exit(code: int | None, oom: bool, memory_mb: int) -> str:
    if oom:
        return f"was killed by the kernel for exceeding the {memory_mb} MiB memory limit"
    if code is None:
        return "stopped"
    if code < 0 or code >= 128:
        import signal

        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with code {code}"
