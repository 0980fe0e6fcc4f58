"""The API's snapshot: a stale entry is served while it is rebuilt only when it is recent, so a
lone client after a quiet spell sees fresh data, not what was rendered minutes ago."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel
from redis import Redis

from api import snapshot
from tests.service import RedisServer


class Count(BaseModel):
    n: int


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield Redis.from_url(server.url)
    server.kill()


def test_recent_stale_entries_are_served_while_rebuilt_old_ones_are_not(redis, monkeypatch):
    monkeypatch.setattr(snapshot, "STALE_SERVED_S", 2.0)
    builds: list[int] = []

    def build() -> Count:
        builds.append(len(builds) + 1)
        return Count(n=len(builds))

    async def scenario() -> list[int]:
        store = snapshot.Snapshot(redis, poll_s=0.05)
        await store.start()
        try:
            seen = [(await store.get("status", build, versioned=False, max_age_s=0.2)).body]
            await asyncio.sleep(0.3)  # stale, but recent: served as is while one rebuild runs
            seen.append((await store.get("status", build, versioned=False, max_age_s=0.2)).body)
            while store._rebuilding:  # the rebuild lands
                await asyncio.sleep(0.01)
            seen.append((await store.get("status", build, versioned=False, max_age_s=0.2)).body)
            time.sleep(2.2)  # quiet: the entry is now older than STALE_SERVED_S
            seen.append((await store.get("status", build, versioned=False, max_age_s=0.2)).body)
            return [Count.model_validate_json(body).n for body in seen]
        finally:
            await store.stop()

    assert asyncio.run(scenario()) == [1, 1, 2, 3]
    assert builds == [1, 2, 3]
