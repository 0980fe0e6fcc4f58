"""Deployment benchmark: cold build of every image, image sizes, and `up` to every service healthy.

Works on a copy of the checkout with the local-build settings (docker-compose.local.yml, the local
base image, no LPIPS download), as tests/test_compose.py does, under its own project name and
image tags, removed at the end. "Cold" means `build --no-cache` of one service per image: every
layer is built again, torch included (the local base image, from `edgemaxx base-image`, is not rebuilt). Run by hand:

    .venv/bin/python bench/compose_up.py [--out docs/bench-results/compose-up.json]
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from edgemaxx.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")  # the CLI (Debian installs it there)
SERVICES = {"redis", "api", "builder", "chain", "worker-cpu"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(args: list[str], cwd: Path, timeout: float = 3600) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def copy_checkout(target: Path) -> None:
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)
    for cert in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
        shutil.copy(cert, target / "deploy" / "ca-certificates" / cert.name)


def health(project: str) -> dict[str, str]:
    ids = run([DOCKER, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"], ROOT).split()
    found = {}
    for container in json.loads(run([DOCKER, "inspect", *ids], ROOT)) if ids else []:
        state = container["State"]
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        found[service] = state.get("Health", {}).get("Status", "none") if state["Running"] else state["Status"]
    return found


def image_size(tag: str) -> int:
    return int(json.loads(run([DOCKER, "image", "inspect", tag], ROOT))[0]["Size"])


def largest_layers(tag: str, count: int = 3) -> list[dict[str, Any]]:
    rows = run([DOCKER, "history", "--no-trunc", "--format", "{{json .}}", tag], ROOT).splitlines()
    layers = [json.loads(row) for row in rows]
    layers.sort(key=lambda layer: -_bytes(layer["Size"]))
    return [{"size": layer["Size"], "step": layer["CreatedBy"][-160:] or "(the base image)"}
            for layer in layers[:count]]


def _bytes(text: str) -> float:
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    for unit in ("kB", "MB", "GB", "B"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return 0.0


def wheel_stage_images(since: float) -> list[str]:
    """Dangling images this benchmark's builds left: the `wheel` stage of Dockerfile.validator."""
    ids = run([DOCKER, "images", "-q", "--filter", "dangling=true"], ROOT).split()
    found = []
    for image in json.loads(run([DOCKER, "image", "inspect", *ids], ROOT)) if ids else []:
        created = calendar.timegm(time.strptime(image["Created"][:19], "%Y-%m-%dT%H:%M:%S"))
        history = run([DOCKER, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image["Id"]], ROOT)
        if created >= since - 5 and "uv build --wheel" in history:
            found.append(image["Id"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument("--base-image", default=Settings().base_image, help="the local base image")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:6]
    project, validator, redis = f"edgemaxx-bench-{tag}", f"edgemaxx-validator:bench-{tag}", "edgemaxx-redis:local"
    compose = [DOCKER, "compose"] if subprocess.run([DOCKER, "compose", "version"], capture_output=True,
                                                      timeout=60).returncode == 0 else ["docker-compose"]
    scratch = Path(tempfile.mkdtemp(prefix="edgemaxx-bench-", dir="/var/lib"))
    checkout, data = scratch / "checkout", scratch / "data"
    checkout.mkdir()
    copy_checkout(checkout)
    settings = {
        "COMPOSE_PROJECT_NAME": project, "COMPOSE_PROFILES": "cpu",
        "COMPOSE_FILE": "docker-compose.yml:docker-compose.local.yml",
        "EDGEMAXX_VALIDATOR_BASE_IMAGE": args.base_image, "EDGEMAXX_BASE_IMAGE": args.base_image,
        "EDGEMAXX_FETCH_LPIPS_WEIGHTS": "0", "EDGEMAXX_VALIDATOR_IMAGE": validator,
        "EDGEMAXX_NODE_NAME": f"bench{tag}", "EDGEMAXX_API_PORT": str(free_port()),
        "EDGEMAXX_DATA_DIR": str(data), "EDGEMAXX_WHEELHOUSE_DIR": str((ROOT / "wheelhouse").resolve()),
        "EDGEMAXX_WALLETS": str(scratch / "wallets"), "EDGEMAXX_HEALTHCHECK_INTERVAL": "10s",
    }
    (checkout / ".env").write_text((checkout / ".env.example").read_text()
                                   + "".join(f"{k}={v}\n" for k, v in settings.items()))
    old_redis = json.loads(run([DOCKER, "image", "inspect", redis], ROOT))[0]["Id"] if subprocess.run(
        [DOCKER, "image", "inspect", redis], capture_output=True, timeout=60).returncode == 0 else None
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
                              "cpus": len(os.sched_getaffinity(0)), "compose": " ".join(compose)}
    began = time.time()
    try:
        started = time.monotonic()
        # One service of each image: the others then build from its layers, as on a first `up --build`.
        run([*compose, "build", "--no-cache", "redis", "api"], checkout)
        report["cold_build_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        run([*compose, "build"], checkout)
        report["cached_build_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        run([*compose, "up", "-d"], checkout)
        report["up_returns_s"] = round(time.monotonic() - started, 1)
        while set(health(project)) != SERVICES or any(s != "healthy" for s in health(project).values()):
            if time.monotonic() - started > 600:
                raise SystemExit(f"not healthy after 600 s: {health(project)}")
            time.sleep(0.5)
        report["up_to_healthy_s"] = round(time.monotonic() - started, 1)
        report["images"] = {
            validator.split(":")[0]: {"bytes": image_size(validator), "largest_layers": largest_layers(validator)},
            redis.split(":")[0]: {"bytes": image_size(redis)},
        }
    finally:
        subprocess.run([*compose, "down", "--volumes", "--timeout", "20"], cwd=checkout, capture_output=True,
                       timeout=600)
        subprocess.run([DOCKER, "image", "rm", validator, *wheel_stage_images(began)], capture_output=True,
                       timeout=600)
        if old_redis and old_redis != json.loads(run([DOCKER, "image", "inspect", redis], ROOT))[0]["Id"]:
            subprocess.run([DOCKER, "image", "rm", old_redis], capture_output=True, timeout=600)
        shutil.rmtree(scratch, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
