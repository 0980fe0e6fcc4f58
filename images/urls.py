"""Validating a submission's repository URL before anything is fetched."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from edgemaxx.errors import SubmissionError

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+$")
_BLOCKED_NAMES = ("localhost", "localhost.localdomain")
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def _ip_is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def validate_repository_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """Return the normalised https URL, or raise SubmissionError saying why it is refused.

    Refuses other schemes (file://, ssh://, git://, ext::...), credentials in the URL, and hosts
    that are IP literals or names in private, loopback or link-local ranges.
    """
    if "::" in url.split("/", 1)[0]:
        raise SubmissionError(f"repository URL {url!r} uses a git transport helper; only https:// is allowed")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SubmissionError(
            f"repository URL {url!r} uses scheme {parts.scheme or '(none)'!r}; only https:// is allowed"
        )
    if parts.username or parts.password or "@" in parts.netloc:
        raise SubmissionError("repository URL must not contain credentials")
    if parts.query or parts.fragment:
        raise SubmissionError("repository URL must not have a query or fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise SubmissionError(f"repository URL {url!r} has no host")
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is None and not _HOST_RE.match(host):
        raise SubmissionError(f"repository host {host!r} is not a valid host name")
    if not allow_private:
        if literal is not None and _ip_is_private(literal):
            raise SubmissionError(f"repository host {host} is a private or local address")
        if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
            raise SubmissionError(f"repository host {host} is a local name")
        if literal is None and resolve:
            _refuse_private_resolution(host, parts.port or 443)
    path = parts.path.rstrip("/")
    if not path or path == "/":
        raise SubmissionError(f"repository URL {url!r} has no repository path")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return f"https://{netloc}{path}"


def _refuse_private_resolution(host: str, port: int) -> None:
    # A public-looking name that resolves to a private address is refused the same way; a name
    # that does not resolve at all is left for git to report.
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _ip_is_private(address):
            raise SubmissionError(f"repository host {host} resolves to a private address {address}")
