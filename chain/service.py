"""`edgemaxx chain`: read commitments, start contest runs on schedule, set weights; never die.

One iteration (`step`) reads the chain at its head, makes sure each active contest has its
current run (seeded by the first block at or after the scheduled start, ending by the next start
at the latest), queues new or changed submissions committed before that block, drops deregistered
hotkeys, settles runs whose deadline passed, and every weights interval sets weights from each
contest's last finished run, as persisted in Redis: a restarted service sets them again at its
first iteration. The interval stays well within the subnet's activity cutoff. It also keeps the
weights every validator of the subnet has set (the dashboard's subnet view). `run` repeats it
every `chain_poll_blocks`, surviving chain errors with reconnects and exponential backoff, until
its stop event is set (SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from chain.reader import ChainSubmission, read_submissions
from chain.schedule import first_block_at_or_after, next_run_start, run_start
from chain.subnet import read_subnet_weights
from edgemaxx.blacklist import load_blacklist
from edgemaxx.contest import Contest, load_contest
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import history, runs
from state.chain import (
    load_chain_status,
    load_subnet_weights,
    record_own_weights,
    save_chain_status,
    save_subnet_weights,
)
from state.records import ChainStatus, ContestRun, SubnetWeights, WeightsAttempt, WeightsSet
from worker import lifecycle, queues

log = logging.getLogger(__name__)

BLOCK_SECONDS = 12.0
# Weights are set at least this many times per activity cutoff: a refusal (rate limit, a node
# down) or two still leaves the validator active.
ATTEMPTS_PER_CUTOFF = 4


class ChainService:
    def __init__(self, settings: Settings, redis: Redis, connect: Callable[[], Any], wallet: Any, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redis = redis
        self.connect = connect
        self.wallet = wallet
        self.clock = clock
        self.sub: Any = None
        self.status = ChainStatus()
        # Not persisted on purpose: a restarted service sets weights at its first iteration.
        self.last_weights_block: int | None = None

    # ------------------------------------------------------------ one iteration

    def step(self) -> None:
        self._check_wallet()
        if self.status.last_set is None:
            # Restarted: when weights were last set stays known (the status is persisted).
            previous = load_chain_status(self.redis)
            self.status.last_set = previous.last_set if previous else None
        if self.sub is None:
            self.sub = self.connect()
        sub = self.sub
        head = sub.block
        blacklist = load_blacklist(self.settings.blacklist_file)
        contests = [load_contest(c) for c in self.settings.active_contests]
        report = read_submissions(
            sub, self.settings.netuid, active_contests={c.id for c in contests}, blacklist=blacklist,
            baseline_urls={c.baseline.repository for c in contests if c.baseline.repository}, block=head)
        self.status.block = head
        self.status.rejected, self.status.dropped = report.rejected, report.dropped
        self.status.submissions = len(report.submissions)
        for contest in contests:
            run = self._current_run(sub, contest, head)
            if run is None:
                continue
            self.status.runs[contest.id] = run.id
            if run.end is None:
                entries = [s for s in report.submissions
                           if s.contest == contest.id and run.block is not None and s.block < run.block]
                self._queue(run, entries)
                self._drop_deregistered(run, set(report.registered))
            self._settle(contest)
        self._maybe_set_weights(head, contests, report.registered)
        self._read_subnet_weights(head)
        self.status.error = ""
        self.status.consecutive_errors = 0
        self._publish()

    def _current_run(self, sub: Any, contest: Contest, head: int) -> ContestRun | None:
        start = run_start(contest, dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        start_block = first_block_at_or_after(
            lambda n: int(sub.block_info(n).timestamp.timestamp() * 1000), head, int(start.timestamp() * 1000))
        if start_block is None:
            return None
        seed = sub.block_info(start_block).hash
        ends_by = next_run_start(contest, start).timestamp()
        return queues.start_run(self.redis, self.settings, contest, seed, block=start_block,
                                started_at=self.clock(), ends_by=ends_by)

    def _settle(self, contest: Contest) -> None:
        """End the contest's recent runs whose deadline passed (workers and the scheduled
        `finish_run` job do it too; this is the path that needs no worker at all)."""
        for run_id in history.run_ids(self.redis, contest.id, 0, 3)[0]:
            lifecycle.settle(self.redis, run_id, now=self.clock())

    def _queue(self, run: ContestRun, entries: list[ChainSubmission]) -> None:
        for entry in entries:
            source = SubmissionSource(kind=SourceKind.GIT, url=entry.record.url, revision=entry.record.revision)
            queues.submit(self.redis, self.settings, run, entry.hotkey, source, uid=entry.uid, block=entry.block)

    def _drop_deregistered(self, run: ContestRun, registered: set[str]) -> None:
        for record in runs.records(self.redis, run.id):
            if record.hotkey not in registered:
                runs.drop_submission(self.redis, run.id, record.hotkey)
                log.info("dropped %s from %s: deregistered", record.hotkey, run.id)

    def _check_wallet(self) -> None:
        """Without a readable hotkey the service still reads the chain and runs contests; it says why
        it sets no weights (status and log, once per change) instead of failing at the first attempt."""
        try:
            self.wallet.hotkey  # noqa: B018 - loading the keyfile is the check
            problem = ""
        except Exception as exc:  # noqa: BLE001 - FileNotFoundError, KeyFileError, PermissionError, ...
            wallet = f"{self.settings.wallet_name}/{self.settings.wallet_hotkey}"
            problem = f"wallet {wallet} unusable, no weights can be set: {exc}"
        if problem != self.status.wallet_error:
            if problem:
                log.error("%s", problem)
            else:
                log.info("wallet %s/%s loaded", self.settings.wallet_name, self.settings.wallet_hotkey)
        self.status.wallet_error = problem

    # ------------------------------------------------------------ weights

    def _activity_cutoff(self) -> tuple[int, str]:
        """Blocks without weights after which this validator counts as inactive: from the chain
        (ActivityCutoffFactorMilli × Tempo / 1000 supersedes the absolute ActivityCutoff), else the
        setting."""
        import bittensor as bt

        storage, netuid = bt.storage.SubtensorModule, [self.settings.netuid]
        factor = self.sub.query(storage.ActivityCutoffFactorMilli, netuid)
        tempo = self.sub.query(storage.Tempo, netuid)
        if factor and tempo:
            return max(1, int(factor) * int(tempo) // 1000), "chain: ActivityCutoffFactorMilli x Tempo"
        absolute = self.sub.query(storage.ActivityCutoff, netuid)
        if absolute:
            return int(absolute), "chain: ActivityCutoff"
        return self.settings.activity_cutoff_blocks, "settings: EDGEMAXX_ACTIVITY_CUTOFF_BLOCKS"

    def _interval(self) -> int:
        cutoff, source = self._activity_cutoff()
        self.status.activity_cutoff_blocks, self.status.activity_cutoff_source = cutoff, source
        interval = max(1, min(self.settings.weights_interval_blocks, cutoff // ATTEMPTS_PER_CUTOFF))
        self.status.weights_interval_blocks = interval
        return interval

    @staticmethod
    def _current_uids(run: ContestRun, registered: dict[str, int]) -> dict[int, float]:
        """The run's frozen weights on today's uids: a hotkey that deregistered earns nothing (its
        uid may be someone else's now); a weight without a hotkey (the contest's no-winner uid) stays."""
        assert run.end is not None
        out: dict[int, float] = {}
        for uid, weight in run.end.weights.items():
            hotkey = run.end.hotkeys.get(uid)
            now_uid = registered.get(hotkey) if hotkey is not None else (uid if uid >= 0 else None)
            if now_uid is not None:
                out[now_uid] = out.get(now_uid, 0.0) + weight
        return out

    def _attempt(self, head: int, ok: bool, message: str, run_ids: list[str], **extra: Any) -> WeightsAttempt:
        attempt = WeightsAttempt(block=head, at=self.clock(), ok=ok, message=message,
                                 run_id=",".join(run_ids) or None, **extra)
        self.status.last_weights = attempt
        return attempt

    def _maybe_set_weights(self, head: int, contests: list[Contest], registered: dict[str, int]) -> None:
        import bittensor as bt

        interval = self.status.weights_interval_blocks
        if interval is None or self.last_weights_block is None or head - self.last_weights_block >= interval:
            interval = self._interval()  # the cutoff is read again before each attempt
        if self.last_weights_block is not None and head - self.last_weights_block < interval:
            self._schedule_next(head, self.last_weights_block + interval)
            return
        # Until weights are set, every iteration tries again.
        self._schedule_next(head, head + self.settings.chain_poll_blocks)
        weights: dict[int, float] = {}
        sources: list[tuple[ContestRun, dict[int, float]]] = []
        for contest in contests:
            run = history.weights_source(self.redis, contest.id)
            if run is None:
                continue
            share = self._current_uids(run, registered)
            sources.append((run, share))
            for uid, weight in share.items():
                weights[uid] = weights.get(uid, 0.0) + weight / len(contests)
        run_ids = [run.id for run, _ in sources]
        if not sources:
            self._attempt(head, False, "no finished run with a baseline and anyone to weight yet; no weights set",
                          run_ids)
            return
        if not weights:
            self._attempt(head, False, "nobody the finished run weights is registered any more", run_ids)
            return
        if self.status.wallet_error:
            self._attempt(head, False, self.status.wallet_error, run_ids, weights=weights)
            return
        version_key = self.settings.version_key
        if version_key is None:
            raw = self.sub.query(bt.storage.SubtensorModule.WeightsVersionKey, [self.settings.netuid])
            version_key = int(raw or 0)
        try:
            result = self.sub.execute(bt.SetWeights(self.settings.netuid, weights=weights, version_key=version_key),
                                      self.wallet)
        except bt.ChainError as exc:
            # Rate limit, not registered, ...: say so and try again at the next iteration.
            self._attempt(head, False, str(exc), run_ids, version_key=version_key, weights=weights)
            log.warning("setting weights failed: %s", exc)
            return
        attempt = self._attempt(head, bool(result.success), result.message or "", run_ids,
                                version_key=version_key, weights=weights)
        if not result.success:
            log.warning("setting weights failed: %s", attempt.message)
            return
        self.status.last_set = attempt
        record_own_weights(self.redis, attempt)
        self.last_weights_block = head
        self._schedule_next(head, head + interval)
        for run, share in sources:
            history.record_weights_set(self.redis, run.id, WeightsSet(block=head, at=attempt.at, weights=share))
        log.info("set weights at block %d from %s: %s", head, ", ".join(run_ids), weights)

    def _read_subnet_weights(self, head: int) -> None:
        """What every validator has set, for the dashboard: a failed read keeps the previous matrix
        with the reason, and never stops the loop or the weights this validator sets."""
        try:
            found = read_subnet_weights(self.sub, self.settings.netuid, head)
            found.own_hotkey = self.wallet.hotkey.ss58_address
            save_subnet_weights(self.redis, found)
        except Exception as exc:  # noqa: BLE001 - the dashboard's view must not stop the service
            log.warning("reading the subnet's weights failed: %s", exc)
            kept = load_subnet_weights(self.redis) or SubnetWeights(netuid=self.settings.netuid, block=head)
            kept.error = f"{type(exc).__name__}: {exc}"
            save_subnet_weights(self.redis, kept)

    def _schedule_next(self, head: int, block: int) -> None:
        self.status.next_weights_block = block
        self.status.next_weights_at = self.clock() + max(0, block - head) * BLOCK_SECONDS

    # ------------------------------------------------------------ the loop

    def _publish(self) -> None:
        self.status.updated_at = self.clock()
        save_chain_status(self.redis, self.status)

    def run(self, stop: threading.Event | None = None, *, sleep: Callable[[float], object] | None = None,
            max_iterations: int | None = None, block_seconds: float = BLOCK_SECONDS) -> None:
        """Iterate until `stop` is set; a stop interrupts the wait between iterations at once."""
        stop = stop or threading.Event()
        sleep = sleep or stop.wait
        iterations = 0
        while not stop.is_set() and (max_iterations is None or iterations < max_iterations):
            iterations += 1
            try:
                self.step()
                delay = self.settings.chain_poll_blocks * block_seconds
            except Exception as exc:  # noqa: BLE001 - the supervisor loop must outlive any chain error
                self.status.consecutive_errors += 1
                self.status.error = f"{type(exc).__name__}: {exc}"
                log.warning("chain iteration failed (%d in a row): %s", self.status.consecutive_errors, exc)
                self._reconnect()
                delay = min(self.settings.chain_backoff_max_s, 2.0 ** self.status.consecutive_errors)
                try:
                    self._publish()
                except Exception as publish_exc:  # noqa: BLE001 - Redis down: one line, the loop goes on
                    log.warning("could not publish chain status: %s", publish_exc)
            sleep(delay)

    def _reconnect(self) -> None:
        if self.sub is not None:
            try:
                self.sub.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass
        self.sub = None

