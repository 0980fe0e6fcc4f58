"""The contest schedule: when a run starts, and which block seeds its inputs.

Every validator derives the same seed with no coordination: the hash of the first block whose
timestamp is at or after the run's start time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from edgemaxx.contest import Contest


def run_start(contest: Contest, now: dt.datetime) -> dt.datetime:
    """The latest daily start at or before `now`, in UTC."""
    return contest.schedule.latest_start(now)


def next_run_start(contest: Contest, now: dt.datetime) -> dt.datetime:
    """The next daily start after `now`: the current run must have ended by then."""
    return contest.schedule.next_start(now)


def first_block_at_or_after(timestamp_ms: Callable[[int], int], head: int, when_ms: int) -> int | None:
    """The first block whose timestamp is ≥ `when_ms`; None if the head is still earlier.

    Gallops back from the head, then bisects: O(log distance) timestamp reads.
    """
    if timestamp_ms(head) < when_ms:
        return None
    step, high = 1, head
    low = head - step
    while low > 0 and timestamp_ms(low) >= when_ms:
        high = low
        step *= 2
        low = max(0, head - step)
    if low <= 0 and timestamp_ms(0) >= when_ms:
        return 0
    # Invariant: timestamp(low) < when ≤ timestamp(high).
    while high - low > 1:
        middle = (low + high) // 2
        if timestamp_ms(middle) >= when_ms:
            high = middle
        else:
            low = middle
    return high
