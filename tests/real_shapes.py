"""Real-shape submissions whose locks name a local server: written from tests/fixtures/*, their
git and URL dependencies served over https, their uv.lock made by `uv lock` for each session
(locks name the server's URL, and its port changes). Also by hand:

    python -m tests.real_shapes DEST HOST   # serves until Ctrl-C and prints what it made
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

from tests.gitserver import HttpsGitServer, git

FIXTURES = Path(__file__).parent / "fixtures"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Fixed dates make the dependency's commit the same every session.
_DATES = {"GIT_AUTHOR_DATE": "2024-11-06T00:00:00+00:00", "GIT_COMMITTER_DATE": "2024-11-06T00:00:00+00:00"}


def commit_pipelines(server: HttpsGitServer, work: Path) -> tuple[str, str]:
    """Commit the `pipelines/` package (SN39's git dependency shape) and serve it: (url, commit)."""
    repo = work / "edge-maxxing"
    shutil.copytree(FIXTURES / "sn39-pipelines-repo", repo)
    env = {**os.environ, **_DATES, "GIT_AUTHOR_NAME": "m", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "m", "GIT_COMMITTER_EMAIL": "m@example.com", "GIT_CONFIG_GLOBAL": "/dev/null"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "pipelines"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    commit = git(repo, "rev-parse", "HEAD")
    return server.publish(repo, "edge-maxxing"), commit


def shapes_wheel(work: Path) -> Path:
    """A pure wheel (written directly, no build backend) for the direct-URL dependency."""
    name, version = "edgemaxx_fixture_shapes", "1.0"
    module = (
        "import random\n\nfrom PIL import Image, ImageDraw\n\n\n"
        "def draw(prompt, seed, width, height):\n"
        "    rng = random.Random(f'{seed}:{prompt}')\n"
        "    image = Image.new('RGB', (width, height), (20, 20, 20))\n"
        "    pen = ImageDraw.Draw(image)\n"
        "    for _ in range(8):\n"
        "        x, y = rng.randrange(width), rng.randrange(height)\n"
        "        pen.ellipse((x, y, x + width // 3, y + height // 3),\n"
        "                    fill=tuple(rng.randrange(256) for _ in range(3)))\n"
        "    return image\n"
    )
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: edgemaxx-fixture-shapes\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: edgemaxx-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = work / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 11, 6, 0, 0, 0)), text)
    return wheel


def ca_bundle(server: HttpsGitServer, dest: Path) -> Path:
    """The system bundle (PyPI through this machine's proxy) plus the test server's certificate."""
    dest.write_bytes((SYSTEM_CA.read_bytes() if SYSTEM_CA.exists() else b"") + b"\n" + server.cert.read_bytes())
    return dest


def uv_lock(project: Path, ca: Path) -> None:
    from uv import find_uv_bin

    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(project.parent), "UV_NO_CONFIG": "1",
           "SSL_CERT_FILE": str(ca), "GIT_SSL_CAINFO": str(ca), "GIT_CONFIG_GLOBAL": "/dev/null",
           "UV_PYTHON_DOWNLOADS": "never"}
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run([str(find_uv_bin()), "lock", "--no-progress", "--cache-dir", cache],
                                cwd=project, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"uv lock failed in {project}:\n{result.stderr}")


def materialize(name: str, dest: Path, substitutions: dict[str, str], ca: Path) -> Path:
    """tests/fixtures/NAME with its pyproject.toml.in filled in, locked by uv, at dest/NAME."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target, ignore=shutil.ignore_patterns("pyproject.toml.in"))
    text = (FIXTURES / name / "pyproject.toml.in").read_text()
    for token, value in substitutions.items():
        text = text.replace(token, value)
    (target / "pyproject.toml").write_text(text)
    uv_lock(target, ca)
    return target


class RealShapes:
    """The served dependencies and the submissions locked against them."""

    def __init__(self, root: Path, host: str) -> None:
        self.root = root
        self.server = HttpsGitServer(root / "server", host=host)
        self.ca = ca_bundle(self.server, root / "ca.pem")
        self.pipelines_url, self.pipelines_commit = commit_pipelines(self.server, root)
        self.wheel = shapes_wheel(root)
        self.wheel_url = self.server.publish_file(self.wheel)
        self.submissions = root / "submissions"
        self.submissions.mkdir()

    def git_dep(self) -> Path:
        requirement = f"{self.pipelines_url}@{self.pipelines_commit}#subdirectory=pipelines"
        return materialize("sn39-git-dep", self.submissions, {"@PIPELINES@": requirement}, self.ca)

    def url_wheel(self) -> Path:
        return materialize("sn39-url-wheel", self.submissions, {"@WHEEL@": self.wheel_url}, self.ca)

    def close(self) -> None:
        self.server.close()


def bridge_gateway(client: object | None = None) -> str:
    """The Docker bridge's gateway: the host as build containers see it. An engine that does not
    report it uses the subnet's first address (its default)."""
    import ipaddress
    import json

    if client is not None:
        config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]  # type: ignore[attr-defined]
    else:
        out = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
                             check=True, timeout=60)
        config = json.loads(out.stdout)[0]["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


if __name__ == "__main__":
    import sys
    import time

    shapes = RealShapes(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else bridge_gateway())
    print(shapes.git_dep(), shapes.url_wheel(), shapes.ca, sep="\n", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        shapes.close()
