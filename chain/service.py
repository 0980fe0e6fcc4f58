"""`edgemaxx chain`: read commitments, start contest runs on schedule, set weights; never die.

One iteration (`step`) reads the chain at its head, makes sure each active contest has its
current run (seeded by the first block at or after the scheduled start), queues new or changed
submissions committed before that block, drops deregistered hotkeys, and every
`weights_interval_blocks` sets weights from the last finished run. `run` repeats it every
`chain_poll_blocks`, surviving chain errors with reconnects and exponential backoff.
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
from chain.schedule import first_block_at_or_after, run_start
from edgemaxx.blacklist import load_blacklist
from edgemaxx.contest import Contest, load_contest
from edgemaxx.models import SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from state import runs
from state.chain import save_chain_status
from state.records import ChainStatus, ContestRun, WeightsAttempt
from worker import queues
from worker.results import is_finished, run_weights

log = logging.getLogger(__name__)


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
        self.last_weights_block: int | None = None
        self.previous_runs: dict[str, ContestRun] = {}

    # ------------------------------------------------------------ one iteration

    def step(self) -> None:
        self._check_wallet()
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
            entries = [s for s in report.submissions
                       if s.contest == contest.id and run.block is not None and s.block < run.block]
            self._queue(run, entries)
            self._drop_deregistered(run, set(report.registered))
        self._maybe_set_weights(head, contests)
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
        current = runs.current_run(self.redis, contest.id)
        if current is not None and current.seed != seed:
            self.previous_runs[contest.id] = current
        return queues.start_run(self.redis, self.settings, contest, seed, block=start_block)

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

    def _finished_run(self, contest: Contest) -> ContestRun | None:
        """The newest run whose submissions are all final, with a baseline measured."""
        current = runs.current_run(self.redis, contest.id)
        for run in (current, self.previous_runs.get(contest.id)):
            if run is not None and is_finished(self.redis, run):
                return run
        return None

    def _maybe_set_weights(self, head: int, contests: list[Contest]) -> None:
        import bittensor as bt

        interval = self.settings.weights_interval_blocks
        if self.last_weights_block is not None and head - self.last_weights_block < interval:
            return
        weights: dict[int, float] = {}
        run_ids = []
        for contest in contests:
            run = self._finished_run(contest)
            if run is None:
                continue
            run_ids.append(run.id)
            for uid, weight in run_weights(self.redis, run, contest).weights.items():
                if uid >= 0:
                    weights[uid] = weights.get(uid, 0.0) + weight / len(contests)
        if not run_ids:
            self.status.last_weights = WeightsAttempt(block=head, ok=False,
                                                      message="no finished run with a baseline yet; no weights set")
            return
        if not weights:
            self.status.last_weights = WeightsAttempt(block=head, ok=False, run_id=",".join(run_ids),
                                                      message="the finished run has nobody to weight")
            self.last_weights_block = head
            return
        if self.status.wallet_error:
            self.status.last_weights = WeightsAttempt(block=head, ok=False, run_id=",".join(run_ids),
                                                      message=self.status.wallet_error, weights=weights)
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
            self.status.last_weights = WeightsAttempt(block=head, ok=False, run_id=",".join(run_ids),
                                                      message=str(exc), version_key=version_key, weights=weights)
            log.warning("setting weights failed: %s", exc)
            return
        self.status.last_weights = WeightsAttempt(
            block=head, ok=bool(result.success), run_id=",".join(run_ids), message=result.message or "",
            version_key=version_key, weights=weights)
        if result.success:
            self.last_weights_block = head

    # ------------------------------------------------------------ the loop

    def _publish(self) -> None:
        self.status.updated_at = self.clock()
        save_chain_status(self.redis, self.status)

    def run(self, stop: threading.Event | None = None, *, sleep: Callable[[float], None] = time.sleep,
            max_iterations: int | None = None, block_seconds: float = 12.0) -> None:
        stop = stop or threading.Event()
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

