"""`edgemaxx bench`: the baseline, then the submission, on the same inputs, each in its sandbox,
then similarity and the score exactly as a validator computes them (`worker.evaluate`)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from edgemaxx.contest import Contest
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend, PreparedSubmission, RunResult, RunStatus, TextToImageRequest
from edgemaxx.settings import Settings
from images.prepare import prepare
from images.source import parse_source
from images.urls import validate_repository_url
from sandbox.runner import ProgressFn
from sandbox.select import docker_client
from worker.evaluate import Outcome, Verdict, evaluate, measure_baseline

PhaseFn = Callable[[str, str, int | None, int | None], None]  # (row, phase, current, total)


def _quiet(row: str, phase: str, current: int | None = None, total: int | None = None) -> None:
    return None


class BenchReport(BaseModel):
    contest: str
    backend: Backend
    seed: str
    inputs: list[TextToImageRequest]
    baseline: RunResult | None = None
    submission: RunResult | None = None
    verdict: Verdict | None = None
    error: str = ""  # the run itself failed (e.g. the baseline): not the submission's fault

    @property
    def rows(self) -> list[RunResult]:
        return [r for r in (self.baseline, self.submission) if r is not None]


def _invalid(name: str, backend: Backend, reason: str, log_tail: str = "") -> RunResult:
    return RunResult(name=name, backend=backend, status=RunStatus.INVALID, reason=reason, log_tail=log_tail)


def _prepare(settings: Settings, spec: str, name: str, backend: Backend, on_phase: PhaseFn) -> PreparedSubmission:
    return prepare(settings, parse_source(spec), backend, name=name,
                   docker_client=docker_client() if backend is Backend.DOCKER else None,
                   progress=lambda phase: on_phase(name, phase, None, None))


def _runner_progress(name: str, on_phase: PhaseFn) -> ProgressFn:
    def report(phase: str, current: int | None = None, total: int | None = None) -> None:
        on_phase(name, phase, current, total)

    return report


def bench(settings: Settings, submission: str, baseline: str, contest: Contest, backend: Backend,
          requests: list[TextToImageRequest], seed: str, on_phase: PhaseFn = _quiet) -> BenchReport:
    report = BenchReport(contest=contest.id, backend=backend, seed=seed, inputs=requests)
    # 1. A submission refused outright (bad URL, private host) is said before the baseline runs.
    try:
        source = parse_source(submission)
        if source.url:
            validate_repository_url(source.url, allow_private=settings.allow_private_hosts)
    except SubmissionError as exc:
        report.submission = _invalid("submission", backend, exc.reason)
        return report

    # 2. The baseline: it sets the clock and is the reference for every comparison.
    try:
        prepared_baseline = _prepare(settings, baseline, "baseline", backend, on_phase)
    except SubmissionError as exc:
        report.error = f"the baseline cannot be prepared, so nothing can be compared: {exc.reason}"
        return report
    report.baseline = measure_baseline(settings, contest, prepared_baseline, requests,
                                       _runner_progress("baseline", on_phase))
    if report.baseline.status is not RunStatus.OK:
        report.error = f"the baseline failed, so nothing can be compared: {report.baseline.reason}"
        return report

    # 3. The submission, evaluated as a validator does.
    try:
        prepared = _prepare(settings, submission, "submission", backend, on_phase)
    except SubmissionError as exc:
        report.submission = _invalid("submission", backend, exc.reason, exc.log_tail)
        return report
    report.verdict = evaluate(settings, contest, report.baseline, prepared, requests,
                              _runner_progress("submission", on_phase))
    report.submission = report.verdict.result
    if report.verdict.outcome is Outcome.INVALID:
        report.submission.status = RunStatus.INVALID
        report.submission.reason = report.verdict.reason
    return report


def save_outputs(report: BenchReport, out: Path) -> None:
    """Every output image under out/<row>/NNN.<ext>, and the report as out/report.json."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for row in report.rows:
        folder = out / row.name
        folder.mkdir(exist_ok=True)
        for index, data in enumerate(row.outputs):
            if data is None:
                continue
            try:
                with Image.open(io.BytesIO(data)) as image:
                    ext = (image.format or "bin").lower().replace("jpeg", "jpg")
            except OSError:
                ext = "bin"
            (folder / f"{index:03d}.{ext}").write_bytes(data)
    (out / "report.json").write_text(json.dumps(report_json(report), indent=2))


def report_json(report: BenchReport) -> dict:
    """The report as `--json` prints it: each row with its metrics summary, the score and its terms."""
    data = report.model_dump(mode="json")
    for key, row in (("baseline", report.baseline), ("submission", report.submission)):
        if row is not None:
            data[key]["summary"] = row.metrics.summary()
    verdict = report.verdict
    data["score"] = verdict.score.score if verdict and verdict.score else None
    data["score_terms"] = verdict.score.terms if verdict and verdict.score else {}
    data["similarity"] = ({"mean": verdict.similarity.mean, "min": verdict.similarity.min,
                           "per_input": verdict.similarity.values}
                          if verdict and verdict.similarity else None)
    return data


def ensure_backend_ready(settings: Settings, backend: Backend) -> None:
    """The local base image must exist before Docker builds can start from it, and the engine must
    be able to run containers under the configured runtime, as a worker checks at start."""
    if backend is not Backend.DOCKER:
        return
    from images.base import base_image_exists
    from sandbox.select import check_sandbox_runtime

    if not base_image_exists(docker_client(), settings.base_image):
        raise InfrastructureError(
            f"base image {settings.base_image} is missing: run `edgemaxx base-image` first"
        )
    runtime = check_sandbox_runtime(settings)
    if runtime.problem:
        raise InfrastructureError(f"sandbox runtime {runtime.runtime}: {runtime.problem}")
