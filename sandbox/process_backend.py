"""The process sandbox, for hosts without Docker: a private network and PID namespace, an
unprivileged user, rlimits; memory and scratch size are enforced by the validator's sampler."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psutil

from edgemaxx.errors import InfrastructureError
from edgemaxx.models import Backend
from sandbox.base import Limits, describe_exit, tree_pids, tree_rss
from sandbox.logs import LogTail
from sandbox.sampler import Probe
from sandbox.workspace import Workspace, create_workspace, remove_workspace


def process_backend_available() -> str | None:
    """None when usable here, else why not."""
    for tool in ("unshare", "prlimit", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    try:
        subprocess.run(_namespaces() + ["true"], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return f"cannot create a private network namespace: {exc}"
    return None


def _namespaces() -> list[str]:
    # A new PID namespace: when its first process dies, the kernel kills everything in it,
    # so no descendant can outlive the run however it daemonises.
    base = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        return ["unshare", "--user", "--map-root-user", *base[1:]]
    return base


class ProcessSandbox:
    backend = Backend.PROCESS
    enforces_memory = False

    def __init__(self, python: Path, launcher: Path, code_dir: Path, models_dir: Path,
                 runs_dir: Path, limits: Limits, *, uid: int, gpu: int | None, run_id: str,
                 extra_env: dict[str, str] | None = None) -> None:
        self.python = python
        self.launcher = launcher
        self.code_dir = code_dir
        self.models_dir = models_dir
        self.runs_dir = runs_dir
        self.limits = limits
        self.uid = uid
        self.gpu = gpu
        self.run_id = run_id
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.workspace: Workspace | None = None
        self.logs = LogTail(limits.log_tail_bytes)
        self._killed_for: str | None = None

    @property
    def socket_path(self) -> Path:
        assert self.workspace is not None
        return self.workspace.socket

    @property
    def scratch_dir(self) -> Path:
        assert self.workspace is not None
        return self.workspace.root

    def _command(self) -> list[str]:
        assert self.workspace is not None
        fsize = self.limits.scratch_mb * 2**20
        cmd = ["prlimit", "--core=0", "--nofile=4096", f"--fsize={fsize}",
               f"--nproc={self.limits.pids}", "--", *_namespaces()]
        if os.geteuid() == 0:
            cmd += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                    "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        else:
            cmd += ["setpriv", "--no-new-privs", "--"]
        return cmd + [str(self.python), str(self.launcher), str(self.workspace.app)]

    def _environment(self) -> dict[str, str]:
        assert self.workspace is not None
        return {
            **self.extra_env,
            "PATH": f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workspace.home),
            # The sandbox uid has no passwd entry on the host; getpass.getuser() (torch calls it
            # for its cache dirs) reads these first.
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "TMPDIR": str(self.workspace.home),
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(self.models_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": "" if self.gpu is None else str(self.gpu),
            "LANG": "C.UTF-8",
        }

    def __enter__(self) -> ProcessSandbox:
        try:
            self.workspace = create_workspace(self.runs_dir, self.code_dir, self.uid, self.run_id)
            self.proc = subprocess.Popen(
                self._command(), env=self._environment(), cwd=self.workspace.app,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
        if self.workspace is not None:
            remove_workspace(self.workspace)
            self.workspace = None

    def _kill_namespace(self) -> None:
        """SIGKILL the namespace's first process: the kernel then kills the rest of the namespace,
        and `unshare`, still alive, reaps it (killing `unshare` first would leave a zombie)."""
        assert self.proc is not None
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        if not children:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def exit_reason(self) -> str | None:
        if self._killed_for:
            return self._killed_for
        if self.proc is None:
            return "stopped"
        code = self.proc.poll()
        if code is None:
            return None
        return describe_exit(code, False, self.limits.memory_mb)

    def kill(self, reason: str) -> None:
        self._killed_for = reason
        if self.proc is not None:
            self._kill_namespace()

    def probe(self) -> Probe:
        pid = self.proc.pid if self.proc else None
        return Probe(pids=lambda: tree_pids(pid), memory=lambda: tree_rss(pid))

    def log_tail(self) -> str:
        return self.logs.text()
