"""`edgemaxx bench`: the baseline, then the submission, on the same inputs, each in its sandbox."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import RunResult, RunStatus
from edgemaxx.settings import Settings
from images.prepare import prepare
from images.source import parse_source
from images.urls import validate_repository_url
from sandbox.protocol import TextToImageRequest
from worker.benchmark import benchmark, limits_for, request_timeout_from_baseline

log = logging.getLogger(__name__)


class BenchReport(BaseModel):
    contest: str
    backend: str
    seed: str
    inputs: list[TextToImageRequest]
    baseline: RunResult | None = None
    submission: RunResult | None = None
    request_timeout_s: float | None = None
    error: str = ""  # the run itself failed (e.g. the baseline): not the submission's fault
    rows: list[RunResult] = Field(default_factory=list, exclude=True)


def _invalid(name: str, backend: str, reason: str, log_tail: str = "") -> RunResult:
    return RunResult(name=name, backend=backend, status=RunStatus.INVALID, reason=reason,
                     log_tail=log_tail)


def run_one(settings: Settings, spec: str, name: str, backend: str,
            requests: list[TextToImageRequest], contest: Contest,
            request_timeout_s: float) -> RunResult:
    client = _client(backend)
    try:
        prepared = prepare(settings, parse_source(spec), backend, name=name, docker_client=client)
    except SubmissionError as exc:
        return _invalid(name, backend, exc.reason, exc.log_tail)
    limits = limits_for(settings, request_timeout_s=request_timeout_s,
                        load_timeout_s=contest.timeouts.load_s, run_timeout_s=contest.timeouts.run_s)
    return benchmark(settings, prepared, requests, limits, client=client)


def _client(backend: str):  # noqa: ANN202
    if backend != "docker":
        return None
    from sandbox.docker_backend import docker_client

    return docker_client()


def bench(settings: Settings, submission: str, baseline: str | None, contest: Contest,
          backend: str, requests: list[TextToImageRequest], seed: str) -> BenchReport:
    report = BenchReport(contest=contest.id, backend=backend, seed=seed, inputs=requests)
    # A submission refused outright (bad URL, private host) is said before the baseline runs.
    try:
        source = parse_source(submission)
        if source.url:
            validate_repository_url(source.url, allow_private=settings.allow_private_hosts)
    except SubmissionError as exc:
        report.submission = _invalid("submission", backend, exc.reason)
        return report
    timeout = contest.timeouts.request_default_s
    if baseline:
        report.baseline = run_one(settings, baseline, "baseline", backend, requests, contest,
                                  timeout)
        if report.baseline.status is not RunStatus.OK:
            report.error = f"the baseline failed, so nothing can be compared: {report.baseline.reason}"
            return report
        timeout = request_timeout_from_baseline(settings, report.baseline,
                                                contest.timeouts.request_factor)
    report.request_timeout_s = timeout
    report.submission = run_one(settings, submission, "submission", backend, requests, contest,
                                timeout)
    return report


def save_outputs(report: BenchReport, out: Path) -> None:
    """Every output image under out/<row>/NNN.<ext>, and the report as out/report.json."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for row in (report.baseline, report.submission):
        if row is None:
            continue
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
    (out / "report.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2))


def ensure_backend_ready(settings: Settings, backend: str) -> None:
    """The local base image must exist before Docker builds can start from it."""
    if backend != "docker":
        return
    from images.base import base_image_exists

    client = _client(backend)
    if not base_image_exists(client, settings.base_image):
        raise InfrastructureError(
            f"base image {settings.base_image} is missing: run `edgemaxx base-image` first"
        )
