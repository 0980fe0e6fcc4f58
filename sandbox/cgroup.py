"""A cgroup per process-sandbox run: memory (swap equal), pids and CPU limits the kernel enforces.

The validator creates it before the run, the run's first process joins it before anything of the
submission starts (so every descendant is inside), and the validator kills what is left and
removes it afterwards. Both layouts: cgroup v1 (one hierarchy per controller, as Docker 20.10
hosts have) and v2 (one unified tree). Runs go under the validator's own cgroup, in `edgemaxx/`
(or under `sandbox_cgroup_parent`), so whatever limits the operator gave the validator also hold
its sandboxes. Where no cgroup can be made, `detect()` says why and the sampler enforces memory.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sandbox.base import Limits

CONTROLLERS = ("memory", "pids", "cpu")
_ROOT = Path("/sys/fs/cgroup")


class CgroupVersion(StrEnum):
    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class CgroupHost:
    """Where this host's run cgroups go: one parent per v1 controller, or the unified parent."""

    version: CgroupVersion
    parents: dict[str, Path]  # controller (or "unified") → parent directory


def _mounts() -> dict[str, Path]:
    """Mount point per v1 controller, and "unified" for cgroup2, from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if extra[0] == "cgroup2":
            found.setdefault("unified", point)
        elif extra[0] == "cgroup":
            for option in extra[2].split(","):
                if option in CONTROLLERS:
                    found.setdefault(option, point)
    return found


def own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and "unified" for v2 (the `0::` line)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            paths["unified"] = path
        for name in controllers.split(","):
            if name in CONTROLLERS:
                paths[name] = path
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def detect(parent: str | None = None) -> tuple[CgroupHost | None, str]:
    """This host's cgroup layout if run cgroups can be created here, and a line saying what it is
    (or why not). `parent` is a path inside each hierarchy; by default the validator's own + /edgemaxx."""
    try:
        mounts, own = _mounts(), own_paths()
    except OSError as exc:
        return None, f"cgroups unreadable: {exc}"
    host: CgroupHost | None
    if all(c in mounts for c in CONTROLLERS):
        host = CgroupHost(CgroupVersion.V1, {
            c: mounts[c] / (parent or own.get(c, "/")).lstrip("/") / ("" if parent else "edgemaxx")
            for c in CONTROLLERS})
    elif "unified" in mounts:
        base = mounts["unified"] / (parent or own.get("unified", "/")).lstrip("/")
        host = CgroupHost(CgroupVersion.V2, {"unified": base if parent else base / "edgemaxx"})
        problem = _enable_v2(host.parents["unified"])
        if problem:
            return None, problem
    else:
        return None, "no cgroup hierarchy with the memory, pids and cpu controllers is mounted"
    try:
        probe = RunCgroup.create(host, f"probe-{os.getpid()}", None)
        probe.remove()
    except OSError as exc:
        return None, f"cannot create cgroups ({host.version}) under {_where(host)}: {exc.strerror or exc}"
    return host, f"cgroup {host.version} under {_where(host)}"


def _where(host: CgroupHost) -> str:
    return str(next(iter(host.parents.values())))


def _enable_v2(parent: Path) -> str | None:
    """Controllers reach a v2 cgroup only through every ancestor's subtree_control; a non-root
    cgroup that holds processes cannot delegate them (the 'no internal processes' rule)."""
    needed = {"memory", "pids", "cpu"}
    try:
        parent.mkdir(exist_ok=True)
        available = set((parent.parent / "cgroup.controllers").read_text().split())
        if not needed <= available:
            return f"cgroup v2: {parent.parent} does not offer {sorted(needed - available)}"
        for cgroup in (parent.parent, parent):
            enabled = set((cgroup / "cgroup.subtree_control").read_text().split())
            if not needed <= enabled:
                _write(cgroup / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(needed)))
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return (f"cgroup v2: {parent.parent} holds processes, so it cannot delegate controllers; "
                    "set EDGEMAXX_SANDBOX_CGROUP_PARENT to a delegated cgroup")
        return f"cgroup v2: cannot prepare {parent}: {exc.strerror or exc}"
    return None


@dataclass
class RunCgroup:
    """One run's cgroup (a directory per v1 controller, or one v2 directory)."""

    version: CgroupVersion
    dirs: dict[str, Path]

    @classmethod
    def create(cls, host: CgroupHost, name: str, limits: Limits | None) -> RunCgroup:
        dirs = {key: parent / name for key, parent in host.parents.items()}
        made = cls(host.version, {})
        try:
            for key, path in dirs.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.mkdir()
                made.dirs[key] = path
            if limits is not None:
                made._limit(limits)
        except OSError:
            made.remove()
            raise
        return made

    def _limit(self, limits: Limits) -> None:
        memory = limits.memory_mb * 2**20
        if self.version is CgroupVersion.V1:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", str(memory))
            memsw = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # absent without swap accounting: then there is no swap to use
                _write(memsw, str(memory))  # equal: no swap to hide in
            _write(self.dirs["pids"] / "pids.max", str(limits.pids))
            if limits.cpus:
                _write(self.dirs["cpu"] / "cpu.cfs_period_us", "100000")
                _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * 100000)))
            return
        path = self.dirs["unified"]
        _write(path / "memory.max", str(memory))
        if (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
        _write(path / "pids.max", str(limits.pids))
        if limits.cpus:
            _write(path / "cpu.max", f"{int(limits.cpus * 100000)} 100000")

    @property
    def procs_files(self) -> list[Path]:
        """Each `cgroup.procs` the run's first process writes its pid to before it execs."""
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def _main(self) -> Path:
        return self.dirs.get("memory") or self.dirs.get("unified") or next(iter(self.dirs.values()))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self._main() / "cgroup.procs").read_text().split()]
        except (OSError, KeyError):
            return []

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took in this cgroup."""
        name = "memory.oom_control" if self.version is CgroupVersion.V1 else "memory.events"
        try:
            for line in (self._main() / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, KeyError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL everything in the cgroup, however it forked or daemonised."""
        kill_file = self.dirs.get("unified", Path("/nonexistent")) / "cgroup.kill"
        if kill_file.exists():
            try:
                _write(kill_file, "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self, timeout_s: float = 10.0) -> None:
        """Kill what is left and remove the directories (rmdir succeeds once the last task is gone)."""
        deadline = time.monotonic() + timeout_s
        for key, path in list(self.dirs.items()):
            while path.exists():
                try:
                    path.rmdir()
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    self.kill()
                    time.sleep(0.05)
            del self.dirs[key]


def remove_leftovers(host: CgroupHost, prefix: str) -> int:
    """Remove run cgroups named `prefix…` that a crashed validator left (killing their tasks)."""
    removed = 0
    for key, parent in host.parents.items():
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and child.name.startswith(prefix):
                try:
                    RunCgroup(host.version, {key: child}).remove()
                    removed += 1
                except OSError:
                    pass
    return removed


JOIN_SCRIPT = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'


def join_command(cgroup: RunCgroup | None) -> list[str]:
    """A prefix that moves the run's first process into `cgroup`, then execs the rest: every
    descendant starts inside. (preexec_fn would do it too, but is unsafe with threads.)"""
    if cgroup is None:
        return []
    files = [str(p) for p in cgroup.procs_files]
    return ["/bin/sh", "-c", JOIN_SCRIPT, "sh", str(len(files)), *files]


# Reading a container's cgroup (the Docker sandbox under gVisor, whose first process is gVisor's).


def _memory_cgroup(pid: int) -> Path | None:
    """The memory cgroup directory of `pid` (cgroup v1's memory controller, or the v2 group)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    found: Path | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if ".." in path:
            return None  # relative to another cgroup namespace: out of view from here
        if "memory" in controllers.split(","):
            return _ROOT / "memory" / path.lstrip("/")
        if controllers == "" and line.startswith("0::"):
            found = _ROOT / path.lstrip("/")
    return found


def cgroup_memory(pid: int | None) -> tuple[int, int | None] | None:
    """Memory charged to `pid`'s cgroup, less the inactive page cache (what `docker stats`
    shows); None where the cgroup cannot be read from here."""
    if not pid:
        return None
    group = _memory_cgroup(pid)
    if group is None or group == _ROOT or group == _ROOT / "memory":
        return None  # the root group is the whole host, never one container
    try:
        if (group / "memory.usage_in_bytes").exists():  # v1
            usage = int((group / "memory.usage_in_bytes").read_text())
            inactive_key = "total_inactive_file"
        else:  # v2
            usage = int((group / "memory.current").read_text())
            inactive_key = "inactive_file"
        inactive = 0
        for line in (group / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
    except (OSError, ValueError):
        return None
    return max(usage - inactive, 0), None
