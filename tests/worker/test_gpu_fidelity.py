"""A worker benchmarks a contest only on the contest's card, unless the operator says otherwise."""

from __future__ import annotations

from edgemaxx.contest import Contest, load_contest
from edgemaxx.settings import Settings
from worker.process import choose_contests, gpu_mismatch

RTX_4090 = "NVIDIA GeForce RTX 4090"


def test_a_contest_runs_only_on_its_card():
    flux, demo = load_contest("flux-4090"), load_contest("demo-cpu")
    assert gpu_mismatch(flux, RTX_4090) is None
    assert gpu_mismatch(flux, "NVIDIA H100 80GB HBM3") == (
        "it is measured on NVIDIA GeForce RTX 4090; this worker has NVIDIA H100 80GB HBM3")
    assert "this worker has no GPU" in gpu_mismatch(flux, None)
    # A contest without a `gpu` (the CPU demo) runs anywhere.
    assert gpu_mismatch(demo, None) is None and gpu_mismatch(demo, RTX_4090) is None


def test_the_operator_may_allow_another_card(tmp_path):
    strict = Settings(data_dir=tmp_path)
    def ids(chosen: tuple[list[Contest], dict[str, str]]) -> tuple[list[str], dict[str, str]]:
        return [c.id for c in chosen[0]], chosen[1]

    served, refused = ids(choose_contests(strict, "NVIDIA H100 80GB HBM3", ["flux-4090", "demo-cpu"]))
    assert served == ["demo-cpu"] and list(refused) == ["flux-4090"]
    assert "EDGEMAXX_ALLOW_GPU_MISMATCH=1" in refused["flux-4090"]
    lenient = strict.model_copy(update={"allow_gpu_mismatch": True})
    assert ids(choose_contests(lenient, "NVIDIA H100 80GB HBM3", ["flux-4090"])) == (["flux-4090"], {})
    # Every shipped contest by default; on a 4090 nothing is refused.
    assert ids(choose_contests(strict, RTX_4090, None)) == (["demo-cpu", "flux-4090"], {})
