"""Hostile fixtures probing each isolation property, held by Docker and by the process sandbox at
each of its tiers: nothing of the validator readable, nothing left behind, memory stopped by the
kernel, only this worker's GPU visible, no network after load."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from edgemaxx.models import Backend, MemoryGuard, RunStatus
from tests.conftest import HOLDERS, fixture_path, held
from worker.evaluate import benchmark, limits_for

SECRET = b"SECRET-BASELINE-OUTPUT"
MARKER = "edgemaxx-leftover-marker"
SHARED_PLACES = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
# What Docker's /dev holds, and what bwrap's minimal /dev does (plus the worker's GPU nodes).
DOCKER_DEV = {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
              "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
# gVisor adds two of its own, emulated by its kernel (no host device behind them).
GVISOR_DEV = DOCKER_DEV | {"fuse", "net"}
BWRAP_DEV = {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
             "stdout", "tty", "urandom", "zero"}


def _limits(settings):
    return limits_for(settings).model_copy(update={"load_timeout_s": 30, "request_timeout_s": 10,
                                                   "run_timeout_s": 120})


def _run(settings, holder, prepared, name, requests, **settings_update):
    settings, backend = held(settings, holder)
    settings = settings.model_copy(update=settings_update)
    result = benchmark(settings, prepared(name, backend), requests[:1], _limits(settings))
    assert result.status is RunStatus.INVALID, "a hostile fixture never scores"
    return result


@pytest.fixture(scope="module")
def fake_aof(settings) -> Path:
    """Redis's AOF in the test data directory, world-readable as Redis leaves it, with a secret
    that stands for the baseline's output images."""
    folder = settings.data_dir / "redis" / "appendonlydir"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (settings.data_dir / "redis", folder):
        os.chmod(path, 0o755)
    aof = folder / "appendonly.aof.1.incr.aof"
    aof.write_bytes(b"*3\r\n$4\r\nHSET\r\n" + SECRET + b"\r\n")
    os.chmod(aof, 0o644)
    return aof


def _targets(settings, aof: Path) -> str:
    return ":".join(str(p) for p in (settings.data_dir, aof.parent, aof, settings.envs_dir, settings.runs_dir))


def test_steal_data_would_succeed_unsandboxed(settings, fake_aof):
    """The control: as the same unprivileged uid but outside any sandbox, the probe finds and reads
    the AOF. So its silence inside a sandbox means containment, not a broken probe."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the probe as the sandbox uid (CI runs as root)")
    uid = str(settings.sandbox_uid)
    code = fixture_path("steal-data")
    probe = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(settings.process_python), "-I", "-c",
         "import sys; sys.path.insert(0, 'src'); import main; main.main()"],
        cwd=code, env={"STEAL_TARGETS": _targets(settings, fake_aof), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300)
    assert f"STOLEN {fake_aof}" in probe.stdout and SECRET.decode() in probe.stdout, probe.stdout[-3000:]


@pytest.mark.parametrize("holder", HOLDERS)
def test_data_directory_is_invisible(holder, settings, prepared, requests_small, fake_aof):
    result = _run(settings, holder, prepared, "steal-data", requests_small,
                  sandbox_extra_env={"STEAL_TARGETS": _targets(settings, fake_aof)})
    log = result.log_tail
    assert "OWN CODE READABLE" in log and "SEARCH DONE" in log, log
    assert "STOLEN" not in log and SECRET.decode() not in log, log
    assert f"LISTED {settings.data_dir}" not in log and f"FOUND {fake_aof}" not in log, log
    assert "could not download" not in log
    assert "exited with code 1 before opening inferences.sock" in result.reason


@pytest.mark.parametrize("holder", HOLDERS)
def test_nothing_is_left_for_the_next_run(holder, settings, prepared, requests_small):
    for place in SHARED_PLACES:
        (place / MARKER).unlink(missing_ok=True)
    first = _run(settings, holder, prepared, "leave-behind", requests_small)
    second = _run(settings, holder, prepared, "leave-behind", requests_small)
    assert "WRITES DONE" in first.log_tail and "WRITES DONE" in second.log_tail, first.log_tail
    # It could write somewhere (its code's root at least): the probe really tried.
    assert "WROTE /" in first.log_tail, first.log_tail
    assert "FOUND LEFTOVER" not in second.log_tail, second.log_tail
    for place in SHARED_PLACES:
        assert not (place / MARKER).exists(), f"{place} kept what the submission wrote"


@pytest.mark.parametrize("holder", HOLDERS)
def test_memory_burst_is_stopped_by_the_kernel(holder, settings, prepared, requests_small):
    """3 GiB in one allocation under a 1 GiB limit: the kernel's OOM killer (a cgroup's, counted
    in memory.oom_control / memory.events; Docker's OOMKilled) ends it, not the sampler."""
    result = _run(settings, holder, prepared, "memory-burst", requests_small)
    assert result.memory_guard is MemoryGuard.KERNEL
    assert "was killed by the kernel for exceeding the 1024 MiB memory limit" in result.reason, result.reason
    assert "HOLDING" not in result.log_tail


@pytest.fixture
def fake_gpus(tmp_path) -> dict[str, Path]:
    """Stand-ins for GPU device nodes (plain files: this machine has no GPU): the worker's own
    GPU 3 with the control and UVM nodes, and GPU 1, which belongs to another worker."""
    tmp_path.chmod(0o755)
    nodes = {name: tmp_path / name for name in ("nvidia3", "nvidiactl", "nvidia-uvm", "nvidia1")}
    for node in nodes.values():
        node.write_bytes(b"")
        node.chmod(0o666)
    return nodes


@pytest.mark.parametrize("holder", HOLDERS)
def test_only_this_workers_gpu_is_visible(holder, settings, prepared, requests_small, fake_gpus):
    mine = [fake_gpus["nvidia3"], fake_gpus["nvidiactl"], fake_gpus["nvidia-uvm"]]
    result = _run(settings, holder, prepared, "device-probe", requests_small, sandbox_gpu_devices=mine)
    log = result.log_tail
    assert "OPENED /dev/nvidia1" not in log, log
    if holder == "landlock":  # /dev is not listable; only named nodes can be opened
        assert "DEV LIST DENIED: PermissionError" in log, log
        return
    listing = set(json.loads(next(line[4:] for line in log.splitlines() if line.startswith("DEV ["))))
    if holder.startswith("docker"):  # no GPU asked for: Docker's own minimal /dev (gVisor's under runsc)
        assert not any(name.startswith("nvidia") for name in listing), listing
        allowed = GVISOR_DEV if holder == "docker-runsc" else DOCKER_DEV
        assert listing <= allowed, listing - allowed
    else:
        assert listing == BWRAP_DEV | {"nvidia3", "nvidiactl", "nvidia-uvm"}, listing
        assert "OPENED /dev/nvidia3" in log, log


@pytest.mark.parametrize("holder", HOLDERS)
def test_no_network_after_load(holder, settings, prepared, requests_small):
    result = _run(settings, holder, prepared, "network-after-load", requests_small)
    log = result.log_tail
    assert "PROBE DONE" in log, log
    assert "NETWORK REACHABLE" not in log, log
    assert "NETWORK BLOCKED inet 127.0.0.1:6379" in log, log
    assert "NETWORK NONE netlink: only lo" in log or "NETWORK BLOCKED netlink" in log, log
    assert "do not decode as an image" in result.reason, result.reason
    if holder == "landlock":  # seccomp refuses the socket itself
        assert "NETWORK BLOCKED inet 127.0.0.1:6379: PermissionError" in log, log
        assert "NETWORK BLOCKED netlink: PermissionError" in log, log


def test_process_backend_records_its_tier(settings, prepared, requests_small):
    from sandbox.tiers import process_tier

    result = _run(settings, "bwrap", prepared, "device-probe", requests_small)
    assert result.backend is Backend.PROCESS and result.tier is process_tier().tier
