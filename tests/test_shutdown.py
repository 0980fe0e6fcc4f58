"""SIGTERM to `edgemaxx demo --serve` while a submission runs in its sandbox: everything it started
ends (API, builder, worker, their work horses and schedulers, the sandbox, the embedded Redis)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import httpx
import psutil

from cli.demo import worker_names
from edgemaxx.constants import LABEL_OWNER, LABEL_SANDBOX
from tests.conftest import TEST_DATA
from tests.service import free_port, wait_for

STOP_BOUND_S = 60  # the settings' shutdown timeout (30 s) plus the demo's margin, and some


def _running_sandbox(base: str, worker: str) -> dict | None:
    try:
        status = httpx.get(f"{base}/v1/status", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    for entry in status.get("workers", []):
        phase = entry["progress"]["phase"]
        if entry["name"] == worker and entry["busy"] and phase in ("loading", "warm-up", "request"):
            return entry
    return None


def _ours(data_dir: str) -> list[psutil.Process]:
    """Processes that carry this demo's data directory in their environment (sandboxes do not)."""
    found = []
    for proc in psutil.process_iter(["environ"]):
        environ = proc.info.get("environ") or {}
        if environ.get("EDGEMAXX_DATA_DIR") == data_dir:
            found.append(proc)
    return found


def _redis_servers(data_dir: str) -> list[psutil.Process]:
    """The embedded Redis daemonizes (it is not in the demo's tree); it runs in the data directory."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if "redis-server" in (proc.info.get("name") or ""):
            try:
                if proc.cwd().startswith(data_dir):
                    found.append(proc)
            except psutil.Error:
                continue
    return found


def test_sigterm_to_demo_serve_leaves_nothing_running(base_image, docker_client):
    data_dir = TEST_DATA / f"demo-shutdown-{uuid.uuid4().hex[:6]}"
    data_dir.mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    builder, worker = worker_names(data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGEMAXX_")}
    env.update({"EDGEMAXX_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    log = (data_dir / "demo.out").open("wb")
    demo = subprocess.Popen([sys.executable, "-m", "cli", "demo", "--serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: demo.poll() is not None or _running_sandbox(base, worker), 900,
                 "a submission running in the demo's sandbox")
        assert demo.poll() is None, (data_dir / "demo.out").read_text()[-3000:]
        tree = [psutil.Process(demo.pid), *psutil.Process(demo.pid).children(recursive=True)]
        names = {" ".join(p.cmdline()[:4]) for p in tree if p.is_running()}
        assert any("cli worker" in n for n in names) and any("cli builder" in n for n in names), names
        redis_servers = _redis_servers(str(data_dir))
        assert len(redis_servers) == 1
        sandboxes = docker_client.containers.list(filters={"label": [LABEL_SANDBOX, f"{LABEL_OWNER}={worker}"]})
        run_dirs = list((data_dir / "runs").glob(f"{worker}-*"))
        assert sandboxes or run_dirs, "the worker's sandbox is up"

        started = time.monotonic()
        demo.send_signal(signal.SIGTERM)
        demo.wait(STOP_BOUND_S)
        elapsed = time.monotonic() - started
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
        log.close()
    output = (data_dir / "demo.out").read_text()
    assert demo.returncode == 130, output[-3000:]
    assert "every process it started has exited" in output
    assert elapsed < STOP_BOUND_S

    # Nothing left: no process of the tree (API, builder, worker, horses, schedulers, redis-server),
    # no process of this data directory, no sandbox container or process, no run directory.
    _gone, alive = psutil.wait_procs(tree + redis_servers, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    assert not _ours(str(data_dir)) and not _redis_servers(str(data_dir))
    for name in (builder, worker):
        assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={name}"})
        marker = str(data_dir / "runs" / name)
        assert not [p for p in psutil.process_iter(["cmdline"])
                    if any(arg.startswith(marker) for arg in p.info.get("cmdline") or [])]
    assert not list((data_dir / "runs").glob("*"))
    # The worker requeued its job rather than failing it: the log says so.
    assert "requeued bench-" in (data_dir / "demo-logs" / "worker.log").read_text()
    shutil.rmtree(data_dir, ignore_errors=True)  # kept when the test fails: its logs say why


def test_sigterm_stops_the_chain_service_and_the_api_at_once(tmp_path):
    """The chain service leaves its wait (here a backoff: no node answers) and the API its server."""
    from redis import Redis

    from state.chain import load_chain_status
    from tests.service import RedisServer, Service, http_ready

    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_API_PORT": str(port),
           "EDGEMAXX_DATA_DIR": str(TEST_DATA), "PYTHONUNBUFFERED": "1"}
    chain = Service(["chain", "--subtensor.chain_endpoint", f"ws://127.0.0.1:{free_port()}",
                     "--wallet.path", str(tmp_path / "wallets")], env, tmp_path / "chain.log").start()
    api = Service(["api"], env, tmp_path / "api.log").start()
    try:
        redis = Redis.from_url(redis_server.url)
        status = wait_for(lambda: load_chain_status(redis), 120, "the chain service's first iteration", [chain])
        assert status.consecutive_errors >= 1 and status.error, "no node: it backs off and waits"
        wait_for(lambda: http_ready(f"http://127.0.0.1:{port}/v1/status"), 60, "the API", [api])
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -15).
        for part, status in ((chain, 0), (api, -signal.SIGTERM)):
            started = time.monotonic()
            part.proc.send_signal(signal.SIGTERM)
            assert part.proc.wait(15) == status, part.tail()
            assert time.monotonic() - started < 15
        assert "Finished server process" in api.tail()
    finally:
        chain.stop()
        api.stop()
        redis_server.kill()
