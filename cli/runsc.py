"""`edgemaxx sandbox register-runsc`: register gVisor's runsc with the local Docker engine, with
the runtime arguments its release needs (scripts/setup runs it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def register_runsc_command(
    path: Annotated[str, typer.Option(help="The runsc binary Docker should run")] = "runsc",
    gpu: Annotated[bool, typer.Option(help="Add nvproxy (GPU support) where the release has it")] = False,
    daemon_json: Annotated[Path, typer.Option(help="dockerd's configuration file")] = Path("/etc/docker/daemon.json"),
    reload: Annotated[bool, typer.Option(help="SIGHUP dockerd afterwards (it rereads runtimes)")] = True,
) -> None:
    """Register runsc as a Docker runtime named `runsc` (other keys of daemon.json are kept)."""
    from edgemaxx.errors import InfrastructureError
    from edgemaxx.models import ContainerRuntime
    from sandbox.runtime import register_runsc, reload_engine
    from sandbox.select import connect_docker

    try:
        done = register_runsc(path, gpu=gpu, daemon_json=daemon_json)
    except InfrastructureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    for note in done.notes:
        err.print(f"[yellow]note:[/] {note}")
    what = "registered" if done.changed else "already registered"
    console.print(f"runsc {done.version} ({done.path}) {what} in {daemon_json}: {' '.join(done.args)}")
    if not (done.changed and reload):
        return
    if reload_engine() == 0:
        err.print("[yellow]note:[/] no dockerd running here; it reads the runtime when it starts")
        return
    # SIGHUP is asynchronous: wait until the engine lists the runtime as written.
    try:
        client = connect_docker(timeout_s=30)
    except InfrastructureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        for _ in range(50):
            entry = (client.info().get("Runtimes") or {}).get(ContainerRuntime.RUNSC.value) or {}
            if entry.get("path") == done.path and list(entry.get("runtimeArgs") or []) == done.args:
                console.print("dockerd reloaded: runtime runsc is live")
                return
            time.sleep(0.2)
    finally:
        client.close()
    err.print("[red]error:[/] dockerd did not pick up the runtime after SIGHUP; restart it")
    raise typer.Exit(2)
