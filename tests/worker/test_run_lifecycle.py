"""Runs that always end and weights that always get set, with real processes.

A real redis-server (AOF), the API, a builder and a GPU worker (process sandbox, on this CPU
host) run as `edgemaxx` processes; the chain service runs in the test, driving the real bittensor
SDK against the in-process fake chain whose blocks follow the wall clock. Each test starts the
contest's next run by switching the chain service to another file of the same contest (another
daily start, so another seed), as an operator editing the contest would.

Failures are real ones: a submission declaring a model while the hub is down (the builder's
HF_ENDPOINT points at a closed port: connection refused), a baseline that crashes at load, a
submission that never opens its socket, SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import bittensor as bt
import httpx
import psutil
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from chain.service import ChainService
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import history, keys
from state import runs as store
from state.records import RunState, SubmissionState
from tests.chain.fake_chain import BLOCK_MS, GENESIS_MS, FakeChain
from tests.conftest import TEST_DATA, fixture_path
from tests.contests import cpu_contest
from tests.service import RedisServer, Service, free_port, http_ready, wait_for
from worker import queues

NETUID = 39
CONTEST = "lifecycle-cpu"
WORKER = f"lc-worker-{uuid.uuid4().hex[:6]}"
SHUTDOWN_S = 20


def _now_block() -> int:
    return (int(time.time() * 1000) - GENESIS_MS) // BLOCK_MS


def _contest_file(path: Path, *, baseline: str, daily_at: str, deadline_h: float, load_s: float) -> Path:
    return cpu_contest(path, CONTEST, baseline=baseline, load_s=load_s, run_deadline_h=deadline_h, daily_at=daily_at)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    now = dt.datetime.now(dt.UTC)

    def daily(minutes_ago: int) -> str:  # distinct daily starts: each file is a new run (seed)
        return (now - dt.timedelta(minutes=minutes_ago)).strftime("%H:%M")

    contests = {
        "ok": _contest_file(tmp / "ok.toml", baseline="flux-baseline", daily_at=daily(200),
                            deadline_h=1, load_s=120),
        "broken": _contest_file(tmp / "broken.toml", baseline="crash-at-load", daily_at=daily(160),
                                deadline_h=1, load_s=120),
        # 6 minutes: long enough for the baseline and the faster fixture on a busy 2-core machine.
        "short": _contest_file(tmp / "short.toml", baseline="flux-baseline", daily_at=daily(120),
                               deadline_h=360 / 3600, load_s=1800),
        "again": _contest_file(tmp / "again.toml", baseline="flux-baseline", daily_at=daily(80),
                               deadline_h=1, load_s=120),
    }
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_BACKEND": "process", "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
           "EDGEMAXX_API_PORT": str(port), "EDGEMAXX_WORKER_HEARTBEAT_TTL_S": "6",
           "EDGEMAXX_PREPARE_RETRIES": "1", "EDGEMAXX_BENCHMARK_RETRIES": "1",
           "EDGEMAXX_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_S),
           # The hub is down: nothing answers there (a closed port on loopback).
           "HF_ENDPOINT": f"https://127.0.0.1:{free_port()}", "PYTHONUNBUFFERED": "1"}
    parts = {
        "api": Service(["api"], env, tmp / "api.log").start(),
        "builder": Service(["builder", "--name", f"lc-builder-{uuid.uuid4().hex[:6]}"], env,
                           tmp / "builder.log").start(),
        # flux-4090 needs an RTX 4090: this CPU worker must refuse it, and say why.
        "worker": Service(["worker", "--name", WORKER, "--contest", str(contests["ok"]), "--contest", "flux-4090"],
                          env, tmp / "worker.log").start(),
    }
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ready(f"{base}/v1/status"), 60, "the API", list(parts.values()))

    chain = FakeChain(NETUID, head=_now_block())
    wallet = bt.Wallet("validator", "hot", path=str(tmp / "wallets"))
    wallet.create_new_hotkey(suppress=True)
    chain.register(wallet.hotkey.ss58_address, "validator-cold")
    settings = Settings(redis_url=redis_server.url, data_dir=TEST_DATA, netuid=NETUID, weights_interval_blocks=1,
                        chain_poll_blocks=1, prepare_retries=1, benchmark_retries=1,
                        active_contests=[str(contests["ok"])])
    redis = Redis.from_url(redis_server.url)

    def connect() -> bt.Subtensor:
        return bt.Subtensor(substrate=chain)

    state = {"base": base, "redis_server": redis_server, "redis": redis, "parts": parts, "env": env, "tmp": tmp,
             "contests": contests, "chain": chain, "wallet": wallet, "settings": settings, "connect": connect,
             "service": ChainService(settings, redis, connect, wallet), "runs": {}, "uids": {}}
    yield state
    for part in parts.values():
        part.stop()
    redis_server.kill()


def _step(world, contest: str):
    """One chain service iteration, the contest's file being `contest`; returns the current run."""
    service = world["service"]
    service.settings = world["settings"].model_copy(update={"active_contests": [str(world["contests"][contest])]})
    chain = world["chain"]
    chain.head = max(chain.head + 1, _now_block())
    service.step()
    return store.current_run(world["redis"], CONTEST)


def _submit(world, run, hotkey: str, fixture: str) -> int:
    uids = world["uids"]
    if hotkey not in uids:
        uids[hotkey] = world["chain"].register(hotkey, f"cold-{hotkey}")
    uid = uids[hotkey]
    source = SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(fixture))
    queues.submit(world["redis"], world["settings"], run, hotkey, source, uid=uid, block=(run.block or 1) - 1)
    return uid


def _ended(world, run_id: str, timeout_s: float):
    def ended():
        run = store.load_run(world["redis"], run_id)
        return run if run and run.end else None

    return wait_for(ended, timeout_s, f"run {run_id} to end", list(world["parts"].values()))


def _records(world, run_id: str):
    return {r.hotkey: r for r in store.records(world["redis"], run_id)}


def _weight_sets(world) -> list[dict[int, int]]:
    return [dict(zip(call.params["dests"], call.params["weights"], strict=True))
            for call, _ in world["chain"].submitted if call.function == "set_mechanism_weights"]


def _sandbox_processes(owner: str) -> list[psutil.Process]:
    marker = str(TEST_DATA / "runs" / owner)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(arg.startswith(marker) for arg in proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def test_infrastructure_failure_ends_error_and_the_run_still_sets_weights(world):
    redis = world["redis"]
    run = _step(world, "ok")
    world["runs"]["ok"] = run.id
    assert run.deadline_at == pytest.approx(run.started_at + 3600, abs=1)
    faster = _submit(world, run, "hk-faster", "flux-faster")
    garbage = _submit(world, run, "hk-garbage", "garbage-output")
    infra = _submit(world, run, "hk-infra", "needs-hub-model")

    ended = _ended(world, run.id, 900)
    assert ended.end.state is RunState.FINISHED, ended.end
    records = _records(world, run.id)
    assert records["hk-faster"].state is SubmissionState.SCORED, records["hk-faster"]
    assert records["hk-garbage"].state is SubmissionState.INVALID
    failed = records["hk-infra"]
    assert failed.state is SubmissionState.ERROR, failed
    assert "could not prepare this submission" in failed.reason and "hub" in failed.reason, failed.reason
    assert failed.attempts == 2, "one retry, then the failure callback ended it"
    # Ours, never the miner's: shown with its reason, counted apart, no weight.
    shown = httpx.get(f"{world['base']}/v1/submissions/hk-infra", timeout=10).json()
    assert shown["state"] == "error" and shown["reason"] == failed.reason
    assert 'edgemaxx_jobs_total{outcome="error"} 1.0' in httpx.get(f"{world['base']}/metrics", timeout=10).text
    assert ended.end.weights == {faster: 1.0} and ended.end.hotkeys == {faster: "hk-faster"}
    # At its end the run keeps only what the dashboard shows: the best submissions' images (and the
    # baseline's); the weights are frozen.
    assert redis.exists(keys.outputs(run.id, "hk-faster"))
    assert not redis.exists(keys.outputs(run.id, "hk-garbage"))
    assert records["hk-faster"].gpu is None, "measured without a GPU, and the record says so"

    _step(world, "ok")
    sets = _weight_sets(world)
    assert len(sets) == 1 and sets[0][faster] == 65535
    assert garbage not in sets[0] and infra not in sets[0]
    assert world["service"].status.last_set.run_id == run.id

    # The chain service restarts between two intervals: it knows nothing, Redis knows the run.
    world["service"] = ChainService(world["settings"], redis, world["connect"], world["wallet"])
    _step(world, "ok")
    assert len(_weight_sets(world)) == 2 and _weight_sets(world)[1] == sets[0]
    status = httpx.get(f"{world['base']}/v1/status", timeout=10).json()
    assert status["weights"]["last_set_runs"] == [run.id]
    assert status["weights"]["next_attempt_block"] == world["chain"].head + 1
    assert len(history.weights_sets(redis, run.id)) == 2


def test_a_baseline_that_always_fails_ends_the_run_failed_and_the_last_weights_stay(world):
    redis = world["redis"]
    run = _step(world, "broken")
    world["runs"]["broken"] = run.id
    assert run.id != world["runs"]["ok"]
    faster = _submit(world, run, "hk-faster", "flux-faster")

    ended = _ended(world, run.id, 600)
    assert ended.end.state is RunState.FAILED, ended.end
    assert "baseline could not be measured" in ended.end.reason and "before opening" in ended.end.reason
    assert ended.end.weights == {}
    record = _records(world, run.id)["hk-faster"]
    assert record.state is SubmissionState.ERROR and record.reason.startswith("the run failed"), record.reason
    assert len(redis.lrange(keys.baseline_failures(run.id), 0, -1)) == 2, "as many tries as a submission gets"

    before = len(_weight_sets(world))
    _step(world, "broken")
    sets = _weight_sets(world)
    assert len(sets) == before + 1 and sets[-1] == {faster: 65535}
    assert world["service"].status.last_set.run_id == world["runs"]["ok"]
    assert history.weights_sets(redis, run.id) == []


def test_the_deadline_ends_a_run_with_a_hanging_job(world):
    redis = world["redis"]
    run = _step(world, "short")
    world["runs"]["short"] = run.id
    faster = _submit(world, run, "hk-faster", "flux-faster")
    # Queued once the faster one is on the (only) GPU: it runs second, and hangs there.
    wait_for(lambda: _records(world, run.id)["hk-faster"].state is SubmissionState.BENCHMARKING, 300,
             "hk-faster to be benchmarked", list(world["parts"].values()))
    _submit(world, run, "hk-hang", "no-socket")
    wait_for(lambda: _records(world, run.id)["hk-hang"].state is SubmissionState.BENCHMARKING, 400,
             "hk-hang to be loading", list(world["parts"].values()))
    assert _records(world, run.id)["hk-faster"].state is SubmissionState.SCORED
    # Its record says benchmarking a moment before its sandbox starts.
    wait_for(lambda: _sandbox_processes(WORKER), 60, "the hanging submission's sandbox to start",
             list(world["parts"].values()))
    assert time.time() < run.deadline_at, "the test needs the deadline still ahead"

    # Nobody calls the chain service now: the RQ scheduler's finish_run job ends the run.
    ended = _ended(world, run.id, run.deadline_at - time.time() + 120)
    assert ended.end.state is RunState.FINISHED
    assert ended.end.at >= run.deadline_at and "deadline" in ended.end.reason
    hang = _records(world, run.id)["hk-hang"]
    assert hang.state is SubmissionState.ERROR and "not finished by the run's deadline" in hang.reason
    assert ended.end.weights == {faster: 1.0}
    # The hanging job was stopped, its sandbox removed, and the worker is free again.
    wait_for(lambda: not _sandbox_processes(WORKER), 60, "the hanging sandbox to go", list(world["parts"].values()))
    status = wait_for(lambda: next((w for w in httpx.get(f"{world['base']}/v1/status", timeout=10).json()["workers"]
                                    if w["name"] == WORKER and w["alive"] and not w["busy"]), None),
                      60, "the worker to be idle", list(world["parts"].values()))
    assert status["progress"]["phase"] == "idle"
    for name in (keys.queue_gpu(CONTEST), keys.queue_gpu_on(CONTEST, socket.gethostname())):
        assert not Queue(name, connection=redis).started_job_registry.get_job_ids()

    _step(world, "short")
    assert world["service"].status.last_set.run_id == run.id, "the newest finished run sets the weights"


def test_sigterm_stops_the_worker_and_requeues_its_job(world):
    redis, parts = world["redis"], world["parts"]
    run = _step(world, "again")
    world["runs"]["again"] = run.id
    _submit(world, run, "hk-again", "flux-baseline")
    wait_for(lambda: _records(world, run.id)["hk-again"].state is SubmissionState.BENCHMARKING, 300,
             "hk-again to be benchmarked", list(parts.values()))
    job_id = f"bench-{run.id}-hk-again"
    retries_before = Job.fetch(job_id, connection=redis).retries_left
    proc = parts["worker"].proc
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(SHUTDOWN_S + 10)
    assert time.monotonic() - started < SHUTDOWN_S + 10
    assert proc.returncode == 0, parts["worker"].tail()

    # Requeued at the front of this host's GPU queue (prepared here, so benchmarked here), no retry
    # spent; nothing of its sandbox left; the worker shows gone.
    queue = Queue(keys.queue_gpu_on(CONTEST, socket.gethostname()), connection=redis)
    assert queue.job_ids[:1] == [job_id]
    assert Job.fetch(job_id, connection=redis).retries_left == retries_before
    assert not _sandbox_processes(WORKER)
    assert not list((TEST_DATA / "runs").glob(f"{WORKER}-*"))
    assert not [p for p in psutil.process_iter(["environ"]) if (p.info.get("environ") or {}).get(
        "EDGEMAXX_WORKER_NAME") == WORKER], "no work horse or scheduler left"
    worker = next(w for w in httpx.get(f"{world['base']}/v1/status", timeout=10).json()["workers"]
                  if w["name"] == WORKER)
    assert not worker["alive"]

    parts["worker"] = Service(parts["worker"].args, world["env"], world["tmp"] / "worker2.log").start()
    ended = _ended(world, run.id, 600)
    assert ended.end.state is RunState.FINISHED
    assert _records(world, run.id)["hk-again"].state is SubmissionState.SCORED


def test_run_history_survives_a_restart_of_every_service(world):
    parts, base = world["parts"], world["base"]
    for name, part in parts.items():
        part.stop()
        parts[name] = Service(part.args, world["env"], world["tmp"] / f"{name}-restarted.log")
    world["redis_server"].kill()
    world["redis_server"].start()
    for part in parts.values():
        part.start()
    wait_for(lambda: http_ready(f"{base}/v1/status"), 60, "the API", list(parts.values()))

    page = httpx.get(f"{base}/v1/runs", params={"contest": CONTEST, "limit": 2}, timeout=10).json()
    expected = [world["runs"][k] for k in ("again", "short", "broken", "ok")]
    assert page["total"] == 4 and page["next_offset"] == 2
    assert [r["id"] for r in page["runs"]] == expected[:2]
    rest = httpx.get(f"{base}/v1/runs", params={"contest": CONTEST, "offset": 2}, timeout=10).json()
    assert [r["id"] for r in rest["runs"]] == expected[2:] and rest["next_offset"] is None
    states = {r["id"]: r["state"] for r in page["runs"] + rest["runs"]}
    assert states[world["runs"]["broken"]] == "failed" and states[world["runs"]["ok"]] == "finished"

    detail = httpx.get(f"{base}/v1/runs/{world['runs']['ok']}", timeout=10).json()
    assert detail["state"] == "finished" and detail["finished_at"] and detail["rules"]["id"] == CONTEST
    board = {row["hotkey"]: row for row in detail["leaderboard"]}
    assert board["hk-faster"]["weight"] == 1.0 and len(board["hk-faster"]["similarities"]) == 3
    assert board["hk-faster"]["gpu"] is None and board["hk-infra"]["state"] == "error"
    assert detail["winner"] == "hk-faster" and detail["baselines"][0]["worker"] == WORKER
    assert len(detail["weights_sets"]) >= 2 and all(s["block"] > 0 for s in detail["weights_sets"])
    assert detail["weights_set_count"] == len(detail["weights_sets"])

    missing = httpx.get(f"{base}/v1/runs/{CONTEST}-0000000000", timeout=10)
    assert missing.status_code == 404 and "no run" in missing.json()["detail"]
    assert httpx.get(f"{base}/v1/runs/Bad..Id", timeout=10).status_code == 422

    # The CPU worker refused the RTX 4090 contest, and says why.
    status = wait_for(lambda: next((w for w in httpx.get(f"{base}/v1/status", timeout=10).json()["workers"]
                                    if w["name"] == WORKER and w["alive"]), None),
                      60, "the worker", list(parts.values()))
    assert status["contests"] == [CONTEST]
    assert "NVIDIA GeForce RTX 4090" in status["refused"]["flux-4090"] and "no GPU" in status["refused"]["flux-4090"]
    openapi = httpx.get(f"{base}/openapi.json", timeout=10).json()
    assert {"/v1/runs", "/v1/runs/{run_id}"} <= set(openapi["paths"])
    assert "RunDetail" in openapi["components"]["schemas"]


def test_an_ended_run_keeps_the_best_submissions_images_and_their_baselines():
    from edgemaxx.models import SourceKind, SubmissionSource
    from state.records import SubmissionRecord
    from state.runs import kept_outputs

    source = SubmissionSource(kind=SourceKind.LOCAL, path="/x")
    records = [SubmissionRecord(hotkey=f"hk{i}", source=source, score=1.0 + i / 10, block=i, worker=f"w{i % 2}",
                                state=SubmissionState.SCORED) for i in range(8)]
    records.append(SubmissionRecord(hotkey="hk-invalid", source=source, state=SubmissionState.INVALID))
    kept = kept_outputs(records, ["baseline@w0", "baseline@w1", "baseline@w9"], keep=3)
    assert kept == ["baseline@w0", "baseline@w1", "hk7", "hk6", "hk5"]
    # Nothing scored: one baseline stays (the demo shows it alone).
    assert kept_outputs(records[-1:], ["baseline@w1", "baseline@w0"]) == ["baseline@w0"]
