"""What a build installs, decided before building: the interpreter for requires-python, the pins
the operator's wheelhouse satisfies, and whose fault a failed build is."""

from __future__ import annotations

import os
import platform
import shutil

import pytest

from edgemaxx.errors import InfrastructureError, SubmissionError
from images import lock
from images.failures import classify
from images.interpreters import Candidates, Interpreter, choose, docker_candidates, host_candidates
from images.plan import wheelhouse_pins

CANDIDATES = Candidates(where="edgemaxx-base:test", interpreters=[
    Interpreter(path="/usr/bin/python3", version="3.11.2"),
    Interpreter(path="/usr/bin/python3.12", version="3.12.7"),
])


@pytest.mark.parametrize(
    ("requires", "path"),
    [(">=3.10,<3.13", "/usr/bin/python3"), (">=3.10, <3.13", "/usr/bin/python3"),
     ("==3.12.*", "/usr/bin/python3.12"), (">3.11.2", "/usr/bin/python3.12"), (None, "/usr/bin/python3")],
)
def test_the_first_satisfying_interpreter_is_chosen(requires, path):
    assert choose(requires, CANDIDATES, downloads=False).request == path


def test_no_interpreter_names_the_range_and_what_there_is():
    with pytest.raises(SubmissionError) as info:
        choose("==3.13.*", CANDIDATES, downloads=False)
    assert info.value.reason == (
        "requires-python ==3.13.* is not satisfied by any Python available to the sandbox "
        "(available in edgemaxx-base:test: 3.11.2, 3.12.7; this validator does not download Pythons)")
    with pytest.raises(SubmissionError, match="is not a version range"):
        choose("three point twelve", CANDIDATES, downloads=False)


def test_downloads_ask_uv_for_the_range():
    choice = choose("==3.13.*", CANDIDATES, downloads=True)
    assert (choice.request, choice.download) == ("==3.13.*", True)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs interpreters as the sandbox user, which needs root")
def test_host_interpreters_the_sandbox_user_cannot_run_are_left_out(tmp_path, settings):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copy2("/usr/bin/python3", private / "python3")
    candidates = host_candidates([settings.process_python, private / "python3"], settings.sandbox_uid)
    assert [i.path for i in candidates.interpreters] == [str(settings.process_python)]
    assert candidates.unusable[str(private / "python3")].startswith("the sandbox user cannot")


def test_base_image_interpreters_and_git(docker_client, base_image):
    candidates = docker_candidates(docker_client, base_image)
    assert candidates.has_git, "git dependencies need git in the base image"
    assert any(i.version.startswith("3.11.") for i in candidates.interpreters), candidates


def _pin(name: str, version: str, kind: lock.SourceKind = lock.SourceKind.REGISTRY,
         marker: str | None = None) -> lock.LockedPackage:
    return lock.LockedPackage(name=name, version=version, marker=marker, kind=kind)


def test_wheelhouse_satisfies_same_version_ignoring_local_label(tmp_path):
    machine = platform.machine()
    cpu = tmp_path / f"torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_{machine}.whl"
    pure = tmp_path / "tinypkg-1.0-py3-none-any.whl"
    for wheel in (cpu, pure):
        wheel.write_bytes(b"")
    wheels = [cpu, pure]
    locked = [_pin("torch", "2.13.0", marker="sys_platform == 'linux'"), _pin("pillow", "11.0.0"),
              _pin("tinypkg", "1.0", kind=lock.SourceKind.URL)]
    pins = wheelhouse_pins(locked, wheels, "3.11.2")
    assert [(p.name, p.wheel) for p in pins] == [("torch", cpu)]
    assert pins[0].requirement("/opt/w") == f"torch @ file:///opt/w/{cpu.name} ; sys_platform == 'linux'"
    # Not for another Python (cp311 wheel), another version, or an unknown interpreter yet.
    assert wheelhouse_pins(locked, wheels, "3.10.13") == []
    assert wheelhouse_pins([_pin("torch", "2.12.0")], wheels, "3.11.2") == []
    assert wheelhouse_pins(locked, wheels, None) == []


@pytest.mark.parametrize(
    ("log", "blame", "says"),
    [
        ("error: Failed to download `pillow==11.0.0`\n  cause: Hash mismatch for `pillow==11.0.0`\n",
         SubmissionError, "a file does not match its hash in uv.lock"),
        ("error: Failed to fetch: `https://pypi.org/simple/six/`\n  cause: error sending request for url\n"
         "  cause: dns error: failed to lookup address information: Temporary failure in name resolution",
         InfrastructureError, "failed on the validator's side"),
        ("fatal: unable to access 'https://github.com/a/b/': Could not resolve host: github.com",
         InfrastructureError, "Could not resolve host"),
        ("error: Failed to download `x`\n  cause: HTTP status server error (503 Service Unavailable)",
         InfrastructureError, "503"),
        ("OSError: [Errno 28] No space left on device", InfrastructureError, "No space left"),
        ("error: Failed to build `antlr4-python3-runtime==4.9.3`\n  cause: The build backend returned an error",
         SubmissionError, "installing the locked dependencies failed: error: Failed to build"),
        ("error: Git operation failed\n  cause: fatal: remote error: upload-pack: not our ref 0123abc",
         SubmissionError, "not our ref"),
        ("error: Failed to download `x @ https://example.com/x.whl`\n"
         "  cause: HTTP status client error (404 Not Found)", SubmissionError, "404 Not Found"),
    ],
)
def test_build_failures_are_blamed_right(log, blame, says):
    error = classify("Step 12/17 : RUN ...\n\x1b[91m" + log + "\x1b[0m", "building the sandbox image")
    assert isinstance(error, blame)
    assert says in str(error)
    assert "\x1b[" not in str(error), "no terminal colours in a miner's reason"


# Hides the interpreter's own tomllib, as on Python < 3.11, leaving only a copy first on sys.path.
_AS_IF_PYTHON_310 = """
import importlib.util, sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "tomllib" and not sys.path[0].endswith("vendor"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
spec = importlib.util.spec_from_file_location("launch", sys.argv[1])
launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launch)
print(launch._load_toml(sys.argv[2])["project"]["scripts"]["start_inference"])
"""


@pytest.mark.parametrize("backend", ["docker", "process"])
def test_the_launcher_reads_pyproject_without_tomllib(backend, settings, docker_client, base_image):
    """On Python < 3.11 (requires-python may pick one) the launcher uses the copy the build puts
    beside it; the submission's own environment gets nothing extra."""
    from edgemaxx.models import Backend
    from images.build import build_environment
    from tests.conftest import fixture_path

    root = fixture_path("garbage-output")
    environment = build_environment(settings, root, Backend(backend), docker_client)
    if backend == "docker":
        out = docker_client.containers.run(
            environment, ["/opt/venv/bin/python", "-c", _AS_IF_PYTHON_310, "/opt/edgemaxx/launch.py",
                          "/app/pyproject.toml"], network_mode="none", remove=True,
            volumes={str(root): {"bind": "/app", "mode": "ro"}}).decode()
    else:
        import subprocess

        out = subprocess.run([f"{environment}/venv/bin/python", "-c", _AS_IF_PYTHON_310, f"{environment}/launch.py",
                              str(root / "pyproject.toml")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "main:main"
