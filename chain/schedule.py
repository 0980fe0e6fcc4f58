"""The contest schedule: when a run starts, and which block seeds its inputs.

Every validator derives the same seed with no coordination: the hash of the first block whose
timestamp is at or after the run's start time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from edgemaxx.contest import Contest


def run_start(contest: Contest, now: dt.datetime) -> dt.datetime:
    """The latest daily start at or before `now`, in UTC."""
    zone = ZoneInfo(contest.schedule.timezone)
    hour, minute = (int(part) for part in contest.schedule.daily_at.split(":"))
    local = now.astimezone(zone)
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if start > local:
        start = (local - dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        # Re-anchor in the zone: the day before may have another UTC offset (DST).
        start = dt.datetime(start.year, start.month, start.day, hour, minute, tzinfo=zone)
    return start.astimezone(dt.UTC)


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
