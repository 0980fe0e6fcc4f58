"""A second Docker engine on this machine, standing in for a second host's: its own socket, data
root, exec root (and so its own containerd), pid file, network namespace, no bridge and no iptables
(sandboxes are network-less; the engine that serves everyone else is never touched: in the host's
namespace `--bridge none` would delete that engine's docker0).

Safe to use again on a machine that kept state from an earlier run (CI keeps /var/lib): a daemon
an earlier run left is stopped, and its data root removed, before starting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil


class SecondEngine:
    def __init__(self, name: str = "edgemaxx-test-dockerd2") -> None:
        self.name = name
        self.socket = Path(f"/run/{name}.sock")
        self.data_root = Path(f"/var/lib/{name}")
        self.exec_root = Path(f"/run/{name}")
        self.pidfile = Path(f"/run/{name}.pid")
        self.log = Path(f"/var/log/{name}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """DOCKER_HOST for clients of this engine."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self, timeout_s: float = 60) -> SecondEngine:
        binary = shutil.which("dockerd")
        assert binary, "dockerd is not installed (scripts/setup installs it)"
        self.exec_root.mkdir(parents=True, exist_ok=True)
        config = self.exec_root / "daemon.json"  # not /etc/docker/daemon.json: the main engine's
        config.write_text("{}\n")
        handle = self.log.open("ab")
        # Its own network namespace: with `--bridge none` dockerd deletes the interface named docker0
        # at start, which in the host's namespace is the main engine's bridge (every later container
        # and build there then fails with "could not find bridge docker0"). The socket is a path, so
        # clients reach it from any namespace. (Lead's fix, 15:30: docker0 vanished on this machine.)
        self.proc = subprocess.Popen(
            ["unshare", "--net", binary, "--host", self.host, "--data-root", str(self.data_root),
             "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile), "--config-file", str(config),
             "--bridge", "none", "--iptables=false", "--ip-masq=false",
             # Its own containerd, under its exec root, never the system one.
             "--containerd-namespace", self.name, "--containerd-plugins-namespace", f"{self.name}-plugins",
             # Its containers in a cgroup of their own: a last sweep can find every process of theirs.
             "--cgroup-parent", f"/{self.name}", "--shutdown-timeout", "2"],
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if self.docker("version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0:
                    return self
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"dockerd did not answer within {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def load_from_default_engine(self, *images: str) -> None:
        """`docker save | docker load`: what a registry pull would give this host."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
        assert save.stdout is not None
        load = subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=self.env(), capture_output=True,
                              text=True, timeout=600, check=False)
        save.stdout.close()
        assert save.wait(600) == 0 and load.returncode == 0, load.stderr

    def kill(self) -> None:
        """kill -9, as a crashed host's engine: its containers keep running until it starts again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM: the engine stops its containers and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def _ours(self) -> list[psutil.Process]:
        """Processes of this engine (dockerd, its containerd, shims): they name our roots."""
        marks = (str(self.exec_root), str(self.data_root), str(self.socket))
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if any(mark in cmdline for mark in marks):
                found.append(proc)
        return found

    def _stop_stale(self) -> None:
        if self.pidfile.exists():
            try:
                pid = int(self.pidfile.read_text().strip() or 0)
                if pid and str(self.socket) in " ".join(psutil.Process(pid).cmdline()):
                    os.kill(pid, signal.SIGTERM)
                    psutil.Process(pid).wait(60)
            except (ValueError, psutil.Error, OSError):
                pass

    def _kill_ours(self, *, shims: bool) -> None:
        for proc in self._ours():
            try:
                if shims or "containerd-shim" not in " ".join(proc.cmdline()):
                    proc.kill()
                    proc.wait(10)
            except psutil.Error:
                pass

    def _kill_containers(self) -> None:
        """Every process left in this engine's cgroups (its containers'), on every hierarchy."""
        for procs in Path("/sys/fs/cgroup").glob(f"**/{self.name}/**/cgroup.procs"):
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def remove(self) -> None:
        """Everything of this engine gone: its containers stopped (by a restart of the engine, as
        no live-restore is set, then a clean stop), leftover processes killed, mounts under its
        roots unmounted, its roots removed."""
        self.stop()
        self._stop_stale()
        self._kill_ours(shims=False)  # a killed engine's containerd; its shims hold the containers
        if self.data_root.exists():
            try:
                self.start(timeout_s=30)
            except RuntimeError:
                pass
            self.stop()
        self._kill_ours(shims=True)
        self._kill_containers()
        for root in (self.data_root, self.exec_root):
            # dockerd bind-mounts its data root on itself (and overlays under it).
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[1] == str(root) or line.split()[1].startswith(str(root) + "/")]
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True, timeout=30, check=False)
            shutil.rmtree(root, ignore_errors=True)
        for path in (self.socket, self.pidfile):
            path.unlink(missing_ok=True)
