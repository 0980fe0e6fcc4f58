"""Miners' pre-commit checks (POST /v1/checks): one record per check, kept for a while."""

from __future__ import annotations

import time

from redis import Redis

from state import keys
from state.records import CheckRecord


def save_check(redis: Redis, record: CheckRecord, ttl_s: int) -> None:
    record.updated_at = time.time()
    redis.set(keys.check(record.id), record.model_dump_json(), ex=ttl_s)


def load_check(redis: Redis, check_id: str) -> CheckRecord | None:
    raw = redis.get(keys.check(check_id))
    return CheckRecord.model_validate_json(raw) if raw else None
