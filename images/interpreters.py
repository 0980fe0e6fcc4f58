"""Which Python a submission's environment is built with: one satisfying its `requires-python`.

The candidates are what the sandbox can run: the base image's interpreters (Docker) or the
host's that the unprivileged sandbox user can execute (process sandbox). uv would download a
python-build-standalone build only where the operator allows it (`python_downloads`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from edgemaxx.errors import InfrastructureError, SubmissionError

if TYPE_CHECKING:
    from docker import DockerClient

# Prints one JSON line per interpreter on PATH, then whether git is there; run by `sh` inside
# the base image. Plain POSIX sh: the base image is the operator's (any Debian/Ubuntu + Python).
_DOCKER_PROBE = r"""
SCRIPT='import json, sys; print(json.dumps({"path": sys.argv[1], "version": "%d.%d.%d" % sys.version_info[:3]}))'
seen=" "
IFS=:
for dir in $PATH; do
  for exe in "$dir"/python3 "$dir"/python3.[0-9] "$dir"/python3.[0-9][0-9]; do
    [ -x "$exe" ] || continue
    real=$(readlink -f "$exe")
    case "$seen" in *" $real "*) continue ;; esac
    seen="$seen$real "
    "$exe" -c "$SCRIPT" "$exe" 2>/dev/null
  done
done
command -v git >/dev/null 2>&1 && echo GIT=yes || echo GIT=no
"""

_VERSION_SCRIPT = 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.base_prefix)'


class Interpreter(BaseModel):
    path: str
    version: str


class Candidates(BaseModel):
    """What a sandbox can run: interpreters, unusable ones with why, and whether git is there."""

    where: str  # "edgemaxx-base:bookworm-git" or "this host"
    interpreters: list[Interpreter] = Field(default_factory=list)
    unusable: dict[str, str] = Field(default_factory=dict)  # path → why the sandbox cannot use it
    has_git: bool = True


class Choice(BaseModel):
    """The interpreter a build uses: a path, or (downloads allowed) a version request for uv."""

    request: str  # what `uv venv --python` gets: a path, or the range to download
    version: str  # the version found, or the range to download
    download: bool = False


def docker_candidates(client: DockerClient, image: str) -> Candidates:
    """Interpreters of a base image, probed once per image id in this process."""
    import docker.errors

    try:
        image_id = client.images.get(image).id
    except docker.errors.ImageNotFound as exc:
        raise InfrastructureError(
            f"base image {image} is missing: run `edgemaxx base-image` "
            "(or set EDGEMAXX_BASE_IMAGE to a CUDA + Python image)"
        ) from exc
    except docker.errors.APIError as exc:
        raise InfrastructureError(f"docker: {exc}") from exc
    if image_id not in _PROBED_IMAGES:
        _PROBED_IMAGES[image_id] = _probe_image(client, image, image_id)
    return _PROBED_IMAGES[image_id]


# Base images are immutable by id: probe each once per process.
_PROBED_IMAGES: dict[str, Candidates] = {}


def _probe_image(client: DockerClient, image: str, image_id: str) -> Candidates:
    import docker.errors

    try:
        output = client.containers.run(
            image_id, ["sh", "-c", _DOCKER_PROBE], remove=True, network_mode="none",
            user="65534:65534", environment={"HOME": "/tmp"}, stdout=True, stderr=False,
        )
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"probing the interpreters of {image} failed: {exc}") from exc
    candidates = Candidates(where=image)
    for line in output.decode(errors="replace").splitlines():
        if line.startswith("GIT="):
            candidates.has_git = line == "GIT=yes"
        elif line.startswith("{"):
            candidates.interpreters.append(Interpreter.model_validate_json(line))
    return candidates


def host_candidates(paths: list[Path], uid: int | None, timeout_s: float = 20.0) -> Candidates:
    """Host interpreters the sandbox user (uid, when we are root) can run, in the given order."""
    key = (tuple(str(p) for p in paths), uid)
    if key not in _PROBED_HOST:
        _PROBED_HOST[key] = _probe_host(*key, timeout_s)
    return _PROBED_HOST[key]


_PROBED_HOST: dict[tuple[tuple[str, ...], int | None], Candidates] = {}


def _probe_host(paths: tuple[str, ...], uid: int | None, timeout_s: float) -> Candidates:
    from shutil import which

    candidates = Candidates(where="this host", has_git=which("git") is not None)
    seen: set[str] = set()
    as_user = (["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
               if uid is not None and os.geteuid() == 0 else [])
    for path in paths:
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(path):
            continue
        seen.add(real)
        try:
            result = subprocess.run([*as_user, path, "-c", _VERSION_SCRIPT], capture_output=True,
                                    text=True, timeout=timeout_s, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            candidates.unusable[path] = str(exc)
            continue
        if result.returncode != 0:
            why = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            candidates.unusable[path] = f"the sandbox user cannot run it ({why})"
            continue
        version, _, prefix = result.stdout.strip().partition(" ")
        if not real.startswith(prefix.rstrip("/") + "/"):
            # e.g. pyenv's under a private /root: it starts, but runs the system's library.
            candidates.unusable[path] = f"the sandbox user cannot reach its installation (it runs {prefix}'s)"
            continue
        candidates.interpreters.append(Interpreter(path=path, version=version))
    return candidates


def choose(requires_python: str | None, candidates: Candidates, *, downloads: bool) -> Choice:
    """The first candidate satisfying `requires_python`; else a download request, or refuse."""
    if not requires_python:
        spec = SpecifierSet()
    else:
        try:
            spec = SpecifierSet(requires_python)
        except InvalidSpecifier as exc:
            raise SubmissionError(f"requires-python {requires_python!r} is not a version range") from exc
    for interpreter in candidates.interpreters:
        try:
            if spec.contains(Version(interpreter.version), prereleases=True):
                return Choice(request=interpreter.path, version=interpreter.version)
        except InvalidVersion:
            continue
    if downloads and requires_python:
        # uv resolves the range to a python-build-standalone release at build time.
        return Choice(request=requires_python, version=requires_python, download=True)
    available = ", ".join(i.version for i in candidates.interpreters) or "none"
    raise SubmissionError(
        f"requires-python {requires_python} is not satisfied by any Python available to the sandbox "
        f"(available in {candidates.where}: {available}; this validator does not download Pythons)"
    )
