"""Session fixtures: real Docker engine, real sandboxes, the fixture submissions prepared once."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from edgemaxx.models import Backend, SourceKind, SubmissionSource
from edgemaxx.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = ["crash-at-load", "no-socket", "hang-on-request", "garbage-output", "memory-hog",
           "network-probe", "steal-data", "leave-behind", "memory-burst", "device-probe",
           "network-after-load"]
# What holds a submission: Docker, or the process sandbox at each of its tiers.
HOLDERS = ["docker", "bwrap", "landlock"]
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
    from edgemaxx.models import SandboxTier

    if holder == "docker":
        return settings, Backend.DOCKER
    return settings.model_copy(update={"sandbox_tier": SandboxTier(holder)}), Backend.PROCESS


@pytest.fixture(scope="session")
def docker_client():
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
def base_image(docker_client, settings):
    from images.base import build_base_image

    build_base_image(docker_client, settings.base_image)
    return settings.base_image


@pytest.fixture(scope="session")
def prepared(settings, docker_client, base_image):
    """prepared(name, backend) → PreparedSubmission, built once per session (then cached)."""
    from images.prepare import prepare

    cache: dict[tuple[str, str], object] = {}

    def get(name: str, backend: Backend):
        backend = Backend(backend)
        if (name, backend) not in cache:
            source = SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(name))
            cache[(name, backend)] = prepare(settings, source, backend, name=name,
                                             docker_client=docker_client)
        return cache[(name, backend)]

    return get


@pytest.fixture(scope="session")
def requests_small():
    from edgemaxx.contest import load_contest
    from edgemaxx.inputs import inputs

    contest = load_contest("demo-cpu")
    contest = contest.model_copy(update={"inputs": contest.inputs.model_copy(update={"count": 3})})
    return inputs(contest, "pytest-seed")
