"""A submission measured while its worker's baseline moved is measured again, with real processes.

A real redis-server, a builder and a GPU worker (process sandbox, on this CPU host). The contest's
noise margin is 0 and the baseline is re-measured after every submission, so every
re-measurement of the baseline disagrees with the one before (timings never repeat to the
nanosecond) and puts the submission measured between them in doubt: each submission is measured
exactly once more, and the run ends only after that.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest
from redis import Redis

from edgemaxx.contest import load_contest
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import runs
from state.records import Remeasure, RunState, SubmissionState
from tests.conftest import TEST_DATA, fixture_path
from tests.contests import cpu_contest
from tests.service import RedisServer, Service, wait_for
from worker import queues

ENTRANTS = [("hk-faster", "flux-faster"), ("hk-marginal", "flux-marginal")]


@pytest.fixture(scope="module")
def ended(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remeasure")
    contest_path = cpu_contest(tmp / "contest.toml", "remeasure-cpu", noise_margin=0.0, load_s=300)
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_BACKEND": "process", "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
           "EDGEMAXX_BASELINE_EVERY": "1", "EDGEMAXX_WORKER_HEARTBEAT_TTL_S": "6", "PYTHONUNBUFFERED": "1"}
    worker = f"rm-worker-{uuid.uuid4().hex[:6]}"
    parts = [Service(["builder", "--name", f"rm-builder-{uuid.uuid4().hex[:6]}"], env, tmp / "builder.log").start(),
             Service(["worker", "--name", worker, "--contest", str(contest_path)], env, tmp / "worker.log").start()]
    redis = Redis.from_url(redis_server.url)
    try:
        settings = Settings(redis_url=redis_server.url, data_dir=TEST_DATA)
        run = queues.start_run(redis, settings, load_contest(str(contest_path)), f"remeasure-{uuid.uuid4().hex}")
        for block, (hotkey, fixture) in enumerate(ENTRANTS, start=1):
            queues.submit(redis, settings, run, hotkey, SubmissionSource(kind=SourceKind.LOCAL,
                                                                        path=fixture_path(fixture)),
                          uid=block, block=block)

        def over():
            fresh = runs.load_run(redis, run.id)
            return fresh if fresh and fresh.end else None

        finished = wait_for(over, 900, "the run to end", parts)
        yield {"run": finished, "records": {r.hotkey: r for r in runs.records(redis, run.id)},
               "pool": runs.baseline_measurements(redis, run.id, worker), "worker": worker,
               "log": parts[1].log.read_text()}
    finally:
        for part in parts:
            part.stop()
        redis_server.kill()


def test_every_submission_in_doubt_is_measured_once_more_before_the_run_ends(ended):
    run, records, pool = ended["run"], ended["records"], ended["pool"]
    assert run.end.state is RunState.FINISHED and run.end.reason == "every submission is final"
    # A baseline before each submission, and one before the first re-measurement.
    assert len(pool) == 3 and [m.after_submissions for m in pool] == [0, 1, 2]
    for hotkey, _ in ENTRANTS:
        record = records[hotkey]
        assert record.state is SubmissionState.SCORED, record.reason
        assert record.remeasure is Remeasure.DONE, (record.remeasure, record.remeasure_note)
        assert "noise margin): measured again; median time" in record.remeasure_note
        assert record.measured_after == 2, "re-measured after the third baseline measurement"
        assert record.metrics is not None and len(record.metrics.generation_times_s) == 3
        assert len(record.similarities) == 3 and record.score is not None
    assert len(re.findall(r"remeasure hk-\S+ run=\S+ worker=\S+ outcome=scored", ended["log"])) == len(ENTRANTS), (
        ended["log"][-3000:])


def test_the_re_measured_result_is_scored_against_the_pooled_baseline(ended):
    """At the run's end every score is final against the median of the three measurements."""
    from scoring.score import score
    from worker.reference import pooled

    run, records, pool = ended["run"], ended["records"], ended["pool"]
    reference = pooled(pool)
    for hotkey, _ in ENTRANTS:
        record = records[hotkey]
        again = score(reference.metrics, record.metrics, record.similarity_mean, record.similarity_min, run.rules())
        assert record.score == pytest.approx(again.score) and record.baseline_measurements == 3
    assert set(run.end.hotkeys.values()) <= {h for h, _ in ENTRANTS}
