"""Load benchmark of the API: what dashboard viewers poll (status, the leaderboard, a run) under
concurrent clients, and enqueue throughput.

Starts a real redis-server and the real API (uvicorn, one process) on loopback, seeds a contest
run with submissions (half of them scored, with metrics) and worker statuses so the routes have
realistic work to do, then measures each route: plain GETs, and with `--conditional` also GETs
that send back the ETag they were given (If-None-Match), as the dashboard's browser does. The
load comes from `wrk` (Debian: `apt-get install wrk`), one thread: a Python load generator on the
same cores was the bound before the API was. Run by hand (not a test):

    .venv/bin/python bench/api_load.py [--seconds 10] [--clients 1,8,32] [--enqueue 500]
        [--routes status,contest,run] [--conditional]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from redis import Redis

from edgemaxx.contest import load_contest
from edgemaxx.models import Backend, Metrics, RunResult, RunStatus, SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import runs, workers
from state.records import SubmissionState, WorkerStatus
from worker.queues import start_run, submit

CONTEST = "flux-4090"


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


def seed(redis: Redis, settings: Settings, submissions: int) -> str:
    """A run of `submissions`, every other one scored against a baseline; 8 GPU workers. Its id."""
    run = start_run(redis, settings, load_contest(CONTEST), "bench-seed")
    inputs = len(run.inputs)
    baseline = RunResult(name="baseline", backend=Backend.DOCKER, status=RunStatus.OK,
                         metrics=Metrics(generation_times_s=[2.0] * inputs, load_time_s=30.0,
                                         peak_vram_bytes=20 << 30))
    for gpu in range(8):
        workers.publish_worker(redis, WorkerStatus(name=f"bench-gpu{gpu}", kind="gpu", gpu=gpu), 600)
        runs.save_baseline(redis, run.id, f"bench-gpu{gpu}", baseline)
    for i in range(submissions):
        submit(redis, settings, run, f"hotkey{i:04d}",
               SubmissionSource(kind=SourceKind.GIT, url=f"https://github.com/m{i}/flux", revision="abcdef0"),
               uid=i)
        if i % 2:
            continue
        record = runs.load_record(redis, run.id, f"hotkey{i:04d}")
        assert record is not None
        record.state, record.worker, record.score = SubmissionState.SCORED, f"bench-gpu{i % 8}", 1.0 + i / 1000
        record.metrics = Metrics(generation_times_s=[1.5 + i / 10_000] * inputs, load_time_s=25.0,
                                 peak_vram_bytes=18 << 30)
        record.similarities = [0.97] * inputs
        record.similarity_mean = record.similarity_min = 0.97
        record.score_terms = {"generation_time": record.score, "similarity": 1.0}
        runs.land_result(redis, run.id, record)
    return run.id


# wrk runs this per connection thread: it sends back the ETag it last got when conditional (a
# browser revalidating its copy), counts 304s, and prints one JSON line with the latency percentiles.
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) conditional = args[1] == "1"; etag = nil; not_modified = 0 end
function request()
  if conditional and etag then return wrk.format(nil, nil, {["If-None-Match"] = etag}) end
  return wrk.format()
end
function response(status, headers, body)
  if status == 304 then not_modified = not_modified + 1 end
  local tag = headers["etag"] or headers["ETag"]
  if tag then etag = tag end
end
function done(summary, latency, requests)
  local nm = 0
  for _, t in ipairs(threads) do nm = nm + t:get("not_modified") end
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "not_modified": %d, "errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, nm, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def load(url: str, clients: int, seconds: float, conditional: bool = False) -> dict:
    """`clients` concurrent keep-alive connections GETting `url` for `seconds`, from wrk (one
    thread: a C load generator takes a fraction of a core, so the API keeps the rest). Conditional:
    each connection sends back the ETag it last got (a 304 is then a success)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (scripts/setup does)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        out = subprocess.run([wrk, "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "30s", "-s", script.name,
                              url, "--", "1" if conditional else "0"], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    elapsed = row["duration_us"] / 1e6
    return {
        "clients": clients, "conditional": conditional, "requests": row["requests"], "errors": row["errors"],
        "not_modified": row["not_modified"], "seconds": round(elapsed, 2),
        "rps": round(row["requests"] / elapsed, 1),
        "p50_ms": round(row["p50_us"] / 1000, 2), "p90_ms": round(row["p90_us"] / 1000, 2),
        "p99_ms": round(row["p99_us"] / 1000, 2), "max_ms": round(row["max_us"] / 1000, 2),
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
    parser.add_argument("--routes", default="status,contest,run", help="of: status, contest, run")
    parser.add_argument("--conditional", action="store_true", help="also measure If-None-Match GETs")
    parser.add_argument("--out", type=Path, default=Path("docs/bench-results/api-load.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        token = "bench-token"
        settings = Settings(redis_url=redis_url, data_dir=Path(tmp))
        redis = Redis.from_url(redis_url)
        run_id = seed(redis, settings, args.submissions)
        paths = {"status": "/v1/status", "contest": f"/v1/contests/{CONTEST}", "run": f"/v1/runs/{run_id}"}
        port = free_port()
        env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_url, "EDGEMAXX_ADMIN_TOKEN": token,
               "EDGEMAXX_API_PORT": str(port), "EDGEMAXX_DATA_DIR": tmp}
        api = subprocess.Popen([sys.executable, "-m", "cli", "api"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            while not http_ready(f"{base}/v1/status"):
                time.sleep(0.2)
            routes: dict[str, list[dict]] = {}
            for name in args.routes.split(","):
                if not http_ready(f"{base}{paths[name]}"):  # a route the API under test lacks
                    print(f"skipping {name}: {paths[name]} does not answer 200", file=sys.stderr)
                    continue
                modes = (False, True) if args.conditional else (False,)
                routes[name] = [load(f"{base}{paths[name]}", int(c), args.seconds, conditional)
                                for conditional in modes for c in args.clients.split(",")]
            enqueue = enqueue_http(base, token, args.enqueue)
        finally:
            api.terminate()
            api.wait(10)
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "seeded_submissions": args.submissions,
              "routes": routes, "status": routes.get("status", []), "enqueue_http": enqueue}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| route | If-None-Match | clients | requests | req/s | p50 ms | p99 ms | 304s | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in routes.items():
        for row in rows:
            print(f"| {paths[name]} | {'yes' if row['conditional'] else 'no'} | {row['clients']} | {row['requests']} | "
                  f"{row['rps']} | {row['p50_ms']} | {row['p99_ms']} | {row['not_modified']} | {row['errors']} |")
    print(f"\nenqueue over HTTP: {enqueue['submissions']} in {enqueue['seconds']} s = "
          f"{enqueue['per_second']}/s")


if __name__ == "__main__":
    main()
