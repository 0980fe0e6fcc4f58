"""What housekeeping needs from Redis: environments this validator used, per-host reports, a lock.

Only environments noted here are ever removed: one Docker engine may hold other validators'
sandbox images, and those are not ours to delete.
"""

from __future__ import annotations

import time

from redis import Redis

from state import keys
from state.records import HousekeepingReport
from state.runs import as_text


def note_environments(redis: Redis, environments: list[str], when: float | None = None) -> None:
    """Environments (image tags, venv paths) a submission or baseline was prepared in or ran in."""
    if environments:
        stamp = when if when is not None else time.time()
        redis.zadd(keys.ENVIRONMENTS, dict.fromkeys(environments, stamp))


def known_environments(redis: Redis) -> dict[str, float]:
    """Every environment this validator noted, with when it was last used."""
    entries = redis.zrange(keys.ENVIRONMENTS, 0, -1, withscores=True)
    return {as_text(entry[0]): float(entry[1]) for entry in entries}


def forget_environments(redis: Redis, environments: list[str]) -> None:
    if environments:
        redis.zrem(keys.ENVIRONMENTS, *environments)


def forget_environments_before(redis: Redis, before: float) -> None:
    """Entries nobody used since `before`: every host had housekeeping passes to remove them."""
    redis.zremrangebyscore(keys.ENVIRONMENTS, "-inf", before)


def save_report(redis: Redis, report: HousekeepingReport) -> None:
    redis.hset(keys.HOUSEKEEPING, report.host, report.model_dump_json())


def load_report(redis: Redis, host: str) -> HousekeepingReport | None:
    raw = redis.hget(keys.HOUSEKEEPING, host)
    return HousekeepingReport.model_validate_json(raw) if raw else None


def reports(redis: Redis) -> list[HousekeepingReport]:
    return sorted((HousekeepingReport.model_validate_json(raw) for raw in redis.hvals(keys.HOUSEKEEPING)),
                  key=lambda r: r.host)


def drop_reports_before(redis: Redis, before: float) -> None:
    """Hosts (or containers) that stopped reporting long ago."""
    stale = [r.host for r in reports(redis) if r.at < before]
    if stale:
        redis.hdel(keys.HOUSEKEEPING, *stale)


def try_lock(redis: Redis, host: str, owner: str, ttl_s: int) -> bool:
    """One pass per host at a time (a builder and GPU workers share its disk and Docker engine)."""
    return bool(redis.set(keys.housekeeping_lock(host), owner, nx=True, ex=ttl_s))


def unlock(redis: Redis, host: str, owner: str) -> None:
    key = keys.housekeeping_lock(host)
    if as_text(redis.get(key) or b"") == owner:
        redis.delete(key)
