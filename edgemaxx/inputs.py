"""Contest inputs every validator derives alike from one seed (the block hash at contest start).

Only sha256 is used to pick, never `random` or `hash()`, so the same seed gives the same list
on every machine and Python version, and nobody knows the inputs before the seed exists.
"""

from __future__ import annotations

import hashlib
import itertools
from functools import cache

from edgemaxx.contest import Contest
from edgemaxx.models import TextToImageRequest

_SUBJECTS = (
    "a red fox", "an old lighthouse", "a bowl of ramen", "a vintage bicycle", "a snow leopard",
    "a glass teapot", "a robot gardener", "a koi pond", "a stack of old books", "a hot air balloon",
    "a sleeping cat", "a medieval castle", "a sailing ship", "a bonsai tree", "a desert cactus",
    "a city tram", "a violin", "a hummingbird", "a lantern festival", "a mountain cabin",
)
_SETTINGS = (
    "at golden hour", "in heavy rain", "under a starry sky", "on a foggy morning",
    "in a neon-lit street", "in a sunflower field", "on a frozen lake", "in a busy market",
    "beside a waterfall", "in an empty room",
)
_STYLES = (
    "photorealistic", "watercolor painting", "isometric 3D render", "charcoal sketch",
    "studio photograph, 85mm", "ukiyo-e woodblock print", "pixel art", "oil painting, impasto",
)


@cache
def corpus() -> tuple[str, ...]:
    """Prompt corpus: 20 subjects × 10 settings × 8 styles = 1600 prompts, in a fixed order."""
    return tuple(f"{s} {w}, {st}" for s, w, st in itertools.product(_SUBJECTS, _SETTINGS, _STYLES))


def _digest(seed: str, label: str, index: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{label}\x00{index}".encode()).digest()


def inputs(contest: Contest, seed: str) -> list[TextToImageRequest]:
    """`contest.inputs.count` distinct prompts spread over the corpus, each with its own seed."""
    prompts = corpus()
    order = sorted(range(len(prompts)), key=lambda i: _digest(seed, "prompt", i))
    chosen = order[: contest.inputs.count]
    return [
        TextToImageRequest(
            prompt=prompts[i],
            width=contest.inputs.width,
            height=contest.inputs.height,
            seed=int.from_bytes(_digest(seed, "seed", n)[:4], "big"),
        )
        for n, i in enumerate(chosen)
    ]
