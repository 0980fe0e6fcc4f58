"""Static checks of a submission, each with a reason a miner can act on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgemaxx.constants import MAX_CODE_BYTES, MAX_MODELS_BYTES
from edgemaxx.errors import SubmissionError
from edgemaxx.models import Backend, CheckReport, CheckResult, ModelSpec, SubmissionSource
from edgemaxx.settings import Settings
from images import lock, manifest
from images.source import code_bytes

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

# Files that betray an obfuscator even when it is vendored rather than declared.
_OBFUSCATOR_MARKERS = ("pyarmor_runtime", "__pyarmor__", "pytransform")


def _check(report: CheckReport, name: str, fn: Callable[[], str]) -> bool:
    try:
        detail = fn()
    except SubmissionError as exc:
        report.checks.append(CheckResult(name=name, ok=False, reason=exc.reason))
        return False
    report.checks.append(CheckResult(name=name, ok=True, reason=detail))
    return True


def _code_size(root: Path) -> str:
    size = code_bytes(root)
    if size > MAX_CODE_BYTES:
        raise SubmissionError(
            f"code is {size / 2**20:.1f} MiB (without .git), over the {MAX_CODE_BYTES // 2**20} MiB limit"
        )
    return f"{size / 2**20:.2f} MiB"


def _blacklist(root: Path, pyproject: dict, blacklist: list[str]) -> str:
    banned = {lock.normalize(name) for name in blacklist}
    declared = lock.requirement_names("\n".join(pyproject.get("project", {}).get("dependencies", [])))
    found = sorted(banned & (set(declared) | set(lock.locked_packages(root))))
    if found:
        raise SubmissionError(f"uses blacklisted dependencies: {', '.join(found)}")
    for path in root.rglob("*"):
        if any(marker in path.name for marker in _OBFUSCATOR_MARKERS):
            raise SubmissionError(f"contains obfuscated code ({path.relative_to(root)})")
    return "none used"


def model_size(spec: ModelSpec, timeout_s: float = 10.0) -> int | None:
    """Total bytes of the files a model entry fetches, from the hub's metadata; None if unknown."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().model_info(spec.repository, revision=spec.revision, files_metadata=True,
                                  timeout=timeout_s)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        log.info("size of %s unknown: %s", spec.repository, exc)
        return None
    total = 0
    for sibling in info.siblings or []:
        name = sibling.rfilename
        if spec.include and not any(fnmatch(name, p) for p in spec.include):
            continue
        if spec.exclude and any(fnmatch(name, p) or name.startswith(p.rstrip("/") + "/")
                                for p in spec.exclude):
            continue
        total += sibling.size or 0
    return total


def _models_size(specs: list[ModelSpec], offline: bool) -> str:
    if not specs:
        return "no models"
    if offline:
        return f"{len(specs)} model(s); size not checked (offline)"
    sizes = [model_size(spec) for spec in specs]
    known = sum(s for s in sizes if s is not None)
    if known > MAX_MODELS_BYTES:
        raise SubmissionError(
            f"models total {known / 2**30:.1f} GiB, over the {MAX_MODELS_BYTES // 2**30} GiB limit"
        )
    unknown = sum(s is None for s in sizes)
    suffix = f"; {unknown} model(s) of unknown size" if unknown else ""
    return f"{known / 2**30:.2f} GiB{suffix}"


def static_checks(root: Path, settings: Settings, *, offline: bool = False) -> CheckReport:
    """Every check the validator runs before building; later checks need the earlier ones."""
    report = CheckReport()
    _check(report, "code-size", lambda: _code_size(root))
    parsed: list[dict] = []

    def _parse() -> str:
        parsed.append(manifest.read_pyproject(root))
        return "parses"

    if not _check(report, "pyproject", _parse):
        return report
    pyproject = parsed[0]
    _check(report, "spec-version", lambda: f"version {manifest.spec_version(pyproject)}")
    _check(report, "start-inference", lambda: manifest.entry_point(pyproject))
    specs: list[ModelSpec] = []

    def _models() -> str:
        specs.extend(manifest.models(pyproject))
        return ", ".join(f"{m.repository}@{m.revision}" for m in specs) or "none"

    if _check(report, "models", _models):
        _check(report, "models-size", lambda: _models_size(specs, offline))
    if _check(report, "uv-lock", lambda: f"{len(lock.locked_packages(root))} packages locked"):
        from edgemaxx.blacklist import load_blacklist

        banned = [*settings.dependency_blacklist, *load_blacklist(settings.blacklist_file).dependencies]
        _check(report, "blacklist", lambda: _blacklist(root, pyproject, banned))
    return report


def full_check(settings: Settings, source: SubmissionSource, *, backend: Backend | None,
               docker_client: DockerClient | None = None) -> CheckReport:
    """What a miner runs before committing, and what the validator's check queue runs: the
    source (clone), every static check, and with a backend, the sandbox build for it."""
    from images import build as builder
    from images.source import fetch_source

    report = CheckReport()
    code_dir: list[Path] = []

    def _fetch() -> str:
        code_dir.append(fetch_source(settings, source))
        return source.label

    if not _check(report, "source", _fetch):
        return report
    report.checks.extend(static_checks(code_dir[0], settings).checks)
    if backend is None or not report.ok:
        return report

    def _build() -> str:
        requirements = lock.export_requirements(code_dir[0])
        environment = builder.build_environment(settings, requirements, backend, docker_client)
        return f"{'image' if backend is Backend.DOCKER else 'venv'} {environment}"

    _check(report, "build", _build)
    return report
