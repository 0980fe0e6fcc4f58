"""The chain service's status: written by `edgemaxx chain`, shown by the API."""

from __future__ import annotations

from redis import Redis

from state import keys
from state.records import ChainStatus


def save_chain_status(redis: Redis, status: ChainStatus) -> None:
    redis.set(keys.CHAIN_STATUS, status.model_dump_json())


def load_chain_status(redis: Redis) -> ChainStatus | None:
    raw = redis.get(keys.CHAIN_STATUS)
    return ChainStatus.model_validate_json(raw) if raw else None
