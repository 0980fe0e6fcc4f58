"""Run history: every contest's runs by start time, the weights set from each, and pruning.

A run is indexed when it starts and stays listed until it is pruned, `history_days` after it
ended, with every per-run key (records, results, outputs, baselines, order, end, weights sets)
and its entries in the hotkey → runs sets. The run weights come from is never pruned.
"""

from __future__ import annotations

from collections.abc import Iterator

from redis import Redis

from state import keys
from state.records import ContestRun, RunState, WeightsSet
from state.runs import as_text, changed, current_run, load_run

WEIGHTS_SETS_KEPT = 100  # per run: one per weights interval (a tempo, ~72 min) is ~20 a day


def index_run(redis: Redis, run: ContestRun) -> None:
    with redis.pipeline() as pipe:
        pipe.zadd(keys.contest_runs(run.contest), {run.id: run.started_at})
        pipe.zadd(keys.RUNS, {run.id: run.started_at})
        changed(pipe)
        pipe.execute()


def run_ids(redis: Redis, contest_id: str | None, offset: int = 0, limit: int = 20) -> tuple[list[str], int]:
    """A page of run ids, newest first, with the total count."""
    key = keys.contest_runs(contest_id) if contest_id else keys.RUNS
    with redis.pipeline() as pipe:
        pipe.zrevrange(key, offset, offset + limit - 1)
        pipe.zcard(key)
        ids, total = pipe.execute()
    return [as_text(x) for x in ids], int(total)


def ended_runs(redis: Redis, contest_id: str, state: RunState | None = None) -> Iterator[ContestRun]:
    """The contest's ended runs (of one state, if given), newest first."""
    batch = 20
    offset = 0
    while True:
        ids = [as_text(x) for x in redis.zrevrange(keys.contest_runs(contest_id), offset, offset + batch - 1)]
        if not ids:
            return
        for run_id in ids:
            run = load_run(redis, run_id)
            if run is not None and run.end is not None and (state is None or run.end.state is state):
                yield run
        offset += batch


def last_finished(redis: Redis, contest_id: str) -> ContestRun | None:
    """The contest's newest finished run (failed runs never count)."""
    return next(ended_runs(redis, contest_id, RunState.FINISHED), None)


def weights_source(redis: Redis, contest_id: str) -> ContestRun | None:
    """The run weights are set from: the newest finished run that has anyone to weight."""
    return next((r for r in ended_runs(redis, contest_id, RunState.FINISHED) if r.end and r.end.weights), None)


def recent_runs(redis: Redis, per_contest: int = 2) -> dict[str, list[ContestRun]]:
    """Each contest's newest runs (by start), newest first: contest id → runs."""
    found: dict[str, list[ContestRun]] = {}
    for raw in redis.zrevrange(keys.RUNS, 0, -1):
        run = load_run(redis, as_text(raw))
        if run is not None and len(found.setdefault(run.contest, [])) < per_contest:
            found[run.contest].append(run)
    return found


def protected_runs(redis: Redis) -> set[str]:
    """Runs pruning never deletes, however old: each contest's current run, its last finished
    run and the run its weights come from (else a quiet contest would stop setting weights)."""
    keep: set[str] = set()
    for contest_id in recent_runs(redis, per_contest=1):
        current = current_run(redis, contest_id)
        keep |= {r.id for r in (current, last_finished(redis, contest_id), weights_source(redis, contest_id)) if r}
    return keep


def record_weights_set(redis: Redis, run_id: str, entry: WeightsSet) -> None:
    with redis.pipeline() as pipe:
        pipe.rpush(keys.weights_sets(run_id), entry.model_dump_json())
        pipe.ltrim(keys.weights_sets(run_id), -WEIGHTS_SETS_KEPT, -1)
        changed(pipe)
        pipe.execute()


def weights_sets(redis: Redis, run_id: str) -> list[WeightsSet]:
    return [WeightsSet.model_validate_json(raw) for raw in redis.lrange(keys.weights_sets(run_id), 0, -1)]


def delete_run(redis: Redis, run: ContestRun) -> int:
    """Every key of the run, its index entries and its hotkeys' references; returns keys deleted."""
    hotkeys = {as_text(h) for h in redis.hkeys(keys.submissions(run.id))}
    hotkeys |= {as_text(h) for h in redis.hkeys(keys.results(run.id))}
    doomed = [keys.run(run.id), *redis.scan_iter(match=keys.run_keys(run.id), count=500)]
    with redis.pipeline() as pipe:
        pipe.delete(*doomed)
        pipe.zrem(keys.contest_runs(run.contest), run.id)
        pipe.zrem(keys.RUNS, run.id)
        for hotkey in hotkeys:
            pipe.zrem(keys.hotkey_runs(hotkey), run.id)
        changed(pipe)
        deleted = pipe.execute()[0]
    return int(deleted)


def prune(redis: Redis, *, before: float, keep: set[str]) -> list[str]:
    """Delete runs that ended before `before` (and runs that never ended, started before it),
    except those in `keep`; then drop hotkey → run references whose run is gone."""
    pruned = []
    for raw in redis.zrangebyscore(keys.RUNS, "-inf", before):
        run_id = as_text(raw)
        if run_id in keep:
            continue
        run = load_run(redis, run_id)
        if run is None:
            redis.zrem(keys.RUNS, run_id)
            continue
        ended_at = run.end.at if run.end else run.started_at
        if ended_at < before:
            delete_run(redis, run)
            pruned.append(run_id)
    _trim_hotkey_runs(redis)
    return pruned


def _trim_hotkey_runs(redis: Redis) -> None:
    """A hotkey dropped from a run (deregistered) kept the run in its set: remove dangling ids."""
    for key in redis.scan_iter(match=keys.HOTKEY_RUNS_PATTERN, count=500):
        members = [as_text(m) for m in redis.zrange(key, 0, -1)]
        if not members:
            continue
        with redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.exists(keys.run(member))
            alive = pipe.execute()
        gone = [m for m, exists in zip(members, alive, strict=True) if not exists]
        if gone:
            redis.zrem(key, *gone)
