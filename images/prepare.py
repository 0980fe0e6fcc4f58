"""Preparation, the CPU half of a benchmark: fetch, check, build, prefetch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edgemaxx.errors import SubmissionError
from edgemaxx.models import Backend, PreparedSubmission, SubmissionSource
from edgemaxx.settings import Settings
from images import build, manifest
from images.checks import static_checks
from images.fingerprint import code_fingerprint, model_files
from images.prefetch import prefetch
from images.source import code_bytes, fetch_source

if TYPE_CHECKING:
    from docker import DockerClient



def _quiet(phase: str) -> None:
    return None


def prepare(settings: Settings, source: SubmissionSource, backend: Backend, *, name: str | None = None,
            docker_client: DockerClient | None = None,
            progress: Callable[[str], None] = _quiet) -> PreparedSubmission:
    """Raise SubmissionError (with the failing check's reason) or return what the run needs."""
    # 1. Source: a local directory as is, or a safe clone.
    progress("cloning")
    code_dir = fetch_source(settings, source)

    # 2. Static checks, each with a reason.
    progress("checking")
    report = static_checks(code_dir, settings, offline=True)
    failure = report.first_failure()
    if failure:
        raise SubmissionError(f"check {failure.name} failed: {failure.reason}")
    specs = manifest.read_manifest(code_dir).models

    # 3. The environment, keyed by what the lock installs.
    progress("building")
    environment = build.build_environment(settings, code_dir, backend, docker_client)

    # 4. Models into the shared cache (mounted read-only at run time); size limit checked first.
    progress("fetching models")
    models_bytes = prefetch(specs, settings.models_cache) if specs else 0

    # 5. What it is made of, for copy detection.
    return PreparedSubmission(
        name=name or source.label, source=source, code_dir=code_dir, backend=backend,
        environment=environment, host=settings.host, models=specs, code_bytes=code_bytes(code_dir),
        models_bytes=models_bytes, checks=report, code_fingerprint=code_fingerprint(code_dir),
        model_files=model_files(settings.models_cache, specs),
    )
