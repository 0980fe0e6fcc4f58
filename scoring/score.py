"""The score: a weighted geometric combination of baseline/submission ratios and similarity.

    score = Π_m ratio_m ^ (w_m / W)  ×  s ^ (w_sim / W),   W = Σ all weights

ratio_m = baseline_m / submission_m for each lower-is-better metric m (generation time, VRAM,
energy, RAM, size, load time), so 2× faster gives 2 for that term; s = (mean similarity − floor)
/ (1 − floor), 0 at the floor and 1 for identical outputs. The baseline scores exactly 1. A
submission whose worst input is below the floor, or that is invalid, gets no score.

A ratio within the contest's noise margin of 1 (1/(1+m) ≤ ratio ≤ 1+m) counts as exactly 1: the
measurement cannot tell such a difference from run-to-run noise, so nobody earns or loses by it,
and the baseline measured against itself scores 1.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from edgemaxx.contest import Contest, MetricWeights
from edgemaxx.models import Metrics

# Metric name → how to read it from Metrics; all are lower-is-better.
_READERS = {
    "generation_time": lambda m: m.median_generation_time_s,
    "vram": lambda m: m.peak_vram_bytes,
    "energy": lambda m: m.energy_per_image_j,
    "ram": lambda m: m.peak_ram_bytes,
    "size": lambda m: m.size_bytes,
    "load_time": lambda m: m.load_time_s,
}


class ScoreBreakdown(BaseModel):
    score: float | None
    invalid_reason: str = ""
    terms: dict[str, float] = Field(default_factory=dict)  # each factor before weighting
    notes: list[str] = Field(default_factory=list)


def similarity_term(mean_similarity: float, floor: float) -> float:
    return min(1.0, max(0.0, (mean_similarity - floor) / (1.0 - floor)))


def within_noise(ratio: float, margin: float) -> bool:
    return 1.0 / (1.0 + margin) <= ratio <= 1.0 + margin


def combine(terms: dict[str, float], weights: MetricWeights) -> float:
    """Weighted geometric mean of the terms; a zero term with positive weight gives 0."""
    weight_of = weights.model_dump()
    total = sum(weight_of[name] for name in terms)
    if total <= 0:
        raise ValueError("no positive weight among the scored metrics")
    log_score = 0.0
    for name, value in terms.items():
        w = weight_of[name] / total
        if w == 0:
            continue
        if value <= 0:
            return 0.0
        log_score += w * math.log(value)
    return math.exp(log_score)


def score(baseline: Metrics, submission: Metrics, similarity_mean: float, similarity_min: float,
          contest: Contest) -> ScoreBreakdown:
    """Score a valid submission against the baseline measured in the same run."""
    floor = contest.similarity_floor
    if similarity_min < floor:
        return ScoreBreakdown(
            score=None,
            invalid_reason=(f"outputs differ too much from the baseline's: worst-input similarity "
                            f"{similarity_min:.3f} is below the floor {floor:.2f}"))
    weights = contest.weights
    terms: dict[str, float] = {}
    notes: list[str] = []
    for name, read in _READERS.items():
        if getattr(weights, name) == 0:
            continue
        base, mine = read(baseline), read(submission)
        if base is None or mine is None:
            # e.g. VRAM on a CPU-only run: neutral, and said so.
            terms[name] = 1.0
            notes.append(f"{name} not measured; counted as equal to the baseline")
            continue
        if mine <= 0:
            terms[name] = 1.0 if base <= 0 else float("inf")
            notes.append(f"{name} measured as 0")
            continue
        ratio = base / mine
        if within_noise(ratio, contest.noise_margin):
            if ratio != 1.0:
                notes.append(f"{name} ratio {ratio:.4f} is within the ±{contest.noise_margin:.0%} noise margin; "
                             "counted as equal to the baseline")
            ratio = 1.0
        terms[name] = ratio
    if weights.similarity > 0:
        terms["similarity"] = similarity_term(similarity_mean, floor)
    if any(math.isinf(v) for v in terms.values()):
        return ScoreBreakdown(score=None, invalid_reason="a measurement of 0 cannot be scored",
                              terms=terms, notes=notes)
    return ScoreBreakdown(score=combine(terms, weights), terms=terms, notes=notes)
