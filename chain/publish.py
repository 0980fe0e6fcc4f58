"""The miner's side: check a revision is pushed, and publish the commitment with the hotkey."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from edgemaxx.errors import SubmissionError


def remote_revisions(url: str, *, timeout_s: float = 60.0, ca_bundle: str | None = None) -> dict[str, str]:
    """`git ls-remote URL`: full commit → ref, for every branch and tag tip."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}
    if ca_bundle:
        env["GIT_SSL_CAINFO"] = ca_bundle
    try:
        result = subprocess.run(["git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                                 "ls-remote", "--", url], capture_output=True, text=True, timeout=timeout_s,
                                env=env)
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError(f"git ls-remote {url} timed out") from exc
    if result.returncode != 0:
        raise SubmissionError(f"git ls-remote {url} failed: {result.stderr.strip()[-500:]}")
    refs: dict[str, str] = {}
    for line in result.stdout.splitlines():
        commit, _, ref = line.partition("\t")
        refs.setdefault(commit, ref.removesuffix("^{}"))
    return refs


def check_revision(url: str, revision: str, *, ca_bundle: str | None = None) -> tuple[str, str]:
    """The full commit and a ref for `revision`; SubmissionError if no branch or tag points at it."""
    matches = [(commit, ref) for commit, ref in remote_revisions(url, ca_bundle=ca_bundle).items()
               if commit.startswith(revision.lower())]
    if not matches:
        raise SubmissionError(f"revision {revision} is not the tip of any branch or tag of {url}: "
                              "push it (or tag it) so validators can fetch it")
    if len({commit for commit, _ in matches}) > 1:
        raise SubmissionError(f"revision {revision} is ambiguous in {url}; give more characters")
    return matches[0]


def publish_commitment(sub: Any, wallet: Any, netuid: int, data: bytes) -> Any:
    """Publish raw commitment bytes (≤ 128) as one Raw field, signed by the hotkey."""
    import bittensor as bt

    call = bt.calls.Commitments.set_commitment(netuid=netuid, info={"fields": [[{f"Raw{len(data)}": data}]]})
    return sub.submit_call(call, wallet, signer="hotkey")
