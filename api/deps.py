"""Typed dependencies: settings, Redis, the operator's authentication."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from redis import Redis

from edgemaxx.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]


def require_operator(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Admin routes: a bearer token from the environment (signed hotkey requests come with the chain)."""
    if settings.admin_token is None:
        raise HTTPException(403, "admin routes are disabled: set EDGEMAXX_ADMIN_TOKEN")
    expected = settings.admin_token.get_secret_value()
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


OperatorDep = Annotated[None, Depends(require_operator)]
