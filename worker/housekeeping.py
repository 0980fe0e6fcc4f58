"""Housekeeping on one host: disk (model cache, environments, clones, run directories) and Redis
(run history) stay bounded.

Every worker and builder process runs a pass at start and then every `housekeeping_interval_s`
between jobs; a per-host lock in Redis keeps it to one pass at a time. What the current and
previous run of each contest use is kept; models the current run still needs are never evicted;
nothing younger than `housekeeping_grace_s` is removed (a build or download may be under way);
only environments this validator noted (state.housekeeping) are removed, since one Docker engine
may serve others. Each pass leaves a report that /v1/status shows, low disk included.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis

from edgemaxx.constants import LABEL_IMAGE_KEY
from edgemaxx.models import ModelSpec, PreparedSubmission
from edgemaxx.settings import Settings
from state import history, hosts, housekeeping, runs
from state.records import ContestRun, DiskUsage, HousekeepingReport

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

MARKER = ".edgemaxx-last-used"  # touched in a model's cache directory each time a run uses it
GIB = 1024**3


# ---------------------------------------------------------------- the model cache


def model_dir_name(repository: str) -> str:
    """The Hugging Face cache's directory for a model repository."""
    return "models--" + repository.replace("/", "--")


def touch_models(cache: Path, specs: list[ModelSpec]) -> None:
    for spec in specs:
        directory = cache / model_dir_name(spec.repository)
        try:
            if directory.is_dir():
                (directory / MARKER).touch()
        except OSError as exc:  # a read-only cache on this host: eviction falls back to mtimes
            log.debug("could not mark %s as used: %s", directory, exc)


@dataclass
class CachedModel:
    name: str
    path: Path
    size: int
    last_used: float


def _tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (the cache's snapshot symlinks are not counted twice)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, name)):
                total += st.st_size
    return total


def cached_models(cache: Path) -> list[CachedModel]:
    if not cache.is_dir():
        return []
    found = []
    for path in cache.iterdir():
        if not path.name.startswith("models--") or not path.is_dir():
            continue
        marker = path / MARKER
        stamps = [path.stat().st_mtime] + ([marker.stat().st_mtime] if marker.exists() else [])
        found.append(CachedModel(name=path.name, path=path, size=_tree_size(path), last_used=max(stamps)))
    return found


def evict_models(cache: Path, cap_bytes: int, needed: set[str], *, grace_s: float,
                 now: float) -> tuple[list[str], int]:
    """Remove least recently used models until the cache fits under `cap_bytes`; a model in
    `needed` (directory names) or used within `grace_s` is never removed. Returns what was
    evicted and the cache's size afterwards."""
    models = cached_models(cache)
    total = sum(m.size for m in models)
    evicted: list[str] = []
    for model in sorted(models, key=lambda m: m.last_used):
        if total <= cap_bytes:
            break
        if model.name in needed or model.last_used > now - grace_s:
            continue
        shutil.rmtree(model.path, ignore_errors=True)
        shutil.rmtree(cache / ".locks" / model.name, ignore_errors=True)
        total -= model.size
        evicted.append(model.name)
    return evicted, total


# ---------------------------------------------------------------- what the runs use


@dataclass
class InUse:
    environments: set[str] = field(default_factory=set)  # current and previous runs
    code_dirs: set[str] = field(default_factory=set)  # current and previous runs
    models: set[str] = field(default_factory=set)  # what the current runs still need


def _prepared_of(redis: Redis, run: ContestRun) -> list[tuple[PreparedSubmission, bool]]:
    """Each prepared submission of the run (baseline first), with whether it still needs to run."""
    found = [(run.baseline_prepared, run.end is None)] if run.baseline_prepared else []
    found += [(prepared, run.end is None) for prepared in hosts.baselines_prepared(redis, run.id)]
    for record in runs.records(redis, run.id):
        if record.prepared is not None:
            found.append((record.prepared, run.end is None and not record.settled))
    return found


def in_use(redis: Redis) -> InUse:
    used = InUse()
    for contest_id, recent in history.recent_runs(redis, per_contest=2).items():
        current = runs.current_run(redis, contest_id)
        kept = {r.id: r for r in recent}
        if current is not None:
            kept[current.id] = current
        for run in kept.values():
            for prepared, pending in _prepared_of(redis, run):
                used.environments.add(prepared.environment)
                used.code_dirs.add(str(prepared.code_dir))
                if pending:
                    used.models |= {model_dir_name(m.repository) for m in prepared.models}
    return used


# ---------------------------------------------------------------- environments, clones, run dirs


def remove_environments(redis: Redis, settings: Settings, keep: set[str], client: DockerClient | None, *,
                        now: float) -> list[str]:
    """Images and venvs this validator noted, unused by the current and previous runs."""
    known = housekeeping.known_environments(redis)
    stale = {env for env, used in known.items() if env not in keep and used < now - settings.housekeeping_grace_s}
    removed: list[str] = []
    if client is not None:
        removed += _remove_images(client, stale)
    envs_dir = settings.envs_dir.resolve()
    for env in stale - set(removed):
        path = Path(env)
        if path.is_absolute() and path.parent.resolve() == envs_dir:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(env)
    housekeeping.forget_environments(redis, removed)
    return removed


def _remove_images(client: DockerClient, stale: set[str]) -> list[str]:
    import docker.errors

    removed = []
    for image in client.images.list(filters={"label": LABEL_IMAGE_KEY}):
        for tag in image.tags:
            if tag not in stale:
                continue
            try:
                client.images.remove(tag)
                removed.append(tag)
            except docker.errors.APIError as exc:  # a container still uses it: next pass
                log.warning("could not remove sandbox image %s: %s", tag, exc)
    return removed


def _older(path: Path, age_s: float, now: float) -> bool:
    try:
        return path.lstat().st_mtime < now - age_s
    except OSError:
        return False


def _rmtree(path: Path) -> None:
    # Run directories hold sealed (read-only) copies of the code: reopen them first.
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            try:
                os.chmod(os.path.join(dirpath, name), 0o755)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def remove_clones(settings: Settings, keep: set[str], *, now: float) -> int:
    """Clones no current or previous run uses, and half-finished ones a crash left."""
    if not settings.repos_dir.is_dir():
        return 0
    removed = 0
    grace = settings.housekeeping_grace_s
    for path in settings.repos_dir.iterdir():
        if path.suffix in (".commit", ".tmp"):
            continue
        stale_temp = path.name.startswith("clone-") and _older(path, settings.clone_timeout_s + grace, now)
        unused = not path.name.startswith("clone-") and str(path) not in keep and _older(path, grace, now)
        if stale_temp or unused:
            _rmtree(path)
            path.with_name(path.name + ".commit").unlink(missing_ok=True)
            removed += 1
    return removed


def remove_run_dirs(settings: Settings, *, now: float) -> int:
    """Run directories older than any job may last: their worker died before cleaning up."""
    if not settings.runs_dir.is_dir():
        return 0
    removed = 0
    for path in settings.runs_dir.iterdir():
        if _older(path, settings.job_timeout_s + settings.housekeeping_grace_s, now):
            _rmtree(path)
            removed += 1
    return removed


# ---------------------------------------------------------------- disk and the pass


def disk_usage(settings: Settings) -> list[DiskUsage]:
    floor = settings.disk_min_free_gb * GIB
    seen: set[int] = set()
    usage = []
    for path in (settings.data_dir, settings.models_cache):
        try:
            device = path.stat().st_dev
            du = shutil.disk_usage(path)
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        usage.append(DiskUsage(path=str(path), free_bytes=du.free, total_bytes=du.total, low=du.free < floor))
    return usage


def disk_warnings(disk: list[DiskUsage], settings: Settings) -> list[str]:
    return [f"disk low under {d.path}: {d.free_bytes / GIB:.1f} GiB free, under the "
            f"{settings.disk_min_free_gb:g} GiB floor (EDGEMAXX_DISK_MIN_FREE_GB)" for d in disk if d.low]


def check_disk(redis: Redis, settings: Settings) -> list[DiskUsage]:
    """Refresh this host's disk figures in its report (cheap: before every job)."""
    report = housekeeping.load_report(redis, settings.host) or HousekeepingReport(host=settings.host)
    report.disk = disk_usage(settings)
    report.warnings = [w for w in report.warnings if not w.startswith("disk low")]
    report.warnings += disk_warnings(report.disk, settings)
    report.at = time.time()
    housekeeping.save_report(redis, report)
    return report.disk


def run_housekeeping(redis: Redis, settings: Settings, client: DockerClient | None, *,
                     now: float | None = None, owner: str = "") -> HousekeepingReport | None:
    """One pass; None when another process on this host holds the lock."""
    now = time.time() if now is None else now
    host = settings.host
    owner = owner or f"{host}:{os.getpid()}"
    if not housekeeping.try_lock(redis, host, owner, ttl_s=900):
        return None
    try:
        report = HousekeepingReport(host=host, at=now)
        window = settings.history_days * 86400

        # 1. Redis: runs past the history window go, with their keys; weights' sources stay.
        keep_runs = history.protected_runs(redis)
        report.pruned_runs = history.prune(redis, before=now - window, keep=keep_runs)
        housekeeping.forget_environments_before(redis, now - 2 * window)
        housekeeping.drop_reports_before(redis, now - window)

        # 2. Disk: what no current or previous run uses, then the model cache down to its cap.
        used = in_use(redis)
        report.removed_environments = remove_environments(redis, settings, used.environments, client, now=now)
        remove_clones(settings, used.code_dirs, now=now)
        report.removed_run_dirs = remove_run_dirs(settings, now=now)
        cap = int(settings.models_cache_max_gb * GIB)
        report.evicted_models, report.models_bytes = evict_models(
            settings.models_cache, cap, used.models, grace_s=settings.housekeeping_grace_s, now=now)
        report.models_cap_bytes = cap
        if report.models_bytes > cap:
            report.warnings.append(f"the model cache holds {report.models_bytes / GIB:.1f} GiB, over its "
                                   f"{settings.models_cache_max_gb:g} GiB cap: the current run needs it")
        report.disk = disk_usage(settings)
        report.warnings += disk_warnings(report.disk, settings)
        housekeeping.save_report(redis, report)
        if report.pruned_runs or report.removed_environments or report.evicted_models or report.warnings:
            log.info("housekeeping: pruned %d run(s), removed %d environment(s), evicted %d model(s); %s",
                     len(report.pruned_runs), len(report.removed_environments), len(report.evicted_models),
                     "; ".join(report.warnings) or "disk ok")
        return report
    finally:
        housekeeping.unlock(redis, host, owner)
