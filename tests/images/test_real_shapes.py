"""Submissions in the shapes real SN39 miners use, built and run in both sandboxes, or refused
with the reason: a git dependency pinned at a commit, a direct-URL wheel, a requires-python no
sandbox here satisfies, a stale lock, a tampered hash, an unreachable dependency host.

Their git and URL dependencies are served over https on the Docker bridge's gateway (build
containers cannot reach the host's loopback), trusted through `extra_ca_bundle`; their locks are
made by uv against that server each session (tests/real_shapes.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend, PreparedSubmission, RunStatus, SourceKind, SubmissionSource
from images.prepare import prepare
from tests.conftest import TEST_DATA, fixture_path
from tests.real_shapes import RealShapes, bridge_gateway
from worker.evaluate import benchmark, limits_for

BACKENDS = list(Backend)
PALETTE_REVISION = "5eed0000000000000000000000000000000000a1"


@pytest.fixture(scope="module")
def shapes(docker_client):
    root = TEST_DATA / f"real-shapes-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    served = RealShapes(root, bridge_gateway(docker_client))
    yield served
    served.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def shape_settings(settings, shapes):
    # The model the git-dep fixture reads from its snapshot, as if fetched earlier.
    snapshot = settings.models_cache / "models--edgemaxx-tests--palette" / "snapshots" / PALETTE_REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "palette.json").write_text(json.dumps({"colors": [[10, 20, 30], [200, 40, 40], [40, 200, 90]]}))
    (snapshot.parents[1] / "refs").mkdir(exist_ok=True)
    return settings.model_copy(update={"extra_ca_bundle": shapes.server.cert})


@pytest.fixture(scope="module")
def git_dep(shapes) -> Path:
    return shapes.git_dep()


@pytest.fixture(scope="module")
def url_wheel(shapes) -> Path:
    return shapes.url_wheel()


def _prepare(settings, path: Path, backend: Backend, docker_client) -> PreparedSubmission:
    source = SubmissionSource(kind=SourceKind.LOCAL, path=path)
    return prepare(settings, source, backend, name=path.name, docker_client=docker_client)


def _in_environment(prepared: PreparedSubmission, docker_client, code: str) -> str:
    """Run `code` with the environment's own Python, no network."""
    if prepared.backend is Backend.DOCKER:
        out = docker_client.containers.run(prepared.environment, ["/opt/venv/bin/python", "-c", code],
                                           network_mode="none", remove=True)
        return out.decode()
    python = Path(prepared.environment) / "venv" / "bin" / "python"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def _runs(settings, prepared, requests) -> None:
    limits = limits_for(settings).model_copy(update={"load_timeout_s": 60, "request_timeout_s": 20,
                                                     "run_timeout_s": 120})
    run = benchmark(settings, prepared, requests, limits)
    assert run.status is RunStatus.OK, run.reason + "\n" + run.log_tail
    assert all(r.decoded for r in run.requests) and len(run.outputs) == len(requests)
    assert len(set(run.outputs)) == len(requests), "each input draws its own image"


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_dependency_is_installed_at_its_locked_commit_and_runs(backend, shape_settings, shapes, git_dep,
                                                                  docker_client, requests_small):
    prepared = _prepare(shape_settings, git_dep, backend, docker_client)
    direct_url = json.loads(_in_environment(prepared, docker_client, (
        "import importlib.metadata as m; print(m.distribution('edge-maxxing-pipelines').read_text('direct_url.json'))"
    )))
    assert direct_url["vcs_info"] == {"vcs": "git", "commit_id": shapes.pipelines_commit,
                                      "requested_revision": shapes.pipelines_commit}
    assert direct_url["subdirectory"] == "pipelines" and direct_url["url"] == shapes.pipelines_url
    # The model was found in the cache (no hub), and only its entry's files counted.
    assert prepared.models_bytes == (shape_settings.models_cache / "models--edgemaxx-tests--palette" / "snapshots"
                                     / PALETTE_REVISION / "palette.json").stat().st_size
    _runs(shape_settings, prepared, requests_small)


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_url_wheel_is_installed_and_runs(backend, shape_settings, url_wheel, docker_client, requests_small):
    prepared = _prepare(shape_settings, url_wheel, backend, docker_client)
    installed = _in_environment(prepared, docker_client, (
        "import importlib.metadata as m, json; d = m.distribution('edgemaxx-fixture-shapes');"
        "print(json.dumps([d.version, json.loads(d.read_text('direct_url.json'))['url']]))"))
    version, url = json.loads(installed)
    assert version == "1.0" and url.endswith("/files/edgemaxx_fixture_shapes-1.0-py3-none-any.whl")
    _runs(shape_settings, prepared, requests_small)


@pytest.mark.parametrize("backend", BACKENDS)
def test_requires_python_no_sandbox_has_is_refused(backend, shape_settings, docker_client):
    with pytest.raises(SubmissionError) as info:
        _prepare(shape_settings, fixture_path("python-none"), backend, docker_client)
    assert re.fullmatch(r"requires-python ==3\.12\.\* is not satisfied by any Python available to the "
                        r"sandbox \(available in .*: 3\.11\.\d+.*; this validator does not download Pythons\)",
                        info.value.reason), info.value.reason


def test_stale_lock_is_refused_before_building(shape_settings, docker_client):
    with pytest.raises(SubmissionError) as info:
        _prepare(shape_settings, fixture_path("stale-lock"), Backend.DOCKER, docker_client)
    assert info.value.reason == "check uv-lock failed: uv.lock is out of date with pyproject.toml: run `uv lock`"


def _copy(source: Path, name: str) -> Path:
    target = TEST_DATA / f"{name}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tampered_hash_is_the_miners_fault(backend, shape_settings, git_dep, docker_client):
    tampered = _copy(git_dep, "tampered")
    lock = tampered / "uv.lock"
    text = lock.read_text()
    start = text.index('\nname = "pillow"\n')
    end = text.find("[[package]]", start)
    end = len(text) if end < 0 else end
    # Every file of pillow now claims another hash (a registry package, from PyPI).
    lock.write_text(text[:start] + re.sub(r"sha256:[0-9a-f]{8}", "sha256:00000000", text[start:end]) + text[end:])
    try:
        with pytest.raises(SubmissionError) as info:
            _prepare(shape_settings, tampered, backend, docker_client)
    finally:
        shutil.rmtree(tampered)
    reason = info.value.reason
    assert reason.startswith("a file does not match its hash in uv.lock: ")
    assert "Hash mismatch for `pillow==11.0.0`" in reason and "sha256:00000000" in reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unreachable_dependency_host_is_ours(backend, shape_settings, shapes, url_wheel, docker_client):
    import socket

    with socket.socket() as probe:  # a port nothing listens on, on the same host
        probe.bind((shapes.server.host, 0))
        dead = f"{shapes.server.host}:{probe.getsockname()[1]}"
    moved = _copy(url_wheel, "unreachable")
    live = f"{shapes.server.host}:{shapes.server.server.server_address[1]}"
    for name in ("pyproject.toml", "uv.lock"):  # moved consistently: the lock stays current
        (moved / name).write_text((moved / name).read_text().replace(live, dead))
    try:
        with pytest.raises(InfrastructureError, match="failed on the validator's side"):
            _prepare(shape_settings, moved, backend, docker_client)
    finally:
        shutil.rmtree(moved)


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_downloads_when_the_operator_allows_them(backend, shape_settings, docker_client):
    """With `python_downloads`, uv fetches a Python for the range at build time. GitHub, where
    python-build-standalone lives, is unreachable from these machines: then it is ours, retried."""
    allowed = shape_settings.model_copy(update={"python_downloads": True})
    try:
        prepared = _prepare(allowed, fixture_path("python-none"), backend, docker_client)
    except InfrastructureError as exc:
        assert "python-build-standalone" in str(exc) and "failed on the validator's side" in str(exc)
        return
    version = _in_environment(prepared, docker_client, "import sys; print(sys.version_info[:2])")
    assert version.strip() == "(3, 12)"
