"""The chain service's status, this validator's weights history and the subnet's weights:
written by `edgemaxx chain`, shown by the API."""

from __future__ import annotations

from redis import Redis

from state import keys
from state.records import ChainStatus, SubnetWeights, WeightsAttempt
from state.runs import changed

WEIGHTS_HISTORY_KEPT = 500  # one a tempo (~72 min) is ~20 a day: about 3 weeks


def save_chain_status(redis: Redis, status: ChainStatus) -> None:
    redis.set(keys.CHAIN_STATUS, status.model_dump_json())


def load_chain_status(redis: Redis) -> ChainStatus | None:
    raw = redis.get(keys.CHAIN_STATUS)
    return ChainStatus.model_validate_json(raw) if raw else None


def record_own_weights(redis: Redis, attempt: WeightsAttempt) -> None:
    """Weights this validator set on chain (the whole vector, every contest combined)."""
    with redis.pipeline() as pipe:
        pipe.rpush(keys.WEIGHTS_HISTORY, attempt.model_dump_json())
        pipe.ltrim(keys.WEIGHTS_HISTORY, -WEIGHTS_HISTORY_KEPT, -1)
        changed(pipe)
        pipe.execute()


def weights_history(redis: Redis, limit: int = 100) -> list[WeightsAttempt]:
    """The last `limit` weights this validator set, oldest first."""
    return [WeightsAttempt.model_validate_json(raw) for raw in redis.lrange(keys.WEIGHTS_HISTORY, -limit, -1)]


def save_subnet_weights(redis: Redis, weights: SubnetWeights) -> None:
    with redis.pipeline() as pipe:
        pipe.set(keys.SUBNET_WEIGHTS, weights.model_dump_json())
        changed(pipe)
        pipe.execute()


def load_subnet_weights(redis: Redis) -> SubnetWeights | None:
    raw = redis.get(keys.SUBNET_WEIGHTS)
    return SubnetWeights.model_validate_json(raw) if raw else None
