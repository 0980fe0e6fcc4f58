"""Turning a submission's uv.lock into the pinned requirement list the sandbox image installs."""

from __future__ import annotations

import re
import subprocess
import tempfile
import tomllib
from pathlib import Path

from edgemaxx.errors import SubmissionError

_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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


def export_requirements(root: Path, timeout_s: float = 60.0) -> str:
    """`uv export --frozen`: the locked set as pip requirements, with environment markers.

    Hashes are left out so operator-supplied wheels (e.g. a CPU torch build) can satisfy a pin;
    the project itself is not installed, its code is mounted at run time.
    """
    locked_packages(root)
    with tempfile.TemporaryDirectory() as scratch:
        # uv must not touch the checkout (it is cached and read-only to us), nor use a cache
        # shared with anything else.
        try:
            from uv import find_uv_bin

            uv = find_uv_bin()
        except (ImportError, FileNotFoundError) as exc:
            raise SubmissionError("uv is not installed on the validator") from exc
        try:
            result = subprocess.run(
                [uv, "export", "--frozen", "--no-hashes", "--no-emit-project",
                 "--no-header", "--no-annotate", "--project", str(root),
                 "--cache-dir", str(Path(scratch) / "cache"), "--offline", "--no-progress"],
                capture_output=True, text=True, timeout=timeout_s,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch,
                     "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"},
            )
        except subprocess.TimeoutExpired as exc:
            raise SubmissionError("exporting uv.lock timed out") from exc
    if result.returncode != 0:
        raise SubmissionError(f"uv.lock could not be exported: {result.stderr.strip()[-2000:]}")
    lines = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
    for line in lines:
        if line.lstrip().startswith("-e") or line.lstrip().startswith("./"):
            raise SubmissionError(f"uv.lock pins a local path, which cannot be installed: {line}")
    return "\n".join(lines) + "\n"


def requirement_names(requirements: str) -> list[str]:
    names = []
    for line in requirements.splitlines():
        match = _NAME_RE.match(line.strip())
        if match:
            names.append(normalize(match.group(1)))
    return names
