"""The harness at full FLUX scale on a real GPU, measured against the in-process limit.

One run, by hand, on a GPU machine (no Docker needed: the process sandbox is used):
  1. the limit: the flux-full fixture's pipeline timed in this machine's Python, in a child process;
  2. flux-full through the process sandbox (`unshare`, the real protocol and metrics), REPEATS times;
  3. flux-full-fused (fused QKV, channels-last VAE, no per-image cleanup) once;
  4. similarity of fused vs baseline (ST-LPIPS on the GPU) and its cost; the fused variant's score.

    python bench/gpu_harness.py --out DIR [--inputs 12] [--size 1024] [--repeats 3]

The sandboxed submission sees only a minimal environment; its interpreter is a venv whose .pth
lists this interpreter's own site-packages, so the GPU machine's torch serves it unchanged.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from edgemaxx.models import TextToImageRequest
    from edgemaxx.settings import Settings

FIXTURES = REPO / "tests" / "fixtures"
WORK = Path("/tmp/edgemaxx-gpu")
# The GPU host's rule: keep NVLink multicast off in every process, sandboxes included.
HOST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def _requests(count: int, size: int, seed: str) -> list[TextToImageRequest]:
    from edgemaxx.contest import load_contest
    from edgemaxx.inputs import inputs

    contest = load_contest("flux-4090")
    contest.inputs.count, contest.inputs.width, contest.inputs.height = count, size, size
    return inputs(contest, seed)


def _cv(values: list[float]) -> float | None:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else None


# ---------------------------------------------------------------- 1. the in-process limit


def inprocess(fixture: str, count: int, size: int, seed: str, warmup: int) -> dict:
    import pynvml
    import torch

    sys.path.insert(0, str(FIXTURES / fixture / "src"))
    import pipeline as submission  # type: ignore[import-not-found]

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    started = time.perf_counter()
    pipe = submission.load_pipeline()
    load_s = time.perf_counter() - started
    requests = _requests(count, size, seed)
    for index in range(warmup):  # the harness's warm-up requests, mirrored
        submission.infer(submission.Request(**requests[index % len(requests)].model_dump()), pipe)
    torch.cuda.synchronize()
    pipeline_s, total_s = [], []
    energy_start = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    for request in requests:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        image = submission.infer(submission.Request(**request.model_dump()), pipe)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        image.save(io.BytesIO(), format="JPEG")
        t2 = time.perf_counter()
        pipeline_s.append(t1 - t0)
        total_s.append(t2 - t0)
    energy_j = (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - energy_start) / 1000
    mine = [p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
    return {
        "fixture": fixture, "load_s": load_s, "pipeline_s": pipeline_s, "with_jpeg_s": total_s,
        "median_pipeline_s": statistics.median(pipeline_s), "median_with_jpeg_s": statistics.median(total_s),
        "cv_pipeline": _cv(pipeline_s), "energy_per_image_j": energy_j / len(requests),
        "max_memory_reserved": torch.cuda.max_memory_reserved(),
        "max_memory_allocated": torch.cuda.max_memory_allocated(),
        "nvml_process_bytes": mine[0] if mine else None,
    }


# ---------------------------------------------------------------- 2. through the sandbox


def make_environment() -> Path:
    """A venv for the sandbox user that sees this interpreter's packages (torch, carried wheels)."""
    from images.build import LAUNCHER

    env_dir = WORK / "env"
    if not (env_dir / "venv" / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir / "venv")
        paths = [p for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() != REPO]
        site = next((env_dir / "venv" / "lib").glob("python*/site-packages"))
        (site / "edgemaxx-host.pth").write_text("\n".join(dict.fromkeys(paths)) + "\n")
    (env_dir / "launch.py").write_bytes(LAUNCHER.read_bytes())
    subprocess.run(["chmod", "-R", "a+rX", str(WORK)], check=True)
    return env_dir


def host_paths() -> list[Path]:
    """This interpreter's package directories: the sandbox venv's .pth points at them, so the
    process sandbox's filesystem view must show them (read-only)."""
    return sorted({Path(p).resolve() for p in sys.path
                   if p and Path(p).is_dir() and Path(p).resolve() != REPO and not p.startswith("/usr/")})


def sandbox_settings(warmup: int, **overrides: object) -> Settings:
    """Settings for a by-hand GPU run; EDGEMAXX_SANDBOX_BWRAP names a carried bwrap where PATH has none."""
    from edgemaxx.settings import Settings

    values: dict[str, object] = dict(
        data_dir=WORK / "data", gpu=0, sandbox_memory_mb=200_000, sandbox_tmpfs_mb=8192, load_timeout_s=600,
        run_timeout_s=1800, sandbox_extra_env=HOST_ENV, owner="gpu-harness", warmup_requests=warmup,
        sandbox_extra_ro_paths=host_paths())
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def sandboxed(fixture: str | Path, env_dir: Path, requests: list[TextToImageRequest], request_timeout_s: float,
              warmup: int, **overrides: object) -> dict:
    from edgemaxx.models import Backend, PreparedSubmission, SourceKind, SubmissionSource
    from images.source import code_bytes
    from worker.evaluate import benchmark, limits_for

    settings = sandbox_settings(warmup, **overrides)
    code = fixture if isinstance(fixture, Path) else FIXTURES / fixture
    prepared = PreparedSubmission(name=code.name, source=SubmissionSource(kind=SourceKind.LOCAL, path=code),
                                  code_dir=code, backend=Backend.PROCESS, environment=str(env_dir),
                                  code_bytes=code_bytes(code))
    limits = limits_for(settings).model_copy(update={"request_timeout_s": request_timeout_s})
    started = time.perf_counter()
    result = benchmark(settings, prepared, requests, limits)
    wall = time.perf_counter() - started
    inside = [dict(kv.split("=", 1) for kv in line.split()[1:])
              for line in result.log_tail.splitlines() if line.startswith("EDGEMAXX-MEM")]
    return {"result": result, "wall_s": wall, "inside": inside}


def _summary(run: dict) -> dict:
    result = run["result"]
    m = result.metrics
    inside = run["inside"]
    peak_reserved = max((int(i["reserved"]) for i in inside), default=None)
    context = None
    if inside and inside[-1].get("nvml_self", "").isdigit():
        context = int(inside[-1]["nvml_self"]) - int(inside[-1]["reserved_now"])
    return {
        "status": result.status.value, "reason": result.reason, "load_s": m.load_time_s,
        "times_s": m.generation_times_s, "median_s": m.median_generation_time_s,
        "mean_s": m.mean_generation_time_s, "cv": m.cv_generation_time,
        "vram_per_process": m.peak_vram_bytes if m.vram_method == "per-process" else None,
        "vram_method": m.vram_method, "vram_device_delta": m.peak_vram_device_delta_bytes,
        "inside_max_reserved": peak_reserved, "inside_context": context,
        "inside_expected_peak": peak_reserved + context if peak_reserved and context else None,
        "energy_per_image_j": m.energy_per_image_j, "peak_ram": m.peak_ram_bytes, "wall_s": run["wall_s"],
        "log_tail": result.log_tail[-1500:] if result.status.value != "ok" else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant-repeats", type=int, default=1)
    parser.add_argument("--groups", type=int, default=1,
                        help="baseline measured GROUPS × REPEATS times; reports the spread of each group's median run "
                             "(what EDGEMAXX_BASELINE_RUNS=REPEATS gives a validator)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured requests before timing")
    parser.add_argument("--seed", default="gpu-harness")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    parser.add_argument("--inprocess", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.inprocess:
        print(json.dumps(inprocess(args.inprocess, args.inputs, args.size, args.seed, args.warmup)))
        return

    import pynvml

    args.out.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    pynvml.nvmlInit()
    gpu = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
    report: dict = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu, "inputs": args.inputs, "size": args.size,
                    "warmup": args.warmup,
                    "command": " ".join([Path(sys.executable).name, *sys.argv])}

    # 1. The limit, in a child process so its GPU memory is gone before the sandboxes run.
    child = subprocess.run([sys.executable, __file__, "--inprocess", "flux-full", "--inputs", str(args.inputs),
                            "--size", str(args.size), "--seed", args.seed, "--warmup", str(args.warmup)],
                           capture_output=True, text=True, timeout=900)
    if child.returncode != 0:
        raise SystemExit(f"in-process run failed:\n{child.stderr[-3000:]}")
    limit = json.loads(child.stdout.strip().splitlines()[-1])
    report["limit"] = limit
    print(f"limit: median {limit['median_pipeline_s']:.4f} s (with JPEG {limit['median_with_jpeg_s']:.4f}), "
          f"cv {limit['cv_pipeline']:.2%}, {limit['energy_per_image_j']:.0f} J/img", flush=True)

    # 2. The baseline through the sandbox, REPEATS times; then the variant once.
    env_dir = make_environment()
    requests = _requests(args.inputs, args.size, args.seed)
    timeout = max(30.0, 4 * limit["median_with_jpeg_s"])
    runs = []
    for index in range(args.repeats * args.groups):
        run = sandboxed("flux-full", env_dir, requests, timeout, args.warmup)
        runs.append(run)
        s = _summary(run)
        print(f"baseline run {index + 1}: {s['status']} median {s['median_s']} cv {s['cv']} "
              f"vram {s['vram_per_process']} dev {s['vram_device_delta']} {s['reason']}", flush=True)
    variants = [sandboxed("flux-full-fused", env_dir, requests, timeout, args.warmup)
                for _ in range(args.variant_repeats)]
    variant = variants[0]
    report["baseline_runs"] = [_summary(r) for r in runs]
    report["variant"] = _summary(variant)
    report["variant_runs"] = [_summary(r) for r in variants]
    good_variants = [r["result"].metrics.median_generation_time_s for r in variants if r["result"].status.value == "ok"]
    report["variant_cv_across_runs"] = _cv(good_variants) if len(good_variants) > 1 else None
    print(f"variant: {report['variant']['status']} median {report['variant']['median_s']} "
          f"{report['variant']['reason']}", flush=True)

    ok = [r for r in runs if r["result"].status.value == "ok"]
    if ok:
        medians = [r["result"].metrics.median_generation_time_s for r in ok]
        report["overhead"] = statistics.fmean(medians) / limit["median_with_jpeg_s"]
        report["overhead_vs_pipeline_only"] = statistics.fmean(medians) / limit["median_pipeline_s"]
        report["cv_across_runs"] = _cv(medians)
    if args.groups > 1:
        from worker.evaluate import median_run

        groups = [[r["result"] for r in runs[g * args.repeats:(g + 1) * args.repeats]] for g in range(args.groups)]
        chosen = [median_run(group).metrics.median_generation_time_s for group in groups]
        report["group_medians"] = chosen
        report["cv_of_group_medians"] = _cv([c for c in chosen if c is not None])
    if ok and variant["result"].status.value == "ok":
        import types

        # stlpips imports IPython.embed and never calls it; the GPU machine has no IPython.
        stub = types.ModuleType("IPython")
        stub.embed = lambda *a, **k: None  # type: ignore[attr-defined]
        sys.modules.setdefault("IPython", stub)
        from edgemaxx.contest import SimilarityMetric, load_contest
        from scoring.score import score
        from scoring.similarity import compare

        baseline = ok[0]["result"]
        compare(baseline.outputs[:1], variant["result"].outputs[:1], SimilarityMetric.ST_LPIPS, device="cuda:0")
        started = time.perf_counter()
        similarity = compare(baseline.outputs, variant["result"].outputs, SimilarityMetric.ST_LPIPS,
                             device="cuda:0")
        per_pair = (time.perf_counter() - started) / len(requests)
        breakdown = score(baseline.metrics, variant["result"].metrics, similarity.mean, similarity.min,
                          load_contest("flux-4090"))
        report["similarity"] = {"metric": "st-lpips", "values": similarity.values, "mean": similarity.mean,
                                "min": similarity.min, "seconds_per_pair": per_pair}
        report["score"] = breakdown.model_dump()
        # Repeatability of the whole pipeline: two baseline runs must give identical images.
        if len(ok) > 1:
            report["baseline_outputs_identical"] = ok[0]["result"].outputs == ok[1]["result"].outputs
    (args.out / "gpu-harness.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("baseline_runs", "variant", "limit")},
                     indent=1, default=str))


if __name__ == "__main__":
    main()
