"""The service end to end: real redis-server, RQ worker processes, the API over HTTP."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from redis import Redis

from state import keys
from tests.conftest import TEST_DATA, fixture_path
from tests.gitserver import HttpsGitServer, commit_tree
from tests.service import RedisServer, Service, free_port, http_ready, wait_for

TOKEN = "test-operator-token"
CONTEST = "demo-cpu"


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    server = HttpsGitServer(tmp_path_factory.mktemp("git"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, base_image, git_server):
    """Redis + API + one builder + one worker (process sandbox: no Docker needed by this module)."""
    tmp = tmp_path_factory.mktemp("service")
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_ADMIN_TOKEN": TOKEN,
           "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1", "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_BACKEND": "process", "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
           "EDGEMAXX_API_PORT": str(port), "EDGEMAXX_WORKER_HEARTBEAT_TTL_S": "6",
           # The check test clones from a loopback https server with its own CA.
           "EDGEMAXX_ALLOW_PRIVATE_HOSTS": "1", "EDGEMAXX_EXTRA_CA_BUNDLE": str(git_server.cert),
           "PYTHONUNBUFFERED": "1"}
    worker_name = f"test-worker-{uuid.uuid4().hex[:6]}"
    parts = {
        "api": Service(["api"], env, tmp / "api.log").start(),
        "builder": Service(["builder", "--name", f"test-builder-{uuid.uuid4().hex[:6]}"], env,
                           tmp / "builder.log").start(),
        "worker": Service(["worker", "--name", worker_name, "--contest", CONTEST], env,
                          tmp / "worker.log").start(),
    }
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ready(f"{base}/v1/status"), 60, "the API", list(parts.values()))
    state = {"base": base, "redis": redis_server, "parts": parts, "env": env, "tmp": tmp,
             "worker_name": worker_name}
    yield state
    for part in parts.values():
        part.stop()
    redis_server.kill()


def _submit(service, hotkey: str, fixture: str, uid: int) -> httpx.Response:
    return httpx.post(f"{service['base']}/v1/submissions",
                      json={"hotkey": hotkey, "repository": str(fixture_path(fixture)),
                            "contest": CONTEST, "uid": uid, "block": uid},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def _record(service, hotkey: str) -> dict | None:
    response = httpx.get(f"{service['base']}/v1/submissions/{hotkey}", timeout=10)
    return response.json() if response.status_code == 200 else None


def _final(service, hotkey: str) -> dict | None:
    record = _record(service, hotkey)
    return record if record and record["state"] in ("scored", "invalid") else None


def test_submission_goes_from_enqueue_to_scored(service):
    parts = list(service["parts"].values())
    accepted = _submit(service, "hk-faster", "flux-faster", 11)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["state"] == "queued"
    assert _submit(service, "hk-garbage", "garbage-output", 12).status_code == 202

    faster = wait_for(lambda: _final(service, "hk-faster"), 600, "hk-faster to be scored", parts)
    assert faster["state"] == "scored", faster
    assert faster["score"] > 1.0, "the faster fixture beats the baseline"
    assert faster["similarity_min"] == pytest.approx(1.0, abs=1e-3)
    assert faster["metrics"]["load_time_s"] > 0 and len(faster["similarities"]) == 6

    garbage = wait_for(lambda: _final(service, "hk-garbage"), 600, "hk-garbage", parts)
    assert garbage["state"] == "invalid"
    assert "do not decode as an image" in garbage["reason"]

    contest = httpx.get(f"{service['base']}/v1/contests/{CONTEST}", timeout=10).json()
    assert contest["seed"].startswith("manual-") and contest["inputs"] == 6
    assert contest["baselines"][0]["worker"] == service["worker_name"]
    board = {row["hotkey"]: row for row in contest["leaderboard"]}
    assert board["hk-faster"]["rank"] == 1 and board["hk-faster"]["weight"] == 1.0
    assert board["hk-garbage"]["rank"] is None and board["hk-garbage"]["reason"]

    # The baseline ran on this worker before any submission.
    redis = Redis.from_url(service["redis"].url)
    order = [x.decode() for x in redis.lrange(keys.order(contest["run_id"]), 0, -1)]
    assert order[0] == f"baseline@{service['worker_name']}"
    assert order.count(f"baseline@{service['worker_name']}") == 1

    status = httpx.get(f"{service['base']}/v1/status", timeout=10).json()
    assert status["redis"] is True and status["healthy"] is True
    worker = next(w for w in status["workers"] if w["name"] == service["worker_name"])
    assert worker["alive"] and worker["kind"] == "gpu"
    assert worker["tier"] == "bwrap", worker  # the process sandbox's tier here (namespaces allowed)
    assert status["contests"][0]["states"].get("scored", 0) >= 1

    page = httpx.get(f"{service['base']}/", timeout=10)
    assert page.status_code == 200 and "/static/leaderboard.js" in page.text and "edgemaxx" in page.text

    metrics = httpx.get(f"{service['base']}/metrics", timeout=10).text
    assert 'edgemaxx_queue_depth{queue="edgemaxx-prepare"}' in metrics
    assert 'edgemaxx_jobs_total{outcome="scored"}' in metrics
    busy = next(line for line in metrics.splitlines()
                if line.startswith(f'edgemaxx_gpu_busy_fraction{{worker="{service["worker_name"]}"}}'))
    assert 0 < float(busy.split()[-1]) <= 1, busy
    assert worker["busy_fraction"] is not None


def test_miner_check_runs_on_a_builder(service, git_server, tmp_path):
    import shutil

    work = tmp_path / "submission"
    shutil.copytree(fixture_path("garbage-output"), work)
    revision = commit_tree(work)
    url = git_server.publish(work, "miner-check")
    response = httpx.post(f"{service['base']}/v1/checks",
                          json={"repository": url, "revision": revision[:7], "contest": "flux-4090"}, timeout=10)
    assert response.status_code == 202, response.text
    check_id = response.json()["id"]

    def done():
        record = httpx.get(f"{service['base']}/v1/checks/{check_id}", timeout=10).json()
        return record if record["state"] in ("done", "error") else None

    record = wait_for(done, 300, "the check", list(service["parts"].values()))
    assert record["state"] == "done" and record["ok"] is True, record
    names = [c["name"] for c in record["report"]["checks"]]
    assert names[0] == "source" and names[-1] == "build" and "spec-version" in names


def test_worker_killed_mid_job_lands_the_result_once(service):
    parts = service["parts"]
    assert _submit(service, "hk-killed", "flux-baseline", 13).status_code == 202
    wait_for(lambda: (_record(service, "hk-killed") or {}).get("state") == "benchmarking", 600,
             "hk-killed to start benchmarking", list(parts.values()))
    status = httpx.get(f"{service['base']}/v1/status", timeout=10).json()
    worker = next(w for w in status["workers"] if w["name"] == service["worker_name"])
    assert worker["busy"] and worker["progress"]["hotkey"] == "hk-killed"
    assert worker["progress"]["phase"] in ("loading", "warm-up", "request", "comparing"), worker
    parts["worker"].kill_tree()

    # The record is stuck mid-benchmark until a worker of the same name comes back.
    assert _record(service, "hk-killed")["state"] == "benchmarking"
    restarted = Service(parts["worker"].args, service["env"], service["tmp"] / "worker2.log").start()
    parts["worker"] = restarted
    record = wait_for(lambda: _final(service, "hk-killed"), 600, "hk-killed after restart", [restarted])
    assert record["state"] == "scored", record
    redis = Redis.from_url(service["redis"].url)
    run_id = record["run_id"]
    landings = [x.decode() for x in redis.lrange(keys.landings(run_id), 0, -1)]
    assert landings.count("hk-killed") == 1


def test_redis_restart_with_aof_keeps_results(service):
    before = httpx.get(f"{service['base']}/v1/contests/{CONTEST}", timeout=10).json()
    assert before["leaderboard"]
    service["redis"].kill()
    # The API's snapshot notices within its poll interval (half a second); from then on a 503.
    wait_for(lambda: httpx.get(f"{service['base']}/v1/contests/{CONTEST}", timeout=20).status_code == 503, 10,
             "a 503 with Redis down")
    service["redis"].start()
    after = httpx.get(f"{service['base']}/v1/contests/{CONTEST}", timeout=10).json()
    assert after["leaderboard"] == before["leaderboard"]
    assert after["baselines"] == before["baselines"]
