"""Miners' pre-commit checks on the validator: POST /v1/checks → 202 {id}; GET /v1/checks/{id}.

The URL is validated before anything is fetched (https only, no credentials, no private,
loopback or link-local IP literals), and each client address gets a few checks an hour.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, Field
from rq import Queue

from api.deps import RedisDep, SettingsDep
from edgemaxx import keys
from edgemaxx.contest import load_contest
from edgemaxx.errors import SubmissionError
from edgemaxx.records import CheckRecord
from images.urls import validate_repository_url
from worker import jobs

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
    bucket = keys.rate("checks", client)
    with redis.pipeline() as pipe:
        pipe.incr(bucket)
        pipe.expire(bucket, 3600, nx=True)
        count, _ = pipe.execute()
    if count > settings.checks_per_hour:
        ttl = redis.ttl(bucket)
        raise HTTPException(429, f"at most {settings.checks_per_hour} checks an hour per client; "
                                 f"try again in {max(ttl, 1)} s", headers={"Retry-After": str(max(ttl, 1))})
    record = CheckRecord(id=uuid.uuid4().hex, repository=url, revision=body.revision.lower(),
                         contest=body.contest)
    redis.set(keys.check(record.id), record.model_dump_json(), ex=settings.check_ttl_s)
    Queue(keys.QUEUE_CHECKS, connection=redis).enqueue(
        jobs.run_check, record.id, job_id=f"check-{record.id}", job_timeout=settings.job_timeout_s,
        description=f"check {url}@{record.revision}")
    return CheckAccepted(id=record.id)


@router.get("/v1/checks/{check_id}", response_model=CheckRecord, responses={404: {}})
def get_check(redis: RedisDep, check_id: str = Path(pattern=r"^[0-9a-f]{32}$")) -> CheckRecord:
    raw = redis.get(keys.check(check_id))
    if raw is None:
        raise HTTPException(404, f"no check {check_id} (checks are kept for a week)")
    return CheckRecord.model_validate_json(raw)
