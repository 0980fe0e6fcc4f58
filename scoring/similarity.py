"""Similarity of a submission's outputs to the baseline's, per input: 1 − perceptual distance.

Metrics: LPIPS with an AlexNet trunk (`lpips`; its backbone is torchvision's ImageNet AlexNet,
read from the torch hub cache, never downloaded at run time) and ST-LPIPS (`stlpips-pytorch`,
shift-tolerant, weights shipped in the package). Torch is imported lazily: scoring math and
the CLI stay light.
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from edgemaxx.contest import SimilarityMetric
from edgemaxx.errors import InfrastructureError

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
BATCH = 8


class InputSimilarity(BaseModel):
    index: int
    similarity: float
    reason: str = ""  # why it is 0 without a comparison (missing, undecodable, size)


class SimilarityReport(BaseModel):
    metric: SimilarityMetric
    inputs: list[InputSimilarity] = Field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [i.similarity for i in self.inputs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.inputs else 0.0

    @property
    def min(self) -> float:
        return min(self.values) if self.inputs else 0.0


def alexnet_weights_path() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def _device(prefer: str | None) -> str:
    import torch

    if prefer:
        return prefer
    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def _cpu_model(metric: SimilarityMetric) -> Any:
    """The metric's network with its weights, on the CPU, frozen."""
    if metric is SimilarityMetric.LPIPS_ALEX:
        weights = alexnet_weights_path()
        if not weights.is_file():
            raise InfrastructureError(
                f"LPIPS needs torchvision's AlexNet weights {ALEXNET_FILE} at {weights} "
                "(the torch hub cache; set TORCH_HOME to move it). Dockerfile.validator fetches "
                "them at build time; elsewhere copy the file there by hand."
            )
        import lpips

        model = lpips.LPIPS(net="alex", verbose=False)
    else:
        from stlpips_pytorch import stlpips

        # It prints where it loads its weights from; that is not the CLI's output.
        with contextlib.redirect_stdout(io.StringIO()):
            model = stlpips.LPIPS(net="alex", variant="shift_tolerant")
    model = model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


@cache
def _model(metric: SimilarityMetric, device: str) -> Any:
    model = _cpu_model(metric)
    # A copy for another device: the CPU one stays what preload() built.
    return model if device == "cpu" else copy.deepcopy(model).to(device)


def preload(metrics: Iterable[SimilarityMetric]) -> None:
    """Build each metric's network now, on the CPU. A GPU worker calls this once at start, before
    RQ forks a work horse per job: every horse inherits the built network and only moves it to
    its GPU, instead of reading and building it while the job holds the GPU. Touches no CUDA (a
    forked child could not use a CUDA context its parent made). Raises what building raises."""
    import torch

    # One thread while building: a parallel region would start OpenMP's thread pool here, and a
    # child forked after that hangs in its own first parallel region (libgomp is not fork-safe).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for metric in set(metrics):
            _cpu_model(metric)
    finally:
        torch.set_num_threads(threads)


def _decode(data: bytes | None) -> tuple[Any | None, str]:
    """RGB array, or None with the reason."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if data is None:
        return None, "no output"
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB")), ""
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return None, f"output does not decode ({type(exc).__name__})"


def _distances(model: Any, pairs: list[tuple[Any, Any]], device: str) -> list[float]:
    import numpy as np
    import torch

    def tensor(arrays: list[Any]) -> Any:
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
        return (batch / 127.5 - 1.0).to(device)

    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start:start + BATCH]
            d = model(tensor([a for a, _ in chunk]), tensor([b for _, b in chunk]))
            out.extend(float(x) for x in d.flatten().cpu())
    return out


def compare(baseline: list[bytes | None], outputs: list[bytes | None], metric: SimilarityMetric,
            device: str | None = None) -> SimilarityReport:
    """Similarity per input (same index = same request); missing or broken outputs score 0."""
    report = SimilarityReport(metric=metric)
    pending: dict[tuple[int, int], list[tuple[int, Any, Any]]] = {}
    for index in range(len(baseline)):
        reference, why_ref = _decode(baseline[index])
        if reference is None:
            raise InfrastructureError(f"baseline output {index} is unusable: {why_ref}")
        candidate, why = _decode(outputs[index] if index < len(outputs) else None)
        if candidate is None:
            report.inputs.append(InputSimilarity(index=index, similarity=0.0, reason=why))
            continue
        if candidate.shape != reference.shape:
            report.inputs.append(InputSimilarity(
                index=index, similarity=0.0,
                reason=f"size {candidate.shape[1]}x{candidate.shape[0]} differs from the "
                       f"baseline's {reference.shape[1]}x{reference.shape[0]}"))
            continue
        pending.setdefault(reference.shape[:2], []).append((index, reference, candidate))
    if pending:
        dev = _device(device)
        model = _model(metric, dev)
        for group in pending.values():
            distances = _distances(model, [(r, c) for _, r, c in group], dev)
            for (index, _, _), distance in zip(group, distances, strict=True):
                similarity = min(1.0, max(0.0, 1.0 - distance))
                report.inputs.append(InputSimilarity(index=index, similarity=similarity))
    report.inputs.sort(key=lambda item: item.index)
    return report
