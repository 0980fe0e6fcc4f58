"""The process sandbox, for hosts without Docker: a private filesystem view, no network, an
unprivileged user, rlimits, and a cgroup where the host allows one.

The command is built in layers, each exec'ing the next in the same process:
  sh (joins the run's cgroup) → prlimit (rlimits) → bwrap (namespaces, the view) → setpriv
  (sandbox uid, no capabilities, no_new_privs) → the venv's python → launch.py → the submission;
or, in the Landlock tier, → python confine.py (Landlock, seccomp) instead of bwrap.
The launcher writes one byte to an inherited pipe before the submission's code is imported: an
exit before that byte is the sandbox's failure (ours), never the miner's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from edgemaxx.constants import SANDBOX_APP_DIR, SANDBOX_LAUNCHER, SANDBOX_MODELS_DIR, SANDBOX_VENV
from edgemaxx.errors import InfrastructureError
from edgemaxx.models import Backend, MemoryGuard, SandboxTier
from sandbox.base import Limits, describe_exit, tree_pids, tree_rss
from sandbox.cgroup import RunCgroup, join_command
from sandbox.logs import LogTail
from sandbox.sampler import Probe
from sandbox.tiers import CONFINE, TierReport, process_tier
from sandbox.view import View
from sandbox.workspace import Workspace, create_workspace, remove_workspace

STARTED_FD_ENV = "EDGEMAXX_STARTED_FD"


def process_backend_available() -> str | None:
    """None when usable here, else why not."""
    report = process_tier()
    return None if report.tier else report.detail


class ProcessSandbox:
    backend = Backend.PROCESS
    runtime = None

    def __init__(self, python: Path, launcher: Path, code_dir: Path, models_dir: Path,
                 runs_dir: Path, limits: Limits, *, uid: int, gpu: int | None, run_id: str,
                 extra_env: dict[str, str] | None = None, report: TierReport | None = None,
                 gpu_devices: list[Path] | None = None, extra_ro: list[Path] | None = None,
                 gpu_uuid: str | None = None) -> None:
        self.python = python
        self.launcher = launcher
        self.code_dir = code_dir
        self.models_dir = models_dir
        self.runs_dir = runs_dir
        self.limits = limits
        self.uid = uid
        self.gpu = gpu
        self.gpu_uuid = gpu_uuid
        self.run_id = run_id
        self.extra_env = extra_env or {}
        self.report = report or process_tier()
        self.gpu_devices = gpu_devices or []
        self.extra_ro = extra_ro or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.workspace: Workspace | None = None
        self.cgroup: RunCgroup | None = None
        self.logs = LogTail(limits.log_tail_bytes)
        self._killed_for: str | None = None
        self._started_r: int | None = None
        self._started = False
        self._oom_kills = 0
        if self.report.tier is None:
            raise InfrastructureError(f"process sandbox unavailable: {self.report.detail}")

    @property
    def tier(self) -> SandboxTier:
        assert self.report.tier is not None
        return self.report.tier

    @property
    def memory_guard(self) -> MemoryGuard:
        return self.report.memory_guard

    @property
    def socket_path(self) -> Path:
        assert self.workspace is not None
        return self.workspace.socket

    @property
    def scratch_dir(self) -> Path:
        # bwrap: /tmp is a sized tmpfs, so only the code's root needs watching (as with Docker);
        # Landlock: HOME/TMPDIR are on the host's disk, so the whole run directory.
        assert self.workspace is not None
        return self.workspace.app if self.tier is SandboxTier.BWRAP else self.workspace.root

    def _view(self) -> View:
        assert self.workspace is not None
        return View(app=self.workspace.app, env_dir=self.python.parents[2], models=self.models_dir,
                    home=self.workspace.home, gpu_devices=self.gpu_devices, extra_ro=self.extra_ro,
                    tmp_mb=self.limits.scratch_mb, shm_mb=self.limits.shm_mb)

    def _command(self) -> list[str]:
        assert self.workspace is not None
        fsize = self.limits.scratch_mb * 2**20
        cmd = [*join_command(self.cgroup),
               "prlimit", "--core=0", "--nofile=4096", f"--fsize={fsize}", f"--nproc={self.limits.pids}", "--"]
        drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--"] if os.geteuid() == 0 else []
        if self.tier is SandboxTier.BWRAP:
            assert self.report.bwrap is not None
            return cmd + [self.report.bwrap, *self._view().bwrap_args(), "--", *drop,
                          f"{SANDBOX_VENV}/bin/python", SANDBOX_LAUNCHER, SANDBOX_APP_DIR]
        spec = json.dumps(self._view().landlock_spec())
        return cmd + [sys.executable, "-I", str(CONFINE), spec, "--", *drop,
                      str(self.python), str(self.launcher), str(self.workspace.app)]

    def _environment(self, started_w: int) -> dict[str, str]:
        assert self.workspace is not None
        private = self.tier is SandboxTier.BWRAP  # /tmp is the run's own tmpfs
        home = "/tmp" if private else str(self.workspace.home)
        venv_bin = f"{SANDBOX_VENV}/bin" if private else str(self.python.parent)
        return {
            **self.extra_env,
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            # The sandbox uid has no passwd entry on the host; getpass.getuser() (torch calls it
            # for its cache dirs) reads these first.
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "TMPDIR": home,
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": SANDBOX_MODELS_DIR if private else str(self.models_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            # By UUID: with only its own node visible, CUDA's numbering inside may differ.
            "CUDA_VISIBLE_DEVICES": "" if self.gpu is None else (self.gpu_uuid or str(self.gpu)),
            "LANG": "C.UTF-8",
            STARTED_FD_ENV: str(started_w),
        }

    def __enter__(self) -> ProcessSandbox:
        try:
            self.workspace = create_workspace(self.runs_dir, self.code_dir, self.uid, self.run_id)
            self.models_dir.mkdir(parents=True, exist_ok=True)
            if self.report.cgroup is not None:
                self.cgroup = RunCgroup.create(self.report.cgroup, self.run_id, self.limits)
            self._started_r, started_w = os.pipe()
            try:
                self.proc = subprocess.Popen(
                    self._command(), env=self._environment(started_w), cwd=self.workspace.app,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    start_new_session=True, pass_fds=(started_w,),
                )
            finally:
                os.close(started_w)
            os.set_blocking(self._started_r, False)
            assert self.proc.stdout is not None
            self.logs.drain(self.proc.stdout)
        except OSError as exc:
            self._cleanup()
            raise InfrastructureError(f"starting the process sandbox failed: {exc}") from exc
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.proc is not None:
            self._kill_namespace()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.logs.join()
            if self.proc.stdout:
                self.proc.stdout.close()
        if self.cgroup is not None:
            self._oom_kills = self.cgroup.oom_kills()
            try:
                self.cgroup.remove()
            except OSError as exc:
                raise InfrastructureError(f"removing the run's cgroup failed: {exc}") from exc
            self.cgroup = None
        if self._started_r is not None:
            os.close(self._started_r)
            self._started_r = None
        if self.workspace is not None:
            remove_workspace(self.workspace)
            self.workspace = None

    def _kill_namespace(self) -> None:
        """Kill the whole tree. With a cgroup: every task in it. Without: bwrap's (or the
        confined process's) children, then the tree's root; bwrap's PID namespace takes the rest
        down with its init, and the root still reaps it (killing it first would leave a zombie)."""
        assert self.proc is not None
        if self.cgroup is not None:
            self.cgroup.kill()
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        if not children or self.tier is SandboxTier.LANDLOCK:
            for pid in reversed(tree_pids(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _launcher_started(self) -> bool:
        if not self._started and self._started_r is not None:
            try:
                self._started = bool(os.read(self._started_r, 1))
            except BlockingIOError:
                pass
        return self._started

    def exit_reason(self) -> str | None:
        if self._killed_for:
            return self._killed_for
        if self.proc is None:
            return "stopped"
        code = self.proc.poll()
        if code is None:
            return None
        if not self._launcher_started():
            self.logs.join()
            raise InfrastructureError(
                f"the {self.tier} sandbox failed before the submission started (exit {code}): "
                f"{self.logs.text()[-2000:]}")
        oom = (self.cgroup.oom_kills() if self.cgroup else self._oom_kills) > 0
        return describe_exit(code, oom, self.limits.memory_mb)

    def kill(self, reason: str) -> None:
        self._killed_for = reason
        if self.proc is not None:
            self._kill_namespace()

    def probe(self) -> Probe:
        pid = self.proc.pid if self.proc else None
        return Probe(pids=lambda: tree_pids(pid), memory=lambda: tree_rss(pid))

    def log_tail(self) -> str:
        return self.logs.text()
