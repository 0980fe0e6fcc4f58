"""Weights from a finished contest run: winners by improvement, duplicates and copies excluded."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest, NoWinner

if TYPE_CHECKING:
    import numpy as np

# Outputs whose mean absolute pixel difference (0-255) is under this, on every input, are copies.
COPY_TOLERANCE = 1.0


class Entry(BaseModel):
    """One submission of a finished run, as the weights need it."""

    hotkey: str
    uid: int
    repository: str
    revision: str
    block: int  # the block its commitment was made at: earlier wins ties
    score: float | None  # None = invalid
    outputs: list[bytes | None] = Field(default_factory=list, exclude=True)


class Weighting(BaseModel):
    weights: dict[int, float]  # uid → weight, summing to 1 (or empty)
    duplicates: dict[str, str] = Field(default_factory=dict)  # hotkey → earlier hotkey
    copies: dict[str, str] = Field(default_factory=dict)  # hotkey → earlier hotkey


def repository_key(repository: str) -> str:
    """Repositories compare case-insensitively, without a trailing slash or `.git`."""
    return repository.lower().rstrip("/").removesuffix(".git")


def drop_duplicates(entries: Sequence[Entry]) -> tuple[list[Entry], dict[str, str]]:
    """Same repository or same revision as an earlier commitment: only the earliest stays."""
    kept: list[Entry] = []
    duplicates: dict[str, str] = {}
    seen_repo: dict[str, Entry] = {}
    seen_rev: dict[str, Entry] = {}
    for entry in sorted(entries, key=lambda e: (e.block, e.uid)):
        earlier = seen_repo.get(repository_key(entry.repository)) or seen_rev.get(entry.revision.lower())
        if earlier is not None:
            duplicates[entry.hotkey] = earlier.hotkey
            continue
        seen_repo[repository_key(entry.repository)] = entry
        seen_rev[entry.revision.lower()] = entry
        kept.append(entry)
    return kept, duplicates


def _thumbnail(data: bytes | None) -> np.ndarray | None:
    import numpy as np
    from PIL import Image

    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32)
    except OSError:
        return None


def is_copy(outputs: Sequence[bytes | None], earlier: Sequence[bytes | None],
            tolerance: float = COPY_TOLERANCE) -> bool:
    """Byte-identical, or within `tolerance` mean absolute pixel difference, on every input."""
    if not outputs or len(outputs) != len(earlier):
        return False
    for mine, theirs in zip(outputs, earlier, strict=True):
        if mine is None or theirs is None:
            return False
        if mine == theirs:
            continue
        a, b = _thumbnail(mine), _thumbnail(theirs)
        if a is None or b is None or a.shape != b.shape:
            return False
        if float(abs(a - b).mean()) >= tolerance:
            return False
    return True


def find_copies(entries: Sequence[Entry]) -> dict[str, str]:
    """hotkey → the earlier-committed hotkey whose outputs it reproduces."""
    copies: dict[str, str] = {}
    ordered = sorted(entries, key=lambda e: (e.block, e.uid))
    for index, entry in enumerate(ordered):
        if entry.score is None:
            continue
        for earlier in ordered[:index]:
            if earlier.score is not None and earlier.hotkey not in copies and is_copy(entry.outputs, earlier.outputs):
                copies[entry.hotkey] = earlier.hotkey
                break
    return copies


def weights(entries: Sequence[Entry], contest: Contest) -> Weighting:
    """Only submissions that beat the baseline (score > 1) earn, in proportion to score − 1."""
    kept, duplicates = drop_duplicates(entries)
    copies = find_copies(kept)
    eligible = [e for e in kept if e.score is not None and e.hotkey not in copies]
    winners = {e.uid: e.score - 1.0 for e in eligible if e.score is not None and e.score > 1.0}
    if winners:
        total = sum(winners.values())
        result = {uid: gain / total for uid, gain in winners.items()}
    elif contest.no_winner is NoWinner.UID and contest.no_winner_uid is not None:
        result = {contest.no_winner_uid: 1.0}
    elif eligible:
        result = {e.uid: 1.0 / len(eligible) for e in eligible}
    else:
        result = {}
    return Weighting(weights=result, duplicates=duplicates, copies=copies)
