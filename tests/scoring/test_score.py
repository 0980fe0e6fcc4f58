"""The score formula: baseline is 1, faster is better, below the floor is invalid."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemaxx.contest import MetricWeights, load_contest
from edgemaxx.models import Metrics
from scoring.score import combine, score, similarity_term

FLUX = load_contest("flux-4090")


def _metrics(time_s: float = 1.0, vram: int = 20 * 2**30) -> Metrics:
    return Metrics(load_time_s=30.0, generation_times_s=[time_s] * 5, peak_vram_bytes=vram,
                   energy_per_image_j=300.0, peak_ram_bytes=8 * 2**30, code_bytes=1000)


def test_baseline_scores_exactly_one():
    base = _metrics()
    assert score(base, base, 1.0, 1.0, FLUX).score == 1.0


def test_faster_with_equal_similarity_scores_above_one():
    result = score(_metrics(1.0), _metrics(0.5), 1.0, 1.0, FLUX)
    # Only generation time changed: 2 ** (0.14 / 1.0).
    assert result.score == pytest.approx(2 ** 0.14)
    assert result.terms["generation_time"] == 2.0


def test_slower_scores_below_one():
    assert score(_metrics(1.0), _metrics(2.0), 1.0, 1.0, FLUX).score < 1.0


def test_below_floor_is_invalid_with_reason():
    result = score(_metrics(), _metrics(0.1), 0.95, 0.70, FLUX)
    assert result.score is None
    assert "0.700 is below the floor 0.75" in result.invalid_reason


def test_similarity_term_spans_floor_to_identical():
    assert similarity_term(0.75, 0.75) == 0.0
    assert similarity_term(1.0, 0.75) == 1.0
    assert similarity_term(0.875, 0.75) == pytest.approx(0.5)


def test_worked_example_from_readme():
    # 1.6× faster, 30 % less VRAM, mean similarity 0.95 (floor 0.75).
    base, mine = _metrics(1.0, 20 * 2**30), _metrics(0.625, 14 * 2**30)
    result = score(base, mine, 0.95, 0.90, FLUX)
    expected = 1.6 ** 0.14 * (20 / 14) ** 0.43 * 0.8 ** 0.43
    assert result.score == pytest.approx(expected)
    assert round(result.score, 3) == 1.131


def test_unmeasured_metric_is_neutral_and_noted():
    cpu = load_contest("flux-4090")
    base, mine = _metrics(), _metrics(0.5)
    base.peak_vram_bytes = mine.peak_vram_bytes = None
    result = score(base, mine, 1.0, 1.0, cpu)
    assert result.terms["vram"] == 1.0
    assert any("vram not measured" in note for note in result.notes)


ratios = st.floats(min_value=0.05, max_value=20, allow_nan=False)
# A weight is 0 or a real share (contests use hundredths): a subnormal weight makes the expected
# value's own arithmetic underflow (5e-324 × log 2 / 5e-324 is 1 there, not log 2).
weights = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=5, allow_nan=False))


@given(t=ratios, v=ratios, s=st.floats(min_value=0.01, max_value=1), wt=weights, wv=weights,
       ws=weights)
def test_score_is_the_weighted_geometric_mean(t, v, s, wt, wv, ws):
    if wt + wv + ws <= 0:
        return
    terms = {"generation_time": t, "vram": v, "similarity": s}
    w = MetricWeights(generation_time=wt, vram=wv, similarity=ws)
    total = wt + wv + ws
    expected = math.exp((wt * math.log(t) + wv * math.log(v) + ws * math.log(s)) / total)
    assert combine(terms, w) == pytest.approx(expected, rel=1e-9)


@given(faster=st.floats(min_value=1.01, max_value=10), weight=st.floats(min_value=0.01, max_value=1))
def test_more_weight_on_a_gain_raises_the_score(faster, weight):
    terms = {"generation_time": faster, "similarity": 1.0}
    low = combine(terms, MetricWeights(generation_time=weight, similarity=1.0))
    high = combine(terms, MetricWeights(generation_time=weight * 2, similarity=1.0))
    assert high > low > 1.0


@given(t=ratios)
def test_score_moves_with_speed(t):
    base = _metrics(1.0)
    exact = FLUX.model_copy(update={"noise_margin": 0.0})
    assert score(base, _metrics(1.0 / t), 1.0, 1.0, exact).score == pytest.approx(t ** 0.14)
    # With flux-4090's 3 % noise margin, only ratios outside it move the score.
    expected = 1.0 if 1 / 1.03 <= t <= 1.03 else t ** 0.14
    assert score(base, _metrics(1.0 / t), 1.0, 1.0, FLUX).score == pytest.approx(expected)


def test_ratios_inside_the_noise_margin_count_as_ties():
    contest = FLUX.model_copy(update={"noise_margin": 0.02})
    base = _metrics(1.0)
    # 1.5 % faster and 1.5 % slower: noise, so exactly the baseline's score, and said so.
    for time_s in (1.0 / 1.015, 1.015):
        result = score(base, _metrics(time_s), 1.0, 1.0, contest)
        assert result.score == 1.0 and result.terms["generation_time"] == 1.0
        assert any("noise margin" in note for note in result.notes)
    # 3 % faster is outside it and counts in full.
    assert score(base, _metrics(1.0 / 1.03), 1.0, 1.0, contest).terms["generation_time"] == pytest.approx(1.03)
