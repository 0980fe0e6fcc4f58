"""Building a minimal Debian + Python base image locally, for hosts with no image registry.

Production uses a CUDA + Python image (EDGEMAXX_BASE_IMAGE); this one serves CPU-only
validators, CI and the demo.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgemaxx.errors import InfrastructureError

if TYPE_CHECKING:
    from docker import DockerClient

# git: uv shells out to it for locked git dependencies (every SN39 submission has one), as the
# original validator's image does. Changing this list means a new base image tag (Settings).
PACKAGES = "python3,python3-venv,ca-certificates,git"


def base_image_exists(client: DockerClient, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base_image(client: DockerClient, name: str, suite: str = "bookworm", *, force: bool = False,
                     timeout_s: float = 900.0) -> bool:
    """debootstrap a minbase root filesystem and `docker import` it; False if it already existed."""
    if not force and base_image_exists(client, name):
        return False
    if shutil.which("debootstrap") is None:
        raise InfrastructureError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="edgemaxx-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        try:
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", suite,
                            str(rootfs)], check=True, capture_output=True, timeout=timeout_s)
            archive = Path(scratch) / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True,
                           capture_output=True, timeout=timeout_s)
        except subprocess.CalledProcessError as exc:
            raise InfrastructureError(
                f"building {name} failed: {exc.stderr.decode(errors='replace')[-2000:]}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise InfrastructureError(f"building {name} timed out") from exc
        repository, _, tag = name.partition(":")
        # From a file (sent with its length): docker-py's import from a stream declares chunked
        # encoding but sends the raw file, which the engine rejects ("invalid byte in chunk length").
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag or "latest")
    return True
