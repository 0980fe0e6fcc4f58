"""Static checks: the fixtures pass, and each broken submission fails the right check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from images import lock
from images.checks import static_checks
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


def _tool_is_a_string(path: Path) -> None:
    text = path.read_text().replace("[tool.edge-maxxing]\nmodels = []", "")
    path.write_text('tool = "x"\n' + text)


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
    "models-not-tables": (lambda r: _edit(r / "pyproject.toml", "models = []", 'models = ["x"]'),
                          "models", "entry 1 is not a table"),
    "model-no-revision": (lambda r: _edit(r / "pyproject.toml", "[tool.edge-maxxing]\nmodels = []",
                                          '[[tool.edge-maxxing.models]]\nrepository = "a/b"'),
                          "models", "revision: Field required"),
    "model-bad-repo": (lambda r: _edit(r / "pyproject.toml", "[tool.edge-maxxing]\nmodels = []",
                                       '[[tool.edge-maxxing.models]]\nrepository = "../../etc"\nrevision = "x"'),
                       "models", "is not 'owner/name'"),
    # As on SN39 (where this is "Failed to read submission info"): the table must be there.
    "no-models-table": (lambda r: _edit(r / "pyproject.toml", "[tool.edge-maxxing]\nmodels = []", ""),
                        "models", "[tool.edge-maxxing] is missing: list the models to fetch"),
    "no-models-key": (lambda r: _edit(r / "pyproject.toml", "models = []", 'other = 1'),
                      "models", "[tool.edge-maxxing] has no models"),
    "tool-not-a-table": (lambda r: _tool_is_a_string(r / "pyproject.toml"), "models",
                         "[tool] must be a table, not str"),
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


def test_lock_export_is_uvs_pylock_with_hashes():
    import tomllib

    exported = tomllib.loads(lock.export(fixture_path("flux-baseline")))
    packages = {p["name"]: p for p in exported["packages"]}
    assert "edgemaxx-fixture-flux-baseline" not in packages, "the project itself is mounted, not installed"
    torch = packages["torch"]
    assert torch["version"] == "2.13.0" and torch["index"] == "https://pypi.org/simple"
    # Every artifact is named by its exact URL, with its hash.
    assert all(w["url"].startswith("https://files.pythonhosted.org/") and w["hashes"]["sha256"]
               for w in torch["wheels"])
    # The fixture's overrides keep torch's CUDA packages under a marker that never holds.
    cuda = [p for name, p in packages.items() if name.startswith("nvidia-") or name == "triton"]
    assert cuda and all(p["marker"] == "sys_platform == 'never'" for p in cuda)


def test_stale_lock_is_refused_with_what_to_do(settings):
    report = static_checks(fixture_path("stale-lock"), settings, offline=True)
    failed = {c.name: c.reason for c in report.checks if not c.ok}
    assert failed == {"uv-lock": "uv.lock is out of date with pyproject.toml: run `uv lock`"}


def test_requires_python_is_not_a_static_check(settings):
    """Whether a Python satisfies requires-python depends on the sandbox: the build says."""
    report = static_checks(fixture_path("python-none"), settings, offline=True)
    assert report.ok, report.first_failure()


def test_operator_blacklist_file_adds_dependencies(broken, settings, tmp_path):
    blacklist = tmp_path / "blacklist.toml"
    blacklist.write_text('dependencies = ["evil-pkg"]\n')
    _edit(broken / "pyproject.toml", "dependencies = []", 'dependencies = ["evil_pkg>=1"]')
    report = static_checks(broken, settings.model_copy(update={"blacklist_file": blacklist}), offline=True)
    failed = {c.name: c.reason for c in report.checks if not c.ok}
    # The blacklist still reads a lock that is out of date.
    assert failed == {"blacklist": "uses blacklisted dependencies: evil-pkg", "uv-lock": lock.STALE}
