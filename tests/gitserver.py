"""A git server over https (dumb HTTP, self-signed CA), for clone tests and build dependencies.

On loopback by default; on the Docker bridge's gateway address for image builds, whose
containers cannot reach the host's loopback (traffic stays on this machine either way)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import ssl
import subprocess
import threading
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "m", "GIT_AUTHOR_EMAIL": "m@example.com",
           "GIT_COMMITTER_NAME": "m", "GIT_COMMITTER_EMAIL": "m@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


class HttpsGitServer:
    """Serves bare repositories under `root/srv` at https://HOST:PORT/NAME.git, files beside them."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        self.served = root / "srv"
        self.served.mkdir(parents=True, exist_ok=True)
        # A test CA (what clients trust: `cert`) and a server certificate it signs: rustls (uv)
        # refuses a self-signed CA certificate used as the server's own.
        self.cert = root / "cert.pem"
        ca_key, key, leaf, extensions = (root / "ca-key.pem", root / "key.pem", root / "leaf.pem",
                                         root / "leaf.ext")
        extensions.write_text(f"subjectAltName=IP:{host}\nbasicConstraints=CA:FALSE\n"
                              "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        for command in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=edgemaxx test CA",
             "-keyout", str(ca_key), "-out", str(self.cert)],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(key),
             "-out", str(root / "leaf.csr")],
            ["x509", "-req", "-in", str(root / "leaf.csr"), "-CA", str(self.cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(leaf)],
        ):
            subprocess.run(["openssl", *command], check=True, capture_output=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(self.served))
        self.server = http.server.ThreadingHTTPServer((host, 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(leaf, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"https://{self.host}:{self.server.server_address[1]}/{name}.git"

    def publish_file(self, path: Path) -> str:
        """Serve a file (e.g. a wheel) at https://HOST:PORT/files/NAME; returns its URL."""
        (self.served / "files").mkdir(exist_ok=True)
        shutil.copyfile(path, self.served / "files" / path.name)
        return f"https://{self.host}:{self.server.server_address[1]}/files/{path.name}"

    def publish(self, work: Path, name: str) -> str:
        """Serve the repository at `work` as NAME; returns its URL."""
        target = self.served / f"{name}.git"
        git(self.root, "clone", "-q", "--bare", str(work), str(target))
        git(target, "update-server-info")
        return self.url(name)

    def close(self) -> None:
        self.server.shutdown()


def commit_tree(work: Path, message: str = "commit") -> str:
    if not (work / ".git").exists():
        git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")
