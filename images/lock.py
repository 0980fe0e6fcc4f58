"""A submission's uv.lock: its package names, whether it is up to date, and its export.

The export is uv's own `pylock.toml` (PEP 751): every artifact at the exact URL the lock names
(whatever index it came from) with its hash, git sources at their locked commit, direct URL
wheels with their hash. The requirements.txt export would lose the index of each package.
uv runs here only offline and never builds anything: no miner code runs on the validator.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import tomllib
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from edgemaxx.errors import InfrastructureError, SubmissionError

_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
STALE = "uv.lock is out of date with pyproject.toml: run `uv lock`"


class SourceKind(StrEnum):
    REGISTRY = "registry"  # a file of an index, fetched at the URL the lock names
    VCS = "vcs"  # a git repository at a commit (built by uv, needs git)
    URL = "url"  # a direct URL archive, with its hash


class LockedPackage(BaseModel):
    name: str  # normalised
    version: str | None
    marker: str | None
    kind: SourceKind


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv_binary() -> str:
    """The uv that ships with edgemaxx (the `uv` package): one pinned version everywhere."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise InfrastructureError("uv is not installed beside edgemaxx (pip install uv)") from exc


def locked_packages(root: Path) -> list[str]:
    """Package names in uv.lock (normalised), for the dependency blacklist."""
    path = root / "uv.lock"
    if not path.is_file():
        raise SubmissionError("uv.lock is missing: dependencies must be locked with `uv lock`")
    try:
        lock = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"uv.lock does not parse: {exc}") from exc
    packages = lock.get("package", [])
    if not isinstance(packages, list):
        raise SubmissionError("uv.lock has no [[package]] entries")
    return [normalize(str(p.get("name", ""))) for p in packages if isinstance(p, dict)]


def requires_python(root: Path) -> str | None:
    """The lock's `requires-python`: what the environment's interpreter must satisfy."""
    try:
        value = tomllib.loads((root / "uv.lock").read_text(encoding="utf-8")).get("requires-python")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"uv.lock does not parse: {exc}") from exc
    return str(value) if value else None


def _uv(args: list[str], root: Path, *, timeout_s: float, python_downloads: bool = False,
        what: str) -> subprocess.CompletedProcess[str]:
    # uv must not touch the checkout (cached, read-only to us) nor share a cache with anything
    # else; offline, and nothing is built, so nothing of the submission runs here.
    with tempfile.TemporaryDirectory() as scratch:
        try:
            return subprocess.run(
                [uv_binary(), *args, "--project", str(root), "--cache-dir", str(Path(scratch) / "cache"),
                 "--offline", "--no-progress"],
                capture_output=True, text=True, timeout=timeout_s,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "UV_NO_CONFIG": "1",
                     "UV_PYTHON_DOWNLOADS": "automatic" if python_downloads else "never"},
            )
        except subprocess.TimeoutExpired as exc:
            raise SubmissionError(f"{what} timed out") from exc


def _uv_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if not line.startswith("Using ")]
    return "\n".join(lines)[-2000:]


def check_fresh(root: Path, *, python_downloads: bool = False, timeout_s: float = 60.0) -> str | None:
    """None when uv.lock matches pyproject.toml; raises SubmissionError when it is stale; returns
    why it could not be decided otherwise (uv needs an interpreter for requires-python)."""
    locked_packages(root)
    result = _uv(["lock", "--check", "--no-build"], root, timeout_s=timeout_s,
                 python_downloads=python_downloads, what="checking uv.lock")
    if result.returncode == 0:
        return None
    output = result.stderr + result.stdout
    if "No interpreter found" in output or "No Python" in output:
        return "no interpreter here satisfies requires-python, so freshness was not checked"
    if re.search(r"Failed to parse `?(uv\.lock|pyproject\.toml)", output) or "unsupported lock" in output:
        raise SubmissionError(f"uv cannot read the project: {_uv_error(output)}")
    # A lock that satisfies pyproject.toml is accepted at once, without network. Anything else
    # (uv says "needs to be updated", or needed to re-resolve) means the lock is not current.
    raise SubmissionError(STALE)


def export(root: Path, *, leave_out: Iterable[str] = (), timeout_s: float = 60.0) -> str:
    """The locked set as uv's pylock.toml, without the project itself (its code is mounted)."""
    locked_packages(root)
    args = ["export", "--frozen", "--format", "pylock.toml", "--no-emit-project", "--no-header"]
    for name in sorted(set(leave_out)):
        args += ["--no-emit-package", name]
    result = _uv(args, root, timeout_s=timeout_s, what="exporting uv.lock")
    if result.returncode != 0:
        raise SubmissionError(f"uv.lock could not be exported: {_uv_error(result.stderr)}")
    packages(result.stdout)  # refuses what the sandbox build cannot install
    return result.stdout


def packages(pylock: str) -> list[LockedPackage]:
    """The packages of an exported pylock.toml; refuses sources the build cannot reach."""
    found: list[LockedPackage] = []
    for entry in tomllib.loads(pylock).get("packages", []):
        name = normalize(str(entry.get("name", "")))
        files = [entry.get("archive") or {}, entry.get("sdist") or {}, *(entry.get("wheels") or [])]
        local = [f for f in [entry.get("directory") or {}, *files] if isinstance(f, dict) and "path" in f]
        if local:
            where = local[0]["path"]
            raise SubmissionError(
                f"uv.lock installs {name} from a local path ({where}); the sandbox build only sees "
                "the lock, so publish it as a git or URL dependency (or on an index)"
            )
        if "vcs" in entry:
            kind = SourceKind.VCS
        elif "archive" in entry:
            kind = SourceKind.URL
        else:
            kind = SourceKind.REGISTRY
        found.append(LockedPackage(name=name, version=entry.get("version"), marker=entry.get("marker"),
                                   kind=kind))
    return found


def requirement_names(requirements: str) -> list[str]:
    names = []
    for line in requirements.splitlines():
        match = _NAME_RE.match(line.strip())
        if match:
            names.append(normalize(match.group(1)))
    return names
