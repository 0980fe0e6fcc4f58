"""What a job needs from the worker process that runs it: settings, its name, progress.

RQ imports jobs by dotted path and passes only IDs; the worker's main() configures this once
before it starts taking jobs, so jobs never read the environment themselves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from redis import Redis

from edgemaxx.settings import Settings
from state import workers
from state.records import Progress, WorkerStatus


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    status: WorkerStatus
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _busy_since: float | None = None

    def progress(self, phase: str, *, run_id: str | None = None, hotkey: str | None = None,
                 current: int | None = None, total: int | None = None) -> None:
        with self._lock:
            previous = self.status.progress
            now = time.time()
            busy = phase != "idle"
            run_id, hotkey = run_id or previous.run_id, hotkey or previous.hotkey
            same_job = previous.phase != "idle" and (run_id, hotkey) == (previous.run_id, previous.hotkey)
            # Idle shows no job: the last one's hotkey is not what the worker is doing.
            self.status.progress = Progress(
                phase=phase, run_id=run_id if busy else None, hotkey=hotkey if busy else None,
                current=current, total=total,
                started_at=(previous.started_at if same_job else now) if busy else None)
            if busy and self._busy_since is None:
                self._busy_since = now
            elif not busy and self._busy_since is not None:
                workers.add_busy(self.redis, self.status.name, now - self._busy_since)
                self._busy_since = None
            self.status.busy = busy
            workers.publish_worker(self.redis, self.status, self.settings.worker_heartbeat_ttl_s)

    def heartbeat(self) -> None:
        """Liveness only: the status itself is written by whoever runs the job (the work horse),
        and the parent's copy of it is stale while a job runs."""
        workers.refresh_alive(self.redis, self.status.name, self.settings.worker_heartbeat_ttl_s)


_current: WorkerContext | None = None


def configure(context: WorkerContext) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("job run outside an edgemaxx worker: worker.context.configure() first")
    return _current
