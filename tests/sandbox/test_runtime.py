"""The container runtime: runsc's release and registration judged, registered without losing
other keys, checked by workers at start; memory read from the cgroup under gVisor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from redis import Redis

from edgemaxx.errors import InfrastructureError
from edgemaxx.models import ContainerRuntime
from sandbox.runtime import (
    NVPROXY_AUTOMATIC,
    NVPROXY_FIRST,
    RunscVersion,
    assess_runsc,
    parse_runsc_version,
    register_runsc,
    runsc_args,
    runsc_version,
)
from tests.conftest import TEST_DATA, fixture_path
from tests.service import RedisServer

# `runsc --version` as printed by real builds: Debian bookworm, Debian backports, upstream releases.
DEBIAN_BOOKWORM = "runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n"
DEBIAN_BACKPORT = "runsc version 0.0~20240729.0\nspec: 1.0.2-dev\n"
UPSTREAM_2023 = "runsc version release-20230529.0\nspec: 1.1.0-rc.1\n"
UPSTREAM_2026 = "runsc version release-20260608.0\nspec: 1.2.1\n"
# `runsc nvproxy list-supported-drivers` of the backport (20240729).
BACKPORT_DRIVERS = ["550.54.15", "550.90.07", "535.104.12", "535.129.03", "535.154.05", "535.161.07",
                    "550.54.14"]
H100_DRIVER = "580.159.04"  # the lent H100's driver; first known to release-20260608.0


def _version(text: str) -> RunscVersion:
    version = parse_runsc_version(text)
    assert version is not None
    return version


def _entry(*args: str) -> dict:
    return {"path": "/usr/bin/runsc", "runtimeArgs": list(args)}


@pytest.mark.parametrize(("text", "date", "shown"), [
    (DEBIAN_BOOKWORM, 20221219, "0.0~20221219.0"),
    (DEBIAN_BACKPORT, 20240729, "0.0~20240729.0"),
    (UPSTREAM_2023, 20230529, "release-20230529.0"),
    ("runsc version release-20260608.2\n", 20260608, "release-20260608.2"),
])
def test_release_is_read_from_real_version_strings(text, date, shown):
    version = _version(text)
    assert version.date == date and str(version) == shown


@pytest.mark.parametrize("text", ["runsc version VERSION_MISSING\n", "runc version 1.1.12\n", ""])
def test_undated_builds_have_no_release(text):
    assert parse_runsc_version(text) is None


def test_registration_arguments_follow_the_release():
    # Before release-20230724.0, `create` alone cannot stat/chmod the socket a submission binds.
    assert runsc_args(_version(DEBIAN_BOOKWORM)) == ["--network=none", "--host-uds=all"]
    assert runsc_args(_version(DEBIAN_BACKPORT)) == ["--network=none", "--host-uds=create"]
    # GPUs: nvproxy; `docker --gpus` needed --nvproxy-docker before release-20240305.0.
    assert runsc_args(_version(UPSTREAM_2023), gpu=True) == [
        "--network=none", "--host-uds=all", "--nvproxy", "--nvproxy-docker"]
    assert runsc_args(_version(UPSTREAM_2026), gpu=True) == ["--network=none", "--host-uds=create", "--nvproxy"]


def test_registrations_that_cannot_run_a_submission_are_refused():
    old = _version(DEBIAN_BOOKWORM)
    missing = assess_runsc(None, None, gpu=False, registered=["runc"])
    assert "no runtime named runsc (registered: runc)" in missing.problem
    assert "--network=none" in assess_runsc(_entry("--host-uds=all"), old, gpu=False).problem
    stays_inside = assess_runsc(_entry("--network=none"), old, gpu=False).problem
    assert "--host-uds=none: the submission's inferences.sock would stay inside gVisor" in stays_inside
    assert "cannot chmod the socket" in assess_runsc(_entry("--network=none", "--host-uds=create"), old,
                                                     gpu=False).problem
    # What scripts/setup registers is fine, on either release; so is the deprecated spelling of `all`.
    assert assess_runsc(_entry(*runsc_args(old)), old, gpu=False).ok
    new = _version(DEBIAN_BACKPORT)
    assert assess_runsc(_entry(*runsc_args(new)), new, gpu=False).ok
    assert assess_runsc(_entry("--network=none", "--fsgofer-host-uds"), old, gpu=False).ok


def test_gpu_workers_refuse_a_runsc_too_old_for_their_gpu():
    bookworm, backport = _version(DEBIAN_BOOKWORM), _version(DEBIAN_BACKPORT)
    too_old = assess_runsc(_entry(*runsc_args(bookworm)), bookworm, gpu=True, driver=H100_DRIVER)
    assert "runsc 0.0~20221219.0 is too old for GPUs: nvproxy arrived in release-20230529.0" in too_old.problem
    no_flag = assess_runsc(_entry(*runsc_args(backport)), backport, gpu=True, driver=H100_DRIVER,
                           drivers=BACKPORT_DRIVERS)
    assert "needs --nvproxy in its runtimeArgs" in no_flag.problem
    wrong_driver = assess_runsc(_entry(*runsc_args(backport, gpu=True)), backport, gpu=True,
                                driver=H100_DRIVER, drivers=BACKPORT_DRIVERS)
    assert "does not support NVIDIA driver 580.159.04 (it knows: 550.54.15," in wrong_driver.problem
    assert assess_runsc(_entry(*runsc_args(backport, gpu=True)), backport, gpu=True, driver="550.90.07",
                        drivers=BACKPORT_DRIVERS).ok
    current = _version(UPSTREAM_2026)
    # From release-20260525.0 nvproxy turns itself on for GPU containers: the flag may be left out.
    assert assess_runsc(_entry(*runsc_args(current)), current, gpu=True, driver=H100_DRIVER,
                        drivers=[H100_DRIVER]).ok
    unknown = assess_runsc(_entry(*runsc_args(current, gpu=True)), None, gpu=True, driver=H100_DRIVER)
    assert "a GPU worker needs to know the runsc release" in unknown.problem
    # A CPU worker can run without knowing it; it says so.
    blind = assess_runsc(_entry(*runsc_args(bookworm)), None, gpu=False)
    assert blind.ok and "could not read the release" in blind.notes[0]


def test_register_merges_into_daemon_json(tmp_path):
    runsc = shutil.which("runsc")
    if runsc is None:
        pytest.skip("runsc is not installed here (scripts/setup installs it)")
    daemon_json = tmp_path / "daemon.json"
    others = {"log-level": "warn", "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    daemon_json.write_text(json.dumps(others))
    done = register_runsc("runsc", daemon_json=daemon_json)
    written = json.loads(daemon_json.read_text())
    assert done.changed and done.version == runsc_version(runsc)
    assert written == {"log-level": "warn", "runtimes": {
        "nvidia": others["runtimes"]["nvidia"], "runsc": {"path": runsc, "runtimeArgs": runsc_args(done.version)}}}
    assert register_runsc("runsc", daemon_json=daemon_json).changed is False
    daemon_json.write_text("{not json")
    with pytest.raises(InfrastructureError, match="not readable JSON, left as it is"):
        register_runsc("runsc", daemon_json=daemon_json)
    assert daemon_json.read_text() == "{not json"


def test_the_engine_runs_containers_under_runsc_as_registered(runsc, docker_client):
    """scripts/setup's registration, as the engine reports it, passes the worker's check."""
    entry = docker_client.info()["Runtimes"]["runsc"]
    version = runsc_version(entry["path"])
    assert version is not None and runsc.version == str(version)
    assert entry["runtimeArgs"] == runsc_args(version)


def test_memory_under_gvisor_is_read_from_the_container_cgroup(runsc, docker_client, base_image):
    """The container's init is gVisor's sandbox process: the memory of the submission is in its
    cgroup (the sentry's memory file), which the sampler reads."""
    from sandbox.base import tree_pids
    from sandbox.cgroup import cgroup_memory

    hold = 200 * 2**20
    script = (f"b = bytearray({hold})\nfor i in range(0, len(b), 4096): b[i] = 1\n"
              "print('holding', flush=True)\nimport time; time.sleep(60)")
    container = docker_client.containers.run(
        base_image, ["python3", "-c", script], runtime="runsc", network_mode="none", user="10001:10001",
        mem_limit="512m", detach=True, labels={"edgemaxx.test": uuid.uuid4().hex})
    try:
        for _ in range(200):
            if b"holding" in container.logs():
                break
            time.sleep(0.1)
        container.reload()
        pid = container.attrs["State"]["Pid"]
        reading = cgroup_memory(pid)
        assert reading is not None
        used, _ = reading
        assert hold < used < hold + 150 * 2**20, used
        assert pid in tree_pids(pid)
    finally:
        container.remove(force=True)


def _worker(redis_url: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_url, "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_RUNTIME": "runsc", "EDGEMAXX_SANDBOX_BACKEND": "docker"}
    return subprocess.run([sys.executable, "-m", "cli", "worker", "--name", name, "--burst",
                           "--contest", "demo-cpu", *args], capture_output=True, text=True, timeout=120, env=env)


def test_worker_says_which_runtime_and_refuses_a_gpu_it_cannot_serve(runsc, settings, tmp_path):
    """A real worker under runsc: ready on CPU. On a GPU with Debian's runsc (no nvproxy), the
    runtime check refuses benchmark jobs and says why in the worker's status (so /v1/status). A GPU
    that is not there (this machine) stops a `--burst` worker at its start-up checks, saying so."""
    from api.status import build_status
    from state import workers
    from state.records import WorkerStatus
    from worker.process import sandbox_ready

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        redis = Redis.from_url(server.url)
        cpu = _worker(server.url, "runtime-cpu")
        assert cpu.returncode == 0, cpu.stderr
        assert "benchmark containers run under runsc" in cpu.stderr
        gpu = _worker(server.url, "runtime-gpu", "--gpu", "0")
        status = WorkerStatus(name="runtime-gpu-check", kind="gpu", gpu=0, contests=["demo-cpu"])
        ready = sandbox_ready(settings.model_copy(update={"gpu": 0, "sandbox_runtime": ContainerRuntime.RUNSC}),
                              status)
        workers.publish_worker(redis, status, 60)
        built = build_status(redis)
    finally:
        server.kill()
    shown = {w.name: w for w in built.workers}
    assert shown["runtime-cpu"].sandbox_runtime is ContainerRuntime.RUNSC
    assert shown["runtime-cpu"].sandbox_problem == ""
    assert gpu.returncode != 0 and "cannot start: GPU 0" in gpu.stderr, gpu.stderr
    assert any(r.service == "runtime-gpu" and r.problems[0].startswith("GPU 0") for r in built.preflight)
    release = parse_runsc_version(f"runsc version {runsc.version}")
    if release is not None and release.date >= NVPROXY_AUTOMATIC:
        pytest.skip(f"this host's runsc ({release}) serves GPUs as registered; the refusal needs an older one")
    assert not ready
    reason = shown["runtime-gpu-check"].sandbox_problem
    assert reason and shown["runtime-gpu-check"].sandbox_runtime is ContainerRuntime.RUNSC
    if release is not None and release.date < NVPROXY_FIRST:  # Debian bookworm's, in CI
        assert f"runsc {release} is too old for GPUs" in reason


@pytest.mark.parametrize("runtime", list(ContainerRuntime))
def test_gpu_container_as_the_engine_receives_it(runtime, request, settings, docker_client, base_image, tmp_path):
    """No GPU here, so the container is created, not started: one GPU by device request under
    either runtime, and under gVisor only the driver capabilities nvproxy serves."""
    from sandbox.base import Limits
    from sandbox.docker_backend import DockerSandbox

    if runtime is ContainerRuntime.RUNSC:
        request.getfixturevalue("runsc")
    box = DockerSandbox(docker_client, base_image, tmp_path, tmp_path / "models", tmp_path / "runs", Limits(),
                        uid=settings.sandbox_uid, gpu=1, owner=settings.owner, run_id=f"gpu-{uuid.uuid4().hex[:8]}",
                        runtime=runtime)
    (tmp_path / "models").mkdir()
    container = docker_client.containers.create(base_image, **box.container_options(tmp_path))
    try:
        host, env = container.attrs["HostConfig"], container.attrs["Config"]["Env"]
        assert host["Runtime"] == runtime.value
        assert [(r["DeviceIDs"], r["Capabilities"]) for r in host["DeviceRequests"]] == [(["1"], [["gpu"]])]
        capabilities = [e for e in env if e.startswith("NVIDIA_DRIVER_CAPABILITIES=")]
        expected = ["NVIDIA_DRIVER_CAPABILITIES=compute,utility"] if runtime is ContainerRuntime.RUNSC else []
        assert capabilities == expected
    finally:
        container.remove(force=True)


def test_bench_on_a_gpu_refuses_a_runsc_that_cannot_serve_it(runsc, settings):
    """`edgemaxx bench --gpu N` checks the runtime as a worker does, before building anything."""
    release = parse_runsc_version(f"runsc version {runsc.version}")
    if release is not None and release.date >= NVPROXY_AUTOMATIC:
        pytest.skip(f"this host's runsc ({release}) serves GPUs as registered; the refusal needs an older one")
    env = {**os.environ, "EDGEMAXX_DATA_DIR": str(settings.data_dir), "EDGEMAXX_SANDBOX_RUNTIME": "runsc"}
    command = [sys.executable, "-m", "cli", "bench", str(fixture_path("flux-faster")), "--sandbox", "docker",
               "--gpu", "0", "--inputs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error of the run (not the submission's fault): sandbox runtime runsc:" in done.stderr
    if release is not None and release.date < NVPROXY_FIRST:
        assert "too old for GPUs" in done.stderr
