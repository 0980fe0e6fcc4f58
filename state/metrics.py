"""Service counters and recent benchmark durations, for /metrics."""

from __future__ import annotations

from redis import Redis

from state import keys
from state.runs import as_text


def bump(redis: Redis, counter: str, by: float = 1) -> None:
    redis.hincrbyfloat(keys.COUNTERS, counter, by)


def record_duration(redis: Redis, seconds: float) -> None:
    with redis.pipeline() as pipe:
        pipe.lpush(keys.DURATIONS, f"{seconds:.3f}")
        pipe.ltrim(keys.DURATIONS, 0, 999)
        pipe.execute()


def counters(redis: Redis) -> dict[str, float]:
    return {as_text(k): float(v) for k, v in redis.hgetall(keys.COUNTERS).items()}


def durations(redis: Redis, newest: int = 1000) -> list[float]:
    """Recent benchmark durations, newest first."""
    return [float(x) for x in redis.lrange(keys.DURATIONS, 0, newest - 1)]
