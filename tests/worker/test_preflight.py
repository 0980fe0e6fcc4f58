"""A worker's start-up checks against the real engine and a real redis-server: each misconfiguration
gives its one-line reason; the GPU a worker owns is the one its sandboxes request.

(The same checks run inside the validator's containers in tests/test_compose.py.)
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from redis import Redis

from edgemaxx.errors import InfrastructureError
from edgemaxx.models import Backend, BackendChoice, PreparedSubmission, SourceKind, SubmissionSource
from state.preflight import load_preflight, save_preflight
from tests.conftest import TEST_DATA
from tests.service import RedisServer
from worker import preflight


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def sleeper(docker_client, base_image):
    """A container of the base image, kept alive, removed afterwards (with its volume)."""
    made = []

    def start(**kwargs):
        container = docker_client.containers.run(base_image, ["sleep", "300"], detach=True,
                                                 labels={"edgemaxx.test": "preflight"}, **kwargs)
        made.append(container)
        return container

    yield start
    for container in made:
        container.remove(force=True, v=True)


def test_own_container_id_is_read_from_inside(tmp_path, sleeper):
    container = sleeper()
    code, output = container.exec_run(["cat", "/proc/self/mountinfo"])
    assert code == 0
    (tmp_path / "mountinfo").write_bytes(output)
    assert preflight.own_container_id(tmp_path / "mountinfo") == container.id
    (tmp_path / "host").write_text("22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
    assert preflight.own_container_id(tmp_path / "host") is None


def test_data_dir_must_be_the_same_path_inside_and_out(docker_client, sleeper):
    root = TEST_DATA / f"preflight-{uuid.uuid4().hex[:8]}"
    same, other = root / "same", root / "other"
    same.mkdir(parents=True)
    other.mkdir(parents=True)
    volume = f"edgemaxx-preflight-{uuid.uuid4().hex[:8]}"
    try:
        container = sleeper(volumes={str(same): {"bind": str(same), "mode": "rw"},
                                     str(other): {"bind": "/var/lib/elsewhere", "mode": "rw"},
                                     volume: {"bind": "/vol", "mode": "rw"}})
        check = lambda *paths: preflight.data_dir_problem(docker_client, container.id, [Path(p) for p in paths])  # noqa: E731
        assert check(same, same / "runs", same / "models") == ""
        assert check("/var/lib/elsewhere") == (
            f"/var/lib/elsewhere is {other} on the host: sandbox containers bind-mount run directories by their "
            "host path, so mount it at the same path inside and out (`- /var/lib/elsewhere:/var/lib/elsewhere`)")
        assert check("/vol/data").startswith("/vol/data is a volume mount")
        assert check("/not/mounted").startswith("/not/mounted is not mounted from the host")
        assert "cannot inspect this container" in preflight.data_dir_problem(docker_client, "0" * 64, [same])
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        try:
            docker_client.volumes.get(volume).remove(force=True)
        except Exception:  # noqa: BLE001 - removed with its container already
            pass


def test_no_nvidia_runtime_is_said_in_one_line(docker_client, base_image):
    if "nvidia" in docker_client.info().get("Runtimes", {}):
        pytest.skip("this engine has an NVIDIA runtime: the GPU probe would succeed here")
    problem = preflight.gpu_runtime_problem(docker_client, base_image, 0)
    assert problem == ("the Docker engine cannot give a container GPU 0 (no NVIDIA runtime: install the "
                       "NVIDIA Container Toolkit and restart dockerd)")
    assert not docker_client.containers.list(all=True, filters={"label": preflight.LABEL_PROBE}), "probe left behind"


def test_a_gpu_that_does_not_exist():
    problem = preflight.gpu_problem(97)
    assert problem.startswith("GPU 97") and "\n" not in problem
    assert "does not exist" in problem or "no NVIDIA driver visible" in problem


def test_no_docker_socket(settings, monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(preflight, "DOCKER_SOCKET", tmp_path / "docker.sock")
    docker = settings.model_copy(update={"sandbox_backend": BackendChoice.DOCKER})
    client, reason = preflight.docker_problem(docker, in_container=True)
    assert client is None
    assert reason == (f"no Docker socket at {tmp_path / 'docker.sock'}: mount the host's "
                      f"(`- {tmp_path / 'docker.sock'}:{tmp_path / 'docker.sock'}` in docker-compose.yml)")
    # The process sandbox needs no engine; `auto` outside a container may fall back to it.
    process = settings.model_copy(update={"sandbox_backend": BackendChoice.PROCESS})
    assert preflight.docker_problem(process, in_container=True) == (None, "")
    auto = settings.model_copy(update={"sandbox_backend": BackendChoice.AUTO})
    assert preflight.docker_problem(auto, in_container=False) == (None, "")


def test_ensure_ready_waits_publishes_and_logs_once(settings, redis_server, monkeypatch, tmp_path, caplog):
    """Misconfigured: the reason is in Redis (so /v1/status) and in the log once, however often it is
    checked; fixed: the worker goes on, and its report says so."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(preflight, "DOCKER_SOCKET", tmp_path / "docker.sock")
    redis = Redis.from_url(redis_server.url)
    docker = settings.model_copy(update={"sandbox_backend": BackendChoice.DOCKER, "redis_url": redis_server.url})
    seen = []

    def sleep(_: float) -> None:
        seen.append(load_preflight(redis, "w-pre"))
        if len(seen) == 3:  # the operator mounts the socket
            monkeypatch.setattr(preflight, "DOCKER_SOCKET", Path("/var/run/docker.sock"))
        if len(seen) > 10:  # the engine itself is down: say so, do not spin
            raise AssertionError(f"still not ready after the socket was mounted: {seen[-1]}")

    with caplog.at_level(logging.INFO, logger="worker.preflight"):
        report = preflight.ensure_ready(docker, redis, "builder", "w-pre", None, None, sleep=sleep)
    assert len(seen) == 3 and all(r is not None and r.problems[0].startswith("no Docker socket") for r in seen)
    assert report.ok and load_preflight(redis, "w-pre") == report
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if line.startswith("cannot start: no Docker socket")]) == 1
    assert "start-up checks pass now" in lines
    assert not any(r.exc_info for r in caplog.records)


def test_lpips_without_its_backbone_is_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    warnings = preflight.similarity_warnings(["flux-4090", "demo-cpu"])
    assert len(warnings) == 1 and warnings[0].startswith("flux-4090: LPIPS is unavailable")
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / preflight.ALEXNET_FILE).write_bytes(b"weights")
    assert preflight.similarity_warnings(["flux-4090", "demo-cpu"]) == []


def test_torch_hub_dir_is_torchs_own(monkeypatch, tmp_path):
    import torch.hub

    from scoring.similarity import ALEXNET_FILE

    assert preflight.ALEXNET_FILE == ALEXNET_FILE
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert preflight.torch_hub_dir() == Path(torch.hub.get_dir())


def test_wait_for_redis_says_it_once(redis_server, caplog):
    """Unreachable: one line per new reason, a growing pause; then it goes on."""
    pauses: list[float] = []
    down = RedisServer(redis_server.directory.parent / "down")

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 4:
            down.start()

    try:
        with caplog.at_level(logging.INFO, logger="worker.preflight"):
            preflight.wait_for_redis(Redis.from_url(down.url, socket_connect_timeout=1), down.url, sleep=sleep)
    finally:
        if down.proc is not None:
            down.kill()
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"Redis at {down.url} unreachable")
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_worker_on_gpu_n_asks_the_engine_for_gpu_n(settings, docker_client, base_image, monkeypatch, tmp_path):
    """`edgemaxx worker --gpu 2` → settings.gpu = 2 → its sandbox container requests device 2 (inspected
    on the engine, as created); a CPU worker's requests nothing. No GPU here, so the GPU one cannot start."""
    from sandbox import select
    from worker.evaluate import limits_for

    created: dict[int | None, object] = {}

    class Recording:
        """The real client; remembers what each created container asked the engine for."""

        def __init__(self, client):
            self.client, self.api = client, client.api
            self.gpu: int | None = None

        @property
        def containers(self):
            return self

        def create(self, *args, **kwargs):
            container = self.client.containers.create(*args, **kwargs)
            created[self.gpu] = self.client.api.inspect_container(container.id)["HostConfig"]["DeviceRequests"]
            return container

    recording = Recording(docker_client)
    monkeypatch.setattr(select, "docker_client", lambda: recording)
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text("")
    prepared = PreparedSubmission(name="gpu-request", source=SubmissionSource(kind=SourceKind.LOCAL, path=code),
                                  code_dir=code, backend=Backend.DOCKER, environment=base_image)
    for gpu in (2, None):
        recording.gpu = gpu
        worker_settings = settings.model_copy(update={"gpu": gpu, "owner": f"gpu-request-{uuid.uuid4().hex[:6]}"})
        sandbox = select.make_sandbox(worker_settings, prepared, limits_for(worker_settings))
        try:
            with sandbox:
                pass
        except InfrastructureError as exc:
            assert gpu is not None and "could not select device driver" in str(exc), exc
    assert created[2] == [{"Driver": "", "Count": 0, "DeviceIDs": ["2"], "Capabilities": [["gpu"]], "Options": {}}]
    assert not created[None]


def test_preflight_report_round_trip(redis_server):
    from state.preflight import PreflightReport, list_preflight

    redis = Redis.from_url(redis_server.url)
    save_preflight(redis, PreflightReport(service="quiet", kind="gpu"))
    save_preflight(redis, PreflightReport(service="loud", kind="gpu", problems=["GPU 7 does not exist"]))
    assert [r.service for r in list_preflight(redis)] == ["loud"], "only reports with something to say"
