"""Getting code safely: URL validation before any fetch, and a real https clone."""

from __future__ import annotations

import os

import pytest

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import SourceKind
from images.source import parse_source, safe_clone
from images.urls import validate_repository_url
from tests.gitserver import HttpsGitServer, commit_tree


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only https:// is allowed"),
        ("ssh://git@github.com/owner/repo", "only https:// is allowed"),
        ("git://github.com/owner/repo", "only https:// is allowed"),
        ("ext::sh -c touch% /tmp/pwned", "transport helper"),
        ("http://github.com/owner/repo", "only https:// is allowed"),
        ("https://127.0.0.1/owner/repo", "private or local address"),
        ("https://10.1.2.3/owner/repo", "private or local address"),
        ("https://192.168.1.1/owner/repo", "private or local address"),
        ("https://169.254.169.254/latest/meta-data", "private or local address"),
        ("https://[::1]/owner/repo", "private or local address"),
        ("https://0.0.0.0/owner/repo", "private or local address"),
        ("https://localhost/owner/repo", "local name"),
        ("https://git.internal/owner/repo", "local name"),
        ("https://user:pw@github.com/owner/repo", "credentials"),
        ("https://token@github.com/owner/repo", "credentials"),
        ("https://github.com", "no repository path"),
        ("https://github.com/owner/repo?x=1", "query"),
    ],
)
def test_refused_urls(url, message):
    with pytest.raises(SubmissionError, match=message):
        validate_repository_url(url, resolve=False)


def test_public_url_is_normalised():
    assert validate_repository_url("https://GitHub.com/owner/repo/", resolve=False) == (
        "https://github.com/owner/repo"
    )


def test_parse_source(tmp_path):
    assert parse_source(str(tmp_path)).kind is SourceKind.LOCAL
    source = parse_source("https://github.com/owner/repo@2CFF82C")
    assert (source.kind, source.url, source.revision) == (
        SourceKind.GIT, "https://github.com/owner/repo", "2cff82c")
    with pytest.raises(SubmissionError, match="needs a revision"):
        parse_source("https://github.com/owner/repo")
    with pytest.raises(SubmissionError, match="not 7 to 40 hex"):
        parse_source("https://github.com/owner/repo@main")


def test_refused_before_git_runs(settings, monkeypatch):
    """Nothing is executed for a refused URL: git is not even looked up."""
    monkeypatch.setenv("PATH", "/nonexistent")
    for url in ("file:///etc/passwd", "https://127.0.0.1/x", "https://user:pw@host.example/x"):
        with pytest.raises(SubmissionError):
            safe_clone(settings, url, "abcdef0")


@pytest.fixture(scope="module")
def https_git(tmp_path_factory):
    """A dumb-HTTP git server over TLS on loopback, with a hostile repository on it."""
    root = tmp_path_factory.mktemp("git-https")
    work = root / "work"
    work.mkdir()
    (work / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "8"\n')
    (work / "payload.txt").write_text("first\n")
    os.symlink("/etc/passwd", work / "leak")  # must arrive as a plain file, not a link
    (work / ".gitmodules").write_text(
        '[submodule "evil"]\n\tpath = evil\n\turl = file:///etc\n')
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (work / "model.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 1\n")
    first = commit_tree(work, "first")
    (work / "payload.txt").write_text("second\n")
    (work / "big.dat").write_bytes(os.urandom(17 * 2**20))
    big = commit_tree(work, "too big")
    server = HttpsGitServer(root)
    url = server.publish(work, "repo")
    yield {"url": url, "first": first, "big": big, "cert": server.cert}
    server.close()


@pytest.fixture
def clone_settings(settings, https_git, tmp_path):
    return settings.model_copy(update={
        "data_dir": tmp_path, "allow_private_hosts": True, "extra_ca_bundle": https_git["cert"]})


def test_https_clone_at_short_revision_is_inert(clone_settings, https_git):
    checkout = safe_clone(clone_settings, https_git["url"], https_git["first"][:7])
    assert (checkout / "payload.txt").read_text() == "first\n"
    assert not (checkout / ".git").exists(), ".git is not part of the submission"
    leak = checkout / "leak"
    assert not leak.is_symlink() and leak.read_text() == "/etc/passwd"
    assert not (checkout / "evil").exists(), "submodules are never fetched"
    assert (checkout / "model.bin").read_text().startswith("version https://git-lfs"), "no LFS smudge"
    # A second call is a cache hit and returns the same checkout.
    assert safe_clone(clone_settings, https_git["url"], https_git["first"][:7]) == checkout


def test_clone_over_code_limit_is_refused(clone_settings, https_git):
    with pytest.raises(SubmissionError, match="over the 16 MiB limit"):
        safe_clone(clone_settings, https_git["url"], https_git["big"][:7])


def test_clone_download_cap_stops_git(clone_settings, https_git):
    capped = clone_settings.model_copy(update={"clone_max_bytes": 64 * 1024})
    with pytest.raises(SubmissionError, match="larger than 0.06 MiB to download"):
        safe_clone(capped, https_git["url"], https_git["big"][:7])


def test_missing_revision_is_reported(clone_settings, https_git):
    with pytest.raises(SubmissionError, match="revision abcdef1 does not exist"):
        safe_clone(clone_settings, https_git["url"], "abcdef1")


def test_untrusted_certificate_fails_clearly(settings, https_git, tmp_path):
    # TLS that does not verify is the validator's network (e.g. a proxy's CA not configured): retried.
    no_ca = settings.model_copy(update={"data_dir": tmp_path, "allow_private_hosts": True})
    with pytest.raises(InfrastructureError, match="(?s)git could not reach the repository host: .*certificate"):
        safe_clone(no_ca, https_git["url"], https_git["first"][:7])


def test_unreachable_host_is_not_the_miners_fault(clone_settings):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{probe.getsockname()[1]}/owner/repo.git"
    with pytest.raises(InfrastructureError, match="(?s)git could not reach the repository host: .*Failed to connect"):
        safe_clone(clone_settings, url, "abcdef1")
