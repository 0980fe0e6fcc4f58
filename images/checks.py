"""Static checks of a submission, each with a reason a miner can act on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgemaxx.constants import MAX_CODE_BYTES, MAX_MODELS_BYTES
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend, CheckReport, CheckResult, ModelSpec, SubmissionSource
from edgemaxx.settings import Settings
from images import lock, manifest
from images.prefetch import model_size
from images.source import code_bytes

if TYPE_CHECKING:
    from docker import DockerClient

# Files that betray an obfuscator even when it is vendored rather than declared.
_OBFUSCATOR_MARKERS = ("pyarmor_runtime", "__pyarmor__", "pytransform")


class Undecided(Exception):
    """A check that cannot be decided here; the reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(report: CheckReport, name: str, fn: Callable[[], str]) -> bool:
    try:
        detail = fn()
    except SubmissionError as exc:
        report.checks.append(CheckResult(name=name, ok=False, reason=exc.reason))
        return False
    except Undecided as exc:
        report.checks.append(CheckResult(name=name, ok=True, unknown=True, reason=exc.reason))
        return True
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
    dependencies = manifest.read_dependencies(pyproject)
    declared = lock.requirement_names("\n".join(dependencies))
    found = sorted(banned & (set(declared) | set(lock.locked_packages(root))))
    if found:
        raise SubmissionError(f"uses blacklisted dependencies: {', '.join(found)}")
    for path in root.rglob("*"):
        if any(marker in path.name for marker in _OBFUSCATOR_MARKERS):
            raise SubmissionError(f"contains obfuscated code ({path.relative_to(root)})")
    return "none used"


def _models_size(specs: list[ModelSpec], offline: bool) -> str:
    if not specs:
        return "no models"
    if offline:
        return f"{len(specs)} model(s); size checked when they are fetched"
    known = 0
    unreachable: dict[str, list[str]] = {}  # why → models
    for spec in specs:
        try:
            known += model_size(spec)
        except InfrastructureError as exc:
            cause = exc.__cause__
            why = f"{type(cause).__name__}: {str(cause).strip()[:200]}" if cause else str(exc)
            unreachable.setdefault(why, []).append(spec.repository)
    if known > MAX_MODELS_BYTES:
        raise SubmissionError(
            f"models total {known / 2**30:.1f} GiB, over the {MAX_MODELS_BYTES // 2**30} GiB limit"
        )
    if unreachable:
        whys = "; ".join(f"{', '.join(models)}: {why}" for why, models in unreachable.items())
        raise Undecided(f"unknown — the hub could not be reached ({whys}); the validator checks "
                        "the size when it fetches the models")
    return f"{known / 2**30:.2f} GiB"


def _lock(root: Path, settings: Settings) -> str:
    count = len(lock.locked_packages(root))
    undecided = lock.check_fresh(root, python_downloads=settings.python_downloads)
    if undecided:
        raise Undecided(f"{count} packages locked; up to date unknown — {undecided}")
    return f"{count} packages locked, up to date with pyproject.toml"


def static_checks(root: Path, settings: Settings, *, offline: bool = False,
                  report: CheckReport | None = None) -> CheckReport:
    """Every check the validator runs before building; later checks need the earlier ones."""
    report = report if report is not None else CheckReport()
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
    # The blacklist reads the lock's package names: it runs on a stale lock too.
    if _check(report, "uv-lock", lambda: _lock(root, settings)) or report.checks[-1].reason == lock.STALE:
        from edgemaxx.blacklist import load_blacklist

        banned = [*settings.dependency_blacklist, *load_blacklist(settings.blacklist_file).dependencies]
        _check(report, "blacklist", lambda: _blacklist(root, pyproject, banned))
    return report


def full_check(settings: Settings, source: SubmissionSource, *, backend: Backend | None,
               docker_client: DockerClient | None = None, report: CheckReport | None = None) -> CheckReport:
    """What a miner runs before committing, and what the validator's check queue runs: the
    source (clone), every static check, and with a backend, the sandbox build for it.

    Results are added to `report` as they come, so a caller still has them when an
    InfrastructureError (ours, not the submission's) ends the check early."""
    from images import build as builder
    from images.source import fetch_source

    report = report if report is not None else CheckReport()
    code_dir: list[Path] = []

    def _fetch() -> str:
        code_dir.append(fetch_source(settings, source))
        return source.label

    if not _check(report, "source", _fetch):
        return report
    static_checks(code_dir[0], settings, report=report)
    if backend is None or not report.ok:
        return report

    def _build() -> str:
        environment = builder.build_environment(settings, code_dir[0], backend, docker_client)
        return f"{'image' if backend is Backend.DOCKER else 'venv'} {environment}"

    _check(report, "build", _build)
    return report
