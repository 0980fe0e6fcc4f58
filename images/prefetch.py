"""Fetching a submission's `[[tool.edge-maxxing.models]]` into the shared model cache.

Runs on the CPU builder, with network; the cache is mounted read-only into the sandbox, where
`HF_HUB_OFFLINE=1` makes `from_pretrained(..., local_files_only=True)` find these files.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import ModelSpec


def _snapshot_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size  # follows blob symlinks
            except OSError:
                pass
    return total


def prefetch(specs: list[ModelSpec], cache_dir: Path, *, timeout_s: float = 3600.0) -> int:
    """Download every model (cached ones are not fetched again); returns their total bytes."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for spec in specs:
        def fetch(offline: bool, spec: ModelSpec = spec) -> str:
            return snapshot_download(
                spec.repository, revision=spec.revision, cache_dir=str(cache_dir),
                allow_patterns=spec.include, ignore_patterns=_ignore(spec.exclude),
                local_files_only=offline, etag_timeout=min(timeout_s, 60.0),
            )

        try:
            path = fetch(offline=True)
        except (LocalEntryNotFoundError, FileNotFoundError, OSError):
            try:
                path = fetch(offline=False)
            except (RepositoryNotFoundError, GatedRepoError) as exc:
                raise SubmissionError(
                    f"model {spec.repository} does not exist or is not public"
                ) from exc
            except RevisionNotFoundError as exc:
                raise SubmissionError(
                    f"model {spec.repository} has no revision {spec.revision}"
                ) from exc
            except (LocalEntryNotFoundError, OSError) as exc:
                raise InfrastructureError(
                    f"could not fetch model {spec.repository}@{spec.revision}: the Hugging Face "
                    f"hub is unreachable from this validator ({type(exc).__name__}: {exc})"
                ) from exc
        total += _snapshot_bytes(Path(path))
    return total


def _ignore(exclude: list[str] | None) -> list[str] | None:
    # SN39 lists folders ("transformer") as excludes; match everything under them too.
    if not exclude:
        return None
    patterns: list[str] = []
    for pattern in exclude:
        patterns.append(pattern)
        if not any(ch in pattern for ch in "*?["):
            patterns.append(pattern.rstrip("/") + "/*")
    return patterns
