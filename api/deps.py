"""Typed dependencies: settings, Redis, the operator's authentication."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from redis import Redis

from edgemaxx.settings import Settings
from state.limits import RedisNonceStore


# async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request that costs
# more than the snapshot-served routes themselves (docs/benchmarks.md).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]


async def require_operator(request: Request, settings: SettingsDep, redis: RedisDep,
                           authorization: Annotated[str | None, Header()] = None) -> None:
    """Admin routes: a request signed by the validator's own hotkey (bittensor http_auth, with
    receiver and replay checks), or a bearer token from the environment."""
    if any(h.lower().startswith("x-bittensor") for h in request.headers):
        await _verify_signed(request, settings, redis)
        return
    # Empty counts as unset: `EDGEMAXX_ADMIN_TOKEN=` in a .env must not open the routes to `Bearer `.
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise HTTPException(403, "admin routes are disabled: set EDGEMAXX_ADMIN_TOKEN or sign requests "
                                 "with the validator's hotkey (EDGEMAXX_VALIDATOR_HOTKEY)")
    expected = settings.admin_token.get_secret_value()
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def _verify_signed(request: Request, settings: Settings, redis: Redis) -> None:
    if not settings.validator_hotkey:
        raise HTTPException(403, "signed requests are disabled: set EDGEMAXX_VALIDATOR_HOTKEY")
    from bittensor import http_auth

    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        caller = http_auth.verify(dict(request.headers), body, method=request.method, path=path,
                                  self_hotkey_ss58=settings.validator_hotkey, nonce_store=RedisNonceStore(redis))
    except http_auth.AuthError as exc:
        raise HTTPException(401, f"signature rejected: {type(exc).__name__}: {exc}") from exc
    if caller.hotkey_ss58 != settings.validator_hotkey:
        raise HTTPException(403, f"{caller.hotkey_ss58} is not this validator's hotkey")


OperatorDep = Annotated[None, Depends(require_operator)]
