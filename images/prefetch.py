"""A submission's `[[tool.edge-maxxing.models]]` on the Hugging Face hub: their size, and fetching
them into the shared model cache.

Patterns mean what they mean on SN39: `include`/`exclude` go to huggingface_hub unchanged as
`allow_patterns`/`ignore_patterns` (fnmatch on the whole path; only a pattern ending in `/` gets
a `*`, so `"transformer"` keeps `transformer/…` and `"transformer/"` drops it).

Runs on the CPU builder, with network; the cache is mounted read-only into the sandbox, where
`HF_HUB_OFFLINE=1` makes `from_pretrained(..., local_files_only=True)` find these files.
An unreachable hub is the validator's problem (retried), never the miner's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edgemaxx.constants import MAX_MODELS_BYTES
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import ModelSpec


def transport_errors() -> tuple[type[Exception], ...]:
    """What the hub client raises when the hub cannot be reached: httpx2 (huggingface_hub 2.x),
    httpx (1.x) or requests (0.x) errors, whichever are installed, and OSError."""
    errors: list[type[Exception]] = [OSError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"),
                         ("requests", "RequestException")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def selected_files(spec: ModelSpec, names: Iterable[str]) -> list[str]:
    """The repository files a model entry fetches, by huggingface_hub's own filter."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(list(names), allow_patterns=spec.include or None,
                                    ignore_patterns=spec.exclude or None))


def _unreachable(spec: ModelSpec, exc: BaseException) -> InfrastructureError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return InfrastructureError(f"the hub could not be reached for {spec.repository}@{spec.revision} "
                               f"({type(exc).__name__}: {detail})")


def model_size(spec: ModelSpec, timeout_s: float = 10.0, endpoint: str | None = None) -> int:
    """Bytes of the files this entry fetches, from the hub's metadata. SubmissionError when the
    model or revision does not exist; InfrastructureError when the hub cannot say."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    unreachable: tuple[type[Exception], ...] = (*transport_errors(), ValueError)
    try:
        info = HfApi(endpoint=endpoint).model_info(spec.repository, revision=spec.revision, files_metadata=True,
                                  timeout=timeout_s)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise SubmissionError(f"model {spec.repository} does not exist or is not public") from exc
    except RevisionNotFoundError as exc:
        raise SubmissionError(f"model {spec.repository} has no revision {spec.revision}") from exc
    except unreachable as exc:
        # Includes the hub's HTTP errors (5xx, 429: HfHubHTTPError is an OSError).
        raise _unreachable(spec, exc) from exc
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    return sum(sizes[name] for name in selected_files(spec, sizes))


def _snapshot_bytes(spec: ModelSpec, path: Path) -> int:
    # Only this entry's files: the shared cache may hold more of the same snapshot.
    sizes: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                sizes[os.path.relpath(full, path)] = os.stat(full).st_size  # follows blob symlinks
            except OSError:
                pass
    return sum(sizes[name] for name in selected_files(spec, sizes))


def prefetch(specs: list[ModelSpec], cache_dir: Path, *, timeout_s: float = 3600.0,
             max_bytes: int = MAX_MODELS_BYTES) -> int:
    """Fetch every model (complete cached snapshots are not fetched again, and need no hub);
    returns their total bytes. The size limit is checked before anything is downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache_dir.mkdir(parents=True, exist_ok=True)
    unreachable: tuple[type[Exception], ...] = (LocalEntryNotFoundError, *transport_errors())
    total = 0
    for spec in specs:
        def fetch(offline: bool, spec: ModelSpec = spec) -> str:
            return snapshot_download(
                spec.repository, revision=spec.revision, cache_dir=str(cache_dir),
                allow_patterns=spec.include or None, ignore_patterns=spec.exclude or None,
                local_files_only=offline, etag_timeout=min(timeout_s, 60.0),
            )

        try:
            # huggingface_hub refuses a cached snapshot its tree listing says is incomplete.
            path = fetch(offline=True)
        except (LocalEntryNotFoundError, OSError):
            expected = model_size(spec, timeout_s=min(timeout_s, 60.0))
            if total + expected > max_bytes:
                raise SubmissionError(
                    f"models total {(total + expected) / 2**30:.1f} GiB, over the "
                    f"{max_bytes // 2**30} GiB limit"
                ) from None
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
            except unreachable as exc:
                raise _unreachable(spec, exc) from exc
        total += _snapshot_bytes(spec, Path(path))
    if total > max_bytes:
        raise SubmissionError(f"models total {total / 2**30:.1f} GiB, over the {max_bytes // 2**30} GiB limit")
    return total
