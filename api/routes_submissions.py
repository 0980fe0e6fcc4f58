"""Submissions: read one (anyone), enqueue one (the operator only)."""

from __future__ import annotations

import datetime as dt
import pathlib

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import OperatorDep, RedisDep, SettingsDep
from api.schemas import SubmissionAccepted, SubmissionCreate, SubmissionPublic
from api.views import submission_view
from edgemaxx.contest import load_contest
from edgemaxx.errors import SubmissionError
from edgemaxx.models import SourceKind, SubmissionSource
from images.urls import validate_repository_url
from state import runs
from worker.queues import start_run, submit

router = APIRouter(tags=["submissions"])


@router.get("/v1/submissions/{hotkey}", response_model=SubmissionPublic,
            responses={404: {"description": "no submission from this hotkey"}})
def get_submission(redis: RedisDep,
                   hotkey: str = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")) -> SubmissionPublic:
    found = runs.latest_record(redis, hotkey)
    if found is None:
        raise HTTPException(404, f"no submission from hotkey {hotkey}")
    return submission_view(*found)


@router.post("/v1/submissions", response_model=SubmissionAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={401: {}, 403: {}, 404: {}, 422: {}})
def create_submission(body: SubmissionCreate, redis: RedisDep, settings: SettingsDep,
                      _: OperatorDep) -> SubmissionAccepted:
    try:
        contest = load_contest(body.contest)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    source = _source(body, settings.allow_local_sources, settings.allow_private_hosts)
    run = runs.current_run(redis, contest.id)
    if run is None or run.end is not None:
        # Without the chain, a new run when there is none open; the chain service seeds runs
        # from block hashes. The seed names the moment, so an ended run is never reopened.
        run = start_run(redis, settings, contest, f"manual-{dt.datetime.now(dt.UTC).isoformat()}")
    record = submit(redis, settings, run, body.hotkey, source, uid=body.uid, block=body.block)
    return SubmissionAccepted(run_id=run.id, hotkey=record.hotkey, state=record.state)


def _source(body: SubmissionCreate, allow_local: bool, allow_private: bool) -> SubmissionSource:
    if body.repository.startswith("/"):
        if not allow_local:
            raise HTTPException(422, "local paths are not accepted (EDGEMAXX_ALLOW_LOCAL_SOURCES is off)")
        return SubmissionSource(kind=SourceKind.LOCAL, path=pathlib.Path(body.repository))
    if body.revision is None:
        raise HTTPException(422, "revision is required for a repository URL")
    try:
        url = validate_repository_url(body.repository, allow_private=allow_private, resolve=False)
    except SubmissionError as exc:
        raise HTTPException(422, exc.reason) from exc
    return SubmissionSource(kind=SourceKind.GIT, url=url, revision=body.revision.lower())
