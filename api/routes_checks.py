"""Miners' pre-commit checks on the validator: POST /v1/checks → 202 {id}; GET /v1/checks/{id}.

The URL is validated before anything is fetched (https only, no credentials, no private,
loopback or link-local IP literals), and each client address gets a few checks an hour.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from api.deps import RedisDep, SettingsDep
from edgemaxx.contest import load_contest
from edgemaxx.errors import SubmissionError
from images.urls import validate_repository_url
from state.checks import load_check
from state.limits import count_request
from state.records import CheckRecord
from worker.queues import enqueue_check

router = APIRouter(tags=["checks"])


class CheckCreate(BaseModel):
    repository: str = Field(min_length=1, max_length=512)
    revision: str = Field(pattern=r"^[0-9a-fA-F]{7,40}$")
    contest: str = Field(min_length=1, max_length=64)


class CheckAccepted(BaseModel):
    id: str


@router.post("/v1/checks", response_model=CheckAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={404: {}, 422: {}, 429: {}})
def create_check(body: CheckCreate, request: Request, redis: RedisDep, settings: SettingsDep) -> CheckAccepted:
    try:
        url = validate_repository_url(body.repository, allow_private=settings.allow_private_hosts, resolve=False)
    except SubmissionError as exc:
        raise HTTPException(422, exc.reason) from exc
    try:
        load_contest(body.contest)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    client = request.client.host if request.client else "unknown"
    count, retry_after = count_request(redis, "checks", client, 3600)
    if count > settings.checks_per_hour:
        raise HTTPException(429, f"at most {settings.checks_per_hour} checks an hour per client; "
                                 f"try again in {retry_after} s", headers={"Retry-After": str(retry_after)})
    record = CheckRecord(id=uuid.uuid4().hex, repository=url, revision=body.revision.lower(),
                         contest=body.contest)
    enqueue_check(redis, settings, record)
    return CheckAccepted(id=record.id)


@router.get("/v1/checks/{check_id}", response_model=CheckRecord, responses={404: {}})
def get_check(redis: RedisDep, check_id: str = Path(pattern=r"^[0-9a-f]{32}$")) -> CheckRecord:
    record = load_check(redis, check_id)
    if record is None:
        raise HTTPException(404, f"no check {check_id} (checks are kept for a week)")
    return record
