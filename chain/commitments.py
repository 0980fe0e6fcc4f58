"""The SN39 commitment wire format, so existing miners' commitments are read unchanged.

    u16 big-endian spec version (8)
    then one or more records:
        provider   u8 length + UTF-8   (e.g. "github.com")
        repository u8 length + UTF-8   ("owner/repo")
        revision   7 ASCII hex chars   (no length byte)
        contest    u16 big-endian      (contest number)
    at most 128 bytes in all
"""

from __future__ import annotations

import re
import struct

from pydantic import BaseModel, Field

SPEC_VERSION = 8
MAX_BYTES = 128
REVISION_LENGTH = 7

# Contest numbers on chain ↔ contest ids here.
CONTEST_IDS: dict[int, str] = {0: "flux-4090"}
CONTEST_NUMBERS = {v: k for k, v in CONTEST_IDS.items()}

_HEX = re.compile(rb"^[0-9a-fA-F]{7}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PROVIDER = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?$")


class CommitmentError(ValueError):
    """A commitment that cannot be read, with the reason a miner can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommitmentRecord(BaseModel):
    provider: str = Field(min_length=1, max_length=255)
    repository: str = Field(min_length=1, max_length=255)  # owner/repo
    revision: str = Field(pattern=r"^[0-9a-f]{7}$")
    contest: int = Field(ge=0, le=0xFFFF)

    @property
    def url(self) -> str:
        return f"https://{self.provider}/{self.repository}"

    @property
    def contest_id(self) -> str | None:
        return CONTEST_IDS.get(self.contest)


class Commitment(BaseModel):
    spec_version: int = SPEC_VERSION
    records: list[CommitmentRecord]


def _string(data: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset >= len(data):
        raise CommitmentError(f"truncated: {what} length missing at byte {offset}")
    length = data[offset]
    start, end = offset + 1, offset + 1 + length
    if length == 0:
        raise CommitmentError(f"{what} is empty (byte {offset})")
    if end > len(data):
        raise CommitmentError(f"truncated: {what} needs {length} bytes at byte {start}, "
                              f"{len(data) - start} left")
    try:
        return data[start:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise CommitmentError(f"{what} at byte {start} is not valid UTF-8") from exc


def decode(data: bytes) -> Commitment:
    """Parse a raw commitment; raises CommitmentError (only) with a reason.

    A record for a contest number this validator does not know is kept (its `contest_id` is
    None): the reader skips such records one by one and keeps the others, where SN39's
    validator dropped the whole commitment."""
    if not isinstance(data, bytes | bytearray):
        raise CommitmentError(f"commitment is {type(data).__name__}, not bytes")
    data = bytes(data)
    if len(data) > MAX_BYTES:
        raise CommitmentError(f"commitment is {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    if len(data) < 2:
        raise CommitmentError("truncated: no spec version")
    (version,) = struct.unpack_from(">H", data, 0)
    if version != SPEC_VERSION:
        raise CommitmentError(f"spec version {version}, expected {SPEC_VERSION}")
    offset = 2
    records: list[CommitmentRecord] = []
    if offset == len(data):
        raise CommitmentError("no submission records after the spec version")
    while offset < len(data):
        index = len(records) + 1
        provider, offset = _string(data, offset, f"record {index} provider")
        repository, offset = _string(data, offset, f"record {index} repository")
        revision_bytes = data[offset:offset + REVISION_LENGTH]
        if len(revision_bytes) < REVISION_LENGTH:
            raise CommitmentError(f"truncated: record {index} revision needs {REVISION_LENGTH} bytes")
        if not _HEX.match(revision_bytes):
            raise CommitmentError(f"record {index} revision {revision_bytes!r} is not 7 hex characters")
        offset += REVISION_LENGTH
        if offset + 2 > len(data):
            raise CommitmentError(f"truncated: record {index} contest id missing")
        (contest,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if not _PROVIDER.match(provider):
            raise CommitmentError(f"record {index} provider {provider!r} is not a host name")
        if not _REPO.match(repository):
            raise CommitmentError(f"record {index} repository {repository!r} is not owner/repo")
        records.append(CommitmentRecord(provider=provider.lower(), repository=repository,
                                        revision=revision_bytes.decode().lower(), contest=contest))
    return Commitment(spec_version=version, records=records)


def encode(commitment: Commitment) -> bytes:
    out = bytearray(struct.pack(">H", commitment.spec_version))
    for record in commitment.records:
        for value, what in ((record.provider, "provider"), (record.repository, "repository")):
            raw = value.encode("utf-8")
            if not 0 < len(raw) < 256:
                raise CommitmentError(f"{what} must be 1 to 255 bytes")
            out += bytes([len(raw)]) + raw
        out += record.revision.encode("ascii")
        out += struct.pack(">H", record.contest)
    if len(out) > MAX_BYTES:
        raise CommitmentError(f"commitment would be {len(out)} bytes, over the {MAX_BYTES}-byte limit")
    return bytes(out)


def record_from_url(url: str, revision: str, contest_id: str) -> CommitmentRecord:
    """Build a record from `https://host/owner/repo`, a revision and a contest id."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CommitmentError(f"{url!r} is not an https repository URL")
    repository = parts.path.strip("/").removesuffix(".git")
    if not _REPO.match(repository):
        raise CommitmentError(f"{url!r} does not end in owner/repo")
    if contest_id not in CONTEST_NUMBERS:
        raise CommitmentError(f"unknown contest {contest_id!r} (known: {', '.join(CONTEST_NUMBERS)})")
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", revision):
        raise CommitmentError(f"revision {revision!r} is not hex")
    provider = parts.hostname + (f":{parts.port}" if parts.port else "")
    return CommitmentRecord(provider=provider, repository=repository, revision=revision[:7].lower(),
                            contest=CONTEST_NUMBERS[contest_id])
