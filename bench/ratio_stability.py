"""How steady is the score's time ratio? The baseline (`flux-full`) and a faster variant
(`flux-full-fused`) alternate through the process sandbox on one GPU — B S B S … B — with a fixed
reference workload (bf16 GEMMs, in this process) timed before every run. Raw per-request times and
GPU telemetry are kept; the ratio's spread is then computed several ways:

- naive: each S against the B just before it;
- bracketed: each S against the mean of the B before and after it (GPU drift cancels to first order);
- reference-normalised: each run's times divided by the reference workload's time next to it;
- clock-normalised: time × mean SM clock (GPU cycles), per request;
- pooled: each S against the median of every B of the session (what the service scores against:
  `worker/reference.py`), so the baseline's own spread leaves the ratio.

Run by hand on a GPU machine, from the repository root:

    PYTHONPATH=. python bench/ratio_stability.py --pairs 6 --out gpu-out
    python bench/ratio_stability.py --analyse gpu-out/ratio-stability.json   # anywhere, no GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any


def reference_workload(seconds: float = 1.0) -> float:
    """Seconds per 8192² bf16 GEMM, over about `seconds` of them: the GPU's speed right now."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        count += 20
    per = (time.perf_counter() - started) / count
    del a, b
    torch.cuda.empty_cache()
    return per


def collect(pairs: int, inputs: int, size: int, warmup: int, out: Path) -> dict[str, Any]:
    from bench.gpu_harness import _requests, make_environment, sandboxed

    env_dir = make_environment()
    requests = _requests(inputs, size, "ratio-stability")
    sequence = ["flux-full", "flux-full-fused"] * pairs + ["flux-full"]
    runs = []
    for index, fixture in enumerate(sequence):
        reference_s = reference_workload()
        started = time.time()
        result = sandboxed(fixture, env_dir, requests, 60.0, warmup)["result"]
        runs.append({
            "index": index, "fixture": fixture, "started_at": started, "reference_gemm_s": reference_s,
            "status": result.status.value, "reason": result.reason, "load_s": result.metrics.load_time_s,
            "times_s": result.metrics.generation_times_s, "energy_per_image_j": result.metrics.energy_per_image_j,
            "telemetry": [t.model_dump() for t in result.metrics.gpu_telemetry],
        })
        print(f"{index:2d} {fixture:16s} median {result.metrics.median_generation_time_s} "
              f"ref {reference_s * 1000:.3f} ms {result.metrics.telemetry_summary()}", flush=True)
        # Written after every run: a device call cut off at its time limit keeps the runs it made.
        data = {"pairs": pairs, "inputs": inputs, "size": size, "warmup": warmup, "runs": runs}
        (out / "ratio-stability.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def _cv(values: list[float]) -> float | None:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else None


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    runs = [r for r in data["runs"] if r["status"] == "ok"]
    if len(runs) != len(data["runs"]):
        raise SystemExit("a run failed; see its reason in the raw JSON")

    def median_time(run: dict[str, Any]) -> float:
        return statistics.median(run["times_s"])

    def median_cycles(run: dict[str, Any]) -> float:
        return statistics.median(t * tel["sm_clock_mhz"] for t, tel in zip(run["times_s"], run["telemetry"],
                                                                          strict=True))

    def normalised(run: dict[str, Any]) -> float:
        return median_time(run) / run["reference_gemm_s"]

    baselines, variants = runs[0::2], runs[1::2]
    methods: dict[str, list[float]] = {"naive": [], "bracketed": [], "reference_normalised": [],
                                       "clock_normalised": [], "bracketed_clock_normalised": [], "energy": [],
                                       "pooled": []}
    pool = statistics.median(median_time(r) for r in baselines)
    for i, variant in enumerate(variants):
        before, after = baselines[i], baselines[i + 1]
        methods["naive"].append(median_time(before) / median_time(variant))
        methods["bracketed"].append((median_time(before) + median_time(after)) / 2 / median_time(variant))
        methods["reference_normalised"].append(normalised(before) / normalised(variant))
        methods["clock_normalised"].append(median_cycles(before) / median_cycles(variant))
        methods["bracketed_clock_normalised"].append(
            (median_cycles(before) + median_cycles(after)) / 2 / median_cycles(variant))
        methods["energy"].append(before["energy_per_image_j"] / variant["energy_per_image_j"])
        methods["pooled"].append(pool / median_time(variant))
    return {
        "ratio_cv": {name: _cv(values) for name, values in methods.items()},
        "ratios": methods,
        "baseline_medians_s": [median_time(r) for r in baselines],
        "variant_medians_s": [median_time(r) for r in variants],
        "baseline_cv": _cv([median_time(r) for r in baselines]),
        "variant_cv": _cv([median_time(r) for r in variants]),
        "reference_gemm_cv": _cv([r["reference_gemm_s"] for r in runs]),
        "sm_clock_medians": [statistics.median(t["sm_clock_mhz"] for t in r["telemetry"]) for r in runs],
        "clock_events": sorted({e for r in runs for t in r["telemetry"] for e in t["clock_events"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    parser.add_argument("--analyse", type=Path, help="analyse a raw JSON file instead of measuring")
    args = parser.parse_args()
    if args.analyse:
        data = json.loads(args.analyse.read_text())
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        data = collect(args.pairs, args.inputs, args.size, args.warmup, args.out)
    result = analyse(data)
    print(json.dumps({k: v for k, v in result.items() if k != "ratios"}, indent=2))


if __name__ == "__main__":
    main()
