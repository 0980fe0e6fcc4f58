"""Weights from a finished contest run: winners by improvement, duplicates, copies and ties excluded.

1. Duplicates (same repository or same revision as an earlier commitment) are dropped.
2. Copies (scoring/copies.py) are flagged with their evidence; under the contest's default
   `copy_policy = "no-earn"` they earn nothing (`"flag-only"` shows them and lets them earn).
3. Ties: a score within the contest's `tie_margin` of the baseline (1), or of a submission committed
   earlier, cannot be told apart from it by the measurement; ties go to the earliest commitment, as
   duplicates do, so a tied later submission earns nothing.
4. The rest earn in proportion to score − 1 (only scores above 1, i.e. beating the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest, CopyPolicy, NoWinner
from edgemaxx.models import CodeFingerprint, ModelFile
from scoring.copies import Candidate, CopyEvidence, Reference, find_copies


class Entry(BaseModel):
    """One submission of a finished run, as the weights need it."""

    hotkey: str
    uid: int
    repository: str
    revision: str
    block: int  # the block its commitment was made at: earlier wins ties
    score: float | None  # None = invalid
    outputs: list[bytes | None] = Field(default_factory=list, exclude=True)
    baseline_outputs: list[bytes | None] = Field(default_factory=list, exclude=True)
    code: CodeFingerprint | None = None
    model_files: list[ModelFile] = Field(default_factory=list)


class Weighting(BaseModel):
    weights: dict[int, float]  # uid → weight, summing to 1 (or empty)
    duplicates: dict[str, str] = Field(default_factory=dict)  # hotkey → earlier hotkey
    copies: dict[str, CopyEvidence] = Field(default_factory=dict)  # hotkey → the evidence
    ties: dict[str, str] = Field(default_factory=dict)  # hotkey → "baseline" or the earlier hotkey it ties


def repository_key(repository: str) -> str:
    """Repositories compare case-insensitively, without a trailing slash or `.git`."""
    return repository.lower().rstrip("/").removesuffix(".git")


def _earliest_first(entries: Sequence[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.block, e.uid))


def drop_duplicates(entries: Sequence[Entry]) -> tuple[list[Entry], dict[str, str]]:
    """Same repository or same revision as an earlier commitment: only the earliest stays."""
    kept: list[Entry] = []
    duplicates: dict[str, str] = {}
    seen_repo: dict[str, Entry] = {}
    seen_rev: dict[str, Entry] = {}
    for entry in _earliest_first(entries):
        earlier = seen_repo.get(repository_key(entry.repository)) or seen_rev.get(entry.revision.lower())
        if earlier is not None:
            duplicates[entry.hotkey] = earlier.hotkey
            continue
        seen_repo[repository_key(entry.repository)] = entry
        seen_rev[entry.revision.lower()] = entry
        kept.append(entry)
    return kept, duplicates


def find_ties(entries: Sequence[Entry], margin: float) -> dict[str, str]:
    """hotkey → what it ties with: the baseline (score ≤ 1 + margin) or an earlier-committed entry
    whose score it is within the margin of (earliest first, so the first of a tie keeps it)."""
    ties: dict[str, str] = {}
    earlier: list[Entry] = []
    for entry in _earliest_first(entries):
        if entry.score is None:
            continue
        if 1.0 < entry.score <= 1.0 + margin:
            ties[entry.hotkey] = "baseline"
        else:
            rival = next((e for e in earlier if e.score is not None and e.hotkey not in ties
                          and abs(entry.score - e.score) <= margin * e.score), None)
            if rival is not None:
                ties[entry.hotkey] = rival.hotkey
        earlier.append(entry)
    return ties


def weights(entries: Sequence[Entry], contest: Contest, baseline: Reference | None = None) -> Weighting:
    """Only submissions that beat the baseline, and are neither duplicates, copies nor ties, earn."""
    kept, duplicates = drop_duplicates(entries)
    candidates = [Candidate(hotkey=e.hotkey, block=e.block, uid=e.uid, score=e.score, outputs=e.outputs,
                            baseline_outputs=e.baseline_outputs, code=e.code, model_files=e.model_files)
                  for e in kept if e.score is not None]
    copies = find_copies(candidates, baseline or Reference(), contest.tie_margin)
    barred = set(copies) if contest.copy_policy is CopyPolicy.NO_EARN else set()
    eligible = [e for e in kept if e.score is not None and e.hotkey not in barred]
    ties = find_ties(eligible, contest.tie_margin)
    winners = {e.uid: e.score - 1.0 for e in eligible
               if e.score is not None and e.score > 1.0 and e.hotkey not in ties}
    if winners:
        total = sum(winners.values())
        result = {uid: gain / total for uid, gain in winners.items()}
    elif contest.no_winner is NoWinner.UID and contest.no_winner_uid is not None:
        result = {contest.no_winner_uid: 1.0}
    elif eligible:
        result = {e.uid: 1.0 / len(eligible) for e in eligible}
    else:
        result = {}
    return Weighting(weights=result, duplicates=duplicates, copies=copies, ties=ties)
