"""Similarity on real images: ST-LPIPS with its shipped weights, LPIPS with a placed backbone."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from edgemaxx.contest import SimilarityMetric, load_contest
from edgemaxx.errors import InfrastructureError
from scoring import similarity
from scoring.similarity import compare


def _scene(seed: int, size: int = 128) -> Image.Image:
    """A photo-like image: smooth gradient sky, ground, and a few shapes."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = (top * (1 - y) + bottom * y) * np.ones((size, size, 3))
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, size - 20, 2)
        w, h = rng.integers(10, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1))


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = np.asarray(image).astype(np.float32) + rng.normal(0, sigma, (*image.size[::-1], 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def test_st_lpips_identical_noisy_and_different():
    scene = _scene(1)
    floor = load_contest("demo-cpu").similarity_floor
    sigmas = [0, 4, 12, 30, 60]
    baseline = [_jpeg(scene)] * len(sigmas) + [_jpeg(scene)]
    outputs = [_jpeg(_noisy(scene, s)) for s in sigmas] + [_jpeg(_scene(2))]
    report = compare(baseline, outputs, SimilarityMetric.ST_LPIPS, device="cpu")
    values = report.values
    assert values[0] == pytest.approx(1.0, abs=1e-6)
    noisy = values[: len(sigmas)]
    assert all(a > b for a, b in zip(noisy, noisy[1:], strict=False)), noisy
    assert values[-1] < floor, f"a different image must fall below the floor: {values[-1]}"
    assert report.min == values[-1] and report.mean == pytest.approx(sum(values) / len(values))


def test_broken_outputs_score_zero_with_reason():
    scene = _jpeg(_scene(3))
    small = _jpeg(_scene(3, size=64))
    report = compare([scene, scene, scene, scene], [scene, b"garbage", None, small],
                     SimilarityMetric.ST_LPIPS, device="cpu")
    assert report.values[0] == pytest.approx(1.0, abs=1e-6)
    assert [i.similarity for i in report.inputs[1:]] == [0.0, 0.0, 0.0]
    assert "does not decode" in report.inputs[1].reason
    assert report.inputs[2].reason == "no output"
    assert "64x64 differs from the baseline's 128x128" in report.inputs[3].reason


def test_lpips_alex_missing_backbone_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    similarity._model.cache_clear()
    scene = _jpeg(_scene(4))
    with pytest.raises(InfrastructureError) as info:
        compare([scene], [scene], SimilarityMetric.LPIPS_ALEX, device="cpu")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message


def test_lpips_alex_runs_end_to_end_with_a_placed_backbone(tmp_path, monkeypatch):
    """The real lpips code path, with a (random) AlexNet state dict where torch hub looks."""
    import torch
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    similarity._model.cache_clear()
    checkpoint = similarity.alexnet_weights_path()
    checkpoint.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), checkpoint)
    scene = _scene(5)
    baseline = [_jpeg(scene)] * 3
    outputs = [_jpeg(scene), _jpeg(_noisy(scene, 10)), _jpeg(_noisy(scene, 60))]
    report = compare(baseline, outputs, SimilarityMetric.LPIPS_ALEX, device="cpu")
    assert report.values[0] == pytest.approx(1.0, abs=1e-6)
    assert report.values[0] > report.values[1] > report.values[2]
    similarity._model.cache_clear()


FORKED_AFTER_PRELOAD = """
import io, os, sys
import numpy as np
from PIL import Image
from edgemaxx.contest import SimilarityMetric
from scoring import similarity

def jpeg(seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()

similarity.preload([SimilarityMetric.ST_LPIPS])  # what a GPU worker does at start, before RQ forks horses
# Big enough for torch to run the comparison's CPU work in parallel regions.
baseline, outputs = [jpeg(i) for i in range(6)], [jpeg(10), *(jpeg(i) for i in range(1, 6))]
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # a work horse
    report = similarity.compare(baseline, outputs, SimilarityMetric.ST_LPIPS, device="cpu")
    os.write(write, repr(report.values).encode())
    os._exit(0)
os.close(write)
child = os.read(read, 1000).decode()
os.waitpid(pid, 0)
print(child)
print(repr(similarity.compare(baseline, outputs, SimilarityMetric.ST_LPIPS, device="cpu").values))
"""


def test_a_horse_forked_after_preload_compares_like_the_parent():
    """The worker builds the network before forking its work horses; a parallel region in the
    parent would leave OpenMP's pool unusable in the child, which then hangs in its first one."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    done = subprocess.run([sys.executable, "-c", FORKED_AFTER_PRELOAD], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=150, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    child, parent = (json.loads(line) for line in done.stdout.splitlines())
    assert child == pytest.approx(parent, abs=1e-6), "the horse's network is the parent's"
    assert child[0] < 0.999 and child[1:] == pytest.approx([1.0] * 5, abs=1e-6)  # another image; the same ones
