"""Weights: winners by improvement, duplicates keep the earliest, copies earn nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgemaxx.contest import NoWinner, load_contest
from scoring.weights import Entry, is_copy, weights

CONTEST = load_contest("flux-4090")


def _png(seed: int, jitter: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (32, 32, 3)).astype(np.int16)
    if jitter:
        array[0, 0, 0] = (array[0, 0, 0] + jitter) % 256
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _entry(hotkey, uid, score, *, repo=None, rev=None, block=100, outputs=None):
    return Entry(hotkey=hotkey, uid=uid, repository=repo or f"https://github.com/{hotkey}/flux",
                 revision=rev or f"{uid:07x}", block=block, score=score,
                 outputs=outputs if outputs is not None else [_png(uid), _png(uid + 1000)])


def test_only_improvements_earn_in_proportion():
    result = weights([_entry("a", 1, 1.5), _entry("b", 2, 1.25), _entry("c", 3, 0.9),
                      _entry("d", 4, None)], CONTEST)
    assert result.weights == pytest.approx({1: 2 / 3, 2: 1 / 3})


def test_duplicates_keep_the_earliest_commitment():
    result = weights([
        _entry("late-same-repo", 2, 1.9, repo="https://github.com/a/flux", block=200),
        _entry("early", 1, 1.2, repo="https://github.com/A/flux.git", block=100),
        _entry("same-revision", 3, 1.8, rev="abcdef0", block=300),
        _entry("orig-revision", 4, 1.1, rev="ABCDEF0", block=150),
    ], CONTEST)
    assert result.duplicates == {"late-same-repo": "early", "same-revision": "orig-revision"}
    assert set(result.weights) == {1, 4}


def test_copies_of_earlier_outputs_earn_nothing():
    original = [_png(1), _png(2)]
    near = [_png(1, jitter=1), _png(2)]  # one pixel off by one: a re-encoded copy
    result = weights([
        _entry("orig", 1, 1.3, block=10, outputs=original),
        _entry("copycat", 2, 1.3, block=20, outputs=list(original)),
        _entry("near", 3, 1.3, block=30, outputs=near),
        _entry("own", 4, 1.3, block=40, outputs=[_png(7), _png(8)]),
    ], CONTEST)
    assert result.copies == {"copycat": "orig", "near": "orig"}
    assert result.weights == pytest.approx({1: 0.5, 4: 0.5})


def test_is_copy_needs_every_input():
    assert is_copy([_png(1), _png(2)], [_png(1), _png(2)])
    assert not is_copy([_png(1), _png(3)], [_png(1), _png(2)])
    assert not is_copy([_png(1), None], [_png(1), None])


def test_nobody_beats_the_baseline_equal_or_uid():
    entries = [_entry("a", 1, 0.9), _entry("b", 2, 0.8), _entry("c", 3, None)]
    assert weights(entries, CONTEST).weights == pytest.approx({1: 0.5, 2: 0.5})
    to_owner = CONTEST.model_copy(update={"no_winner": NoWinner.UID, "no_winner_uid": 0})
    assert weights(entries, to_owner).weights == {0: 1.0}
    assert weights([], CONTEST).weights == {}
