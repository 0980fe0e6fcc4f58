"""The shortcuts a miner would take, run through the real service: copies, ties, a precomputed
prompt table. Real redis-server, API, builder and worker processes, process sandbox."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from tests.conftest import TEST_DATA, fixture_path
from tests.service import RedisServer, Service, free_port, http_ready, wait_for

TOKEN = "gaming-operator-token"
CONTEST = "demo-cpu"
# Committed in this order (block = position): the original, its copies, honest others.
ENTRANTS = [
    ("hk-faster", "flux-faster"),
    ("hk-renamed", "faster-renamed"),
    ("hk-perturbed", "faster-perturbed"),
    ("hk-three-steps", "flux-three-steps"),
    ("hk-marginal", "flux-marginal"),
    ("hk-cache", "embedding-cache"),
]


@pytest.fixture(scope="module")
def board(tmp_path_factory, base_image):
    tmp = tmp_path_factory.mktemp("gaming")
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_ADMIN_TOKEN": TOKEN,
           "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1", "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_BACKEND": "process", "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
           "EDGEMAXX_API_PORT": str(port), "PYTHONUNBUFFERED": "1",
           # The median of three baseline runs: one slow run must not make every entrant look fast;
           # then one more after every two submissions (the pooled reference, worker/reference.py).
           "EDGEMAXX_BASELINE_RUNS": "3", "EDGEMAXX_BASELINE_EVERY": "2"}
    suffix = uuid.uuid4().hex[:6]
    parts = [Service(["api"], env, tmp / "api.log").start(),
             Service(["builder", "--name", f"gaming-builder-{suffix}"], env, tmp / "builder.log").start(),
             Service(["worker", "--name", f"gaming-worker-{suffix}", "--contest", CONTEST], env,
                     tmp / "worker.log").start()]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ready(f"{base}/v1/status"), 60, "the API", parts)
        for block, (hotkey, fixture) in enumerate(ENTRANTS, start=1):
            response = httpx.post(f"{base}/v1/submissions", headers={"Authorization": f"Bearer {TOKEN}"},
                                  json={"hotkey": hotkey, "repository": str(fixture_path(fixture)),
                                        "contest": CONTEST, "uid": block, "block": block}, timeout=10)
            assert response.status_code == 202, response.text

        def finished() -> dict | None:
            contest = httpx.get(f"{base}/v1/contests/{CONTEST}", timeout=10).json()
            rows = {row["hotkey"]: row for row in contest.get("leaderboard", [])}
            done = len(rows) == len(ENTRANTS) and all(r["state"] in ("scored", "invalid") for r in rows.values())
            return rows if done else None

        rows = wait_for(finished, 1800, "every entrant to be final", parts)
        run_id = httpx.get(f"{base}/v1/contests/{CONTEST}", timeout=10).json()["run_id"]

        def ended() -> dict | None:
            run = httpx.get(f"{base}/v1/runs/{run_id}", timeout=10).json()
            return run if run["finished_at"] is not None else None

        # Re-measurements (the baseline moved past the margin around a submission) may still run.
        run = wait_for(ended, 900, "the run to end", parts)
        records = {hotkey: httpx.get(f"{base}/v1/submissions/{hotkey}", timeout=10).json() for hotkey, _ in ENTRANTS}
        rows = {row["hotkey"]: row for row in run["leaderboard"]}
        yield {"rows": rows, "logs": {h: r["log_tail"] for h, r in records.items()}, "records": records,
               "baselines": run["baselines"], "rules": run["rules"]}
    finally:
        for part in parts:
            part.stop()
        redis_server.kill()


def _table(rows: dict) -> str:
    return "\n".join(f"{hotkey}: {r['state']} score={r['score']} weight={r['weight']} {r['flagged']}"
                     for hotkey, r in rows.items())


def test_the_original_earns_and_its_copies_do_not(board):
    rows = board["rows"]
    faster = rows["hk-faster"]
    assert faster["state"] == "scored" and faster["weight"] > 0 and faster["flagged"] == "", _table(rows)
    for copy in ("hk-renamed", "hk-perturbed"):
        row = rows[copy]
        assert row["state"] == "scored", _table(rows)
        assert row["weight"] == 0.0, _table(rows)
        evidence = row["copy_evidence"]
        assert evidence["earlier"] == "hk-faster" and "code" in evidence["kinds"], row
        assert row["flagged"].startswith("copy of hk-faster: code ")
    # The renamed re-upload is the same code up to names, comments and formatting.
    assert rows["hk-renamed"]["copy_evidence"]["code_distance"] == 0
    assert rows["hk-perturbed"]["copy_evidence"]["code_distance"] > 0


def test_honest_different_variants_are_not_flagged(board):
    rows = board["rows"]
    assert rows["hk-three-steps"]["state"] == "scored"
    assert rows["hk-three-steps"]["copy_evidence"] is None


def test_a_change_inside_the_margin_earns_like_a_tie(board):
    marginal = board["rows"]["hk-marginal"]
    assert marginal["state"] == "scored" and marginal["copy_evidence"] is None
    # Its generation time is the baseline's up to noise: a tie with the baseline, which earns nothing.
    assert marginal["weight"] == 0.0
    assert marginal["score"] == 1.0 or marginal["flagged"].startswith("tied with")


def test_a_table_of_the_old_public_corpus_never_hits(board):
    log = board["logs"]["hk-cache"]
    assert "cached the embeddings of 1600 prompts" in log
    assert "embedding cache: 0 hits" in log and " 1 hits" not in log, log[-2000:]


def test_every_score_is_final_against_the_pooled_baseline(board):
    """The worker measured the baseline 3 times, then once more after every 2 submissions; at the
    run's end each scored submission was scored again against the median of all of them."""
    from edgemaxx.contest import Contest
    from edgemaxx.models import Metrics
    from scoring.score import score

    (baseline,) = board["baselines"]
    assert len(baseline["measurements"]) >= 4, baseline["measurements"]
    reference = Metrics.model_validate(baseline["metrics"])
    measured = sorted(baseline["measurements"])
    assert reference.median_generation_time_s == measured[(len(measured) - 1) // 2]
    contest = Contest.model_validate(board["rules"])
    for hotkey, record in board["records"].items():
        if record["state"] != "scored":
            continue
        assert record["baseline_measurements"] == len(baseline["measurements"]), hotkey
        expected = score(reference, Metrics.model_validate(record["metrics"]), record["similarity_mean"],
                         record["similarity_min"], contest)
        assert expected.score == record["score"] and expected.terms == record["score_terms"], hotkey
