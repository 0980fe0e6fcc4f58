"""What a GPU worker loads once, at start, before RQ forks a work horse per job.

A horse is a fork of the worker: whatever the worker has imported and built, every horse starts
with. Left to the horse, the job modules' imports and the similarity network's build would run
while the job holds the GPU, once per submission. Nothing here touches CUDA: a forked child
cannot use a CUDA context its parent made, so each horse still moves the network to its GPU.
"""

from __future__ import annotations

import importlib
import logging
import time

from edgemaxx.contest import Contest

log = logging.getLogger(__name__)


def warm_up(contests: list[Contest]) -> None:
    """Import the job code and build the similarity networks of `contests`. A network that
    cannot be built is left to the job, which reports it (the start-up checks said why already)."""
    started = time.monotonic()
    importlib.import_module("worker.jobs")  # RQ looks the job functions up by dotted path, in the horse
    metrics = {c.similarity_metric for c in contests}
    try:
        from scoring.similarity import preload

        preload(metrics)
    except Exception as exc:  # noqa: BLE001 - any failure (a missing package, a corrupt weights file) is the job's to report
        log.warning("similarity networks not preloaded (each job builds its own and says why): %s", exc)
        return
    log.info("preloaded the job code and the %s similarity network(s) in %.1fs",
             ", ".join(sorted(m.value for m in metrics)), time.monotonic() - started)
