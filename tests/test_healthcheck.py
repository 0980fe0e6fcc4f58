"""`edgemaxx healthcheck`: what compose's healthchecks run, against a real redis-server and API."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from redis import Redis

from state import workers
from state.chain import save_chain_status
from state.preflight import PreflightReport, save_preflight
from state.records import ChainStatus, WorkerStatus
from tests.service import RedisServer, Service, free_port, http_ready, wait_for


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def _healthcheck(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_url, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "cli", "healthcheck", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_worker_health_is_its_liveness(redis_server):
    redis = Redis.from_url(redis_server.url)
    result = _healthcheck(redis_server.url, "worker", "--name", "hc-gpu3")
    assert result.returncode == 1 and result.stderr.strip() == "hc-gpu3 has not started yet (no heartbeat)"

    save_preflight(redis, PreflightReport(service="hc-gpu3", kind="gpu", problems=["GPU 3 does not exist: x"]))
    result = _healthcheck(redis_server.url, "worker", "--name", "hc-gpu3")
    assert result.returncode == 1 and result.stderr.strip() == "hc-gpu3 cannot start: GPU 3 does not exist: x"

    workers.publish_worker(redis, WorkerStatus(name="hc-gpu3", kind="gpu", gpu=3), ttl_s=60)
    result = _healthcheck(redis_server.url, "worker", "--name", "hc-gpu3")
    assert result.returncode == 0 and result.stdout.strip() == "hc-gpu3 is alive"

    # Without --name: the name the worker gives itself (HOST-gpuN, HOST-builder).
    from worker.process import worker_name

    workers.publish_worker(redis, WorkerStatus(name=worker_name("builder", None), kind="builder"), ttl_s=1)
    assert _healthcheck(redis_server.url, "builder").returncode == 0
    time.sleep(1.5)
    stale = _healthcheck(redis_server.url, "builder")
    assert stale.returncode == 1 and "no fresh heartbeat" in stale.stderr


def test_chain_health_is_a_recent_status(redis_server):
    redis = Redis.from_url(redis_server.url)
    result = _healthcheck(redis_server.url, "chain")
    assert result.returncode == 1 and "published no status yet" in result.stderr
    save_chain_status(redis, ChainStatus(error="RpcConnectionError: could not connect", consecutive_errors=3,
                                         wallet_error="wallet default/default unusable"))
    result = _healthcheck(redis_server.url, "chain")
    assert result.returncode == 0, result.stderr
    assert "could not connect" in result.stdout and "wallet default/default unusable" in result.stdout
    save_chain_status(redis, ChainStatus(updated_at=time.time() - 3600))
    result = _healthcheck(redis_server.url, "chain")
    assert result.returncode == 1 and "old" in result.stderr


def test_redis_unreachable_is_one_line(redis_server):
    redis_server.kill()
    for args in (["worker", "--name", "x"], ["chain"]):
        result = _healthcheck(redis_server.url, *args)
        assert result.returncode == 1
        assert result.stderr.startswith(f"Redis at {redis_server.url} unreachable") and "Traceback" not in result.stderr


def test_api_health_needs_redis_behind_it(redis_server, tmp_path):
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_API_PORT": str(port)}
    api = Service(["api"], env, tmp_path / "api.log").start()
    try:
        url = f"http://127.0.0.1:{port}/v1/status"
        wait_for(lambda: http_ready(url), 60, "the API", [api])
        result = _healthcheck(redis_server.url, "api", "--url", url)
        assert result.returncode == 0 and result.stdout.startswith(f"{url} answers")
        redis_server.kill()
        # The API's status is at most about a second old: unhealthy within a few seconds.
        result = wait_for(lambda: (r := _healthcheck(redis_server.url, "api", "--url", url)).returncode and r, 20,
                          "the API's health to fail")
        assert result.returncode == 1 and "Redis is unreachable from the API" in result.stderr
    finally:
        api.stop()
    result = _healthcheck(redis_server.url, "api", "--url", url)
    assert result.returncode == 1 and result.stderr.startswith(url)


def test_unknown_service():
    result = _healthcheck("redis://127.0.0.1:9/0", "database")
    assert result.returncode == 2 and "'database' is not one of" in result.stderr and "'chain'" in result.stderr


def test_a_worker_refusing_jobs_is_unhealthy(redis_server):
    """Alive but refusing benchmarks (its sandbox runtime failed its start-up check): not healthy."""
    redis = Redis.from_url(redis_server.url)
    status = WorkerStatus(name="hc-runsc", kind="gpu", gpu=0, sandbox_problem="runsc is not registered in the engine")
    workers.publish_worker(redis, status, ttl_s=60)
    result = _healthcheck(redis_server.url, "worker", "--name", "hc-runsc")
    assert result.returncode == 1
    assert result.stderr.strip() == "hc-runsc takes no benchmark job: runsc is not registered in the engine"
