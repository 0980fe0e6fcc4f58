"""A git server over https on loopback (dumb HTTP, self-signed CA), for clone tests."""

from __future__ import annotations

import functools
import http.server
import os
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
    """Serves bare repositories under `root/srv` at https://127.0.0.1:PORT/NAME.git."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.served = root / "srv"
        self.served.mkdir(parents=True, exist_ok=True)
        self.cert = root / "cert.pem"
        key = root / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(self.cert)], check=True, capture_output=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(self.served))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/{name}.git"

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
