"""Code and model fingerprints: what copies cannot hide."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from edgemaxx.models import ModelSpec
from images.fingerprint import MIN_MODEL_FILE_BYTES, code_fingerprint, model_files
from tests.conftest import fixture_path


def _difference(a: Path, b: Path) -> int:
    x, y = Counter(code_fingerprint(a).statements), Counter(code_fingerprint(b).statements)
    return sum(((x - y) + (y - x)).values())


def test_renaming_recommenting_and_reformatting_change_nothing():
    original = code_fingerprint(fixture_path("flux-faster"))
    renamed = code_fingerprint(fixture_path("faster-renamed"))
    assert renamed.digest == original.digest
    assert renamed.digest != code_fingerprint(fixture_path("flux-baseline")).digest


def test_real_changes_show_as_differing_statements():
    baseline, faster = fixture_path("flux-baseline"), fixture_path("flux-faster")
    # gc import and call gone; progress bar off; warm-up and infer() under no-grad
    assert _difference(faster, baseline) == 6
    assert _difference(fixture_path("flux-three-steps"), baseline) == 2  # STEPS = 4 → 3
    # The perturbed copy carries all of the faster fixture's changes, plus its noise step.
    assert _difference(fixture_path("faster-perturbed"), faster) == 7
    assert _difference(fixture_path("faster-perturbed"), baseline) == 13


def test_a_file_that_does_not_parse_still_counts(tmp_path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    fingerprint = code_fingerprint(tmp_path)
    assert len(fingerprint.statements) == 2


def test_model_files_are_their_cache_blobs(tmp_path):
    """Laid out as huggingface_hub's cache is: snapshot files link to blobs named by content hash."""
    repo = tmp_path / "models--someone--flux-int4"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "0123456789abcdef" / "transformer"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    weights_blob = blobs / ("ab" * 32)
    weights_blob.write_bytes(b"\0" * MIN_MODEL_FILE_BYTES)
    (blobs / "c0ffee").write_text("{}")
    os.symlink(os.path.relpath(weights_blob, snapshot), snapshot / "model.safetensors")
    os.symlink(os.path.relpath(blobs / "c0ffee", snapshot), snapshot / "config.json")
    (files,) = model_files(tmp_path, [ModelSpec(repository="someone/flux-int4", revision="0123456")])
    assert (files.path, files.blob, files.size) == ("transformer/model.safetensors", "ab" * 32, MIN_MODEL_FILE_BYTES)
    assert model_files(tmp_path, [ModelSpec(repository="someone/flux-int4", revision="fedcba9")]) == []
