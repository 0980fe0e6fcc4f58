"""What a process-sandbox submission may see of the host's filesystem, as data, and its two
renderings: bubblewrap arguments (a private mount namespace) and a Landlock spec (the same paths,
access-checked in place, for hosts where namespaces are forbidden).

Visible: system directories read-only (CUDA's driver libraries live under /usr/lib/... or
/usr/local/nvidia, its config in /etc/ld.so.cache), the run's code copy (its root writable for
the socket), its environment and the model cache read-only, private sized /tmp, /var/tmp and
/dev/shm, a minimal /dev with only this worker's GPU nodes. Not visible: the data directory
(other runs, environments, clones, Redis's AOF files), home directories, other GPUs, /run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgemaxx.constants import (
    ENV_LAUNCHER,
    SANDBOX_APP_DIR,
    SANDBOX_LAUNCHER,
    SANDBOX_MODELS_DIR,
    SANDBOX_VENV,
)

# Top-level system directories, bound read-only when they exist (symlinks stay symlinks).
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
# Device nodes every process may use; /dev/shm is a private tmpfs.
MINIMAL_DEVICES = ("null", "zero", "full", "random", "urandom")
# NVML talks to the persistence daemon through this socket when it runs.
NVIDIA_RUN_DIR = Path("/run/nvidia-persistenced")


def gpu_device_nodes(gpu: int | None, configured: list[Path] | None = None,
                     minor: int | None = None) -> list[Path]:
    """The device nodes a worker on `gpu` exposes: its own /dev/nvidia<minor> (NVML's minor
    number, else the index), the control and UVM nodes; never another GPU's. `configured`
    replaces the default (tests, unusual drivers)."""
    if configured is not None:
        return list(configured)
    if gpu is None:
        return []
    dev = Path("/dev")
    own = dev / f"nvidia{gpu if minor is None else minor}"
    wanted = [own, dev / "nvidiactl", dev / "nvidia-uvm", dev / "nvidia-uvm-tools"]
    return [node for node in wanted if node.exists()]


def interpreter_prefixes(env_dir: Path) -> list[Path]:
    """The installations behind the environment's venv when they lie outside /usr (a pyenv or
    conda interpreter, or a venv made from another venv): pyvenv.cfg's `home`, and where its
    python's symlinks end. Both are needed: the first holds the landmark, the second the binary."""
    found: list[Path] = []
    venv = env_dir / "venv"
    try:
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                found.append(Path(value.strip()).parent)
    except OSError:
        return []
    binary = (venv / "bin" / "python").resolve()
    found.append(binary.parents[1])
    usr = Path("/usr")
    return [p for p in dict.fromkeys(found) if p != usr and usr not in p.parents and p != Path("/")]


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Directories leading to a bind mount outside the system directories, made traversable
    (bwrap would create them 0700, closed to the sandbox user) and holding nothing else."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made or parent.parts[1] in SYSTEM_DIRS:
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


@dataclass
class View:
    app: Path  # the run's code copy on the host; its root is writable (the socket goes there)
    env_dir: Path  # venv/ and launch.py, read-only
    models: Path  # the shared model cache, read-only
    home: Path  # the run's private HOME/TMPDIR where no tmpfs can be mounted (Landlock tier)
    gpu_devices: list[Path] = field(default_factory=list)
    extra_ro: list[Path] = field(default_factory=list)  # operator's extra read-only paths
    tmp_mb: int = 2048
    shm_mb: int = 1024

    def read_only(self) -> list[Path]:
        """Host paths readable besides the system directories, the environment and the models."""
        return [*self.extra_ro, *interpreter_prefixes(self.env_dir)]

    # ------------------------------------------------------------ bubblewrap (mount namespace)

    def bwrap_args(self) -> list[str]:
        """bwrap options building the view from an empty root, laid out as the Docker sandbox is:
        the code at /app, the models at /models, the venv at /opt/venv, the launcher at
        /opt/edgemaxx/launch.py; nothing shows where they live on the host."""
        args = ["--die-with-parent", "--new-session",
                "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        for name in SYSTEM_DIRS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--proc", "/proc", "--ro-bind", "/sys", "/sys", "--dev", "/dev"]
        for point, size_mb in (("/tmp", self.tmp_mb), ("/var/tmp", self.tmp_mb), ("/dev/shm", self.shm_mb)):
            args += ["--size", str(size_mb * 2**20), "--perms", "1777", "--tmpfs", point]
        for node in self.gpu_devices:
            args += ["--dev-bind", str(node), f"/dev/{node.name}"]
        if NVIDIA_RUN_DIR.is_dir():
            args += ["--ro-bind", str(NVIDIA_RUN_DIR), str(NVIDIA_RUN_DIR)]
        made: set[Path] = set()
        for path in self.read_only():
            args += _parents(path, made) + ["--ro-bind", str(path), str(path)]
        args += _parents(Path(SANDBOX_LAUNCHER), made)
        args += ["--ro-bind", str(self.env_dir / "venv"), SANDBOX_VENV,
                 "--ro-bind", str(self.env_dir / ENV_LAUNCHER), SANDBOX_LAUNCHER,
                 "--ro-bind", str(self.models), SANDBOX_MODELS_DIR,
                 "--bind", str(self.app), SANDBOX_APP_DIR,
                 "--remount-ro", "/", "--chdir", SANDBOX_APP_DIR]
        return args

    # ------------------------------------------------------------ Landlock (no namespaces)

    def landlock_spec(self) -> dict[str, list[str]]:
        """Host paths by access, for `sandbox/confine.py`: everything else is denied, including
        listing /dev, /tmp, /var/tmp and /dev/shm (shared with other runs, so neither readable
        nor writable here: HOME and TMPDIR are the run's own directory instead)."""
        system = [str(Path("/") / name) for name in SYSTEM_DIRS
                  if (Path("/") / name).is_dir() and not (Path("/") / name).is_symlink()]
        return {
            "read_exec": system + [str(p) for p in (self.env_dir, self.models, *self.read_only())],
            "read": ["/proc", "/sys"],
            "write": [str(self.app), str(self.home)],
            "devices": [f"/dev/{name}" for name in MINIMAL_DEVICES] + [str(p) for p in self.gpu_devices],
        }
