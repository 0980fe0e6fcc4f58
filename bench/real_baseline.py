"""The real SN39 baseline's code, unchanged, at full scale through edgemaxx's process sandbox.

`womboai/flux-schnell-edge-inference@2cff82c` (its repository checkout, with `pipelines` from
`womboai/edge-maxxing@7c760ac` importable) loads its models from a Hugging Face cache laid out by
bench/flux_cache.py (real repository, snapshot and subfolder names, real architecture, seeded random
weights). This runs it through the sandbox — load from disk with a cold page cache, then warm —
12 requests at 1024², checks the outputs decode at the right size and are identical across the two
runs, and runs the flux-full fixture (weights built on the GPU, no disk) for comparison. By hand on a
GPU machine, from the repository root:

    PYTHONPATH=. python bench/real_baseline.py --baseline PATH/flux-schnell-edge-inference \\
        --cache /tmp/hf-cache --out gpu-out [--skip-build]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench.flux_cache import drop_page_cache
from bench.gpu_harness import _requests, make_environment, sandboxed


def _row(name: str, run: dict[str, Any], requests: int, size: int) -> dict[str, Any]:
    result = run["result"]
    m = result.metrics
    sizes = []
    for data in result.outputs:
        with Image.open(io.BytesIO(data)) as image:
            sizes.append(image.size)
    return {
        "name": name, "status": result.status.value, "reason": result.reason, "load_s": m.load_time_s,
        "median_s": m.median_generation_time_s, "mean_s": m.mean_generation_time_s, "cv": m.cv_generation_time,
        "times_s": m.generation_times_s, "vram_bytes": m.peak_vram_bytes, "vram_method": m.vram_method,
        "energy_per_image_j": m.energy_per_image_j, "peak_ram_bytes": m.peak_ram_bytes,
        "tier": result.tier, "outputs": len(result.outputs),
        "all_decode_at_size": len(sizes) == requests and all(s == (size, size) for s in sizes),
        "telemetry": m.telemetry_summary(), "wall_s": run["wall_s"],
        "log_tail": result.log_tail[-3000:] if result.status.value != "ok" else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline repository's checkout")
    parser.add_argument("--cache", type=Path, required=True, help="the Hugging Face cache (built unless --skip-build)")
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="no GPU (a dry run of the flow with --scale tiny)")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}

    # 1. The cache, in a child process so its GPU memory is gone before the sandbox runs.
    if not args.skip_build:
        built = subprocess.run([sys.executable, "-m", "bench.flux_cache", "--root", str(args.cache),
                                "--scale", args.scale, *(["--device", "cpu"] if args.cpu else [])],
                               capture_output=True, text=True, timeout=1800)
        if built.returncode != 0:
            raise SystemExit(f"building the cache failed:\n{built.stderr[-3000:]}")
        report["cache"] = json.loads(built.stdout.strip().splitlines()[-1])
        print(f"cache: {report['cache']}", flush=True)

    # 2. The real baseline: cold page cache, then warm; same inputs, same seeds.
    env_dir = make_environment()
    requests = _requests(args.inputs, args.size, "real-baseline")
    report["evicted_bytes"] = drop_page_cache(args.cache)
    runs = {}
    for name in ("cold", "warm"):
        runs[name] = sandboxed(args.baseline, env_dir, requests, 120.0, args.warmup, models_dir=args.cache,
                               **({"gpu": None} if args.cpu else {}))
        report[f"baseline_{name}"] = _row(f"baseline ({name} page cache)", runs[name], args.inputs, args.size)
        print(json.dumps({k: v for k, v in report[f"baseline_{name}"].items() if k != "times_s"}), flush=True)
    cold, warm = runs["cold"]["result"], runs["warm"]["result"]
    report["identical_outputs_across_runs"] = bool(cold.outputs) and cold.outputs == warm.outputs

    # 3. Our fixture of the same architecture, for comparison.
    if args.scale == "full":
        report["flux_full"] = _row("flux-full fixture", sandboxed("flux-full", env_dir, requests, 120.0, args.warmup),
                                   args.inputs, args.size)
        print(json.dumps({k: v for k, v in report["flux_full"].items() if k != "times_s"}), flush=True)
    (args.out / "real-baseline.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"identical outputs across runs: {report['identical_outputs_across_runs']}")


if __name__ == "__main__":
    main()
