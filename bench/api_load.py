"""Load benchmark of the API: GET /v1/status under concurrent clients, and enqueue throughput.

Starts a real redis-server and the real API (uvicorn, one process) on loopback, seeds a contest
run with submissions and worker statuses so /v1/status has realistic work to do, then measures.
Run by hand (not a test):

    .venv/bin/python bench/api_load.py [--seconds 10] [--clients 1,8,32] [--enqueue 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from redis import Redis

from edgemaxx.contest import load_contest
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import workers
from state.records import WorkerStatus
from worker.queues import start_run, submit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throw-away redis-server on loopback (AOF as in production); yields its URL."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/setup installs it)")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--appendonly", "yes", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                if Redis.from_url(url).ping():
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def seed(redis: Redis, settings: Settings, submissions: int) -> None:
    run = start_run(redis, settings, load_contest("flux-4090"), "bench-seed")
    for i in range(submissions):
        submit(redis, settings, run, f"hotkey{i:04d}",
               SubmissionSource(kind=SourceKind.GIT, url=f"https://github.com/m{i}/flux", revision="abcdef0"),
               uid=i)
    for gpu in range(8):
        workers.publish_worker(redis, WorkerStatus(name=f"bench-gpu{gpu}", kind="gpu", gpu=gpu), 600)


async def load(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(timeout=30) as http:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await http.get(url)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients, "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def enqueue_http(base: str, token: str, count: int) -> dict:
    started = time.perf_counter()
    with httpx.Client(timeout=30) as http:
        for i in range(count):
            response = http.post(f"{base}/v1/submissions", headers={"Authorization": f"Bearer {token}"},
                                 json={"hotkey": f"enq{i:05d}", "repository": f"https://github.com/e{i}/flux",
                                       "revision": "abcdef0", "contest": "flux-4090", "uid": i % 256})
            assert response.status_code == 202, response.text
    elapsed = time.perf_counter() - started
    return {"submissions": count, "seconds": round(elapsed, 2), "per_second": round(count / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--enqueue", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-results/api-load.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        token = "bench-token"
        settings = Settings(redis_url=redis_url, data_dir=Path(tmp))
        redis = Redis.from_url(redis_url)
        seed(redis, settings, args.submissions)
        port = free_port()
        env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_url, "EDGEMAXX_ADMIN_TOKEN": token,
               "EDGEMAXX_API_PORT": str(port), "EDGEMAXX_DATA_DIR": tmp}
        api = subprocess.Popen([sys.executable, "-m", "cli", "api"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            while not http_ready(f"{base}/v1/status"):
                time.sleep(0.2)
            status = [asyncio.run(load(f"{base}/v1/status", int(c), args.seconds))
                      for c in args.clients.split(",")]
            enqueue = enqueue_http(base, token, args.enqueue)
        finally:
            api.terminate()
            api.wait(10)
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "seeded_submissions": args.submissions,
              "status": status, "enqueue_http": enqueue}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| clients | requests | rps | p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in status:
        print(f"| {row['clients']} | {row['requests']} | {row['rps']} | {row['p50_ms']} | {row['p99_ms']} | "
              f"{row['errors']} |")
    print(f"\nenqueue over HTTP: {enqueue['submissions']} in {enqueue['seconds']} s = "
          f"{enqueue['per_second']}/s")


if __name__ == "__main__":
    main()
