"""Removing what a crashed worker left: sandbox containers, sandbox processes, run directories."""

from __future__ import annotations

import logging
import os
import shutil

import psutil

from edgemaxx.errors import InfrastructureError
from edgemaxx.settings import Settings
from sandbox.select import reap_cgroups, run_prefix

log = logging.getLogger(__name__)


def reap_processes(settings: Settings, owner: str) -> int:
    marker = str(settings.runs_dir / run_prefix(owner))
    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(arg.startswith(marker) for arg in cmdline):
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
    return killed


WORKER_ENV = "EDGEMAXX_WORKER_NAME"


def reap_predecessors(name: str) -> int:
    """Kill processes of a dead worker of the same name: an RQ work horse runs in its own process
    group and outlives a kill -9 of its parent; left alone it would share the GPU with us."""
    me = os.getpid()
    killed = 0
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(WORKER_ENV) == name:
                proc.kill()
                killed += 1
        except psutil.Error:
            continue
    return killed


def reap_run_dirs(settings: Settings, owner: str) -> int:
    if not settings.runs_dir.exists():
        return 0
    removed = 0
    for path in settings.runs_dir.glob(run_prefix(owner) + "*"):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def reap_sandboxes(settings: Settings, owner: str) -> int:
    """Every sandbox (container or process tree) and run directory of `owner`: after a job whose
    work horse was killed (a stop, a shutdown, RQ's timeout) nothing else would remove them.
    Only call it when none of `owner`'s jobs is running."""
    from sandbox.docker_backend import reap
    from sandbox.select import docker_client

    try:
        client = docker_client()
    except InfrastructureError:
        client = None
    removed = reap(client, owner) if client is not None else 0
    if removed:
        log.warning("removed %d leftover sandbox container(s) of %s", removed, owner)
    killed = reap_processes(settings, owner)
    if killed:
        log.warning("killed %d leftover sandbox process(es) of %s", killed, owner)
    dirs = reap_run_dirs(settings, owner)
    reap_cgroups(settings, owner)
    return removed + killed + dirs


def reap_leftovers(settings: Settings, owner: str) -> None:
    horses = reap_predecessors(owner)
    if horses:
        log.warning("killed %d process(es) left by a previous %s", horses, owner)
    reap_sandboxes(settings, owner)
