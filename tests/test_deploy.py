"""The deployment files: compose validates (with a multi-GPU override), and the README's claims."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT


def _compose(*files: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (scripts/setup installs it)")
    args = [binary]
    for f in files:
        args += ["-f", f]
    return subprocess.run([*args, "config"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_compose_file_validates():
    result = _compose("docker-compose.yml")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert {"redis", "api", "builder", "worker-gpu0"} <= set(config["services"])
    redis = config["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    worker = config["services"]["worker-gpu0"]
    assert worker["command"] == ["worker", "--gpu", "0"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in str(worker["volumes"])
    assert "docker.sock" not in str(config["services"]["api"].get("volumes", []))


def test_one_worker_per_gpu_override(tmp_path):
    override = tmp_path / "override.yml"
    generated = subprocess.run([sys.executable, "-m", "cli", "compose-gpus", "0,1,3"],
                               capture_output=True, text=True, check=True, timeout=60)
    override.write_text(generated.stdout)
    result = _compose("docker-compose.yml", str(override))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    workers = sorted(name for name in services if name.startswith("worker-gpu"))
    assert workers == ["worker-gpu0", "worker-gpu1", "worker-gpu3"]
    assert services["worker-gpu3"]["command"] == ["worker", "--gpu", "3"]


def test_imports_do_no_work():
    """`import api, worker, sandbox, images, scoring, chain` needs no environment and no I/O."""
    code = ("import sys; import api, worker, sandbox, images, scoring, chain, cli, api.app, "
            "worker.jobs, worker.process, cli.demo; "
            "heavy = [m for m in ('torch', 'docker', 'lpips', 'diffusers') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", "heavy libraries must load lazily"
