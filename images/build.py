"""Building the environment a submission runs in: a Docker image, or a venv for the process sandbox.

Both install the same way, with the validator's own uv: the interpreter for the lock's
requires-python, the operator's wheelhouse pins, then uv's pylock.toml export of uv.lock (hashes
verified, git sources at their locked commit), by an unprivileged build user with network.
Both are keyed by content (recipe, base, plan, uv, launcher, CA bundle, git settings), so a
rebuild is a cache hit and submissions with the same lock share one environment.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
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
from images import interpreters, lock
from images.failures import classify
from images.plan import BuildPlan, make_plan

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

# Package data: the sandbox image recipe (here) and the launcher the sandbox runs (in sandbox/).
SHIPPED_DOCKERFILE = Path(__file__).resolve().parent / "Dockerfile.sandbox"
LAUNCHER = Path(str(resources.files("sandbox").joinpath("launch.py")))
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_WHEELHOUSE = "/opt/edgemaxx/wheelhouse"


def _ca_bundle(settings: Settings) -> bytes:
    parts = [SYSTEM_CA.read_bytes()] if SYSTEM_CA.exists() else []
    if settings.extra_ca_bundle:
        parts.append(Path(settings.extra_ca_bundle).read_bytes())
    return b"\n".join(parts)


def _git_config(settings: Settings) -> bytes:
    return Path(settings.build_git_config).read_bytes() if settings.build_git_config else b""


def _vendor_tomllib(target: Path) -> None:
    """A copy of this Python's tomllib for the launcher under a submission's Python < 3.11 (it
    runs unchanged on 3.8+); the submission's environment is not touched."""
    import tomllib

    source = Path(tomllib.__file__).parent
    (target / "tomllib").mkdir(parents=True)
    for module in sorted(source.glob("*.py")):
        shutil.copyfile(module, target / "tomllib" / module.name)


def _launcher_files() -> bytes:
    import tomllib

    modules = sorted(Path(tomllib.__file__).parent.glob("*.py"))
    return LAUNCHER.read_bytes() + b"".join(m.read_bytes() for m in modules)


def _wheels(settings: Settings) -> list[Path]:
    if not settings.wheelhouse:
        return []
    return sorted(p for p in Path(settings.wheelhouse).glob("*.whl") if p.is_file())


def dockerfile(settings: Settings) -> Path:
    return settings.sandbox_dockerfile or SHIPPED_DOCKERFILE


@functools.cache
def uv_version(uv: str) -> str:
    try:
        return subprocess.run([uv, "--version"], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise InfrastructureError(f"uv does not run: {exc}") from exc


def environment_key(settings: Settings, plan: BuildPlan, backend: Backend, base: str) -> str:
    """Content key of an environment: everything that goes into building it, nothing else."""
    digest = hashlib.sha256()
    for part in (
        f"{backend.value}:{base}".encode(),
        dockerfile(settings).read_bytes() if backend is Backend.DOCKER else b"",
        uv_version(lock.uv_binary()).encode(),
        *plan.key_parts(),
        _launcher_files(),
        _ca_bundle(settings),
        _git_config(settings),
        f"{settings.sandbox_uid}:{settings.python_downloads}".encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
        shutil.copymode(source, target)


# ---------------------------------------------------------------- Docker


def image_tag(key: str) -> str:
    return f"edgemaxx-sandbox:{key}"


def build_image(client: DockerClient, settings: Settings, code_dir: Path) -> str:
    """Build (or reuse) the sandbox image for this submission's lock; returns its tag."""
    import docker.errors

    candidates = interpreters.docker_candidates(client, settings.base_image)
    plan = make_plan(code_dir, candidates, _wheels(settings), downloads=settings.python_downloads)
    base_id = client.images.get(settings.base_image).id
    key = environment_key(settings, plan, Backend.DOCKER, base_id)
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
        _link_or_copy(Path(lock.uv_binary()), ctx / "uv")
        (ctx / "ca.pem").write_bytes(_ca_bundle(settings))
        (ctx / "gitconfig").write_bytes(_git_config(settings))
        shutil.copyfile(LAUNCHER, ctx / "launch.py")
        _vendor_tomllib(ctx / "vendor")
        (ctx / "lock").mkdir()
        (ctx / "lock" / "pylock.toml").write_text(plan.pylock)
        (ctx / "lock" / "wheelhouse.txt").write_text(plan.wheelhouse_requirements(IMAGE_WHEELHOUSE))
        (ctx / "wheelhouse").mkdir()
        (ctx / "wheelhouse" / ".keep").write_text("")
        for pin in plan.wheelhouse:
            _link_or_copy(pin.wheel, ctx / "wheelhouse" / pin.wheel.name)

        # 2. Build, streaming the log so a failure can say why.
        lines: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                buildargs={"BASE_IMAGE": settings.base_image,
                           "SANDBOX_UID": str(settings.sandbox_uid),
                           "PYTHON": plan.python.request,
                           "PYTHON_DOWNLOADS": "automatic" if settings.python_downloads else "never"},
                labels={LABEL_IMAGE_KEY: key}, timeout=settings.build_timeout_s,
            ):
                if "stream" in chunk:
                    lines.append(chunk["stream"])
                if "error" in chunk:
                    lines.append(chunk["error"])
                    raise classify("".join(lines), "building the sandbox image")
        except docker.errors.APIError as exc:
            raise InfrastructureError(f"docker build failed: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise InfrastructureError(f"docker build failed: {exc}") from exc
    log.info("built sandbox image %s (python %s)", tag, plan.python.version)
    return tag


# ---------------------------------------------------------------- venv (process sandbox)


def build_venv(settings: Settings, code_dir: Path) -> Path:
    """Build (or reuse) a venv for this submission's lock, installed as the sandbox user."""
    paths = [settings.process_python, *settings.process_interpreters]
    candidates = interpreters.host_candidates(paths, settings.sandbox_uid)
    plan = make_plan(code_dir, candidates, _wheels(settings), downloads=settings.python_downloads)
    key = environment_key(settings, plan, Backend.PROCESS, plan.python.request)
    target = settings.envs_dir / key
    if (target / ".complete").exists():
        return target
    settings.envs_dir.mkdir(parents=True, exist_ok=True)
    # Downloaded Pythons are shared and must outlive the work dir: the venv links to them.
    pythons = settings.envs_dir / "pythons"
    if settings.python_downloads:
        pythons.mkdir(exist_ok=True)
        _own(pythons, settings.sandbox_uid)
    work = Path(tempfile.mkdtemp(prefix="venv-", dir=settings.envs_dir))
    venv = (work / ENV_VENV_PYTHON).parents[1]
    try:
        # 1. The same inputs as an image build's context.
        # Copies, never links: the work dir is chowned to the sandbox user below.
        uv = work / "uv"
        shutil.copy2(lock.uv_binary(), uv)
        (work / "ca.pem").write_bytes(_ca_bundle(settings))
        (work / "gitconfig").write_bytes(_git_config(settings))
        (work / "pylock.toml").write_text(plan.pylock)
        # Wheelhouse wheels are read in place (the sandbox user can read them, not change them).
        (work / "wheelhouse.txt").write_text(plan.wheelhouse_requirements(None))
        home = work / "home"
        home.mkdir()
        shutil.copyfile(LAUNCHER, work / ENV_LAUNCHER)
        _vendor_tomllib(work / "vendor")
        _own(work, settings.sandbox_uid)

        # 2. The same steps as the image's RUN, as the sandbox user.
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SSL_CERT_FILE": str(work / "ca.pem"),
               "GIT_SSL_CAINFO": str(work / "ca.pem"), "GIT_CONFIG_GLOBAL": str(work / "gitconfig"),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "NO_COLOR": "1", "UV_NO_CONFIG": "1",
               "UV_NO_CACHE": "1", "UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "1",
               "UV_HTTP_TIMEOUT": "120", "UV_PYTHON_INSTALL_DIR": str(pythons),
               "UV_PYTHON_DOWNLOADS": "automatic" if settings.python_downloads else "never",
               "UV_PYTHON_PREFERENCE": "system"}
        python = str(venv / "bin" / "python")
        steps = [[str(uv), "venv", "--no-project", "--no-config", "--python", plan.python.request, str(venv)]]
        if plan.wheelhouse:
            steps.append([str(uv), "pip", "install", "--python", python, "--no-deps", "--offline",
                          "-r", str(work / "wheelhouse.txt")])
        steps.append([str(uv), "pip", "install", "--python", python, "--preview-features", "pylock",
                      "-r", str(work / "pylock.toml")])
        output = ""
        for step in steps:
            result = subprocess.run(_as_sandbox_user(settings) + step, env=env, capture_output=True,
                                    text=True, timeout=settings.build_timeout_s, cwd=work)
            output += result.stdout + result.stderr
            if result.returncode != 0:
                raise classify(output, "installing the venv")

        # 3. The submission must not be able to change its (shared) environment at run time.
        uv.unlink()
        shutil.rmtree(home)
        _own(work, 0)
        subprocess.run(["chmod", "-R", "go-w,a+rX", str(work)], check=True, timeout=300)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
        (target / ".complete").write_text(plan.pylock)
        return target
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError("installing the locked dependencies timed out") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_environment(settings: Settings, code_dir: Path, backend: Backend,
                      docker_client: DockerClient | None) -> str:
    """The image tag (Docker) or venv directory (process sandbox) for this submission's lock."""
    if backend is Backend.DOCKER:
        if docker_client is None:
            raise InfrastructureError("a Docker build needs a Docker client")
        return build_image(docker_client, settings, code_dir)
    return str(build_venv(settings, code_dir))


def _own(path: Path, uid: int) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(path)], check=True, timeout=300)


def _as_sandbox_user(settings: Settings) -> list[str]:
    if os.geteuid() != 0:
        return []
    uid = str(settings.sandbox_uid)
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--"]
