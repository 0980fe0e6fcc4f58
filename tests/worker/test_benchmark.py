"""Choosing the reference among repeated baseline runs; the clock the baseline sets."""

from __future__ import annotations

from edgemaxx.contest import load_contest
from edgemaxx.models import Metrics, RunResult, RunStatus
from worker.evaluate import limits_for, median_run, request_timeout


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
    contest = load_contest("flux-4090")  # request_factor 2, request_default_s 120
    assert request_timeout(settings, None, None) == settings.request_timeout_s
    assert request_timeout(settings, contest, None) == 120
    assert request_timeout(settings, contest, _run(10.0)) == 20.0
    assert request_timeout(settings, contest, _run(0.01)) == settings.request_timeout_floor_s
    limits = limits_for(settings, contest, _run(10.0))
    assert (limits.load_timeout_s, limits.request_timeout_s, limits.run_timeout_s) == (240, 20.0, 3600)
