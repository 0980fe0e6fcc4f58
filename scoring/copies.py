"""Catching copies by what a submission contributes beyond the baseline, not by raw equality.

Every SN39 submission is a fork of the baseline, and honest optimisations often reproduce the
baseline's images exactly, so "looks like another submission" proves nothing on its own. What a
copier cannot hide is the *earlier submission's own contribution*:

- outputs: per input, the later submission's image is much closer to the earlier's than either is
  to the baseline's (both deviate from the baseline the same way). The measure is a 32×32 grey
  thumbnail, normalised for brightness and contrast, mean absolute difference: imperceptible noise,
  re-encoding and tone shifts vanish in it, while two honest variants differ as much from each other
  as from the baseline (distributions in docs/copies.md);
- code: the later submission's normalised statements (images/fingerprint.py: names, comments and
  formatting do not count) are much closer to the earlier's than to the baseline's, i.e. it carries
  the earlier's changes and adds little of its own;
- models: the weight files the earlier submission added (by content hash) are in the later one.

A later submission that beats the earlier one by more than the contest's tie margin built on it
and improved it: that is the contest working, not a copy — unless its code is the earlier's up to
names, comments and formatting, where any difference in score can only be noise.
"""

from __future__ import annotations

import io
import statistics
from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from edgemaxx.models import CodeFingerprint, ModelFile

if TYPE_CHECKING:
    import numpy as np

THUMBNAIL_SIDE = 32
# A thumbnail distance under this is re-encoding noise: an input where either submission is this
# close to the baseline's image carries no evidence (both may simply reproduce the baseline).
MIN_DEVIATION = 0.01
# Copy when d(later, earlier) < COPY_RATIO × min(d(later, baseline), d(earlier, baseline)) on at
# least COPY_INPUTS of the inputs with evidence (measured: copies ≤ 0.50, honest pairs ≥ 1.11).
COPY_RATIO = 0.7
COPY_INPUTS = 0.8
MIN_EVIDENCE_INPUTS = 2
# Code: statements differing from the earlier ≤ CODE_RATIO × statements differing from the baseline.
CODE_RATIO = 0.7


class CopyKind(StrEnum):
    OUTPUTS = "outputs"
    CODE = "code"
    MODELS = "models"


class CopyEvidence(BaseModel):
    """Why a submission is flagged as a copy of an earlier commitment."""

    earlier: str  # the earlier commitment's hotkey
    kinds: list[CopyKind]
    inputs: list[int] = Field(default_factory=list)  # outputs: the inputs that match
    distances: list[float] = Field(default_factory=list)  # d(this, earlier) per matching input
    baseline_distances: list[float] = Field(default_factory=list)  # min d(·, baseline) per input
    shared_statements: int = 0  # code: the earlier's changes to the baseline found here …
    earlier_statements: int = 0  # … out of this many
    code_distance: int = 0  # statements that differ from the earlier's …
    code_baseline_distance: int = 0  # … and from the baseline's
    shared_model_files: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if CopyKind.OUTPUTS in self.kinds:
            ratio = statistics.median(d / b for d, b in zip(self.distances, self.baseline_distances, strict=True))
            parts.append(f"outputs match on {len(self.inputs)} inputs (median {ratio:.2f}× their distance "
                         "from the baseline)")
        if CopyKind.CODE in self.kinds:
            parts.append(f"code has {self.shared_statements} of its {self.earlier_statements} changes to the baseline "
                         f"and differs from it in {self.code_distance} statements (from the baseline in "
                         f"{self.code_baseline_distance})")
        if CopyKind.MODELS in self.kinds:
            parts.append(f"models reuse its weight files ({', '.join(self.shared_model_files[:3])})")
        return f"copy of {self.earlier}: " + "; ".join(parts)


class Candidate(BaseModel):
    """One scored submission as copy detection sees it."""

    hotkey: str
    block: int
    uid: int
    score: float
    outputs: list[bytes | None] = Field(default_factory=list, exclude=True)
    baseline_outputs: list[bytes | None] = Field(default_factory=list, exclude=True)
    code: CodeFingerprint | None = None
    model_files: list[ModelFile] = Field(default_factory=list)


class Reference(BaseModel):
    """The baseline's side: its code and model files."""

    code: CodeFingerprint | None = None
    model_files: list[ModelFile] = Field(default_factory=list)


def thumbnail(data: bytes | None) -> np.ndarray | None:
    import numpy as np
    from PIL import Image

    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            grey = image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
            pixels = np.asarray(grey, dtype=np.float32)
    except OSError:
        return None
    return (pixels - pixels.mean()) / (pixels.std() + 1e-6)


def thumbnail_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(a - b).mean())


def output_evidence(later: Candidate, earlier: Candidate) -> CopyEvidence | None:
    mine = [thumbnail(x) for x in later.outputs]
    theirs = [thumbnail(x) for x in earlier.outputs]
    base_mine = [thumbnail(x) for x in later.baseline_outputs]
    base_theirs = [thumbnail(x) for x in earlier.baseline_outputs]
    evidence = CopyEvidence(earlier=earlier.hotkey, kinds=[CopyKind.OUTPUTS])
    usable = 0
    for index in range(min(len(mine), len(theirs), len(base_mine), len(base_theirs))):
        a, b, base_a, base_b = mine[index], theirs[index], base_mine[index], base_theirs[index]
        if a is None or b is None or base_a is None or base_b is None or a.shape != b.shape:
            continue
        deviation = min(thumbnail_distance(a, base_a), thumbnail_distance(b, base_b))
        if deviation < MIN_DEVIATION:
            continue
        usable += 1
        distance = thumbnail_distance(a, b)
        if distance < COPY_RATIO * deviation:
            evidence.inputs.append(index)
            evidence.distances.append(round(distance, 5))
            evidence.baseline_distances.append(round(deviation, 5))
    if usable >= MIN_EVIDENCE_INPUTS and len(evidence.inputs) >= COPY_INPUTS * usable:
        return evidence
    return None


def _difference(a: CodeFingerprint, b: CodeFingerprint | None) -> int:
    """Statements in one and not the other (a multiset symmetric difference)."""
    mine, theirs = Counter(a.statements), Counter(b.statements if b else [])
    return sum(((mine - theirs) + (theirs - mine)).values())


def code_evidence(later: Candidate, earlier: Candidate, reference: Reference) -> CopyEvidence | None:
    if later.code is None or earlier.code is None:
        return None
    if _difference(earlier.code, reference.code) == 0:
        return None  # the earlier submission is the baseline's code: it has nothing of its own to copy
    distance = _difference(later.code, earlier.code)
    from_baseline = _difference(later.code, reference.code)
    if from_baseline == 0 or distance > CODE_RATIO * from_baseline:
        return None
    baseline = Counter(reference.code.statements if reference.code else [])
    theirs = Counter(earlier.code.statements) - baseline
    shared = sum((theirs & (Counter(later.code.statements) - baseline)).values())
    return CopyEvidence(earlier=earlier.hotkey, kinds=[CopyKind.CODE], shared_statements=shared,
                        earlier_statements=sum(theirs.values()), code_distance=distance,
                        code_baseline_distance=from_baseline)


def model_evidence(later: Candidate, earlier: Candidate, reference: Reference) -> CopyEvidence | None:
    baseline = {f.blob for f in reference.model_files}
    theirs = {f.blob: f for f in earlier.model_files if f.blob not in baseline}
    mine = {f.blob for f in later.model_files}
    if theirs and set(theirs) <= mine:
        return CopyEvidence(earlier=earlier.hotkey, kinds=[CopyKind.MODELS],
                            shared_model_files=sorted(f"{f.repository}/{f.path}" for f in theirs.values()))
    return None


def _merge(found: list[CopyEvidence]) -> CopyEvidence:
    merged = found[0].model_copy(deep=True)
    for other in found[1:]:
        merged.kinds += other.kinds
        merged.inputs = merged.inputs or other.inputs
        merged.distances = merged.distances or other.distances
        merged.baseline_distances = merged.baseline_distances or other.baseline_distances
        merged.shared_statements = merged.shared_statements or other.shared_statements
        merged.earlier_statements = merged.earlier_statements or other.earlier_statements
        merged.code_distance = merged.code_distance or other.code_distance
        merged.code_baseline_distance = merged.code_baseline_distance or other.code_baseline_distance
        merged.shared_model_files = merged.shared_model_files or other.shared_model_files
    return merged


def find_copies(candidates: Sequence[Candidate], reference: Reference, tie_margin: float) -> dict[str, CopyEvidence]:
    """hotkey → evidence that it copies an earlier commitment (and does not beat it by more than
    the tie margin). Earlier means a lower block (then uid); a copy is compared with originals only."""
    copies: dict[str, CopyEvidence] = {}
    ordered = sorted(candidates, key=lambda c: (c.block, c.uid))
    for index, later in enumerate(ordered):
        for earlier in ordered[:index]:
            if earlier.hotkey in copies:
                continue
            same_code = later.code is not None and earlier.code is not None and later.code.digest == earlier.code.digest
            if later.score > earlier.score * (1.0 + tie_margin) and not same_code:
                continue
            found = [e for e in (output_evidence(later, earlier), code_evidence(later, earlier, reference),
                                 model_evidence(later, earlier, reference)) if e is not None]
            if found:
                copies[later.hotkey] = _merge(found)
                break
    return copies
