"""Building the environment a submission runs in: a Docker image, or a venv for the process sandbox.

Both are keyed by content (Dockerfile, base, locked requirements, wheelhouse, launcher, CA
bundle), so a rebuild is a cache hit and submissions with the same lock share one environment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from edgemaxx.constants import ENV_LAUNCHER, ENV_VENV_PYTHON, LABEL_IMAGE_KEY
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import Backend
from edgemaxx.settings import Settings

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

# Package data: the sandbox image recipe (here) and the launcher the sandbox runs (in sandbox/).
SHIPPED_DOCKERFILE = Path(__file__).resolve().parent / "Dockerfile.sandbox"
LAUNCHER = Path(str(resources.files("sandbox").joinpath("launch.py")))
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")

# Build failures that are the network's or ours, not the lock's: retry instead of blaming.
_INFRA_PATTERNS = re.compile(
    r"Temporary failure in name resolution|Connection (?:reset|refused|aborted)|"
    r"CERTIFICATE_VERIFY_FAILED|Read timed out|No space left on device|"
    r"Failed to establish a new connection|Cannot connect to the Docker daemon"
)


def _ca_bundle(settings: Settings) -> bytes:
    parts = [SYSTEM_CA.read_bytes()] if SYSTEM_CA.exists() else []
    if settings.extra_ca_bundle:
        parts.append(Path(settings.extra_ca_bundle).read_bytes())
    return b"\n".join(parts)


def _wheels(settings: Settings) -> list[Path]:
    if not settings.wheelhouse:
        return []
    return sorted(p for p in Path(settings.wheelhouse).glob("*.whl") if p.is_file())


def dockerfile(settings: Settings) -> Path:
    return settings.sandbox_dockerfile or SHIPPED_DOCKERFILE


def environment_key(settings: Settings, requirements: str, backend: Backend) -> str:
    """Content key of an environment: everything that goes into building it, nothing else."""
    interpreter = settings.base_image if backend is Backend.DOCKER else str(settings.process_python)
    digest = hashlib.sha256()
    for part in (
        f"{backend.value}:{interpreter}".encode(),
        dockerfile(settings).read_bytes() if backend is Backend.DOCKER else b"",
        requirements.encode(),
        LAUNCHER.read_bytes(),
        _ca_bundle(settings),
        str(settings.sandbox_uid).encode(),
        *(f"{w.name}:{w.stat().st_size}".encode() for w in _wheels(settings)),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _classify(output: str, what: str) -> Exception:
    tail = output.strip()[-3000:]
    if _INFRA_PATTERNS.search(tail):
        return InfrastructureError(f"{what} failed on the validator's side: {tail}")
    return SubmissionError(f"installing the locked dependencies failed:\n{tail}")


# ---------------------------------------------------------------- Docker


def image_tag(key: str) -> str:
    return f"edgemaxx-sandbox:{key}"


def build_image(client: DockerClient, settings: Settings, requirements: str) -> str:
    """Build (or reuse) the sandbox image for these requirements; returns its tag."""
    import docker.errors

    try:
        client.images.get(settings.base_image)
    except docker.errors.ImageNotFound as exc:
        raise InfrastructureError(
            f"base image {settings.base_image} is missing: run `edgemaxx base-image` "
            "(or set EDGEMAXX_BASE_IMAGE to a CUDA + Python image)"
        ) from exc
    key = environment_key(settings, requirements, Backend.DOCKER)
    tag = image_tag(key)
    try:
        client.images.get(tag)
        log.info("sandbox image %s is cached", tag)
        return tag
    except docker.errors.ImageNotFound:
        pass

    with tempfile.TemporaryDirectory(prefix="edgemaxx-build-") as ctx_dir:
        # 1. Assemble a context holding only what the build needs: no repo, no host secrets.
        ctx = Path(ctx_dir)
        shutil.copyfile(dockerfile(settings), ctx / "Dockerfile")
        (ctx / "requirements.txt").write_text(requirements)
        (ctx / "ca.pem").write_bytes(_ca_bundle(settings))
        shutil.copyfile(LAUNCHER, ctx / "launch.py")
        wheelhouse = ctx / "wheelhouse"
        wheelhouse.mkdir()
        (wheelhouse / ".keep").write_text("")
        for wheel in _wheels(settings):
            try:
                os.link(wheel, wheelhouse / wheel.name)
            except OSError:
                shutil.copyfile(wheel, wheelhouse / wheel.name)

        # 2. Build, streaming the log so a failure can say why.
        lines: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                buildargs={"BASE_IMAGE": settings.base_image,
                           "SANDBOX_UID": str(settings.sandbox_uid)},
                labels={LABEL_IMAGE_KEY: key}, timeout=settings.build_timeout_s,
            ):
                if "stream" in chunk:
                    lines.append(chunk["stream"])
                if "error" in chunk:
                    lines.append(chunk["error"])
                    raise _classify("".join(lines), "building the sandbox image")
        except docker.errors.APIError as exc:
            raise InfrastructureError(f"docker build failed: {exc}") from exc
    log.info("built sandbox image %s", tag)
    return tag


# ---------------------------------------------------------------- venv (process sandbox)


def build_venv(settings: Settings, requirements: str) -> Path:
    """Build (or reuse) a venv for these requirements, installed as the sandbox user."""
    key = environment_key(settings, requirements, Backend.PROCESS)
    target = settings.envs_dir / key
    if (target / ".complete").exists():
        return target
    settings.envs_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="venv-", dir=settings.envs_dir))
    venv = (work / ENV_VENV_PYTHON).parents[1]
    try:
        (work / "requirements.txt").write_text(requirements)
        (work / "ca.pem").write_bytes(_ca_bundle(settings))
        home = work / "home"
        home.mkdir()
        subprocess.run([str(settings.process_python), "-m", "venv", str(venv)], check=True,
                       timeout=300, capture_output=True)
        shutil.copyfile(LAUNCHER, work / ENV_LAUNCHER)
        _own(work, settings.sandbox_uid)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
               "-r", str(work / "requirements.txt")]
        if settings.wheelhouse:
            pip += ["--find-links", str(settings.wheelhouse)]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_CERT": str(work / "ca.pem"),
               "SSL_CERT_FILE": str(work / "ca.pem"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "PIP_NO_CACHE_DIR": "1", "PIP_CONFIG_FILE": "/dev/null"}
        if requirements.strip():
            result = subprocess.run(_as_sandbox_user(settings) + pip, env=env,
                                    capture_output=True, text=True,
                                    timeout=settings.build_timeout_s, cwd=work)
            if result.returncode != 0:
                raise _classify(result.stdout + result.stderr, "installing the venv")
        # The submission must not be able to change its (shared) environment at run time.
        _own(work, 0)
        subprocess.run(["chmod", "-R", "go-w,a+rX", str(work)], check=True, timeout=300)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
        (target / ".complete").write_text(requirements)
        return target
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError("installing the locked dependencies timed out") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_environment(settings: Settings, requirements: str, backend: Backend,
                      docker_client: DockerClient | None) -> str:
    """The image tag (Docker) or venv directory (process sandbox) for these requirements."""
    if backend is Backend.DOCKER:
        if docker_client is None:
            raise InfrastructureError("a Docker build needs a Docker client")
        return build_image(docker_client, settings, requirements)
    return str(build_venv(settings, requirements))


def _own(path: Path, uid: int) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(path)], check=True, timeout=300)


def _as_sandbox_user(settings: Settings) -> list[str]:
    if os.geteuid() != 0:
        return []
    uid = str(settings.sandbox_uid)
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--"]
