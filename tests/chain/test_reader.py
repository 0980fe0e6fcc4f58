"""Reading commitments record by record: unknown and inactive contests are skipped one at a
time (each with its reason), the rest kept; a later record for the same contest wins (SN39)."""

from __future__ import annotations

import bittensor as bt

from chain.commitments import Commitment, CommitmentRecord, encode
from chain.reader import read_submissions
from edgemaxx.blacklist import Blacklist
from tests.chain.fake_chain import FakeChain

NETUID = 39
BASELINE_URL = "https://github.com/womboai/flux-schnell-edge-inference"


def _record(repository: str, revision: str, contest: int = 0) -> CommitmentRecord:
    return CommitmentRecord(provider="github.com", repository=repository, revision=revision, contest=contest)


def _read(chain: FakeChain, active: set[str] | None = None):
    return read_submissions(bt.Subtensor(substrate=chain), NETUID,
                            active_contests={"flux-4090"} if active is None else active,
                            blacklist=Blacklist(), baseline_urls={BASELINE_URL})


def test_unknown_contest_records_are_skipped_one_by_one():
    chain = FakeChain(NETUID)
    block = chain.head - 10
    for hotkey in ("hk-mixed", "hk-only-unknown", "hk-twice", "hk-baseline-then-own"):
        chain.register(hotkey, f"cold-{hotkey}")
    chain.commit("hk-mixed", encode(Commitment(records=[
        _record("alice/flux", "1111111", contest=7), _record("alice/flux", "2222222"),
        _record("alice/other", "3333333", contest=513)])), block)
    chain.commit("hk-only-unknown", encode(Commitment(records=[_record("bob/flux", "4444444", contest=3)])),
                 block)
    chain.commit("hk-twice", encode(Commitment(records=[_record("carol/flux", "5555555"),
                                                        _record("carol/flux2", "6666666")])), block)
    chain.commit("hk-baseline-then-own", encode(Commitment(records=[
        _record("womboai/flux-schnell-edge-inference", "2cff82c"), _record("dave/flux", "7777777")])), block)

    report = _read(chain)

    kept = {s.hotkey: s.record for s in report.submissions}
    # The valid record survives its unknown neighbours (SN39 dropped the whole hotkey here).
    assert kept["hk-mixed"] == _record("alice/flux", "2222222")
    assert report.skipped["hk-mixed"] == ["record 1: contest 7 is unknown", "record 3: contest 513 is unknown"]
    assert "hk-mixed" not in report.dropped
    # Nothing left: dropped, saying why.
    assert "hk-only-unknown" not in kept
    assert report.dropped["hk-only-unknown"] == "contest 3 is unknown"
    # Two records for one contest: the later one wins, as on SN39.
    assert kept["hk-twice"] == _record("carol/flux2", "6666666")
    assert report.skipped["hk-twice"] == ["record 1: replaced by record 2"]
    assert kept["hk-baseline-then-own"] == _record("dave/flux", "7777777")
    assert report.skipped["hk-baseline-then-own"] == ["record 1: submits the baseline itself"]
    assert report.rejected == {}


def test_inactive_contest_records_are_skipped():
    chain = FakeChain(NETUID)
    chain.register("hk-a", "cold-a")
    chain.commit("hk-a", encode(Commitment(records=[_record("alice/flux", "1111111")])), chain.head - 1)
    report = _read(chain, active=set())
    assert report.submissions == []
    assert report.dropped["hk-a"] == "contest 0 (flux-4090) is not active"
