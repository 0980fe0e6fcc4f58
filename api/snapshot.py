"""Pages many people can watch at once: JSON kept rendered in the API process.

A busy route (status, leaderboards, runs, weights) is built once, encoded once, and then served as
bytes to every client until it is stale: the status after `STATUS_MAX_AGE_S` (liveness and
progress change without a write), the rest when run state changes (`state.runs.version`, a
counter every write of run state bumps, read here every `poll_s`). A stale entry is still served
while one rebuild runs in a thread (stale-while-revalidate), so no client waits on Redis except
the first. Each body carries an ETag: a client that sends it back in If-None-Match gets a 304
and no body. What a client sees is at most a few seconds old.

Redis down: the poll notices within `poll_s`; from then on nothing stale is served, so a
route's own handling (a 503, or the status saying so) answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError

from state import runs

log = logging.getLogger(__name__)

STATUS_MAX_AGE_S = 1.0
# A stale entry is served while it is rebuilt only if it was built this recently: with clients
# polling, entries stay young; the first client after a quiet spell (or after a write to an entry
# built long ago) waits for the rebuild instead of getting old data.
STALE_SERVED_S = 3.0
VERSIONED_MAX_AGE_S = 60.0  # a safety net: run state that changed without bumping the counter
ENTRIES_KEPT = 256  # past runs, contests, ...: the least recently served go first
JSON_CACHE_CONTROL = "no-cache"  # a browser revalidates every time (a 304 when nothing changed)


@dataclass(frozen=True)
class Encoded:
    body: bytes
    etag: str
    built_at: float  # monotonic
    version: int | None  # the run-state version it was built at (None: time-based)
    media_type: str = "application/json"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def encode(value: BaseModel | bytes, version: int | None, media_type: str = "application/json") -> Encoded:
    body = value if isinstance(value, bytes) else value.model_dump_json().encode()
    return Encoded(body=body, etag=etag_of(body), built_at=time.monotonic(), version=version, media_type=media_type)


def not_modified(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match")
    if not sent:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in sent.split(","))


def respond(request: Request, entry: Encoded, cache_control: str = JSON_CACHE_CONTROL) -> Response:
    headers = {"ETag": entry.etag, "Cache-Control": cache_control}
    if not_modified(request, entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(content=entry.body, media_type=entry.media_type, headers=headers)


class Snapshot:
    """The rendered entries of one API process, and the run-state version they are checked against."""

    def __init__(self, redis: Redis, poll_s: float = 0.5) -> None:
        self.redis = redis
        self.poll_s = poll_s
        self.version: int | None = None  # None: unknown (not polled yet, or Redis is down)
        self.entries: OrderedDict[str, Encoded] = OrderedDict()
        self._rebuilding: dict[str, asyncio.Task[Encoded]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._poll_once()
        self._poller = asyncio.create_task(self._poll(), name="snapshot-version-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        for task in list(self._rebuilding.values()):
            task.cancel()

    async def _poll_once(self) -> None:
        try:
            current = await asyncio.to_thread(runs.version, self.redis)
        except RedisError as exc:
            if self.version is not None:
                log.warning("snapshot: Redis is unreachable (%s); serving nothing stale", exc)
            self.version = None
            self.entries.clear()
            return
        self.version = current

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self._poll_once()

    def _fresh(self, entry: Encoded, max_age_s: float, versioned: bool) -> bool:
        if versioned and entry.version != self.version:
            return False
        return time.monotonic() - entry.built_at < max_age_s

    async def get(self, key: str, build: Callable[[], BaseModel | bytes], *, versioned: bool,
                  max_age_s: float | None = None) -> Encoded:
        """The entry for `key`, built by `build` (in a thread) when missing; when stale, the stale one
        while a rebuild runs. `build`'s exceptions (an HTTPException, a RedisError) reach the
        caller when there is nothing to serve."""
        max_age = max_age_s if max_age_s is not None else (VERSIONED_MAX_AGE_S if versioned else STATUS_MAX_AGE_S)
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
            if self._fresh(entry, max_age, versioned):
                return entry
            if self.version is not None and time.monotonic() - entry.built_at < STALE_SERVED_S:
                self._rebuild(key, build, versioned)
                return entry
        return await asyncio.shield(self._rebuild(key, build, versioned))

    def _rebuild(self, key: str, build: Callable[[], BaseModel | bytes], versioned: bool) -> asyncio.Task[Encoded]:
        """One rebuild per key at a time: every caller waiting on a missing entry shares it."""
        task = self._rebuilding.get(key)
        if task is None:
            task = asyncio.create_task(self._build(key, build, versioned))
            self._rebuilding[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def _build(self, key: str, build: Callable[[], BaseModel | bytes], versioned: bool) -> Encoded:
        version = self.version  # read before: a write during the build leaves the entry stale
        value = await asyncio.to_thread(build)
        return encode(value, version if versioned else None)

    def _done(self, key: str, task: asyncio.Task[Encoded]) -> None:
        self._rebuilding.pop(key, None)
        if task.cancelled():
            return
        if task.exception() is not None:
            self.entries.pop(key, None)  # the next caller builds it again and sees the error
            return
        self.entries[key] = task.result()
        self.entries.move_to_end(key)
        while len(self.entries) > ENTRIES_KEPT:
            self.entries.popitem(last=False)


async def serve(request: Request, key: str, build: Callable[[], BaseModel | bytes], *, versioned: bool,
                max_age_s: float | None = None) -> Response:
    """The route's body from the process's snapshot, or a 304 when the client has it already."""
    snapshot: Snapshot = request.app.state.snapshot
    return respond(request, await snapshot.get(key, build, versioned=versioned, max_age_s=max_age_s))


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "not modified: the If-None-Match ETag is current"}}
