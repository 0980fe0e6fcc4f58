"""The pooled baseline: when a worker re-measures it, what it scores against, when drift is noted."""

from __future__ import annotations

from edgemaxx.models import Metrics, RunResult, RunStatus
from state.records import BaselineMeasurement
from worker import reference


def _measurement(median: float, after: int, status: RunStatus = RunStatus.OK) -> BaselineMeasurement:
    result = RunResult(name="baseline", backend="process", status=status,
                       metrics=Metrics(generation_times_s=[median] * 3))
    return BaselineMeasurement(result=result, after_submissions=after, seconds=10.0)


def test_the_baseline_is_due_first_and_every_n_submissions():
    assert reference.due([], 0, 6)
    pool = [_measurement(1.0, 0)]
    assert not reference.due(pool, 5, 6) and reference.due(pool, 6, 6)
    assert not reference.due(pool, 50, 0), "0: only at the start"
    pool.append(_measurement(1.0, 6))
    assert not reference.due(pool, 11, 6) and reference.due(pool, 12, 6)


def test_the_reference_is_the_median_measurement():
    pool = [_measurement(t, i) for i, t in enumerate([1.08, 1.11, 1.06, 1.10, 1.09])]
    assert reference.pooled(pool).metrics.median_generation_time_s == 1.09
    # A failed measurement never becomes the reference.
    pool.append(_measurement(0.5, 9, RunStatus.INVALID))
    assert reference.pooled(pool).metrics.median_generation_time_s in (1.08, 1.09)


def test_drift_around_a_submission_is_noted_past_the_margin():
    pool = [_measurement(1.00, 0), _measurement(1.01, 6), _measurement(1.06, 12)]
    assert abs((reference.drift(pool[0], pool[1]) or 0.0) - 0.01) < 1e-9
    assert reference.drift_note(pool, 3, 0.03) == "", "1 % between the measurements around it: noise"
    note = reference.drift_note(pool, 8, 0.03)
    assert "moved +5.0%" in note and "noise margin" in note
    assert reference.drift_note(pool, 20, 0.03) == "", "no measurement after it yet"


def test_the_submissions_between_two_disagreeing_measurements_are_in_doubt():
    from edgemaxx.models import SourceKind, SubmissionSource
    from state.records import Remeasure, SubmissionRecord, SubmissionState

    def record(hotkey: str, after: int | None, worker: str = "gpu0", state: SubmissionState = SubmissionState.SCORED,
               remeasure: Remeasure = Remeasure.NONE) -> SubmissionRecord:
        return SubmissionRecord(hotkey=hotkey, source=SubmissionSource(kind=SourceKind.LOCAL, path="/x"), state=state,
                                worker=worker, measured_after=after, remeasure=remeasure)

    previous, latest = _measurement(1.00, 6), _measurement(1.10, 12)
    records = [record("before", 5), record("first", 6), record("last", 11), record("after", 12),
               record("other-gpu", 8, worker="gpu1"), record("invalid", 8, state=SubmissionState.INVALID),
               record("again", 9, remeasure=Remeasure.DONE), record("unmeasured", None)]
    assert [r.hotkey for r in reference.in_doubt(records, "gpu0", previous, latest)] == ["first", "last"]
