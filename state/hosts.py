"""The validator's hosts as Redis knows them: their names, each host's prepared baseline, and
the lock that keeps recovering lost hosts to one process at a time."""

from __future__ import annotations

from redis import Redis

from edgemaxx.models import PreparedSubmission
from state import keys
from state.runs import as_text


def note_host(redis: Redis, host: str) -> None:
    if host:
        redis.sadd(keys.HOSTS, host)


def known_hosts(redis: Redis) -> list[str]:
    """Every host a worker or builder ever ran on (their queues may still hold jobs)."""
    return sorted(as_text(h) for h in redis.smembers(keys.HOSTS))


def save_baseline_prepared(redis: Redis, run_id: str, prepared: PreparedSubmission) -> None:
    """The baseline as prepared on its host (each host that benchmarks needs its own)."""
    redis.hset(keys.baseline_prepared_on(run_id), prepared.host or "", prepared.model_dump_json())


def load_baseline_prepared(redis: Redis, run_id: str, host: str) -> PreparedSubmission | None:
    raw = redis.hget(keys.baseline_prepared_on(run_id), host)
    return PreparedSubmission.model_validate_json(raw) if raw else None


def baselines_prepared(redis: Redis, run_id: str) -> list[PreparedSubmission]:
    return [PreparedSubmission.model_validate_json(raw) for raw in redis.hvals(keys.baseline_prepared_on(run_id))]


def try_recovery_lock(redis: Redis, owner: str, ttl_s: int) -> bool:
    return bool(redis.set(keys.RECOVERY_LOCK, owner, nx=True, ex=max(1, ttl_s)))
