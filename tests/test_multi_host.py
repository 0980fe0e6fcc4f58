"""Several hosts sharing one Redis, for real: two Docker engines on this machine stand in for two
hosts (tests.multihost), each with its own data directory, builder and worker.

A contest of the baseline and four submissions: each is assigned to a host, prepared there and
benchmarked there; one host's worker and its engine are killed mid-benchmark, and what it held
(the benchmark in flight, and whatever still waited in its queue) moves to the other host, which
prepares and finishes it. Every submission lands exactly once.
"""

from __future__ import annotations

import collections
import time

import httpx
import pytest
import redis.exceptions
from redis import Redis

from edgemaxx.contest import load_contest
from edgemaxx.models import SourceKind, SubmissionSource
from state import runs as store
from state.records import SubmissionState
from tests.conftest import fixture_path
from tests.multihost import TwoHosts
from tests.service import wait_for
from worker import queues

# The baseline's own fixture twice (two hosts, two copies), one that crashes at load, one whose
# images are garbage: verdicts that do not depend on which host measured them.
SUBMISSIONS = {"hk-faster": "flux-faster", "hk-faster-2": "flux-faster", "hk-crash": "crash-at-load",
               "hk-garbage": "garbage-output"}
EXPECTED = {"hk-faster": SubmissionState.SCORED, "hk-faster-2": SubmissionState.SCORED,
            "hk-crash": SubmissionState.INVALID, "hk-garbage": SubmissionState.INVALID}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    with TwoHosts(tmp_path_factory.mktemp("multihost"), sorted(set(SUBMISSIONS.values()))) as two:
        yield two


def test_redis_refuses_a_client_without_the_password(hosts):
    bare = f"redis://127.0.0.1:{hosts.redis_server.port}/0"
    with pytest.raises(redis.exceptions.AuthenticationError, match="(?i)auth"):
        Redis.from_url(bare).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        Redis.from_url(f"redis://:wrong-{hosts.password}@127.0.0.1:{hosts.redis_server.port}/0").ping()
    assert hosts.redis().ping()


def _status(hosts) -> dict:
    return httpx.get(f"{hosts.base}/v1/status", timeout=10).json()


def test_two_hosts_share_a_contest_and_one_host_dies_mid_run(hosts):
    redis = hosts.redis()
    a, b = hosts.a, hosts.b
    contest = load_contest(str(hosts.contest))
    run = queues.start_run(redis, hosts.settings(), contest, f"seed-{time.time_ns()}")

    # 1. /v1/status shows both hosts, each with its workers and its own queues (its snapshot may be
    #    a moment older than the heartbeats the fixture waited for).
    def both_shown() -> dict | None:
        shown = {h["host"]: h for h in _status(hosts)["hosts"]}
        ready = all(h.name in shown and shown[h.name]["builders"] == 1 and shown[h.name]["gpu_workers"] == 1
                    for h in (a, b))
        return shown if ready else None

    by_host = wait_for(both_shown, 30, "/v1/status to show both hosts' builder and worker", hosts.parts())
    for host in (a, b):
        view = by_host[host.name]
        assert view["alive"] and view["builders"] == 1 and view["gpu_workers"] == 1, view
        assert set(view["workers"]) == {host.builder, host.worker}
        assert f"edgemaxx-prepare@{host.name}" in view["queues"]

    # 2. Submissions are spread over the live hosts (least loaded first).
    for hotkey, fixture in SUBMISSIONS.items():
        queues.submit(redis, hosts.settings(), run, hotkey,
                      SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(fixture)))
    assigned = {r.hotkey: r.host for r in store.records(redis, run.id)}
    assert collections.Counter(assigned.values()) == {a.name: 2, b.name: 2}, assigned

    # 3. Host B dies (its worker and its engine, kill -9) in the middle of a benchmark: one of the
    #    faster fixture's (tens of seconds; the invalid ones end within a second, too short to aim at).
    def b_busy():
        running = [r for r in store.records(redis, run.id) if r.state is SubmissionState.BENCHMARKING
                   and r.worker == b.worker and SUBMISSIONS[r.hotkey] == "flux-faster"]
        return running[0] if running else None

    victim = wait_for(b_busy, 420, "host B to benchmark its faster submission", hosts.parts())
    b.services["worker"].kill_tree()
    hosts.engine.kill()

    # 4. Everything ends, each submission exactly once; what B was running moved to A.
    def all_final():
        records = store.records(redis, run.id)
        return records if len(records) == len(SUBMISSIONS) and all(r.state.final for r in records) else None

    records = {r.hotkey: r for r in wait_for(all_final, 420, "every submission final", hosts.parts())}
    landings = store.landings(redis, run.id)
    assert sorted(landings) == sorted(SUBMISSIONS), f"each lands exactly once: {landings}"
    for hotkey, expected in EXPECTED.items():
        record = records[hotkey]
        assert record.state is expected, f"{hotkey}: {record.state} {record.reason}"
    moved = records[victim.hotkey]
    assert moved.worker == a.worker and moved.host == a.name, moved
    assert moved.prepared is not None and moved.prepared.host == a.name, "prepared again on the host that measured it"
    assert moved.prepared_by_gpu_s == 0, "prepared ahead by A's builder, not by A's GPU worker"
    measured = {r.hotkey: r for r in records.values() if r.worker}
    for record in measured.values():
        # Host-affine: prepared where it was measured, by that host's builder, never the GPU's time.
        assert record.prepared is not None and record.prepared.host == record.host, record
        assert record.worker == {a.name: a.worker, b.name: b.worker}[record.host]
    assert f"baseline@{b.worker}" in store.order(redis, run.id), "host B measured its baseline before it died"

    # 5. Baselines stay per worker: each GPU measured its own before its first submission.
    order = store.order(redis, run.id)

    def measured_by(host) -> list[int]:
        """Positions in `order` of the benchmarks `host`'s worker started (B started the victim first)."""
        found = []
        for i, entry in enumerate(order):
            if entry == victim.hotkey:
                if (i == order.index(entry)) == (host is b):
                    found.append(i)
            elif entry in SUBMISSIONS and records[entry].worker == host.worker:
                found.append(i)
        return found

    for host in (a, b):
        mine = measured_by(host)
        assert mine and order.index(f"baseline@{host.worker}") < mine[0], order

    # 6. The run's leaderboard says which host and GPU worker measured each; /v1/status, that B is gone.
    detail = httpx.get(f"{hosts.base}/v1/runs/{run.id}", timeout=10)
    assert detail.status_code == 200, detail.text
    rows = {r["hotkey"]: r for r in detail.json()["leaderboard"]}
    for hotkey, record in measured.items():
        assert rows[hotkey]["host"] == record.host and rows[hotkey]["worker"] == record.worker
    assert rows[victim.hotkey]["host"] == a.name
    # (The status is served stale while it is rebuilt: ask until it is the current one.)
    def b_gone():
        view = {h["host"]: h for h in _status(hosts)["hosts"]}
        return view if view[b.name]["gpu_workers"] == 0 else None

    view = wait_for(b_gone, 30, "/v1/status to show host B without its GPU worker", hosts.parts())
    assert view[a.name]["gpu_workers"] == 1 and view[b.name]["builders"] == 1
    assert not [w for w in _status(hosts)["warnings"] if w.startswith(f"host {b.name}")], "its builder lives on"
