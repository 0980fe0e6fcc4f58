"""Runs, submission records and results in Redis. Results are written once (HSETNX)."""

from __future__ import annotations

import time

from redis import Redis

from edgemaxx import keys
from edgemaxx.models import RunResult
from edgemaxx.records import ContestRun, SubmissionRecord, WorkerStatus


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def save_run(redis: Redis, run: ContestRun) -> None:
    redis.set(keys.run(run.id), run.model_dump_json())


def load_run(redis: Redis, run_id: str) -> ContestRun | None:
    raw = redis.get(keys.run(run_id))
    return ContestRun.model_validate_json(raw) if raw else None


def current_run(redis: Redis, contest_id: str) -> ContestRun | None:
    run_id = redis.get(keys.current_run(contest_id))
    return load_run(redis, as_text(run_id)) if run_id else None


def save_record(redis: Redis, run_id: str, record: SubmissionRecord) -> None:
    record.updated_at = time.time()
    with redis.pipeline() as pipe:
        pipe.hset(keys.submissions(run_id), record.hotkey, record.model_dump_json())
        pipe.zadd(keys.hotkey_runs(record.hotkey), {run_id: time.time()}, nx=True)
        pipe.execute()


def load_record(redis: Redis, run_id: str, hotkey: str) -> SubmissionRecord | None:
    final = redis.hget(keys.results(run_id), hotkey)
    if final:
        return SubmissionRecord.model_validate_json(final)
    raw = redis.hget(keys.submissions(run_id), hotkey)
    return SubmissionRecord.model_validate_json(raw) if raw else None


def _raw_records(redis: Redis, run_id: str) -> list[bytes | str]:
    """Each submission's JSON: its landed result where there is one, else its live record."""
    live = redis.hgetall(keys.submissions(run_id))
    final = redis.hgetall(keys.results(run_id))
    return list({**live, **final}.values())


def records(redis: Redis, run_id: str) -> list[SubmissionRecord]:
    return [SubmissionRecord.model_validate_json(v) for v in _raw_records(redis, run_id)]


def state_counts(redis: Redis, run_id: str) -> dict[str, int]:
    """How many submissions are in each state, without validating every record."""
    import json
    from collections import Counter

    return dict(Counter(json.loads(raw)["state"] for raw in _raw_records(redis, run_id)))


def land_result(redis: Redis, run_id: str, record: SubmissionRecord) -> bool:
    """Write the final record once; False when a result had already landed (a retried job)."""
    record.updated_at = time.time()
    if not redis.hsetnx(keys.results(run_id), record.hotkey, record.model_dump_json()):
        return False
    with redis.pipeline() as pipe:
        pipe.hset(keys.submissions(run_id), record.hotkey, record.model_dump_json())
        pipe.rpush(keys.landings(run_id), record.hotkey)
        pipe.hincrby(keys.COUNTERS, f"jobs_{record.state.value}", 1)
        pipe.execute()
    return True


def has_result(redis: Redis, run_id: str, hotkey: str) -> bool:
    return bool(redis.hexists(keys.results(run_id), hotkey))


def save_outputs(redis: Redis, run_id: str, name: str, outputs: list[bytes | None]) -> None:
    key = keys.outputs(run_id, name)
    with redis.pipeline() as pipe:
        pipe.delete(key)
        for index, data in enumerate(outputs):
            if data is not None:
                pipe.hset(key, str(index), data)
        pipe.execute()


def load_outputs(redis: Redis, run_id: str, name: str, count: int) -> list[bytes | None]:
    raw = redis.hgetall(keys.outputs(run_id, name))
    stored = {as_text(k): v if isinstance(v, bytes) else v.encode() for k, v in raw.items()}
    return [stored.get(str(i)) for i in range(count)]


def save_baseline(redis: Redis, run_id: str, worker: str, result: RunResult) -> None:
    save_outputs(redis, run_id, f"baseline@{worker}", result.outputs)
    redis.set(keys.baseline(run_id, worker), result.model_dump_json())


def load_baseline(redis: Redis, run_id: str, worker: str, count: int) -> RunResult | None:
    raw = redis.get(keys.baseline(run_id, worker))
    if not raw:
        return None
    result = RunResult.model_validate_json(raw)
    result.outputs = load_outputs(redis, run_id, f"baseline@{worker}", count)
    return result


def baselines(redis: Redis, run_id: str) -> dict[str, RunResult]:
    found: dict[str, RunResult] = {}
    for key in redis.scan_iter(match=keys.baseline(run_id, "*")):
        worker = as_text(key).rsplit(":", 1)[-1]
        raw = redis.get(key)
        if raw:
            found[worker] = RunResult.model_validate_json(raw)
    return found


def publish_worker(redis: Redis, status: WorkerStatus, ttl_s: int) -> None:
    status.heartbeat = time.time()
    redis.hset(keys.WORKERS, status.name, status.model_dump_json())
    refresh_alive(redis, status.name, ttl_s)


def refresh_alive(redis: Redis, name: str, ttl_s: int) -> None:
    redis.set(f"{keys.WORKERS}:alive:{name}", "1", ex=ttl_s)


def workers(redis: Redis) -> list[tuple[WorkerStatus, bool]]:
    """Every worker ever seen, with whether its heartbeat is fresh."""
    entries = sorted(redis.hgetall(keys.WORKERS).items())
    busy = {as_text(k): float(v) for k, v in redis.hgetall(keys.WORKER_BUSY).items()}
    with redis.pipeline(transaction=False) as pipe:
        for name, _ in entries:
            pipe.exists(f"{keys.WORKERS}:alive:{as_text(name)}")
        alive = pipe.execute()
    out = []
    for (name, raw), is_alive in zip(entries, alive, strict=True):
        status = WorkerStatus.model_validate_json(raw)
        status.busy_seconds = busy.get(as_text(name), 0.0)
        out.append((status, bool(is_alive)))
    return out


def bump(redis: Redis, counter: str, by: float = 1) -> None:
    redis.hincrbyfloat(keys.COUNTERS, counter, by)


def record_duration(redis: Redis, seconds: float) -> None:
    with redis.pipeline() as pipe:
        pipe.lpush(keys.DURATIONS, f"{seconds:.3f}")
        pipe.ltrim(keys.DURATIONS, 0, 999)
        pipe.execute()
