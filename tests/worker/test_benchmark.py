"""Choosing the reference among repeated baseline runs."""

from __future__ import annotations

from edgemaxx.models import Metrics, RunResult, RunStatus
from worker.benchmark import median_run, request_timeout_from_baseline


def _run(median: float | None, status: RunStatus = RunStatus.OK, tag: bytes = b"") -> RunResult:
    result = RunResult(name="baseline", backend="process", status=status,
                       metrics=Metrics(generation_times_s=[] if median is None else [median] * 3))
    result.outputs = [tag]
    return result


def test_median_run_keeps_metrics_and_outputs_together():
    runs = [_run(1.12, tag=b"slow"), _run(1.04, tag=b"mid"), _run(1.02, tag=b"fast")]
    chosen = median_run(runs)
    assert chosen.metrics.median_generation_time_s == 1.04 and chosen.outputs == [b"mid"]
    # Failed runs do not count; with two left, the faster of the middle pair.
    runs.append(_run(None, RunStatus.INVALID))
    assert median_run(runs).outputs == [b"mid"]
    assert median_run([_run(2.0, tag=b"a"), _run(1.0, tag=b"b")]).outputs == [b"b"]
    assert median_run([_run(None, RunStatus.INVALID)]).status is RunStatus.INVALID


def test_request_timeout_follows_the_baseline(settings):
    assert request_timeout_from_baseline(settings, None) == settings.request_timeout_s
    assert request_timeout_from_baseline(settings, _run(10.0), 2.0) == 20.0
    assert request_timeout_from_baseline(settings, _run(0.01), 2.0) == settings.request_timeout_floor_s
