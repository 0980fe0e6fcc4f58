"""A run's private directory: a fresh copy of the code whose root is the socket directory.

Submissions create `inferences.sock` next to their code (SN39's baseline puts it at
`Path(__file__).parent.parent`), so the code's root must be writable. Each run gets its own copy:
files root-owned and read-only, the root directory owned by the sandbox user so the socket (and
scratch files, watched for size) can be created there. The cached checkout is never exposed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgemaxx.constants import SOCKET_NAME


@dataclass
class Workspace:
    root: Path  # the run directory
    app: Path  # the code copy; its root holds the socket
    home: Path  # HOME and TMPDIR for the process backend

    @property
    def socket(self) -> Path:
        return self.app / SOCKET_NAME


def create_workspace(runs_dir: Path, code_dir: Path, uid: int, run_id: str | None = None) -> Workspace:
    run_id = run_id or uuid.uuid4().hex[:12]
    root = runs_dir / run_id
    root.mkdir(parents=True, exist_ok=False)
    os.chmod(root, 0o755)
    app = root / "app"
    shutil.copytree(code_dir, app, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", SOCKET_NAME, "__pycache__"))
    home = root / "home"
    home.mkdir()
    as_root = os.geteuid() == 0
    for dirpath, dirnames, filenames in os.walk(app):
        for name in dirnames:
            _seal(Path(dirpath) / name, 0o555, as_root)
        for name in filenames:
            _seal(Path(dirpath) / name, 0o444, as_root)
    if as_root:
        os.chown(app, uid, uid)
        os.chown(home, uid, uid)
    os.chmod(app, 0o755)
    os.chmod(home, 0o700)
    return Workspace(root=root, app=app, home=home)


def _seal(path: Path, mode: int, as_root: bool) -> None:
    if path.is_symlink():
        return
    if as_root:
        os.chown(path, 0, 0)
    os.chmod(path, mode | (0o111 if mode == 0o444 and os.access(path, os.X_OK) else 0))


def remove_workspace(workspace: Workspace) -> None:
    # Directories were sealed read-only; reopen them so the tree can be removed.
    for dirpath, dirnames, _files in os.walk(workspace.root):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                try:
                    os.chmod(path, 0o755)
                except OSError:
                    pass
    shutil.rmtree(workspace.root, ignore_errors=True)


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total
