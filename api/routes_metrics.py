"""GET /metrics: Prometheus metrics, read from Redis at scrape time (every process agrees)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from api.deps import RedisDep
from edgemaxx.contest import all_contests
from state import metrics, workers
from state.hosts import known_hosts
from worker.queues import host_queue_depths, queue_depths

router = APIRouter(tags=["metrics"])


class RedisCollector(Collector):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator:
        try:
            contest_ids = [c.id for c in all_contests()]
            depths = queue_depths(self.redis, contest_ids)
            for host in known_hosts(self.redis):  # each host's own queues too
                depths |= host_queue_depths(self.redis, host, contest_ids)
            counters = metrics.counters(self.redis)
            durations = metrics.durations(self.redis)
            seen = workers.list_workers(self.redis)
        except RedisError:
            up = GaugeMetricFamily("edgemaxx_redis_up", "Redis reachable")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("edgemaxx_redis_up", "Redis reachable")
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("edgemaxx_queue_depth", "Jobs waiting per queue", labels=["queue"])
        for name, count in depths.items():
            depth.add_metric([name], count)
        yield depth
        jobs = CounterMetricFamily("edgemaxx_jobs", "Finished submissions by outcome", labels=["outcome"])
        for name, value in counters.items():
            if name.startswith("jobs_"):
                jobs.add_metric([name.removeprefix("jobs_")], value)
        yield jobs
        summary = SummaryMetricFamily("edgemaxx_benchmark_seconds",
                                      "Benchmark durations (last 1000), baseline included when run")
        summary.add_metric([], count_value=len(durations), sum_value=sum(durations))
        yield summary
        busy = GaugeMetricFamily("edgemaxx_gpu_busy_fraction", "Fraction of uptime a GPU worker was busy",
                                 labels=["worker"])
        alive = GaugeMetricFamily("edgemaxx_worker_alive", "Worker heartbeat fresh", labels=["worker"])
        now = time.time()
        for worker, is_alive in seen:
            alive.add_metric([worker.name], 1 if is_alive else 0)
            fraction = worker.busy_fraction(now)
            if fraction is not None:
                busy.add_metric([worker.name], fraction)
        yield busy
        yield alive


@router.get("/metrics", include_in_schema=False)
def prometheus(redis: RedisDep) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(redis))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")
