"""The deployment files: compose validates (production, local build, CPU, multi-GPU), every service is
supervised (healthcheck, restart, bounded logs), .env.example documents every variable, and the
README's claims. `tests/test_compose.py` runs the whole thing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

SERVICES = {"redis", "api", "builder", "chain", "worker-gpu0", "worker-cpu"}
PASSWORD = "0123abcd"


def _compose(*files: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (scripts/setup installs it)")
    args = [binary]
    for f in files:
        args += ["-f", f]
    # Read from a directory without a .env: what the files say, not what a developer's .env says.
    result = subprocess.run([*args, "config"], capture_output=True, text=True, cwd=cwd, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **(env or {})})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """The compose files in a directory of their own, with the (required) .env from .env.example."""
    for name in ("docker-compose.yml", "docker-compose.local.yml", "docker-compose.worker-host.yml",
                 "Dockerfile.validator"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    # .env.example, plus the one answer it cannot give: Redis's password.
    (tmp_path / ".env").write_text((REPO_ROOT / ".env.example").read_text() + f"EDGEMAXX_REDIS_PASSWORD={PASSWORD}\n")
    return tmp_path


def test_redis_needs_a_password(bare: Path):
    """Every service reaches Redis with the password, and compose refuses to start without one."""
    services = _compose("docker-compose.yml", cwd=bare)["services"]
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == PASSWORD
    for name in ("api", "builder", "chain", "worker-gpu0", "worker-cpu"):
        assert services[name]["environment"]["EDGEMAXX_REDIS_URL"] == f"redis://:{PASSWORD}@redis:6379/0", name
    # Published on loopback only unless the operator names an address.
    assert str(services["redis"]["ports"][0]).startswith("127.0.0.1::6379")
    (bare / ".env").write_text((REPO_ROOT / ".env.example").read_text())
    binary = shutil.which("docker-compose")
    assert binary
    refused = subprocess.run([binary, "-f", "docker-compose.yml", "config"], capture_output=True, text=True,
                             cwd=bare, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert refused.returncode != 0 and "set EDGEMAXX_REDIS_PASSWORD" in refused.stderr


def test_worker_host_compose(bare: Path):
    """A second box: a builder and its workers on the first box's Redis, nothing else."""
    env = {"EDGEMAXX_REDIS_URL": f"redis://:{PASSWORD}@10.0.0.1:6379/0", "EDGEMAXX_NODE_NAME": "box2"}
    services = _compose("docker-compose.worker-host.yml", cwd=bare, env=env)["services"]
    assert set(services) == {"builder", "worker-gpu0", "worker-cpu"}
    for name, service in services.items():
        assert service["environment"]["EDGEMAXX_REDIS_URL"] == env["EDGEMAXX_REDIS_URL"], name
        assert service["environment"]["EDGEMAXX_HOST"] == "box2" and service["hostname"] == "box2"
        assert service["restart"] == "unless-stopped" and service["healthcheck"]["test"], name
        assert "/var/run/docker.sock" in str(service["volumes"]) and service["user"] == "0:0"
    assert services["worker-gpu0"]["command"] == ["worker", "--gpu", "0"]
    binary = shutil.which("docker-compose")
    assert binary
    for missing in ("EDGEMAXX_REDIS_URL", "EDGEMAXX_NODE_NAME"):
        partial = {k: v for k, v in env.items() if k != missing}
        refused = subprocess.run([binary, "-f", "docker-compose.worker-host.yml", "config"], capture_output=True,
                                 text=True, cwd=bare, timeout=60,
                                 env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **partial})
        assert refused.returncode != 0 and f"set {missing}" in refused.stderr, missing


def test_production_compose(bare: Path):
    config = _compose("docker-compose.yml", cwd=bare)
    services = config["services"]
    assert set(services) == SERVICES
    redis = services["redis"]
    assert redis["image"].startswith("redis:") and "build" not in redis
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in str(redis["volumes"]) or redis["volumes"][0]["source"] == "redis-data"
    worker = services["worker-gpu0"]
    assert worker["command"] == ["worker", "--gpu", "0"] and worker["profiles"] == ["gpu"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert worker["pid"] == "host" and worker["user"] == "0:0"
    assert "/var/run/docker.sock" in str(worker["volumes"])
    assert services["worker-cpu"]["profiles"] == ["cpu"] and "deploy" not in services["worker-cpu"]
    for name in ("api", "chain"):
        assert "docker.sock" not in str(services[name].get("volumes", [])), f"{name} must not hold the socket"
        assert services[name].get("user", "") != "0:0"
    assert services["api"]["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim-bookworm"
    assert services["api"]["build"]["args"]["FETCH_LPIPS_WEIGHTS"] == "1"


def test_every_service_is_supervised(bare: Path):
    for name, service in _compose("docker-compose.yml", cwd=bare)["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        assert service["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(service["logging"]["options"]), f"{name}: unbounded logs"


def test_data_dir_is_the_same_path_inside_and_out(bare: Path):
    env = {"EDGEMAXX_DATA_DIR": "/srv/edgemaxx-data"}
    services = _compose("docker-compose.yml", cwd=bare, env=env)["services"]
    for name in ("builder", "worker-gpu0", "worker-cpu"):
        volumes = services[name]["volumes"]
        data = [v for v in volumes if "/srv/edgemaxx-data" in str(v)]
        assert data, name
        spec = data[0] if isinstance(data[0], str) else f"{data[0]['source']}:{data[0]['target']}"
        assert spec.startswith("/srv/edgemaxx-data:/srv/edgemaxx-data"), spec
        assert services[name]["environment"]["EDGEMAXX_DATA_DIR"] == "/srv/edgemaxx-data"


def test_local_build_override(bare: Path):
    env = {"EDGEMAXX_VALIDATOR_BASE_IMAGE": "edgemaxx-base:bookworm-git", "EDGEMAXX_FETCH_LPIPS_WEIGHTS": "0"}
    services = _compose("docker-compose.yml", "docker-compose.local.yml", cwd=bare, env=env)["services"]
    assert services["redis"]["build"]["args"]["BASE_IMAGE"] == "edgemaxx-base:bookworm-git"
    assert services["redis"]["image"] == "edgemaxx-redis:local"
    assert services["redis"]["command"][0] == "redis-server"
    for name in ("api", "builder", "chain", "worker-cpu", "worker-gpu0"):
        assert services[name]["build"]["args"] == {"BASE_IMAGE": "edgemaxx-base:bookworm-git", "TORCH_INDEX_URL": "",
                                                   "FETCH_LPIPS_WEIGHTS": "0"}


def test_one_worker_per_gpu_override(bare: Path):
    generated = subprocess.run([sys.executable, "-m", "cli", "compose-gpus", "0,1,3", "-f",
                                str(REPO_ROOT / "docker-compose.yml")],
                               capture_output=True, text=True, check=True, timeout=60, cwd=REPO_ROOT)
    (bare / "override.yml").write_text(generated.stdout)
    services = _compose("docker-compose.yml", "override.yml", cwd=bare)["services"]
    workers = sorted(name for name in services if name.startswith("worker-gpu"))
    assert workers == ["worker-gpu0", "worker-gpu1", "worker-gpu3"]
    assert services["worker-gpu3"]["command"] == ["worker", "--gpu", "3"]
    assert services["worker-gpu3"]["healthcheck"]["test"][-2:] == ["--gpu", "3"]
    assert services["worker-gpu3"]["profiles"] == ["gpu"]
    assert services["worker-gpu3"]["deploy"] == services["worker-gpu0"]["deploy"]


def test_compose_gpus_refuses_bad_input(tmp_path: Path):
    bad = subprocess.run([sys.executable, "-m", "cli", "compose-gpus", "0,x"], capture_output=True, text=True,
                         timeout=60, cwd=REPO_ROOT)
    assert bad.returncode == 2 and "not a comma-separated list" in bad.stderr
    (tmp_path / "other.yml").write_text("services: {api: {image: x}}\n")
    missing = subprocess.run([sys.executable, "-m", "cli", "compose-gpus", "1", "-f", str(tmp_path / "other.yml")],
                             capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert missing.returncode == 2 and "worker-gpu0" in missing.stderr


def test_env_example_documents_every_variable():
    from edgemaxx.settings import Settings

    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    compose = "".join((REPO_ROOT / f).read_text()
                      for f in ("docker-compose.yml", "docker-compose.local.yml", "docker-compose.worker-host.yml"))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    assert used - documented == set(), "compose variables missing from .env.example"
    settings = {f"EDGEMAXX_{name.upper()}" for name in Settings.model_fields}
    # Two are set per process by the services themselves, and .env.example says so.
    assert settings - documented == {"EDGEMAXX_GPU", "EDGEMAXX_OWNER"}
    text = (REPO_ROOT / ".env.example").read_text()
    assert "EDGEMAXX_GPU" in text and "EDGEMAXX_OWNER" in text


def test_env_example_lines_are_plain():
    """docker-compose v1 keeps quotes and trailing comments in values: none on a KEY=value line."""
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#? ?[A-Z][A-Z0-9_]*=(.*)$", line)
        if match:
            assert "#" not in match.group(1) and not match.group(1).startswith(("'", '"')), line


def test_readme_runs_a_validator_as_the_compose_test_does():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Run a validator", 1)[1].split("\n## ", 1)[0]
    for command in ("cp .env.example .env", "docker compose up -d --build", "docker compose ps",
                    "edgemaxx compose-gpus", "git pull && docker compose up -d --build", "edgemaxx base-image",
                    "COMPOSE_FILE=docker-compose.yml:docker-compose.local.yml", "docker compose down"):
        assert command in section, command
    assert "docker-compose" in section and "v1" in section


def test_imports_do_no_work():
    """`import api, worker, sandbox, images, scoring, chain` needs no environment and no I/O."""
    code = ("import sys; import api, worker, sandbox, images, scoring, chain, cli, api.app, "
            "worker.jobs, worker.process, worker.preflight, cli.demo, cli.health; "
            "heavy = [m for m in ('torch', 'docker', 'lpips', 'diffusers') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", "heavy libraries must load lazily"
