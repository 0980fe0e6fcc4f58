"""The operator's blacklist file: hotkeys, coldkeys and dependencies that are refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field


class Blacklist(BaseModel):
    hotkeys: set[str] = Field(default_factory=set)
    coldkeys: set[str] = Field(default_factory=set)
    dependencies: set[str] = Field(default_factory=set)


def load_blacklist(path: Path | None) -> Blacklist:
    """`blacklist.toml`: `hotkeys = [...]`, `coldkeys = [...]`, `dependencies = [...]`; absent = empty."""
    if path is None or not path.exists():
        return Blacklist()
    return Blacklist.model_validate(tomllib.loads(path.read_text()))
