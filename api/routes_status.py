"""GET /v1/status, served from the process's snapshot (rebuilt at most every second)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import RedisDep
from api.schemas import StatusPublic
from api.snapshot import NOT_MODIFIED, serve
from api.status import build_status

router = APIRouter(tags=["status"])


@router.get("/v1/status", response_model=StatusPublic, responses=NOT_MODIFIED)
async def status(request: Request, redis: RedisDep) -> Response:
    """Redis, workers (what each is doing, since when, how long it should still take), queues, each
    contest's current run (and when its benchmarks should be done), weights, disks, warnings.
    At most about a second old; send the ETag back in If-None-Match for a 304."""
    return await serve(request, "status", lambda: build_status(redis), versioned=False)
