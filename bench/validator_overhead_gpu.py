"""The validator's own GPU time per submission, phase by phase, at full scale, on one GPU.

A benchmark job spends the GPU on three things besides the submission's load and requests:
comparing its outputs with the baseline's (in the job's work horse, a fork of the worker),
stopping its sandbox (the exit that frees its VRAM), and Redis. This measures the first two as
the worker does them, in forked children of one parent process, alternating:

  - per-job build: the parent has only imported the similarity package (what the worker did
    before `worker.warm`); the child builds ST-LPIPS, moves it to its GPU and compares;
  - preloaded: the parent has built ST-LPIPS on the CPU first (`scoring.similarity.preload`, as
    the GPU worker now does at start); the child moves it to its GPU and compares.
Each child runs `scoring.similarity.compare` on INPUTS pairs of JPEGs at SIZE², as a job does.
Then a process holding `--hold-gb` of VRAM (a 1024² FLUX submission holds about 40 GB) is killed
as the sandbox's stop kills it: how long until it is reaped, and until NVML sees its memory free.

By hand, on the GPU machine (offline: wheels carried, see bench/device_env.sh):

    source bench/device_env.sh && python3 -m bench.validator_overhead_gpu --out $OUT
    python -m bench.validator_overhead_gpu --cpu --size 256 --inputs 4 --out /tmp/vo   # the flow on a CPU
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOLDER = """
import sys, torch
x = torch.empty(int(float(sys.argv[1]) * 2**30), dtype=torch.uint8, device="cuda:0")
x.fill_(1)
torch.cuda.synchronize()
print("ready", flush=True)
sys.stdin.read()
"""


def jpegs(count: int, size: int, seed: int) -> list[bytes | None]:
    """Photos-like enough for the metric's cost (which does not depend on content): smooth noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: list[bytes | None] = []
    for _ in range(count):
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def in_child(device: str, baseline: list[bytes | None], outputs: list[bytes | None]) -> dict[str, float]:
    """Fork (as RQ forks a work horse) and time compare() there; what the child measured."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the work horse
        os.close(read)
        try:
            from edgemaxx.contest import SimilarityMetric
            from scoring.similarity import compare

            started = time.monotonic()
            first = compare(baseline, outputs, SimilarityMetric.ST_LPIPS, device=device)
            first_s = time.monotonic() - started
            started = time.monotonic()
            compare(baseline, outputs, SimilarityMetric.ST_LPIPS, device=device)
            again_s = time.monotonic() - started
            row = {"compare_s": first_s, "again_s": again_s, "mean": first.mean}
            if device != "cpu":  # what a process keeping the network on the GPU would hold between jobs
                row["resident_vram_bytes"] = resident_vram()
            os.write(write, json.dumps(row).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        body = pipe.read()
    os.waitpid(pid, 0)
    return dict(json.loads(body))


def resident_vram() -> int:
    """This process's VRAM per NVML (its CUDA context included) once torch's cache is emptied."""
    import pynvml
    import torch

    torch.cuda.empty_cache()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    mine = [p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
    return int(mine[0] or 0) if mine else -1


def teardown(hold_gb: float) -> dict[str, Any]:
    """A process holding `hold_gb` of VRAM, SIGKILLed: until reaped, and until NVML sees it freed."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    before = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(hold_gb)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "ready":
        raise SystemExit("the VRAM holder did not start")
    held = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    killed = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    reaped_s = time.monotonic() - killed
    while pynvml.nvmlDeviceGetMemoryInfo(handle).used > before + 2**30 and time.monotonic() - killed < 60:
        time.sleep(0.005)
    freed_s = time.monotonic() - killed
    return {"hold_gb": hold_gb, "used_before": before, "used_held": held, "reaped_s": reaped_s, "freed_s": freed_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hold-gb", type=float, default=40.0)
    parser.add_argument("--cpu", action="store_true", help="compare on the CPU, skip the VRAM teardown")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.cpu else "cuda:0"
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                              "inputs": args.inputs, "size": args.size}
    if not args.cpu:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        report["gpu"] = pynvml.nvmlDeviceGetName(handle)
        report["driver"] = pynvml.nvmlSystemGetDriverVersion()

    # The worker's parent: the similarity package imported (its start-up checks do), no CUDA.
    started = time.monotonic()
    import stlpips_pytorch.stlpips  # noqa: F401
    import torch

    report["parent_import_s"] = time.monotonic() - started
    print(f"imported torch {torch.__version__} and stlpips in {report['parent_import_s']:.1f}s", flush=True)
    report["torch"] = torch.__version__
    baseline, outputs = jpegs(args.inputs, args.size, 1), jpegs(args.inputs, args.size, 2)

    def save() -> None:  # after each stage: a run stopped at its time limit keeps what it measured
        (args.out / "validator-overhead.json").write_text(json.dumps(report, indent=1) + "\n")

    rows: dict[str, list[dict[str, float]]] = {"per_job_build": [], "preloaded": []}
    report["similarity"] = rows
    for _ in range(args.rounds):
        rows["per_job_build"].append(in_child(device, baseline, outputs))
        print("per-job build", rows["per_job_build"][-1], flush=True)
        save()
    from edgemaxx.contest import SimilarityMetric
    from scoring.similarity import preload

    started = time.monotonic()
    preload([SimilarityMetric.ST_LPIPS])
    report["preload_s"] = time.monotonic() - started
    for _ in range(args.rounds):
        rows["preloaded"].append(in_child(device, baseline, outputs))
        print("preloaded", rows["preloaded"][-1], flush=True)
        save()
    report["similarity_median_s"] = {k: statistics.median(r["compare_s"] for r in v) for k, v in rows.items()}
    if not args.cpu:
        report["teardown"] = []
        for _ in range(2):
            report["teardown"].append(teardown(args.hold_gb))
            print("teardown", report["teardown"][-1], flush=True)
            save()
    save()
    print(json.dumps({k: v for k, v in report.items() if k != "similarity"}, indent=1))


if __name__ == "__main__":
    main()
