"""Stopping a worker with SIGTERM (`docker stop`, `docker compose down`, an upgrade) at once.

RQ's answer to SIGTERM is a warm shutdown: finish the current job, then exit. A benchmark can
outlast any container stop timeout, and the SIGKILL that ends the wait would leave the job's
sandbox container running with nobody to remove it. So a busy worker stops now: it kills its work
horse, removes what the horse left (sandbox containers, processes, run directories), and exits.
The job stays in the started registry under this worker's name and is requeued when a worker of
the same name starts again (`worker.process.recover_orphans`): its result still lands exactly once.
SIGINT (Ctrl-C) keeps RQ's warm shutdown for people at a terminal.
"""

from __future__ import annotations

import signal
from types import FrameType

from rq import Worker

from worker import context
from worker.reaper import reap_leftovers


class StoppingWorker(Worker):
    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGTERM or not self.horse_pid:
            super().request_stop(signum, frame)
            return
        self.log.warning("Worker %s: SIGTERM while busy: stopping now; the job is requeued at the next start",
                         self.name)
        self.kill_horse()
        self.wait_for_horse()
        reap_leftovers(context.current().settings, self.name)
        raise SystemExit(0)
