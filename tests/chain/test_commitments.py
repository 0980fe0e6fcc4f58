"""The SN39 commitment codec: round trips, every rejection reason, and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.commitments import (
    Commitment,
    CommitmentError,
    CommitmentRecord,
    decode,
    encode,
    record_from_url,
)

BASELINE = CommitmentRecord(provider="github.com", repository="womboai/flux-schnell-edge-inference",
                            revision="2cff82c", contest=0)


def test_known_bytes_decode():
    # Built by hand from the spec: version, provider, repository, revision, contest.
    raw = (struct.pack(">H", 8) + bytes([10]) + b"github.com"
           + bytes([len(BASELINE.repository)]) + BASELINE.repository.encode() + b"2cff82c"
           + struct.pack(">H", 0))
    commitment = decode(raw)
    assert commitment.records == [BASELINE]
    assert commitment.records[0].url == "https://github.com/womboai/flux-schnell-edge-inference"
    assert encode(commitment) == raw


def test_a_record_for_an_unknown_contest_decodes():
    """Skipping it is the reader's job, record by record; the commitment itself is readable."""
    unknown = BASELINE.model_copy(update={"contest": 9, "revision": "abcdef0"})
    commitment = decode(encode(Commitment(records=[unknown, BASELINE])))
    assert commitment.records == [unknown, BASELINE]
    assert [r.contest_id for r in commitment.records] == [None, "flux-4090"]


def test_round_trip_several_records():
    commitment = Commitment(records=[BASELINE, BASELINE.model_copy(update={"revision": "abcdef0"})])
    assert decode(encode(commitment)) == commitment


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "no spec version"),
        (b"\x00", "no spec version"),
        (struct.pack(">H", 7) + b"\x01a", "spec version 7, expected 8"),
        (struct.pack(">H", 8), "no submission records"),
        (struct.pack(">H", 8) + b"\x05git", "truncated: record 1 provider needs 5 bytes"),
        (struct.pack(">H", 8) + b"\x02\xff\xfe", "not valid UTF-8"),
        (struct.pack(">H", 8) + b"\x01a\x03a/b" + b"xyz1234" + b"\x00\x00", "not 7 hex characters"),
        (struct.pack(">H", 8) + b"\x01a\x03a/b" + b"abc", "revision needs 7 bytes"),
        (struct.pack(">H", 8) + b"\x01a\x03a/b" + b"abcdef0" + b"\x00", "contest id missing"),
        (struct.pack(">H", 8) + b"\x01a\x03abc" + b"abcdef0" + b"\x00\x00", "is not owner/repo"),
        (struct.pack(">H", 8) + b"\x03a b\x03a/b" + b"abcdef0" + b"\x00\x00", "is not a host name"),
        (struct.pack(">H", 8) + b"\x00", "provider is empty"),
        (struct.pack(">H", 8) + b"\x01" * 127, "over the 128-byte limit"),
    ],
)
def test_rejections_have_reasons(raw, reason):
    with pytest.raises(CommitmentError) as info:
        decode(raw)
    assert reason in info.value.reason


@given(st.binary(max_size=200))
def test_decoder_only_raises_its_own_error(raw):
    try:
        commitment = decode(raw)
    except CommitmentError as exc:
        assert exc.reason
    else:
        # Whatever decodes re-encodes to the same bytes (provider and revision lower-cased).
        again = encode(commitment)
        assert len(again) == len(raw)
        assert decode(again) == commitment


records = st.builds(
    CommitmentRecord,
    provider=st.from_regex(r"[a-z0-9]{1,20}\.(com|org)", fullmatch=True),
    repository=st.from_regex(r"[A-Za-z0-9_-]{1,20}/[A-Za-z0-9_.-]{1,20}", fullmatch=True),
    revision=st.from_regex(r"[0-9a-f]{7}", fullmatch=True),
    contest=st.just(0),
)


@given(st.lists(records, min_size=1, max_size=3))
def test_round_trip_property(items):
    commitment = Commitment(records=items)
    try:
        raw = encode(commitment)
    except CommitmentError as exc:
        assert "128-byte limit" in exc.reason
        return
    assert len(raw) <= 128
    assert decode(raw) == commitment


def test_record_from_url():
    record = record_from_url("https://github.com/womboai/flux-schnell-edge-inference.git", "2CFF82Cdeadbeef",
                             "flux-4090")
    assert record == BASELINE
    for url, reason in (("http://github.com/a/b", "not an https"), ("https://github.com/a", "owner/repo")):
        with pytest.raises(CommitmentError, match=reason):
            record_from_url(url, "abcdef0", "flux-4090")
    with pytest.raises(CommitmentError, match="unknown contest"):
        record_from_url("https://github.com/a/b", "abcdef0", "nope")
