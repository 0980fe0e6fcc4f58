"""The Landlock tier where it is needed: inside an unprivileged Docker container (no
CAP_SYS_ADMIN, Docker's default seccomp profile, so no namespace can be created: the RunPod
case), the process sandbox runs the tiny-Flux baseline, denies the network to the probes and keeps
the filesystem limited. The container sees this checkout, the validator's venv and interpreter,
and the prepared environments read-only; its data directory is its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgemaxx.constants import LABEL_OWNER
from edgemaxx.models import Backend, MemoryGuard, RunStatus, SandboxTier
from tests.conftest import REPO_ROOT
from worker.evaluate import benchmark, limits_for

DRIVER = Path(__file__).with_name("unprivileged_driver.py")
NAMES = ["flux-baseline", "network-probe", "network-after-load", "steal-data"]
DATA_DIR = "/var/lib/edgemaxx-unprivileged"


def _read_only_paths(prepared: dict) -> set[Path]:
    paths = {REPO_ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    for submission in prepared.values():
        paths |= {Path(submission.environment), submission.code_dir}
    return {p.resolve() for p in paths}


def test_landlock_tier_in_an_unprivileged_container(settings, prepared, requests_small, docker_client,
                                                   base_image):
    from docker.types import Mount

    jobs = {name: prepared(name, Backend.PROCESS) for name in NAMES}
    job = {"data_dir": DATA_DIR, "envs_dir": str(settings.envs_dir),
           "requests": [r.model_dump() for r in requests_small],
           "prepared": {name: p.model_dump(mode="json") for name, p in jobs.items()}}
    mounts = [Mount(str(p), str(p), type="bind", read_only=True) for p in sorted(_read_only_paths(jobs))]
    mounts.append(Mount("/usr/bin/bwrap", "/usr/bin/bwrap", type="bind", read_only=True))  # to fail honestly
    container = docker_client.containers.run(
        base_image, [sys.executable, str(DRIVER), json.dumps(job)],
        environment={"PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        working_dir=str(REPO_ROOT), mounts=mounts, tmpfs={DATA_DIR: "size=512m,mode=755"},
        network_mode="none",  # the probes reach only a listener inside; nothing leaves this host
        mem_limit="4g", labels={LABEL_OWNER: settings.owner}, detach=True,
    )
    try:
        status = container.wait(timeout=600)
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        host = container.attrs["HostConfig"]
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs[-4000:]
    assert not host.get("Privileged") and not host.get("CapAdd"), "the stand-in host must be unprivileged"
    out = json.loads(logs.strip().splitlines()[-1])

    # 1. The tier: bwrap is there but namespaces are forbidden; Landlock and seccomp work.
    assert out["tier"] == SandboxTier.LANDLOCK, out["describe"]
    assert "bwrap cannot create namespaces here" in out["detail"], out["detail"]
    assert out["landlock_abi"] >= 1
    assert out["memory_guard"] == MemoryGuard.SAMPLER, "no writable cgroup in the container"
    runs = out["runs"]

    # 2. The tiny-Flux baseline runs, and gives the bytes it gives on the host.
    baseline = runs["flux-baseline"]
    assert baseline["status"] == RunStatus.OK, baseline["reason"] + baseline["log_tail"]
    assert baseline["tier"] == SandboxTier.LANDLOCK
    on_host = benchmark(settings, jobs["flux-baseline"], requests_small,
                        limits_for(settings).model_copy(update={"load_timeout_s": 120, "request_timeout_s": 60}))
    assert [o.hex() for o in on_host.outputs if o] == baseline["outputs"]

    # 3. The network is denied by the sandbox itself (a listener is up in the container).
    for name in ("network-probe", "network-after-load"):
        log = runs[name]["log_tail"]
        assert runs[name]["status"] == RunStatus.INVALID
        assert "NETWORK REACHABLE" not in log and "NETWORK ESCAPE" not in log, log
    assert "NETWORK BLOCKED host redis 127.0.0.1:6379: PermissionError" in runs["network-probe"]["log_tail"]
    assert "NETWORK BLOCKED inet 127.0.0.1:6379: PermissionError" in runs["network-after-load"]["log_tail"]

    # 4. The filesystem is limited: neither the data directory nor the other environments.
    log = runs["steal-data"]["log_tail"]
    assert "OWN CODE READABLE" in log and "SEARCH DONE" in log, log
    assert "STOLEN" not in log and "SECRET-BASELINE-OUTPUT" not in log, log
    assert f"LISTED {DATA_DIR}" not in log and f"LISTED {settings.envs_dir}" not in log, log
