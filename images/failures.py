"""Whose fault a failed environment build is: the network's, the disk's or Docker's (ours: retry),
or the lock's (the miner's: invalid, with the part of the build log that says why)."""

from __future__ import annotations

import re

from edgemaxx.errors import InfrastructureError, SubmissionError

# A locked file that is not what the lock says it is: the lock is wrong, whatever else happened.
_LOCK_WRONG = re.compile(r"Hash mismatch for|hash mismatch", re.IGNORECASE)

# Reaching PyPI, an index, a git host or the Python downloads failed, or the machine did.
_INFRASTRUCTURE = re.compile(
    r"Temporary failure in name resolution|dns error|failed to lookup address|Could not resolve host|"
    r"Name or service not known|Network is unreachable|No route to host|"
    r"Connection (?:reset|refused|aborted|timed out)|connection closed before message completed|"
    r"tcp connect error|error sending request for url|operation timed out|Read timed out|"
    r"timed out after|Failed to connect to|gnutls_handshake\(\) failed|"
    r"CERTIFICATE_VERIFY_FAILED|invalid peer certificate|SSL certificate problem|UnknownIssuer|"
    r"server certificate verification failed|"
    r"HTTP status server error|\b50[0234] (?:Internal Server Error|Bad Gateway|Service Unavailable|"
    r"Gateway Timeout)|429 Too Many Requests|"
    r"No space left on device|Disk quota exceeded|Read-only file system|"
    r"Cannot connect to the Docker daemon|failed to register layer|error creating overlay mount",
    re.IGNORECASE,
)

# The lines of a uv/git/pip log that say what went wrong, most useful first.
_HEADLINE = re.compile(r"^\s*(?:error:|fatal:|  cause:|Caused by:|  ×|ERROR:)", re.MULTILINE)


def summary(output: str) -> str:
    """The error lines of a build log (uv's `error:`/`cause:`, git's `fatal:`), at most a few."""
    lines = [line.strip() for line in output.splitlines() if _HEADLINE.match(line)]
    return "; ".join(dict.fromkeys(lines))[:600]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def infrastructure(output: str) -> bool:
    """Whether a failed command's output says the network, the disk or Docker failed."""
    return bool(_INFRASTRUCTURE.search(output)) and not _LOCK_WRONG.search(output)


def classify(output: str, what: str, tail_chars: int = 3000) -> Exception:
    """InfrastructureError (retried) or SubmissionError (with the log tail) for a failed build."""
    # Docker's classic builder paints a RUN's stderr red; uv colours its own.
    tail = _ANSI.sub("", output).strip()[-tail_chars:]
    headline = summary(tail) or (tail.splitlines() or ["no output"])[-1]
    if infrastructure(tail):
        return InfrastructureError(f"{what} failed on the validator's side: {headline}\n{tail}")
    if _LOCK_WRONG.search(tail):
        reason = f"a file does not match its hash in uv.lock: {headline}"
    else:
        reason = f"installing the locked dependencies failed: {headline}"
    return SubmissionError(f"{reason}\n{tail}", log_tail=tail)
