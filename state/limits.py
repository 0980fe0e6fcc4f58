"""Per-client request budgets and signed-request nonces, shared by every API process."""

from __future__ import annotations

from redis import Redis

from state import keys


def count_request(redis: Redis, bucket: str, client: str, window_s: int) -> tuple[int, int]:
    """Count one request from `client` in the current window: (requests so far, seconds left)."""
    key = keys.rate(bucket, client)
    with redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
    return int(count), max(int(ttl), 1)


class RedisNonceStore:
    """Replay protection for bittensor's `http_auth.verify`: one SET NX EX per (hotkey, nonce)."""

    def __init__(self, redis: Redis, retention_s: int = 120) -> None:
        self.redis = redis
        self.retention_s = retention_s

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        return bool(self.redis.set(keys.nonce(hotkey_ss58, nonce_ns), "1", nx=True, ex=self.retention_s))
