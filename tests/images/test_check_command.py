"""`edgemaxx check` as a miner runs it: every outcome is lines with reasons and an exit status
(0 passed, 1 a check failed, 2 the tool or the validator's side failed), never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.conftest import fixture_path

REVISION = "741f7c3ce8b383c54771c7003378a50191e9efe9"


def _check(args: list[str], settings, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "EDGEMAXX_DATA_DIR": str(settings.data_dir), "COLUMNS": "300",
                   "HF_HUB_ETAG_TIMEOUT": "3", **env}
    result = subprocess.run([sys.executable, "-m", "cli", "check", *args], capture_output=True, text=True,
                            timeout=600, env=environment)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def test_an_unreachable_hub_is_an_unknown_size_not_a_crash(settings, tmp_path):
    submission = tmp_path / "sub"
    shutil.copytree(fixture_path("garbage-output"), submission)
    pyproject = submission / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.edge-maxxing]\nmodels = []\n", '[[tool.edge-maxxing.models]]\nrepository = '
        f'"black-forest-labs/FLUX.1-schnell"\nrevision = "{REVISION}"\nexclude = ["transformer"]\n'))
    result = _check([str(submission), "--no-build"], settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "? models-size      unknown — the hub could not be reached (black-forest-labs/FLUX.1-schnell: " \
        in result.stdout
    assert "✓ uv-lock          1 packages locked, up to date with pyproject.toml" in result.stdout
    assert "no check failed; not decided here: models-size" in result.stdout


def test_a_stale_lock_fails_the_check(settings):
    result = _check([str(fixture_path("stale-lock")), "--no-build"], settings)
    assert result.returncode == 1
    assert "✗ uv-lock          uv.lock is out of date with pyproject.toml: run `uv lock`" in result.stdout


def test_an_unreachable_docker_engine_is_an_error_of_the_tool(settings, tmp_path):
    result = _check([str(fixture_path("garbage-output")), "--sandbox", "docker"], settings,
                    DOCKER_HOST=f"unix://{tmp_path}/no-such.sock")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not the submission's fault" in result.stderr
