"""Contest inputs every validator derives alike from one seed (the block hash at contest start).

Prompts come from `edgemaxx.prompts`, a space of about 10^25 that cannot be enumerated; each
request gets its own image seed. Only sha256 is used, never `random` or `hash()`, so the same seed
gives the same list on every machine and Python version, and nobody knows the inputs before the
seed exists.
"""

from __future__ import annotations

import hashlib

from edgemaxx import prompts
from edgemaxx.contest import Contest
from edgemaxx.models import TextToImageRequest


def _digest(seed: str, label: str, index: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{label}\x00{index}".encode()).digest()


def prompt_list(seed: str, count: int) -> list[str]:
    """`count` distinct prompts for `seed`: a prompt already in the run is drawn again."""
    chosen: list[str] = []
    seen: set[str] = set()
    for index in range(count):
        attempt = 0
        prompt = prompts.generate(seed, index, attempt)
        while prompt in seen:
            attempt += 1
            prompt = prompts.generate(seed, index, attempt)
        seen.add(prompt)
        chosen.append(prompt)
    return chosen


def inputs(contest: Contest, seed: str) -> list[TextToImageRequest]:
    """`contest.inputs.count` requests: distinct generated prompts, each with its own image seed."""
    return [
        TextToImageRequest(
            prompt=prompt,
            width=contest.inputs.width,
            height=contest.inputs.height,
            seed=int.from_bytes(_digest(seed, "seed", n)[:4], "big"),
        )
        for n, prompt in enumerate(prompt_list(seed, contest.inputs.count))
    ]
