"""GPU and builder workers as the API sees them: status, heartbeat liveness, busy time."""

from __future__ import annotations

import time

from redis import Redis

from state import keys
from state.records import WorkerStatus
from state.runs import as_text


def publish_worker(redis: Redis, status: WorkerStatus, ttl_s: int) -> None:
    status.heartbeat = time.time()
    redis.hset(keys.WORKERS, status.name, status.model_dump_json())
    if status.host:
        redis.sadd(keys.HOSTS, status.host)
    refresh_alive(redis, status.name, ttl_s)


def refresh_alive(redis: Redis, name: str, ttl_s: int) -> None:
    redis.set(keys.worker_alive(name), "1", ex=ttl_s)


def list_workers(redis: Redis) -> list[tuple[WorkerStatus, bool]]:
    """Every worker ever seen, with whether its heartbeat is fresh."""
    entries = sorted(redis.hgetall(keys.WORKERS).items())
    busy = {as_text(k): float(v) for k, v in redis.hgetall(keys.WORKER_BUSY).items()}
    with redis.pipeline(transaction=False) as pipe:
        for name, _ in entries:
            pipe.exists(keys.worker_alive(as_text(name)))
        alive = pipe.execute()
    out = []
    for (name, raw), is_alive in zip(entries, alive, strict=True):
        status = WorkerStatus.model_validate_json(raw)
        status.busy_seconds = busy.get(as_text(name), 0.0)
        out.append((status, bool(is_alive)))
    return out


def add_busy(redis: Redis, name: str, seconds: float) -> None:
    """Jobs run in a forked work horse: busy time is summed here, not in any one process."""
    redis.hincrbyfloat(keys.WORKER_BUSY, name, seconds)


def reset_busy(redis: Redis, name: str) -> None:
    """Busy time counts from a worker's start."""
    redis.hdel(keys.WORKER_BUSY, name)


def mark_stopped(redis: Redis, name: str) -> None:
    """A worker that stopped on purpose is shown dead at once, not when its heartbeat expires."""
    redis.delete(keys.worker_alive(name))
