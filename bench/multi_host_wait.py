"""Two hosts, one Redis: how long do the GPU workers wait for builds?

Starts the two-host set-up of tests/test_multi_host.py (host A on this machine's Docker engine,
host B on a second dockerd, one password-protected redis-server, a builder and a GPU worker per
host, the tiny-Flux CPU fixtures), submits N submissions to one run, and reads back from RQ's job
records, per GPU worker:

- `ready_to_start_s`: for each benchmark, from the moment it was ready for a GPU queue (its
  preparation done, the job enqueued) to the moment a GPU worker started it;
- `idle_waiting_for_builds_s`: time the worker sat idle (between its first job's start and its last
  job's end) while a submission assigned to its host was still being prepared: the GPU waiting on
  a build. Host-affine preparation aims at 0 beyond scheduling noise;
- `prepared_by_gpu_s`: seconds GPU workers spent preparing a submission themselves (the fallback).

Run by hand, as root, on a machine with Docker and the local base image (like CI):

    PYTHONPATH=. .venv/bin/python bench/multi_host_wait.py --submissions 6 \\
        --out docs/bench-results/multi-host-wait.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis
from rq.job import Job

from edgemaxx.contest import load_contest
from edgemaxx.models import Backend, SourceKind, SubmissionSource
from state import runs
from state.records import SubmissionRecord
from tests.conftest import fixture_path
from tests.multihost import TwoHosts
from tests.service import wait_for
from worker import queues

FIXTURES = ["flux-faster", "flux-baseline"]  # both prepare from the same lock: builds are cache hits after one


def _ts(value: dt.datetime | None) -> float | None:
    return value.replace(tzinfo=dt.UTC).timestamp() if value is not None else None


def _job(redis: Redis, job_id: str) -> dict[str, Any] | None:
    if not redis.exists(Job.key_for(job_id)):
        return None
    job = Job.fetch(job_id, connection=redis)
    return {"id": job_id, "worker": job.worker_name, "enqueued": _ts(job.enqueued_at),
            "started": _ts(job.started_at), "ended": _ts(job.ended_at), "origin": job.origin}


def _prepare_jobs(redis: Redis, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """hotkey → its prepare jobs (RQ keeps finished jobs for their result TTL, 500 s by default)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key in redis.scan_iter(match=f"rq:job:prepare-{run_id}-*", count=500):
        job_id = key.decode().removeprefix("rq:job:")
        info = _job(redis, job_id)
        if info:
            hotkey = job_id.removeprefix(f"prepare-{run_id}-").rsplit("-", 1)[0]
            found.setdefault(hotkey, []).append(info)
    return found


def _baseline_jobs(redis: Redis, run_id: str, builder: str) -> list[dict[str, Any]]:
    found = []
    for key in redis.scan_iter(match=f"rq:job:baseline-{run_id}*", count=500):
        info = _job(redis, key.decode().removeprefix("rq:job:"))
        if info and info["worker"] == builder and info["started"] and info["ended"]:
            found.append(info)
    return found


def measure(two: TwoHosts, count: int) -> dict[str, Any]:
    redis = two.redis()
    run = queues.start_run(redis, two.settings(), load_contest(str(two.contest)), f"bench-{time.time_ns()}")
    started = time.time()
    hotkeys = [f"hk-{i}" for i in range(count)]
    for i, hotkey in enumerate(hotkeys):
        source = SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(FIXTURES[i % len(FIXTURES)]))
        queues.submit(redis, two.settings(), run, hotkey, source)

    def done() -> list[SubmissionRecord] | None:
        records = runs.records(redis, run.id)
        return records if len(records) == count and all(r.state.final for r in records) else None

    records = wait_for(done, 1800, "every submission final", two.parts())
    assert records is not None
    elapsed = time.time() - started
    prepares = _prepare_jobs(redis, run.id)
    benches = {h: _job(redis, f"bench-{run.id}-{h}") for h in hotkeys}
    per_worker: dict[str, Any] = {}
    for host in two.hosts:
        mine = sorted((b for b in benches.values() if b and b["worker"] == host.worker and b["started"]),
                      key=lambda b: b["started"])
        # Builds for this host that were still under way: (enqueued, ended) of each prepare job.
        builds = [(p["started"] or p["enqueued"], p["ended"]) for jobs in prepares.values() for p in jobs
                  if p["worker"] == host.builder and p["ended"]]
        idle_waiting = 0.0
        idle_total = 0.0
        for previous, following in zip(mine, mine[1:], strict=False):
            gap_start, gap_end = previous["ended"], following["started"]
            if gap_start is None or gap_end is None or gap_end <= gap_start:
                continue
            idle_total += gap_end - gap_start
            # The part of the gap during which one of this host's builds was running.
            covered = 0.0
            for b_start, b_end in builds:
                lo, hi = max(gap_start, b_start), min(gap_end, b_end)
                covered = max(covered, hi - lo)
            idle_waiting += covered
        baseline_builds = [p["ended"] - p["started"] for p in _baseline_jobs(redis, run.id, host.builder)]
        per_worker[host.worker] = {
            "host": host.name, "benchmarks": len(mine),
            # The first benchmark includes this worker's baseline measurement; before it, the GPU
            # waits for the baseline's and the first submission's preparation (nothing to run yet).
            "run_start_to_first_benchmark_s": round(mine[0]["started"] - started, 3) if mine else None,
            "baseline_prepare_s": [round(b, 3) for b in baseline_builds],
            "ready_to_start_s": [round(b["started"] - b["enqueued"], 3) for b in mine if b["enqueued"]],
            "idle_between_benchmarks_s": round(idle_total, 3),
            "idle_waiting_for_builds_s": round(idle_waiting, 3),
            "benchmark_s": [round(b["ended"] - b["started"], 3) for b in mine if b["ended"]],
        }
    by_host: dict[str, int] = {}
    for record in records:
        by_host[record.host or "-"] = by_host.get(record.host or "-", 0) + 1
    return {
        "submissions": count, "elapsed_s": round(elapsed, 1), "measured_by_host": by_host,
        "states": {r.hotkey: r.state.value for r in records},
        "prepared_by_gpu_s": round(sum(r.prepared_by_gpu_s for r in records), 3),
        "prepare_s": {h: [round((p["ended"] or 0) - (p["started"] or 0), 3) for p in jobs]
                      for h, jobs in sorted(prepares.items())},
        "gpu_workers": per_worker,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=6)
    parser.add_argument("--backend", type=Backend, choices=list(Backend), default=Backend.DOCKER,
                        help="docker: two engines, images seeded from this machine's (cache hits); process: "
                             "no engine, each host builds its venvs from nothing (builds that take time)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="multihost-bench-") as tmp:
        with TwoHosts(Path(tmp), FIXTURES, backend=args.backend) as two:
            result = measure(two, args.submissions)
    result["backend"] = args.backend.value
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
