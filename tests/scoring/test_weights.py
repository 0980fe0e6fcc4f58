"""Weights: winners by improvement; duplicates, copies and ties go to the earliest commitment."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgemaxx.contest import CopyPolicy, NoWinner, load_contest
from edgemaxx.models import CodeFingerprint, ModelFile
from scoring.copies import CopyKind, Reference
from scoring.weights import Entry, weights

CONTEST = load_contest("flux-4090")  # tie_margin 0.01, copy_policy no-earn
INPUTS = 6


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _smooth(seed: int, amplitude: float) -> np.ndarray:
    """A low-frequency pattern: how an optimisation's numerics move an image (visible in a thumbnail)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, amplitude, (8, 8, 3)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse.astype(np.float32)[:, :, 0]).resize((128, 128)))[:, :, None]


BASE = [np.random.default_rng(i).integers(30, 220, (128, 128, 3)).astype(np.float32) for i in range(INPUTS)]


def _outputs(variant: int | None, noise: int = 0) -> list[bytes | None]:
    rng = np.random.default_rng(99)
    out = []
    for i, base in enumerate(BASE):
        image = base + (_smooth(variant * 100 + i, 12.0) if variant is not None else 0)
        if noise:
            image = image + rng.integers(-noise, noise + 1, image.shape)
        out.append(_jpeg(image))
    return out


BASELINE_OUTPUTS = _outputs(None)


def _entry(hotkey, uid, score, *, repo=None, rev=None, block=100, outputs=None, code=None, models=()):
    return Entry(hotkey=hotkey, uid=uid, repository=repo or f"https://github.com/{hotkey}/flux",
                 revision=rev or f"{uid:07x}", block=block, score=score,
                 outputs=outputs if outputs is not None else _outputs(uid), baseline_outputs=BASELINE_OUTPUTS,
                 code=code, model_files=list(models))


def test_only_improvements_earn_in_proportion():
    result = weights([_entry("a", 1, 1.5), _entry("b", 2, 1.25), _entry("c", 3, 0.9),
                      _entry("d", 4, None)], CONTEST)
    assert result.weights == pytest.approx({1: 2 / 3, 2: 1 / 3})
    assert result.copies == {} and result.ties == {}


def test_duplicates_keep_the_earliest_commitment():
    result = weights([
        _entry("late-same-repo", 2, 1.9, repo="https://github.com/a/flux", block=200),
        _entry("early", 1, 1.2, repo="https://github.com/A/flux.git", block=100),
        _entry("same-revision", 3, 1.8, rev="abcdef0", block=300),
        _entry("orig-revision", 4, 1.1, rev="ABCDEF0", block=150),
    ], CONTEST)
    assert result.duplicates == {"late-same-repo": "early", "same-revision": "orig-revision"}
    assert set(result.weights) == {1, 4}


def test_perturbed_copies_of_outputs_are_caught_with_evidence():
    original = _outputs(1)
    result = weights([
        _entry("orig", 1, 1.3, block=10, outputs=original),
        _entry("copycat", 2, 1.3, block=20, outputs=list(original)),
        _entry("noisy", 3, 1.3, block=30, outputs=_outputs(1, noise=3)),  # imperceptible noise
        _entry("own", 4, 1.4, block=40, outputs=_outputs(4)),  # an honest, different variant
    ], CONTEST)
    assert set(result.copies) == {"copycat", "noisy"}
    evidence = result.copies["noisy"]
    assert evidence.earlier == "orig" and evidence.kinds == [CopyKind.OUTPUTS]
    assert evidence.inputs == list(range(INPUTS))
    assert all(d < 0.7 * b for d, b in zip(evidence.distances, evidence.baseline_distances, strict=True))
    assert "copy of orig: outputs match on 6 inputs" in evidence.summary()
    assert result.weights == pytest.approx({1: 0.3 / 0.7, 4: 0.4 / 0.7})


def test_reproducing_the_baseline_exactly_is_not_copying():
    """Two honest submissions that both reproduce the baseline's images are not copies of each other."""
    result = weights([_entry("a", 1, 1.3, outputs=list(BASELINE_OUTPUTS), block=1),
                      _entry("b", 2, 1.6, outputs=list(BASELINE_OUTPUTS), block=2)], CONTEST)
    assert result.copies == {}


def _code(*statements: str) -> CodeFingerprint:
    return CodeFingerprint(digest="|".join(sorted(statements)), statements=sorted(statements))


BASELINE_CODE = _code(*(f"base{i}" for i in range(40)))


def test_code_that_carries_an_earlier_submissions_changes_is_a_copy():
    own = [f"base{i}" for i in range(36)] + ["opt1", "opt2", "opt3", "opt4"]  # changed 4 statements
    reference = Reference(code=BASELINE_CODE)
    result = weights([
        _entry("orig", 1, 1.3, block=1, outputs=list(BASELINE_OUTPUTS), code=_code(*own)),
        # The same changes plus a noise step: outputs differ, code gives it away.
        _entry("copy", 2, 1.3, block=2, outputs=_outputs(2), code=_code(*own, "add_noise")),
        # An honest optimiser that also made one of the same changes.
        _entry("honest", 3, 1.35, block=3, outputs=list(BASELINE_OUTPUTS),
               code=_code(*[f"base{i}" for i in range(37)], "opt1", "mine1", "mine2")),
    ], CONTEST, reference)
    assert set(result.copies) == {"copy"}
    assert result.copies["copy"].kinds == [CopyKind.CODE]
    assert (result.copies["copy"].shared_statements, result.copies["copy"].earlier_statements) == (4, 4)


def test_reuploaded_weights_are_a_copy():
    shared = ModelFile(repository="orig/flux-int4", path="transformer/model.safetensors", size=5 << 30, blob="ab" * 32)
    base = ModelFile(repository="black-forest-labs/FLUX.1-schnell", path="vae/model.safetensors", size=1 << 28,
                     blob="cd" * 32)
    reupload = shared.model_copy(update={"repository": "copier/totally-new-model"})
    result = weights([
        _entry("orig", 1, 1.3, block=1, models=[shared, base]),
        _entry("copier", 2, 1.29, block=2, models=[reupload, base]),
        _entry("other", 3, 1.2, block=3, models=[base]),
    ], CONTEST, Reference(model_files=[base]))
    assert set(result.copies) == {"copier"}
    assert result.copies["copier"].shared_model_files == ["orig/flux-int4/transformer/model.safetensors"]


def test_building_on_an_earlier_submission_and_beating_it_is_not_a_copy():
    original = _outputs(1)
    result = weights([_entry("orig", 1, 1.3, block=1, outputs=original),
                      _entry("better", 2, 1.5, block=2, outputs=_outputs(1, noise=2))], CONTEST)
    assert result.copies == {}


def test_the_same_code_is_a_copy_whatever_it_scored():
    """A re-upload cannot be an improvement: a better score is measurement noise."""
    code = _code(*(f"base{i}" for i in range(38)), "opt1", "opt2", "opt3")
    result = weights([_entry("orig", 1, 1.3, block=1, outputs=list(BASELINE_OUTPUTS), code=code),
                      _entry("reupload", 2, 1.9, block=2, outputs=list(BASELINE_OUTPUTS), code=code)],
                     CONTEST, Reference(code=BASELINE_CODE))
    assert set(result.copies) == {"reupload"} and result.copies["reupload"].code_distance == 0


def test_flag_only_policy_shows_copies_but_lets_them_earn():
    original = _outputs(1)
    flag_only = CONTEST.model_copy(update={"copy_policy": CopyPolicy.FLAG_ONLY, "tie_margin": 0.0})
    result = weights([_entry("orig", 1, 1.3, block=1, outputs=original),
                      _entry("copycat", 2, 1.2, block=2, outputs=list(original))], flag_only)
    assert set(result.copies) == {"copycat"}
    assert result.weights == pytest.approx({1: 0.6, 2: 0.4})


def test_scores_inside_the_tie_margin_go_to_the_earliest_commitment():
    result = weights([
        _entry("first", 1, 1.300, block=10),
        _entry("inside", 2, 1.305, block=20),  # better by 0.4 %: a tie, first keeps it
        _entry("clearly-better", 3, 1.400, block=30),
        _entry("barely", 4, 1.008, block=40),  # above 1 by less than the margin: ties the baseline
    ], CONTEST)
    assert result.ties == {"inside": "first", "barely": "baseline"}
    assert result.weights == pytest.approx({1: 0.3 / 0.7, 3: 0.4 / 0.7})


def test_nobody_beats_the_baseline_equal_or_uid():
    entries = [_entry("a", 1, 0.9), _entry("b", 2, 0.8), _entry("c", 3, None)]
    assert weights(entries, CONTEST).weights == pytest.approx({1: 0.5, 2: 0.5})
    to_owner = CONTEST.model_copy(update={"no_winner": NoWinner.UID, "no_winner_uid": 0})
    assert weights(entries, to_owner).weights == {0: 1.0}
    assert weights([], CONTEST).weights == {}
