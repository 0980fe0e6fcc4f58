"""Real runs of the fixture submissions in every holder (Docker under runc and under gVisor, the
process sandbox's tiers): outputs, determinism, hostile ones, each with the same verdict."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest

from edgemaxx.constants import LABEL_OWNER
from edgemaxx.models import Backend, ContainerRuntime, MemoryGuard, RunStatus, SandboxTier
from sandbox.select import run_prefix
from tests.conftest import HOLDERS, held, runtime_of
from worker.evaluate import benchmark, limits_for

# What each hostile fixture must be blamed for, as the miner reads it.
EXPECTED = {
    "crash-at-load": "exited with code 1 before opening inferences.sock",
    "no-socket": "did not open inferences.sock within the 8 s load timeout",
    "hang-on-request": "warm-up request 1 took longer than the 10.00 s request timeout",
    "garbage-output": "do not decode as an image",
    "memory-hog": "was killed by the kernel for exceeding the 1024 MiB memory limit",
    "network-probe": "exited with code 1 before opening inferences.sock",
}


def _limits(settings, **overrides):
    limits = limits_for(settings).model_copy(update={"load_timeout_s": 8, "request_timeout_s": 2,
                                                     "run_timeout_s": 120})
    return limits.model_copy(update=overrides)


def _leftovers(settings, docker_client):
    containers = docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={settings.owner}"})
    # Only this session's run dirs: the data dir is shared with other runs and services.
    runs = sorted(settings.runs_dir.glob(run_prefix(settings.owner) + "*"))
    return containers, runs


def _sandbox_processes(settings):
    """Processes of the sandbox uid inside this test's own cgroup subtree, where every process
    sandbox it starts runs (other users of this machine have sandboxes of the same uid)."""
    import psutil

    from sandbox.cgroup import own_paths

    own = own_paths()
    key, mine = ("memory", own["memory"]) if "memory" in own else ("", own.get("unified", "/"))
    found = []
    for proc in psutil.process_iter(["uids"]):
        if not proc.info["uids"] or proc.info["uids"].real != settings.sandbox_uid:
            continue
        try:
            lines = open(f"/proc/{proc.pid}/cgroup").read().splitlines()
        except OSError:
            continue
        paths = [line.split(":", 2)[2] for line in lines if key in line.split(":", 2)[1].split(",") or
                 (not key and line.startswith("0::"))]
        if any(p == mine or p.startswith(mine.rstrip("/") + "/") for p in paths):
            found.append(proc)
    return found


@pytest.mark.parametrize("holder", HOLDERS)
def test_baseline_yields_identical_images_on_two_runs(holder, settings, prepared, requests_small,
                                                      docker_client):
    settings, backend = held(settings, holder)
    submission = prepared("flux-baseline", backend)
    limits = _limits(settings, load_timeout_s=120, request_timeout_s=30)
    first = benchmark(settings, submission, requests_small, limits)
    second = benchmark(settings, submission, requests_small, limits)
    for run in (first, second):
        assert run.status is RunStatus.OK, run.reason + "\n" + run.log_tail
        assert run.tier is (SandboxTier.CONTAINER if backend is Backend.DOCKER else SandboxTier(holder))
        assert run.runtime is runtime_of(holder)
        assert run.memory_guard is MemoryGuard.KERNEL  # this machine allows cgroups
        assert len(run.outputs) == len(requests_small)
        assert all(r.decoded and (r.width, r.height) == (128, 128) for r in run.requests)
        assert run.metrics.load_time_s and run.metrics.load_time_s > 0
        assert run.metrics.peak_ram_bytes and run.metrics.peak_ram_bytes > 50 * 2**20
        # No GPU here: GPU metrics are absent, never zero.
        assert run.metrics.peak_vram_bytes is None and run.metrics.energy_per_image_j is None
    assert first.outputs == second.outputs, "same seed must give identical bytes"
    assert len(set(first.outputs)) == len(requests_small), "different inputs, different images"
    assert _leftovers(settings, docker_client) == ([], [])


@pytest.mark.parametrize("holder", HOLDERS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_submission_is_invalid_with_reason(name, holder, settings, prepared,
                                                   requests_small, docker_client):
    settings, backend = held(settings, holder)
    submission = prepared(name, backend)
    result = benchmark(settings, submission, requests_small, _limits(settings))
    assert result.status is RunStatus.INVALID
    assert result.runtime is runtime_of(holder)
    assert EXPECTED[name] in result.reason, result.reason
    assert _leftovers(settings, docker_client) == ([], [])
    assert _sandbox_processes(settings) == []
    if name == "network-probe":
        log = result.log_tail
        assert "NETWORK REACHABLE" not in log and "NETWORK ESCAPE" not in log, log
        if holder == "landlock":  # the host's network namespace, but no socket but AF_UNIX
            assert "interfaces unreadable: PermissionError" in log, log
            assert "NETWORK BLOCKED host redis 127.0.0.1:6379: PermissionError" in log, log
        else:
            assert "interfaces besides lo: []" in log, log
        assert "NETWORK BLOCKED dns example.com" in log, log
        assert "NETWORK BLOCKED host redis 127.0.0.1:6379" in log, log
    if name == "crash-at-load":
        assert "simulated crash at load" in result.log_tail


@pytest.mark.parametrize("holder", ["docker", "docker-runsc"])
def test_docker_container_is_locked_down(holder, settings, prepared, requests_small, docker_client):
    """Inspect the live container of a submission that hangs: every isolation setting is on, and
    it runs under the configured runtime."""
    from sandbox.docker_backend import DockerSandbox
    from sandbox.select import make_sandbox

    settings, backend = held(settings, holder)
    runtime = runtime_of(holder)
    assert runtime is not None
    submission = prepared("no-socket", backend)
    box = make_sandbox(settings, submission, _limits(settings))
    assert isinstance(box, DockerSandbox)
    with box:
        box.container.reload()
        host = box.container.attrs["HostConfig"]
        config = box.container.attrs["Config"]
        assert host["Runtime"] == runtime.value
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == host["MemorySwap"] == 1024 * 2**20
        assert host["PidsLimit"] == settings.sandbox_pids_limit
        assert config["User"] == f"{settings.sandbox_uid}:{settings.sandbox_uid}"
        assert not host.get("Privileged")
        binds = {m["Destination"]: m for m in box.container.attrs["Mounts"]}
        assert set(binds) == {"/app", "/models"}
        assert host["Tmpfs"]["/tmp"].startswith(f"size={settings.sandbox_tmpfs_mb}m")
        assert binds["/models"]["RW"] is False
        assert "/var/run/docker.sock" not in str(box.container.attrs["Mounts"])
        env = dict(item.split("=", 1) for item in config["Env"])
        assert env["HF_HUB_OFFLINE"] == "1"
        assert not any(k.startswith("EDGEMAXX") for k in env)
        # The code is read-only for the submission; only the socket directory is its own.
        script = ("for f in /app/pyproject.toml /app/x /etc/x /opt/venv/x; do "
                  "touch $f 2>/dev/null; echo $?; done")
        probe = box.container.exec_run(["sh", "-c", script], user=str(settings.sandbox_uid))
        codes = probe.output.decode().split()
        assert codes[0] != "0", "the code must be read-only"
        assert codes[1] == "0", "the socket directory must be writable"
        assert codes[2] != "0" and codes[3] != "0", "root fs and venv must be read-only"
        if runtime is ContainerRuntime.RUNSC:
            # gVisor's kernel answers, not the host's.
            kernel = box.container.exec_run(["cat", "/proc/version"]).output.decode()
            assert "4.4.0" in kernel and os.uname().release not in kernel, kernel
    assert _leftovers(settings, docker_client) == ([], [])


class _Bait:
    """A host socket a submission must never get the validator to connect to."""

    def __init__(self, path):
        self.path = path
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        self.path.unlink(missing_ok=True)


@pytest.mark.parametrize("holder", HOLDERS)
def test_socket_swapped_for_a_symlink_is_not_followed(holder, settings, prepared, requests_small, docker_client):
    """The submission owns its socket's directory on the host: a symlink there to a host socket
    (Docker's, Redis's) must not take the validator's connect() to it."""
    settings, backend = held(settings, holder)
    bait = _Bait(settings.data_dir / f"bait-{uuid.uuid4().hex[:8]}.sock")
    try:
        # The test itself can reach it, so "not reached" below means something.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(bait.path))
        for _ in range(50):
            if bait.connections == 1:
                break
            threading.Event().wait(0.1)
        assert bait.connections == 1
        settings = settings.model_copy(update={"sandbox_extra_env": {"SYMLINK_TARGET": str(bait.path)}})
        result = benchmark(settings, prepared("socket-symlink", backend), requests_small, _limits(settings))
    finally:
        bait.close()
    assert result.status is RunStatus.INVALID
    assert "made inferences.sock a symbolic link, not a socket: refused" in result.reason, result.reason
    assert f"inferences.sock -> {bait.path}" in result.log_tail, result.log_tail
    assert bait.connections == 1, "the validator followed the symlink to a host socket"
    assert _leftovers(settings, docker_client) == ([], [])


def test_reaper_removes_leftover_containers(settings, prepared, docker_client):
    from sandbox.docker_backend import DockerSandbox, reap

    submission = prepared("no-socket", Backend.DOCKER)
    box = DockerSandbox(docker_client, submission.environment, submission.code_dir,
                        settings.models_cache, settings.runs_dir, _limits(settings),
                        uid=settings.sandbox_uid, gpu=None, owner=settings.owner, run_id="crashed")
    box.__enter__()  # as if the worker died here, before __exit__
    try:
        assert reap(docker_client, settings.owner) == 1
        assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={settings.owner}"}) == []
    finally:
        box.container = None
        box.__exit__(None, None, None)


def test_scratch_is_not_the_cached_checkout(settings, prepared, requests_small, docker_client):
    """A run works on a private copy: the fixture directory is never written to."""
    submission = prepared("flux-faster", Backend.PROCESS)
    before = sorted(os.listdir(submission.code_dir))
    result = benchmark(settings, submission, requests_small[:1],
                       _limits(settings, load_timeout_s=120, request_timeout_s=30))
    assert result.status is RunStatus.OK, result.reason
    assert sorted(os.listdir(submission.code_dir)) == before
    assert "inferences.sock" not in before
