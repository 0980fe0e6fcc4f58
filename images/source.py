"""Getting a submission's code: a local directory, or a safe clone of an https repo at a revision."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edgemaxx.constants import MAX_CODE_BYTES
from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from images.failures import infrastructure
from images.urls import validate_repository_url

_REVISION_RE = re.compile(r"^[0-9a-fA-F]{7,40}$")

# Git configuration that makes a clone of a hostile repo inert: https only, no hooks, no
# submodules, no LFS smudge, symlinks checked out as plain files, no credential prompts.
_SAFE_GIT_CONFIG = {
    "protocol.allow": "never",
    "protocol.https.allow": "always",
    "core.hooksPath": "/dev/null",
    "core.symlinks": "false",
    "core.fsmonitor": "false",
    "submodule.recurse": "false",
    "fetch.recurseSubmodules": "false",
    "filter.lfs.smudge": "",
    "filter.lfs.process": "",
    "filter.lfs.required": "false",
    "credential.helper": "",
    "http.followRedirects": "false",
    "transfer.fsckObjects": "true",
    "init.defaultBranch": "main",
    "advice.detachedHead": "false",
}


def parse_source(spec: str) -> SubmissionSource:
    """`PATH` (an existing directory) or `https://host/owner/repo@REVISION`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return SubmissionSource(kind=SourceKind.LOCAL, path=path.resolve())
    url, sep, revision = spec.rpartition("@")
    if not sep or "/" in revision or not url:
        if "://" in spec or "::" in spec:
            raise SubmissionError(f"{spec!r} needs a revision: URL@REVISION")
        raise SubmissionError(f"{spec!r} is neither a directory nor URL@REVISION")
    if not _REVISION_RE.match(revision):
        raise SubmissionError(f"revision {revision!r} is not 7 to 40 hex characters")
    return SubmissionSource(kind=SourceKind.GIT, url=url, revision=revision.lower())


def git_env(settings: Settings, home: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_ALLOW_PROTOCOL": "https",
        "LANG": "C",
    }
    if settings.extra_ca_bundle:
        env["GIT_SSL_CAINFO"] = str(settings.extra_ca_bundle)
    return env


def _git(args: list[str]) -> list[str]:
    cmd = ["git"]
    for key, value in _SAFE_GIT_CONFIG.items():
        cmd += ["-c", f"{key}={value}"]
    return cmd + args


def _tree_bytes(root: Path, *, skip_git: bool) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_git and ".git" in dirnames:
            dirnames.remove(".git")
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _run_bounded(cmd: list[str], cwd: Path, env: dict[str, str], *, timeout_s: float,
                 watch: Path, max_bytes: int) -> str:
    """Run git, killing it past the deadline or once `watch` grows past `max_bytes`."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise SubmissionError(f"git did not finish within {timeout_s:.0f} s")
                if _tree_bytes(watch, skip_git=False) > max_bytes:
                    raise SubmissionError(
                        f"repository is larger than {max_bytes / 2**20:.2f} MiB to download"
                    )
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        output = out.read().decode(errors="replace")[-4000:]
    if proc.returncode != 0:
        if infrastructure(output):  # DNS, connection, TLS: the validator's network, retried
            raise InfrastructureError(f"git could not reach the repository host: {output.strip()}")
        raise SubmissionError(f"git failed: {output.strip()}")
    return output


def clone_dir(settings: Settings, url: str, revision: str) -> Path:
    key = hashlib.sha256(f"{url}@{revision}".encode()).hexdigest()[:20]
    return settings.repos_dir / key


def safe_clone(settings: Settings, url: str, revision: str) -> Path:
    """Clone `url` at `revision` into the repo cache and return the checkout (cached)."""
    url = validate_repository_url(url, allow_private=settings.allow_private_hosts)
    if not _REVISION_RE.match(revision):
        raise SubmissionError(f"revision {revision!r} is not 7 to 40 hex characters")
    target = clone_dir(settings, url, revision)
    marker = target.with_name(target.name + ".commit")
    if marker.exists() and target.is_dir():
        return target
    settings.repos_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clone-", dir=settings.repos_dir))
    try:
        home = work / "home"
        home.mkdir()
        checkout = work / "repo"
        env = git_env(settings, home)
        _run_bounded(_git(["clone", "--no-checkout", "--no-recurse-submodules", "--", url,
                           str(checkout)]), work, env, timeout_s=settings.clone_timeout_s,
                     watch=work, max_bytes=settings.clone_max_bytes)
        try:
            commit = subprocess.run(
                _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"]),
                cwd=checkout, env=env, capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()
        except subprocess.CalledProcessError as exc:
            raise SubmissionError(f"revision {revision} does not exist in {url}") from exc
        subprocess.run(_git(["checkout", "--quiet", "--detach", commit]), cwd=checkout, env=env,
                       capture_output=True, timeout=60, check=True)
        code = _tree_bytes(checkout, skip_git=True)
        if code > MAX_CODE_BYTES:
            raise SubmissionError(
                f"code is {code / 2**20:.1f} MiB, over the {MAX_CODE_BYTES // 2**20} MiB limit"
            )
        shutil.rmtree(checkout / ".git")
        if target.exists():
            shutil.rmtree(target)
        os.replace(checkout, target)
        # Written last, atomically: a half-finished clone is never taken for a cached one.
        partial = marker.with_suffix(".tmp")
        partial.write_text(commit + "\n")
        os.replace(partial, marker)
        return target
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError(f"git timed out: {exc.cmd[-1]}") from exc
    except OSError as exc:
        raise InfrastructureError(f"cloning {url}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch_source(settings: Settings, source: SubmissionSource) -> Path:
    """The directory holding the submission's code."""
    if source.kind is SourceKind.LOCAL:
        assert source.path is not None
        if not source.path.is_dir():
            raise SubmissionError(f"{source.path} is not a directory")
        return source.path
    assert source.url and source.revision
    return safe_clone(settings, source.url, source.revision)


def code_bytes(root: Path) -> int:
    return _tree_bytes(root, skip_git=True)
