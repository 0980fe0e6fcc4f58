"""Session fixtures: real Docker engine, real sandboxes, the fixture submissions prepared once."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings as hypothesis_settings

from edgemaxx.models import Backend, SourceKind, SubmissionSource
from edgemaxx.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from docker import DockerClient

    from edgemaxx.models import ContainerRuntime, TextToImageRequest
    from sandbox.runtime import RuntimeReport

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Tests time nothing (timing lives in bench/): no per-example deadline for property tests, which
    # a loaded CI machine would otherwise fail by being slow.
    hypothesis_settings.register_profile("edgemaxx", deadline=None)
    hypothesis_settings.load_profile("edgemaxx")

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = ["crash-at-load", "no-socket", "hang-on-request", "garbage-output", "memory-hog",
           "network-probe", "steal-data", "leave-behind", "memory-burst", "device-probe",
           "network-after-load", "socket-symlink"]
# What holds a submission: Docker (under runc, and under gVisor), or the process sandbox at each
# of its tiers. Every verdict must be the same in each.
HOLDERS = ["docker", "docker-runsc", "bwrap", "landlock"]
# Where test runs keep clones, environments and run dirs. Not under /tmp/pytest-of-root
# (mode 0700): the unprivileged sandbox user must reach its run directory.
TEST_DATA = Path(os.environ.get("EDGEMAXX_TEST_DATA", "/var/lib/edgemaxx-tests"))


def fixture_path(name: str) -> Path:
    return FIXTURES / name


@pytest.fixture(scope="session")
def settings() -> Settings:
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    os.chmod(TEST_DATA, 0o755)
    return Settings(
        data_dir=TEST_DATA,
        wheelhouse=REPO_ROOT / "wheelhouse",
        owner=f"pytest-{uuid.uuid4().hex[:8]}",
        sandbox_memory_mb=1024,
        sandbox_tmpfs_mb=256,
        load_timeout_s=60,
        request_timeout_s=20,
        run_timeout_s=300,
        sample_interval_s=0.05,
    )


def held(settings: Settings, holder: str) -> tuple[Settings, Backend]:
    """Settings and backend that run a submission in `holder` (see HOLDERS)."""
    from edgemaxx.models import ContainerRuntime, SandboxTier

    if holder == "docker":
        return settings, Backend.DOCKER
    if holder == "docker-runsc":
        require_runsc()
        return settings.model_copy(update={"sandbox_runtime": ContainerRuntime.RUNSC}), Backend.DOCKER
    return settings.model_copy(update={"sandbox_tier": SandboxTier(holder)}), Backend.PROCESS


def runtime_of(holder: str) -> ContainerRuntime | None:
    """The container runtime a result held by `holder` must record (None: no container)."""
    from edgemaxx.models import ContainerRuntime

    if holder == "docker-runsc":
        return ContainerRuntime.RUNSC
    return ContainerRuntime.RUNC if holder == "docker" else None


@functools.cache
def _runsc_report() -> RuntimeReport:
    from edgemaxx.models import ContainerRuntime
    from sandbox.runtime import check_runtime
    from sandbox.select import connect_docker

    client = connect_docker(timeout_s=60)
    try:
        return check_runtime(client, ContainerRuntime.RUNSC, gpu=False)
    finally:
        client.close()


def require_runsc() -> RuntimeReport:
    """gVisor, registered with the engine the way scripts/setup does it; CI must not skip."""
    report = _runsc_report()
    if not report.ok:
        if os.environ.get("EDGEMAXX_REQUIRE_DOCKER"):
            pytest.fail(f"runsc is not usable: {report.problem}")
        pytest.skip(f"runsc is not usable here ({report.problem}); scripts/setup registers it")
    return report


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    from edgemaxx.errors import InfrastructureError
    from sandbox.select import connect_docker as connect

    try:
        client = connect(timeout_s=600)
    except InfrastructureError as exc:
        if os.environ.get("EDGEMAXX_REQUIRE_DOCKER"):
            raise
        pytest.skip(f"no Docker engine on this machine ({exc}); CI starts one")
    yield client
    client.close()


@pytest.fixture(scope="session")
def runsc(docker_client: DockerClient) -> RuntimeReport:
    return require_runsc()


@pytest.fixture(scope="session")
def base_image(docker_client: DockerClient, settings: Settings) -> str:
    from images.base import build_base_image

    build_base_image(docker_client, settings.base_image)
    return settings.base_image


@pytest.fixture(scope="session")
def prepared(settings: Settings, docker_client: DockerClient, base_image: str) -> Callable[[str, Backend], object]:
    """prepared(name, backend) → PreparedSubmission, built once per session (then cached)."""
    from images.prepare import prepare

    cache: dict[tuple[str, str], object] = {}

    def get(name: str, backend: Backend) -> object:
        backend = Backend(backend)
        if (name, backend) not in cache:
            source = SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(name))
            cache[(name, backend)] = prepare(settings, source, backend, name=name,
                                             docker_client=docker_client)
        return cache[(name, backend)]

    return get


@pytest.fixture(scope="session")
def requests_small() -> list[TextToImageRequest]:
    from edgemaxx.contest import load_contest
    from edgemaxx.inputs import inputs

    contest = load_contest("demo-cpu")
    contest = contest.model_copy(update={"inputs": contest.inputs.model_copy(update={"count": 3})})
    return inputs(contest, "pytest-seed")
