"""What each service's start-up checks found: written by the builders and workers, shown by the API.

A misconfigured box (no Docker socket, a GPU that does not exist, ...) is reported here with a
one-line reason, so `GET /v1/status` says why a worker never came up.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field
from redis import Redis

from state import keys


class PreflightReport(BaseModel):
    service: str  # the worker's name
    kind: str  # gpu or builder
    checked_at: float = Field(default_factory=time.time)
    problems: list[str] = Field(default_factory=list)  # it cannot work: it waits and takes no job
    warnings: list[str] = Field(default_factory=list)  # it works, but not for everything

    @property
    def ok(self) -> bool:
        return not self.problems


def save_preflight(redis: Redis, report: PreflightReport) -> None:
    redis.hset(keys.PREFLIGHT, report.service, report.model_dump_json())


def load_preflight(redis: Redis, service: str) -> PreflightReport | None:
    raw = redis.hget(keys.PREFLIGHT, service)
    return PreflightReport.model_validate_json(raw) if raw else None


def list_preflight(redis: Redis) -> list[PreflightReport]:
    """Every report with something to say (problems or warnings), by service name."""
    reports = [PreflightReport.model_validate_json(raw) for _, raw in sorted(redis.hgetall(keys.PREFLIGHT).items())]
    return [r for r in reports if r.problems or r.warnings]
