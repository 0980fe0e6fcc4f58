"""The FastAPI app: built by create_app(settings), never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import RedisError

from api import (
    pages,
    routes_checks,
    routes_contests,
    routes_metrics,
    routes_runs,
    routes_status,
    routes_submissions,
    routes_weights,
)
from api.snapshot import Snapshot
from edgemaxx import __version__
from edgemaxx.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.redis_url:
            raise RuntimeError("EDGEMAXX_REDIS_URL is not set")
        app.state.settings = settings
        app.state.redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        app.state.snapshot = Snapshot(app.state.redis)
        await app.state.snapshot.start()
        yield
        await app.state.snapshot.stop()
        app.state.redis.close()

    app = FastAPI(title="edgemaxx validator", version=__version__, lifespan=lifespan)
    for module in (routes_status, routes_contests, routes_runs, routes_submissions, routes_weights, routes_checks,
                   routes_metrics, pages):
        app.include_router(module.router)

    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis unavailable: {exc}"}, status_code=503)

    return app


def serve(settings: Settings) -> None:
    import uvicorn

    # uvicorn stops on SIGTERM/SIGINT; open connections get the shutdown timeout, then are closed.
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info",
                access_log=settings.api_access_log, timeout_graceful_shutdown=int(settings.shutdown_timeout_s))
