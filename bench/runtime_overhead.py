"""What gVisor costs: the tiny-Flux baseline and faster fixtures through `edgemaxx bench --sandbox
docker`, under runc and under runsc, alternating, in one run on one machine.

Each round runs the same command twice, once per runtime (EDGEMAXX_SANDBOX_RUNTIME), so both see
the same load; the first round only warms the image and page caches and is not counted. Run by
hand (not a test), as root, with runsc registered (scripts/setup):

    .venv/bin/python bench/runtime_overhead.py [--rounds 4] [--inputs 6] [--out FILE]
        [--submission DIR --baseline DIR] [--gpu N]
    .venv/bin/python bench/runtime_overhead.py --summarize FILE [FILE ...]   # several runs together
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgemaxx.models import Backend, ContainerRuntime

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
RUNTIMES = (ContainerRuntime.RUNC, ContainerRuntime.RUNSC)
BEST = ("load_time_s", "median_generation_time_s")
FIGURES = ("load_time_s", "median_generation_time_s", "mean_generation_time_s", "cv_generation_time",
           "peak_ram_bytes")


def bench_command(args: argparse.Namespace) -> list[str]:
    command = ["bench", str(args.submission), "--baseline", str(args.baseline), "--sandbox", Backend.DOCKER.value,
               "--inputs", str(args.inputs), "--json"]
    return command + (["--gpu", str(args.gpu)] if args.gpu is not None else [])


def bench_once(runtime: ContainerRuntime, args: argparse.Namespace) -> dict[str, Any]:
    """One `edgemaxx bench` under `runtime`; each row's summary as it reports it."""
    env = {**os.environ, "EDGEMAXX_SANDBOX_RUNTIME": runtime.value}
    command = [sys.executable, "-m", "cli", *bench_command(args)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env, cwd=ROOT)
    wall = time.monotonic() - started
    load = os.getloadavg()[0]  # the machine may be shared: how busy it was, for the reader
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"edgemaxx bench under {runtime} failed ({done.returncode}):\n{done.stderr[-3000:]}") from None
    if done.returncode != 0:
        # On a loaded machine a row can miss its request timeout: kept, reported, not counted.
        reasons = [report.get("error")] + [(report.get(r) or {}).get("reason") for r in ("baseline", "submission")]
        return {"runtime": runtime.value, "wall_s": wall, "load_1m": load, "failed": "; ".join(r for r in reasons if r)}
    rows = {}
    for row in ("baseline", "submission"):
        if report[row]["runtime"] != runtime.value:
            raise SystemExit(f"{row} ran under {report[row]['runtime']}, not {runtime}")
        rows[row] = {key: report[row]["summary"][key] for key in FIGURES}
        rows[row]["generation_times_s"] = report[row]["metrics"]["generation_times_s"]
    return {"runtime": runtime.value, "wall_s": wall, "load_1m": load, "score": report["score"], "rows": rows}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per runtime and row: the median over the rounds that ran of each figure, and the best
    (lowest) load and generation time: on a shared machine other work only ever adds time, so the
    best of several rounds is the closest to the runtime's own cost. Then runsc / runc of each."""
    table: dict[str, Any] = {}
    for runtime in RUNTIMES:
        mine = [r for r in runs if r["runtime"] == runtime.value and "failed" not in r]
        entry: dict[str, Any] = {}
        for row in ("baseline", "submission"):
            entry[row] = {key: statistics.median(r["rows"][row][key] for r in mine) for key in FIGURES}
            for key in BEST:
                entry[row][f"best_{key}"] = min(r["rows"][row][key] for r in mine)
        entry["score"] = statistics.median(r["score"] for r in mine)
        entry["counted"] = len(mine)
        entry["failed"] = [r["failed"] for r in runs if r["runtime"] == runtime.value and "failed" in r]
        table[runtime.value] = entry
    table["runsc_over_runc"] = {
        row: {key: table["runsc"][row][key] / table["runc"][row][key]
              for key in ("load_time_s", "median_generation_time_s", "peak_ram_bytes",
                          *(f"best_{k}" for k in BEST))}
        for row in ("baseline", "submission")}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="counted rounds (each: runc, then runsc)")
    parser.add_argument("--inputs", type=int, default=6)
    parser.add_argument("--submission", type=Path, default=FIXTURES / "flux-faster")
    parser.add_argument("--baseline", type=Path, default=FIXTURES / "flux-baseline")
    parser.add_argument("--gpu", type=int, default=None, help="GPU index (a GPU host with Docker and nvproxy)")
    parser.add_argument("--out", type=Path, default=None, help="write the raw JSON here")
    parser.add_argument("--summarize", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: summarize the rounds of earlier runs' JSON together")
    args = parser.parse_args()
    if args.summarize:
        earlier = [json.loads(path.read_text()) for path in args.summarize]
        print(json.dumps(summarize([run for result in earlier for run in result["runs"]]), indent=2))
        return

    runsc = subprocess.run(["runsc", "--version"], capture_output=True, text=True, timeout=10).stdout
    print("warm-up round (not counted)", file=sys.stderr)
    for runtime in RUNTIMES:
        bench_once(runtime, args)
    runs = []
    for index in range(args.rounds):
        # Alternate which runtime goes first, so neither always follows the other.
        for runtime in RUNTIMES if index % 2 == 0 else tuple(reversed(RUNTIMES)):
            print(f"round {index + 1}/{args.rounds}: {runtime}", file=sys.stderr)
            runs.append(bench_once(runtime, args))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "runsc": runsc.splitlines()[0] if runsc else None},
        "command": "edgemaxx " + " ".join(c.replace(str(ROOT) + "/", "") for c in bench_command(args)),
        "rounds": args.rounds,
        "summary": summarize(runs),
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
