"""`edgemaxx healthcheck`: one service's health as `GET /v1/status` sees it, for compose healthchecks.

Each check answers (healthy, one line saying why); the command prints the line and exits 0 or 1.
Light on purpose: Docker runs it every interval in every container (and cli.app imports this module
for its enum, so Redis and the state modules load only when a check runs).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

    from edgemaxx.settings import Settings


class HealthTarget(StrEnum):
    API = "api"
    WORKER = "worker"
    BUILDER = "builder"
    CHAIN = "chain"


def check_api(url: str) -> tuple[bool, str]:
    """The API answers /v1/status, and Redis with it."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    if not body.get("redis"):
        return False, f"{url} answers, but Redis is unreachable from the API"
    alive = sum(1 for w in body.get("workers", []) if w.get("alive"))
    return True, f"{url} answers; {alive} live worker(s)"


def check_worker(settings: Settings, name: str) -> tuple[bool, str]:
    """Alive (a fresh heartbeat), exactly as /v1/status shows it, and taking jobs (its sandbox runtime
    passed its check); else why not."""
    from redis.exceptions import RedisError

    from state import workers
    from state.preflight import load_preflight

    try:
        redis = _redis(settings)
        listed = workers.list_workers(redis)
        alive = {status.name: is_alive for status, is_alive in listed}
        statuses = {status.name: status for status, _ in listed}
        report = load_preflight(redis, name)
    except RedisError as exc:
        return False, f"Redis at {settings.redis_url_shown} unreachable: {exc}"
    if alive.get(name) and statuses[name].sandbox_problem:
        return False, f"{name} takes no benchmark job: {statuses[name].sandbox_problem}"
    if alive.get(name):
        return True, f"{name} is alive"
    if report is not None and report.problems:
        return False, f"{name} cannot start: {'; '.join(report.problems)}"
    if name not in alive:
        return False, f"{name} has not started yet (no heartbeat)"
    return False, f"{name} has no fresh heartbeat (for {settings.worker_heartbeat_ttl_s} s)"


def check_chain(settings: Settings) -> tuple[bool, str]:
    """The chain service publishes its status after every iteration, failed ones included (with
    the error and a backoff of at most chain_backoff_max_s): healthy while that keeps coming."""
    from redis.exceptions import RedisError

    from state.chain import load_chain_status

    try:
        status = load_chain_status(_redis(settings))
    except RedisError as exc:
        return False, f"Redis at {settings.redis_url_shown} unreachable: {exc}"
    if status is None:
        return False, "the chain service has published no status yet"
    limit = settings.chain_backoff_max_s + settings.chain_poll_blocks * 12 + 120
    age = time.time() - status.updated_at
    if age > limit:
        return False, f"the chain service's last status is {age:.0f} s old (more than {limit:.0f} s)"
    notes = [n for n in (status.error, status.wallet_error) if n]
    return True, f"chain status {age:.0f} s old, block {status.block}" + (f" ({'; '.join(notes)})" if notes else "")


def _redis(settings: Settings) -> Redis:
    from redis import Redis
    from redis.exceptions import RedisError

    if not settings.redis_url:
        raise RedisError("EDGEMAXX_REDIS_URL is not set")
    return Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
