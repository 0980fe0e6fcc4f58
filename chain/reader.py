"""Reading submissions from chain: commitments + metagraph → what each contest should benchmark."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from chain.commitments import CommitmentError, CommitmentRecord, decode
from edgemaxx.blacklist import Blacklist
from scoring.weights import repository_key

log = logging.getLogger(__name__)


class ChainSubmission(BaseModel):
    hotkey: str
    uid: int
    coldkey: str
    block: int
    record: CommitmentRecord
    contest: str


class ReadReport(BaseModel):
    block: int
    submissions: list[ChainSubmission] = Field(default_factory=list)
    rejected: dict[str, str] = Field(default_factory=dict)  # hotkey → why the commitment is unreadable
    dropped: dict[str, str] = Field(default_factory=dict)  # hotkey → why it is not benchmarked
    # hotkey → records of its commitment left out, one by one ("record 2: contest 9 is unknown"),
    # whether or not another record of it is benchmarked.
    skipped: dict[str, list[str]] = Field(default_factory=dict)
    registered: dict[str, int] = Field(default_factory=dict)  # hotkey → uid


def commitment_bytes(fields: list) -> bytes:
    """The raw bytes of a commitment's Raw* fields, in order."""
    raw = b""
    for entry in fields or []:
        items = entry.items() if isinstance(entry, dict) else []
        for variant, value in items:
            if variant.startswith("Raw") and isinstance(value, str):
                raw += bytes.fromhex(value.removeprefix("0x"))
            elif variant.startswith("Raw") and isinstance(value, bytes | bytearray):
                raw += bytes(value)
    return raw


def read_submissions(sub: Any, netuid: int, *, active_contests: set[str], blacklist: Blacklist,
                     baseline_urls: set[str], block: int | None = None) -> ReadReport:
    """Every commitment of the subnet, decoded and filtered, duplicates resolved by block."""
    block = block if block is not None else sub.block
    metagraph = sub.subnets.metagraph(netuid, block=block, commitments=False)
    neurons = {n.hotkey: n for n in (metagraph.neurons if metagraph else [])}
    report = ReadReport(block=block, registered={h: n.uid for h, n in neurons.items()})
    baselines = {repository_key(u) for u in baseline_urls}
    candidates: list[ChainSubmission] = []
    for hotkey, commitment in sub.subnets.commitments(netuid, block=block).items():
        neuron = neurons.get(hotkey)
        if neuron is None:
            report.dropped[hotkey] = "not registered"
            continue
        try:
            decoded = decode(commitment_bytes(commitment.fields))
        except CommitmentError as exc:
            report.rejected[hotkey] = exc.reason
            continue
        if hotkey in blacklist.hotkeys or neuron.coldkey in blacklist.coldkeys:
            report.dropped[hotkey] = "blacklisted"
            continue
        kept: dict[str, tuple[int, CommitmentRecord]] = {}  # contest → its last valid record
        skipped: list[str] = []
        for index, record in enumerate(decoded.records, start=1):
            contest = record.contest_id
            if contest is None:
                skipped.append(f"record {index}: contest {record.contest} is unknown")
            elif contest not in active_contests:
                skipped.append(f"record {index}: contest {record.contest} ({contest}) is not active")
            elif repository_key(record.url) in baselines:
                skipped.append(f"record {index}: submits the baseline itself")
            else:
                if contest in kept:  # as on SN39, a later record for the same contest wins
                    skipped.append(f"record {kept[contest][0]}: replaced by record {index}")
                kept[contest] = (index, record)
        if skipped:
            report.skipped[hotkey] = skipped
            log.info("commitment of %s: %s", hotkey, "; ".join(skipped))
        if not kept:
            single = len(decoded.records) == 1
            report.dropped[hotkey] = "; ".join(s.split(": ", 1)[1] if single else s for s in skipped)
        for contest, (_index, record) in kept.items():
            candidates.append(ChainSubmission(hotkey=hotkey, uid=neuron.uid, coldkey=neuron.coldkey,
                                              block=commitment.block, record=record, contest=contest))
    # Same repository or same revision within a contest: the earliest commitment wins.
    seen: dict[tuple[str, str], ChainSubmission] = {}
    for candidate in sorted(candidates, key=lambda c: (c.block, c.uid)):
        keys = [(candidate.contest, "repo:" + repository_key(candidate.record.url)),
                (candidate.contest, "rev:" + candidate.record.revision)]
        earlier = next((seen[k] for k in keys if k in seen), None)
        if earlier is not None:
            report.dropped[candidate.hotkey] = f"duplicate of {earlier.hotkey} (block {earlier.block})"
            continue
        for key in keys:
            seen[key] = candidate
        report.submissions.append(candidate)
    return report
