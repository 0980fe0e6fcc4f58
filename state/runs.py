"""Contest runs, submission records, results, outputs, baselines and benchmark order in Redis.

Results are written once (HSETNX), and so is a run's end (SET NX); a record's live state and its
landed result are merged on read, and so are a run and its end. Every write bumps `keys.VERSION`,
so readers that keep a rendered page (the API) know when it is stale.

Output images stay while their run runs (copies are found by comparing them); at its end only the
baseline's and the best `OUTPUTS_KEPT` scored submissions' stay, for the history window (see
`retire_outputs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from edgemaxx.models import RunResult
from state import keys
from state.records import BaselineMeasurement, ContestRun, RunEnd, SubmissionRecord

# Scored submissions whose output images outlive their run's end, best first (with the baselines
# they were measured against). 12 JPEGs of 1024² at ~150-250 KB are 2-3 MB a submission: a
# flux-4090 run keeps ~15-20 MB, 14 days of history ~200-300 MB (README, "Memory").
OUTPUTS_KEPT = 5


def as_text(value: object) -> str:
    """Redis answers bytes; keys and small values are text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def changed(redis: Redis | Pipeline) -> None:
    """Run state changed: whoever keeps a rendered copy of it renders it again."""
    redis.incr(keys.VERSION)


def version(redis: Redis) -> int:
    return int(redis.get(keys.VERSION) or 0)


def save_run(redis: Redis, run: ContestRun) -> None:
    with redis.pipeline() as pipe:
        pipe.set(keys.run(run.id), run.model_dump_json())
        changed(pipe)
        pipe.execute()


def load_run(redis: Redis, run_id: str) -> ContestRun | None:
    raw, end = redis.mget([keys.run(run_id), keys.run_end(run_id)])
    if not raw:
        return None
    run = ContestRun.model_validate_json(raw)
    run.end = RunEnd.model_validate_json(end) if end else None
    return run


def end_run(redis: Redis, run_id: str, end: RunEnd) -> bool:
    """Record how the run ended, once; False when it had already ended (the first end stands)."""
    ended = bool(redis.set(keys.run_end(run_id), end.model_dump_json(), nx=True))
    if ended:
        changed(redis)
    return ended


def note_baseline_failure(redis: Redis, run_id: str, reason: str) -> int:
    """Count one failed attempt at measuring the run's baseline; returns how many so far."""
    return int(redis.rpush(keys.baseline_failures(run_id), reason))


def current_run(redis: Redis, contest_id: str) -> ContestRun | None:
    run_id = redis.get(keys.current_run(contest_id))
    return load_run(redis, as_text(run_id)) if run_id else None


def set_current(redis: Redis, contest_id: str, run_id: str) -> None:
    with redis.pipeline() as pipe:
        pipe.set(keys.current_run(contest_id), run_id)
        changed(pipe)
        pipe.execute()


def save_record(redis: Redis, run_id: str, record: SubmissionRecord) -> None:
    record.updated_at = time.time()
    with redis.pipeline() as pipe:
        pipe.hset(keys.submissions(run_id), record.hotkey, record.model_dump_json())
        pipe.zadd(keys.hotkey_runs(record.hotkey), {run_id: time.time()}, nx=True)
        changed(pipe)
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
        changed(pipe)
        pipe.execute()
    return True


def has_result(redis: Redis, run_id: str, hotkey: str) -> bool:
    return bool(redis.hexists(keys.results(run_id), hotkey))


def replace_record(redis: Redis, run_id: str, record: SubmissionRecord) -> None:
    """New code from the same hotkey: the new record replaces the old one and any landed result."""
    redis.hdel(keys.results(run_id), record.hotkey)
    save_record(redis, run_id, record)


def drop_submission(redis: Redis, run_id: str, hotkey: str) -> None:
    """Remove a hotkey from a run entirely (it deregistered)."""
    with redis.pipeline() as pipe:
        pipe.hdel(keys.submissions(run_id), hotkey)
        pipe.hdel(keys.results(run_id), hotkey)
        pipe.zrem(keys.hotkey_runs(hotkey), run_id)
        pipe.delete(keys.outputs(run_id, hotkey))
        changed(pipe)
        pipe.execute()


def latest_record(redis: Redis, hotkey: str) -> tuple[ContestRun, SubmissionRecord] | None:
    """The newest run this hotkey appears in, with its record there."""
    for raw in redis.zrevrange(keys.hotkey_runs(hotkey), 0, 0):
        run = load_run(redis, as_text(raw))
        record = load_record(redis, run.id, hotkey) if run else None
        if run and record:
            return run, record
    return None


def _put_outputs(pipe: Pipeline, run_id: str, name: str, outputs: list[bytes | None]) -> None:
    key = keys.outputs(run_id, name)
    pipe.delete(key)
    for index, data in enumerate(outputs):
        if data is not None:
            pipe.hset(key, str(index), data)


def save_outputs(redis: Redis, run_id: str, name: str, outputs: list[bytes | None]) -> None:
    with redis.pipeline() as pipe:
        _put_outputs(pipe, run_id, name, outputs)
        changed(pipe)
        pipe.execute()


def delete_outputs(redis: Redis, run_id: str, names: list[str]) -> None:
    """Drop output images (e.g. of a result that landed after its run ended)."""
    if names:
        with redis.pipeline() as pipe:
            pipe.delete(*(keys.outputs(run_id, name) for name in names))
            changed(pipe)
            pipe.execute()


def kept_outputs(records: list[SubmissionRecord], baselines: list[str], keep: int = OUTPUTS_KEPT) -> list[str]:
    """The output names an ended run keeps: its best `keep` scored submissions (score, then the
    earliest commitment) and the baselines they were measured against (at least one baseline)."""
    scored = sorted((r for r in records if r.score is not None),
                    key=lambda r: (-(r.score or 0.0), r.block if r.block is not None else 1 << 62, r.hotkey))
    best = scored[:keep]
    workers = {f"baseline@{r.worker}" for r in best if r.worker}
    kept_baselines = [name for name in sorted(baselines) if name in workers] or sorted(baselines)[:1]
    return [*kept_baselines, *(r.hotkey for r in best)]


def retire_outputs(redis: Redis, run_id: str) -> list[str]:
    """At a run's end: drop every output image but those `kept_outputs` names (a run's weights are
    frozen by then; what stays is what the dashboard shows for the history window). Returns what
    was kept."""
    names = output_names(redis, run_id)
    baselines = [n for n in names if n.startswith("baseline@")]
    kept = kept_outputs(records(redis, run_id), baselines)
    delete_outputs(redis, run_id, [n for n in names if n not in kept])
    return [n for n in kept if n in names]


def output_names(redis: Redis, run_id: str) -> list[str]:
    """Whose output images the run holds: hotkeys, and `baseline@worker` for baselines."""
    prefix = keys.outputs(run_id, "")
    return sorted(as_text(k)[len(prefix):] for k in redis.scan_iter(match=keys.outputs_pattern(run_id), count=500))


def output_indices(redis: Redis, run_id: str, name: str) -> list[int]:
    """The input indices whose output image `name` has stored."""
    return sorted(int(as_text(k)) for k in redis.hkeys(keys.outputs(run_id, name)))


def load_outputs(redis: Redis, run_id: str, name: str, count: int) -> list[bytes | None]:
    raw = redis.hgetall(keys.outputs(run_id, name))
    stored = {as_text(k): v if isinstance(v, bytes) else v.encode() for k, v in raw.items()}
    return [stored.get(str(i)) for i in range(count)]


def load_output(redis: Redis, run_id: str, name: str, index: int) -> bytes | None:
    """One output image (None: never stored, or no longer kept)."""
    data = redis.hget(keys.outputs(run_id, name), str(index))
    return data if isinstance(data, bytes) or data is None else data.encode()


def save_baseline(redis: Redis, run_id: str, worker: str, result: RunResult, *, outputs: bool = True) -> None:
    """`worker`'s reference for the run (its pooled baseline); the outputs are stored once, with the first."""
    if outputs:
        save_outputs(redis, run_id, f"baseline@{worker}", result.outputs)
    with redis.pipeline() as pipe:
        pipe.hset(keys.baselines(run_id), worker, result.model_dump_json())
        changed(pipe)
        pipe.execute()


def add_baseline_measurement(redis: Redis, run_id: str, worker: str, measurement: BaselineMeasurement) -> int:
    """Append to `worker`'s pool of baseline measurements; returns how many it holds."""
    return int(redis.rpush(keys.baseline_pool(run_id, worker), measurement.model_dump_json()))


def baseline_measurements(redis: Redis, run_id: str, worker: str) -> list[BaselineMeasurement]:
    return [BaselineMeasurement.model_validate_json(raw)
            for raw in redis.lrange(keys.baseline_pool(run_id, worker), 0, -1)]


def change_result(redis: Redis, run_id: str, hotkey: str, change: Callable[[SubmissionRecord], bool], *,
                  outputs: list[bytes | None] | None = None, while_running: bool = True) -> SubmissionRecord | None:
    """Rewrite a landed result atomically (a re-measurement): `change` edits the record as stored
    now, or returns False to leave it. Nothing is written when the result is gone (a resubmission
    replaced it) or, with `while_running`, once the run has ended; with `outputs`, the submission's
    images are replaced in the same transaction. Returns the record written, or None."""
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(keys.results(run_id), keys.run_end(run_id))
                raw = pipe.hget(keys.results(run_id), hotkey)
                if not raw or (while_running and pipe.exists(keys.run_end(run_id))):
                    pipe.unwatch()
                    return None
                record = SubmissionRecord.model_validate_json(raw)
                if not change(record):
                    pipe.unwatch()
                    return None
                record.updated_at = time.time()
                body = record.model_dump_json()
                pipe.multi()
                pipe.hset(keys.results(run_id), hotkey, body)
                pipe.hset(keys.submissions(run_id), hotkey, body)
                if outputs is not None:
                    _put_outputs(pipe, run_id, hotkey, outputs)
                changed(pipe)
                pipe.execute()
                return record
            except WatchError:  # another write to the run's results meanwhile: read them again
                continue


def update_result(redis: Redis, run_id: str, record: SubmissionRecord) -> None:
    """Rewrite a landed result as the caller has it: the run's end does this (final scores against
    the pooled baseline); a change that must not lose a concurrent one uses change_result."""
    record.updated_at = time.time()
    with redis.pipeline() as pipe:
        pipe.hset(keys.results(run_id), record.hotkey, record.model_dump_json())
        pipe.hset(keys.submissions(run_id), record.hotkey, record.model_dump_json())
        changed(pipe)
        pipe.execute()


def load_baseline(redis: Redis, run_id: str, worker: str, count: int) -> RunResult | None:
    raw = redis.hget(keys.baselines(run_id), worker)
    if not raw:
        return None
    result = RunResult.model_validate_json(raw)
    result.outputs = load_outputs(redis, run_id, f"baseline@{worker}", count)
    return result


def push_order(redis: Redis, run_id: str, entry: str) -> None:
    """Append to the order submissions were benchmarked in (`baseline@worker` for baselines)."""
    redis.rpush(keys.order(run_id), entry)


def order(redis: Redis, run_id: str) -> list[str]:
    return [as_text(x) for x in redis.lrange(keys.order(run_id), 0, -1)]


def landings(redis: Redis, run_id: str) -> list[str]:
    """Hotkeys in the order their results landed: one entry per landing."""
    return [as_text(x) for x in redis.lrange(keys.landings(run_id), 0, -1)]


def baselines(redis: Redis, run_id: str) -> dict[str, RunResult]:
    """Each worker's baseline measurement for the run (metrics only; outputs stay in Redis)."""
    return {as_text(worker): RunResult.model_validate_json(raw)
            for worker, raw in redis.hgetall(keys.baselines(run_id)).items()}


