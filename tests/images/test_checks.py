"""Static checks: the fixtures pass, and each broken submission fails the right check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import ModelSpec
from images import lock
from images.checks import static_checks
from images.prefetch import prefetch
from tests.conftest import HOSTILE, fixture_path


@pytest.mark.parametrize("name", ["flux-baseline", "flux-faster", *HOSTILE])
def test_fixtures_pass_every_static_check(name, settings):
    report = static_checks(fixture_path(name), settings, offline=True)
    assert report.ok, report.first_failure()
    assert [c.name for c in report.checks] == [
        "code-size", "pyproject", "spec-version", "start-inference", "models", "models-size",
        "uv-lock", "blacklist"]


@pytest.fixture
def broken(tmp_path) -> Path:
    target = tmp_path / "submission"
    shutil.copytree(fixture_path("garbage-output"), target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


CASES = {
    "no-pyproject": (lambda r: (r / "pyproject.toml").unlink(), "pyproject",
                     "pyproject.toml is missing"),
    "bad-toml": (lambda r: (r / "pyproject.toml").write_text("[project\nname="), "pyproject",
                 "does not parse"),
    "old-spec": (lambda r: _edit(r / "pyproject.toml", 'version = "8"', 'version = "7"'),
                 "spec-version", 'version is \'7\'; submissions must declare version = "8"'),
    "no-entry": (lambda r: _edit(r / "pyproject.toml", 'start_inference = "main:main"', 'other = "main:main"'),
                 "start-inference", "no start_inference entry"),
    "bad-entry": (lambda r: _edit(r / "pyproject.toml", '"main:main"', '"main; rm -rf /"'),
                  "start-inference", "not of the form 'module:function'"),
    "models-not-tables": (lambda r: _edit(r / "pyproject.toml", "[project.scripts]",
                                          '[tool.edge-maxxing]\nmodels = ["x"]\n\n[project.scripts]'),
                          "models", "entry 1 is not a table"),
    "model-no-revision": (lambda r: _edit(r / "pyproject.toml", "[project.scripts]",
                                          '[[tool.edge-maxxing.models]]\nrepository = "a/b"\n\n[project.scripts]'),
                          "models", "revision: Field required"),
    "model-bad-repo": (lambda r: _edit(r / "pyproject.toml", "[project.scripts]",
                                       '[[tool.edge-maxxing.models]]\nrepository = "../../etc"\n'
                                       'revision = "x"\n\n[project.scripts]'),
                       "models", "is not 'owner/name'"),
    "no-lock": (lambda r: (r / "uv.lock").unlink(), "uv-lock", "uv.lock is missing"),
    "pyarmor": (lambda r: _edit(r / "pyproject.toml", "dependencies = []", 'dependencies = ["PyArmor==8.5"]'),
                "blacklist", "blacklisted dependencies: pyarmor"),
    "vendored-obfuscator": (lambda r: (r / "src" / "pyarmor_runtime_000000").mkdir(), "blacklist",
                            "contains obfuscated code"),
    "too-big": (lambda r: (r / "weights.bin").write_bytes(b"\0" * (16 * 2**20 + 1)), "code-size",
                "over the 16 MiB limit"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_submission_fails_the_right_check(case, broken, settings):
    mutate, check, reason = CASES[case]
    mutate(broken)
    report = static_checks(broken, settings, offline=True)
    failed = {c.name: c.reason for c in report.checks if not c.ok}
    assert check in failed, report
    assert reason in failed[check]


def test_lock_export_drops_markers_that_never_apply():
    requirements = lock.export_requirements(fixture_path("flux-baseline"))
    names = lock.requirement_names(requirements)
    assert "torch" in names and "diffusers" in names
    assert "edgemaxx-fixture-flux-baseline" not in names, "the project itself is mounted, not installed"
    torch_line = next(line for line in requirements.splitlines() if line.startswith("torch=="))
    assert torch_line == "torch==2.13.0"


def test_prefetch_explains_an_unreachable_hub(tmp_path, monkeypatch):
    # This machine cannot reach the hub; the error must say which model and why.
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "3")
    spec = ModelSpec(repository="black-forest-labs/FLUX.1-schnell",
                     revision="741f7c3ce8b383c54771c7003378a50191e9efe9", exclude=["transformer"])
    with pytest.raises((InfrastructureError, SubmissionError)) as info:
        prefetch([spec], tmp_path / "models", timeout_s=5)
    message = str(info.value)
    assert "black-forest-labs/FLUX.1-schnell" in message
    if isinstance(info.value, InfrastructureError):
        assert "hub is unreachable" in message


def test_prefetch_uses_the_cache_without_network(tmp_path):
    """A model already in the shared cache is found offline, and its size counted."""
    cache = tmp_path / "models"
    revision = "a" * 40
    snapshot = cache / "models--owner--tiny" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"\1" * 1234)
    (cache / "models--owner--tiny" / "refs").mkdir()
    spec = ModelSpec(repository="owner/tiny", revision=revision)
    assert prefetch([spec], cache) == 1234


def test_operator_blacklist_file_adds_dependencies(broken, settings, tmp_path):
    blacklist = tmp_path / "blacklist.toml"
    blacklist.write_text('dependencies = ["evil-pkg"]\n')
    _edit(broken / "pyproject.toml", "dependencies = []", 'dependencies = ["evil_pkg>=1"]')
    report = static_checks(broken, settings.model_copy(update={"blacklist_file": blacklist}), offline=True)
    failed = {c.name: c.reason for c in report.checks if not c.ok}
    assert failed == {"blacklist": "uses blacklisted dependencies: evil-pkg"}
