"""Entrants derived from a fixture by one edit: the same lock (so the same environment, a cache
hit), one behaviour changed. Used where a copied fixture would differ in a line only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


def variant(fixture: Path, target: Path, path: str, edit: Callable[[str], str]) -> Path:
    """A copy of `fixture` at `target` with `path` (relative to it) edited; readable by the
    sandbox user. Fails loudly when the edit no longer applies (the copy would be the fixture)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(fixture, target)
    source = target / path
    before = source.read_text()
    if (after := edit(before)) == before:
        raise RuntimeError(f"{fixture.name}/{path} has changed: the variant would be the fixture itself")
    source.write_text(after)
    subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
    return target


def slow_requests(fixture: Path, target: Path, seconds: float) -> Path:
    """`fixture` that sleeps `seconds` before each image: a benchmark whose requests last long
    enough to be watched (a progress bar that polls every second sees each one)."""
    def edit(text: str) -> str:
        text = text.replace("import gc\n", "import gc\nimport time\n", 1)
        return text.replace("    gc.collect()\n", f"    time.sleep({seconds})\n    gc.collect()\n", 1)

    return variant(fixture, target, "src/pipeline.py", edit)
